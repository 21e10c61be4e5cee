"""`POST /api/runs/{run_id}/report`: where runners report progress and their result.

Checked in this order, before anything is parsed: the size (413 over 1 MiB), the run (404), the per-run secret
(401: `Authorization: Bearer <secret>`, compared in constant time against the stored sha256). Then the report
itself (400 not JSON, 422 not a report for this run) and the run's state (409 once the run is final). Reports are
idempotent: a repeated `started` or `finished` answers 200 and changes nothing.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any, Final

from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError

from bot.runs.lifecycle import InvalidTransition, is_final, state_for_outcome
from bot.runs.spec import RunReport
from bot.runs.store import RunStore, secret_hash
from bot.services import Services
from bot.store.models import Run, RunState

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


def _authenticate(request: Request, run: Run) -> None:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = run.secret_hash or ""
    # Compare digests, so the time taken says nothing about the secret; an unset hash never matches.
    ok = scheme.lower() == "bearer" and bool(given) and bool(expected)
    if not hmac.compare_digest(secret_hash(given.strip()), expected) or not ok:
        raise HTTPException(401, "this run's report secret is required", headers={"WWW-Authenticate": "Bearer"})


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
    runs = RunStore(services.store, clock=services.clock)
    run = await runs.get(run_id)
    if run is None:
        raise HTTPException(404, "no such run")
    _authenticate(request, run)
    report = _parse(body, run_id)
    state = await _apply(runs, run, report)
    services.runs_changed.set()
    return {"run_id": run_id, "state": state}


async def _apply(runs: RunStore, run: Run, report: RunReport) -> str:
    if is_final(run.state):
        return _after_the_end(run, report)
    try:
        if report.event == "finished":
            assert report.result is not None  # checked by _parse
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
