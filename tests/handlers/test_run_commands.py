"""`/agent cancel`, `/agent retry`, `/agent status`: directly, and through the real dispatcher and triggers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import messages
from bot.config import RepoConfig
from bot.handlers import root_commands
from bot.handlers.verbs import CommandContext
from bot.routing import Event, Site
from bot.runs.scheduler import Scheduler
from bot.slash_commands import Command
from bot.store.models import RunState
from tests.handlers.harness import ISSUE as HARNESS_ISSUE
from tests.handlers.harness import OWNER as HARNESS_OWNER
from tests.handlers.harness import REPO as HARNESS_REPO
from tests.handlers.harness import harness, issue_comment, labeled
from tests.runs.support import FULL_NAME, ISSUE, FakeBackend, World, repo_config, result_of, settle, world


@pytest.fixture
async def w(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with world(database_url, tmp_path) as built:
        built.default_config = repo_config(["a", "b", "c"])
        yield built


def context(w: World, verb: str, *, run: str | None = None, all_runs: bool = False, issue: int = ISSUE,
            attempt: int = 1) -> CommandContext:
    return CommandContext(
        services=w.services, event=Event("delivery-9", "issue_comment", "created", {}, attempt=attempt),
        command=Command(verb, 1, f"/agent {verb}", run=run, all_runs=all_runs), config=RepoConfig(),
        site=Site(7, "octo", "hello", issue, is_pull_request=False, default_branch=None), sender="ann",
        sender_permission="write", comment_id=None, seq=0,
    )


async def say(w: World, verb: str, **options: object) -> str:
    handler = root_commands().handler_for(verb)
    before = len(w.github.calls_to("comment"))
    await handler(context(w, verb, **options))  # type: ignore[arg-type]
    replies = w.github.calls_to("comment")[before:]
    assert len(replies) == 1
    body: str = replies[0][4]
    return body


async def test_cancel_the_latest_request_one_run_or_all(w: World) -> None:
    _, (old,) = await w.add_trigger(["a"])
    _, (first, second) = await w.add_trigger(["b", "c"])
    backend = FakeBackend()
    scheduler = w.scheduler(backend)
    await scheduler.step()
    w.services.runs_changed.clear()
    reply = await say(w, "cancel")
    assert reply.startswith(f"Cancelled run {first.id} (b), run {second.id} (c).")
    assert w.services.runs_changed.is_set()
    assert [await w.state(r.id) for r in (old, first, second)] == [
        RunState.STARTING, RunState.CANCELLED, RunState.CANCELLED
    ]
    assert (await w.runs.require(first.id)).reason == "cancelled by @ann"
    await scheduler.step()  # the runners of cancelled runs are stopped
    assert sorted(backend.cancelled) == [first.id, second.id]
    assert (await say(w, "cancel")).startswith("Nothing to cancel: the latest request here")
    assert (await say(w, "cancel", run=str(first.id))).startswith(f"Run {first.id} already 🚫 cancelled")
    assert (await say(w, "cancel", run="999")).startswith("There is no run `999` on this issue.")
    assert (await say(w, "cancel", all_runs=True)).startswith(f"Cancelled run {old.id} (a).")
    assert (await say(w, "cancel", all_runs=True)).startswith("Nothing to cancel: this issue has no")


async def test_runs_of_other_issues_and_repositories_are_out_of_reach(w: World) -> None:
    _, (elsewhere,) = await w.add_trigger(["a"], repository="octo/other")
    _, (other_issue,) = await w.add_trigger(["a"], issue=99)
    for run in (elsewhere, other_issue):
        assert (await say(w, "cancel", run=str(run.id))).startswith(f"There is no run `{run.id}`")
        assert await w.state(run.id) == RunState.QUEUED


async def test_retry_adds_an_attempt_once(w: World) -> None:
    _, (failed, succeeded, cancelled) = await w.add_trigger(["a", "b", "c"])
    for run in (failed, succeeded, cancelled):
        await w.runs.transition(run.id, RunState.STARTING)
    await w.runs.move(failed.id, RunState.FAILED, "boom")
    await w.runs.finish(succeeded.id, result_of(succeeded.id))
    await w.runs.move(cancelled.id, RunState.CANCELLED, "cancelled by @ann")
    reply = await say(w, "retry")
    assert reply.startswith(f"Retrying run {failed.id} (a), run {cancelled.id} (c): queued as run ")
    runs = await w.runs.runs_on_issue(FULL_NAME, ISSUE)
    retried = [r for r in runs if r.attempt == 2]
    assert sorted((r.agent, r.state, r.trigger_id) for r in retried) == [
        ("a", RunState.QUEUED, failed.trigger_id), ("c", RunState.QUEUED, failed.trigger_id)
    ]
    history = await w.runs.transitions(retried[0].id)
    assert history[0].reason == f"retry of run {failed.id}, requested by @ann"
    assert (await say(w, "retry")).startswith("Nothing to retry")  # the same command again changes nothing
    assert (await say(w, "retry", run=str(failed.id))).startswith(f"Run {failed.id} was already retried")
    assert (await say(w, "retry", run=str(succeeded.id))).startswith(f"Run {succeeded.id} ✅ succeeded; only")
    # The retried runs start like any other.
    backend = FakeBackend()
    await w.scheduler(backend).step()
    assert sorted(spec.run_id for spec in backend.started) == sorted(r.id for r in retried)
    assert all(spec.branch.endswith(f"-{spec.run_id}") for spec in backend.started)


async def test_status_lists_the_runs_here(w: World) -> None:
    assert (await say(w, "status")).startswith("No agent runs on this issue yet.")
    _, (run, other) = await w.add_trigger(["a", "b"])
    await w.runs.transition(run.id, RunState.STARTING)
    await w.runs.move(run.id, RunState.FAILED, "the agent | broke\nbadly")
    reply = await say(w, "status")
    assert reply.startswith("Agent runs on this issue (2):")
    assert f"| {run.id} | a | ❌ failed | 0s | the agent \\| broke badly |" in reply
    assert f"| {other.id} | b | ⏳ queued | – |  |" in reply


async def test_a_retried_delivery_answers_once(w: World) -> None:
    handler = root_commands().handler_for("status")
    await handler(context(w, "status"))
    await handler(context(w, "status", attempt=2))
    assert len(w.github.calls_to("comment")) == 1


async def test_the_verbs_through_the_dispatcher(database_url: str) -> None:
    async with harness(database_url) as h:
        h.gh.set_issue(HARNESS_OWNER, HARNESS_REPO, HARNESS_ISSUE, title="Bug", body="x", author=None)
        h.label_is_on("agent:fix")
        await h.deliver("issues", labeled("agent:fix"))
        (run,) = await h.runs()
        backend = FakeBackend()
        scheduler = Scheduler(h.services, {"local": backend}, tracking_interval=0)  # the real config lookup
        assert await settle(scheduler) == [run.id]
        assert backend.started[0].base_branch == "master"
        await h.deliver("issue_comment", issue_comment("/agent status"))
        assert "Agent runs on this issue (1):" in h.bot_comments()[-1].body
        await h.deliver("issue_comment", issue_comment("/agent cancel"))
        assert h.bot_comments()[-1].body.startswith(f"Cancelled run {run.id} (claude).")
        await settle(scheduler)
        assert backend.cancelled == [run.id]
        tracking = h.bot_comments()[0].body
        assert "🚫 cancelled" in tracking
        assert messages.TRACKING_MARKER.format(trigger_id=run.trigger_id) in tracking
