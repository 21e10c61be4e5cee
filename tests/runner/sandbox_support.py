"""For tests that need a working bubblewrap: in CI (CI=true) a broken or missing bwrap fails them, elsewhere it
skips them with the reason."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bot.runner.sandbox import probe_here


def require_bwrap() -> None:
    result = probe_here()
    if result.ok:
        return
    message = f"the sandbox tests need a working bubblewrap: {result.reason} (scripts/bootstrap installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def bwrap() -> None:
    require_bwrap()


def host_processes_with(token: str) -> list[int]:
    """Live (not zombie) host processes whose command line holds `token`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if token.encode() in cmdline and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def wait_until_gone(token: str, seconds: float = 5.0) -> list[int]:
    """The processes with `token` still alive after up to `seconds` (reaping by their parents can lag a little)."""
    deadline = time.monotonic() + seconds
    while (alive := host_processes_with(token)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive
