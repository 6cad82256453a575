#!/usr/bin/env python3
"""TextWorld as a leafe environment: the env protocol (docs/protocol.md) over
games that `textworld` (PyPI) generates offline.

    pip install 'textworld==1.7.*'
    leafe explore --env "cmd:python3 examples/textworld_env.py --games games/" \
        --levels tasks.txt --policy openai --base-url ... --model ...

A task id is either a path to a compiled game (`.z8`/`.ulx`) or an integer
seed: the game `tw-make custom --seed N` makes with this script's world
options, generated on first use into `--games` (≈ 2–4 s) and reused after.
Actions are free text; every step offers TextWorld's admissible commands as
the legal actions. The reward is the change of score, `success` is TextWorld's
`won`, a lost game terminates with the mistake `lost_game`, and a command
that was not admissible is flagged `inadmissible_command`. No snapshots:
leafe rolls back by resetting and replaying the prefix, which is
deterministic in TextWorld. Logs go to stderr.
"""
import argparse, json, os, re, subprocess, sys, tempfile

# One thread of numerical work per process: leafe runs a pool of these
# processes, and numpy's BLAS threads, one set per process, would only
# compete with each other for the cores.
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

try:
    import textworld
except ImportError:
    sys.exit(f"textworld_env.py: `textworld` is not installed for {sys.executable}; "
             "run `{0} -m pip install 'textworld==1.7.*'`, or point LEAFE_PYTHON at a Python "
             "that has it".format(sys.executable))

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--games", default="textworld-games", help="where generated games are kept")
p.add_argument("--max-steps", type=int, default=50, help="steps before an episode is truncated")
p.add_argument("--world-size", type=int, default=3, help="rooms in a generated game")
p.add_argument("--nb-objects", type=int, default=5, help="objects in a generated game")
p.add_argument("--quest-length", type=int, default=3, help="actions the quest needs")
args = p.parse_args()

INFOS = textworld.EnvInfos(admissible_commands=True, won=True, lost=True, score=True,
                           max_score=True, objective=True, description=True)


def log(*a):
    print("[textworld]", *a, file=sys.stderr, flush=True)


def game_path(task_id):
    """The compiled game of a task: a given file, or the game of a seed (made once)."""
    if not task_id.isdigit():
        if not os.path.exists(task_id):
            raise ValueError(f"task {task_id!r} is neither a seed nor a game file")
        return task_id
    name = f"tw-s{task_id}-w{args.world_size}-o{args.nb_objects}-q{args.quest_length}.z8"
    path = os.path.join(args.games, name)
    if os.path.exists(path):
        return path
    os.makedirs(args.games, exist_ok=True)
    # Generate in a private directory, then move into place: processes of a
    # pool may ask for the same game at once.
    with tempfile.TemporaryDirectory(dir=args.games) as tmp:
        out = os.path.join(tmp, "game.z8")
        tw_make = os.path.join(os.path.dirname(sys.executable), "tw-make")
        cmd = [tw_make if os.path.exists(tw_make) else "tw-make", "custom",
               "--world-size", str(args.world_size), "--nb-objects", str(args.nb_objects),
               "--quest-length", str(args.quest_length), "--seed", task_id,
               "--output", out, "-f", "--silent"]
        log("making", name)
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0 or not os.path.exists(out):
            raise RuntimeError(f"tw-make failed for seed {task_id}: {done.stderr.strip()[-300:]}")
        for ext in (".json", ".z8"):  # the game file last: its presence means done
            os.replace(out[:-3] + ext, path[:-3] + ext)
    return path


def clean(text):
    """Game text without the banner, prompt and runs of blank lines."""
    text = re.sub(r"^\s*>\s*$", "", text or "", flags=re.M)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def one_line(text, limit=240):
    line = " ".join(clean(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


env, path, state, score, steps = None, None, None, 0, 0
for raw in sys.stdin:
    req = json.loads(raw)
    out = {"id": req.get("id"), "ok": True}
    try:
        verb = req.get("verb")
        if verb == "hello":
            out.update(protocol=1, name="textworld", version=textworld.__version__,
                       snapshot=False, demo=True, actions={"type": "free_text"})
        elif verb == "reset":
            wanted = game_path(str(req["task_id"]))
            if wanted != path:
                if env is not None:
                    env.close()
                env, path = textworld.start(wanted, request_infos=INFOS), wanted
            state, score, steps = env.reset(), 0, 0
            text = f"Goal: {clean(state.objective)}\n\n{clean(state.description)}"
            out.update(observation={"text": text},
                       legal_actions=sorted(state.admissible_commands or []),
                       info={"max_score": state.max_score, "game": os.path.basename(path)})
        elif verb == "step":
            if state is None:
                raise ValueError("step before reset")
            action = str(req["action"]).strip()
            admissible = action in (state.admissible_commands or [])
            state, new_score, done = env.step(action)
            steps += 1
            reward, score = float(new_score - score), new_score
            mistakes = (["lost_game"] if state.lost else []) + ([] if admissible else ["inadmissible_command"])
            feedback = one_line(state.feedback)
            if reward > 0:
                feedback += f" (score {score}/{state.max_score})"
            out.update(observation={"text": clean(state.feedback)}, reward=reward,
                       terminated=bool(done and (state.won or state.lost)), success=bool(state.won),
                       truncated=steps >= args.max_steps and not done, feedback=feedback,
                       mistakes=mistakes, legal_actions=sorted(state.admissible_commands or []),
                       info={"score": score})
        elif verb == "demo":
            # The game's walkthrough (a demonstration; it resets nothing the
            # episode uses: a game of its own is started and closed).
            walk_env = textworld.start(game_path(str(req["task_id"])),
                                       request_infos=textworld.EnvInfos(extras=["walkthrough"]))
            walk = walk_env.reset().get("extra.walkthrough")
            walk_env.close()
            out.update(actions=list(walk) if walk else None)
        elif verb == "close":
            print(json.dumps(out), flush=True)
            break
        else:
            out = {"id": req.get("id"), "ok": False, "error": f"unknown verb {verb!r}"}
    except Exception as e:  # one bad request is an error answer, not a crash
        log(f"{type(e).__name__}: {e}")
        out = {"id": req.get("id"), "ok": False, "error": f"{type(e).__name__}: {e}"}
    print(json.dumps(out), flush=True)
if env is not None:
    env.close()
