"""Runners below the server: every runner's session at the lowest CPU priority, in a way the kernel honours.

With the kernel's autogroup scheduling (`/proc/sys/kernel/sched_autogroup_enabled`, man 7 sched) the CPU is shared
between sessions first: each `setsid` makes an autogroup that weighs as much as every other, whatever the nice
values of its processes. A runner starts in its own session, and so does its sandbox, so with a plain `nice` 32
runners would still weigh 32 times as much as the whole server. What lowers a session is its autogroup's nice value
(`/proc/PID/autogroup`); where autogroup does not apply (disabled, or a process in a cgroup other than the root one)
the processes' own nice value counts. Both are set: the nice value is inherited by everything the session starts,
the autogroup's covers the whole session, including what it started before the write.

The kernel lets a process without CAP_SYS_ADMIN change an autogroup's nice value at most once every 100 ms, for the
whole machine; a write refused for that (EAGAIN) is tried again from a background thread for a few seconds. Where it
cannot be done at all, the runner runs at its plain nice value, said once per process in the log.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

LOWEST: Final = 19
AUTOGROUP_SWITCH: Final = Path("/proc/sys/kernel/sched_autogroup_enabled")
RETRY_SECONDS: Final = 5.0
"""How long a write refused by the kernel's rate limit (EAGAIN) is tried again: 50 tries at its 100 ms spacing."""
RETRY_INTERVAL: Final = 0.1

_warned = False
_warned_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Lowered:
    """What `lower` did: the process's nice value, the session's autogroup nice value, and any problem."""

    nice: bool
    autogroup: bool
    """False where the kernel has no autogroups (then `problem` is None) or the write failed."""
    problem: str | None = None
    retry: bool = False
    """The write met the kernel's rate limit (EAGAIN): worth trying again shortly."""


def autogroup_enabled() -> bool:
    """Whether the kernel schedules by autogroup now."""
    try:
        return AUTOGROUP_SWITCH.read_text().strip() == "1"
    except OSError:
        return False


def read_autogroup(pid: int | str = "self") -> tuple[str, int] | None:
    """The autogroup of `pid` and its nice value (`/autogroup-42 nice 19` → ("/autogroup-42", 19)), or None."""
    try:
        name, _, nice = Path(f"/proc/{pid}/autogroup").read_text().split()
        return name, int(nice)
    except (OSError, ValueError):
        return None


def lower(pid: int = 0) -> Lowered:
    """Put `pid` (0: this process) and its session's autogroup at the lowest priority; once, no retry."""
    target = "self" if pid == 0 else str(pid)
    nice = True
    try:
        if os.getpriority(os.PRIO_PROCESS, pid) < LOWEST:
            os.setpriority(os.PRIO_PROCESS, pid, LOWEST)
    except OSError:
        nice = False
    current = read_autogroup(target)
    if current is None:
        return Lowered(nice, False)  # no autogroups in this kernel: the nice value is what counts
    if current[1] >= LOWEST:
        return Lowered(nice, True)
    try:
        with open(f"/proc/{target}/autogroup", "w", encoding="ascii") as file:
            file.write(str(LOWEST))
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
        return Lowered(nice, False, f"/proc/{target}/autogroup: {reason}", retry=exc.errno == errno.EAGAIN)
    return Lowered(nice, True)


def lower_runner(pid: int = 0, *, what: str = "runner", retry: bool = True) -> Lowered:
    """`lower`, tried again in the background (`retry`) while the kernel's rate limit refuses it; a failure is
    logged once per process."""
    outcome = lower(pid)
    if outcome.retry:
        if retry:
            started = _start_time(pid)
            threading.Thread(target=_retry, args=(pid, started, what), name="lower-priority", daemon=True).start()
    elif outcome.problem is not None or not outcome.nice:
        _warn_once(what, outcome)
    return outcome


def _retry(pid: int, started: int | None, what: str) -> None:
    deadline = time.monotonic() + RETRY_SECONDS
    outcome = Lowered(True, False, "not tried", retry=True)
    while outcome.retry and time.monotonic() < deadline:
        time.sleep(RETRY_INTERVAL)
        if _start_time(pid) != started:
            return  # that process is gone: nothing left to lower
        outcome = lower(pid)
    if outcome.problem is not None:
        _warn_once(what, outcome)


def _warn_once(what: str, outcome: Lowered) -> None:
    global _warned
    with _warned_lock:
        if _warned:
            return
        _warned = True
    if not outcome.nice:
        log.warning("could not lower the CPU priority of the %s: it competes with Kickoff at full weight", what)
    elif autogroup_enabled():
        log.warning("could not put the %s's session at the lowest CPU priority (%s): with autogroup scheduling "
                    "it weighs as much as Kickoff itself; said once", what, outcome.problem)


def _start_time(pid: int) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{'self' if pid == 0 else pid}/stat").read_bytes().rpartition(b")")[2].split()
        return int(fields[19])
    return None
