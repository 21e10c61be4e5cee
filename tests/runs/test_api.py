"""`POST /api/runs/{id}/report` on a real server: the per-run secret, idempotence, and what it refuses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.runs.api import MAX_REPORT_BYTES
from bot.runspec import ENV_RUN_SECRET
from bot.store.models import Run, RunState
from tests.runs.support import FakeBackend, World, repo_config, report_server, world


@pytest.fixture
async def w(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with world(database_url, tmp_path) as built:
        yield built


def report(run_id: int, event: str = "started", **result: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"run_id": run_id, "event": event, "at": datetime.now(UTC).isoformat()}
    if result:
        body["result"] = {"run_id": run_id, **result}
    return body


async def started_runs(w: World, count: int = 2) -> tuple[list[Run], dict[int, str]]:
    names = [f"a{i}" for i in range(count)]
    w.default_config = repo_config(names)
    _, runs = await w.add_trigger(names)
    backend = FakeBackend()
    await w.scheduler(backend).step()
    return runs, {run_id: secrets[ENV_RUN_SECRET] for run_id, secrets in backend.secrets.items()}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_reports_move_the_run_and_repeats_change_nothing(w: World, database_url: str) -> None:
    (run, _), secrets = await started_runs(w)
    url = f"/api/runs/{run.id}/report"
    with report_server(database_url) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            response = await client.post(url, json=report(run.id), headers=bearer(secrets[run.id]))
            assert (response.status_code, response.json()["state"]) == (200, RunState.RUNNING)
            again = await client.post(url, json=report(run.id), headers=bearer(secrets[run.id]))
            assert (again.status_code, again.json()["state"]) == (200, RunState.RUNNING)
            progress = await client.post(url, json=report(run.id, "pushed"), headers=bearer(secrets[run.id]))
            assert progress.status_code == 200
            assert (await w.runs.require(run.id)).progress == "pushed"
            finished = report(run.id, "finished", outcome="succeeded", usage={"cost_usd": 0.25, "input_tokens": 3})
            done = await client.post(url, json=finished, headers=bearer(secrets[run.id]))
            assert (done.status_code, done.json()["state"]) == (200, RunState.SUCCEEDED)
            history = await w.runs.transitions(run.id)
            # A duplicated `finished` (a retried POST) is a no-op.
            replay = await client.post(url, json=finished, headers=bearer(secrets[run.id]))
            assert (replay.status_code, replay.json()["state"]) == (200, RunState.SUCCEEDED)
            assert len(await w.runs.transitions(run.id)) == len(history)
            # Anything else after the end is a conflict.
            other = report(run.id, "finished", outcome="failed")
            assert (await client.post(url, json=other, headers=bearer(secrets[run.id]))).status_code == 409
            assert (await client.post(url, json=report(run.id), headers=bearer(secrets[run.id]))).status_code == 409
    stored = await w.runs.require(run.id)
    assert (stored.state, stored.cost_usd, stored.input_tokens) == (RunState.SUCCEEDED, 0.25, 3)
    assert [t.to_state for t in history] == [
        RunState.QUEUED, RunState.STARTING, RunState.RUNNING, RunState.SUCCEEDED
    ]


async def test_a_finished_report_while_starting_passes_through_running(w: World, database_url: str) -> None:
    (run, _), secrets = await started_runs(w)
    with report_server(database_url) as base, httpx.Client(base_url=base) as client:
        response = client.post(f"/api/runs/{run.id}/report", headers=bearer(secrets[run.id]),
                               json=report(run.id, "finished", outcome="no_changes"))
    assert (response.status_code, response.json()["state"]) == (200, RunState.NO_CHANGES)


async def test_forged_reports_are_refused(w: World, database_url: str) -> None:
    (run, other), secrets = await started_runs(w)
    _, (unstarted,) = await w.add_trigger(["a0"])
    url = f"/api/runs/{run.id}/report"
    body = report(run.id)
    with report_server(database_url) as base, httpx.Client(base_url=base) as client:
        for headers in ({}, bearer("wrong"), bearer(secrets[other.id]), {"Authorization": secrets[run.id]},
                        {"Authorization": f"Basic {secrets[run.id]}"}, {"Authorization": "Bearer"}):
            response = client.post(url, json=body, headers=headers)
            assert response.status_code == 401, headers
            assert response.headers["www-authenticate"] == "Bearer"
        # A run that never started has no secret: nothing opens it.
        assert client.post(f"/api/runs/{unstarted.id}/report", json=report(unstarted.id),
                           headers={"Authorization": "Bearer"}).status_code == 401
        assert client.post("/api/runs/424242/report", json=report(424242), headers=bearer("x")).status_code == 401
        # The other run's report, with its own valid secret, cannot be sent for this run.
        assert client.post(url, json=report(other.id), headers=bearer(secrets[run.id])).status_code == 422
    assert (await w.runs.require(run.id)).state == RunState.STARTING


async def test_malformed_and_oversized_reports(w: World, database_url: str) -> None:
    (run, _), secrets = await started_runs(w)
    url = f"/api/runs/{run.id}/report"
    auth = bearer(secrets[run.id])
    with report_server(database_url) as base, httpx.Client(base_url=base) as client:
        assert client.post(url, content=b"{not json", headers=auth).status_code == 400
        assert client.post(url, json={"run_id": run.id, "event": "exploded"}, headers=auth).status_code == 422
        assert client.post(url, json=report(run.id, "finished"), headers=auth).status_code == 422  # no result
        assert client.post(url, json=[1, 2], headers=auth).status_code == 422
        huge = json.dumps({**report(run.id), "detail": "x" * MAX_REPORT_BYTES}).encode()
        assert client.post(url, content=huge, headers=auth).status_code == 413

        def chunks() -> Any:
            for _ in range(40):
                yield b" " * 32 * 1024

        assert client.post(url, content=chunks(), headers=auth).status_code == 413  # no Content-Length
        assert client.post(url, content=huge, headers={}).status_code == 413  # size before anything else
    assert (await w.runs.require(run.id)).state == RunState.STARTING


async def test_unknown_runs_and_bad_secrets_get_the_same_answer(w: World, database_url: str) -> None:
    """No oracle for which run ids exist: status, body and headers are the same, whatever the id."""
    (run, _), secrets = await started_runs(w)
    _, (unstarted,) = await w.add_trigger(["a0"])
    with report_server(database_url) as base, httpx.Client(base_url=base) as client:
        def answer(run_id: int | str, secret: str) -> tuple[int, bytes, str | None, str | None]:
            response = client.post(f"/api/runs/{run_id}/report", json=report(run.id), headers=bearer(secret))
            return (response.status_code, response.content, response.headers.get("www-authenticate"),
                    response.headers.get("content-type"))

        refused = answer(run.id, "wrong-secret")
        assert refused[0] == 401
        for run_id in (424242, unstarted.id, 0, -1, 2**31, 2**63 - 1, 2**63, 10**30):
            assert answer(run_id, "wrong-secret") == refused, run_id
            assert answer(run_id, secrets[run.id]) == refused, run_id  # a real secret, for another id
        assert answer(run.id, secrets[run.id])[0] == 200  # the control


@pytest.mark.parametrize("reported", ["main", "other run", "kickoff/elsewhere"])
async def test_a_result_for_another_branch_is_refused_and_opens_no_pull_request(
    w: World, database_url: str, reported: str
) -> None:
    from bot.prs.opening import PullRequestOpener

    (run, other), secrets = await started_runs(w)
    assigned = (await w.runs.require(run.id)).branch
    assert assigned is not None
    assert assigned.startswith("kickoff/")
    assert assigned.endswith(f"-{run.id}")
    branch = (await w.runs.require(other.id)).branch if reported == "other run" else reported
    finished = report(run.id, "finished", outcome="succeeded", branch=branch, pushed=True, head_sha="a" * 40,
                      files_changed=["x.py"])
    with report_server(database_url, w.github) as base, httpx.Client(base_url=base) as client:
        response = client.post(f"/api/runs/{run.id}/report", json=finished, headers=bearer(secrets[run.id]))
        assert response.status_code == 422
        assert assigned in response.json()["detail"]
        # The runner cannot try again with the right branch afterwards: the run is over.
        honest = report(run.id, "finished", outcome="succeeded", branch=assigned, pushed=True)
        assert client.post(f"/api/runs/{run.id}/report", json=honest,
                           headers=bearer(secrets[run.id])).status_code == 409
    stored = await w.runs.require(run.id)
    assert stored.state == RunState.FAILED
    assert stored.result is None
    assert "branch" in (stored.reason or "")
    await PullRequestOpener(w.services, w.runs, config_for=w.config_for).process()
    assert w.github.calls_to("open_pull_request") == []


async def test_a_result_file_for_another_branch_fails_the_run(w: World) -> None:
    """The local backend's result file takes the same check (RunStore.finish), whatever path it comes by."""
    from bot.prs.opening import PullRequestOpener
    from bot.runspec import RunResult

    (run, _), _ = await started_runs(w)
    result = RunResult(run_id=run.id, outcome="succeeded", branch="main", pushed=True, files_changed=("x.py",))
    assert await w.runs.finish(run.id, result)
    stored = await w.runs.require(run.id)
    assert (stored.state, stored.result) == (RunState.FAILED, None)
    await PullRequestOpener(w.services, w.runs, config_for=w.config_for).process()
    assert w.github.calls_to("open_pull_request") == []


async def test_the_right_branch_still_opens_its_pull_request(w: World, database_url: str) -> None:
    from bot.prs.opening import PullRequestOpener

    (run, _), secrets = await started_runs(w)
    assigned = (await w.runs.require(run.id)).branch
    finished = report(run.id, "finished", outcome="succeeded", branch=assigned, pushed=True, head_sha="a" * 40,
                      files_changed=["x.py"])
    with report_server(database_url, w.github) as base, httpx.Client(base_url=base) as client:
        response = client.post(f"/api/runs/{run.id}/report", json=finished, headers=bearer(secrets[run.id]))
        assert response.status_code == 200
    await PullRequestOpener(w.services, w.runs, config_for=w.config_for).process()
    opened = w.github.calls_to("open_pull_request")
    assert len(opened) == 1
    assert assigned in opened[0]
