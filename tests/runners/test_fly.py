"""The `fly` backend against the Machines API (respx): the machine it creates, following it with `wait`, exit codes,
Kickoff's deadline, cancel, restart recovery, orphans, and the per-action rate limit (fake clock)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx

from bot.runners.fly import FlyRunner, RateLimiter, exit_of, parse_ref
from bot.runs.backend import RunnerError
from bot.runspec import ENV_GIT_TOKEN, ENV_RUN_SECRET, RunSpec
from tests.runners.remote_support import SECRETS, Exits, eventually, make_spec

APP = "kickoff-runners"
API = f"https://api.machines.dev/v1/apps/{APP}"
TOKEN = "fly-token-0123456789"


class NoWait:
    """A limiter clock that never makes a test wait, recording what it would have slept."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def fly() -> AsyncIterator[FlyRunner]:
    time = NoWait()
    backend = FlyRunner(app=APP, token=TOKEN, image="registry.fly.io/kickoff-runner:1.0", region="ams",
                        poll_seconds=1, grace_seconds=0.3,
                        limiter=RateLimiter(clock=time.clock, sleep=time.sleep))
    yield backend
    await backend.aclose()


def machine(machine_id: str = "m1", state: str = "started", exit_code: int | None = None,
            run_id: int = 42) -> dict[str, Any]:
    events: list[dict[str, Any]] = [{"type": "launch", "status": "created", "timestamp": 1}]
    if exit_code is not None:
        events.append({"type": "exit", "status": "stopped", "timestamp": 2,
                       "request": {"exit_event": {"exit_code": exit_code, "oom_killed": False}}})
    return {"id": machine_id, "name": f"kickoff-run-{run_id}", "state": state, "events": events,
            "config": {"metadata": {"kickoff_managed": "true", "kickoff_run_id": str(run_id)}}}


def mount_create(api: respx.MockRouter, machine_id: str = "m1") -> respx.Route:
    return api.post(f"{API}/machines").respond(200, json=machine(machine_id, "created"))


async def test_the_machine_is_a_one_shot_runner(fly: FlyRunner, api: respx.MockRouter) -> None:
    create = mount_create(api)
    api.get(f"{API}/machines/m1/wait").respond(408, json={"error": "deadline_exceeded"})
    api.get(f"{API}/machines/m1").respond(200, json=machine())
    spec = make_spec(42)
    ref = await fly.start(spec, SECRETS, deadline=600)
    assert ref == f"fly:{APP}/m1"
    request = create.calls.last.request
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    body = json.loads(request.content)
    config = body["config"]
    assert body["name"] == "kickoff-run-42"
    assert body["region"] == "ams"
    assert config["image"] == "registry.fly.io/kickoff-runner:1.0"
    assert config["auto_destroy"] is True
    assert config["restart"] == {"policy": "no"}
    assert config["guest"] == {"cpu_kind": "shared", "cpus": 2, "memory_mb": 4096}
    assert config["init"]["cmd"] == ["kickoff", "run-agent", "--spec", "/kickoff/spec.json"]
    assert config["env"][ENV_GIT_TOKEN] == SECRETS[ENV_GIT_TOKEN]
    assert config["env"][ENV_RUN_SECRET] == SECRETS[ENV_RUN_SECRET]
    [file] = config["files"]
    written = RunSpec.model_validate_json(base64.b64decode(file["raw_value"]))
    assert file["guest_path"] == "/kickoff/spec.json"
    assert written == spec
    assert SECRETS[ENV_GIT_TOKEN] not in base64.b64decode(file["raw_value"]).decode()
    assert config["metadata"] == {"kickoff_managed": "true", "kickoff_run_id": "42"}


@pytest.mark.parametrize(("code", "expected"), [(0, 0), (1, 1)])
async def test_the_exit_code_comes_from_the_machines_exit_event(
    fly: FlyRunner, api: respx.MockRouter, code: int, expected: int
) -> None:
    exits = Exits()
    fly.bind(exits)
    mount_create(api)
    wait = api.get(f"{API}/machines/m1/wait").mock(side_effect=[
        httpx.Response(408, json={"error": "deadline_exceeded"}), httpx.Response(200, json={"ok": True})])
    api.get(f"{API}/machines/m1").respond(200, json=machine(state="stopped", exit_code=code))
    destroy = api.delete(f"{API}/machines/m1").respond(200, json={"ok": True})
    await fly.start(make_spec(), SECRETS, deadline=600)
    [exit_] = await exits.wait()
    assert (exit_.exit_code, exit_.timed_out, exit_.cancelled) == (expected, False, False)
    assert wait.calls.last.request.url.params["state"] == "stopped"
    assert 1 <= int(wait.calls.last.request.url.params["timeout"]) <= 60
    await eventually(lambda: _called(destroy), what="the machine destroyed")  # right after the exit is reported
    assert destroy.calls.last.request.url.params["force"] == "true"


