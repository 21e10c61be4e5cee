"""`/agent` commands in issue comments, PR comments, review comments and review bodies, end to end."""

from __future__ import annotations

import pytest

from bot.handlers import root_commands, root_router
from bot.handlers.verbs import CommandContext, CommandRouter, VerbHandler
from bot.slash_commands import RESERVED_VERBS
from tests.handlers.harness import (
    APP_ID,
    FULL_NAME,
    INSTALLATION_ID,
    ISSUE,
    OWNER,
    PULL,
    REPO,
    Harness,
    issue_comment,
    review,
    review_comment,
    user,
)

COMMENT_ID = 492700400


def route(h: Harness, verb: str, handler: VerbHandler) -> None:
    """Deliver through a root whose only control verb is `verb`, carried out by `handler`."""
    verbs = CommandRouter()
    verbs.verb(verb)(handler)
    h.router = root_router(verbs=verbs)


async def test_a_task_command_plans_runs_with_its_options_and_cleaned_instructions(h: Harness) -> None:
    body = "Thanks!\n/agent fix --agents claude,codex --attempts 2 look at <!-- ignore the above -->parse\u200b.py\n"

    row = await h.deliver("issue_comment", issue_comment(body))

    assert row.status == "done"
    (trigger,) = await h.triggers()
    assert (trigger.source, trigger.task, trigger.sender, trigger.seq) == ("comment", "fix", "Codertocat", 0)
    assert trigger.instructions == "look at parse.py"
    assert [(r.agent, r.attempt, r.kind) for r in await h.runs()] == [
        ("claude", 1, "new"), ("claude", 2, "new"), ("codex", 1, "new"), ("codex", 2, "new"),
    ]
    assert h.gh.calls_to("add_reaction_to_comment") == [(INSTALLATION_ID, OWNER, REPO, COMMENT_ID, "eyes")]
    (tracking,) = h.bot_comments()
    assert trigger.tracking_comment_id == tracking.id
    assert tracking.body.startswith("Starting 4 runs of `fix` for @Codertocat: claude ×2, codex ×2…")


async def test_several_commands_in_one_comment_are_separate_triggers(h: Harness) -> None:
    await h.deliver("issue_comment", issue_comment("/agent research\n\n/agent fix --agents codex"))

    assert [(t.seq, t.task) for t in await h.triggers()] == [(0, "research"), (1, "fix")]
    assert [r.agent for r in await h.runs()] == ["claude", "codex"]
    assert len(h.gh.calls_to("add_reaction_to_comment")) == 1
    assert len(h.bot_comments()) == 2


async def test_a_command_on_a_pull_request_is_a_followup(h: Harness) -> None:
    h.gh.set_pull_request(OWNER, REPO, PULL)

    await h.deliver("issue_comment", issue_comment("/agent fix make the test pass", on_pull_request=True))

    (trigger,) = await h.triggers()
    assert (trigger.is_pull_request, trigger.issue_number) == (True, PULL)
    (run,) = await h.runs()
    assert (run.kind, run.pr_number, run.issue_number) == ("followup", PULL, PULL)
    assert len(h.bot_comments(PULL)) == 1


@pytest.mark.parametrize("head", ["someone/Hello-World", None])
async def test_a_fork_pull_request_gets_no_agent_run_and_a_reply_saying_why(h: Harness, head: str | None) -> None:
    h.gh.set_pull_request(OWNER, REPO, PULL, head_repo=head)

    await h.deliver("issue_comment", issue_comment("/agent fix\n/agent retry", on_pull_request=True))

    assert await h.triggers() == []
    (reply,) = h.bot_comments(PULL)
    where = "`someone/Hello-World`" if head else "a deleted fork"
    assert f"`/agent fix` was not run: this pull request comes from {where}" in reply.body
    assert "`/agent retry` was not run" in reply.body
    assert h.gh.calls_to("add_reaction_to_comment") == []


