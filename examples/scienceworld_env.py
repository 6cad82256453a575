#!/usr/bin/env python3
"""ScienceWorld over the leafe env protocol (docs/protocol.md).

Compiled into leafe for `--env scienceworld:[OPTIONS]`; runnable by hand:

    python3 scienceworld_env.py --simplifications easy --max-legal 100

Needs `scienceworld` (PyPI; its simulator jar is in the wheel) and Java.
See docs/env-scienceworld.md for what maps to what.

- Task ids name a task and a variation: `boil:3` (variation 3 of `boil`),
  `1-1:3` (the same by the simulator's task number), or `boil:train:0` (the
  first variation of boil's train split; `dev` and `test` likewise).
- The valid actions at each step are the legal actions, up to --max-legal;
  a longer list keeps, in this order, the actions that move or look
  (look around, inventory, go to, open, teleport, wait), the actions that name an
  object the task description names, then the rest in the simulator's order.
- reward is the change of the score (0 to 100); completion is success; a
  failed task (score < 0) ends the episode with the mistake `task_failed`;
  a command the simulator cannot parse is the mistake `invalid_action`.
- The simulator has no random seed of its own: leafe's seed is ignored and
  a task id is one deterministic episode (rollback replays it exactly).
- `demo {task_id}`: the variation's gold action sequence.
"""
import argparse
import json
import re
import sys

MOVES = ("look around", "inventory", "go to ", "open ", "teleport to ", "wait")
SPLITS = ("train", "dev", "test")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Adapter:
    def __init__(self, simplifications, max_legal, step_limit):
        from scienceworld import ScienceWorldEnv

        self.env = ScienceWorldEnv("", envStepLimit=step_limit)
        self.simplifications = simplifications
        self.max_legal = max_legal
        self.numbers = dict(self.env.tasks) if hasattr(self.env, "tasks") else {}
        self.names = list(self.env.get_task_names())
        self.loaded = None
        self.score = 0
        self.description = ""

    def task(self, task_id):
        """(task name, variation) of a task id."""
        parts = task_id.split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"task id {task_id!r}: write TASK:VARIATION (boil:3) or TASK:SPLIT:K (boil:train:0)")
        name = self.numbers.get(parts[0], parts[0])
        if name not in self.names:
            raise ValueError(f"task id {task_id!r}: unknown task {parts[0]!r}; tasks: {', '.join(self.names)}")
        if len(parts) == 2:
            variation = int(parts[1])
            # load() of the task first to know how many variations it has.
            self.env.load(name, 0, self.simplifications)
            n = self.env.get_max_variations(name)
            if not 0 <= variation < n:
                raise ValueError(f"task id {task_id!r}: {name} has variations 0..{n - 1}")
            return name, variation
        split, k = parts[1], int(parts[2])
        if split not in SPLITS:
            raise ValueError(f"task id {task_id!r}: split {split!r} is not one of train, dev, test")
        self.env.load(name, 0, self.simplifications)
        variations = {
            "train": self.env.get_variations_train,
            "dev": self.env.get_variations_dev,
            "test": self.env.get_variations_test,
        }[split]()
        if not 0 <= k < len(variations):
            raise ValueError(f"task id {task_id!r}: {name}'s {split} split has {len(variations)} variations")
        return name, variations[k]

    def legal(self, valid):
        valid = list(valid)
        if len(valid) <= self.max_legal:
            return valid
        words = set(re.findall(r"[a-z]+", self.description.lower())) - {"the", "a", "an", "of", "to", "on", "in", "your", "task", "is", "then", "first", "that", "will", "it", "and", "for"}
        moves = [a for a in valid if a.startswith(MOVES)]
        named = [a for a in valid if a not in moves and words & set(re.findall(r"[a-z]+", a.lower()))]
        keep = set(moves[: self.max_legal]) | set(named[: max(0, self.max_legal - len(moves))])
        rest = [a for a in valid if a not in keep]
        keep |= set(rest[: max(0, self.max_legal - len(keep))])
        return [a for a in valid if a in keep]

    def reset(self, task_id):
        name, variation = self.task(task_id)
        self.env.load(name, variation, self.simplifications)
        obs, info = self.env.reset()
        self.description = self.env.get_task_description()
        self.score = 0
        text = f"Task: {self.description}\n{obs.strip()}"
        return {"text": text}, self.legal(info["valid"])

    def step(self, action):
        obs, _, done, info = self.env.step(action)
        score = int(info["score"])
        reward = float(score - self.score)
        self.score = score
        invalid = obs.strip().startswith("No known action matches that input")
        failed = score < 0
        success = done and score >= 100
        terminated = bool(done and (success or failed))
        truncated = bool(done and not terminated)
        mistakes = ["task_failed"] if failed else (["invalid_action"] if invalid else [])
        feedback = f"score {score} ({reward:+g})"
        if invalid:
            feedback = f"the simulator did not understand {action!r}; " + feedback
        if failed:
            feedback += "; the task failed"
        elif success:
            feedback += "; the task is complete"
        return {
            "observation": {"text": obs.strip()},
            "reward": reward,
            "terminated": terminated,
            "truncated": truncated,
            "success": success,
            "feedback": feedback,
            "mistakes": mistakes,
            "info": {"score": score, "moves": info.get("moves")},
            "legal_actions": [] if done else self.legal(info["valid"]),
        }

    def demo(self, task_id):
        name, variation = self.task(task_id)
        self.env.load(name, variation, self.simplifications, generateGoldPath=True)
        gold = list(self.env.get_gold_action_sequence())
        if not gold or gold[0].startswith("ERROR"):
            return None
        return gold


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--simplifications", default="", help="the simulator's simplification string (easy, or a comma list)")
    p.add_argument("--max-legal", type=int, default=100, help="most legal actions offered per step")
    p.add_argument("--step-limit", type=int, default=100, help="the simulator's own step limit (truncation)")
    args = p.parse_args()
    try:
        adapter = Adapter(args.simplifications, args.max_legal, args.step_limit)
    except Exception as e:
        log(f"scienceworld: cannot start the simulator (it needs Java): {type(e).__name__}: {e}")
        sys.exit(2)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        out = {"id": req.get("id"), "ok": True}
        verb = req.get("verb")
        try:
            if verb == "hello":
                out.update(protocol=1, name="scienceworld", version="1", snapshot=False, demo=True,
                           actions={"type": "free_text"})
            elif verb == "reset":
                observation, legal = adapter.reset(str(req["task_id"]))
                out.update(observation=observation, legal_actions=legal)
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
    try:
        adapter.env.close()
    except Exception:
        pass


if __name__ == "__main__":
    main()
