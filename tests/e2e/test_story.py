"""The README's story, step by step, through the sandbox harness: real webhooks, real git, real runner processes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx

from bot import messages
from bot.demo import sample
from bot.demo.harness import AGENT_CHECK, QUEUE_CHECK, CommentView, World
from bot.queue.texts import STATES, State
from bot.store.models import RunState

OWNER, REPO = sample.OWNER, sample.REPO
AGENTS = list(sample.SCRIPTED_AGENTS)
NEXT_FOR_REVIEW = STATES[State.NEXT_FOR_REVIEW].title


async def _issue(world: World, labels: list[str] | None = None, sender: str = sample.MAINTAINER) -> int:
    return await world.sandbox.aio.open_issue(OWNER, REPO, sample.ISSUE_TITLE, sample.ISSUE_BODY, sender=sender,
                                              labels=labels)


async def _reply(world: World, issue: int, needle: str, timeout: float = 15.0) -> CommentView:
    """The first comment from Kickoff's bot on `issue` containing `needle`, once it is there."""
    bot = f"{world.creds.slug}[bot]"
    found: list[CommentView] = []

    async def posted() -> bool:
        found[:] = [c for c in await world.comments(issue) if c.author == bot and needle in c.body]
        return bool(found)

    async def seen() -> str:
        return repr([c.body[:200] for c in await world.comments(issue)])

    await world.wait_for(posted, timeout, f"a reply containing {needle!r} on #{issue}", seen=seen)
    return found[0]


async def test_an_agent_label_starts_one_run_per_agent_and_each_pushes_its_branch(world: World) -> None:
    issue = await _issue(world)
    await world.sandbox.aio.add_label(OWNER, REPO, issue, "agent:fix", sender=sample.MAINTAINER)
    await world.wait_for(lambda: world.runs_settled(3, issue), 40, "three runs to end")
    runs = await world.runs(issue)
    assert sorted(r.agent for r in runs) == sorted(AGENTS)
    assert [r.state for r in runs] == [RunState.SUCCEEDED] * 3, [(r.agent, r.state, r.reason) for r in runs]
    for run in runs:
        assert run.branch == f"kickoff/{issue}-fix-{run.agent}-{run.id}"
    # The label is consumed (so it can be applied again), and the tracking comment tells how every run ended.
    assert "agent:fix" not in await world.labels(issue)
    tracking = await _reply(world, issue, "all 3 runs finished")
    assert tracking.body.count("succeeded") == 3
    # Only git pushes with the per-run tokens and Kickoff's own REST calls: never a failing call beyond a few.
    assert len(world.git_requests()) >= 6  # a clone (2 requests) and a push (2) per run, at least
    assert 10 <= len(world.kickoff_requests()) <= 120