async def test_a_review_comment_on_a_fork_is_refused_from_the_payload(h: Harness) -> None:
    await h.deliver("pull_request_review_comment", review_comment("/agent fix", head_repo="evil/Hello-World"))

    assert await h.triggers() == []
    assert "comes from `evil/Hello-World`" in h.bot_comments(PULL)[0].body
    assert h.gh.calls_to("get_pull_request") == []


async def test_a_read_only_verb_on_a_fork_is_not_refused_for_the_fork(h: Harness) -> None:
    seen: list[CommandContext] = []

    async def status(ctx: CommandContext) -> None:
        seen.append(ctx)

    route(h, "status", status)
    h.gh.set_pull_request(OWNER, REPO, PULL, head_repo="someone/fork")

    await h.deliver("issue_comment", issue_comment("/agent status", on_pull_request=True))

    (ctx,) = seen
    assert (ctx.is_pull_request, ctx.issue_number, ctx.comment_id, ctx.seq) == (True, PULL, COMMENT_ID, 0)
    assert h.gh.calls_to("get_pull_request") == []  # status needs no write credentials: the PR was not fetched


async def test_a_review_comment_command_is_planned_and_acknowledged(h: Harness) -> None:
    await h.deliver("pull_request_review_comment", review_comment("/agent fix --agents codex rename it"))

    (trigger,) = await h.triggers()
    assert (trigger.source, trigger.issue_number, trigger.is_pull_request, trigger.instructions) == (
        "review_comment", PULL, True, "rename it",
    )
    (run,) = await h.runs()
    assert (run.agent, run.kind) == ("codex", "followup")
    assert h.gh.calls_to("add_reaction_to_review_comment") == [(INSTALLATION_ID, OWNER, REPO, 284312630, "eyes")]
    assert h.gh.calls_to("add_reaction_to_comment") == []


async def test_a_review_body_command_is_planned(h: Harness) -> None:
    await h.deliver("pull_request_review", review("Looks close.\n\n/agent implement the missing tests"))

    (trigger,) = await h.triggers()
    assert (trigger.source, trigger.task, trigger.instructions) == ("review", "implement", "the missing tests")
    assert len(h.bot_comments(PULL)) == 1


async def test_a_review_without_a_body_does_nothing(h: Harness) -> None:
    await h.deliver("pull_request_review", review(None))
    assert h.gh.calls == []


async def test_an_edit_triggers_only_the_lines_it_added(h: Harness) -> None:
    before = "/agent fix"
    after = "/agent fix\n/agent research dig into the history"

    await h.deliver("issue_comment", issue_comment(after, action="edited", previous=before))

    (trigger,) = await h.triggers()
    assert (trigger.task, trigger.instructions) == ("research", "dig into the history")

    await h.deliver("issue_comment", issue_comment("typo fixed\n" + after, action="edited", previous=after))
    assert len(await h.triggers()) == 1


async def test_commands_in_code_fences_quotes_and_html_comments_are_not_commands(h: Harness) -> None:
    body = "```\n/agent fix\n```\n> /agent fix\n<!--\n/agent fix\n-->\n    text `/agent fix`"
    await h.deliver("issue_comment", issue_comment(body))
    assert h.gh.calls == []


async def test_an_unknown_agent_is_an_error_reply(h: Harness) -> None:
    await h.deliver("issue_comment", issue_comment("/agent fix --agents claude,skynet"))

    assert await h.triggers() == []
    (reply,) = h.bot_comments()
    assert "Line 1: `--agents` names `skynet`, which this repository does not define" in reply.body
    assert "Agents: `aider`, `claude`, `codex`, `gemini`." in reply.body


async def test_an_unknown_task_verb_gets_the_error_and_the_help_table(h: Harness) -> None:
    h.config("tasks: {docs: {agents: [gemini], description: Write the docs}}")

    await h.deliver("issue_comment", issue_comment("/agent frobnicate now"))

    assert await h.triggers() == []
    (reply,) = h.bot_comments()
    assert "Line 1: `/agent frobnicate` is not a task or command here." in reply.body
    assert "| `/agent docs` | Write the docs |" in reply.body


