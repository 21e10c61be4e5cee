"""Agent: fails after printing to stderr."""

import sys
from pathlib import Path

Path("src/app.py").write_text("half-done\n")
print("Traceback: something went wrong", file=sys.stderr)
sys.exit(3)
