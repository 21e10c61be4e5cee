"""`workflow_run` and `workflow_job` webhooks: the progress of runs on the `github-actions` runner.

A job that starts moves its run from `starting` to `running`; a workflow run that completes before its runner
reported a result settles the run (cancelled, timed out, or failed with the conclusion). The runner's own report
normally arrives first, and then these change nothing; the scheduler's watchdog is the safety net when a webhook is
lost. Only runs whose `runner_ref` names this very workflow run are touched: other workflows are none of ours.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel
from sqlalchemy import select

from bot import messages
from bot.features import Features
from bot.routing import Event, Router
from bot.runners.github_actions import GitHubActionsRunner, status_of
from bot.store.lifecycle import is_final
from bot.store.models import Run, RunState

log = logging.getLogger(__name__)

router: Router[Features] = Router()


class _Repository(BaseModel):
    full_name: str


class _WorkflowRun(BaseModel):
    id: int
    status: str | None = None
    conclusion: str | None = None
    html_url: str = ""


class _WorkflowJob(BaseModel):
    run_id: int
    status: str | None = None


class WorkflowRunEvent(BaseModel):
    action: str
    repository: _Repository
    workflow_run: _WorkflowRun


class WorkflowJobEvent(BaseModel):
    action: str
    repository: _Repository
    workflow_job: _WorkflowJob


async def _run_for(services: Features, repository: str, workflow_run_id: int) -> Run | None:
    ref = f"gha:{repository}:{workflow_run_id}"
    async with services.store.sessions() as session:
        return await session.scalar(
            select(Run).where(Run.runner == GitHubActionsRunner.name, Run.runner_ref == ref).limit(1)
        )


async def _started(services: Features, run: Run) -> None:
    runs = services.runs
    if run.state == RunState.STARTING and await runs.transition(run.id, RunState.RUNNING,
                                                                from_state=RunState.STARTING):
        log.info("run %s: its workflow run started", run.id)
        services.runs_changed.set()


@router.on("workflow_job.in_progress")
async def workflow_job_started(event: Event, services: Features) -> None:
    payload = event.parse(WorkflowJobEvent)
    run = await _run_for(services, payload.repository.full_name, payload.workflow_job.run_id)
    if run is not None:
        await _started(services, run)


@router.on("workflow_run.in_progress")
async def workflow_run_started(event: Event, services: Features) -> None:
    payload = event.parse(WorkflowRunEvent)
    run = await _run_for(services, payload.repository.full_name, payload.workflow_run.id)
    if run is not None:
        await _started(services, run)


@router.on("workflow_run.completed")
async def workflow_run_completed(event: Event, services: Features) -> None:
    payload = event.parse(WorkflowRunEvent)
    workflow_run = payload.workflow_run
    run = await _run_for(services, payload.repository.full_name, workflow_run.id)
    if run is None or is_final(run.state):
        return
    status = status_of("completed", workflow_run.conclusion, workflow_run.html_url)
    runs = services.runs
    if status.cancelled:
        moved = await runs.move(run.id, RunState.CANCELLED, messages.RUN_CANCELLED)
    elif status.timed_out:
        moved = await runs.move(run.id, RunState.TIMED_OUT, messages.RUN_WORKFLOW_ENDED.format(detail=status.detail))
    else:
        moved = await runs.move(run.id, RunState.FAILED, messages.RUN_WORKFLOW_ENDED.format(detail=status.detail))
    if moved:
        log.info("run %s: its workflow run completed (%s) without a result", run.id, workflow_run.conclusion)
        services.runs_changed.set()
