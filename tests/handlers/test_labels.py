"""Agent labels: `issues.labeled` and `issues.opened` with `agent:<task>` labels, end to end through the dispatcher."""

from __future__ import annotations

import pytest

from bot.github import GitHubUnavailable
from bot.runs import planning
from bot.store.models import RunState
from tests.handlers.harness import (
    CONFIG,
    DEFAULT_BRANCH,
    FULL_NAME,
    INSTALLATION_ID,
    ISSUE,
    OWNER,
    REPO,
    Harness,
    harness,
    labeled,
    opened,
    user,
)

FAN_OUT = """\
tasks:
  fix: {agents: [claude, codex], attempts: 2}
"""


async def test_label_plans_one_run_per_agent_and_attempt(h: Harness) -> None:
    h.config(FAN_OUT)
    h.label_is_on("agent:fix", "bug")

    row = await h.deliver("issues", labeled("agent:fix"))

    assert row.status == "done"
    (trigger,) = await h.triggers()
    assert (trigger.source, trigger.task, trigger.sender, trigger.seq, trigger.issue_number) == (
        "label", "fix", "Codertocat", 0, ISSUE,
    )
    assert (trigger.repository, trigger.installation_id, trigger.is_pull_request) == (FULL_NAME, INSTALLATION_ID, False)
    runs = await h.runs()
    assert [(r.agent, r.attempt) for r in runs] == [("claude", 1), ("claude", 2), ("codex", 1), ("codex", 2)]
    assert {(r.state, r.kind, r.task, r.trigger_id, r.base_branch) for r in runs} == {
        (RunState.QUEUED, "new", "fix", trigger.id, DEFAULT_BRANCH)
    }
    assert all(r.created_at == h.clock() == r.updated_at for r in runs)
    transitions = await h.transitions()
    assert [(t.run_id, t.from_state, t.to_state) for t in transitions] == [(r.id, None, "queued") for r in runs]
    assert transitions[0].reason == "label agent:fix by @Codertocat"
    assert h.services.runs_changed.is_set()

    # One tracking comment, recorded on the trigger; the label is gone so it can be applied again.
    (tracking,) = h.bot_comments()
    assert trigger.tracking_comment_id == tracking.id
    assert tracking.body.startswith("Starting 4 runs of `fix` for @Codertocat: claude ×2, codex ×2…")
    assert f"| claude (attempt 2) | #{runs[1].id} | queued |" in tracking.body
    assert h.gh.labels[(OWNER, REPO, ISSUE)] == ["bug"]
    assert h.gh.calls_to("remove_label") == [(INSTALLATION_ID, OWNER, REPO, ISSUE, "agent:fix")]
    # No 👀 on the issue: the tracking comment is the label's acknowledgement (one write fewer, issue 15).
    assert h.gh.calls_to("add_reaction_to_issue") == []


async def test_config_is_read_from_the_default_branch(h: Harness) -> None:
    h.config("tasks: {fix: {agents: [codex]}}")
    h.gh.set_file(OWNER, REPO, CONFIG, "tasks: {fix: {agents: [gemini]}}", ref="feature")  # a branch's copy
    h.label_is_on("agent:fix")

    await h.deliver("issues", labeled("agent:fix"))

    assert [r.agent for r in await h.runs()] == ["codex"]
    # No `ref`: GitHub's default branch, never the feature branch's copy (and one URL, so one stored ETag).
    reads = {(args[2], args[3], args[4]) for args in h.gh.calls_to("get_file")}
    assert reads == {(REPO, CONFIG, None), (".github", CONFIG, None)}


async def test_no_config_file_means_the_builtin_defaults(h: Harness) -> None:
    h.label_is_on("agent:research")

    await h.deliver("issues", labeled("agent:research"))

    assert [(r.task, r.agent, r.attempt) for r in await h.runs()] == [("research", "claude", 1)]


