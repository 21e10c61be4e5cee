"""Spec tickets: single use, expiry (fake clock), the rotated report secret, the HTTP endpoint, and the runner's
`--spec-url` side."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from bot.runner_program.fetch import ENV_SPEC_TICKET, SpecFetchError, spec_from_url
from bot.runs.tickets import TicketRefused, TicketStore
from bot.runspec import ENV_RUN_SECRET, RunSpec
from bot.store.models import RunState
from bot.store.runs import secret_hash
from tests.runs.support import FakeBackend, World, report_server, world


@pytest.fixture
async def w(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with world(database_url, tmp_path) as built:
        yield built


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def started(w: World) -> tuple[RunSpec, str]:
    """A run on a runner (as the scheduler leaves it): its spec and its original report secret."""
    _, [run] = await w.add_trigger()
    backend = FakeBackend()
    await w.scheduler(backend).step()
    return backend.started[0], backend.secrets[run.id][ENV_RUN_SECRET]


async def test_a_ticket_opens_the_spec_once_and_rotates_the_report_secret(w: World) -> None:
    spec, original = await started(w)
    tickets = TicketStore(w.store)
    ticket = await tickets.issue(spec)
    redeemed = await tickets.redeem(spec.run_id, ticket)
    assert redeemed.spec == spec
    assert redeemed.report_secret not in (original, ticket)
    run = await w.runs.require(spec.run_id)
    assert run.secret_hash == secret_hash(redeemed.report_secret) != secret_hash(original)
    with pytest.raises(TicketRefused, match="already used") as again:
        await tickets.redeem(spec.run_id, ticket)
    assert again.value.status == 410


async def test_a_ticket_expires(w: World) -> None:
    spec, _ = await started(w)
    clock = Clock()
    tickets = TicketStore(w.store, clock=clock)
    ticket = await tickets.issue(spec, ttl=timedelta(minutes=10))
    clock.now += timedelta(minutes=10)
    with pytest.raises(TicketRefused, match="expired") as refused:
        await tickets.redeem(spec.run_id, ticket)
    assert refused.value.status == 410


async def test_a_ticket_just_before_expiry_works(w: World) -> None:
    spec, _ = await started(w)
    clock = Clock()
    tickets = TicketStore(w.store, clock=clock)
    ticket = await tickets.issue(spec, ttl=timedelta(minutes=10))
    clock.now += timedelta(minutes=9, seconds=59)
    assert (await tickets.redeem(spec.run_id, ticket)).spec.run_id == spec.run_id


async def test_a_wrong_or_replaced_ticket_is_refused(w: World) -> None:
    spec, _ = await started(w)
    tickets = TicketStore(w.store)
    first = await tickets.issue(spec)
    with pytest.raises(TicketRefused) as wrong:
        await tickets.redeem(spec.run_id, "not-the-ticket")
    assert wrong.value.status == 401
    with pytest.raises(TicketRefused) as other_run:
        await tickets.redeem(spec.run_id + 1000, first)
    assert other_run.value.status == 401
    await tickets.issue(spec)  # a new ticket replaces the first
    with pytest.raises(TicketRefused):
        await tickets.redeem(spec.run_id, first)


async def test_a_ticket_of_a_run_that_ended_is_refused(w: World) -> None:
    spec, _ = await started(w)
    tickets = TicketStore(w.store)
    ticket = await tickets.issue(spec)
    await w.runs.move(spec.run_id, RunState.CANCELLED, "cancelled")
    with pytest.raises(TicketRefused) as refused:
        await tickets.redeem(spec.run_id, ticket)
    assert refused.value.status == 409
    with pytest.raises(TicketRefused):  # and the refusal spent nothing it should not have: still unusable
        await tickets.redeem(spec.run_id, ticket)


async def test_concurrent_redeems_let_exactly_one_through(w: World) -> None:
    spec, _ = await started(w)
    tickets = TicketStore(w.store)
    ticket = await tickets.issue(spec)
    outcomes = await asyncio.gather(*(tickets.redeem(spec.run_id, ticket) for _ in range(5)), return_exceptions=True)
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(o, TicketRefused) for o in outcomes if o not in winners), outcomes
    run = await w.runs.require(spec.run_id)
    assert run.secret_hash == secret_hash(winners[0].report_secret)


async def test_the_endpoint_answers_once_and_the_new_secret_reports(w: World, database_url: str) -> None:
    spec, original = await started(w)
    ticket = await TicketStore(w.store).issue(spec)
    with report_server(database_url, w.github) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            url = f"/api/runs/{spec.run_id}/spec"
            assert (await client.get(url)).status_code == 401
            assert (await client.get(url, headers={"Authorization": "Bearer nope"})).status_code == 401
            fetched = await client.get(url, headers={"Authorization": f"Bearer {ticket}"})
            assert fetched.status_code == 200
            assert fetched.headers["cache-control"] == "no-store"
            body = fetched.json()
            assert set(body) == {"spec", "credentials"}
            assert RunSpec.model_validate(body["spec"]) == spec
            secret = body["credentials"][ENV_RUN_SECRET]
            assert secret not in fetched.text.replace(f'"{secret}"', "", 1)  # only in its own field
            assert (await client.get(url, headers={"Authorization": f"Bearer {ticket}"})).status_code == 410

            report = {"run_id": spec.run_id, "event": "started", "at": datetime.now(UTC).isoformat()}
            old = await client.post(f"/api/runs/{spec.run_id}/report", json=report,
                                    headers={"Authorization": f"Bearer {original}"})
            assert old.status_code == 401
            new = await client.post(f"/api/runs/{spec.run_id}/report", json=report,
                                    headers={"Authorization": f"Bearer {secret}"})
            assert (new.status_code, new.json()["state"]) == (200, RunState.RUNNING)


async def test_the_runner_fetches_its_spec_with_the_ticket(
    w: World, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, _ = await started(w)
    ticket = await TicketStore(w.store).issue(spec)
    monkeypatch.setenv(ENV_SPEC_TICKET, ticket)
    monkeypatch.delenv(ENV_RUN_SECRET, raising=False)
    with report_server(database_url, w.github) as base:
        url = f"{base}/api/runs/{spec.run_id}/spec"
        path = await asyncio.to_thread(spec_from_url, url)
        try:
            assert RunSpec.model_validate_json(path.read_text()) == spec
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert ENV_SPEC_TICKET not in os.environ
            secret = os.environ.pop(ENV_RUN_SECRET)
            assert (await w.runs.require(spec.run_id)).secret_hash == secret_hash(secret)
        finally:
            path.unlink()
            path.parent.rmdir()
        monkeypatch.setenv(ENV_SPEC_TICKET, ticket)
        with pytest.raises(SpecFetchError, match="410"):
            await asyncio.to_thread(spec_from_url, url)


def test_the_runner_needs_a_ticket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_SPEC_TICKET, raising=False)
    with pytest.raises(SpecFetchError, match=ENV_SPEC_TICKET):
        spec_from_url("https://kickoff.example.com/api/runs/1/spec")
    monkeypatch.setenv(ENV_SPEC_TICKET, "t")
    with pytest.raises(SpecFetchError, match="http"):
        spec_from_url("file:///etc/passwd")