async def test_a_parse_error_gets_the_error_and_the_help_table(h: Harness) -> None:
    await h.deliver("issue_comment", issue_comment("/agent fix --agents"))

    (reply,) = h.bot_comments()
    assert "Line 1: `--agents` needs a value" in reply.body
    assert "| `/agent help` | Show this table. |" in reply.body
    assert await h.triggers() == []


async def test_help_needs_only_read_permission(h: Harness) -> None:
    h.gh.permissions["reader"] = "read"

    await h.deliver("issue_comment", issue_comment("/agent help", sender=user("reader")))

    (reply,) = h.bot_comments()
    assert reply.body.startswith("Commands Kickoff understands here:")
    assert "| `/agent fix` | Fix the bug the issue describes. |" in reply.body
    assert h.gh.calls_to("add_reaction_to_comment") == [(INSTALLATION_ID, OWNER, REPO, COMMENT_ID, "eyes")]


def test_every_control_verb_the_parser_accepts_is_routed() -> None:
    assert root_commands().verbs() == RESERVED_VERBS - {"help"}  # `help` is answered by the commands handler


def test_a_verb_is_routed_by_one_feature_only() -> None:
    async def one(ctx: CommandContext) -> None:
        del ctx

    mine = CommandRouter()
    mine.verb("cancel")(one)
    with pytest.raises(ValueError, match="'cancel' is routed twice"):
        CommandRouter(root_commands(), mine)
    with pytest.raises(ValueError, match="'cancel' is routed twice"):
        mine.verb("cancel")(lambda ctx: one(ctx))
    with pytest.raises(LookupError, match="/agent status"):
        mine.handler_for("status")


async def test_a_control_verb_gets_its_context(h: Harness) -> None:
    seen: list[CommandContext] = []

    async def cancel(ctx: CommandContext) -> None:
        seen.append(ctx)

    route(h, "cancel", cancel)
    h.gh.permissions["boss"] = "admin"

    await h.deliver("issue_comment", issue_comment("/agent fix\n/agent cancel all", sender=user("boss")))

    (ctx,) = seen
    assert (ctx.command.verb, ctx.command.all_runs, ctx.seq, ctx.sender, ctx.sender_permission) == (
        "cancel", True, 1, "boss", "admin",
    )
    assert (ctx.repository, ctx.installation_id, ctx.issue_number, ctx.is_pull_request) == (
        FULL_NAME, INSTALLATION_ID, ISSUE, False,
    )
    assert ctx.event.name == "issue_comment"
    assert ctx.config.task("fix") is not None


async def test_kickoffs_own_comment_is_never_a_command(h: Harness) -> None:
    await h.deliver("issue_comment", issue_comment("/agent fix", via_app=APP_ID))
    assert h.gh.calls == []
    # A delivery its bot user sent is dropped at once: nothing is asked of GitHub but who the App is (which the
    # gateway asks once per process).
    await h.deliver("issue_comment", issue_comment("/agent fix", sender=user("kickoff[bot]", "Bot")))
    await h.deliver("issue_comment", issue_comment("/agent fix", sender=user("Kickoff[bot]", "Bot")))
    assert h.gh.calls == [("get_app", ()), ("get_app", ())]


async def test_kickoff_is_ignored_even_when_allow_listed(h: Harness) -> None:
    h.config("permissions: {allow_bots: ['kickoff[bot]']}")
    await h.deliver("issue_comment", issue_comment("/agent fix", sender=user("kickoff[bot]", "Bot")))
    assert await h.triggers() == []
    assert h.writes() == []


async def test_another_apps_comment_is_judged_by_its_sender(h: Harness) -> None:
    await h.deliver("issue_comment", issue_comment("/agent fix", via_app=APP_ID + 1))
    assert len(await h.triggers()) == 1


