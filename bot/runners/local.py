"""The local backend, Kickoff's embedded default: one `kickoff run-agent` process per run, in a throw-away workspace.

Each runner gets a fresh directory (the spec file inside it, mode 0600), its own session and process group (so a
cancel or a timeout stops the agent and everything it started), and an environment built from scratch: a few
harmless variables, the agent's pass-through names (only those on the operator's `KICKOFF_AGENT_ENV`, checked again
here where the values are copied), and the run's two secrets. Nothing of Kickoff's own settings (App key, webhook
secret, database URL) reaches it, and no secret is written to a file or to argv.

The runner shares Kickoff's user and machine, so its agent phase must run in the bubblewrap sandbox: every spec
this backend writes says `sandbox: required`, and `check_sandbox` at start-up refuses the local backend where the
sandbox does not work, unless the operator opted out with `KICKOFF_UNSAFE_NO_SANDBOX` (then `off`, said loudly).

Exits are watched through a pidfd on the event loop, never by a blocking wait. The runner processes do not depend
on Kickoff: when Kickoff stops it only stops watching, and its next start-up re-attaches to the runners still alive
(`follow`) or collects what the dead ones left behind (`collect`).

Every workspace holds a `runner.json`: who owns it (host, pid and start time of the Kickoff process that started or
re-attached to the runner), the run id, and the runner's pid and start time. `sweep` (at start-up after recovery, and
every `KICKOFF_RUNNER_SWEEP_SECONDS`) kills the process trees of the runners no live run holds and removes their
workspaces: a workspace is held while its run is not final in the database (or this process watches it). A live run
whose owner died is never swept: the worker that takes the run over re-attaches to its runner, collects its result or
ends the run (`bot.runs.following`), and only then is the workspace unheld. The agent's own processes die with their
runner anyway (bubblewrap's `--die-with-parent`, or the tether when unsandboxed: `bot.runner_program.tether`); the
sweep also kills whatever still runs in the workspace.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

import bot
from bot import messages
from bot.config.model import DEFAULT_AGENT_ENV, is_kickoff_env
from bot.logs import redact
from bot.runner_program import priority
from bot.runner_program.process import descendants, process_table
from bot.runner_program.sandbox import BWRAP_ENV, DEFAULT_BWRAP, probe_here
from bot.runs.backend import RUNNER_SECRETS, ExitHandler, RunnerError, RunnerExit
from bot.runspec import RunResult, RunSpec, SandboxMode
from bot.settings import SettingsError

log = logging.getLogger(__name__)

WORKSPACE_PREFIX: Final = "kickoff-run-"
SPEC_FILE: Final = "spec.json"
RESULT_FILE: Final = "result.json"
LOG_FILE: Final = "runner.log"
OWNER_FILE: Final = "runner.json"
SWEEP_GRACE_SECONDS: Final = 60.0
"""A workspace younger than this, whose owner lives, is never swept: its run may have been claimed after the sweep
read which runs are live."""
SWEEP_KILL_ROUNDS: Final = 200
DEFAULT_COMMAND: Final = (sys.executable, "-m", "bot", "run-agent")
MAX_RESULT_BYTES: Final = 4 * 1024 * 1024
LOG_TAIL_BYTES: Final = 4096
POLL_SECONDS: Final = 0.1  # only where pidfd is unavailable
# The only variables of Kickoff's own environment a runner inherits; agents get theirs by name (`agents.*.env`).
PASS_ENV: Final = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "VIRTUAL_ENV",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
)
_SUCCESSFUL: Final = ("succeeded", "no_changes")


class _Popen(subprocess.Popen[bytes]):
    """A Popen that can be let go while its process lives on (Kickoff stopping without stopping the runners)."""

    detached = False

    def __del__(self) -> None:
        if not self.detached:
            super().__del__()


@dataclass(eq=False)
class _Runner:
    run_id: int
    pid: int
    workspace: Path
    ref: str
    deadline: float  # event-loop time
    exited: asyncio.Future[None]
    popen: _Popen | None  # None for a runner re-attached after a restart (not our child)
    secrets: tuple[str, ...] = field(repr=False)
    watcher: asyncio.Task[None] | None = None
    pidfd: int | None = None
    poller: asyncio.Task[None] | None = None
    cancelled: bool = False
    timed_out: bool = False


def parse_ref(ref: str) -> tuple[str, int, Path] | None:
    """`host:pid:workspace` → its parts; None when `ref` is not a local runner's."""
    host, _, rest = ref.partition(":")
    pid, _, workspace = rest.partition(":")
    if not host or not pid.isdigit() or not workspace.startswith("/"):
        return None
    return host, int(pid), Path(workspace)


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """A process as it can be told apart from a later one with the same pid: its host, pid and start time."""

    host: str
    pid: int
    started: int  # clock ticks after boot (/proc/PID/stat, field 22)

    @classmethod
    def of(cls, pid: int, host: str) -> ProcessIdentity | None:
        started = start_time(pid)
        return None if started is None else cls(host, pid, started)

    def alive(self, here: str) -> bool:
        """Whether this very process still runs; a process of another host counts as alive (it cannot be seen)."""
        return self.host != here or start_time(self.pid) == self.started

    def as_json(self) -> dict[str, object]:
        return {"host": self.host, "pid": self.pid, "started": self.started}

    @classmethod
    def from_json(cls, data: object) -> ProcessIdentity | None:
        if not isinstance(data, dict):
            return None
        host, pid, started = data.get("host"), data.get("pid"), data.get("started")
        if isinstance(host, str) and isinstance(pid, int) and isinstance(started, int):
            return cls(host, pid, started)
        return None


