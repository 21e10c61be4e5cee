"""Run tokens (bot.runs.tokens): kept sealed in the database, revoked by whoever ends or recovers the run, and by the
sweep for any ended run whose token is still live."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from bot import messages
from bot.github.errors import GitHubUnavailable
from bot.runs.tokens import RunTokens, TokenSealer
from bot.runspec import ENV_RUN_SECRET
from bot.store.models import Run, RunState, RunToken
from tests.fake_github import FakeGitHub
from tests.runs.support import (
    FakeBackend,
    World,
    dead_worker,
    live_worker,
    repo_config,
    report_server,
    result_of,
    world,
)


@pytest.fixture
def github() -> FakeGitHub:
    return FakeGitHub()


@pytest.fixture
async def w(database_url: str, tmp_path: Path, github: FakeGitHub) -> AsyncIterator[World]:
    async with world(database_url, tmp_path, github) as built:
        yield built


async def start_one(w: World, backend: FakeBackend) -> tuple[Run, str]:
    """A run started on `backend`; it and its token in clear."""
    w.default_config = repo_config(["a"])
    _, (run,) = await w.add_trigger(["a"])
    await w.scheduler(backend).step()
    assert await w.state(run.id) == RunState.STARTING
    (token,) = w.github.run_tokens
    return run, token.token


def revoked(w: World) -> list[str]:
    return [token.token for token in w.github.revoked]


async def test_the_token_is_kept_sealed_never_in_clear(w: World, database_url: str) -> None:
    run, token = await start_one(w, FakeBackend())
    async with w.store.sessions() as session:
        row = (await session.scalars(select(RunToken).where(RunToken.run_id == run.id))).one()
    assert token.encode() not in row.sealed
    assert row.revoked_at is None
    tokens = RunTokens(w.services)
    assert tokens.sealer.open(run.id, row.sealed) == token
    assert tokens.sealer.open(run.id + 1, row.sealed) is None  # sealed for its run: copied to another, it opens not
    assert TokenSealer(b"another App key").open(run.id, row.sealed) is None
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        # The attacker with a copy of the database file: every byte of it (and of its WAL) searched.
        database = Path(str(url.database))
        files = [path for path in (database, database.with_name(database.name + "-wal")) if path.exists()]
        assert files
        assert not [path for path in files if token.encode() in path.read_bytes()]
        assert any(row.sealed in path.read_bytes() for path in files)  # the search does see what is stored


async def test_a_report_that_ends_the_run_revokes_its_token_with_nobody_watching(
    w: World, database_url: str, github: FakeGitHub
) -> None:
    backend = FakeBackend()
    run, token = await start_one(w, backend)
    secret = backend.secrets[run.id][ENV_RUN_SECRET]
    body: dict[str, Any] = {"run_id": run.id, "event": "finished", "at": datetime.now(UTC).isoformat(),
                            "result": {"run_id": run.id, "outcome": "no_changes"}}
    # The process that started the runner is gone; only the web process hears the runner.
    with report_server(database_url, github) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            answer = await client.post(f"/api/runs/{run.id}/report", json=body,
                                       headers={"Authorization": f"Bearer {secret}"})
    assert (answer.status_code, answer.json()["state"]) == (200, RunState.NO_CHANGES)
    assert revoked(w) == [token]
    assert await RunTokens(w.services).unrevoked() == []
    # The runner's exit, seen later, does not revoke it again.
    await backend.end(run.id, None, 0)
    assert revoked(w) == [token]


async def test_recovery_revokes_the_token_of_a_run_it_fails(w: World) -> None:
    run, token = await start_one(w, FakeBackend())
    assert revoked(w) == []
    await w.scheduler(FakeBackend()).recover()  # a restart: the runner is gone
    stored = await w.runs.require(run.id)
    assert (stored.state, stored.reason) == (RunState.FAILED, messages.RUN_RUNNER_LOST)
    assert revoked(w) == [token]
    assert await RunTokens(w.services).unrevoked() == []


async def test_the_sweep_revokes_the_tokens_of_runs_ended_elsewhere(w: World) -> None:
    backend = FakeBackend()
    run, token = await start_one(w, backend)
    scheduler = w.scheduler(backend)
    await scheduler.sweep()
    assert revoked(w) == []  # the run is live: its token stays
    # Another worker ended the run and died before it could revoke the token.
    await w.runs.move(run.id, RunState.CANCELLED, messages.RUN_CANCELLED)
    assert await RunTokens(w.services).unrevoked() == [run.id]
    await scheduler.sweep()
    assert revoked(w) == [token]
    assert await RunTokens(w.services).unrevoked() == []
    await scheduler.sweep()
    assert revoked(w) == [token]  # once


async def test_a_token_github_cannot_be_told_about_stays_unrevoked_for_the_next_sweep(w: World) -> None:
    backend = FakeBackend()
    run, token = await start_one(w, backend)
    await w.runs.move(run.id, RunState.CANCELLED, messages.RUN_CANCELLED)
    w.github.fail("revoke_token", GitHubUnavailable("GitHub is down"))
    assert await RunTokens(w.services).revoke_ended() == 0
    assert await RunTokens(w.services).unrevoked() == [run.id]
    assert revoked(w) == []
    assert await RunTokens(w.services).revoke_ended() == 1
    assert revoked(w) == [token]


async def test_a_run_started_twice_keeps_both_tokens_and_each_start_revokes_only_its_own(w: World) -> None:
    """This worker was declared dead while it started the run: another requeued it and started it again (a second
    token). This worker's runner is stopped and revokes this worker's token only; the other start's token lives on
    until its run ends, then goes too. A second start never overwrites, and so never forgets, the first's token."""
    w.default_config = repo_config(["a"])
    _, (run,) = await w.add_trigger(["a"])
    w.services.worker_id = await live_worker(w, host="me.invalid")
    backend = FakeBackend()
    scheduler = w.scheduler(backend)
    (claim,) = await scheduler.claims.claim({})
    async with w.store.sessions.begin() as session:  # another worker takes it and starts it again meanwhile
        await session.execute(update(Run).where(Run.id == run.id).values(worker_id=await live_worker(w)))
    other = RunTokens(w.services)
    # The other worker's start: its own token, recorded for the same run.
    row = await other.intend(run.id)
    theirs = await w.github.mint_run_token(run.installation_id, "hello", {"contents": "write"})
    assert await other.record(row, run.id, theirs)
    await scheduler.follower.start(claim.run, claim.config, claim.backend, claim.secret)
    await asyncio.sleep(0.05)
    assert backend.cancelled == [run.id]  # one runner per run: this worker's is stopped
    mine = w.github.run_tokens[-1].token
    assert mine != theirs.token
    assert revoked(w) == [mine]
    assert await other.unrevoked() == [run.id]  # theirs, still in use
    await w.runs.move(run.id, RunState.CANCELLED, messages.RUN_CANCELLED)
    await other.revoke_ended()
    assert sorted(revoked(w)) == sorted([mine, theirs.token])
    assert await other.unrevoked() == []


