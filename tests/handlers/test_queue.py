"""Queue commands, buttons and events through the inbox, the real dispatcher and `root_router()`, with and without
permission, against the shared FakeGitHub."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot import messages
from bot.github import CheckRunInfo, PullRequestInfo
from bot.github.models import PullReview
from bot.store.models import PullRequest, Run, RunState, Trigger
from tests.deliveries import load
from tests.handlers.harness import (
    APP_ID,
    DEFAULT_BRANCH,
    FULL_NAME,
    INSTALLATION_ID,
    OWNER,
    PULL,
    REPO,
    Harness,
    harness,
    issue_comment,
    user,
)
from tests.queue.support import sha

READER = "reader"


@pytest.fixture
async def h(database_url: str) -> AsyncIterator[Harness]:
    async with harness(database_url) as world:
        world.gh.permissions[READER] = "read"
        world.gh.branch_shas[(OWNER, REPO, DEFAULT_BRANCH)] = sha("base")
        yield world


async def add_pr(
    h: Harness, number: int, *, kickoff: bool = True, labels: tuple[str, ...] = (), run: Run | None = None,
    rank: int | None = None,
) -> PullRequestInfo:
    head = sha(f"head-{number}")
    pull = PullRequestInfo(
        number=number, state="open", merged=False, draft=False, title=f"Change {number}", author="kickoff[bot]",
        head_ref=f"kickoff/{number}", head_sha=head, head_repo=FULL_NAME, base_ref=DEFAULT_BRANCH, mergeable=True,
        html_url=f"https://github.com/{FULL_NAME}/pull/{number}",
    )
    h.gh.pulls[(OWNER, REPO, number)] = pull
    h.gh.labels[(OWNER, REPO, number)] = list(labels)
    h.gh.foreign_check_runs[(OWNER, REPO, head)] = [CheckRunInfo(
        id=number, name="ci", head_sha=head, status="completed", conclusion="success", app_id=1, title="", summary=""
    )]
    if kickoff:
        now = h.clock()
        async with h.services.store.sessions.begin() as session:
            session.add(PullRequest(
                installation_id=INSTALLATION_ID, repository=FULL_NAME, number=number, agent="claude",
                title=pull.title, head_ref=pull.head_ref, head_sha=head, base_ref=DEFAULT_BRANCH, state="open",
                created_at=now, updated_at=now, run_id=run.id if run else None,
                trigger_id=run.trigger_id if run else None, rank=rank,
            ))
    return pull


async def add_fanout(h: Harness, ranks: dict[int, int]) -> None:
    """One trigger's runs, each with its open pull request (number → rank)."""
    now = h.clock()
    async with h.services.store.sessions.begin() as session:
        trigger = Trigger(delivery_id="d-fanout", seq=0, installation_id=INSTALLATION_ID, repository=FULL_NAME,
                          issue_number=1, source="label", task="fix", sender="Codertocat", created_at=now)
        session.add(trigger)
        await session.flush()
        runs = [Run(trigger_id=trigger.id, installation_id=INSTALLATION_ID, repository=FULL_NAME, issue_number=1,
                    task="fix", agent="claude", attempt=n, state=RunState.SUCCEEDED, created_at=now,
                    updated_at=now) for n in range(1, len(ranks) + 1)]
        session.add_all(runs)
    for (number, rank), run in zip(sorted(ranks.items()), runs, strict=True):
        await add_pr(h, number, run=run, rank=rank)


async def row(h: Harness, number: int) -> PullRequest:
    from sqlalchemy import select

    async with h.services.store.sessions() as session:
        found = await session.scalar(select(PullRequest).where(PullRequest.number == number))
    assert found is not None
    return found


def title(h: Harness, number: int) -> str:
    head = h.gh.pulls[(OWNER, REPO, number)].head_sha
    runs = [run for _, run in sorted(h.gh.check_runs.items()) if run["head_sha"] == head]
    return str(runs[-1]["title"]) if runs else ""


