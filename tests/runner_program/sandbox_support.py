"""For tests that need a working bubblewrap: in CI (CI=true) a broken or missing bwrap fails them, elsewhere it
skips them with the reason."""

from __future__ import annotations

import os
import time

import pytest

from bot.runner_program.sandbox import probe_here
from tests.runs.support import live_processes


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
    """Live (not zombie) host processes, other than this one, whose command line holds `token`."""
    return [pid for pid in live_processes(token) if pid != os.getpid()]


def wait_until_gone(token: str, seconds: float = 5.0) -> list[int]:
    """The processes with `token` still alive after up to `seconds` (reaping by their parents can lag a little)."""
    deadline = time.monotonic() + seconds
    while (alive := host_processes_with(token)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive
