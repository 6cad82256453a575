#!/usr/bin/env python3
"""The environments of benches/adapters.sh without leafe: steps per second
in-process (the environment's own time) and, for OpenEnv, through
openenv-core's own Python WebSocket client (the peer of leafe's client).

    python benches/adapters_direct.py --steps 2000 [--ws-port PORT]

Prints one `direct <name> <steps/s>` line per measurement.
"""
import argparse
import importlib.util
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    saved = sys.argv
    sys.argv = [path]
    try:
        spec.loader.exec_module(module)
    finally:
        sys.argv = saved
    return module


def rate(name, steps, seconds):
    print(f"direct {name} {steps / seconds:.0f}", flush=True)


def corridor(n):
    m = load("tests/fixtures/openenv_corridor.py", "corridor")
    env = m.Corridor()
    actions = ["right", "wait", "left", "wait"]
    t = time.perf_counter()
    env.reset(seed=0, task_id="4")
    done = 0
    for i in range(n):
        obs = env.step(m.CorridorAction(command=actions[i % 4]))
        done += 1
        if obs.done:
            env.reset(seed=0, task_id="4")
    rate("openenv-corridor-in-process", done, time.perf_counter() - t)


def corridor_ws(n, port):
    from openenv.core.generic_client import GenericEnvClient

    actions = ["right", "wait", "left", "wait"]
    with GenericEnvClient(base_url=f"ws://127.0.0.1:{port}").sync() as env:
        env.reset(seed=0, task_id="4")
        t = time.perf_counter()
        for i in range(n):
            r = env.step({"command": actions[i % 4]})
            if r.done:
                env.reset(seed=0, task_id="4")
        rate("openenv-corridor-python-client-ws", n, time.perf_counter() - t)


def gym(n):
    m = load("examples/gym_env.py", "gym_env")
    a = m.Adapter("FrozenLake-v1", {"is_slippery": False})
    actions = ["right", "down", "left", "up"]
    t = time.perf_counter()
    a.reset("0", 0)
    for i in range(n):
        out = a.step(actions[i % 4])
        if out["terminated"] or out["truncated"]:
            a.reset("0", 0)
    rate("gym-frozenlake-adapter-in-process", n, time.perf_counter() - t)


def scienceworld(n):
    m = load("examples/scienceworld_env.py", "scienceworld_env")
    a = m.Adapter("easy", 100, 10_000)
    actions = ["look around", "go to hallway", "go to kitchen", "inventory"]
    a.reset("find-animal:0")
    t = time.perf_counter()
    for i in range(n):
        out = a.step(actions[i % 4])
        if out["terminated"] or out["truncated"]:
            a.reset("find-animal:0")
    rate("scienceworld-adapter-in-process", n, time.perf_counter() - t)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--ws-port", type=int)
    args = p.parse_args()
    corridor(args.steps)
    if args.ws_port:
        corridor_ws(args.steps, args.ws_port)
    gym(args.steps)
    scienceworld(max(args.steps // 10, 50))


if __name__ == "__main__":
    main()