async def say(h: Harness, body: str, *, sender: str = "Codertocat", number: int = PULL) -> str:
    payload = issue_comment(body, sender=user(sender), on_pull_request=True)
    payload["issue"]["number"] = number
    before = len(h.gh.calls_to("comment"))
    delivery = await h.deliver("issue_comment", payload)
    assert delivery.status == "done", delivery.last_error
    replies = h.gh.calls_to("comment")[before:]
    assert len(replies) == 1, replies
    return str(replies[0][4])


async def test_bump_priority_skip_hold_and_unqueue_through_comments(h: Harness) -> None:
    await add_pr(h, 1)
    await add_pr(h, PULL)
    await add_pr(h, 3)
    shown = await say(h, "/agent queue")
    assert shown.startswith("**Review queue** — #2: Queued for review: 2nd in line — review #1 first\n\n"
                            "**Place in review order:** 2 of 3.")
    reply = await say(h, "/agent bump")
    assert reply.startswith("Moved #2 to the front of the review queue (by @Codertocat).")
    assert title(h, PULL) == "Next for review"
    assert title(h, 1) == "Queued for review: 2nd in line — review #2 first"
    reply = await say(h, "/agent skip")
    assert reply.startswith("#2 lets #1 go ahead of it, once.")
    assert title(h, 1) == "Next for review"
    assert (await row(h, PULL)).let_ahead == 1
    await say(h, "/agent priority low", number=3)
    assert (await row(h, 3)).priority == "low"
    assert (await say(h, "/agent hold")).startswith("#2 is on hold")
    assert title(h, PULL) == "On hold"
    await say(h, "/agent unhold")
    assert not (await row(h, PULL)).held
    assert (await say(h, "/agent unqueue")).startswith("Took #2 out of the review queue.")
    assert title(h, PULL) == "Dequeued: MANUAL"
    assert (await say(h, "/agent requeue")).startswith("Put #2 back into the review queue.")
    assert title(h, PULL).startswith("Queued for review")


async def test_commands_need_write_except_queue(h: Harness) -> None:
    await add_pr(h, PULL)
    reply = await say(h, "/agent bump", sender=READER)
    assert reply.startswith(f"Sorry @{READER}, `/agent bump` needs at least `write` permission")
    assert (await row(h, PULL)).bumped_at is None
    assert (await say(h, "/agent queue", sender=READER)).startswith("**Review queue** — #2: Next for review")


async def test_prefer_makes_a_sibling_the_leader_for_writers_only(h: Harness) -> None:
    await add_fanout(h, {1: 1, PULL: 2, 3: 3})
    shown = await say(h, "/agent queue")
    assert shown.startswith("**Review queue** — #2: Alternative to #1 — review only if #1 is rejected\n\n"
                            "**Place in review order:** 1 of 1.")
    reply = await say(h, "/agent prefer", sender=READER)
    assert reply.startswith(f"Sorry @{READER}, `/agent prefer` needs at least `write` permission")
    assert (await row(h, PULL)).preferred_at is None
    assert title(h, PULL) == "Alternative to #1 — review only if #1 is rejected"
    reply = await say(h, "/agent prefer")
    assert reply.split("\n\n<!-- kickoff:reply ")[0] == (
        "#2 now leads its fan-out (preferred by @Codertocat): it takes the fan-out's review slot, and #1, #3 wait "
        "as alternatives. Its `review-queue` check now says: **Next for review**"
    )
    assert (await row(h, PULL)).preferred_at == h.clock()
    assert title(h, PULL) == "Next for review"
    assert title(h, 1) == "Alternative to #2 — review only if #2 is rejected"
    assert title(h, 3) == "Alternative to #2 — review only if #2 is rejected"
    h.clock.advance(60)
    assert (await say(h, "/agent prefer", number=3)).startswith("#3 now leads its fan-out")
    assert title(h, 3) == "Next for review"
    assert title(h, PULL) == "Alternative to #3 — review only if #3 is rejected"


