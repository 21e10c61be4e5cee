"""A repository's verify command: `pass` checks the fix is there; `fail` fails loudly."""

import sys
from pathlib import Path

if sys.argv[1] == "pass":
    assert "42" in Path("src/app.py").read_text()
    Path("verify-artifact.log").write_text("created by verify; never committed\n")
    Path("build").mkdir(exist_ok=True)
    Path("build/out.txt").write_text("artifact\n")
    print("1 passed")
    sys.exit(0)
print("FAILED test_answer - assert 41 == 42")
sys.exit(1)
