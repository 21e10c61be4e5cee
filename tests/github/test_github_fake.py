"""The shared fake keeps the Protocol's shape and behaves like GitHub where logic tests rely on it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, get_overloads

import pytest

from bot.github import GitHubAPI, GitHubGateway, GitHubUser, GitHubVerbs, NotFound, RateLimited, RepoGateway
from tests.fake_github import FakeGitHub, blob_sha

PROTOCOL_VERBS = sorted(
    name
    for protocol in (GitHubVerbs, GitHubAPI)
    for name, member in vars(protocol).items()
    if callable(member) and not name.startswith("_")
)


def parameters(owner: type, verb: str) -> list[str]:
    """Parameter names of a method, or of its first overload (a Protocol's overloads have no implementation)."""
    probe: Callable[..., Any] = getattr(owner, verb)
    if owner is GitHubAPI:
        defining = next(p for p in (GitHubAPI, GitHubVerbs) if verb in vars(p))

        def probe() -> None: ...

        probe.__module__, probe.__qualname__ = defining.__module__, f"{defining.__name__}.{verb}"
    overloads = get_overloads(probe)
    return list(inspect.signature(overloads[0] if overloads else getattr(owner, verb)).parameters)


@pytest.mark.parametrize("verb", PROTOCOL_VERBS)
def test_fake_and_gateway_match_the_protocol_signatures(verb: str) -> None:
    expected = parameters(GitHubAPI, verb)
    assert "self" in expected
    assert parameters(FakeGitHub, verb) == expected
    assert parameters(GitHubGateway, verb) == expected


def test_the_protocol_has_the_verbs_decision_code_needs() -> None:
    assert {
        "get_installation_for_repo",
        "get_repository",
        "get_file",
        "comment",
        "edit_comment",
        "add_reaction_to_comment",
        "add_labels",
        "remove_label",
        "get_collaborator_permission",
        "list_issue_comments",
        "mint_run_token",
        "get_issue",
        "list_labels",
        "get_app",
        "for_repo",
    } <= set(PROTOCOL_VERBS)
    assert not {"request", "paginate"} & set(PROTOCOL_VERBS)  # features reach GitHub only through verbs
    assert not {"request", "paginate", "responses", "listings"} & set(dir(FakeGitHub))  # and so does the fake


async def test_calls_are_recorded_in_order() -> None:
    gh = FakeGitHub(permissions={"ann": "write"})

    assert await gh.get_collaborator_permission(1, "octo", "hello", "ann") == "write"
    assert await gh.get_collaborator_permission(1, "octo", "hello", "bob") == "none"
    comment_id = await gh.comment(1, "octo", "hello", 12, "Starting 2 runs")
    await gh.edit_comment(1, "octo", "hello", comment_id, "2 runs started")
    await gh.add_reaction_to_comment(1, "octo", "hello", 99, "eyes")

    assert [verb for verb, _ in gh.calls] == [
        "get_collaborator_permission",
        "get_collaborator_permission",
        "comment",
        "edit_comment",
        "add_reaction_to_comment",
    ]
    assert gh.calls_to("comment") == [(1, "octo", "hello", 12, "Starting 2 runs")]
    assert gh.reactions == [("octo", "hello", 99, "eyes")]


async def test_check_runs_are_listed_by_commit_among_many() -> None:
    """The fake finds one commit's check runs through an index by commit (a queue of thousands lists every entry's on
    each reconcile): only that commit's, in that repository, the latest of each name, newest first; by branch too."""
    gh = FakeGitHub()
    made: dict[tuple[str, str], list[int]] = {}
    for round_ in range(3):
        for repo in ("hello", "world"):
            for n in range(20):
                sha = f"{n:040x}"
                for name in ("review-queue", "agent-run"):
                    run_id = await gh.create_check_run(1, "octo", repo, name=name, head_sha=sha,
                                                       conclusion="success" if round_ else None, title=f"{round_}",
                                                       summary=name)
                    made.setdefault((repo, sha), []).append(run_id)
    gh.branch_shas[("octo", "world", "kickoff/7-fix")] = f"{7:040x}"

    listed = await gh.list_check_runs(1, "octo", "world", f"{7:040x}")
    latest_queue, latest_agent = made[("world", f"{7:040x}")][-2:]
    assert [(r.id, r.name, r.head_sha, r.title, r.status) for r in listed] == [
        (latest_agent, "agent-run", f"{7:040x}", "2", "completed"),
        (latest_queue, "review-queue", f"{7:040x}", "2", "completed"),
    ]
    assert await gh.list_check_runs(1, "octo", "world", "kickoff/7-fix") == listed
    assert [r.id for r in await gh.list_check_runs(1, "octo", "hello", f"{7:040x}")] == made[("hello", f"{7:040x}")][
        :-3:-1]
    assert await gh.list_check_runs(1, "octo", "hello", f"{99:040x}") == []
    assert await gh.list_check_runs(1, "other", "world", f"{7:040x}") == []


async def test_comments_and_labels_keep_state() -> None:
    gh = FakeGitHub()
    gh.add_comment("octo", "hello", 12, "/agent fix", author="ann")
    mine = await gh.comment(1, "octo", "hello", 12, "on it")
    await gh.edit_comment(1, "octo", "hello", mine, "done")
    await gh.add_labels(1, "octo", "hello", 12, ["agent:fix", "kickoff"])
    await gh.add_labels(1, "octo", "hello", 12, ["kickoff"])
    await gh.remove_label(1, "octo", "hello", 12, "agent:fix")
    await gh.remove_label(1, "octo", "hello", 12, "absent")

    comments = await gh.list_issue_comments(1, "octo", "hello", 12)
    assert [(c.author, c.author_type, c.body) for c in comments] == [
        ("ann", "User", "/agent fix"),
        ("kickoff[bot]", "Bot", "done"),
    ]
    assert gh.labels[("octo", "hello", 12)] == ["kickoff"]
    with pytest.raises(NotFound):
        await gh.edit_comment(1, "octo", "hello", 424242, "x")


async def test_files_by_ref() -> None:
    gh = FakeGitHub()
    gh.set_file("octo", "hello", ".github/kickoff.yml", "agents: {}")
    gh.set_file("octo", "hello", ".github/kickoff.yml", "evil: true", ref="refs/pull/3/head")

    assert await gh.get_file(1, "octo", "hello", ".github/kickoff.yml") == ("agents: {}", blob_sha("agents: {}"))
    assert await gh.get_file(1, "octo", "hello", ".github/kickoff.yml", ref="main") == (
        "agents: {}",
        blob_sha("agents: {}"),
    )
    assert (await gh.get_file(1, "octo", "hello", ".github/kickoff.yml", ref="refs/pull/3/head")) == (
        "evil: true",
        blob_sha("evil: true"),
    )
    assert await gh.get_file(1, "octo", "hello", "missing.md") is None
    assert blob_sha("") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's empty blob


async def test_installations_and_repositories() -> None:
    gh = FakeGitHub(installations={("octo", "hello"): 7}, default_installation_id=None)

    assert await gh.get_installation_for_repo("octo", "hello") == 7
    with pytest.raises(NotFound):
        await gh.get_installation_for_repo("octo", "other")
    repo = await gh.get_repository(7, "octo", "hello")
    assert (repo.full_name, repo.default_branch) == ("octo/hello", "main")


async def test_failures_can_be_injected() -> None:
    gh = FakeGitHub()
    gh.fail("comment", RateLimited("slow down", status=403, retry_after=60))

    with pytest.raises(RateLimited):
        await gh.comment(1, "octo", "hello", 1, "x")
    assert await gh.comment(1, "octo", "hello", 1, "x") > 0
    assert len(gh.calls_to("comment")) == 2


async def test_run_tokens() -> None:
    gh = FakeGitHub()

    token = await gh.mint_run_token(1, "hello", {"contents": "write"})
    await gh.revoke_token(token)

    assert token.repositories == ("hello",)
    assert dict(token.permissions) == {"contents": "write"}
    assert gh.revoked == [token]
    with pytest.raises(ValueError, match="bare names"):
        await gh.mint_run_token(1, "octo/hello", {"contents": "write"})


REPO_VERBS = sorted(
    verb for verb in PROTOCOL_VERBS
    if parameters(GitHubAPI, verb)[1:4] == ["installation_id", "owner", "repo"] or verb == "mint_run_token"
)


def test_the_repo_gateway_has_every_repository_verb_without_the_triple() -> None:
    assert {"get_issue", "list_labels", "comment", "get_pull_request", "add_reaction_to_comment"} <= set(REPO_VERBS)
    for verb in REPO_VERBS:
        unbound = parameters(GitHubAPI, verb)
        bound = ["self", *unbound[4:]] if verb != "mint_run_token" else ["self", *unbound[3:]]
        assert parameters(RepoGateway, verb) == bound, verb


async def test_the_fake_records_repo_gateway_calls_under_the_verbs() -> None:
    gh = FakeGitHub()
    gh.set_issue("octo", "hello", 12, title="Crash", author="ann")
    gh.labels[("octo", "hello", 12)] = ["bug"]
    repo = gh.for_repo(3, "octo/hello")

    assert (await repo.get_issue(12)).title == "Crash"
    assert await repo.list_labels(12) == ["bug"]
    await repo.add_reaction_to_issue(12, "eyes")
    await repo.add_reaction_to_review_comment(77, "eyes")
    token = await repo.mint_run_token({"contents": "write"})

    assert gh.calls == [
        ("get_issue", (3, "octo", "hello", 12)),
        ("list_labels", (3, "octo", "hello", 12)),
        ("add_reaction_to_issue", (3, "octo", "hello", 12, "eyes")),
        ("add_reaction_to_review_comment", (3, "octo", "hello", 77, "eyes")),
        ("mint_run_token", (3, "hello", {"contents": "write"})),
    ]
    assert gh.issue_reactions == [("octo", "hello", 12, "eyes")]
    assert gh.review_comment_reactions == [("octo", "hello", 77, "eyes")]
    assert token.repositories == ("hello",)
    with pytest.raises(NotFound):
        await repo.get_issue(13)


async def test_a_seeded_pull_request_is_answered_by_the_verbs() -> None:
    gh = FakeGitHub()
    seeded = gh.set_pull_request("octo", "hello", 5, head_ref="feature/x", base_ref="develop", author="bob")
    gh.set_pull_request("octo", "hello", 6, head_repo="someone/fork")
    gh.set_pull_request("octo", "hello", 7, head_repo=None)

    pull = await gh.get_pull_request(1, "octo", "hello", 5)
    assert pull == seeded
    assert (pull.state, pull.author, pull.head_ref, pull.base_ref, pull.head_sha) == (
        "open", "bob", "feature/x", "develop", "a" * 40,
    )
    assert [p.fork_of("octo/hello") for p in [
        pull, await gh.get_pull_request(1, "octo", "hello", 6), await gh.get_pull_request(1, "octo", "hello", 7),
    ]] == [None, "someone/fork", "a deleted fork"]
    issue = await gh.get_issue(1, "octo", "hello", 5)  # a pull request is an issue too
    assert (issue.is_pull_request, issue.author, issue.html_url) == (True, "bob", seeded.html_url)
    with pytest.raises(NotFound):
        await gh.get_pull_request(1, "octo", "hello", 8)
    with pytest.raises(NotFound):
        await gh.get_issue(1, "octo", "hello", 8)


async def test_the_fake_app_users_and_deliveries() -> None:
    gh = FakeGitHub(bot_login="robot[bot]", users={"robot[bot]": GitHubUser(42, "robot[bot]", "Bot")})
    at = datetime(2026, 3, 1, tzinfo=UTC)
    gh.add_hook_delivery(2, "g", at, status_code=502)
    gh.add_hook_delivery(1, "g", at)

    assert (await gh.get_app()).bot_login == "robot[bot]"
    assert (await gh.get_user(1, "robot[bot]")).id == 42
    with pytest.raises(NotFound):
        await gh.get_user(1, "nobody")
    assert [(d.id, d.succeeded) async for d in gh.list_hook_deliveries()] == [(2, False), (1, True)]
    await gh.redeliver_hook_delivery(2)

    assert gh.redelivered == [2]
    assert [verb for verb, _ in gh.calls] == [
        "get_app", "get_user", "get_user", "list_hook_deliveries", "redeliver_hook_delivery",
    ]
