"""Fixtures for the set-up tests: a GitHub sandbox served on a free port, and `kickoff setup` as a real process."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from bot.sandbox import Sandbox, SandboxServer

ROOT = Path(__file__).resolve().parents[2]
CREDENTIAL_SETTINGS = {"APP_ID", "PRIVATE_KEY", "PRIVATE_KEY_PATH", "WEBHOOK_SECRET", "GITHUB_API_URL", "PUBLIC_URL"}


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A GitHub sandbox; the test fails if anything it served broke GitHub's description."""
    sb = Sandbox(tmp_path / "github")
    try:
        yield sb
    finally:
        violations = sb.violations
        sb.close()
    assert not violations, "fidelity violations:\n" + "\n".join(str(v) for v in violations)


@pytest.fixture
def github(sandbox: Sandbox) -> Iterator[str]:
    with SandboxServer(sandbox) as url:
        yield url


class SetupProcess:
    """`kickoff setup` running as its own process, its output collected line by line."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_SETTINGS}
        env.update({"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "NO_PROXY": "127.0.0.1,localhost"})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "setup", "--port", "0", *args],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str], into: list[str], announce: bool) -> None:
        for line in stream:
            into.append(line)
            if announce:
                self._lines.put(line)

    def page_url(self, timeout: float = 30.0) -> str:
        """The set-up page's address, from the line `kickoff setup` prints once it listens."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            found = re.search(r"Open (http://127\.0\.0\.1:\d+/)", line)
            if found:
                return found.group(1)
        raise AssertionError(f"kickoff setup printed no page URL; stdout={self.output!r} stderr={self.errors!r}")

    def wait(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout)
        self._close()
        return code

    def _close(self) -> None:
        for reader in self._readers:
            reader.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    @property
    def output(self) -> str:
        return "".join(self.stdout)

    @property
    def errors(self) -> str:
        return "".join(self.stderr)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close()


def secret_values(env_file: Path) -> list[str]:
    """What must never be printed: the webhook and client secrets and every line of the private key's body."""
    values = ["PRIVATE KEY"]
    for line in env_file.read_text().splitlines():
        name, _, value = line.partition("=")
        value = value.strip('"')
        if name in ("WEBHOOK_SECRET", "GITHUB_CLIENT_SECRET"):
            values.append(value)
        elif name == "PRIVATE_KEY":
            values += [part for part in value.split("\\n") if part and not part.startswith("-----")]
    assert len(values) > 4, values
    return values


StartSetup = Callable[[list[str]], SetupProcess]


@pytest.fixture
def run_setup(tmp_path: Path) -> Iterator[StartSetup]:
    """Start `kickoff setup ARGS --port 0` in tmp_path; every process started is killed at the end."""
    started: list[SetupProcess] = []

    def start(args: list[str]) -> SetupProcess:
        process = SetupProcess(args, tmp_path)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
