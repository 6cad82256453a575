#!/usr/bin/env python3
"""gymnasium environments over the leafe env protocol (docs/protocol.md).

Compiled into leafe for `--env gym:ENV_ID[?key=value&...]`; runnable by hand:

    python3 gym_env.py --env-id FrozenLake-v1 --kwargs '{"is_slippery": false}'

Any gymnasium environment with a discrete action space and a text rendering
works: the toy-text ones (FrozenLake, Taxi, CliffWalking, Blackjack) render
as ANSI text, MiniGrid (`minigrid` on PyPI) as its mission plus a text grid.
See docs/env-gymnasium.md for what maps to what.

- Task ids are integers: the seed of gymnasium's `reset` (the layout, the
  start state). leafe's episode seed then seeds the environment's random
  stream (a slippery lake's slips), so the same task and seed replay exactly.
- Actions are named where the environment has names (FrozenLake's
  left/down/right/up, Taxi's six, MiniGrid's seven), else "0".."n-1".
- reward, terminated and truncated are gymnasium's. Success: `info
  ["is_success"]` where given, else a termination with a positive reward
  (CliffWalking: any termination, at the goal).
- `demo`: a shortest action sequence where the environment has a known,
  deterministic transition table (toy-text `P`), found by breadth-first
  search; none otherwise (slippery lakes, MiniGrid).
"""
import argparse
import collections
import json
import re
import sys

ANSI = re.compile(r"\x1b\[[0-9;]*m")

ACTION_NAMES = {
    "FrozenLake": ["left", "down", "right", "up"],
    "Taxi": ["south", "north", "east", "west", "pickup", "dropoff"],
    "CliffWalking": ["up", "right", "down", "left"],
    "Blackjack": ["stick", "hit"],
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Adapter:
    def __init__(self, env_id, kwargs):
        import gymnasium as gym

        try:  # MiniGrid registers its environments on import.
            import minigrid  # noqa: F401
        except ImportError:
            pass
        self.env_id = env_id
        self.family = env_id.split("/")[-1].split("-")[0]
        self.minigrid = env_id.startswith("MiniGrid") or env_id.startswith("BabyAI")
        if not self.minigrid:
            kwargs = {"render_mode": "ansi", **kwargs}
        self.env = gym.make(env_id, **kwargs)
        space = self.env.action_space
        if not isinstance(space, gym.spaces.Discrete):
            raise SystemExit(
                f"gym:{env_id}: action space {space} is not Discrete; leafe's gymnasium adapter needs discrete actions"
            )
        self.n = int(space.n)
        u = self.env.unwrapped
        names = None
        if self.minigrid and hasattr(u, "actions"):
            names = [a.name for a in u.actions][: self.n]
        elif self.family in ACTION_NAMES and len(ACTION_NAMES[self.family]) == self.n:
            names = ACTION_NAMES[self.family]
        elif hasattr(u, "get_action_meanings"):
            names = [m.lower() for m in u.get_action_meanings()]
        self.names = names if names and len(set(names)) == self.n else [str(i) for i in range(self.n)]
        self.obs = None
        self.last = None

    def text(self, obs):
        u = self.env.unwrapped
        if self.minigrid:
            return f"Mission: {obs['mission']}\n{u.pprint_grid()}"
        if self.family == "FrozenLake":
            desc = [[c.decode() if isinstance(c, bytes) else c for c in row] for row in u.desc]
            r, c = divmod(int(obs), len(desc[0]))
            desc[r][c] = "A"
            return "\n".join("".join(row) for row in desc) + "\n(A: you, S: start, F: frozen, H: hole, G: goal)"
        if self.family == "Taxi":
            row, col, passenger, dest = u.decode(int(obs))
            locs = "RGYB"
            grid = ANSI.sub("", self.env.render()).rstrip()
            where = "in the taxi" if passenger == 4 else f"at {locs[passenger]}"
            return f"{grid}\nTaxi at row {row}, column {col}; passenger {where}; destination {locs[dest]}."
        rendered = self.env.render()
        text = ANSI.sub("", rendered) if isinstance(rendered, str) else ""
        return (text.rstrip() + "\n" if text.strip() else "") + f"observation: {obs}"

    def reset(self, task_id, seed):
        try:
            layout = int(task_id)
        except ValueError:
            raise ValueError(f"task id {task_id!r}: gymnasium task ids are integers (the seed of reset)")
        from gymnasium.utils import seeding

        obs, info = self.env.reset(seed=layout)
        # The episode's own random stream: same task and seed, same episode.
        self.env.unwrapped.np_random, _ = seeding.np_random((layout * 1_000_003 + seed) % (2**63))
        self.obs = obs
        return {"text": self.text(obs)}

    def success(self, reward, terminated, info):
        if "is_success" in info:
            return bool(info["is_success"])
        if self.family == "CliffWalking":
            return terminated
        return terminated and reward > 0

    def step(self, action):
        if action not in self.names:
            raise ValueError(f"unknown action {action!r}; one of {', '.join(self.names)}")
        a = self.names.index(action)
        obs, reward, terminated, truncated, info = self.env.step(a)
        self.obs = obs
        reward = float(reward)
        success = self.success(reward, terminated, info)
        mistakes = []
        if self.family == "Taxi" and reward <= -10:
            mistakes.append("illegal_pickup_dropoff")
        elif self.family == "CliffWalking" and reward <= -100:
            mistakes.append("fell_off_cliff")
        elif terminated and not success:
            mistakes.append("fell_in_hole" if self.family == "FrozenLake" else "episode_lost")
        feedback = f"{action}: reward {reward:g}"
        if terminated:
            feedback += "; solved" if success else "; lost"
        elif truncated:
            feedback += "; time limit"
        return {
            "observation": {"text": self.text(obs)},
            "reward": reward,
            "terminated": bool(terminated),
            "truncated": bool(truncated),
            "success": bool(success),
            "feedback": feedback,
            "mistakes": mistakes,
            "legal_actions": self.names,
        }

    def demo(self, task_id):
        """A shortest action sequence through a deterministic transition table."""
        u = self.env.unwrapped
        table = getattr(u, "P", None)
        if table is None:
            return None
        self.env.reset(seed=int(task_id))
        start = int(u.s)
        seen = {start: None}
        queue = collections.deque([start])
        while queue:
            s = queue.popleft()
            for a, outcomes in table[s].items():
                if len(outcomes) != 1 or outcomes[0][0] < 1.0:
                    return None  # stochastic: no single demonstration
                _, nxt, reward, terminated = outcomes[0]
                if terminated and self.success(float(reward), True, {}):
                    path = [self.names[a]]
                    while seen[s] is not None:
                        s, prev_a = seen[s]
                        path.append(self.names[prev_a])
                    return list(reversed(path))
                if not terminated and nxt not in seen:
                    seen[nxt] = (s, a)
                    queue.append(nxt)
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env-id", required=True)
    p.add_argument("--kwargs", default="{}", help="JSON object of gymnasium.make keyword arguments")
    args = p.parse_args()
    try:
        adapter = Adapter(args.env_id, json.loads(args.kwargs))
    except SystemExit:
        raise
    except Exception as e:  # one line for leafe's error message
        log(f"gym:{args.env_id}: cannot make the environment: {type(e).__name__}: {e}")
        sys.exit(2)
    has_demo = getattr(adapter.env.unwrapped, "P", None) is not None
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        out = {"id": req.get("id"), "ok": True}
        verb = req.get("verb")
        try:
            if verb == "hello":
                out.update(
                    protocol=1,
                    name=f"gym:{args.env_id}",
                    version="1",
                    snapshot=False,
                    demo=has_demo,
                    actions={"type": "choice", "names": adapter.names},
                )
            elif verb == "reset":
                out.update(
                    observation=adapter.reset(str(req["task_id"]), int(req.get("seed", 0))),
                    legal_actions=adapter.names,
                )
            elif verb == "step":
                out.update(adapter.step(req["action"]))
            elif verb == "demo":
                out.update(actions=adapter.demo(str(req["task_id"])))
            elif verb == "close":
                print(json.dumps(out), flush=True)
                break
            else:
                out = {"id": req.get("id"), "ok": False, "error": f"unknown verb {verb!r}"}
        except Exception as e:
            out = {"id": req.get("id"), "ok": False, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
