"""Running an untrusted program: a deadline, cancellation, bounded output, and nothing left alive afterwards.

The program runs in a new session at the lowest CPU priority (bot.runner_program.priority), sandboxed
(bot.runner_program.sandbox: bwrap, its own PID namespace) or not. Either way, when `run_process` returns every
process it started is gone. Sandboxed, the kernel guarantees it: when the PID namespace's init dies, everything in
it dies. Unsandboxed, the caller is made a child subreaper for the call, so a process that leaves the session or
double-forks (`setsid env -i sh -c 'sleep 300' &`) is reparented to it instead of to init, and the whole tree (found
through /proc's parent links, not process groups or the environment) is killed until nothing of it is left.

That clean-up needs the runner alive. So that a runner killed with SIGKILL takes its agent along too, the program is
never the runner's own child: sandboxed, bwrap runs with `--die-with-parent` (and its PID namespace takes every
process in it along); unsandboxed, it runs under the tether (bot.runner_program.tether), which kills the program's
whole tree when the runner dies."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from bot.runner_program import priority, tether
from bot.runner_program.sandbox import SandboxError, SandboxPolicy, prepare

KILL_GRACE_SECONDS: Final = 5.0
"""Between SIGTERM and SIGKILL: time for an agent to exit cleanly."""
POLL_SECONDS: Final = 0.05
KILL_ROUNDS: Final = 2000
"""Bound on kill-and-rescan rounds; a fork bomb is outrun long before (each round kills all it finds)."""
MARKER_ENV: Final = "KICKOFF_RUN_MARKER"
"""A label the runner sets in the agent's environment; not a secret, and no longer what finds its processes."""
PR_SET_CHILD_SUBREAPER: Final = 36
PR_GET_CHILD_SUBREAPER: Final = 37
TETHER: Final = str(Path(tether.__file__).resolve())


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
    idle: bool = False  # stopped by the no-progress watchdog (then timed_out too)
    over_budget: float | None = None  # stopped by the cost meter: the cost the agent had reported


WATCH_ENTRY_LIMIT: Final = 200_000
"""Bound on the entries one progress scan of the watched directories looks at (a huge checkout stays cheap)."""


def tree_signature(roots: Sequence[Path]) -> tuple[int, int]:
    """(entries, latest mtime in ns) under `roots`, not following symbolic links: it changes when a file is
    written, added or removed."""
    count = latest = 0
    stack = [str(root) for root in roots]
    while stack and count < WATCH_ENTRY_LIMIT:
        top = stack.pop()
        try:
            with os.scandir(top) as entries:
                for entry in entries:
                    count += 1
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    latest = max(latest, info.st_mtime_ns)
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue
    return count, latest


@dataclass
class Watchdog:
    """No progress: nothing printed (to any of `outputs`) and nothing changed under `watch` for `idle_seconds`.

    Output whose every line only says the agent is waiting (`waiting`: a CLI retrying an endpoint it cannot reach,
    printing "Reconnecting... 3/5" again and again) is not progress either."""

    idle_seconds: float
    watch: Sequence[Path]
    outputs: Sequence[TailBuffer]
    waiting: Callable[[str], bool] | None = None

    def __post_init__(self) -> None:
        self.scan_every = min(30.0, max(0.5, self.idle_seconds / 10))
        now = time.monotonic()
        self._printed = self._output_total()
        self._tree = tree_signature(self.watch)
        self._last_progress = self._last_scan = now

    def _output_total(self) -> int:
        return sum(output.total for output in self.outputs)

    def stalled(self, now: float) -> bool:
        printed = self._output_total()
        if printed != self._printed:
            if not self._only_waiting(printed - self._printed):
                self._last_progress = now
            self._printed = printed
        if now - self._last_scan >= self.scan_every:
            self._last_scan = now
            tree = tree_signature(self.watch)
            if tree != self._tree:
                self._tree, self._last_progress = tree, now
        return now - self._last_progress >= self.idle_seconds

    def _only_waiting(self, new_bytes: int) -> bool:
        if self.waiting is None or not self.outputs:
            return False
        text = self.outputs[0].text(note=False)
        if new_bytes > len(text):
            return False  # more than the tail holds: whatever it was, it was a lot of output
        lines = [line for line in text[len(text) - new_bytes:].splitlines() if line.strip()]
        return bool(lines) and all(self.waiting(line) for line in lines)


COST_OVERLAP: Final = 4096
"""How far back a cost scan starts before the new output, so a cost line split across two reads is still found."""


@dataclass
class CostMeter:
    """The agent's spending, from what it prints as it goes (`read`: the latest cost in a chunk of output, or None):
    `over()` is that cost once it passes `limit`. Only output new since the last look is read."""

    limit: float
    output: TailBuffer
    read: Callable[[str], float | None]

    def __post_init__(self) -> None:
        self._seen = self.output.total
        self.cost: float | None = None

    def over(self) -> float | None:
        total = self.output.total
        if total == self._seen:
            return None
        new = total - self._seen
        self._seen = total
        text = self.output.text(note=False)
        found = self.read(text[max(0, len(text) - new - COST_OVERLAP):])
        if found is not None:
            self.cost = found
        return self.cost if self.cost is not None and self.cost > self.limit else None


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