async def test_each_successful_run_becomes_a_pull_request_with_its_checks(world: World) -> None:
    issue = await _issue(world, labels=["agent:fix"])  # labelled at creation: `issues.opened` carries it
    await world.wait_for(lambda: world.runs_settled(3, issue), 40, "three runs to end")
    runs = {r.branch: r for r in await world.runs(issue)}
    bot = f"{world.creds.slug}[bot]"

    async def opened() -> bool:
        return len([p for p in await world.pulls() if p.author == bot]) == 3

    await world.wait_for(opened, 30, "three pull requests by Kickoff", seen=lambda: _pulls_text(world))
    pulls = await world.pulls()
    assert {p.head_ref for p in pulls} == set(runs)
    for pull in pulls:
        assert pull.state == "open"
        assert f"#{issue}" in pull.title
        assert not pull.draft

    async def checked() -> bool:
        current = await world.pulls()
        return all(p.check(AGENT_CHECK) is not None and p.check(QUEUE_CHECK) is not None for p in current)

    await world.wait_for(checked, 30, f"`{AGENT_CHECK}` and `{QUEUE_CHECK}` on every PR",
                         seen=lambda: _pulls_text(world))
    pulls = await world.pulls()
    for pull in pulls:
        queue = pull.check(QUEUE_CHECK)
        assert queue is not None, f"#{pull.number} has no {QUEUE_CHECK} check"
        assert queue.title, f"#{pull.number} has no {QUEUE_CHECK} title"
        assert queue.status == "in_progress", queue
        agent = pull.check(AGENT_CHECK)
        assert agent is not None, f"#{pull.number} has no {AGENT_CHECK} check"
        assert agent.conclusion == "success", agent

    # The dashboard (what `kickoff demo --keep` points at) shows the same queue, in order, with the same titles.
    async with httpx.AsyncClient(base_url=world.kickoff_url, trust_env=False, timeout=10) as client:
        assert (await client.get("/")).status_code == 200
        rows: list[dict[str, Any]] = []

        async def agrees() -> bool:
            response = await client.get("/api/queue", params={"repo": f"{OWNER}/{REPO}"})
            assert response.status_code == 200, response.text
            rows[:] = response.json()
            titles = {p.number: c.title for p in await world.pulls() if (c := p.check(QUEUE_CHECK)) is not None}
            # ...once CI has reported on every head (its webhooks keep the queue's facts; until the last one is
            # in, that pull request waits for CI, with no place in the order).
            settled = len(rows) == 3 and all(row["position"] is not None for row in rows)
            return settled and {row["number"]: row["check_title"] for row in rows} == titles

        await world.wait_for(agrees, 20, "the dashboard's queue to match the checks on GitHub, CI in",
                             seen=lambda: asyncio.sleep(0, repr(rows)))
    # One fan-out of three attempts: one review slot, the leader first and its two alternatives sharing its place.
    assert [row["position"] for row in rows] == [1, 1, 1]
    # Nothing is approved yet, so nothing may merge: exactly one is next for review, the others wait (in_progress).
    pulls = await world.pulls()
    heads = [p.number for p in pulls if (c := p.check(QUEUE_CHECK)) is not None and c.title == NEXT_FOR_REVIEW]
    assert len(heads) == 1, _pulls_text_of(pulls)
    assert rows[0]["number"] == heads[0]
    assert [row["check_title"] for row in rows[1:]] == [f"Alternative to #{heads[0]} — review only if "
                                                         f"#{heads[0]} is rejected"] * 2


async def test_an_unknown_task_label_gets_a_reply_and_starts_nothing(world: World) -> None:
    issue = await _issue(world)
    await world.sandbox.aio.add_label(OWNER, REPO, issue, "agent:dance", sender=sample.MAINTAINER)
    reply = await _reply(world, issue, "does not name a task of this repository")
    assert "`agent:dance`" in reply.body
    assert "`fix`" in reply.body  # the known tasks are listed
    assert await world.runs(issue) == []
    await world.wait_for(lambda: _label_gone(world, issue, "agent:dance"), 10, "the label to be removed")


async def test_a_sender_without_write_permission_is_refused(world: World) -> None:
    issue = await _issue(world)
    await world.sandbox.aio.add_label(OWNER, REPO, issue, "agent:fix", sender="drive-by")
    reply = await _reply(world, issue, "Sorry @drive-by")
    assert "`write`" in reply.body
    assert await world.runs(issue) == []


async def test_agent_status_answers_with_the_table_of_runs(world: World) -> None:
    issue = await _issue(world)
    await world.sandbox.aio.comment(OWNER, REPO, issue, "/agent status", sender=sample.MAINTAINER)
    await _reply(world, issue, messages.STATUS_EMPTY.format(kind="issue"))
    await world.sandbox.aio.add_label(OWNER, REPO, issue, "agent:fix", sender=sample.MAINTAINER)
    await world.wait_for(lambda: world.runs_settled(3, issue), 40, "three runs to end")
    await world.sandbox.aio.comment(OWNER, REPO, issue, "/agent status", sender=sample.MAINTAINER)
    reply = await _reply(world, issue, messages.STATUS_REPLY.format(kind="issue", count=3, table="").strip())
    assert messages.STATUS_TABLE_HEAD in reply.body
    for run in await world.runs(issue):
        assert f"| {run.id} | {run.agent}" in reply.body


async def _label_gone(world: World, issue: int, label: str) -> bool:
    return label not in await world.labels(issue)


async def _pulls_text(world: World) -> str:
    return _pulls_text_of(await world.pulls())


def _pulls_text_of(pulls: Sequence[object]) -> str:
    return "\n".join(repr(p) for p in pulls) or "no pull requests"
