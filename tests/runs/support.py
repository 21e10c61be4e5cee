"""Support for the runs tests: a world (real database, `FakeGitHub`, services), trigger rows, a recording fake
backend, the report endpoint on a real server, and the fake runner program (`tests/runners/fake_runner.py`)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot.config import RepoConfig
from bot.root import compose
from bot.runners.local import LocalRunner
from bot.runs.backend import ExitHandler, RunnerExit
from bot.runs.scheduler import Scheduler
from bot.runspec import RunResult, RunSpec
from bot.services import Services
from bot.store.db import Store
from bot.store.models import Run, RunState, RunTransition, Trigger, utcnow
from bot.store.runs import RunStore
from bot.store.workers import Identity, WorkerStore
from bot.web import create_app
from bot.worker import RunLoops, Worker
from tests.fake_github import FakeGitHub
from tests.support import ServerThread, make_settings

FAKE_RUNNER = Path(__file__).resolve().parents[1] / "runners" / "fake_runner.py"
OWNER, REPO = "octo", "hello"
FULL_NAME = f"{OWNER}/{REPO}"
INSTALLATION = 7
ISSUE = 12


def repo_config(agents: Mapping[str, Sequence[str]] | Sequence[str] | None = None, **limits: int) -> RepoConfig:
    """A config whose agents run the fake runner's directives (a list: no directives), all in one task `fix`."""
    if agents is None:
        agents = {"ok": ["sleep=0"]}
    elif not isinstance(agents, Mapping):
        agents = {name: [] for name in agents}
    return RepoConfig.model_validate({
        "agents": {name: {"adapter": "command", "command": ["fake", *words]} for name, words in agents.items()},
        "tasks": {"fix": {"agents": list(agents)}},
        "limits": limits,
    })


@dataclass
class FakeBackend:
    """A runner backend that starts nothing: it records starts and ends runs when the test says so."""

    name: str = "local"
    started: list[RunSpec] = field(default_factory=list)
    secrets: dict[int, dict[str, str]] = field(default_factory=dict)
    live: dict[int, str] = field(default_factory=dict)
    alive_after_restart: set[int] = field(default_factory=set)
    left_behind: dict[int, RunResult] = field(default_factory=dict)  # what runners gone meanwhile had reported
    unrecorded: dict[int, str] = field(default_factory=dict)  # runners started whose ref never reached the database
    cancelled: list[int] = field(default_factory=list)
    cleaned: list[int] = field(default_factory=list)
    fail_start: Exception | None = None
    on_exit: ExitHandler | None = None

    def bind(self, on_exit: ExitHandler) -> None:
        self.on_exit = on_exit

    async def start(self, spec: RunSpec, secrets: Mapping[str, str], *, deadline: float) -> str:
        if self.fail_start is not None:
            raise self.fail_start
        self.started.append(spec)
        self.secrets[spec.run_id] = dict(secrets)
        self.live[spec.run_id] = f"fake:{spec.run_id}"
        return self.live[spec.run_id]

    async def end(self, run_id: int, result: RunResult | None = None, code: int | None = 0, *,
                  timed_out: bool = False, cancelled: bool = False) -> None:
        self.live.pop(run_id, None)
        assert self.on_exit is not None
        await self.on_exit(RunnerExit(run_id, code, result, timed_out=timed_out, cancelled=cancelled))

    async def follow(self, run_id: int, ref: str, *, deadline: float) -> bool:
        if run_id in self.alive_after_restart:
            self.live[run_id] = ref
            return True
        return False

    async def collect(self, run_id: int, ref: str) -> RunResult | None:
        return self.left_behind.get(run_id)

    async def find(self, run_id: int) -> str | None:
        return self.live.get(run_id) or self.unrecorded.get(run_id)

    async def cancel(self, run_id: int) -> None:
        self.cancelled.append(run_id)
        if run_id in self.live:
            await self.end(run_id, None, -15, cancelled=True)

    async def cleanup(self, run_id: int, ref: str) -> None:
        self.cleaned.append(run_id)

    def running(self) -> Mapping[int, str]:
        return dict(self.live)

    def owns(self, ref: str) -> bool:
        return ref.startswith("fake:")

    async def sweep(self, known: Collection[int]) -> list[str]:
        return []

    async def aclose(self) -> None:
        return None


def result_of(run_id: int, outcome: str = "succeeded", **extra: Any) -> RunResult:
    return RunResult.model_validate({"run_id": run_id, "outcome": outcome, **extra})