def start_time(pid: int) -> int | None:
    """When `pid` started (clock ticks after boot), or None when no such live process (a zombie is not live)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            fields = file.read().rpartition(b")")[2].split()
    except OSError:
        return None
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


@dataclass(frozen=True, slots=True)
class WorkspaceOwner:
    """`runner.json`: who owns a workspace, and which runner works in it."""

    run_id: int
    owner: ProcessIdentity | None
    runner: ProcessIdentity | None = None
    kept: bool = False

    def dump(self) -> str:
        return json.dumps({
            "run_id": self.run_id,
            "owner": self.owner.as_json() if self.owner else None,
            "runner": self.runner.as_json() if self.runner else None,
            "kept": self.kept,
        })

    @classmethod
    def read(cls, workspace: Path) -> WorkspaceOwner | None:
        try:
            data = json.loads((workspace / OWNER_FILE).read_bytes()[:65536])
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("run_id"), int):
            return None
        return cls(data["run_id"], ProcessIdentity.from_json(data.get("owner")),
                   ProcessIdentity.from_json(data.get("runner")), data.get("kept") is True)

    def write(self, workspace: Path) -> None:
        """Atomically (a reader sees the old file or the new one, whole)."""
        temporary = workspace / f".{OWNER_FILE}.{os.getpid()}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(self.dump())
        os.replace(temporary, workspace / OWNER_FILE)


def workspace_run_id(workspace: Path) -> int | None:
    """The run id in a workspace's name (`kickoff-run-<id>-<random>`)."""
    if not workspace.name.startswith(WORKSPACE_PREFIX):
        return None
    head = workspace.name[len(WORKSPACE_PREFIX):].partition("-")[0]
    return int(head) if head.isdigit() else None


def _processes_in(workspace: Path, runner: ProcessIdentity | None, host: str) -> set[int]:
    """The live processes of a workspace: its runner (if still that very process), whatever names its spec file, and
    whatever has its working directory inside it; with all their descendants."""
    table = process_table()
    roots: set[int] = set()
    if runner is not None and runner.host == host and runner.alive(host):
        roots.add(runner.pid)
    spec = str(workspace / SPEC_FILE).encode()
    inside = str(workspace)
    me = os.getpid()
    for pid, (_, state) in table.items():
        if pid == me or state in ("Z", "X"):
            continue
        try:
            if spec in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
                roots.add(pid)
                continue
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if cwd == inside or cwd.startswith(inside + "/"):
            roots.add(pid)
    members = descendants(table, roots)
    members.discard(me)
    return {pid for pid in members if table[pid][1] not in ("Z", "X")}


