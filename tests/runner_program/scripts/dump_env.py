"""Agent: records what it can see of credentials: its environment, its parent's (the runner's) /proc environ, and
any git credential configuration, into argv[1]; prints its environment; makes one change."""

import json
import os
import subprocess
import sys
from pathlib import Path

try:
    parent = Path(f"/proc/{os.getppid()}/environ").read_bytes().decode(errors="replace")
except OSError as exc:
    parent = f"unreadable: {exc}"
config = subprocess.run(["git", "config", "--list", "--show-origin"], capture_output=True, text=True).stdout
Path(sys.argv[1]).write_text(json.dumps({"env": dict(os.environ), "parent_environ": parent, "git_config": config,
                                         "cwd": os.getcwd()}))
for name, value in sorted(os.environ.items()):
    print(f"{name}={value}")
Path("ENV_SEEN.md").write_text("checked\n")
