"""Agent for output `report`: writes the report at argv[1] and also (wrongly) touches code, which is not pushed."""

import sys
from pathlib import Path

report = Path(sys.argv[1])
report.parent.mkdir(parents=True, exist_ok=True)
report.write_text("# Findings\n\nThe answer is computed in src/app.py and is off by one.\n")
Path("src/app.py").write_text("scribbles\n")
