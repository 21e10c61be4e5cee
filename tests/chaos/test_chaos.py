"""Chaos: a fan-out flow through the simulated GitHub while real Kickoff processes are killed with `kill -9`.

Six issues, each labelled for three scripted agents (the demo's, on the local runner): eighteen runs, eighteen pull
requests. While the flow goes, the test watches the database and kills a process at chosen moments of it (planning,
claims, runner start, runs, PR opening, queue writes), then restarts it. On SQLite one `kickoff serve` does
everything; on PostgreSQL two `kickoff serve --no-worker` web replicas sit behind a proxy and two `kickoff worker`
processes do the work. Then every recovery guarantee of docs/operations.md ("Recovery after a kill") is checked, and
every one that does not hold is printed with its evidence.

CHAOS_SEED picks the moments and the victims (printed, to replay a failure); CHAOS_KILLS says how many kills.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
from sqlalchemy import func, select

from bot.demo import sample
from bot.sandbox import Sandbox, SandboxServer
from bot.store.db import Store
from bot.store.models import Delivery, DeliveryStatus, Installation, Run, RunState, RunToken, Trigger
from tests.chaos.cluster import Cluster, kickoff_env, kill_pids, processes_under
from tests.support import POSTGRES, postgres_database

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

ISSUES: Final = 6
# One issue in each of six repositories, each under its own account and installation. On one installation the flow
# makes ~180 content-creating requests, beyond GitHub's 80 a minute: Kickoff's write pacer (rightly) stretches it
# past any 30 s, and the test would measure the pacer, not the recovery.
OWNERS: Final = tuple(f"team{n}" for n in range(1, ISSUES + 1))
AGENTS: Final = tuple(sample.SCRIPTED_AGENTS)
KILLS: Final = int(os.environ.get("CHAOS_KILLS", "3"))
SEED_ENV: Final = os.environ.get("CHAOS_SEED")
QUIET_WITHIN: Final = 30.0  # seconds: the longest pending work may wait for anyone to take it up (the guarantee)
GIVE_UP_AFTER: Final = 240.0  # how long the test waits for quiet after the last kill before it reports what is left
MOMENT_WAIT: Final = 30.0  # how long an early moment is waited for before it is skipped (the flow went past it)
LATE_WAIT: Final = 90.0  # and a late one
RUN_TOKEN_PERMISSIONS: Final = {"contents": "write"}
BRANCH: Final = re.compile(r"^kickoff/(\d+)-fix-(.+)-(\d+)$")

# Short timeouts: heartbeats, take-over and sweeps in seconds, not minutes (unknown names are ignored).
FAST: Final = {
    "KICKOFF_HEARTBEAT_SECONDS": "1",
    "KICKOFF_WORKER_TIMEOUT_SECONDS": "3",
    "KICKOFF_RUNNER_SWEEP_SECONDS": "2",
    "KICKOFF_POLL_SECONDS": "0.1",
    "KICKOFF_RETRY_BASE_SECONDS": "0.2",
    "KICKOFF_REDELIVER_SECONDS": "3",
    "KICKOFF_SCHEDULER_TICK_SECONDS": "0.5",
    "KICKOFF_TRACKING_INTERVAL_SECONDS": "2",
    "KICKOFF_RUNNER_GRACE_SECONDS": "1",
    "KICKOFF_QUEUE_SWEEP_SECONDS": "60",
    "KICKOFF_MAX_PARALLEL_RUNS": "6",
    "KICKOFF_KEEP_WORKSPACES": "false",
}

# Early moments (any of them, in the flow's order), and late ones: the last kill is always late in the flow, so that
# "quiet within 30 s of the last kill" measures the recovery, not the flow's own work still to come.
EARLY: Final = ("planning", "claims", "runner start", "runs", "PR opening")
LATE: Final = ("late PR opening", "queue writes")
MOMENTS: Final = (*EARLY, *LATE)
LATE_AFTER: Final = 12  # a late moment: this many of the 18 pull requests opened (or runs ended) already


def kickoff_yml() -> str:
    config = {
        "agents": {name: {"adapter": "command", "command": sample.agent_command(name)} for name in AGENTS},
        "tasks": {"fix": {"agents": list(AGENTS), "attempts": 1}},
        "limits": {"max_parallel_runs": 6, "max_open_prs": 100, "run_timeout_minutes": 2, "max_fix_attempts": 0},
        "queue": {"merge": "manual", "review_window": 1},
    }
    return json.dumps(config, indent=2) + "\n"


@dataclass
class Snapshot:
    """What the database says now: enough to recognise each moment of the flow, and quiet."""

    runs: list[Run]
    triggers: int
    deliveries: Counter[str]
    processing_events: set[str]

    def moment(self, name: str) -> bool:
        runs = self.runs
        if name == "planning":
            return "issues" in self.processing_events or (self.triggers > 0 and len(runs) < AGENTS_TOTAL(self))
        if name == "claims":
            return any(r.state == RunState.STARTING and r.branch is None for r in runs)
        if name == "runner start":
            return any(r.state == RunState.STARTING and r.branch is not None for r in runs)
        if name == "runs":
            return sum(r.state == RunState.RUNNING for r in runs) >= 2
        if name == "PR opening":
            return any(r.state == RunState.SUCCEEDED and r.pr_number is None for r in runs)
        opened = sum(r.pr_number is not None for r in runs)
        if name == "late PR opening":
            ended = sum(r.state in RunState.FINAL for r in runs)
            return ended >= LATE_AFTER and any(r.state == RunState.SUCCEEDED and r.pr_number is None for r in runs)
        if name == "queue writes":
            return LATE_AFTER <= opened < ISSUES * len(AGENTS)
        raise ValueError(name)

    def progress(self) -> tuple[object, ...]:
        """What changes whenever some work gets done: run states, pull requests, handled deliveries."""
        return (tuple((r.id, r.state, r.pr_number) for r in self.runs), self.deliveries[DeliveryStatus.DONE])

    def pending(self) -> dict[str, int]:
        """Work not done yet: runs not final, deliveries not handled."""
        out = {f"runs {s}": n for s, n in Counter(r.state for r in self.runs).items() if s not in RunState.FINAL}
        for status in (DeliveryStatus.PENDING, DeliveryStatus.PROCESSING, DeliveryStatus.RETRYING):
            if self.deliveries[status]:
                out[f"deliveries {status}"] = self.deliveries[status]
        return out


def AGENTS_TOTAL(snapshot: Snapshot) -> int:
    return snapshot.triggers * len(AGENTS)


async def snapshot(store: Store) -> Snapshot:
    async with store.sessions() as session:
        runs = list((await session.execute(select(Run).order_by(Run.id))).scalars().all())
        triggers = (await session.execute(select(func.count()).select_from(Trigger))).scalar_one()
        rows = (await session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))).all()
        events = (await session.execute(
            select(Delivery.event).where(Delivery.status == DeliveryStatus.PROCESSING).distinct()
        )).scalars().all()
    return Snapshot(runs, int(triggers), Counter({str(s): int(n) for s, n in rows}), set(events))


@dataclass
class Watcher:
    """Polls the database through the whole flow: the longest time pending work went without any progress."""

    store: Store
    since: float = 0.0  # stalls count from here (the first kill)
    # With one process doing everything (SQLite), nothing can progress while it is down: stalls count from its
    # restart (on a loaded machine a start takes seconds), not from the kill. With peers, from the kill.
    ready_at: float = 0.0
    last: tuple[object, ...] = ()
    changed: float = field(default_factory=time.monotonic)
    longest: float = 0.0
    longest_at: str = ""

    async def run(self) -> None:
        while True:
            now = await snapshot(self.store)
            at = time.monotonic()
            progress = now.progress()
            if progress != self.last:
                self.last, self.changed = progress, at
            elif now.pending() and self.since and at - max(self.changed, self.since, self.ready_at) > self.longest:
                self.longest = at - max(self.changed, self.since, self.ready_at)
                self.longest_at = f"nothing done for {self.longest:.1f}s with {now.pending()} pending"
            await asyncio.sleep(0.25)


@dataclass
class Scenario:
    name: str
    database_url: str
    topology: dict[str, tuple[str, ...]]  # process name -> kickoff arguments
    victims: dict[str, tuple[str, ...]]  # moment -> the processes that may be killed then


@dataclass
class Findings:
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, invariant: str, evidence: object) -> None:
        if not ok:
            self.failures.append(f"FAILED: {invariant}\n    evidence: {evidence}")


@pytest.fixture
def seed() -> int:
    value = int(SEED_ENV) if SEED_ENV else random.SystemRandom().randrange(1_000_000)
    print(f"\nCHAOS_SEED={value} CHAOS_KILLS={KILLS}", file=sys.stderr)
    return value


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def scenario(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scenario]:
    if request.param == "sqlite":
        everything = ("serve",)
        yield Scenario("sqlite", f"sqlite:///{tmp_path}/kickoff.db", {"serve": everything},
                       dict.fromkeys(MOMENTS, ("serve",)))
        return
    if not POSTGRES:
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432 (scripts/services starts it)")
    workers: tuple[str, ...] = ("worker-1", "worker-2")
    topology: dict[str, tuple[str, ...]] = {"web-1": ("serve", "--no-worker"), "web-2": ("serve", "--no-worker"),
                "worker-1": ("worker",), "worker-2": ("worker",)}
    victims: dict[str, tuple[str, ...]] = dict.fromkeys(MOMENTS, workers)
    victims["planning"] = ("web-1", "web-2", *workers)
    victims["queue writes"] = ("web-1", *workers)
    victims["late PR opening"] = workers
    for url in postgres_database():
        yield Scenario("postgresql", url, topology, victims)


@pytest.fixture
async def world(tmp_path: Path, scenario: Scenario) -> AsyncIterator[tuple[Sandbox, Cluster, str]]:
    sandbox = Sandbox(tmp_path / "github", retry_delays=(0.5, 1.0, 2.0, 3.0, 5.0), fidelity=False)
    cluster = Cluster(tmp_path, {})
    try:
        async with SandboxServer(sandbox) as github_url:
            workspaces = tmp_path / "workspaces"
            workspaces.mkdir()
            store = Store(scenario.database_url)
            await store.migrate()  # `kickoff db upgrade`, before any process serves
            await store.close()
            webhook_url = cluster.start_proxy()
            creds = await sandbox.aio.create_app("Kickoff", webhook_url=webhook_url)
            cluster.env = kickoff_env(github_url=github_url, public_url=webhook_url.rsplit("/api/", 1)[0],
                                      creds=creds, database_url=scenario.database_url, workspaces=workspaces,
                                      extra=FAST)
            for name, args in scenario.topology.items():
                cluster.add(name, *args)
            try:
                await asyncio.to_thread(cluster.start_all)
                aio = sandbox.aio
                files = {**sample.files(), ".github/kickoff.yml": kickoff_yml()}
                for owner in OWNERS:
                    await aio.create_repo(owner, sample.REPO, files)
                    await aio.set_permission(owner, sample.REPO, sample.MAINTAINER, "maintain")
                    await aio.set_ci(owner, sample.REPO, list(sample.CI_COMMAND), timeout=60.0)
                    await aio.install(creds.app_id, owner, [sample.REPO])
                yield sandbox, cluster, str(creds.app_id)
            finally:
                await asyncio.to_thread(cluster.stop_all)
                kill_pids(processes_under(tmp_path, exclude=set()))  # what a failed run left behind
    finally:
        await asyncio.to_thread(sandbox.close)


async def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.1)


async def test_kill_9_at_random_moments_loses_nothing_doubles_nothing_and_leaves_nothing(
    world: tuple[Sandbox, Cluster, str], scenario: Scenario, seed: int, tmp_path: Path
) -> None:
    sandbox, cluster, app_id = world
    rng = random.Random(seed)
    store = Store(scenario.database_url)
    started = time.monotonic()
    log: list[str] = []
    try:
        await wait_for(lambda: _installed(store), 20, "the installations to reach Kickoff")
        watcher = Watcher(store)
        watching = asyncio.create_task(watcher.run())
        for owner in OWNERS:
            await sandbox.aio.open_issue(owner, sample.REPO, sample.ISSUE_TITLE, sample.ISSUE_BODY,
                                         sender=sample.MAINTAINER, labels=["agent:fix"])

        # The kills: `KILLS` moments in the flow's order (seeded), each waited for by watching the database.
        early = max(KILLS - 1, 0)
        picks = sorted(rng.choices(range(len(EARLY)), k=early)) if early > len(EARLY) else \
            sorted(rng.sample(range(len(EARLY)), k=early))
        plan = [EARLY[i] for i in picks] + ([rng.choice(LATE)] if KILLS else [])
        log.append(f"plan: {plan}")
        for moment in plan:
            wait = LATE_WAIT if moment in LATE else MOMENT_WAIT
            deadline = time.monotonic() + wait
            while not (await snapshot(store)).moment(moment):
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            else:
                await asyncio.sleep(rng.uniform(0.0, 0.3))
                victim = rng.choice(scenario.victims[moment])
                cluster.kill(victim, moment)
                watcher.since = watcher.since or time.monotonic()
                log.append(f"{time.monotonic() - started:6.1f}s kill -9 {victim} at {moment}")
                await asyncio.sleep(rng.uniform(0.2, 1.5))
                await asyncio.to_thread(cluster.start, victim)
                if len(scenario.topology) == 1:
                    watcher.ready_at = time.monotonic()
                log.append(f"{time.monotonic() - started:6.1f}s {victim} restarted")
                continue
            log.append(f"{time.monotonic() - started:6.1f}s moment {moment!r} not seen within {wait:g}s")
        last_kill = cluster.kills[-1][0] if cluster.kills else started

        # Quiet: every run final, every pull request there, the inbox and the simulator's outbox drained.
        expected_prs = ISSUES * len(AGENTS)
        quiet_at: float | None = None
        while time.monotonic() < last_kill + GIVE_UP_AFTER:
            now = await snapshot(store)
            prs = sum(1 for r in now.runs if r.pr_number is not None)
            if (now.triggers >= ISSUES and len(now.runs) >= expected_prs and not now.pending() and prs >= expected_prs
                    and sandbox.engine.outbox.pending == 0):
                quiet_at = time.monotonic()
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # anything still to come after quiet (a late duplicate) gets its chance
        watching.cancel()
        final = await snapshot(store)
        elapsed = time.monotonic() - started
        quiet = f"{quiet_at - last_kill:.1f}s after the last kill" if quiet_at else "never"
        log.append(f"{elapsed:6.1f}s end; quiet {quiet}; longest stall after a kill {watcher.longest:.1f}s")
        calls = Counter(r.method for r in sandbox.requests if r.kind == "rest" and r.app_id == int(app_id))
        log.append(f"Kickoff's REST calls: {dict(calls)}; deliveries: {len(sandbox.deliveries(int(app_id)))}; "
                   f"CPU seconds: test process {sum(os.times()[:2]):.0f}, {cluster.cpu_seconds()}")
        gets = Counter(re.sub(r"/\d+", "/N", r.path) for r in sandbox.requests
                       if r.kind == "rest" and r.app_id == int(app_id) and r.method == "GET")
        log.append(f"GETs: {gets.most_common(8)}")
        print(f"\n[{scenario.name}] seed {seed}:\n  " + "\n  ".join(log), file=sys.stderr)

        findings = Findings()
        # Quiet within 30 s of the last kill, on a machine of any speed: no pending work waits more than 30 s for
        # someone to take it up (no lease, claim or run waited out), and quiet comes at all.
        findings.check(quiet_at is not None, f"quiet again (no pending work) within {GIVE_UP_AFTER:g}s",
                       f"still pending at the end: {final.pending()}; deliveries not done: {await _unhandled(store)}")
        findings.check(watcher.longest <= QUIET_WITHIN,
                       f"after a kill, pending work never waits more than {QUIET_WITHIN:g}s for someone to take it up",
                       watcher.longest_at)
        await _check_deliveries(findings, sandbox, store, int(app_id))
        await _check_pulls_and_branches(findings, sandbox)
        findings.check(all(r.state in RunState.FINAL for r in final.runs), "no run non-terminal",
                       [(r.id, r.issue_number, r.agent, r.state, r.updated_at.isoformat()) for r in final.runs
                        if r.state not in RunState.FINAL])
        findings.check(all(r.state == RunState.SUCCEEDED for r in final.runs), "every run succeeded (one PR each)",
                       [(r.id, r.issue_number, r.agent, r.state, r.reason) for r in final.runs
                        if r.state != RunState.SUCCEEDED])
        await _check_tracking_comments(findings, sandbox, store)
        orphans = processes_under(tmp_path, exclude=cluster.live_pids())
        findings.check(not orphans, "no orphan runner or agent process", orphans)
        left = sorted(p.name for p in (tmp_path / "workspaces").iterdir())
        findings.check(not left, "no workspace left behind", left)
        live, minted = await _live_run_tokens(sandbox)
        lost = await _lost_tokens(scenario.database_url)
        # A kill in the instant between GitHub's answer and the token's record takes the token with it: nobody can
        # revoke it (only the token itself can), but Kickoff knows (a row given up as lost). Every other token dies.
        unexplained = Counter(i for i, _ in live) - lost
        findings.check(minted > 0 and not unexplained, "every run token revoked, or known lost to a kill",
                       f"{len(live)} run token(s) still valid of {minted} minted: {live}; known lost (by "
                       f"installation): {dict(lost)}")
        if live:
            log.append(f"run tokens lost to a kill between mint and record (they expire within the hour): {live}")
        if findings.failures:
            pytest.fail(
                f"[{scenario.name}] CHAOS_SEED={seed} CHAOS_KILLS={KILLS}: {len(findings.failures)} invariant(s) "
                f"failed:\n" + "\n".join(findings.failures) + "\n\n" + "\n".join(log) + "\n\n" + cluster.report(),
                pytrace=False,
            )
    finally:
        await store.close()


async def _unhandled(store: Store) -> dict[str, int]:
    """Deliveries not done yet, by status and event, with the age of the oldest."""
    async with store.sessions() as session:
        rows = (await session.execute(
            select(Delivery.status, Delivery.event, Delivery.action, func.count(), func.min(Delivery.received_at))
            .where(Delivery.status != DeliveryStatus.DONE).group_by(Delivery.status, Delivery.event, Delivery.action)
        )).all()
    return {f"{status} {event}.{action} (oldest {received:%H:%M:%S})": int(n)
            for status, event, action, n, received in rows}


async def _installed(store: Store) -> bool:
    async with store.sessions() as session:
        count = (await session.execute(select(func.count()).select_from(Installation))).scalar_one()
    return int(count) >= ISSUES


async def _check_deliveries(findings: Findings, sandbox: Sandbox, store: Store, app_id: int) -> None:
    """Every delivery Kickoff acknowledged (a 2xx to any attempt) is in the inbox, handled; none is dead."""
    acked = [d for d in sandbox.deliveries(app_id) if any(200 <= a.status_code < 300 for a in d.attempts)]
    async with store.sessions() as session:
        rows = dict((await session.execute(select(Delivery.id, Delivery.status))).all())
    missing = [d.guid for d in acked if d.guid not in rows]
    unhandled = {d.guid: rows[d.guid] for d in acked if rows.get(d.guid, DeliveryStatus.DONE) != DeliveryStatus.DONE}
    findings.check(not missing and not unhandled, "every acknowledged delivery handled",
                   f"{len(acked)} acknowledged; missing from the inbox: {missing}; not done: {unhandled}")


async def _check_pulls_and_branches(findings: Findings, sandbox: Sandbox) -> None:
    """Exactly one pull request and one branch per issue and agent: no duplicate, none missing."""
    engine = sandbox.engine

    async def read(owner: str) -> tuple[list[int], list[str], list[str]]:
        repo = engine.find_repo(owner, sample.REPO)
        issues = sorted(n for n, i in repo.issues.items() if i.pull is None)
        heads = [i.pull.head_ref for i in repo.issues.values() if i.pull is not None]
        refs = await engine.git(repo).refs("refs/heads/")
        return issues, heads, [ref.removeprefix("refs/heads/") for ref in refs]

    pulls: Counter[tuple[str, int, str]] = Counter()
    branches: Counter[tuple[str, int, str]] = Counter()
    expected: list[tuple[str, int, str]] = []
    for owner in OWNERS:
        issues, heads, refs = await sandbox.arun(read(owner))
        expected += [(owner, issue, agent) for issue in issues for agent in AGENTS]
        pulls.update((owner, int(m.group(1)), m.group(2)) for h in heads if (m := BRANCH.match(h)))
        branches.update((owner, int(m.group(1)), m.group(2)) for b in refs if (m := BRANCH.match(b)))
    for what, count in (("pull request", pulls), ("branch", branches)):
        wrong = {f"{o}/{sample.REPO}#{i} {a}": count[(o, i, a)] for o, i, a in sorted({*expected, *count})
                 if count[(o, i, a)] != 1}
        findings.check(len(expected) == ISSUES * len(AGENTS) and not wrong, f"exactly one {what} per issue and agent",
                       f"{len(expected) // len(AGENTS)} issues; (issue, agent) -> count where not 1: {wrong}")


async def _check_tracking_comments(findings: Findings, sandbox: Sandbox, store: Store) -> None:
    """One trigger per labelled issue, and one tracking comment per trigger."""
    async with store.sessions() as session:
        rows = (await session.execute(select(Trigger.id, Trigger.repository, Trigger.issue_number))).all()
    triggers = [(tid, f"{repo}#{issue}") for tid, repo, issue in rows]
    per_issue = Counter(issue for _, issue in triggers)
    findings.check(len(per_issue) == ISSUES and all(n == 1 for n in per_issue.values()), "one trigger per issue",
                   dict(per_issue))

    async def bodies() -> list[str]:
        return [c.body for c in sandbox.engine.state.comments.values()]

    texts = await sandbox.arun(bodies())
    counts = {tid: sum(f"<!-- kickoff:trigger {tid} -->" in t for t in texts) for tid, _ in triggers}
    findings.check(all(n == 1 for n in counts.values()), "one tracking comment per trigger",
                   {f"trigger {tid} ({issue})": counts[tid] for tid, issue in triggers if counts[tid] != 1})


async def _run_tokens(sandbox: Sandbox) -> list[Any]:
    """The run tokens the simulator issued: scoped to one repository, `contents: write` only (with the
    `metadata: read` every token has). `sandbox.aio.tokens()` lists them with `revoked_at`, where the simulator
    has revocation; else its state holds them."""
    listing = getattr(sandbox.aio, "tokens", None)
    tokens = await listing() if listing is not None else await sandbox.arun(_state_tokens(sandbox))
    return [t for t in tokens
            if {k: v for k, v in dict(getattr(t, "permissions", None) or {}).items() if k != "metadata"}
            == RUN_TOKEN_PERMISSIONS]


async def _state_tokens(sandbox: Sandbox) -> list[Any]:
    return list(sandbox.engine.state.tokens.values())


async def _live_run_tokens(sandbox: Sandbox) -> tuple[list[tuple[int, str]], int]:
    """Run tokens that would still authenticate (not revoked, not expired; the token itself never printed), by
    installation, and how many run tokens were minted in all."""
    tokens = await _run_tokens(sandbox)
    now = sandbox.clock()
    live = [(int(t.installation_id), f"issued {getattr(t, 'issued_at', None) or '?'}")
            for t in tokens if getattr(t, "revoked_at", None) is None and t.expires_at > now]
    return live, len(tokens)


async def _lost_tokens(database_url: str) -> Counter[int]:
    """The tokens Kickoff knows it lost to a kill between mint and record, by installation."""
    store = Store(database_url)
    try:
        async with store.sessions() as session:
            rows = (await session.execute(
                select(Run.installation_id).join(RunToken, RunToken.run_id == Run.id)
                .where(RunToken.sealed.is_(None), RunToken.revoked_at.is_not(None))
            )).scalars().all()
    finally:
        await store.close()
    return Counter(int(i) for i in rows)