def kill_workspace_processes(workspace: Path, runner: ProcessIdentity | None, host: str) -> int:
    """SIGKILL every process of the workspace until none is left; how many were found."""
    killed: set[int] = set()
    for _ in range(SWEEP_KILL_ROUNDS):
        alive = _processes_in(workspace, runner, host)
        if not alive:
            break
        for pid in alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        killed |= alive
        time.sleep(0.01)
    return len(killed)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)


def _proc_alive_and_ours(pid: int, run_id: int, workspace: Path) -> bool:
    """Whether `pid` is a live (not zombie) runner of `run_id`: its argv names this run's spec file."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rpartition(")")[2].split()[:1]
    if state == ["Z"] or state == ["X"]:
        return False
    args = [arg.decode(errors="replace") for arg in cmdline.split(b"\0")]
    return workspace.name.startswith(f"{WORKSPACE_PREFIX}{run_id}-") and str(workspace / SPEC_FILE) in args


def read_result(workspace: Path, run_id: int) -> RunResult | None:
    """The runner's result file, if it wrote a valid one for this run."""
    path = workspace / RESULT_FILE
    try:
        if path.stat().st_size > MAX_RESULT_BYTES:
            log.warning("run %s: the result file is over %d bytes; ignored", run_id, MAX_RESULT_BYTES)
            return None
        result = RunResult.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError) as exc:
        log.warning("run %s: unreadable result file (%s)", run_id, type(exc).__name__)
        return None
    if result.run_id != run_id:
        log.warning("run %s: the result file is for run %s; ignored", run_id, result.run_id)
        return None
    return result


def check_sandbox(bwrap: str = DEFAULT_BWRAP, *, unsafe_no_sandbox: bool = False) -> SandboxMode:
    """At start-up, before the local backend is offered: the sandbox mode its runs get.

    `required` when bubblewrap builds a sandbox here; `off` when it does not and the operator set
    `KICKOFF_UNSAFE_NO_SANDBOX` (logged as a warning on every start); otherwise `SettingsError` in one line.
    """
    if unsafe_no_sandbox:
        log.warning(messages.SANDBOX_STARTUP_UNSAFE)
        return "off"
    result = probe_here(bwrap)
    if not result.ok:
        raise SettingsError(messages.SANDBOX_STARTUP_REFUSED.format(reason=result.reason))
    return "required"


