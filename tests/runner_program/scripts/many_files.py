"""Agent: creates argv[1] new files."""

import sys
from pathlib import Path

Path("generated").mkdir()
for index in range(int(sys.argv[1])):
    (Path("generated") / f"file{index}.txt").write_text(f"{index}\n")
