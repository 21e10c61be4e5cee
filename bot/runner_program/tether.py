"""The tether: runs an unsandboxed program so that its whole process tree dies with the runner, even a `kill -9`.

A sandboxed agent dies with its runner through bubblewrap (`--die-with-parent`, and the PID namespace whose init
takes every process in it along). An unsandboxed one (`sandbox: off`) has no namespace, and the runner's own clean-up
(`bot.runner_program.process`) runs only while the runner lives: a runner killed with SIGKILL used to leave its agent
running in its own session, in a workspace about to be deleted. So the runner starts the program through this tether:

    python -I -S tether.py -- PROGRAM ARGS...

The tether makes itself a child subreaper (PR_SET_CHILD_SUBREAPER: whatever the program's tree double-forks or
`setsid`s away is reparented to the tether, not to init) and asks the kernel for a signal when its parent dies
(PR_SET_PDEATHSIG). It then forks and execs the program with its environment unchanged. When the program exits, the
tether kills what is left of the tree and exits with the program's status; when the runner dies first, the
parent-death signal wakes it and it SIGKILLs the whole tree (found through /proc's parent links, which the subreaper
keeps complete), then exits. The tether's own death (SIGKILL) is covered by the runner, itself a subreaper while the
program runs: the tree is reparented to the runner, which kills it.

Standalone on purpose (stdlib only, run with `-I -S`): the program's environment, PYTHONPATH included, is not the
tether's to trust, and it must start the same without Kickoff's packages installed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from types import FrameType
from typing import Final

PR_SET_PDEATHSIG: Final = 1
PR_SET_CHILD_SUBREAPER: Final = 36
PARENT_DEATH_SIGNAL: Final = signal.SIGUSR1
"""Caught, never the default action: the tether must live long enough to kill the tree."""
FORWARD_IGNORED: Final = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
"""The runner signals every process of the tree itself; the tether only outlives those signals (caught, so the
program's exec resets them to their defaults)."""
KILL_ROUNDS: Final = 2000
ORPHANED_EXIT: Final = 128 + signal.SIGKILL


class Orphaned(Exception):
    """The tether's parent (the runner) died."""


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option})")


def _children_table() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as file:
                fields = file.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if len(fields) >= 2 and fields[0] not in (b"Z", b"X"):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _descendants(root: int) -> set[int]:
    children = _children_table()
    found: set[int] = set()
    stack = list(children.get(root, ()))
    while stack:
        pid = stack.pop()
        if pid not in found:
            found.add(pid)
            stack.extend(children.get(pid, ()))
    return found


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_tree() -> None:
    """SIGKILL every live descendant of this process until none is left; reap them."""
    me = os.getpid()
    for _ in range(KILL_ROUNDS):
        alive = _descendants(me)
        if not alive:
            break
        for pid in alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        _reap()
        time.sleep(0.005)
    _reap()


def _orphaned(signum: int, frame: FrameType | None) -> None:
    raise Orphaned


def _ignore(signum: int, frame: FrameType | None) -> None:
    return None


def _exit_status(status: int) -> int:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)  # die as the program died, so the runner sees the same status
        return 128 + sig
    return os.waitstatus_to_exitcode(status)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "--":
        print("usage: tether.py -- PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    program = argv[1:]
    parent = os.getppid()
    signal.signal(PARENT_DEATH_SIGNAL, _orphaned)
    for sig in FORWARD_IGNORED:
        signal.signal(sig, _ignore)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, PARENT_DEATH_SIGNAL)
    try:
        if os.getppid() != parent:  # the parent died before the signal was asked for
            raise Orphaned
        pid = os.fork()
        if pid == 0:
            try:
                os.execvp(program[0], program)  # noqa: S606 - argv as given, never through a shell
            except OSError as exc:
                os.write(2, f"{program[0]}: {exc.strerror or exc}\n".encode())
            os._exit(127)
        while True:
            try:
                ended, status = os.waitpid(-1, 0)
            except ChildProcessError:
                return 0
            if ended == pid:
                break
            # an orphan of the program's tree, reparented here and reaped
        signal.signal(PARENT_DEATH_SIGNAL, _ignore)
        kill_tree()
        return _exit_status(status)
    except Orphaned:
        signal.signal(PARENT_DEATH_SIGNAL, _ignore)
        kill_tree()
        return ORPHANED_EXIT


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
