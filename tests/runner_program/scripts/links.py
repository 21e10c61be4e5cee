"""Agent: makes one change the publish step must refuse (argv[1] names it), beside a legitimate fix."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

kind = sys.argv[1]
Path("src/app.py").write_text("def answer() -> int:\n    return 42\n")
if kind == "workflows-link":
    Path("evil").mkdir()
    Path("evil/ci.yml").write_text("on: push\njobs: {steal: {runs-on: ubuntu-latest, steps: [{run: env}]}}\n")
    Path(".github").mkdir(exist_ok=True)
    shutil.rmtree(".github/workflows", ignore_errors=True)
    os.symlink("../evil", ".github/workflows")
elif kind == "github-link":
    Path("evil/workflows").mkdir(parents=True)
    Path("evil/workflows/ci.yml").write_text("on: push\n")
    os.symlink("evil", ".github")
elif kind == "plain-link":
    Path("docs").mkdir()
    os.symlink("../README.md", "docs/readme.md")
elif kind == "gitlink":
    nested = Path("vendor/lib")
    nested.mkdir(parents=True)
    (nested / "lib.py").write_text("x = 1\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "a",
           "GIT_COMMITTER_EMAIL": "a@b"}
    for args in (["init", "-q"], ["add", "lib.py"], ["commit", "-qm", "nested"]):
        subprocess.run(["git", *args], cwd=nested, env=env, check=True)
elif kind == "gitmodules":
    Path(".gitmodules").write_text('[submodule "lib"]\n\tpath = lib\n\turl = https://example.com/evil.git\n')
elif kind == "gitattributes":
    Path(".gitattributes").write_text("src/*.py linguist-generated=true\n")
elif kind == "nested-gitattributes":
    Path("src/.gitattributes").write_text("*.py linguist-generated=true\n")
else:
    raise SystemExit(f"unknown kind {kind}")
