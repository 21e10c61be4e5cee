"""A scripted judge: ranks first the attempts whose diff (in the prompt) makes the answer 42, scribbles a file
(which is never pushed), and prints its ranking as its last line."""

import json
import re
import sys
from pathlib import Path

prompt = Path(sys.argv[1]).read_text(encoding="utf-8")
parts = re.split(r"^## Attempt: run (\d+)$", prompt, flags=re.MULTILINE)
sections = {int(run): text for run, text in zip(parts[1::2], parts[2::2], strict=True)}
best = [run for run, text in sections.items() if "+    return 42" in text]
order = best + [run for run in sections if run not in best]
Path("scribble.txt").write_text("a judge's scratch: never pushed\n")
print("reading the diffs")
print(json.dumps({"ranking": [{"run": run, "reason": "makes it 42" if run in best else "does not make it 42"}
                              for run in order]}))
