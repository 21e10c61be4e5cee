"""Running an untrusted program: its own process group, a deadline, cancellation, bounded output, no orphans.

The agent (and the verify command) run in a new session, so one signal reaches every process they start. A program
that leaves the group (setsid, a daemon) is still found afterwards by a marker in its inherited environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

KILL_GRACE_SECONDS: Final = 5.0
"""Between SIGTERM and SIGKILL: time for an agent to exit cleanly."""
POLL_SECONDS: Final = 0.05
MARKER_ENV: Final = "KICKOFF_RUN_MARKER"
"""Set in the environment of every process the runner starts for the agent or verify; not a secret."""


class TailBuffer:
    """Keeps the last `limit` bytes written to it, whatever the total; safe to write from several threads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self._data = bytearray()
        self._lock = threading.Lock()

    def write(self, chunk: bytes) -> None:
        with self._lock:
            self.total += len(chunk)
            self._data += chunk
            if len(self._data) > 2 * self.limit:  # trim in batches: amortised O(1) per byte
                del self._data[: len(self._data) - self.limit]

    @property
    def dropped(self) -> int:
        with self._lock:
            return self.total - min(len(self._data), self.limit)

    def text(self, note: bool = True) -> str:
        """The kept tail, decoded. When bytes were dropped it starts at a line boundary where one is near (so a
        token cut in half at the start is not kept either) and, with `note`, after a line saying how much was cut.
        """
        with self._lock:
            data = bytes(self._data[-self.limit :])
            dropped = self.total - len(data)
        if not note:
            return data.decode("utf-8", errors="replace")
        if dropped:
            newline = data.find(b"\n", 0, min(len(data), 4096))
            if newline != -1:
                data = data[newline + 1 :]
                dropped += newline + 1
        text = data.decode("utf-8", errors="replace")
        return f"[… {dropped} earlier bytes not kept]\n{text}" if dropped else text


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int | None  # None when it could not start or was killed by the runner
    timed_out: bool = False
    cancelled: bool = False
    start_error: str | None = None
    duration_seconds: float = 0.0


def _pump(pipe: IO[bytes], sinks: Sequence[TailBuffer]) -> None:
    fd = pipe.fileno()
    try:
        while chunk := os.read(fd, 65536):
            for sink in sinks:
                sink.write(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            pipe.close()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _exited(pid: int) -> bool:
    """Whether the child has exited, without reaping it: its pid (and so its group id) stays reserved."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def kill_marked(marker: str, rounds: int = 10) -> list[int]:
    """SIGKILL every process whose environment carries `MARKER_ENV=marker` (escaped the group); Linux /proc only."""
    needle = f"{MARKER_ENV}={marker}".encode()
    me = os.getpid()
    killed: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return killed
    for _ in range(rounds):
        found = False
        for entry in proc.iterdir():
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if needle in environ.split(b"\0"):
                found = True
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(entry.name), signal.SIGKILL)
                    killed.append(int(entry.name))
        if not found:
            break
        time.sleep(POLL_SECONDS)
    return killed


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    cancel: threading.Event,
    stdout: Sequence[TailBuffer],
    stderr: Sequence[TailBuffer],
    stdin: Path | None = None,
    grace: float = KILL_GRACE_SECONDS,
) -> ProcessResult:
    """Run argv (no shell) in its own session; on deadline or cancel, SIGTERM the group, then SIGKILL it.

    Whatever is left of the group when the program exits is killed too, as is anything carrying the marker that
    `env` sets (MARKER_ENV), so nothing the program started outlives this call.
    """
    started = time.monotonic()
    stdin_file = stdin.open("rb") if stdin is not None else None
    try:
        proc = subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env), stdin=stdin_file or subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, close_fds=True,
        )
    except OSError as exc:
        return ProcessResult(exit_code=None, start_error=f"{argv[0]}: {exc.strerror or exc}")
    finally:
        if stdin_file is not None:
            stdin_file.close()
    assert proc.stdout is not None
    assert proc.stderr is not None
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, stdout), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, stderr), daemon=True),
    ]
    for pump in pumps:
        pump.start()
    pgid = proc.pid  # a new session: the leader's pid is the group id
    deadline = started + timeout
    timed_out = cancelled = False
    while not _exited(proc.pid):
        if cancel.is_set() or time.monotonic() >= deadline:
            cancelled = cancel.is_set()
            timed_out = not cancelled
            _signal_group(pgid, signal.SIGTERM)
            grace_end = time.monotonic() + grace
            while not _exited(proc.pid) and time.monotonic() < grace_end:
                time.sleep(POLL_SECONDS)
            break
        time.sleep(POLL_SECONDS)
    # The leader is a zombie or still running: its group id cannot have been reused, so this hits only ours.
    _signal_group(pgid, signal.SIGKILL)
    exit_code = proc.wait()
    marker = env.get(MARKER_ENV)
    if marker:
        kill_marked(marker)
    for pump in pumps:
        pump.join(timeout=5)
    return ProcessResult(
        exit_code=None if timed_out or cancelled else exit_code,
        timed_out=timed_out,
        cancelled=cancelled,
        duration_seconds=time.monotonic() - started,
    )
