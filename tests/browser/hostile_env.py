#!/usr/bin/env python3
"""An environment whose every text is hostile: observations, feedback,
mistake names and one action name carry HTML and JavaScript payloads. The
viewer's browser test proves that none of it runs (tests/it/view.rs)."""
import json, sys

PAYLOAD = ('<script>window.__pwned=1</script> <img src=x onerror="window.__pwned=2"> '
           '<a href="javascript:window.__pwned=3">click</a>')
GO = '<img src=x onerror=alert(1)>'

def observe(pos):
    cells = ["O", ".", ".", "G"]
    cells[pos + 1] = "@"
    return {"text": "".join(cells) + "\n" + PAYLOAD}

pos, steps = 0, 0
for line in sys.stdin:
    req = json.loads(line)
    out = {"id": req["id"], "ok": True}
    if req["verb"] == "hello":
        out.update(protocol=1, name="hostile", version="1", snapshot=False,
                   actions={"type": "choice", "names": ["left", GO]})
    elif req["verb"] == "reset":
        pos, steps = 0, 0
        out.update(observation=observe(pos), legal_actions=["left", GO])
    elif req["verb"] == "step":
        steps += 1
        pos += 1 if req["action"] == GO else -1
        pit, goal = pos < 0, pos >= 2
        out.update(
            observation=observe(max(min(pos, 2), 0)),
            reward=1.0 if goal else (-1.0 if pit else 0.0),
            terminated=pit or goal, success=goal, truncated=steps >= 10,
            feedback="fell " + PAYLOAD if pit else "moved " + PAYLOAD,
            mistakes=["pit<img src=x onerror=alert(2)>"] if pit else [],
            legal_actions=["left", GO])
    elif req["verb"] == "close":
        print(json.dumps(out), flush=True)
        break
    else:
        out = {"id": req["id"], "ok": False, "error": f"unknown verb {req['verb']}"}
    print(json.dumps(out), flush=True)