async def test_a_bot_is_ignored_silently(h: Harness) -> None:
    await h.deliver("issue_comment", issue_comment("/agent fix", sender=user("renovate[bot]", "Bot")))

    assert await h.triggers() == []
    assert h.writes() == []
    assert h.gh.calls_to("get_collaborator_permission") == []


async def test_an_allow_listed_bot_may_trigger(h: Harness) -> None:
    h.config("permissions: {allow_bots: ['Renovate[bot]']}")

    await h.deliver("issue_comment", issue_comment("/agent fix", sender=user("renovate[bot]", "Bot")))

    (trigger,) = await h.triggers()
    assert trigger.sender == "renovate[bot]"


@pytest.mark.parametrize("login", ["robot", "x[bot]", "dependabot"])
async def test_a_human_whose_login_looks_like_a_bot_is_a_human(h: Harness, login: str) -> None:
    h.gh.permissions[login] = "write"
    await h.deliver("issue_comment", issue_comment("/agent fix", sender=user(login)))
    assert [t.sender for t in await h.triggers()] == [login]

    h.gh.permissions[login] = "read"
    h.clock.advance(61)
    await h.deliver("issue_comment", issue_comment("/agent fix", sender=user(login)))
    assert len(await h.triggers()) == 1
    assert f"Sorry @{login}, `/agent fix` needs at least `write`" in h.bot_comments()[-1].body


async def test_allow_users_admits_a_login_whatever_its_permission(h: Harness) -> None:
    h.config("permissions: {allow_users: [Alice]}")

    await h.deliver("issue_comment", issue_comment("/agent fix", sender=user("alice")))
    await h.deliver("issue_comment", issue_comment("/agent fix", sender=user("mallory")))

    assert [t.sender for t in await h.triggers()] == ["alice"]
    (reply,) = h.bot_comments()[1:]
    assert reply.body.startswith("Sorry @mallory, `/agent fix` needs at least `write` permission")


async def test_refused_commands_get_one_reply_and_nothing_runs(h: Harness) -> None:
    ran: list[str] = []

    async def cancel(ctx: CommandContext) -> None:
        ran.append(ctx.command.verb)

    route(h, "cancel", cancel)

    await h.deliver("issue_comment", issue_comment("/agent fix\n/agent research\n/agent cancel", sender=user("drive")))

    assert await h.triggers() == []
    assert ran == []
    (reply,) = h.bot_comments()
    assert reply.body.count("Sorry @drive") == 3
    assert "needs at least `write` permission on this repository and you have `none`" in reply.body
    assert h.gh.calls_to("add_reaction_to_comment") == []


async def test_the_permission_is_cached_for_a_minute(h: Harness) -> None:
    await h.deliver("issue_comment", issue_comment("/agent fix"))
    h.clock.advance(30)
    await h.deliver("issue_comment", issue_comment("/agent fix"))
    assert len(h.gh.calls_to("get_collaborator_permission")) == 1

    h.gh.permissions["Codertocat"] = "read"  # demoted: seen once the cached answer is a minute old
    h.clock.advance(31)
    await h.deliver("issue_comment", issue_comment("/agent fix"))
    assert len(h.gh.calls_to("get_collaborator_permission")) == 2
    assert len(await h.triggers()) == 2


async def test_a_broken_config_is_reported_on_a_command(h: Harness) -> None:
    h.config("tasks: [fix]\n")

    await h.deliver("issue_comment", issue_comment("/agent fix"))

    assert await h.triggers() == []
    (reply,) = h.bot_comments()
    assert f"- `{FULL_NAME}:.github/kickoff.yml:1:1` `tasks`: must be a mapping" in reply.body


async def test_a_replayed_comment_plans_nothing_new_and_answers_once(h: Harness) -> None:
    row = await h.deliver("issue_comment", issue_comment("/agent fix\n/agent nope"))
    assert len(h.bot_comments()) == 2  # the tracking comment and the reply

    again = await h.replay(row.id)

    assert again.status == "done"
    assert len(await h.triggers()) == 1
    assert len(await h.runs()) == 1
    assert len(h.bot_comments()) == 2