def secret_paths(*, database_url: str, private_key_path: Path | None, cwd: Path | None = None) -> tuple[str, ...]:
    """Kickoff's own files a local agent must never see, as absolute paths: `.env`, the SQLite database, the key."""
    base = (cwd or Path.cwd()).resolve()
    paths = [base / ".env"]
    try:
        url = make_url(database_url)
    except ArgumentError:
        url = None
    if url is not None and url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        database = (base / str(url.database)).resolve()
        paths += [database, *(database.with_name(database.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]
    if private_key_path is not None:
        paths.append((base / private_key_path).resolve())
    return tuple(dict.fromkeys(str(path) for path in paths))


def _log_tail(workspace: Path, secrets: Sequence[str]) -> str:
    try:
        with (workspace / LOG_FILE).open("rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - LOG_TAIL_BYTES))
            return redact(file.read().decode(errors="replace"), secrets)
    except OSError:
        return ""


class LocalRunner:
    """Runs each runner as a local subprocess. `command` is the runner program's argv (tests use a fake one)."""

    name = "local"

    def __init__(
        self,
        *,
        command: Sequence[str] = DEFAULT_COMMAND,
        workspace_root: Path | None = None,
        keep_workspaces: bool = False,
        grace_seconds: float = 10.0,
        extra_env: Mapping[str, str] | None = None,
        host: str | None = None,
        sandbox: SandboxMode = "required",
        bwrap: str | None = None,
        hide: Sequence[str] = (),
        agent_env: frozenset[str] = DEFAULT_AGENT_ENV,
        sweep_grace: float = SWEEP_GRACE_SECONDS,
    ) -> None:
        if not command:
            raise ValueError("the runner command is empty")
        self.command = tuple(command)
        self.sandbox: SandboxMode = sandbox
        self.bwrap = bwrap
        self.hide = tuple(hide)
        self.agent_env = agent_env
        self.root = (workspace_root or Path(tempfile.gettempdir())).resolve()
        self.keep_workspaces = keep_workspaces
        self.grace_seconds = grace_seconds
        self.extra_env = dict(extra_env or {})
        self.host = host or socket.gethostname()
        self.sweep_grace = sweep_grace
        self.owner = ProcessIdentity.of(os.getpid(), self.host)
        self._runners: dict[int, _Runner] = {}
        # Runs whose workspace this process handles, from before it exists until it is removed (or let go).
        self._mine: set[int] = set()
        self._on_exit: ExitHandler | None = None

    def bind(self, on_exit: ExitHandler) -> None:
        self._on_exit = on_exit

    def running(self) -> Mapping[int, str]:
        return {run_id: runner.ref for run_id, runner in self._runners.items()}

    def owns(self, ref: str) -> bool:
        parsed = parse_ref(ref)
        return parsed is not None and parsed[0] == self.host

    async def start(self, spec: RunSpec, secrets: Mapping[str, str], *, deadline: float) -> str:
        unknown = set(secrets) - RUNNER_SECRETS
        if unknown:
            raise ValueError(f"not runner secrets: {sorted(unknown)}")
        if spec.run_id in self._runners:
            raise RunnerError(f"run {spec.run_id} already has a runner here")
        # The sandbox is this backend's decision, never the spec builder's: the runner shares Kickoff's machine.
        spec = spec.model_copy(update={"sandbox": self.sandbox,
                                       "sandbox_hide": tuple(dict.fromkeys((*spec.sandbox_hide, *self.hide)))})
        env = self._environment(spec, secrets)
        self._mine.add(spec.run_id)
        try:
            popen, workspace = await asyncio.to_thread(self._spawn, spec, env)
        except BaseException:
            self._mine.discard(spec.run_id)
            raise
        loop = asyncio.get_running_loop()
        runner = _Runner(
            run_id=spec.run_id,
            pid=popen.pid,
            workspace=workspace,
            ref=f"{self.host}:{popen.pid}:{workspace}",
            deadline=loop.time() + deadline,
            exited=loop.create_future(),
            popen=popen,
            secrets=tuple(secrets.values()),
        )
        self._runners[spec.run_id] = runner
        self._watch_exit(runner, None)
        runner.watcher = asyncio.create_task(self._follow(runner), name=f"runner-{spec.run_id}")
        log.info("run %s: runner started (pid %s, workspace %s)", spec.run_id, popen.pid, workspace)
        return runner.ref

    async def follow(self, run_id: int, ref: str, *, deadline: float) -> bool:
        parsed = parse_ref(ref)
        if parsed is None or parsed[0] != self.host:
            return False
        if run_id in self._runners:
            return True
        _, pid, workspace = parsed
        pidfd: int | None = None
        try:
            pidfd = os.pidfd_open(pid)  # pins the process, so the checks below are about this very one
        except ProcessLookupError:
            return False
        except OSError:
            pidfd = None
        if not await asyncio.to_thread(_proc_alive_and_ours, pid, run_id, workspace):
            if pidfd is not None:
                os.close(pidfd)
            return False
        loop = asyncio.get_running_loop()
        runner = _Runner(
            run_id=run_id, pid=pid, workspace=workspace, ref=ref, deadline=loop.time() + deadline,
            exited=loop.create_future(), popen=None, secrets=(),
        )
        self._runners[run_id] = runner
        self._mine.add(run_id)
        # This process owns the workspace now: another process's sweep must not take its previous owner's death
        # for the runner being unheld.
        with contextlib.suppress(OSError):
            await asyncio.to_thread(
                WorkspaceOwner(run_id, self.owner, ProcessIdentity.of(pid, self.host)).write, workspace)
        self._watch_exit(runner, pidfd)
        runner.watcher = asyncio.create_task(self._follow(runner), name=f"runner-{run_id}")
        log.info("run %s: re-attached to its runner (pid %s)", run_id, pid)
        return True

    async def collect(self, run_id: int, ref: str) -> RunResult | None:
        parsed = parse_ref(ref)
        if parsed is None:
            return None
        return await asyncio.to_thread(read_result, parsed[2], run_id)

    async def find(self, run_id: int) -> str | None:
        """The workspace of `run_id` (by its name) whose runner.json names a runner: the one whose runner still
        lives, else the newest; its ref."""
        if run_id in self._runners:
            return self._runners[run_id].ref
        return await asyncio.to_thread(self._find, run_id)

    def _find(self, run_id: int) -> str | None:
        prefix = f"{WORKSPACE_PREFIX}{run_id}-"
        try:
            entries = [Path(entry.path) for entry in os.scandir(self.root)
                       if entry.name.startswith(prefix) and entry.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return None
        found: list[tuple[bool, float, str]] = []
        for workspace in entries:
            meta = WorkspaceOwner.read(workspace)
            if meta is None or meta.run_id != run_id or meta.runner is None or meta.runner.host != self.host:
                continue
            try:
                mtime = (workspace / OWNER_FILE).stat().st_mtime
            except OSError:
                continue
            found.append((meta.runner.alive(self.host), mtime, f"{self.host}:{meta.runner.pid}:{workspace}"))
        return max(found)[2] if found else None

    async def cancel(self, run_id: int) -> None:
        runner = self._runners.get(run_id)
        if runner is None:
            return
        if not runner.timed_out:
            runner.cancelled = True
        await self._terminate(runner)
        if runner.watcher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(runner.watcher)

    async def cleanup(self, run_id: int, ref: str) -> None:
        parsed = parse_ref(ref)
        if parsed is None:
            return
        await self._remove(run_id, parsed[2])

    async def sweep(self, known: Collection[int]) -> list[str]:
        """Kill the runners no live run holds and remove their workspaces; their refs.

        `known`: the runs not final in the database that name this backend. A workspace is held while this process
        handles its run, or while its run is in `known`, whether its owner (runner.json) lives or not (a dead
        owner's runs are taken over by recovery, which needs their runners alive); a workspace kept by
        `KICKOFF_KEEP_WORKSPACES` is left alone, and so is a young one of a live owner (its run may have been claimed
        after `known` was read). Everything else goes: the processes in it, then the directory.
        """
        return await asyncio.to_thread(self._sweep, frozenset(known))

    def _sweep(self, known: frozenset[int]) -> list[str]:
        removed: list[str] = []
        try:
            entries = [Path(entry.path) for entry in os.scandir(self.root)
                       if entry.name.startswith(WORKSPACE_PREFIX) and entry.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return removed
        now = time.time()
        for workspace in entries:
            run_id = workspace_run_id(workspace)
            if run_id is None or run_id in self._mine:
                continue
            meta = WorkspaceOwner.read(workspace)
            try:
                age = now - (workspace / OWNER_FILE if meta is not None else workspace).stat().st_mtime
            except OSError:
                continue
            if meta is not None and meta.kept:
                continue
            owner = meta.owner if meta is not None else None
            owner_alive = owner is not None and owner.alive(self.host)
            if run_id in known:
                # A live run: watched by its owner, or, its owner dead, re-attached, collected or ended by the
                # recovery of whichever worker takes it over. Killed here, its work would be lost.
                continue
            if owner_alive and age < self.sweep_grace:
                continue
            if meta is None and age < self.sweep_grace:
                continue  # being created (runner.json comes first), or left by an older version: looked at later
            if owner is not None and owner.host != self.host:
                continue  # another host's workspace on a shared disk: that host sweeps it
            if run_id in self._mine:  # started while this pass ran
                continue
            runner = meta.runner if meta is not None else None
            killed = kill_workspace_processes(workspace, runner, self.host)
            if workspace.parent == self.root:
                shutil.rmtree(workspace, ignore_errors=True)
            ref = f"{self.host}:{runner.pid if runner else 0}:{workspace}"
            why = "its run is over or unknown"
            log.info("run %s: removed the workspace %s (%s; %d process(es) killed)", run_id, workspace, why, killed)
            removed.append(ref)
        return removed

    async def aclose(self) -> None:
        runners = list(self._runners.values())
        for runner in runners:
            # A runner that has exited is settled and cleaned up first; the others are only let go.
            if runner.watcher is not None and not runner.exited.done():
                runner.watcher.cancel()
        for runner in runners:
            if runner.watcher is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await runner.watcher
            if runner.run_id in self._runners:  # cancelled before it ever ran
                self._detach(runner)

    def _environment(self, spec: RunSpec, secrets: Mapping[str, str]) -> dict[str, str]:
        env = {name: value for name in PASS_ENV if (value := os.environ.get(name)) is not None}
        for name in spec.agent.env:
            if name not in self.agent_env or is_kickoff_env(name):
                log.warning("run %s: not passing %s to the agent: it is not on KICKOFF_AGENT_ENV", spec.run_id, name)
                continue
            if (value := os.environ.get(name)) is not None:
                env[name] = value
        if self.bwrap is not None:
            env[BWRAP_ENV] = self.bwrap
        if self.command[1:3] == ("-m", "bot"):
            # The runner imports the very code this process runs, installed or not.
            env["PYTHONPATH"] = str(Path(bot.__file__).resolve().parent.parent)
        env.update(self.extra_env)
        env.update(secrets)
        return env

    def _spawn(self, spec: RunSpec, env: dict[str, str]) -> tuple[_Popen, Path]:
        """Runs in a worker thread: workspace, spec file, process."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            workspace = Path(tempfile.mkdtemp(prefix=f"{WORKSPACE_PREFIX}{spec.run_id}-", dir=self.root))
        except OSError as exc:
            raise RunnerError(f"could not create a workspace ({exc.strerror or type(exc).__name__})") from None
        try:
            WorkspaceOwner(spec.run_id, self.owner).write(workspace)
            spec_path = workspace / SPEC_FILE
            _write_private(spec_path, spec.model_dump_json(indent=2))
            log_fd = os.open(workspace / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                argv = [*self.command, "--spec", str(spec_path), "--result", str(workspace / RESULT_FILE)]
                popen = _Popen(
                    argv,
                    cwd=workspace,
                    env={**env, "TMPDIR": str(workspace)},
                    stdin=subprocess.DEVNULL,
                    stdout=log_fd,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
            finally:
                os.close(log_fd)
            # Its own session, so its own autogroup: down to the lowest CPU priority before it gets far, so that
            # 32 runners starting weigh less than the server (bot.runner_program.priority). The runner does it
            # again itself, retrying, if the kernel's rate limit refuses it here.
            priority.lower_runner(popen.pid, retry=False)
            WorkspaceOwner(spec.run_id, self.owner, ProcessIdentity.of(popen.pid, self.host)).write(workspace)
        except OSError as exc:
            shutil.rmtree(workspace, ignore_errors=True)
            raise RunnerError(f"could not start the runner program ({exc.strerror or type(exc).__name__})") from None
        return popen, workspace

    def _watch_exit(self, runner: _Runner, pidfd: int | None) -> None:
        """Resolve `runner.exited` when the process ends: a pidfd on the loop, else polling."""
        loop = asyncio.get_running_loop()
        if pidfd is None:
            try:
                pidfd = os.pidfd_open(runner.pid)
            except ProcessLookupError:
                runner.exited.set_result(None)
                return
            except OSError as exc:
                if exc.errno not in (errno.ENOSYS, errno.EPERM, errno.EINVAL):
                    raise
                runner.poller = asyncio.create_task(self._poll(runner))
                return
        runner.pidfd = pidfd

        def ended() -> None:
            self._close_pidfd(runner)
            if not runner.exited.done():
                runner.exited.set_result(None)

        loop.add_reader(pidfd, ended)

    async def _poll(self, runner: _Runner) -> None:
        while True:
            if runner.popen is not None:
                alive = runner.popen.poll() is None
            else:
                alive = await asyncio.to_thread(_proc_alive_and_ours, runner.pid, runner.run_id, runner.workspace)
            if not alive:
                if not runner.exited.done():
                    runner.exited.set_result(None)
                return
            await asyncio.sleep(POLL_SECONDS)

    def _close_pidfd(self, runner: _Runner) -> None:
        if runner.pidfd is not None:
            asyncio.get_running_loop().remove_reader(runner.pidfd)
            os.close(runner.pidfd)
            runner.pidfd = None

    async def _terminate(self, runner: _Runner) -> None:
        """SIGTERM to the runner's process group, SIGKILL after the grace period."""
        if runner.exited.done():
            return
        _signal_group(runner.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(self.grace_seconds):
                await asyncio.shield(runner.exited)
        except TimeoutError:
            log.warning("run %s: runner ignored SIGTERM for %.0f s; killing it", runner.run_id, self.grace_seconds)
            _signal_group(runner.pid, signal.SIGKILL)
            await asyncio.shield(runner.exited)

    def _reap(self, runner: _Runner) -> int | None:
        if runner.popen is not None:
            # The leader is a zombie until reaped, so its group id cannot be reused: sweep what it left running.
            _signal_group(runner.pid, signal.SIGKILL)
            return runner.popen.poll()
        try:
            pid, status = os.waitpid(runner.pid, os.WNOHANG)
        except ChildProcessError:
            return None  # not our child: its exit code went to its parent
        return os.waitstatus_to_exitcode(status) if pid else None

    async def _follow(self, runner: _Runner) -> None:
        try:
            try:
                async with asyncio.timeout_at(runner.deadline):
                    await asyncio.shield(runner.exited)
            except TimeoutError:
                runner.timed_out = True
                log.warning("run %s: runner passed its deadline; stopping it", runner.run_id)
                await self._terminate(runner)
        except asyncio.CancelledError:
            self._detach(runner)
            raise
        code = self._reap(runner)
        self._runners.pop(runner.run_id, None)
        result = await asyncio.to_thread(read_result, runner.workspace, runner.run_id)
        tail = await asyncio.to_thread(_log_tail, runner.workspace, runner.secrets)
        outcome = result.outcome if result is not None else None
        log.info("run %s: runner exited (code %s, outcome %s)", runner.run_id, code, outcome)
        if self._on_exit is not None:
            exit_ = RunnerExit(runner.run_id, code, result, runner.timed_out, runner.cancelled, tail)
            try:
                await self._on_exit(exit_)
            except Exception:
                log.exception("run %s: handling the runner's exit failed", runner.run_id)
        failed = code not in (0, None) or runner.timed_out or runner.cancelled or outcome not in _SUCCESSFUL
        try:
            if failed and self.keep_workspaces:
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(WorkspaceOwner(runner.run_id, self.owner, kept=True).write,
                                            runner.workspace)
                log.info("run %s: kept the workspace %s (KICKOFF_KEEP_WORKSPACES)", runner.run_id, runner.workspace)
            else:
                await self._remove(runner.run_id, runner.workspace)
        finally:
            self._mine.discard(runner.run_id)

    def _detach(self, runner: _Runner) -> None:
        self._close_pidfd(runner)
        if runner.poller is not None:
            runner.poller.cancel()
        if runner.popen is not None:
            runner.popen.detached = True
        self._runners.pop(runner.run_id, None)
        self._mine.discard(runner.run_id)
        log.info("run %s: no longer watching its runner (pid %s); it keeps running", runner.run_id, runner.pid)

    async def _remove(self, run_id: int, workspace: Path) -> None:
        # Only ever a workspace this backend made for this run: the path comes from the database.
        if not workspace.name.startswith(f"{WORKSPACE_PREFIX}{run_id}-") or workspace.parent != self.root:
            log.warning("run %s: not removing %s, which is not one of this runner's workspaces", run_id, workspace)
            return
        await asyncio.to_thread(shutil.rmtree, workspace, True)