_libc: ctypes.CDLL | None = None
_reaper_lock = threading.Lock()
_reaper_users = 0
_reaper_was_set = False


def _prctl(option: int, value: int) -> int:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if option == PR_GET_CHILD_SUBREAPER:
        out = ctypes.c_int(0)
        if _libc.prctl(option, ctypes.byref(out), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_GET_CHILD_SUBREAPER)")
        return out.value
    if _libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    return 0


@contextlib.contextmanager
def child_subreaper() -> Iterator[None]:
    """Make this process the reaper of its orphaned descendants for the block (as it was before, after)."""
    global _reaper_users, _reaper_was_set
    with _reaper_lock:
        if _reaper_users == 0:
            _reaper_was_set = bool(_prctl(PR_GET_CHILD_SUBREAPER, 0))
            if not _reaper_was_set:
                _prctl(PR_SET_CHILD_SUBREAPER, 1)
        _reaper_users += 1
    try:
        yield
    finally:
        with _reaper_lock:
            _reaper_users -= 1
            if _reaper_users == 0 and not _reaper_was_set:
                _prctl(PR_SET_CHILD_SUBREAPER, 0)


def process_table() -> dict[int, tuple[int, str]]:
    """Every process on the host: pid → (parent pid, state letter)."""
    table: dict[int, tuple[int, str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as file:
                stat = file.read()
        except OSError:
            continue
        fields = stat.rpartition(b")")[2].split()  # the command name may hold spaces and parentheses
        if len(fields) >= 2:
            table[int(entry.name)] = (int(fields[1]), fields[0].decode())
    return table


def descendants(table: Mapping[int, tuple[int, str]], roots: set[int]) -> set[int]:
    """`roots` and everything below them in `table`."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    stack = [root for root in roots if root in table]
    while stack:
        pid = stack.pop()
        if pid in found:
            continue
        found.add(pid)
        stack.extend(children.get(pid, ()))
    return found


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            return int(file.read().rpartition(b")")[2].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _signal(pid: int, parent: int, sig: signal.Signals) -> None:
    """Signal `pid` only if it is still the child of `parent` seen in the scan (its pid was not reused since)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except OSError:  # no pidfd (old kernel): the parent check narrows the window, it cannot close it
        if _parent(pid) == parent:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        return
    try:
        if _parent(pid) == parent:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                signal.pidfd_send_signal(pidfd, sig)
    finally:
        os.close(pidfd)


class _Tree:
    """The processes a program started: below its leader, or orphans reparented to us since it started."""

    def __init__(self, leader: int, before: set[int]) -> None:
        self.leader = leader
        self.before = before  # our children before the program started: never its
        self.me = os.getpid()

    def scan(self) -> tuple[dict[int, tuple[int, str]], set[int], set[int]]:
        """(table, members, orphans adopted by us)."""
        table = process_table()
        adopted = {pid for pid, (ppid, _) in table.items()
                   if ppid == self.me and pid != self.leader and pid not in self.before}
        members = descendants(table, {self.leader} | adopted)
        members.discard(self.me)
        return table, members, adopted

    def signal(self, sig: signal.Signals, skip: Set[int] = frozenset()) -> None:
        table, members, _ = self.scan()
        for pid in members - skip:
            if table[pid][1] not in ("Z", "X"):
                _signal(pid, table[pid][0], sig)

    def kill(self) -> None:
        """SIGKILL every member until none is left alive; reap the orphans that died as our children."""
        for _ in range(KILL_ROUNDS):
            table, members, adopted = self.scan()
            for pid in adopted:
                if table[pid][1] in ("Z", "X"):
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, os.WNOHANG)
            alive = [pid for pid in members if table[pid][1] not in ("Z", "X")]
            if not alive:
                return
            for pid in alive:
                _signal(pid, table[pid][0], signal.SIGKILL)
            time.sleep(POLL_SECONDS / 5)

    def sandbox_inits(self) -> set[int]:
        """bwrap itself and the namespace's init (its child): spared by SIGTERM, so the agent gets its grace."""
        table, _, _ = self.scan()
        return {self.leader} | {pid for pid, (ppid, _) in table.items() if ppid == self.leader}


def _children_of_me() -> set[int]:
    me = os.getpid()
    return {pid for pid, (ppid, _) in process_table().items() if ppid == me}


def _exited(pid: int) -> bool:
    """Whether the child has exited, without reaping it: its pid stays reserved while its tree is killed."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _missing_program(program: str, env: Mapping[str, str], cwd: Path) -> str | None:
    """Why `program` cannot be started (as the exec would say), checked here since the tether is what execs it."""
    if "/" in program:
        path = Path(program) if Path(program).is_absolute() else cwd / program
        if not path.is_file():
            return f"{program}: No such file or directory"
        return None if os.access(path, os.X_OK) else f"{program}: Permission denied"
    search = os.pathsep.join(os.get_exec_path(dict(env)))
    return None if shutil.which(program, path=search) is not None else f"{program}: No such file or directory"


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
    sandbox: SandboxPolicy | None = None,
    tethered: bool = True,
    watchdog: Watchdog | None = None,
    meter: CostMeter | None = None,
) -> ProcessResult:
    """Run argv (no shell) with exactly `env`, in `sandbox` when given; on deadline or cancel, SIGTERM its tree, then
    SIGKILL it. With a `watchdog`, a program that makes no progress for its idle time is stopped the same way (a
    timeout, `idle` set); with a `meter`, one whose printed cost passes its budget too (`over_budget` set, not a
    timeout). When this returns, no process the program started is alive; unsandboxed and `tethered`,
    none outlives this process either, even killed with SIGKILL.

    Assumes nothing else in this process starts child processes while it runs (true of the runner program).
    """
    started = time.monotonic()
    with child_subreaper():
        return _run(argv, cwd=cwd, env=env, timeout=timeout, cancel=cancel, stdout=stdout, stderr=stderr,
                    stdin=stdin, grace=grace, sandbox=sandbox, tethered=tethered, started=started,
                    watchdog=watchdog, meter=meter)


def _run(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float, cancel: threading.Event,
         stdout: Sequence[TailBuffer], stderr: Sequence[TailBuffer], stdin: Path | None, grace: float,
         sandbox: SandboxPolicy | None, tethered: bool, started: float, watchdog: Watchdog | None = None,
         meter: CostMeter | None = None) -> ProcessResult:
    command, environment = list(argv), dict(env)
    pass_fds: tuple[int, ...] = ()
    args_fd: int | None = None
    if sandbox is not None:
        try:
            prepared = prepare(sandbox, argv, env, cwd)
        except SandboxError as exc:
            return ProcessResult(exit_code=None, start_error=str(exc))
        except OSError as exc:
            return ProcessResult(exit_code=None, start_error=f"sandbox: {exc.strerror or exc}")
        # bwrap's own environment stays empty: the program's reaches it through --setenv in the memfd.
        command, environment, args_fd = prepared.argv, {}, prepared.fd
        pass_fds = (prepared.fd,)
    elif tethered:
        missing = _missing_program(argv[0], env, cwd)
        if missing is not None:
            return ProcessResult(exit_code=None, start_error=missing)
        # -I -S: the tether reads nothing of the program's environment (PYTHONPATH, PYTHONSTARTUP) for itself.
        command = [sys.executable, "-I", "-S", TETHER, "--", *argv]
    before = _children_of_me()
    stdin_file = None
    try:
        stdin_file = stdin.open("rb") if stdin is not None else None
        proc = subprocess.Popen(
            command, cwd=cwd, env=environment, stdin=stdin_file or subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True, close_fds=True, pass_fds=pass_fds,
        )
    except OSError as exc:
        return ProcessResult(exit_code=None, start_error=f"{argv[0]}: {exc.strerror or exc}")
    else:
        # Its own session, so its own autogroup: down to the lowest CPU priority at once (the sandbox stays in it).
        priority.lower_runner(proc.pid, what="agent")
    finally:
        if stdin_file is not None:
            stdin_file.close()
        if args_fd is not None:
            os.close(args_fd)
    assert proc.stdout is not None
    assert proc.stderr is not None
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, stdout), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, stderr), daemon=True),
    ]
    for pump in pumps:
        pump.start()
    tree = _Tree(proc.pid, before)
    deadline = started + timeout
    timed_out = cancelled = idle = False
    over_budget: float | None = None
    while not _exited(proc.pid):
        now = time.monotonic()
        idle = not cancel.is_set() and now < deadline and watchdog is not None and watchdog.stalled(now)
        if not (cancel.is_set() or now >= deadline or idle) and meter is not None:
            over_budget = meter.over()
        if cancel.is_set() or now >= deadline or idle or over_budget is not None:
            cancelled = cancel.is_set()
            timed_out = not cancelled and over_budget is None
            tree.signal(signal.SIGTERM, skip=tree.sandbox_inits() if sandbox is not None else set())
            grace_end = time.monotonic() + grace
            while not _exited(proc.pid) and time.monotonic() < grace_end:
                time.sleep(POLL_SECONDS)
            break
        time.sleep(POLL_SECONDS)
    # The leader is a zombie or still running, so its pid cannot have been reused: the tree is still ours.
    tree.kill()
    exit_code = proc.wait()
    for pump in pumps:
        pump.join(timeout=5)
    stopped = timed_out or cancelled or over_budget is not None
    return ProcessResult(
        exit_code=None if stopped else exit_code,
        timed_out=timed_out,
        cancelled=cancelled,
        duration_seconds=time.monotonic() - started,
        idle=idle and timed_out,
        over_budget=over_budget if not cancelled else None,
    )
