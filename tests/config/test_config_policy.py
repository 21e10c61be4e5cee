"""The operator's policy over a repository's config: backends, agent env names, `_extends` reach, and what a
problem in another repository's file may say."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from bot.config import ConfigError, OperatorPolicy
from bot.config.loader import ConfigLoader
from bot.config.model import DEFAULT_AGENT_ENV

if TYPE_CHECKING:
    from tests.config.conftest import FakeRepos

REPO = "acme/app"
ACTIONS_ONLY = OperatorPolicy(runners=("github-actions",))


async def problems(repos: FakeRepos, policy: OperatorPolicy, repo: str = "app") -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        await ConfigLoader().load("acme", repo, repos.fetch, policy)
    return caught.value


# ---- runner -------------------------------------------------------------------------------------------------------


async def test_a_repository_cannot_pick_a_backend_the_operator_did_not_enable(repos: FakeRepos) -> None:
    repos.put(REPO, "limits: {}\nrunner: local\n")
    error = await problems(repos, ACTIONS_ONLY)
    assert error.messages() == [
        "acme/app:.github/kickoff.yml:2:1: runner: runner `local` is not enabled on this Kickoff server, which "
        "allows `github-actions` (its operator's `KICKOFF_RUNNERS`); remove `runner:` to use the server's default, "
        "or pick one of those"
    ]


async def test_an_enabled_backend_and_no_runner_key_are_fine(repos: FakeRepos) -> None:
    repos.put(REPO, "runner: fly\n")
    policy = OperatorPolicy(runners=("github-actions", "fly"))
    assert (await ConfigLoader().load("acme", "app", repos.fetch, policy)).runner == "fly"
    repos.put(REPO, "limits: {max_open_prs: 2}\n")
    assert (await ConfigLoader().load("acme", "app", repos.fetch, ACTIONS_ONLY)).runner is None


async def test_org_defaults_cannot_pick_a_backend_either(repos: FakeRepos) -> None:
    repos.put("acme/.github", "runner: kubernetes\n")
    [message] = (await problems(repos, ACTIONS_ONLY)).messages()
    assert message == (
        "acme/.github:.github/kickoff.yml:1:1: runner: names a runner this Kickoff server does not enable; it "
        "allows `github-actions` (its operator's `KICKOFF_RUNNERS`)"
    )


async def test_the_policy_applies_to_a_cached_config_too(repos: FakeRepos) -> None:
    loader = ConfigLoader()
    repos.put(REPO, "runner: local\n")
    assert (await loader.load("acme", "app", repos.fetch, OperatorPolicy())).runner == "local"
    with pytest.raises(ConfigError, match="KICKOFF_RUNNERS"):
        await loader.load("acme", "app", repos.fetch, ACTIONS_ONLY)
    assert loader.results.hits == 1


# ---- agent env ------------------------------------------------------------------------------------------------------


def test_the_default_list_is_the_built_in_agents_keys() -> None:
    assert frozenset({"ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"}) == DEFAULT_AGENT_ENV
    assert OperatorPolicy().agent_env == DEFAULT_AGENT_ENV


async def test_an_agent_may_ask_only_for_names_on_the_operator_list(repos: FakeRepos) -> None:
    repos.put(REPO, "agents:\n  house:\n    adapter: command\n    command: [fix]\n"
                    "    env: [ANTHROPIC_API_KEY, AWS_SECRET_ACCESS_KEY, HOUSE_API_KEY]\n")
    [message] = (await problems(repos, OperatorPolicy())).messages()
    assert message == (
        "acme/app:.github/kickoff.yml:5:5: agents.house.env: `AWS_SECRET_ACCESS_KEY`, `HOUSE_API_KEY` are not on "
        "this Kickoff server's list of environment names agents may receive (its operator's `KICKOFF_AGENT_ENV`); "
        "remove them, or ask the operator to add them"
    )
    policy = OperatorPolicy(agent_env=frozenset({"ANTHROPIC_API_KEY", "AWS_SECRET_ACCESS_KEY", "HOUSE_API_KEY"}))
    config = await ConfigLoader().load("acme", "app", repos.fetch, policy)
    assert config.agents["house"].env == ("ANTHROPIC_API_KEY", "AWS_SECRET_ACCESS_KEY", "HOUSE_API_KEY")


async def test_overriding_a_built_in_agent_env_is_checked_too(repos: FakeRepos) -> None:
    repos.put(REPO, "agents:\n  claude: {env: [ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL]}\n")
    [message] = (await problems(repos, OperatorPolicy())).messages()
    assert "`ANTHROPIC_BASE_URL` is not on this Kickoff server's list" in message


async def test_built_in_defaults_are_narrowed_to_the_operator_list_not_refused(repos: FakeRepos) -> None:
    repos.put(REPO, "agents:\n  claude: {model: opus}\n")  # keeps the built-in env
    policy = OperatorPolicy(agent_env=frozenset({"ANTHROPIC_API_KEY"}))
    config = await ConfigLoader().load("acme", "app", repos.fetch, policy)
    assert config.agents["claude"].env == ("ANTHROPIC_API_KEY",)
    assert config.agents["codex"].env == ()
    assert config.agents["aider"].env == ("ANTHROPIC_API_KEY",)
    assert config.agents["claude"].model == "opus"


def test_kickoff_names_stay_refused_whatever_the_list_says() -> None:
    policy = OperatorPolicy(agent_env=frozenset({"PRIVATE_KEY", "KICKOFF_GIT_TOKEN", "HOUSE_API_KEY"}))
    assert policy.refused_env(["PRIVATE_KEY", "KICKOFF_GIT_TOKEN", "HOUSE_API_KEY"]) == [
        "PRIVATE_KEY", "KICKOFF_GIT_TOKEN",
    ]


# ---- _extends --------------------------------------------------------------------------------------------------------


async def test_extends_reaches_the_owners_dot_github_repository(repos: FakeRepos) -> None:
    repos.put("acme/.github", "limits: {max_open_prs: 4}\n", path="kickoff/strict.yml")
    repos.put(REPO, "_extends: .github:kickoff/strict.yml\n")
    config = await ConfigLoader().load("acme", "app", repos.fetch, OperatorPolicy())
    assert config.limits.max_open_prs == 4


async def test_extends_to_another_repository_is_refused_and_never_read(repos: FakeRepos) -> None:
    repos.put("acme/private-infra", "limits: {max_open_prs: 4}\n")
    repos.put("evil/.github", "limits: {max_open_prs: 4}\n")
    for target in ("private-infra", "acme/private-infra:deploy/secrets.yml", "evil/.github"):
        repos.calls.clear()
        repos.put(REPO, f"limits: {{}}\n_extends: {target}\n")
        [message] = (await problems(repos, OperatorPolicy())).messages()
        assert message.startswith("acme/app:.github/kickoff.yml:2:1: _extends: `_extends` may point only to this "
                                  "repository, to `acme/.github`, or to a repository the server's operator lists "
                                  "in `KICKOFF_CONFIG_EXTENDS`")
        assert {repo for _owner, repo, _path in repos.calls} == {"app", ".github"}
        assert ("evil", ".github", ".github/kickoff.yml") not in repos.calls


async def test_the_org_defaults_cannot_extend_beyond_the_policy_either(repos: FakeRepos) -> None:
    repos.put("acme/.github", "_extends: acme/private-infra\n")
    repos.put("acme/private-infra", "queue: {merge: auto}\n")
    [message] = (await problems(repos, OperatorPolicy())).messages()
    # The org's file is another repository's: the target it names is not repeated.
    assert message == (
        "acme/.github:.github/kickoff.yml:1:1: _extends: `_extends` points to a repository Kickoff does not read "
        "configuration from (see `KICKOFF_CONFIG_EXTENDS`)"
    )
    assert ("acme", "private-infra", ".github/kickoff.yml") not in repos.calls


async def test_an_operator_listed_repository_may_be_extended(repos: FakeRepos) -> None:
    repos.put("platform/kickoff-defaults", "queue: {merge: auto}\n")
    repos.put(REPO, "_extends: platform/kickoff-defaults\n")
    policy = OperatorPolicy(extends=frozenset({"platform/kickoff-defaults"}))
    assert (await ConfigLoader().load("acme", "app", repos.fetch, policy)).queue.merge == "auto"


# ---- Problems in other repositories' files are told without their values -----------------------------------------

SECRET = "hunter2-s3cr3t-value"


@pytest.mark.parametrize("text", [
    f"limits:\n  max_open_prs: {SECRET}\n",  # a wrong type
    f"queue:\n  merge: {SECRET}\n",  # not one of the allowed values
    f"{SECRET}: 1\n",  # an unknown key
    f"agents:\n  {SECRET}: {{adapter: claude}}\ntasks:\n  fix: {{agents: [{SECRET}x]}}\n",  # names chosen by the file
    f"password: '{SECRET}\n",  # broken YAML around the value
    f"- {SECRET}\n",  # not a mapping
    f"_extends: {SECRET}\n",  # an `_extends` it cannot follow
    f"_extends: acme/{SECRET}\n",
    f"agents:\n  house: {{adapter: command, command: [x], env: [{SECRET.upper().replace('-', '_')}]}}\n",
    "runner: fly\n",
])
async def test_an_extended_files_problems_never_quote_its_values(repos: FakeRepos, text: str) -> None:
    repos.put("acme/.github", text, path="private/kickoff.yml")
    repos.put(REPO, "limits: {}\n_extends: .github:private/kickoff.yml\n")
    error = await problems(repos, OperatorPolicy(extends=frozenset({f"acme/{SECRET}"})))
    shown = "\n".join(error.messages())
    assert shown.startswith("acme/.github:private/kickoff.yml:")
    assert ":1:" in shown or ":2:" in shown or ":3:" in shown or ":4:" in shown  # the line is given
    for fragment in (SECRET, SECRET.upper().replace("-", "_"), "hunter2", "fly"):
        assert fragment not in shown
    assert all(line.startswith("acme/.github:private/kickoff.yml:") for line in error.details())  # the log's


async def test_the_home_files_problems_still_quote_it(repos: FakeRepos) -> None:
    repos.put(REPO, f"queue:\n  merge: {SECRET}\n")
    [message] = (await problems(repos, OperatorPolicy())).messages()
    assert SECRET in message  # the reply sits next to this very file, which its readers can read
