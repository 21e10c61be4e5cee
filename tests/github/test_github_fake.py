"""The shared fake keeps the Protocol's shape and behaves like GitHub where logic tests rely on it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, get_overloads

import pytest
from pydantic import BaseModel

from bot.github import GitHubAPI, GitHubGateway, NotFound, RateLimited
from tests.fake_github import FakeGitHub, blob_sha

PROTOCOL_VERBS = sorted(
    name for name, member in vars(GitHubAPI).items() if callable(member) and not name.startswith("_")
)


def parameters(owner: type, verb: str) -> list[str]:
    """Parameter names of a method, or of its first overload (a Protocol's overloads have no implementation)."""
    probe: Callable[..., Any] = getattr(owner, verb)
    if owner is GitHubAPI:

        def probe() -> None: ...

        probe.__module__, probe.__qualname__ = GitHubAPI.__module__, f"GitHubAPI.{verb}"
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
        "request",
        "paginate",
    } <= set(PROTOCOL_VERBS)


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


class Pull(BaseModel):
    number: int


async def test_the_escape_hatch() -> None:
    gh = FakeGitHub()
    gh.responses[("POST", "/repos/octo/hello/pulls")] = {"number": 5, "extra": True}
    gh.listings["/repos/octo/hello/pulls"] = [{"number": 1}, {"number": 2}]

    assert await gh.request(1, "post", "/repos/octo/hello/pulls", json={"title": "t"}, model=Pull) == Pull(number=5)
    assert await gh.request(1, "PUT", "/repos/octo/hello/pulls/5/merge") is None
    with pytest.raises(NotFound):
        await gh.request(1, "GET", "/repos/octo/hello/pulls/9")
    assert [p.number async for p in gh.paginate(1, "/repos/octo/hello/pulls", model=Pull)] == [1, 2]
    assert gh.calls_to("request")[0] == (1, "POST", "/repos/octo/hello/pulls", {}, {"title": "t"})