async def test_a_label_that_is_not_kickoffs_is_ignored_without_a_call(h: Harness) -> None:
    row = await h.deliver("issues", labeled("bug"))
    assert row.status == "done"
    assert h.gh.calls == []


async def test_an_unknown_task_is_answered_with_the_known_tasks_and_the_label_is_removed(h: Harness) -> None:
    h.config("tasks: {docs: {agents: [gemini], description: Write the docs}}")
    h.label_is_on("agent:Frobnicate`<!-- x -->")

    await h.deliver("issues", labeled("agent:Frobnicate`<!-- x -->"))

    assert await h.triggers() == []
    (reply,) = h.bot_comments()
    assert "`agent:Frobnicate'` does not name a task" in reply.body
    assert "Known tasks: `docs`, `fix`, `implement`, `research`." in reply.body
    assert h.gh.labels[(OWNER, REPO, ISSUE)] == []


async def test_a_repo_task_label_and_org_defaults_with_extends(database_url: str) -> None:
    async with harness(database_url, KICKOFF_CONFIG_EXTENDS="codertocat/shared-config") as h:
        await _org_defaults_with_extends(h)


async def _org_defaults_with_extends(h: Harness) -> None:
    # Org-wide defaults in Codertocat/.github; the repo extends a shared config (the operator lists it) and adds to it.
    h.config("tasks: {docs: {agents: [gemini], description: Write docs}}\nlimits: {max_parallel_runs: 7}",
             repo=".github")
    h.config("tasks:\n  fix: {agents: [claude, codex]}\n", repo="shared-config")
    h.config("_extends: shared-config\ntasks:\n  fix: {attempts: 2}\n")
    h.label_is_on("agent:docs", "agent:fix")

    await h.deliver("issues", labeled("agent:docs"))
    await h.deliver("issues", labeled("agent:fix"))

    runs = await h.runs()
    assert [(r.task, r.agent, r.attempt) for r in runs] == [
        ("docs", "gemini", 1), ("fix", "claude", 1), ("fix", "claude", 2), ("fix", "codex", 1), ("fix", "codex", 2),
    ]
    assert h.gh.labels[(OWNER, REPO, ISSUE)] == []


async def test_a_broken_config_is_reported_with_line_and_column_and_nothing_is_planned(h: Harness) -> None:
    h.config("tasks:\n  fix:\n    agents: [claude]\n    attempts: many\nrunner: moon\n")
    h.label_is_on("agent:fix")

    row = await h.deliver("issues", labeled("agent:fix"))

    assert row.status == "done"
    assert await h.triggers() == []
    (reply,) = h.bot_comments()
    assert reply.body.startswith("Kickoff could not use its configuration, so it started nothing.")
    assert f"- `{FULL_NAME}:{CONFIG}:4:5` `tasks.fix.attempts`: must be a valid integer (got \"many\")" in reply.body
    assert f"- `{FULL_NAME}:{CONFIG}:5:1` `runner`:" in reply.body
    # Reported only once the sender passed the safe default gate (write).
    assert h.gh.calls_to("get_collaborator_permission") == [(INSTALLATION_ID, OWNER, REPO, "Codertocat")]


async def test_a_bot_adding_a_label_is_ignored_silently(h: Harness) -> None:
    h.label_is_on("agent:fix")
    await h.deliver("issues", labeled("agent:fix", sender=user("renovate[bot]", "Bot")))

    assert await h.triggers() == []
    assert h.writes() == []
    assert h.gh.calls_to("get_collaborator_permission") == []
    assert h.gh.labels[(OWNER, REPO, ISSUE)] == ["agent:fix"]


async def test_a_label_from_someone_without_permission_is_refused_politely(h: Harness) -> None:
    h.gh.permissions["triager"] = "triage"
    h.label_is_on("agent:fix")

    await h.deliver("issues", labeled("agent:fix", sender=user("triager")))

    assert await h.triggers() == []
    (reply,) = h.bot_comments()
    assert reply.body.startswith(
        "Sorry @triager, the label `agent:fix` needs at least `write` permission on this repository and you have "
        "`triage`"
    )
    assert h.gh.labels[(OWNER, REPO, ISSUE)] == []


