"""Agent: does half the work, then never finishes. Edits src/app.py and adds NOTES.md (with `protected`, also a
workflow file), prints each cumulative cost given (`{"usage": {"cost_usd": X}}` lines, as a `command` agent may),
then sleeps until it is stopped."""

import json
import sys
import time
from pathlib import Path

args = sys.argv[1:]
app = Path("src/app.py")
app.write_text(app.read_text().replace("41", "42"))
Path("NOTES.md").write_text("Half done: the answer is 42, the tests are still to write.\n")
if "protected" in args:
    Path(".github/workflows/ci.yml").write_text("on: push\njobs: {hijack: {}}\n")
print("edited src/app.py; writing the tests next…", flush=True)
for cost in (arg for arg in args if arg != "protected"):
    print(json.dumps({"usage": {"cost_usd": float(cost)}}), flush=True)
    time.sleep(0.2)
time.sleep(600)
