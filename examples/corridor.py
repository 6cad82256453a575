#!/usr/bin/env python3
"""A complete environment for the leafe env protocol (docs/protocol.md): a corridor."""
import json, sys

ACTIONS = ["left", "right"]

def observe(pos, length):
    cells = ["O"] + ["."] * length + ["G"]
    cells[pos + 1] = "@"
    return {"text": "".join(cells)}

pos, length, steps, over = 0, 0, 0, False
for line in sys.stdin:
    req = json.loads(line)
    out = {"id": req["id"], "ok": True}
    if req["verb"] == "hello":
        out.update(protocol=1, name="corridor", version="1", snapshot=False,
                   description="A corridor: @ is you, G the goal at the right end, O a pit left of the start. "
                               "Reach the goal.",
                   actions={"type": "choice", "names": ACTIONS,
                            "semantics": "left and right move one cell."})
    elif req["verb"] == "reset":
        length, pos, steps = 3 + int(req["task_id"]) % 5, 0, 0
        over = False
        out.update(observation=observe(pos, length), legal_actions=ACTIONS)
    elif req["verb"] == "step" and (over or req.get("action") not in ACTIONS):
        why = "the episode is over" if over else f"unknown action {req.get('action')!r}"
        out = {"id": req["id"], "ok": False, "error": why}
    elif req["verb"] == "step":
        steps += 1
        pos += 1 if req["action"] == "right" else -1
        pit, goal = pos < 0, pos >= length
        over = pit or goal or steps >= 20
        out.update(
            observation=observe(max(min(pos, length), 0), length),
            reward=1.0 if goal else (-1.0 if pit else -0.05),
            terminated=pit or goal, success=goal, truncated=steps >= 20,
            feedback="fell into the pit" if pit else ("reached the goal" if goal else f"moved {req['action']}"),
            mistakes=["fell_into_pit"] if pit else [],
            legal_actions=ACTIONS)
    elif req["verb"] == "close":
        print(json.dumps(out), flush=True)
        break
    else:
        out = {"id": req["id"], "ok": False, "error": f"unknown verb {req['verb']}"}
    print(json.dumps(out), flush=True)
