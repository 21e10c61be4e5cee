"""The `github-actions` backend: the Actions verbs on the wire (checked against GitHub's OpenAPI description), the
dispatch (inputs without secrets, the older-GHES fallback), the lifecycle through the scheduler (succeed, fail, time
out, cancel, restart), and the `workflow_run`/`workflow_job` webhooks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot import messages
from bot.github import GitHubError, GitHubGateway, NotFound
from bot.routing import Event
from bot.runners.github_actions import GitHubActionsRunner, parse_ref, status_of
from bot.runs.tickets import TicketStore
from bot.runspec import ENV_GIT_TOKEN, ENV_RUN_SECRET
from bot.sandbox.fidelity import RestSpec, load_rest_spec
from bot.store.models import Run, RunState
from tests.github.harness import BASE_URL, INSTALLATION_ID, FakeTime, mount_mint
from tests.runners.remote_support import eventually
from tests.runs.support import FULL_NAME, INSTALLATION, World, repo_config, result_of, running, world

OPENAPI = Path(__file__).resolve().parents[3] / "shared" / "github" / "openapi" / "rest-api.github.com.json"
WEBHOOKS = Path(__file__).resolve().parents[1] / "fixtures" / "github" / "webhooks"  # vendored from ../shared
REPO_URL = f"{BASE_URL}/repos/octo/hello"


# ---- The verbs on the wire --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def private_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.fixture(scope="module")
def rest() -> RestSpec:
    # The full description when ../shared is beside the checkout, else the vendored subset (it holds these operations).
    return load_rest_spec(OPENAPI) if OPENAPI.exists() else load_rest_spec()


@pytest.fixture
def mock_github() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def gateway(private_pem: str, mock_github: respx.MockRouter) -> AsyncIterator[GitHubGateway]:
    clock = FakeTime()
    mount_mint(mock_github, clock)
    async with GitHubGateway(424242, private_pem, base_url=BASE_URL, sleep=clock.sleep, now=clock.now,
                             monotonic=clock.monotonic) as gw:
        yield gw


def checked(rest: RestSpec, route: respx.Route, status: int, response: Any = None) -> Any:
    """The request a route received, checked against the REST description (request and our mocked answer)."""
    request = route.calls.last.request
    op = rest.match(request.method, request.url.path)
    assert op is not None, f"{request.method} {request.url.path} is not a GitHub operation"
    body = json.loads(request.content) if request.content else None
    assert rest.validate_request(op, body) == []
    assert rest.validate_response(op, status, response) == []
    assert request.headers["x-github-api-version"] == "2022-11-28"
    return body


def workflow_run(run_id: int, status: str = "queued", conclusion: str | None = None,
                 title: str = "kickoff run 42 (abc)") -> dict[str, Any]:
    example: dict[str, Any] = json.loads((WEBHOOKS / "workflow_run.completed.1.json").read_text())["workflow_run"]
    example = {**example, "id": run_id, "status": status, "conclusion": conclusion, "display_title": title,
               "name": "kickoff-agent", "path": ".github/workflows/kickoff-agent.yml"}
    return example


async def test_dispatch_asks_for_the_run_id(gateway: GitHubGateway, mock_github: respx.MockRouter,
                                            rest: RestSpec) -> None:
    answer = {"workflow_run_id": 5001, "run_url": f"{REPO_URL}/actions/runs/5001",
              "html_url": "https://github.com/octo/hello/actions/runs/5001"}
    route = mock_github.post(f"{REPO_URL}/actions/workflows/kickoff-agent.yml/dispatches").respond(200, json=answer)
    inputs = {"run_id": "42", "ticket": "t"}
    assert await gateway.dispatch_workflow(INSTALLATION_ID, "octo", "hello", "kickoff-agent.yml", "main",
                                           inputs) == 5001
    assert checked(rest, route, 200, answer) == {"ref": "main", "inputs": inputs, "return_run_details": True}


async def test_dispatch_without_run_details(gateway: GitHubGateway, mock_github: respx.MockRouter,
                                            rest: RestSpec) -> None:
    route = mock_github.post(f"{REPO_URL}/actions/workflows/kickoff-agent.yml/dispatches").respond(204)
    assert await gateway.dispatch_workflow(INSTALLATION_ID, "octo", "hello", "kickoff-agent.yml", "main",
                                           {"run_id": "1"}, False) is None
    assert checked(rest, route, 204) == {"ref": "main", "inputs": {"run_id": "1"}}


async def test_an_older_ghes_refuses_run_details_with_400(gateway: GitHubGateway,
                                                          mock_github: respx.MockRouter) -> None:
    mock_github.post(f"{REPO_URL}/actions/workflows/kickoff-agent.yml/dispatches").respond(
        400, json={"message": "Invalid request.\n\n\"return_run_details\" is not a permitted key."})
    with pytest.raises(GitHubError, match="return_run_details") as refused:
        await gateway.dispatch_workflow(INSTALLATION_ID, "octo", "hello", "kickoff-agent.yml", "main", {})
    assert refused.value.status == 400


async def test_get_list_and_cancel_workflow_runs(gateway: GitHubGateway, mock_github: respx.MockRouter,
                                                 rest: RestSpec) -> None:
    one = workflow_run(5001, "in_progress")
    get = mock_github.get(f"{REPO_URL}/actions/runs/5001").respond(200, json=one)
    run = await gateway.get_workflow_run(INSTALLATION_ID, "octo", "hello", 5001)
    assert (run.id, run.status, run.conclusion, run.display_title) == (5001, "in_progress", None, one["display_title"])
    checked(rest, get, 200, one)

    listing = {"total_count": 1, "workflow_runs": [one]}
    listed = mock_github.get(f"{REPO_URL}/actions/workflows/kickoff-agent.yml/runs").respond(200, json=listing)
    since = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    runs = await gateway.list_workflow_runs(INSTALLATION_ID, "octo", "hello", "kickoff-agent.yml", since)
    assert [r.id for r in runs] == [5001]
    checked(rest, listed, 200, listing)
    params = listed.calls.last.request.url.params
    assert (params["event"], params["created"]) == ("workflow_dispatch", ">=2026-03-01T12:00:00Z")

    cancel = mock_github.post(f"{REPO_URL}/actions/runs/5001/cancel").respond(202, json={})
    await gateway.cancel_workflow_run(INSTALLATION_ID, "octo", "hello", 5001)
    checked(rest, cancel, 202, {})
    cancel.respond(409, json={"message": "Cannot cancel a workflow run that is completed."})
    await gateway.cancel_workflow_run(INSTALLATION_ID, "octo", "hello", 5001)  # already over: fine


# ---- The backend through the scheduler --------------------------------------------------------------------------


@pytest.fixture
async def w(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with world(database_url, tmp_path, PUBLIC_URL="https://kickoff.example.com") as built:
        built.default_config = repo_config().model_copy(update={"runner": "github-actions"})
        built.github.installations[("octo", "hello")] = INSTALLATION
        yield built


def backend_for(w: World, **options: Any) -> GitHubActionsRunner:
    options.setdefault("poll_seconds", 0.02)
    options.setdefault("grace_seconds", 0.5)
    options.setdefault("find_delay", 0.0)
    return GitHubActionsRunner(w.services.require_github, TicketStore(w.store), **options)


def complete(w: World, run_id: int, conclusion: str) -> None:
    key = ("octo", "hello", run_id)
    w.github.workflow_runs[key] = replace(w.github.workflow_runs[key], status="completed", conclusion=conclusion)


async def state_is(w: World, run_id: int, state: str) -> bool:
    return await w.state(run_id) == state


async def test_a_run_dispatches_the_workflow_with_no_secret_in_its_inputs(w: World) -> None:
    backend = backend_for(w)
    scheduler = w.scheduler(backend)
    _, [run] = await w.add_trigger()
    assert await scheduler.step() == [run.id]
    [dispatch] = w.github.dispatches
    assert (dispatch["owner"], dispatch["repo"], dispatch["workflow"], dispatch["ref"]) == (
        "octo", "hello", "kickoff-agent.yml", "main")
    inputs = dispatch["inputs"]
    assert set(inputs) == {"run_id", "ticket", "adapter", "timeout_minutes", "correlation_id"}
    assert len(inputs) <= 25
    assert len(json.dumps(inputs)) <= 65_535
    assert inputs["run_id"] == str(run.id)
    assert inputs["adapter"] == "command"
    token = w.github.run_tokens[0].token
    row = await w.runs.require(run.id)
    for value in inputs.values():
        assert token not in value
    assert row.runner_ref == f"gha:{FULL_NAME}:{dispatch['run_id']}"
    # The ticket is the one way to the spec, and the report secret it yields is the run's.
    redeemed = await TicketStore(w.store).redeem(run.id, inputs["ticket"])
    assert redeemed.spec.run_id == run.id
    assert redeemed.spec.report_url is not None
    assert ENV_GIT_TOKEN not in redeemed.spec.model_dump_json()
    assert ENV_RUN_SECRET not in redeemed.spec.model_dump_json()
    await scheduler.aclose()


async def test_a_run_that_reports_and_completes_succeeds(w: World) -> None:
    backend = backend_for(w)
    scheduler = w.scheduler(backend)
    _, [run] = await w.add_trigger()
    async with running(scheduler):
        await eventually(lambda: _dispatched(w))
        await w.runs.finish(run.id, result_of(run.id))
        complete(w, w.github.dispatches[0]["run_id"], "success")
        await eventually(lambda: _idle(backend))
        await eventually(lambda: _revoked(w))  # the exit handler gives the token back after the runner leaves
    assert await w.state(run.id) == RunState.SUCCEEDED
    assert len(w.github.revoked) == 1


async def _dispatched(w: World, count: int = 1) -> bool:
    return len(w.github.dispatches) >= count


async def _revoked(w: World) -> bool:
    return bool(w.github.revoked)


async def _idle(backend: GitHubActionsRunner) -> bool:
    return not backend.running()


async def test_a_workflow_that_fails_without_reporting_fails_the_run(w: World) -> None:
    backend = backend_for(w)
    scheduler = w.scheduler(backend)
    _, [run] = await w.add_trigger()
    async with running(scheduler):
        await eventually(lambda: _dispatched(w))
        complete(w, w.github.dispatches[0]["run_id"], "failure")
        await eventually(lambda: state_is(w, run.id, RunState.FAILED))
    assert (await w.runs.require(run.id)).reason == messages.RUN_RUNNER_EXITED.format(code=1)


async def test_kickoffs_deadline_cancels_the_workflow_run(w: World) -> None:
    backend = backend_for(w)
    scheduler = w.scheduler(backend, run_deadline=lambda timeout: 0.2)
    _, [run] = await w.add_trigger()
    async with running(scheduler):
        await eventually(lambda: state_is(w, run.id, RunState.TIMED_OUT))
    workflow_run_id = w.github.dispatches[0]["run_id"]
    assert w.github.calls_to("cancel_workflow_run") == [(INSTALLATION, "octo", "hello", workflow_run_id)]


async def test_cancelling_the_run_cancels_the_workflow_run(w: World) -> None:
    backend = backend_for(w)
    scheduler = w.scheduler(backend)
    _, [run] = await w.add_trigger()
    async with running(scheduler):
        await eventually(lambda: _dispatched(w))
        await eventually(lambda: _has_ref(w, run.id))
        await w.runs.move(run.id, RunState.CANCELLED, messages.RUN_CANCELLED)
        w.services.runs_changed.set()
        await eventually(lambda: _cancel_called(w))
        await eventually(lambda: _idle(backend))
    assert await w.state(run.id) == RunState.CANCELLED


async def _has_ref(w: World, run_id: int) -> bool:
    return (await w.runs.require(run_id)).runner_ref is not None


async def _cancel_called(w: World) -> bool:
    return bool(w.github.calls_to("cancel_workflow_run"))


async def test_an_older_ghes_is_dispatched_without_run_details_and_the_run_found(w: World) -> None:
    w.github.returns_run_details = False
    backend = backend_for(w)
    scheduler = w.scheduler(backend)
    _, [first, second] = await w.add_trigger(["a", "b"])
    w.default_config = repo_config(["a", "b"]).model_copy(update={"runner": "github-actions"})
    assert sorted(await scheduler.step()) == [first.id, second.id]
    flags = [call[-1] for call in w.github.calls_to("dispatch_workflow")]
    assert flags.count(True) == 1
    assert flags.count(False) == 2
    refs = {(await w.runs.require(r.id)).runner_ref for r in (first, second)}
    by_run = {d["inputs"]["run_id"]: d["run_id"] for d in w.github.dispatches}
    assert refs == {f"gha:{FULL_NAME}:{by_run[str(first.id)]}", f"gha:{FULL_NAME}:{by_run[str(second.id)]}"}
    await scheduler.aclose()


async def test_a_repository_without_the_workflow_fails_with_the_next_step(w: World) -> None:
    w.github.fail("dispatch_workflow", NotFound("Not Found", status=404))
    scheduler = w.scheduler(backend_for(w))
    _, [run] = await w.add_trigger()
    await scheduler.step()
    row = await w.runs.require(run.id)
    assert row.state == RunState.FAILED
    assert "kickoff init-workflow" in (row.reason or "")
    assert w.github.revoked  # the run token went back at once
    await scheduler.aclose()


async def test_restart_reattaches_live_workflow_runs_and_fails_lost_ones(w: World) -> None:
    _, [alive, lost] = await w.add_trigger(["a", "b"])
    w.github.workflow_runs[("octo", "hello", 7001)] = replace(
        (await _any_run(w)), id=7001, status="in_progress")
    for run, ref in ((alive, f"gha:{FULL_NAME}:7001"), (lost, f"gha:{FULL_NAME}:7002")):
        assert await w.runs.transition(run.id, RunState.STARTING, from_state=RunState.QUEUED)
        await w.runs.update(run.id, runner="github-actions", runner_ref=ref)
    backend = backend_for(w)
    scheduler = w.scheduler(backend)
    await scheduler.recover()
    assert backend.running() == {alive.id: f"gha:{FULL_NAME}:7001"}
    assert await w.state(lost.id) == RunState.FAILED
    assert (await w.runs.require(lost.id)).reason == messages.RUN_RUNNER_LOST
    complete(w, 7001, "cancelled")  # a user cancelled it in the Actions tab
    await eventually(lambda: state_is(w, alive.id, RunState.CANCELLED))
    await scheduler.aclose()


async def _any_run(w: World) -> Any:
    await w.github.dispatch_workflow(INSTALLATION, "octo", "other", "kickoff-agent.yml", "main", {}, True)
    return next(iter(w.github.workflow_runs.values()))


def test_refs_and_statuses() -> None:
    assert parse_ref("gha:octo/hello:12") == ("octo", "hello", 12)
    assert parse_ref("gha:octo:12") is None
    assert parse_ref("k8s:ns/job") is None
    assert status_of("queued", None).state == "pending"
    assert status_of("in_progress", None).state == "running"
    assert status_of("completed", "success").exit_code == 0
    assert status_of("completed", "timed_out").timed_out
    assert status_of("completed", "cancelled").cancelled
    assert status_of("completed", "startup_failure").exit_code == 1


# ---- Webhooks ---------------------------------------------------------------------------------------------------


def event(name: str, payload: dict[str, Any]) -> Event:
    return Event(f"d-{name}", name.partition(".")[0], name.partition(".")[2], payload, INSTALLATION, FULL_NAME)


def delivery(name: str, **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((WEBHOOKS / f"{name}.1.json").read_text())
    key = name.partition(".")[0]
    payload[key] = {**payload[key], **changes}
    payload["repository"] = {**payload["repository"], "full_name": FULL_NAME}
    return payload


async def runner_run(w: World, workflow_run_id: int) -> Run:
    _, [run] = await w.add_trigger()
    assert await w.runs.transition(run.id, RunState.STARTING, from_state=RunState.QUEUED)
    await w.runs.update(run.id, runner="github-actions", runner_ref=f"gha:{FULL_NAME}:{workflow_run_id}")
    return run


async def test_a_started_job_moves_its_run_to_running(w: World) -> None:
    from bot.handlers.workflow_runs import router

    run = await runner_run(w, 8001)
    other = await runner_run(w, 8002)
    payload = delivery("workflow_job.in_progress", run_id=8001)
    for handler in router.handlers_for("workflow_job", "in_progress"):
        await handler(event("workflow_job.in_progress", payload), w.services)
    assert await w.state(run.id) == RunState.RUNNING
    assert await w.state(other.id) == RunState.STARTING


async def test_a_completed_workflow_run_settles_a_run_that_did_not_report(w: World) -> None:
    from bot.handlers.workflow_runs import router

    failed, cancelled, reported = await runner_run(w, 8101), await runner_run(w, 8102), await runner_run(w, 8103)
    await w.runs.finish(reported.id, result_of(reported.id))
    for workflow_run_id, conclusion in ((8101, "failure"), (8102, "cancelled"), (8103, "success"), (9999, "failure")):
        payload = delivery("workflow_run.completed", id=workflow_run_id, conclusion=conclusion, status="completed")
        for handler in router.handlers_for("workflow_run", "completed"):
            await handler(event("workflow_run.completed", payload), w.services)
    assert await w.state(failed.id) == RunState.FAILED
    assert "failure" in ((await w.runs.require(failed.id)).reason or "")
    assert await w.state(cancelled.id) == RunState.CANCELLED
    assert await w.state(reported.id) == RunState.SUCCEEDED


def test_the_root_router_routes_workflow_events() -> None:
    from bot.handlers import root_router

    assert root_router().handlers_for("workflow_run", "completed")
    assert root_router().handlers_for("workflow_job", "in_progress")
