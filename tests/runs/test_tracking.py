"""The tracking comment: what it shows, and how rarely it is edited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from bot import messages
from bot.github import GitHubUnavailable
from bot.runs.tracking import Tracker, render_tracking
from bot.store.models import Run, RunState, Trigger
from tests.runs.support import World, repo_config, result_of, world


@pytest.fixture
async def w(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with world(database_url, tmp_path) as built:
        built.default_config = repo_config(["a", "b"])
        yield built


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_rendered_table() -> None:
    start = datetime(2026, 3, 1, 9, 5, tzinfo=UTC)
    trigger = Trigger(id=4, task="fix", repository="o/r", issue_number=1)
    runs = [
        Run(id=10, agent="claude", attempt=1, state=RunState.RUNNING, kind="new", started_at=start, progress="pushed"),
        Run(id=11, agent="codex", attempt=1, state=RunState.SUCCEEDED, kind="new", started_at=start,
            finished_at=start + timedelta(minutes=4, seconds=2), pr_number=57),
        Run(id=12, agent="codex", attempt=2, state=RunState.WAITING, kind="new", reason="waiting | for review"),
        Run(id=13, agent="aider", attempt=1, state=RunState.FAILED, kind="new", started_at=start,
            finished_at=start + timedelta(hours=1, minutes=3), reason="the agent gave up"),
    ]
    body = render_tracking(trigger, runs)
    assert "**Kickoff** · `fix` · 2 of 4 runs finished" in body
    assert "| claude (run 10) | 🏃 running | since 09:05 UTC | pushed |" in body
    assert "| codex #1 (run 11) | ✅ succeeded | 4m 02s | #57 |" in body
    assert "| codex #2 (run 12) | ⏸️ waiting | – | waiting \\| for review |" in body
    assert "| aider (run 13) | ❌ failed | 1h 03m | the agent gave up |" in body
    assert body.endswith(messages.TRACKING_MARKER.format(trigger_id=4))
    assert render_tracking(trigger, runs) == body  # deterministic: no ticking clock in it


async def test_edits_are_coalesced_and_never_repeat(w: World) -> None:
    trigger, (run, other) = await w.add_trigger(["a", "b"])
    assert trigger.tracking_comment_id is not None
    clock = Clock()
    tracker = Tracker(w.services, w.runs, interval=3.0, progress_interval=30.0, monotonic=clock)

    def edits() -> int:
        return len(w.github.calls_to("edit_comment"))

    def body() -> str:
        assert trigger.tracking_comment_id is not None
        return w.github.comments[trigger.tracking_comment_id].body

    assert await tracker.refresh() == 1
    assert "⏳ queued" in body()
    await w.runs.transition(run.id, RunState.STARTING)  # a milestone: the fan-out started
    clock.now += 1
    assert await tracker.refresh() == 0  # too soon: kept for later
    assert tracker.due_in() == pytest.approx(2.0)
    await w.runs.transition(run.id, RunState.RUNNING)
    await w.runs.transition(other.id, RunState.STARTING)
    clock.now += 2
    assert await tracker.refresh() == 1  # both changes in one edit
    assert tracker.due_in() is None
    clock.now += 10
    assert await tracker.refresh() == 0
    assert edits() == 2
    # No milestone: progress, and one run ending while the other still runs. They wait for the progress interval
    # (30 s since the last edit), then go out in one edit.
    await w.runs.update(run.id, progress="agent")
    await w.runs.finish(run.id, result_of(run.id, "failed", reason="the agent gave up"))
    assert await tracker.refresh() == 0
    assert tracker.due_in() == pytest.approx(20.0)
    clock.now += 19
    assert await tracker.refresh() == 0
    clock.now += 1
    assert await tracker.refresh() == 1
    assert "the agent gave up" in body()
    # Every run settled: a milestone, shown within the short interval.
    await w.runs.finish(other.id, result_of(other.id, "no_changes"))
    clock.now += 3
    assert await tracker.refresh() == 1
    assert "➖ no changes" in body()
    assert edits() == 4


async def test_failures_to_edit_are_retried_and_a_deleted_comment_is_left_alone(w: World) -> None:
    trigger, _ = await w.add_trigger(["a"])
    _, _ = await w.add_trigger(["b"], tracking=False)  # no comment: nothing to edit
    clock = Clock()
    tracker = Tracker(w.services, w.runs, interval=3.0, monotonic=clock)
    w.github.fail("edit_comment", GitHubUnavailable("down", status=502))
    assert await tracker.refresh() == 0
    clock.now += 3
    assert await tracker.refresh() == 1
    assert trigger.tracking_comment_id is not None
    del w.github.comments[trigger.tracking_comment_id]
    async with w.store.sessions.begin() as session:
        await session.execute(update(Run).where(Run.trigger_id == trigger.id).values(reason="changed"))
    clock.now += 3
    tracker.note(trigger.id)
    await tracker.refresh()  # NotFound: logged, not raised, not retried
    clock.now += 3
    calls = len(w.github.calls_to("edit_comment"))
    assert await tracker.refresh() == 0
    assert len(w.github.calls_to("edit_comment")) == calls