async def test_kickoffs_deadline_stops_and_destroys_the_machine(fly: FlyRunner, api: respx.MockRouter) -> None:
    exits = Exits()
    fly.bind(exits)
    mount_create(api)
    stopped = {"done": False}

    def show(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=machine(state="stopped" if stopped["done"] else "started",
                                                exit_code=143 if stopped["done"] else None))

    def stop(request: httpx.Request) -> httpx.Response:
        stopped["done"] = True
        return httpx.Response(200, json={"ok": True})

    api.get(f"{API}/machines/m1").mock(side_effect=show)
    stop_route = api.post(f"{API}/machines/m1/stop").mock(side_effect=stop)
    destroy = api.delete(f"{API}/machines/m1").respond(200, json={"ok": True})
    await fly.start(make_spec(), SECRETS, deadline=0.05)  # under a second: no wait call, a plain GET
    [exit_] = await exits.wait()
    assert exit_.timed_out
    assert not exit_.cancelled
    assert stop_route.called
    await eventually(lambda: _called(destroy), what="the machine destroyed")


async def test_cancel_stops_the_machine(fly: FlyRunner, api: respx.MockRouter) -> None:
    exits = Exits()
    fly.bind(exits)
    mount_create(api)
    api.get(f"{API}/machines/m1/wait").respond(408, json={"error": "deadline_exceeded"})
    api.get(f"{API}/machines/m1").respond(200, json=machine())
    stop = api.post(f"{API}/machines/m1/stop").respond(200, json={"ok": True})
    api.delete(f"{API}/machines/m1").respond(200, json={"ok": True})
    await fly.start(make_spec(), SECRETS, deadline=600)
    api.get(f"{API}/machines/m1").respond(404, json={"error": "not found"})  # destroyed once stopped
    await fly.cancel(42)
    [exit_] = exits.seen
    assert exit_.cancelled
    assert stop.called


async def test_restart_follows_live_machines_and_sweeps_orphans(fly: FlyRunner, api: respx.MockRouter) -> None:
    api.get(f"{API}/machines/alive").respond(200, json=machine("alive"))
    api.get(f"{API}/machines/gone").respond(404, json={"error": "not found"})
    api.get(f"{API}/machines/alive/wait").respond(408, json={"error": "deadline_exceeded"})
    assert await fly.follow(1, f"fly:{APP}/alive", deadline=600)
    assert not await fly.follow(2, f"fly:{APP}/gone", deadline=600)
    assert not await fly.follow(3, "k8s:ns/job", deadline=600)
    listing = [machine("alive", run_id=1), machine("orphan", run_id=7), machine("old", "destroyed", run_id=8)]
    listed = api.get(f"{API}/machines").respond(200, json=listing)
    destroy = api.delete(f"{API}/machines/orphan").respond(200, json={"ok": True})
    assert await fly.sweep({5}) == []  # unheld at two sweeps in a row, not one
    assert await fly.sweep({5}) == [f"fly:{APP}/orphan"]
    assert listed.calls.last.request.url.params["metadata.kickoff_managed"] == "true"
    assert destroy.called
    # A machine created for a run whose starter died before recording it is found by the run.
    assert await fly.find(7) == f"fly:{APP}/orphan"
    assert await fly.find(1) == f"fly:{APP}/alive"  # followed here
    assert await fly.find(9) is None


async def test_a_refused_create_is_a_runner_error(fly: FlyRunner, api: respx.MockRouter) -> None:
    api.post(f"{API}/machines").respond(422, json={"error": "image not found"})
    with pytest.raises(RunnerError, match="image not found"):
        await fly.start(make_spec(), SECRETS, deadline=600)
    assert fly.running() == {}


async def test_429_is_retried(fly: FlyRunner, api: respx.MockRouter) -> None:
    api.post(f"{API}/machines").mock(side_effect=[
        httpx.Response(429, headers={"retry-after": "0"}, json={"error": "rate limited"}),
        httpx.Response(200, json=machine("m9", "created")),
    ])
    api.get(f"{API}/machines/m9/wait").respond(408, json={})
    api.get(f"{API}/machines/m9").respond(200, json=machine("m9"))
    assert await fly.start(make_spec(), SECRETS, deadline=600) == f"fly:{APP}/m9"


async def test_the_rate_limiter_allows_a_burst_then_one_a_second_per_action() -> None:
    time = NoWait()
    limiter = RateLimiter(rate=1.0, burst=3, clock=time.clock, sleep=time.sleep)
    for _ in range(3):
        await limiter.acquire("create")
    assert time.sleeps == []
    await limiter.acquire("create")
    assert time.sleeps == [pytest.approx(1.0)]
    await limiter.acquire("get")  # another action has its own bucket
    assert len(time.sleeps) == 1
    time.now += 10
    for _ in range(3):
        await limiter.acquire("create")
    assert len(time.sleeps) == 1  # refilled, but never beyond the burst
    await limiter.acquire("create")
    assert len(time.sleeps) == 2
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(rate=0)


def test_refs_and_exit_events() -> None:
    assert parse_ref(f"fly:{APP}/m1") == (APP, "m1")
    assert parse_ref("fly:app") is None
    assert parse_ref("gha:o/r:1") is None
    assert exit_of(machine(exit_code=3)) == 3
    assert exit_of(machine()) is None
    assert exit_of({}) is None


async def _called(route: respx.Route) -> bool:
    return bool(route.called)
