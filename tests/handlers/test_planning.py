"""`plan_trigger`: one trigger and its runs in one transaction, exactly once per (delivery, seq)."""

from __future__ import annotations

import asyncio

import pytest

from bot.runs.planning import TriggerRequest, find_trigger, plan_trigger, set_tracking_comment
from tests.handlers.harness import Harness


def request(**overrides: object) -> TriggerRequest:
    values: dict[str, object] = {
        "delivery_id": "d-1", "seq": 0, "installation_id": 7, "repository": "o/r", "issue_number": 3,
        "task": "fix", "agents": ("claude", "codex"), "attempts": 2, "sender": "ann", "source": "comment",
    }
    values.update(overrides)
    return TriggerRequest(**values)  # type: ignore[arg-type]


async def test_planning_twice_returns_the_first_plan(h: Harness) -> None:
    first = await plan_trigger(h.services, request(instructions="do <!-- hidden -->it\u202e"))
    h.services.runs_changed.clear()
    second = await plan_trigger(h.services, request(agents=("gemini",), attempts=1))

    assert first.created
    assert not second.created
    assert (second.trigger_id, second.runs) == (first.trigger_id, first.runs)
    assert [(r.agent, r.attempt, r.state) for r in first.runs] == [
        ("claude", 1, "queued"), ("claude", 2, "queued"), ("codex", 1, "queued"), ("codex", 2, "queued"),
    ]
    assert not h.services.runs_changed.is_set()  # nothing new
    (trigger,) = await h.triggers()
    assert trigger.instructions == "do it"
    assert len(await h.transitions()) == 4


async def test_concurrent_planning_of_one_delivery_makes_one_trigger(h: Harness) -> None:
    plans = await asyncio.gather(*(plan_trigger(h.services, request()) for _ in range(4)))
    assert sum(p.created for p in plans) == 1
    assert len({p.trigger_id for p in plans}) == 1
    assert len(await h.runs()) == 4


async def test_seq_tells_commands_of_one_delivery_apart(h: Harness) -> None:
    await plan_trigger(h.services, request(seq=0))
    await plan_trigger(h.services, request(seq=1, task="research", agents=("claude",), attempts=1))
    assert [(t.seq, t.task) for t in await h.triggers()] == [(0, "fix"), (1, "research")]


async def test_the_tracking_comment_is_recorded_once(h: Harness) -> None:
    planned = await plan_trigger(h.services, request())
    assert await set_tracking_comment(h.services, planned.trigger_id, 11)
    assert not await set_tracking_comment(h.services, planned.trigger_id, 12)
    found = await find_trigger(h.services, "d-1", 0)
    assert found is not None
    assert (found.tracking_comment_id, found.created) == (11, False)
    assert await find_trigger(h.services, "d-1", 1) is None


async def test_a_pull_request_trigger_plans_followups(h: Harness) -> None:
    await plan_trigger(h.services, request(is_pull_request=True, base_branch="main"))
    assert {(r.kind, r.pr_number, r.base_branch) for r in await h.runs()} == {("followup", 3, None)}


@pytest.mark.parametrize(
    ("bad", "match"),
    [({"agents": ()}, "at least one agent"), ({"attempts": 0}, "attempts"), ({"attempts": 11}, "attempts"),
     ({"source": "telepathy"}, "source")],
)
async def test_nonsense_is_refused_before_the_database(h: Harness, bad: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        await plan_trigger(h.services, request(**bad))
    assert await h.triggers() == []