async def test_prefer_on_a_sibling_with_changes_requested_says_it_does_not_lead(h: Harness) -> None:
    await add_fanout(h, {1: 1, PULL: 2})
    h.gh.permissions["rev"] = "write"
    h.gh.pull_reviews[(OWNER, REPO, PULL)] = [PullReview(1, "rev", "CHANGES_REQUESTED")]
    reply = await say(h, "/agent prefer")
    assert reply.split("\n\n<!-- kickoff:reply ")[0] == (
        "Preferred #2 (by @Codertocat), but it does not lead its fan-out while it has changes requested or is out "
        "of the queue: a sibling without either keeps the review slot. Its `review-queue` check now says: "
        "**Alternative to #1 — review only if #1 is rejected**"
    )
    assert (await row(h, PULL)).preferred_at == h.clock()
    assert title(h, 1) == "Next for review"


async def test_prefer_on_a_pull_request_without_siblings_says_so(h: Harness) -> None:
    await add_pr(h, PULL)
    reply = await say(h, "/agent prefer")
    assert reply.split("\n\n<!-- kickoff:reply ")[0] == messages.QUEUE_PREFER_ALONE.format(number=PULL)
    assert (await row(h, PULL)).preferred_at is None


async def test_queue_on_an_issue_and_on_a_pull_request_not_queued(h: Harness) -> None:
    await add_pr(h, 5)
    payload = issue_comment("/agent queue")
    await h.deliver("issue_comment", payload)
    reply = h.gh.calls_to("comment")[-1][4]
    assert reply.startswith(f"**Review queue of `{DEFAULT_BRANCH}`**")
    assert "#5" in reply
    assert (await say(h, "/agent bump")).startswith(messages.QUEUE_NOT_QUEUED.format(number=PULL)[:30])


async def test_rebase_updates_the_branch_now(h: Harness) -> None:
    await add_pr(h, PULL)
    old = h.gh.pulls[(OWNER, REPO, PULL)].head_sha
    reply = await say(h, "/agent rebase")
    assert reply.startswith("Brought #2 up to date with `master`")
    assert h.gh.calls_to("update_branch") == [(INSTALLATION_ID, OWNER, REPO, PULL, old)]
    h.gh.conflicting.add((OWNER, REPO, PULL))
    h.gh.pulls[(OWNER, REPO, PULL)] = PullRequestInfo(**{**h.gh.pulls[(OWNER, REPO, PULL)].__dict__,
                                                         "head_sha": sha("other")})
    reply = await say(h, "/agent rebase")
    assert reply.startswith("#2 conflicts with `master`, so GitHub cannot update it: an agent run")
    assert [(r.task, r.pr_number) for r in await h.runs()] == [("fix", PULL)]


def button(h: Harness, check_run_id: int, identifier: str, sender: str, *, app_id: int = APP_ID) -> dict[str, Any]:
    payload = copy.deepcopy(load("check_run.requested_action.1.json"))
    head = h.gh.pulls[(OWNER, REPO, PULL)].head_sha
    payload["repository"] = load("issue_comment.created.4.json")["repository"]
    payload["installation"] = {"id": INSTALLATION_ID}
    payload["sender"] = user(sender)
    payload["requested_action"] = {"identifier": identifier}
    payload["check_run"].update(id=check_run_id, name="review-queue", head_sha=head, app={
        **payload["check_run"]["app"], "id": app_id
    })
    payload["check_run"]["pull_requests"] = [{
        "number": PULL, "id": 1, "url": "https://api.github.com/x",
        "head": {"ref": "kickoff/2", "sha": head, "repo": {"id": 1, "url": "x", "name": REPO}},
        "base": {"ref": DEFAULT_BRANCH, "sha": sha("base"), "repo": {"id": 1, "url": "x", "name": REPO}},
    }]
    return payload