async def test_an_issue_opened_with_agent_labels_plans_one_trigger_per_label(h: Harness) -> None:
    h.config("tasks: {docs: {agents: [gemini, aider]}}")
    h.label_is_on("bug", "agent:fix", "agent:docs")
    payload = opened(["bug", "agent:fix", "agent:docs"], sender=user("Codertocat"))

    await h.deliver("issues", payload)

    triggers_ = await h.triggers()
    assert [(t.seq, t.task) for t in triggers_] == [(0, "fix"), (1, "docs")]
    assert [(r.task, r.agent) for r in await h.runs()] == [("fix", "claude"), ("docs", "gemini"), ("docs", "aider")]
    assert len(h.bot_comments()) == 2
    assert h.gh.labels[(OWNER, REPO, ISSUE)] == ["bug"]

    # GitHub also sends `issues.labeled` for the labels an issue was opened with: they find the label gone.
    await h.deliver("issues", labeled("agent:fix"))
    assert len(await h.triggers()) == 2
    assert len(h.bot_comments()) == 2


async def test_labeled_first_then_opened_plans_once(h: Harness) -> None:
    h.label_is_on("agent:fix")
    await h.deliver("issues", labeled("agent:fix"))
    await h.deliver("issues", opened(["agent:fix"]))
    assert len(await h.triggers()) == 1


async def test_a_replayed_delivery_plans_nothing_new(h: Harness) -> None:
    h.config(FAN_OUT)
    h.label_is_on("agent:fix")
    row = await h.deliver("issues", labeled("agent:fix"), delivery_id="replayed-1")
    before = (len(await h.triggers()), len(await h.runs()), len(await h.transitions()))

    h.label_is_on("agent:fix")  # even with the label back on (someone re-applied it), the old delivery plans nothing
    again = await h.replay(row.id)

    assert again.status == "done"
    assert (len(await h.triggers()), len(await h.runs()), len(await h.transitions())) == before == (1, 4, 4)
    assert len(h.bot_comments()) == 1


async def test_a_crash_after_the_insert_posts_the_tracking_comment_on_retry(h: Harness) -> None:
    h.label_is_on("agent:fix")
    h.gh.fail("comment", GitHubUnavailable("GitHub is down", status=502))

    row = await h.deliver("issues", labeled("agent:fix"))

    assert (row.status, row.attempts) == ("done", 2)
    (trigger,) = await h.triggers()
    assert len(await h.runs()) == 1
    (tracking,) = h.bot_comments()
    assert trigger.tracking_comment_id == tracking.id
    assert h.gh.labels[(OWNER, REPO, ISSUE)] == []


async def test_a_crash_after_posting_the_tracking_comment_does_not_post_a_second(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h.label_is_on("agent:fix")
    real = planning.set_tracking_comment
    crashes = [RuntimeError("the process died here")]

    async def crash_once(*args: object) -> bool:
        if crashes:
            raise crashes.pop()
        return await real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr("bot.triggers.service.set_tracking_comment", crash_once)

    row = await h.deliver("issues", labeled("agent:fix"))

    assert (row.status, row.attempts) == ("done", 2)
    (tracking,) = h.bot_comments()
    (trigger,) = await h.triggers()
    assert trigger.tracking_comment_id == tracking.id


async def test_a_failed_label_removal_is_retried_without_a_second_reply(h: Harness) -> None:
    h.label_is_on("agent:nope")
    h.gh.fail("remove_label", GitHubUnavailable("GitHub is down", status=502))

    row = await h.deliver("issues", labeled("agent:nope"))

    assert (row.status, row.attempts) == ("done", 2)
    assert len(h.bot_comments()) == 1
    assert h.gh.labels[(OWNER, REPO, ISSUE)] == []
