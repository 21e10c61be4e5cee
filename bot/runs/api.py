"""`POST /api/runs/{run_id}/report`: where runners report progress and their result.

Checked in this order, before anything is parsed: the size (413 over 1 MiB), then the run and its per-run secret
together (`Authorization: Bearer <secret>`, compared in constant time against the stored sha256): an unknown run
and a wrong secret get the same 401, so the endpoint says nothing about which runs exist. Then the report itself
(400 not JSON, 422 not a report for this run, 422 and the run failed for a branch that is not the run's) and the
run's state (409 once the run is final). Reports are idempotent: a repeated `started` or `finished` answers 200
and changes nothing. A report that ends the run revokes the run's token (`bot.runs.tokens`): the runner is done
with it, and the process that started the runner may be gone.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any, Final

from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError

from bot import messages
from bot.runs.tokens import RunTokens
from bot.runspec import RunReport
from bot.services import Services
from bot.store.lifecycle import InvalidTransition, branch_problem, is_final, state_for_outcome
from bot.store.models import Run, RunState
from bot.store.runs import RunStore, secret_hash

log = logging.getLogger(__name__)

router = APIRouter()

MAX_REPORT_BYTES: Final = 1024 * 1024


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_REPORT_BYTES:
        raise HTTPException(413, f"a report is at most {MAX_REPORT_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REPORT_BYTES:
            raise HTTPException(413, f"a report is at most {MAX_REPORT_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# Compared against when there is no run, so an unknown id costs the same digest and comparison as a wrong secret.
_NO_RUN: Final = secret_hash("no such run")
_MAX_RUN_ID: Final = 2**31 - 1  # runs.id is an INTEGER


def _authenticate(request: Request, run: Run | None) -> Run:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = (run.secret_hash if run is not None else None) or _NO_RUN
    # Compare digests, so the time taken says nothing about the secret; an unset hash never matches.
    matched = hmac.compare_digest(secret_hash(given.strip()), expected)
    ok = scheme.lower() == "bearer" and bool(given) and run is not None and bool(run.secret_hash)
    if not matched or not ok or run is None:
        raise HTTPException(401, messages.REPORT_UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
    return run


def _parse(body: bytes, run_id: int) -> RunReport:
    try:
        report = RunReport.model_validate_json(body)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise HTTPException(400, "the report is not JSON") from None
        fields = ", ".join(".".join(str(p) for p in e["loc"]) or "(root)" for e in exc.errors()[:5])
        raise HTTPException(422, f"not a run report (at {fields})") from None
    if report.run_id != run_id or (report.result is not None and report.result.run_id != run_id):
        raise HTTPException(422, "the report is for another run")
    if report.event == "finished" and report.result is None:
        raise HTTPException(422, "a finished report carries the result")
    return report


@router.post("/api/runs/{run_id}/report")
async def run_report(run_id: int, request: Request) -> dict[str, Any]:
    """Apply a runner's report to its run; answers the run's state."""
    body = await _read_body(request)
    services: Services = request.app.state.services
    runs = RunStore(services.store, clock=services.clock, succeeded=services.runs_succeeded)
    run = _authenticate(request, await runs.get(run_id) if 1 <= run_id <= _MAX_RUN_ID else None)
    report = _parse(body, run_id)
    state = await _apply(runs, run, report)
    if is_final(state):
        # The runner is done with its token: revoked now, whether or not a process watches the runner.
        try:
            await RunTokens(services).revoke(run_id)
        except Exception:
            log.exception("run %s: revoking its token failed; the sweep tries again", run_id)
    services.runs_changed.set()
    return {"run_id": run_id, "state": state}


async def _apply(runs: RunStore, run: Run, report: RunReport) -> str:
    if is_final(run.state):
        return _after_the_end(run, report)
    try:
        if report.event == "finished":
            assert report.result is not None  # checked by _parse
            problem = branch_problem(run, report.result)
            if problem is not None:
                # The runner holds this run's secret but names another branch: the result is refused for good.
                log.warning("run %s: refused a result for another branch than the run's", run.id)
                await runs.move(run.id, RunState.FAILED, problem)
                raise HTTPException(422, problem)
            if not await runs.finish(run.id, report.result):
                fresh = await runs.require(run.id)
                return _after_the_end(fresh, report)
            log.info("run %s finished: %s", run.id, report.result.outcome)
            return state_for_outcome(report.result.outcome)
        if run.state != RunState.RUNNING and not await runs.move(run.id, RunState.RUNNING):
            fresh = await runs.require(run.id)
            if is_final(fresh.state):
                return _after_the_end(fresh, report)
        await runs.set_progress(run.id, report.event)
    except InvalidTransition:
        raise HTTPException(409, f"run {run.id} is {run.state} and cannot take a {report.event!r} report") from None
    return RunState.RUNNING


def _after_the_end(run: Run, report: RunReport) -> str:
    """A report for a run that is over: a repeat of its own end is fine, anything else is a conflict."""
    if report.result is not None and report.event == "finished" and run.state == state_for_outcome(
        report.result.outcome
    ):
        return run.state
    raise HTTPException(409, f"run {run.id} is already {run.state}")