async def test_a_token_minted_by_a_start_killed_before_recording_it_is_known_lost_not_silently_live(
    w: World,
) -> None:
    """The worker wrote the token's row, GitHub minted the token, and the worker was killed before recording it: the
    token cannot be revoked (only the token itself can), so recovery gives it up saying until when it lives; the run
    starts again with a token of its own, which is revoked as usual."""
    w.default_config = repo_config(["a"])
    _, (run,) = await w.add_trigger(["a"])
    killed = await dead_worker(w)
    assert await w.runs.transition(run.id, RunState.STARTING, from_state=RunState.QUEUED)
    await w.runs.update(run.id, runner="local", worker_id=killed)
    tokens = RunTokens(w.services)
    await tokens.intend(run.id)
    lost = await w.github.mint_run_token(run.installation_id, "hello", {"contents": "write"})
    backend = FakeBackend()
    scheduler = w.scheduler(backend)
    assert await scheduler.follower.recover() == 1
    assert await w.state(run.id) == RunState.QUEUED
    assert [run_id for run_id, _ in await tokens.lost()] == [run.id]
    assert await tokens.unrevoked() == []
    assert lost.token not in revoked(w)  # it could not be
    await scheduler.step()
    assert [s.run_id for s in backend.started] == [run.id]
    fresh = w.github.run_tokens[-1].token
    assert await tokens.unrevoked() == [run.id]
    await backend.end(run.id, result_of(run.id, "no_changes"))
    assert revoked(w) == [fresh]
    assert await tokens.unrevoked() == []


async def test_a_start_whose_run_ended_while_it_minted_revokes_its_token_itself(w: World) -> None:
    """The run was ended (its tokens given up) between the row and the record: `record` says so, so the start
    revokes the token it holds, the only one who can."""
    w.default_config = repo_config(["a"])
    _, (run,) = await w.add_trigger(["a"])
    tokens = RunTokens(w.services)
    row = await tokens.intend(run.id)
    await w.runs.move(run.id, RunState.CANCELLED, messages.RUN_CANCELLED)
    assert await tokens.revoke(run.id)  # whoever ended the run
    token = await w.github.mint_run_token(run.installation_id, "hello", {"contents": "write"})
    assert not await tokens.record(row, run.id, token)


async def test_a_failed_mint_leaves_no_row(w: World) -> None:
    w.default_config = repo_config(["a"])
    _, (run,) = await w.add_trigger(["a"])
    w.github.fail("mint_run_token", GitHubUnavailable("GitHub is down"))
    await w.scheduler(FakeBackend()).step()
    failed = await w.runs.require(run.id)
    assert failed.state == RunState.FAILED
    async with w.store.sessions() as session:
        assert (await session.scalars(select(RunToken))).all() == []
    assert await RunTokens(w.services).lost() == []
