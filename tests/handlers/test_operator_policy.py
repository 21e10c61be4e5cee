"""Policy belongs to the operator: attacks on it from a repository's config, end to end through the dispatcher.

Each test plays a repository (or a stranger) that wants more than the operator gave: another backend, another
environment name, another repository's file, or a view of a broken config.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.handlers.harness import (
    CONFIG,
    FULL_NAME,
    INSTALLATION_ID,
    ISSUE,
    OWNER,
    REPO,
    Harness,
    harness,
    issue_comment,
    labeled,
    user,
)

SECRET = "hunter2-s3cr3t-value"


@pytest.fixture
async def actions_only(database_url: str) -> AsyncIterator[Harness]:
    """A server whose operator runs agents on GitHub Actions only."""
    async with harness(database_url, KICKOFF_RUNNER="github-actions") as world:
        yield world


async def test_runner_local_on_an_actions_only_server_is_refused_with_a_comment(actions_only: Harness) -> None:
    h = actions_only
    h.config("tasks: {fix: {agents: [claude]}}\nrunner: local\n")
    h.label_is_on("agent:fix")

    row = await h.deliver("issues", labeled("agent:fix"))

    assert row.status == "done"
    assert await h.triggers() == []
    assert await h.runs() == []
    (reply,) = h.bot_comments()
    assert reply.body.startswith("Kickoff could not use its configuration, so it started nothing.")
    assert (f"- `{FULL_NAME}:{CONFIG}:2:1` `runner`: runner `local` is not enabled on this Kickoff server, which "
            "allows `github-actions` (its operator's `KICKOFF_RUNNERS`)") in reply.body


async def test_the_same_by_command_and_an_enabled_backend_goes_through(database_url: str) -> None:
    async with harness(database_url, KICKOFF_RUNNER="github-actions", KICKOFF_RUNNERS="github-actions,fly") as h:
        h.config("runner: local\n")
        await h.deliver("issue_comment", issue_comment("/agent fix"))
        assert await h.runs() == []
        (reply,) = h.bot_comments()
        assert "allows `github-actions`, `fly`" in reply.body

        h.config("runner: fly\n")
        await h.deliver("issue_comment", issue_comment("/agent fix", comment_id=2))
        assert [run.agent for run in await h.runs()] == ["claude"]


async def test_an_agent_env_name_off_the_operator_list_is_refused_without_its_value(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    h.config("agents:\n  house:\n    adapter: command\n    command: [fix]\n    env: [AWS_SECRET_ACCESS_KEY]\n"
             "tasks:\n  fix: {agents: [house]}\n")

    await h.deliver("issue_comment", issue_comment("/agent fix"))

    assert await h.runs() == []
    (reply,) = h.bot_comments()
    assert ("`agents.house.env`: `AWS_SECRET_ACCESS_KEY` is not on this Kickoff server's list of environment names "
            "agents may receive (its operator's `KICKOFF_AGENT_ENV`)") in reply.body
    assert SECRET not in reply.body


async def test_the_operator_can_allow_that_name(database_url: str) -> None:
    async with harness(database_url, KICKOFF_AGENT_ENV="ANTHROPIC_API_KEY,AWS_SECRET_ACCESS_KEY") as h:
        h.config("agents:\n  house: {adapter: command, command: [fix], env: [AWS_SECRET_ACCESS_KEY]}\n"
                 "tasks:\n  fix: {agents: [house]}\n")
        await h.deliver("issue_comment", issue_comment("/agent fix"))
        assert [run.agent for run in await h.runs()] == ["house"]


# ---- A broken config is no one's business but the maintainers' -------------------------------------------------


@pytest.mark.parametrize("permission", ["none", "read", "triage"])
async def test_a_stranger_on_a_broken_config_gets_no_reply_and_nothing_happens(h: Harness, permission: str) -> None:
    h.gh.permissions["stranger"] = permission
    h.config(f"queue:\n  merge: {SECRET}\n")

    row = await h.deliver("issue_comment", issue_comment("/agent fix", sender=user("stranger")))

    assert row.status == "done"
    assert h.bot_comments() == []
    assert h.writes() == []  # no reply, no reaction, no label change
    assert await h.triggers() == []


async def test_a_stranger_adding_a_label_on_a_broken_config_changes_nothing(h: Harness) -> None:
    h.gh.permissions["stranger"] = "triage"  # triage may add labels
    h.config("limits: {max_open_prs: none}\n")
    h.label_is_on("agent:fix")

    await h.deliver("issues", labeled("agent:fix", sender=user("stranger")))

    assert h.writes() == []
    assert h.gh.labels[(OWNER, REPO, ISSUE)] == ["agent:fix"]


async def test_allow_users_in_a_broken_config_does_not_count(h: Harness) -> None:
    # The file is broken, so nothing in it (here: allow_users) is believed; the safe default gate applies.
    h.gh.permissions["friend"] = "read"
    h.config("permissions: {allow_users: [friend]}\nlimits: {max_open_prs: none}\n")

    await h.deliver("issue_comment", issue_comment("/agent fix", sender=user("friend")))

    assert h.writes() == []


async def test_a_maintainer_on_a_broken_config_gets_the_problems(h: Harness) -> None:
    h.config("limits: {max_open_prs: none}\n")

    await h.deliver("issue_comment", issue_comment("/agent status"))

    (reply,) = h.bot_comments()
    assert f"`{FULL_NAME}:{CONFIG}:1:10` `limits.max_open_prs`" in reply.body
    assert h.gh.calls_to("get_collaborator_permission") == [(INSTALLATION_ID, OWNER, REPO, "Codertocat")]


# ---- _extends -------------------------------------------------------------------------------------------------------


async def test_an_error_in_an_extended_file_is_reported_without_its_values(h: Harness) -> None:
    # The org's `.github` repository may be private; the reply on a public issue must not carry what it says.
    h.config(f"# internal\nqueue:\n  merge: {SECRET}\n{SECRET}-key: 1\n", repo=".github")
    h.gh.set_file(OWNER, ".github", "kickoff/shared.yml", f"limits:\n  max_open_prs: {SECRET}\n")
    h.config("_extends: .github:kickoff/shared.yml\n")

    await h.deliver("issue_comment", issue_comment("/agent fix"))

    (reply,) = h.bot_comments()
    assert SECRET not in reply.body
    assert "hunter2" not in reply.body
    shared = f"- `{OWNER}/.github:kickoff/shared.yml:2:3` `limits.max_open_prs`: has a value of the wrong type"
    assert shared in reply.body
    assert f"- `{OWNER}/.github:{CONFIG}:3:3` `queue.merge`: is not one of the allowed values" in reply.body
    assert f"- `{OWNER}/.github:{CONFIG}:4:1` `*`: is not a key Kickoff knows" in reply.body
    assert await h.runs() == []


async def test_extends_to_another_repository_is_refused_and_not_read(h: Harness) -> None:
    h.gh.set_file(OWNER, "private-infra", CONFIG, "queue: {merge: auto}\n")
    h.config("_extends: private-infra\n")

    await h.deliver("issue_comment", issue_comment("/agent fix"))

    (reply,) = h.bot_comments()
    assert "`_extends` may point only to this repository, to `Codertocat/.github`" in reply.body
    assert "`KICKOFF_CONFIG_EXTENDS`" in reply.body
    assert [args for args in h.gh.calls_to("get_file") if args[2] == "private-infra"] == []
    assert await h.runs() == []
