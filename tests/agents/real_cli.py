"""Installing a real agent CLI at its pinned version into the test cache, once for every test run and xdist worker.

The cache is `$XDG_CACHE_HOME/kickoff-tests/<name>-<version>` (default ~/.cache): an npm prefix for the Node CLIs,
a virtualenv for aider. A CLI that cannot be installed skips its test on a developer's machine, and fails it in CI
(`CI` set), so a CI run never goes green without having run the real programs.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import pytest

CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kickoff-tests"
INSTALL_TIMEOUT_SECONDS = 900
PYTHON_FOR_AIDER = ("3.12", "3.11", "3.10")
"""aider-chat 0.86 runs on Python 3.10 to 3.12."""


def unavailable(reason: str) -> NoReturn:
    """Skip locally; in CI, fail: the real-program tests are what proves the adapters work."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def _works(program: Path, version: str) -> bool:
    if not program.exists():
        return False
    try:
        done = subprocess.run([str(program), "--version"], capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and version in done.stdout + done.stderr


def _last_line(text: str) -> str:
    """The last line that says something (npm ends with where its log is)."""
    lines = [line for line in text.strip().splitlines() if line.strip() and "complete log" not in line]
    return (lines or ["no output"])[-1]


def _install(label: str, cache: Path, program: Path, version: str, steps: Sequence[Sequence[str]]) -> Path:
    """`program` (in `cache`), running `steps` under a lock first if it is not there and working."""
    if _works(program, version):
        return program.parent
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with (CACHE_ROOT / f".{cache.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one xdist worker installs, the others wait and reuse
        if not _works(program, version):
            shutil.rmtree(cache, ignore_errors=True)
            cache.mkdir(parents=True)
            for step in steps:
                try:
                    done = subprocess.run(list(step), capture_output=True, text=True,
                                          timeout=INSTALL_TIMEOUT_SECONDS, check=False)
                except subprocess.TimeoutExpired:
                    unavailable(f"installing {label} took longer than {INSTALL_TIMEOUT_SECONDS} s")
                except OSError as exc:
                    unavailable(f"installing {label}: cannot run {step[0]}: {exc.strerror or exc}")
                if done.returncode != 0:
                    unavailable(f"installing {label} failed (is the registry reachable?): {_last_line(done.stderr)}")
            if not _works(program, version):
                unavailable(f"{label} was installed but `{program.name} --version` does not say {version}")
    return program.parent


def npm_cli(package: str, version: str, program: str) -> Path:
    """The bin directory holding the real `program` of npm `package`@`version`."""
    cache = CACHE_ROOT / f"{package.rsplit('/', 1)[-1]}-{version}"
    npm = shutil.which("npm")
    if npm is None:
        unavailable(f"npm is not installed, so {package} cannot be installed")
    # A global install into the cache as prefix: bin/ and lib/node_modules/, the layout of an operator's
    # `npm install -g`, which the sandbox shows (a `bin` directory's prefix lib/ is bound read-only with it).
    return _install(f"{package}@{version}", cache, cache / "bin" / program, version,
                    [[npm, "install", "--global", "--prefix", str(cache), "--no-audit", "--no-fund",
                      "--loglevel=error", f"{package}@{version}"]])


def _aider_python() -> str | None:
    """A real interpreter (not a pyenv shim, which the sandbox cannot run) of a version aider supports."""
    if sys.version_info[:2] in {(3, 10), (3, 11), (3, 12)}:
        return str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}")
    for version in PYTHON_FOR_AIDER:
        found = shutil.which(f"python{version}")
        if found is None:
            continue
        try:
            done = subprocess.run([found, "-c", "import sys; print(sys.executable)"], capture_output=True,
                                  text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    return None


def pip_cli(package: str, version: str, program: str) -> Path:
    """The bin directory holding the real `program` of PyPI `package`==`version`, in its own virtualenv."""
    cache = CACHE_ROOT / f"{package}-{version}"
    python = _aider_python()
    if python is None:
        unavailable(f"no Python {' / '.join(PYTHON_FOR_AIDER)} to install {package} with")
    pip = str(cache / "bin" / "pip")
    return _install(f"{package}=={version}", cache, cache / "bin" / program, version,
                    [[python, "-m", "venv", str(cache)],
                     [pip, "install", "--quiet", "--disable-pip-version-check", f"{package}=={version}"]])
