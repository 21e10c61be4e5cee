"""Every real payload of the events Kickoff routes parses into its minimal model."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from bot import events
from bot.handlers import queue, root_router, workflow_runs
from tests.deliveries import event_of, payload_files

MODELS: dict[str, type[BaseModel]] = {
    "installation": events.InstallationEvent,
    "installation_repositories": events.InstallationRepositoriesEvent,
    "issues": events.IssuesEvent,
    "issue_comment": events.IssueCommentCommandEvent,
    "pull_request_review": events.PullRequestReviewEvent,
    "pull_request_review_comment": events.PullRequestReviewCommentEvent,
    "workflow_run": workflow_runs.WorkflowRunEvent,
    "workflow_job": workflow_runs.WorkflowJobEvent,
    # The review queue (bot.handlers.queue).
    "pull_request": queue.PullRequestEvent,
    "check_run": events.CheckRunEvent,
    "check_suite": events.CheckSuiteEvent,
    "status": events.StatusEvent,
    "push": events.PushEvent,
}


def routed_payloads() -> list[tuple[str, str | None, str]]:
    keys = root_router().keys()
    found = []
    for path in payload_files():
        event, action = event_of(path)
        if event in keys or f"{event}.{action}" in keys:
            found.append((event, action, path.name))
    return found


def test_routed_events_have_models_and_real_payloads() -> None:
    routed = {event for event, _, _ in routed_payloads()}
    assert routed, "no routed event has a recorded payload"
    assert routed <= set(MODELS), f"routed events without a model here: {routed - set(MODELS)}"


@pytest.mark.parametrize(("event", "action", "name"), routed_payloads())
def test_real_payload_parses(event: str, action: str | None, name: str) -> None:
    from tests.deliveries import WEBHOOKS

    model = MODELS[event].model_validate(json.loads((WEBHOOKS / name).read_text()))
    assert getattr(model, "action", None) == action
