"""A saturated write pacer never delays starting runs (issue 18 part 3, docs/performance.md).

GitHub is respx at the HTTP seam against the real `GitHubGateway`; the gateway's sleep is a gate the test holds
shut, so a paced write that has to wait stays waiting until the test opens it, and nothing sleeps for real.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.github import GitHubGateway
from tests.github.harness import FakeTime, TokenMint
from tests.handlers.harness import APP_ID, CONFIG, INSTALLATION_ID, ISSUE, OWNER, REPO, harness, labeled

BASE_URL = "https://ghe.example.com/api/v3"
REPO_PATH = f"/repos/{OWNER}/{REPO}"
KICKOFF_YML = "tasks:\n  fix: {agents: [claude, codex]}\n"
GUARD = 30.0  # a hang guard only: every wait below ends on an event, never on time


@dataclass
class Gate:
    """The gateway's sleep: records each wait, then holds it until `open()`; the fake clock moves on release."""

    clock: FakeTime = field(default_factory=FakeTime)
    waiting: asyncio.Event = field(default_factory=asyncio.Event)
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    sleeps: list[float] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.waiting.set()
        await self.opened.wait()
        self.clock.advance(seconds)

    def open(self) -> None:
        self.opened.set()


@pytest.fixture(scope="module")
def private_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def github(gate: Gate) -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE_URL, assert_all_mocked=True, assert_all_called=False) as router:
        router.post(f"/app/installations/{INSTALLATION_ID}/access_tokens").mock(side_effect=TokenMint(gate.clock))
        router.get(f"/repos/{OWNER}/.github/contents/{CONFIG}").respond(404, json={"message": "Not Found"})
        router.get(f"{REPO_PATH}/contents/{CONFIG}").respond(json={
            "type": "file", "encoding": "base64", "sha": "5b1d3c0ffee", "path": CONFIG,
            "content": base64.b64encode(KICKOFF_YML.encode()).decode(),
        })
        router.get(f"{REPO_PATH}/collaborators/{OWNER}/permission").respond(
            json={"permission": "write", "role_name": "maintain", "user": {"login": OWNER}}
        )
        router.get(f"{REPO_PATH}/issues/{ISSUE}/labels").respond(json=[{"name": "agent:fix"}])
        router.get(f"{REPO_PATH}/issues/{ISSUE}/comments").respond(json=[])
        router.post(f"{REPO_PATH}/issues/{ISSUE}/comments", name="comment").respond(201, json={"id": 9001})
        router.post(f"{REPO_PATH}/issues/{ISSUE}/reactions", name="reaction").respond(201, json={"id": 1})
        router.delete(url__regex=rf"{REPO_PATH}/issues/{ISSUE}/labels/agent(%3A|:)fix$", name="unlabel").respond(
            json=[]
        )
        router.post(f"{REPO_PATH}/issues/99/comments", name="earlier").respond(201, json={"id": 1})
        yield router


@pytest.fixture
async def gateway(private_pem: str, gate: Gate, github: respx.MockRouter) -> AsyncIterator[GitHubGateway]:
    # One write an hour: the earlier write below uses the installation's whole budget.
    async with GitHubGateway(
        APP_ID, private_pem, base_url=BASE_URL, sleep=gate.sleep, now=gate.clock.now,
        monotonic=gate.clock.monotonic, write_limits=((1, 3600.0),),
    ) as gw:
        yield gw


async def saturate(gateway: GitHubGateway, gate: Gate) -> None:
    await gateway.request(INSTALLATION_ID, "POST", f"{REPO_PATH}/issues/99/comments", json={"body": "earlier"})
    assert gate.sleeps == []  # it fitted; the next paced write for this installation must wait an hour


PACED = ("comment", "unlabel")


async def test_runs_are_planned_while_the_paced_writes_wait(
    database_url: str, gateway: GitHubGateway, gate: Gate, github: respx.MockRouter
) -> None:
    async with harness(database_url, github=gateway) as world:
        await saturate(gateway, gate)
        delivering = asyncio.create_task(world.deliver("issues", labeled("agent:fix")))
        try:
            await asyncio.wait_for(gate.waiting.wait(), GUARD)  # the first paced write is held by the pacer

            # The runs are already in the database, queued for the scheduler, before any paced write went out.
            runs = await world.runs()
            assert [(r.agent, r.state) for r in runs] == [("claude", "queued"), ("codex", "queued")]
            # ...and claimable: the scheduler's claim moves one to `starting` while the tracking comment waits.
            assert await world.services.runs.claim(runs[0], global_limit=10, repo_limit=10)
            assert [github[name].call_count for name in PACED] == [0, 0]
            assert not delivering.done()
        finally:
            gate.open()
        row = await asyncio.wait_for(delivering, GUARD)

    assert (row.status, row.last_error) == ("done", None)
    assert gate.sleeps[:1] == [pytest.approx(3600.0)]
    assert [github[name].call_count for name in PACED] == [1, 1]
    assert github["reaction"].call_count == 0  # a label's acknowledgement is its tracking comment


async def test_workflow_dispatch_and_cancel_skip_a_saturated_pacer(
    gateway: GitHubGateway, gate: Gate, github: respx.MockRouter
) -> None:
    dispatch = github.post(f"{REPO_PATH}/actions/workflows/kickoff.yml/dispatches").respond(
        200, json={"workflow_run_id": 4242, "run_url": "", "html_url": ""}
    )
    cancel = github.post(f"{REPO_PATH}/actions/runs/4242/cancel").respond(202, json={})
    await saturate(gateway, gate)

    paced = asyncio.create_task(
        gateway.request(INSTALLATION_ID, "POST", f"{REPO_PATH}/issues/{ISSUE}/comments", json={"body": "later"})
    )
    try:
        await asyncio.wait_for(gate.waiting.wait(), GUARD)  # an ordinary write waits for the pacer

        run_id = await asyncio.wait_for(
            gateway.dispatch_workflow(INSTALLATION_ID, OWNER, REPO, "kickoff.yml", "main", {"run": "1"}), GUARD
        )
        await asyncio.wait_for(gateway.cancel_workflow_run(INSTALLATION_ID, OWNER, REPO, 4242), GUARD)

        assert run_id == 4242
        assert (dispatch.call_count, cancel.call_count) == (1, 1)
        assert github["comment"].call_count == 0
        assert not paced.done()
        assert gate.sleeps == [pytest.approx(3600.0)]  # only the comment waited
    finally:
        gate.open()
    await asyncio.wait_for(paced, GUARD)
    assert github["comment"].call_count == 1
