"""The loader: safe YAML, org defaults, `_extends` chains and cycles, the blob-sha cache, offline validation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bot.config import ConfigError, OperatorPolicy, RepoConfig, load_repo_config, validate_file, validate_text
from bot.config.loader import (
    MAX_CONFIG_BYTES,
    MAX_EXTENDS_DEPTH,
    ConfigLoader,
    ConfigProblem,
    FileRef,
    check_text,
    deep_merge,
    format_path,
    parse_extends,
)

if TYPE_CHECKING:
    from tests.config.conftest import FakeRepos

ORG = "acme/.github"
REPO = "acme/app"
# The mechanics of merging and `_extends` under an operator who enables every backend and lists the shared repos.
SHARED = ["acme/shared", "acme/middle", "other/base", "acme/one", "acme/two", "acme/ghost"]
OPEN = OperatorPolicy(
    runners=("local", "github-actions", "kubernetes", "fly"),
    extends=frozenset([*SHARED, *(f"acme/r{index}" for index in range(MAX_EXTENDS_DEPTH + 2))]),
)


async def load_problems(
    repos: FakeRepos, loader: ConfigLoader, owner: str = "acme", repo: str = "app", policy: OperatorPolicy = OPEN
) -> list[str]:
    return (await load_error(repos, loader, owner, repo, policy)).messages()


async def load_error(
    repos: FakeRepos, loader: ConfigLoader, owner: str = "acme", repo: str = "app", policy: OperatorPolicy = OPEN
) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        await loader.load(owner, repo, repos.fetch, policy)
    return caught.value


def text_problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate_text(text, "kickoff.yml")
    return caught.value.messages()


# ---- YAML safety ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where", "fragment"),
    [
        ("limits:\n  max_open_prs: [1\n", "kickoff.yml:3:1", "expected ',' or ']'"),
        ("limits:\n max_open_prs: 1\n  runner: x\n", "kickoff.yml:3:9", "mapping values are not allowed"),
        ("queue: {merge: manual\n", "kickoff.yml:2:1", "expected ',' or '}'"),
        ("a: 'unterminated\n", "kickoff.yml:2:1", "found unexpected end of stream"),
        ("\tlimits: {}\n", "kickoff.yml:1:1", "cannot start any token"),
        ("a: *nowhere\n", "kickoff.yml:1:4", "found undefined alias"),
    ],
)
def test_yaml_errors_have_line_and_column(text: str, where: str, fragment: str) -> None:
    [message] = text_problems(text)
    assert message.startswith(f"{where}: invalid YAML: ")
    assert fragment in message


def test_python_tags_are_refused() -> None:
    [message] = text_problems("runner: !!python/object/apply:os.system ['echo pwned']\n")
    assert "invalid YAML" in message
    assert "could not determine a constructor" in message


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n", "true\n"])
def test_the_top_level_must_be_a_mapping(text: str) -> None:
    [message] = text_problems(text)
    assert "the top level must be a mapping" in message


def test_oversize_files_are_refused() -> None:
    text = "# " + "x" * MAX_CONFIG_BYTES + "\n"
    [message] = text_problems(text)
    assert f"at most {MAX_CONFIG_BYTES:,}" in message


def test_billion_laughs_is_refused() -> None:
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for index, name in enumerate("bcdefghi"):
        previous = "abcdefghi"[index]
        levels.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    [message] = text_problems("\n".join(levels) + "\n")
    assert "expands to more than" in message


def test_too_many_aliases_are_refused() -> None:
    text = "x: &x 1\nl: [" + ", ".join(["*x"] * 101) + "]\n"
    [message] = text_problems(text)
    assert "more than 100 aliases" in message


def test_recursive_aliases_are_refused() -> None:
    [message] = text_problems("a: &a [*a]\n")
    assert "recursive alias" in message


def test_deep_nesting_is_refused() -> None:
    [message] = text_problems("a: " + "[" * 70 + "]" * 70 + "\n")
    assert "nested" in message
    [message] = text_problems("a: " + "[" * 5000)
    assert "nested" in message or "invalid YAML" in message


def test_duplicate_keys_are_reported() -> None:
    [message] = text_problems("limits: {max_open_prs: 1}\nqueue: {}\nlimits: {max_open_prs: 2}\n")
    assert message.startswith("kickoff.yml:3:1: invalid YAML: duplicate key `limits`")


def test_anchors_and_merge_keys_still_work() -> None:
    config = validate_text(
        "agents:\n"
        "  one: &base {adapter: command, command: [run], env: [KEY]}\n"
        "  two: {<<: *base, model: big}\n"
        "tasks:\n  fix: {agents: [one, two]}\n"
    )
    assert config.agents["two"].command == ("run",)
    assert config.agents["two"].model == "big"


def test_invalid_yaml_values_become_problems() -> None:
    [message] = text_problems("when: 2001-13-45\n")
    assert "invalid YAML value" in message


# ---- loading: org defaults, repo config ----------------------------------------------------------------------------


async def test_no_files_means_defaults(repos: FakeRepos, loader: ConfigLoader) -> None:
    assert await loader.load("acme", "app", repos.fetch, OPEN) == RepoConfig()
    assert sorted(repos.calls) == [("acme", ".github", ".github/kickoff.yml"), ("acme", "app", ".github/kickoff.yml")]


async def test_the_repo_config_is_merged_over_org_defaults(repos: FakeRepos, loader: ConfigLoader) -> None:
    repos.put(
        ORG,
        "limits: {max_open_prs: 9, max_parallel_runs: 7}\n"
        "protected_paths: [a/**, b/**]\n"
        "pull_requests: {labels: [agents, kickoff]}\n"
        "agents:\n  house: {adapter: command, command: [house]}\n",
    )
    repos.put(
        REPO,
        "limits: {max_open_prs: 2}\nprotected_paths: [c/**]\ntasks:\n  fix: {agents: [house, claude]}\n",
    )
    config = await loader.load("acme", "app", repos.fetch, OPEN)
    assert config.limits.max_open_prs == 2  # the repo wins
    assert config.limits.max_parallel_runs == 7  # mappings merge key by key
    assert config.protected_paths == ("c/**",)  # lists replace
    assert config.pull_requests.labels == ("agents", "kickoff")
    assert config.tasks["fix"].agents == ("house", "claude")  # an org-defined agent is usable in the repo


async def test_org_defaults_apply_when_the_repo_has_no_file(repos: FakeRepos, loader: ConfigLoader) -> None:
    repos.put(ORG, "queue: {merge: auto}\n")
    assert (await loader.load("acme", "app", repos.fetch, OPEN)).queue.merge == "auto"


async def test_the_org_repo_itself_is_read_once(repos: FakeRepos, loader: ConfigLoader) -> None:
    repos.put(ORG, "queue: {merge: auto}\n")
    assert (await loader.load("acme", ".github", repos.fetch)).queue.merge == "auto"
    assert repos.calls == [("acme", ".github", ".github/kickoff.yml")]


async def test_a_null_in_the_repo_overrides_an_org_value(repos: FakeRepos, loader: ConfigLoader) -> None:
    repos.put(ORG, "verify: {command: make test}\n")
    repos.put(REPO, "verify: {command: null}\n")
    assert (await loader.load("acme", "app", repos.fetch, OPEN)).verify.command is None


async def test_problems_name_the_file_that_holds_the_value(repos: FakeRepos, loader: ConfigLoader) -> None:
    repos.put(ORG, "queue:\n  review_window: 0\n")
    repos.put(REPO, "limits:\n  max_open_prs: -1\n")
    error = await load_error(repos, loader)
    # The org's file is another repository's: its problem is told without its value.
    assert error.messages() == [
        "acme/app:.github/kickoff.yml:2:3: limits.max_open_prs: must be greater than or equal to 1 (got -1)",
        "acme/.github:.github/kickoff.yml:2:3: queue.review_window: is out of range",
    ]
    assert error.details()[1] == (
        "acme/.github:.github/kickoff.yml:2:3: queue.review_window: must be greater than or equal to 1 (got 0)"
    )


async def test_a_value_overridden_by_the_repo_is_blamed_on_the_repo(repos: FakeRepos, loader: ConfigLoader) -> None:
    repos.put(ORG, "queue: {merge: auto}\n")
    repos.put(REPO, "\nqueue: {merge: later}\n")
    [message] = await load_problems(repos, loader)
    assert message.startswith("acme/app:.github/kickoff.yml:2:9: queue.merge:")


async def test_broken_yaml_in_both_files_reports_both(repos: FakeRepos, loader: ConfigLoader) -> None:
    repos.put(ORG, "a: [\n")
    repos.put(REPO, "- 1\n")
    messages = await load_problems(repos, loader)
    assert len(messages) == 2
    assert messages[0] == "acme/.github:.github/kickoff.yml:2:1: is not valid YAML"
    assert messages[1].startswith("acme/app:.github/kickoff.yml:1:1: the top level must be a mapping")


async def test_fetch_errors_propagate_unchanged(loader: ConfigLoader) -> None:
    async def failing(owner: str, repo: str, path: str) -> tuple[str, str] | None:
        raise TimeoutError("GitHub is slow")

    with pytest.raises(TimeoutError):
        await loader.load("acme", "app", failing)


async def test_the_module_level_function_uses_a_shared_loader(repos: FakeRepos) -> None:
    repos.put(REPO, "runner: fly\n")
    assert (await load_repo_config("acme", "app", repos.fetch, policy=OPEN)).runner == "fly"


# ---- _extends ------------------------------------------------------------------------------------------------------


async def test_extends_a_repo_of_the_same_owner(repos: FakeRepos, loader: ConfigLoader) -> None:
    repos.put("acme/shared", "limits: {max_open_prs: 8, run_timeout_minutes: 50}\n")
    repos.put(REPO, "_extends: shared\nlimits: {max_open_prs: 3}\n")
    config = await loader.load("acme", "app", repos.fetch, OPEN)
    assert (config.limits.max_open_prs, config.limits.run_timeout_minutes) == (3, 50)


async def test_a_chain_of_extends_with_owners_and_paths(repos: FakeRepos, loader: ConfigLoader) -> None:
    repos.put(ORG, "queue: {merge_method: merge, aging_hours: 1}\n")
    repos.put(
        "other/base", "queue: {merge_method: rebase, aging_hours: 2, review_window: 4}\n", path="conf/kickoff.yml"
    )
    repos.put("acme/middle", "_extends: other/base:conf/kickoff.yml\nqueue: {aging_hours: 3}\n")
    repos.put(REPO, "_extends: acme/middle\nqueue: {review_window: 2}\n")
    config = await loader.load("acme", "app", repos.fetch, OPEN)
    assert config.queue.review_window == 2  # repo
    assert config.queue.aging_hours == 3  # middle
    assert config.queue.merge_method == "rebase"  # base, over the org
    assert ("other", "base", "conf/kickoff.yml") in repos.calls


async def test_an_extends_cycle_is_an_error_naming_the_chain(repos: FakeRepos, loader: ConfigLoader) -> None:
    repos.put(REPO, "_extends: one\n")
    repos.put("acme/one", "_extends: two\n")
    repos.put("acme/two", "\n_extends: ACME/App\n")
    error = await load_error(repos, loader)
    assert error.messages() == [
        "acme/two:.github/kickoff.yml:2:1: _extends: has an `_extends` Kickoff cannot follow (it makes a cycle)"
    ]
    assert error.details() == [
        "acme/two:.github/kickoff.yml:2:1: _extends: `_extends` makes a cycle: acme/app:.github/kickoff.yml → "
        "acme/one:.github/kickoff.yml → acme/two:.github/kickoff.yml → ACME/App:.github/kickoff.yml"
    ]


async def test_a_file_extending_itself(repos: FakeRepos, loader: ConfigLoader) -> None:
    repos.put(REPO, "_extends: app\n")
    [message] = await load_problems(repos, loader)
    assert "makes a cycle" in message


async def test_extends_depth_is_bounded(repos: FakeRepos, loader: ConfigLoader) -> None:
    repos.put(REPO, "_extends: r0\n")
    for index in range(MAX_EXTENDS_DEPTH + 2):
        repos.put(f"acme/r{index}", f"_extends: r{index + 1}\n")
    [message] = (await load_error(repos, loader)).details()
    assert f"more than {MAX_EXTENDS_DEPTH} files deep" in message
    assert len([call for call in repos.calls if call[1] != ".github"]) == MAX_EXTENDS_DEPTH + 1


async def test_extending_a_missing_file(repos: FakeRepos, loader: ConfigLoader) -> None:
    repos.put(REPO, "limits: {}\n_extends: ghost\n")
    [message] = await load_problems(repos, loader)
    assert message.startswith("acme/app:.github/kickoff.yml:2:1: _extends: ")
    assert "acme/ghost:.github/kickoff.yml, which does not exist" in message


@pytest.mark.parametrize("value", ["[a, b]", "'owner/repo/extra'", "'repo:../secrets.yml'", "'repo:/abs'", "''"])
async def test_malformed_extends(repos: FakeRepos, loader: ConfigLoader, value: str) -> None:
    repos.put(REPO, f"_extends: {value}\n")
    [message] = await load_problems(repos, loader)
    assert message.startswith("acme/app:.github/kickoff.yml:1:1: _extends: ")


async def test_a_problem_in_an_extended_file_names_that_file(repos: FakeRepos, loader: ConfigLoader) -> None:
    repos.put("acme/shared", "limits:\n  max_open_prs: zero\n")
    repos.put(REPO, "_extends: shared\n")
    [message] = await load_problems(repos, loader)
    assert message == "acme/shared:.github/kickoff.yml:2:3: limits.max_open_prs: has a value of the wrong type"


def test_parse_extends_forms() -> None:
    assert parse_extends("shared", "acme") == FileRef("acme", "shared", ".github/kickoff.yml")
    assert parse_extends("other/shared", "acme") == FileRef("other", "shared", ".github/kickoff.yml")
    assert parse_extends("other/shared:ci/kickoff.yml", "acme") == FileRef("other", "shared", "ci/kickoff.yml")
    assert parse_extends("shared:x.yml", "acme") == FileRef("acme", "shared", "x.yml")
    assert parse_extends(".github", "acme") == FileRef("acme", ".github", ".github/kickoff.yml")


def test_deep_merge() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    override = {"a": {"c": [3]}, "e": None}
    assert deep_merge(base, override) == {"a": {"b": 1, "c": [3]}, "d": 1, "e": None}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}  # inputs are not modified


# ---- cache ---------------------------------------------------------------------------------------------------------


async def test_unchanged_files_are_served_from_the_cache(repos: FakeRepos, loader: ConfigLoader) -> None:
    repos.put(ORG, "queue: {merge: auto}\n")
    repos.put(REPO, "_extends: shared\n")
    repos.put("acme/shared", "runner: fly\n")
    first = await loader.load("acme", "app", repos.fetch, OPEN)
    assert (loader.files.hits, loader.results.hits) == (0, 0)
    second = await loader.load("acme", "app", repos.fetch, OPEN)
    assert second is first
    assert loader.files.hits == 3
    assert loader.results.hits == 1


async def test_a_changed_file_is_parsed_again(repos: FakeRepos, loader: ConfigLoader) -> None:
    repos.put(REPO, "runner: fly\n")
    assert (await loader.load("acme", "app", repos.fetch, OPEN)).runner == "fly"
    repos.put(REPO, "runner: kubernetes\n")
    assert (await loader.load("acme", "app", repos.fetch, OPEN)).runner == "kubernetes"
    assert loader.results.hits == 0


async def test_the_same_blob_in_another_repo_reuses_the_parse(repos: FakeRepos, loader: ConfigLoader) -> None:
    repos.put(REPO, "runner: fly\n")
    repos.put("acme/api", "runner: fly\n")
    await loader.load("acme", "app", repos.fetch, OPEN)
    await loader.load("acme", "api", repos.fetch, OPEN)
    assert loader.files.hits == 1


async def test_errors_are_cached_too_and_name_the_right_file(repos: FakeRepos, loader: ConfigLoader) -> None:
    repos.put(REPO, "runner: [\n")
    repos.put("acme/api", "runner: [\n")
    first = await load_problems(repos, loader)
    again = await load_problems(repos, loader, repo="api")
    assert loader.files.hits == 1
    assert first[0].startswith("acme/app:")
    assert again[0].startswith("acme/api:")
    repos.put(REPO, "runner: fly\nlimits: {max_open_prs: 0}\n")
    assert await load_problems(repos, loader) == await load_problems(repos, loader)
    assert loader.results.hits == 1


async def test_the_cache_is_bounded() -> None:
    loader = ConfigLoader(cache_size=2)

    async def fetch(owner: str, repo: str, path: str) -> tuple[str, str] | None:
        return (f"runner: fly\n# {repo}\n", f"sha-{repo}") if repo != ".github" else None

    for repo in ("a", "b", "c", "a"):
        await loader.load("acme", repo, fetch, OPEN)
    assert loader.files.hits == 0


async def test_files_without_a_sha_are_not_cached(loader: ConfigLoader) -> None:
    async def fetch(owner: str, repo: str, path: str) -> tuple[str, str] | None:
        return ("runner: fly\n", "") if repo == "app" else None

    await loader.load("acme", "app", fetch, OPEN)
    await loader.load("acme", "app", fetch, OPEN)
    assert (loader.files.hits, loader.results.hits) == (0, 0)


# ---- offline validation --------------------------------------------------------------------------------------------


def test_validate_text_reports_extends_as_unresolved() -> None:
    config, notes = check_text("_extends: shared\nrunner: fly\n", "kickoff.yml")
    assert config.runner == "fly"
    assert notes == [
        "kickoff.yml: note: `_extends: shared` (OWNER/shared:.github/kickoff.yml) is not followed offline, "
        "so keys it would supply are not checked"
    ]


def test_an_extends_file_that_fails_offline_says_extends_was_not_followed() -> None:
    messages = text_problems("_extends: shared\ntasks:\n  fix: {agents: [house]}\n")
    assert "agent `house` is not defined" in messages[0]
    assert "is not followed offline" in messages[-1]


def test_validate_file(tmp_path: Path) -> None:
    good = tmp_path / "kickoff.yml"
    good.write_text("runner: fly\n")
    assert validate_file(good) == (True, [f"{good}: valid"])

    bad = tmp_path / "bad.yml"
    bad.write_text("runner: docker\n")
    ok, messages = validate_file(bad)
    assert not ok
    assert messages[0].startswith(f"{bad}:1:1: runner: must be ")

    extends = tmp_path / "ext.yml"
    extends.write_text("_extends: base\n")
    ok, messages = validate_file(extends)
    assert ok
    assert "not followed offline" in messages[0]

    binary = tmp_path / "bin.yml"
    binary.write_bytes(b"\xff\xfe\x00")
    assert validate_file(binary) == (False, [f"{binary}: not UTF-8 text"])

    ok, messages = validate_file(tmp_path / "missing.yml")
    assert not ok
    assert "cannot read" in messages[0]


# ---- problem formatting --------------------------------------------------------------------------------------------


def test_problem_text() -> None:
    assert str(ConfigProblem("f.yml", "limits.max_open_prs", "bad", 3, 5)) == "f.yml:3:5: limits.max_open_prs: bad"
    assert str(ConfigProblem("f.yml", "", "bad")) == "f.yml: bad"
    error = ConfigError([ConfigProblem("a", "x", "one"), ConfigProblem("b", "y", "two")])
    assert str(error) == "a: x: one\nb: y: two"


def test_format_path() -> None:
    assert format_path(("limits", "max_open_prs")) == "limits.max_open_prs"
    assert format_path(("tasks", "fix", "agents", 1)) == "tasks.fix.agents[1]"
    assert format_path(("agents", "my agent", "env")) == 'agents["my agent"].env'
    assert format_path(("tasks", True)) == "tasks[True]"


def test_many_problems_are_capped() -> None:
    text = "".join(f"unknown{index}: 1\n" for index in range(80))
    messages = text_problems(text)
    assert len(messages) == 51
    assert messages[-1].endswith("… and 30 more problems")