@dataclass
class World:
    store: Store
    github: FakeGitHub
    services: Services
    runs: RunStore
    tmp: Path
    configs: dict[str, RepoConfig] = field(default_factory=dict)
    default_config: RepoConfig = field(default_factory=repo_config)
    open_prs: dict[str, int] = field(default_factory=dict)
    _deliveries: int = 0

    async def config_for(self, installation_id: int, repository: str) -> RepoConfig:
        return self.configs.get(repository, self.default_config)

    async def open_prs_for(self, repository: str) -> int:
        return self.open_prs.get(repository, 0)

    def scheduler(self, *backends: Any, **options: Any) -> Scheduler:
        options.setdefault("config_for", self.config_for)
        options.setdefault("open_prs", self.open_prs_for)
        options.setdefault("tick", 0.05)
        options.setdefault("tracking_interval", 0.0)
        options.setdefault("config_ttl", 0.0)
        return Scheduler(self.services, {b.name: b for b in backends}, **options)

    def local_runner(self, **options: Any) -> LocalRunner:
        options.setdefault("command", (sys.executable, str(FAKE_RUNNER)))
        options.setdefault("workspace_root", self.tmp / "workspaces")
        options.setdefault("grace_seconds", 0.5)
        options.setdefault("extra_env", {"FAKE_RUNNER_LOG": str(self.runner_log)})
        return LocalRunner(**options)

    @property
    def runner_log(self) -> Path:
        return self.tmp / "fake-runner.jsonl"

    def runner_records(self) -> list[dict[str, Any]]:
        if not self.runner_log.exists():
            return []
        return [json.loads(line) for line in self.runner_log.read_text().splitlines() if line.strip()]

    def seed_issue(self, repository: str = FULL_NAME, number: int = ISSUE, title: str = "Crash on start",
                   body: str = "It crashes.") -> None:
        owner, _, name = repository.partition("/")
        self.github.set_issue(owner, name, number, title=title, body=body, author=None)

    async def add_trigger(
        self,
        agents: Sequence[str] = ("ok",),
        *,
        repository: str = FULL_NAME,
        issue: int = ISSUE,
        attempts: int = 1,
        tracking: bool = True,
        created_at: datetime | None = None,
        instructions: str = "",
    ) -> tuple[Trigger, list[Run]]:
        """A trigger and its queued runs, as the triggers feature plans them."""
        self._deliveries += 1
        now = created_at or utcnow()
        owner, _, name = repository.partition("/")
        if (owner, name, issue) not in self.github.issues:
            self.seed_issue(repository, issue)
        comment_id = self.github.add_comment(owner, name, issue, "tracking", author="kickoff[bot]",
                                             author_type="Bot") if tracking else None
        async with self.store.sessions.begin() as session:
            trigger = Trigger(delivery_id=f"d-{self._deliveries}", seq=0, installation_id=INSTALLATION,
                              repository=repository, issue_number=issue, source="label", task="fix",
                              sender="ann", instructions=instructions, tracking_comment_id=comment_id,
                              created_at=now)
            session.add(trigger)
            await session.flush()
            runs = [
                Run(trigger_id=trigger.id, installation_id=INSTALLATION, repository=repository, issue_number=issue,
                    task="fix", agent=agent, attempt=attempt, kind="new", state=RunState.QUEUED,
                    created_at=now + timedelta(microseconds=i), updated_at=now)
                for i, (agent, attempt) in enumerate((a, n) for a in agents for n in range(1, attempts + 1))
            ]
            session.add_all(runs)
            await session.flush()
            session.add_all(RunTransition(run_id=run.id, from_state=None, to_state=RunState.QUEUED, at=now)
                            for run in runs)
        return trigger, runs

    async def state(self, run_id: int) -> str:
        run = await self.runs.require(run_id)
        return run.state


@asynccontextmanager
async def world(database_url: str, tmp: Path, github: FakeGitHub | None = None,
                **settings: Any) -> AsyncIterator[World]:
    """`github`: shared with a `report_server`, as one GitHub is shared by the web and worker processes."""
    store = Store(database_url)
    await store.migrate()
    github = github or FakeGitHub()
    services = compose(make_settings(database_url, **settings), store, github=github)
    try:
        yield World(store, github, services, RunStore(store), tmp)
    finally:
        await store.close()


@contextmanager
def report_server(database_url: str, github: FakeGitHub | None = None) -> Iterator[str]:
    """The report endpoint on a real server (as `kickoff serve --no-worker`); its base URL."""
    app = create_app(make_settings(database_url), run_worker=False, github=github or FakeGitHub())
    with ServerThread(app) as running:
        yield running.url


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def settle(scheduler: Scheduler) -> list[int]:
    """One pass of the worker's run loops around `scheduler`: schedule, open pull requests, edit tracking comments;
    the ids of the runs started."""
    return await RunLoops(scheduler.services, scheduler).settle()


@asynccontextmanager
async def running(scheduler: Scheduler) -> AsyncIterator[asyncio.Event]:
    """The worker's run loops (scheduler, pull requests, tracking) in the background; stopped (runners detached) on
    exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(Worker(RunLoops(scheduler.services, scheduler).loops()).run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def live_processes(marker: str) -> list[int]:
    """Pids of live (non-zombie) processes whose argv contains `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if marker.encode() in cmdline and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


async def processes_gone(marker: str) -> bool:
    return not live_processes(marker)


async def processes_alive(marker: str) -> bool:
    return bool(live_processes(marker))


ELSEWHERE = "another-host.invalid"


async def live_worker(w: World, host: str = ELSEWHERE) -> int:
    """A worker row of another process, heartbeating now: its claims are its own."""
    return await WorkerStore(w.store, timeout=timedelta(seconds=60)).register(Identity(host, 1, None, None))


async def dead_worker(w: World, host: str = ELSEWHERE) -> int:
    """A worker row of another process that stopped (as a killed one is found to be)."""
    workers = WorkerStore(w.store, timeout=timedelta(seconds=60))
    worker_id = await workers.register(Identity(host, 1, None, None))
    await workers.stop(worker_id)
    return worker_id
