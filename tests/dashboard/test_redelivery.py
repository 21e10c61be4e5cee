"""Missed deliveries come back: against the GitHub sandbox, deliveries dropped while Kickoff was down are redelivered
once, those already in the inbox are skipped, and a second pass asks for nothing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.github import GitHubGateway, HookDelivery
from bot.redelivery import parse_since, redeliver_missed
from bot.routing import Router
from bot.sandbox import AppCredentials, Sandbox, SandboxServer
from bot.settings import Settings
from bot.store.db import Store
from bot.store.inbox import Inbox, NewDelivery
from bot.store.models import utcnow
from bot.web import create_app
from tests.dashboard.conftest import kickoff, kickoff_env, on_store
from tests.fake_github import FakeGitHub
from tests.support import ServerThread, make_settings

OWNER, REPO = "octo", "demo"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    sb = Sandbox(tmp_path / "github", retry_delays=(0.05,))
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


@pytest.fixture
def creds(sandbox: Sandbox, github: str) -> AppCredentials:
    made = sandbox.create_app("Kickoff")
    sandbox.create_repo(OWNER, REPO, {"README.md": "# demo\n"})
    sandbox.install(made.app_id, OWNER)
    sandbox.wait_idle()
    return made


def kickoff_settings(database_url: str, creds: AppCredentials, github: str, **extra: object) -> Settings:
    assert creds.webhook_secret
    return make_settings(database_url, WEBHOOK_SECRET=creds.webhook_secret, APP_ID=creds.app_id,
                         PRIVATE_KEY=creds.private_key_pem, GITHUB_API_URL=github, **extra)


def stored(database_url: str) -> set[str]:
    async def ids(store: Store) -> set[str]:
        return {d.id for d in await Inbox(store).list(limit=1000)}

    result: set[str] = on_store(database_url, ids)
    return result


def wait_for_inbox(database_url: str, wanted: set[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not wanted <= stored(database_url):
        assert time.monotonic() < deadline, f"never stored: {wanted - stored(database_url)}"
        time.sleep(0.05)


def test_missed_deliveries_are_redelivered_once(
    sandbox: Sandbox, github: str, creds: AppCredentials, database_url: str, tmp_path: Path
) -> None:
    settings = kickoff_settings(database_url, creds, github, KICKOFF_REDELIVER_SECONDS=0)
    with ServerThread(create_app(settings, router=Router())) as server:
        sandbox.set_webhook(creds.app_id, server.url + "/api/github/webhooks")
        number = sandbox.open_issue(OWNER, REPO, "Delivered while up")
        sandbox.wait_idle()
        [delivered] = [d.guid for d in sandbox.deliveries(creds.app_id) if d.succeeded]
        wait_for_inbox(database_url, {delivered})

        sandbox.pause_webhooks(drop=True)  # Kickoff is unreachable: every attempt fails
        sandbox.comment(OWNER, REPO, number, "missed one")
        sandbox.comment(OWNER, REPO, number, "missed two")
        sandbox.comment(OWNER, REPO, number, "stored, but the answer was lost")
        sandbox.wait_idle()
        sandbox.resume_webhooks()
        missed = [d.guid for d in sandbox.deliveries(creds.app_id) if not d.succeeded]
        assert len(missed) == 3
        ack_lost = missed[2]

        async def store_one(store: Store) -> None:
            await Inbox(store).insert_many([NewDelivery(
                id=ack_lost, event="issue_comment", action="created", installation_id=None,
                repository=f"{OWNER}/{REPO}", payload="{}", received_at=utcnow(),
            )])

        on_store(database_url, store_one)

        async def one_pass(store: Store) -> list[str]:
            async with GitHubGateway.from_settings(settings) as gateway:
                report = await redeliver_missed(gateway, Inbox(store), since=timedelta(hours=1), now=utcnow())
                assert gateway.request_counts[("GET", 200)] >= 1
            assert not report.errors
            return [d.guid for d in report.redelivered]

        assert on_store(database_url, one_pass) == missed[:2]
        sandbox.wait_idle()
        wait_for_inbox(database_url, set(missed))
        redeliveries = [d for d in sandbox.deliveries(creds.app_id) if d.redelivery]
        assert sorted(d.guid for d in redeliveries) == sorted(missed[:2])
        assert all(d.succeeded for d in redeliveries)

        # A second pass, here through `kickoff redeliver`, asks for nothing new.
        env = {
            "DATABASE_URL": database_url, "APP_ID": str(creds.app_id), "PRIVATE_KEY": creds.private_key_pem,
            "WEBHOOK_SECRET": creds.webhook_secret or "", "GITHUB_API_URL": github,
        }
        result = kickoff(["redeliver", "--since", "1h"], tmp_path, **env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("0 redelivered; skipped 3 delivered, 1 already in the inbox"), result.stdout
        sandbox.wait_idle()
        assert len([d for d in sandbox.deliveries(creds.app_id) if d.redelivery]) == 2


def test_serve_redelivers_at_start_up(
    sandbox: Sandbox, github: str, creds: AppCredentials, database_url: str
) -> None:
    settings = kickoff_settings(database_url, creds, github, KICKOFF_REDELIVER_SECONDS=3600)
    server = ServerThread(create_app(settings, router=Router()))  # its port is taken, but it does not serve yet
    sandbox.set_webhook(creds.app_id, server.url + "/api/github/webhooks")
    sandbox.pause_webhooks(drop=True)  # Kickoff is down
    sandbox.open_issue(OWNER, REPO, "Opened during the outage")
    sandbox.wait_idle()
    sandbox.resume_webhooks()
    [missed] = [d.guid for d in sandbox.deliveries(creds.app_id) if d.event == "issues"]

    with server:
        wait_for_inbox(database_url, {missed})
    assert [d.guid for d in sandbox.deliveries(creds.app_id) if d.redelivery] == [missed]


@pytest.mark.slow
def test_kickoff_worker_redelivers_too(
    sandbox: Sandbox, github: str, creds: AppCredentials, database_url: str, tmp_path: Path
) -> None:
    """`kickoff worker` beside `kickoff serve --no-worker` runs the same worker as `serve`, redelivery included."""
    settings = kickoff_settings(database_url, creds, github)
    with ServerThread(create_app(settings, run_worker=False, router=Router())) as server:
        sandbox.set_webhook(creds.app_id, server.url + "/api/github/webhooks")
        sandbox.pause_webhooks(drop=True)  # the web process is down
        sandbox.open_issue(OWNER, REPO, "Opened during the outage")
        sandbox.wait_idle()
        sandbox.resume_webhooks()
        [missed] = [d.guid for d in sandbox.deliveries(creds.app_id) if d.event == "issues"]
        env = kickoff_env(
            DATABASE_URL=database_url, APP_ID=str(creds.app_id), PRIVATE_KEY=creds.private_key_pem,
            WEBHOOK_SECRET=creds.webhook_secret or "", GITHUB_API_URL=github, KICKOFF_REDELIVER_SECONDS="3600",
        )
        with (tmp_path / "worker.log").open("w") as log:
            worker = subprocess.Popen([sys.executable, "-m", "bot", "worker"], cwd=tmp_path, env=env, stdout=log,
                                      stderr=subprocess.STDOUT)
        try:
            wait_for_inbox(database_url, {missed}, timeout=60)
        finally:
            worker.terminate()
            worker.wait(30)
    assert [d.guid for d in sandbox.deliveries(creds.app_id) if d.redelivery] == [missed]
    log_text = (tmp_path / "worker.log").read_text()
    assert worker.returncode == 0, log_text
    assert "redelivery" in log_text.split("worker started: ", 1)[1].splitlines()[0]
    assert "Traceback" not in log_text


async def test_a_refused_or_exhausted_delivery_is_not_asked_for_again(sqlite_url: str) -> None:
    now = utcnow()

    gh = FakeGitHub()

    def attempt(n: int, guid: str, code: int, *, redelivery: bool = False, age: float = 60) -> None:
        gh.add_hook_delivery(n, guid, now - timedelta(seconds=age), status_code=code, redelivery=redelivery)

    attempt(9, "ok-after-retry", 202, redelivery=True)
    attempt(8, "ok-after-retry", 0)
    attempt(7, "bad-signature", 401)
    attempt(6, "given-up", 0, redelivery=True)
    attempt(5, "given-up", 0, redelivery=True)
    attempt(4, "given-up", 0, redelivery=True)
    attempt(3, "given-up", 0)
    attempt(2, "missed", 502)
    attempt(1, "missed", 0)
    attempt(0, "too-old", 0, age=7200)
    store = Store(sqlite_url)
    await store.migrate()
    try:
        report = await redeliver_missed(gh, Inbox(store), since=timedelta(hours=1), now=now)
    finally:
        await store.close()
    assert [d.guid for d in report.redelivered] == ["missed"]
    assert gh.calls_to("redeliver_hook_delivery") == [(2,)]
    assert (report.succeeded, report.refused, report.gave_up, report.guids) == (1, 1, 1, 4)
    assert isinstance(report.redelivered[0], HookDelivery)


def test_parse_since() -> None:
    assert parse_since("24h") == timedelta(hours=24)
    assert parse_since("3d") == timedelta(days=3)
    assert parse_since("90") == timedelta(seconds=90)
    assert parse_since(" 30m ") == timedelta(minutes=30)
    with pytest.raises(ValueError, match="not a duration"):
        parse_since("yesterday")
    assert asyncio.iscoroutinefunction(redeliver_missed)