async def test_buttons_move_to_front_and_remove_through_the_gate(h: Harness) -> None:
    await add_pr(h, 1)
    await add_pr(h, PULL)
    await say(h, "/agent queue")
    check_run_id = (await row(h, PULL)).queue_check_run_id
    assert check_run_id is not None
    # Someone without write permission: refused, in one reply on the pull request.
    before = len(h.gh.calls_to("comment"))
    await h.deliver("check_run", button(h, check_run_id, "bump", READER))
    refusal = h.gh.calls_to("comment")[before:]
    assert len(refusal) == 1
    assert "the **Move to front** button of the `review-queue` check needs at least `write`" in refusal[0][4]
    assert (await row(h, PULL)).bumped_at is None
    # A maintainer: bumped, and the checks say so (no comment).
    before = len(h.gh.calls_to("comment"))
    await h.deliver("check_run", button(h, check_run_id, "bump", "Codertocat"))
    assert (await row(h, PULL)).bumped_at is not None
    assert title(h, PULL) == "Next for review"
    assert h.gh.calls_to("comment")[before:] == []
    await h.deliver("check_run", button(h, check_run_id, "unqueue", "Codertocat"))
    assert (await row(h, PULL)).unqueued
    # Another App's check with the same button identifier is not ours.
    await h.deliver("check_run", button(h, check_run_id, "unqueue", "Codertocat", app_id=1))


async def test_events_reconcile_and_kickoffs_own_checks_do_not(h: Harness) -> None:
    await add_pr(h, 1)
    # A human pull request joins when labelled `kickoff:queue`.
    await add_pr(h, PULL, kickoff=False, labels=("kickoff:queue",))
    payload = copy.deepcopy(load("pull_request.labeled.1.json"))
    payload["installation"] = {"id": INSTALLATION_ID}
    payload["label"] = {**payload["label"], "name": "kickoff:queue"}
    payload["pull_request"]["labels"] = [payload["label"]]
    payload["pull_request"]["head"]["sha"] = h.gh.pulls[(OWNER, REPO, PULL)].head_sha
    await h.deliver("pull_request", payload)
    assert (await row(h, PULL)).agent is None
    assert title(h, 1) == "Next for review"
    assert title(h, PULL) == "Queued for review: 2nd in line — review #1 first"
    # Kickoff's own check runs complete: nothing to do.
    own = copy.deepcopy(load("check_run.completed.1.json"))
    own["installation"] = {"id": INSTALLATION_ID}
    own["check_run"]["app"]["id"] = APP_ID
    before = len(h.gh.calls)
    await h.deliver("check_run", own)
    assert h.gh.calls[before:] == []
    # An approval by a writer moves the lane: #1 is brought up to date.
    h.gh.permissions["rev"] = "write"
    h.gh.pull_reviews[(OWNER, REPO, 1)] = [PullReview(1, "rev", "APPROVED")]
    review = copy.deepcopy(load("pull_request_review.submitted.2.json"))
    review["installation"] = {"id": INSTALLATION_ID}
    review["pull_request"]["number"] = 1
    review["review"].update(id=1, state="approved", user=user("rev"))  # what the fake holds, as GitHub says it
    await h.deliver("pull_request_review", review)
    assert [args[3] for args in h.gh.calls_to("update_branch")] == [1]
    # A push to the base branch reconciles its queue.
    push = copy.deepcopy(load("push.none.1.json"))
    push["installation"] = {"id": INSTALLATION_ID}
    push["ref"] = f"refs/heads/{DEFAULT_BRANCH}"
    push["repository"]["full_name"] = FULL_NAME
    before = len(h.gh.calls_to("get_branch_sha"))
    await h.deliver("push", push)
    assert len(h.gh.calls_to("get_branch_sha")) == before + 1
