"""Agent: a deterministic fix, one modified and one new file; checks the prompt file lies outside the checkout."""

import sys
from pathlib import Path

prompt = Path(sys.argv[1])
assert prompt.read_text().startswith("Fix the answer"), prompt
assert Path.cwd() not in prompt.resolve().parents, "the prompt file must be outside the work tree"
app = Path("src/app.py")
app.write_text(app.read_text().replace("41", "42"))
Path("NOTES.md").write_text("The answer is 42.\n")
print("edited src/app.py and added NOTES.md")
