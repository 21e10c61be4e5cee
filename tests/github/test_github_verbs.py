"""The domain verbs: the requests they send (checked against GitHub's OpenAPI description) and what they return."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
import respx
from pydantic import BaseModel

from bot.github import FileContent, GitHubGateway, NotFound, Repository
from tests.github.harness import BASE_URL, INSTALLATION_ID, FakeTime, load_recorded, mount_mint, recorded_headers

REPO_URL = f"{BASE_URL}/repos/octo/hello"
OPENAPI = Path(__file__).resolve().parents[3] / "shared" / "github" / "openapi" / "rest-api.github.com.json"


@pytest.fixture(autouse=True)
def _tokens(mock_github: respx.MockRouter, clock: FakeTime) -> None:
    mount_mint(mock_github, clock)


def sent_json(route: respx.Route) -> Any:
    return json.loads(route.calls.last.request.content)


def b64(text: str) -> str:
    encoded = base64.b64encode(text.encode()).decode()
    return "\n".join(encoded[i : i + 60] for i in range(0, len(encoded), 60)) + "\n"  # GitHub wraps at 60


async def test_get_repository_reads_the_recorded_repository(
    gateway: GitHubGateway, mock_github: respx.MockRouter
) -> None:
    (entry,) = load_recorded("get-repository.json")
    mock_github.get(f"{BASE_URL}{entry['path']}").respond(json=entry["response"], headers=recorded_headers(entry))

    repo = await gateway.get_repository(INSTALLATION_ID, "octokit-fixture-org", "hello-world")

    assert repo == Repository(
        id=1000,
        owner="octokit-fixture-org",
        name="hello-world",
        full_name="octokit-fixture-org/hello-world",
        default_branch="master",
        private=False,
        fork=False,
        archived=False,
        html_url="https://github.com/octokit-fixture-org/hello-world",
        clone_url="https://github.com/octokit-fixture-org/hello-world.git",
    )


async def test_get_file_decodes_text_and_returns_the_blob_sha(
    gateway: GitHubGateway, mock_github: respx.MockRouter
) -> None:
    text = "agents:\n  claude: {}\n" + "# ünïcode ✓\n" * 20
    route = mock_github.get(f"{REPO_URL}/contents/.github/kickoff.yml").respond(
        json={
            "type": "file",
            "encoding": "base64",
            "content": b64(text),
            "sha": "abc123",
            "path": ".github/kickoff.yml",
        }
    )

    found = await gateway.get_file(INSTALLATION_ID, "octo", "hello", ".github/kickoff.yml", ref="main")

    assert found == FileContent(text, "abc123")
    _, sha = found
    assert sha == "abc123"
    assert route.calls.last.request.url.params["ref"] == "main"


async def test_get_file_without_ref_sends_none(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    route = mock_github.get(f"{REPO_URL}/contents/README.md").respond(
        json={"type": "file", "encoding": "base64", "content": b64("hi"), "sha": "s"}
    )

    assert await gateway.get_file(INSTALLATION_ID, "octo", "hello", "README.md") == ("hi", "s")
    assert "ref" not in route.calls.last.request.url.params


async def test_get_file_escapes_the_path(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    route = mock_github.get(url__regex=r".*/contents/.*").respond(
        json={"type": "file", "encoding": "base64", "content": b64("x"), "sha": "s"}
    )

    await gateway.get_file(INSTALLATION_ID, "octo", "hello", "docs/a b#c?.md")

    assert route.calls.last.request.url.raw_path == b"/repos/octo/hello/contents/docs/a%20b%23c%3F.md"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, {"message": "Not Found"}),
        (200, [{"type": "file", "name": "a.md", "sha": "s"}]),
        (200, {"type": "submodule", "sha": "s", "submodule_git_url": "git://x"}),
        (200, {"type": "symlink", "sha": "s", "target": "elsewhere"}),
    ],
    ids=["missing", "directory", "submodule", "symlink"],
)
async def test_get_file_is_none_when_there_is_no_file(
    gateway: GitHubGateway, mock_github: respx.MockRouter, status: int, body: Any
) -> None:
    mock_github.get(f"{REPO_URL}/contents/.github/kickoff.yml").respond(status, json=body)

    assert await gateway.get_file(INSTALLATION_ID, "octo", "hello", ".github/kickoff.yml") is None


async def test_get_file_over_one_megabyte_reads_the_blob(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    big = "x" * 1_100_000
    mock_github.get(f"{REPO_URL}/contents/big.txt").respond(
        json={"type": "file", "encoding": "none", "content": "", "sha": "bigsha", "size": len(big)}
    )
    blob = mock_github.get(f"{REPO_URL}/git/blobs/bigsha").respond(
        json={"sha": "bigsha", "encoding": "base64", "content": b64(big), "size": len(big)}
    )

    found = await gateway.get_file(INSTALLATION_ID, "octo", "hello", "big.txt")

    assert found == FileContent(big, "bigsha")
    assert blob.call_count == 1


async def test_comment_returns_the_new_comment_id(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    route = mock_github.post(f"{REPO_URL}/issues/12/comments").respond(201, json={"id": 555, "body": "hello"})

    assert await gateway.comment(INSTALLATION_ID, "octo", "hello", 12, "hello") == 555
    assert sent_json(route) == {"body": "hello"}
    assert route.calls.last.request.headers["x-github-api-version"] == "2022-11-28"


async def test_edit_comment(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    route = mock_github.patch(f"{REPO_URL}/issues/comments/555").respond(200, json={"id": 555})

    await gateway.edit_comment(INSTALLATION_ID, "octo", "hello", 555, "edited")

    assert sent_json(route) == {"body": "edited"}


async def test_add_reaction_to_comment(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    route = mock_github.post(f"{REPO_URL}/issues/comments/555/reactions").respond(201, json={"id": 1})

    await gateway.add_reaction_to_comment(INSTALLATION_ID, "octo", "hello", 555, "eyes")

    assert sent_json(route) == {"content": "eyes"}


async def test_add_labels(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    route = mock_github.post(f"{REPO_URL}/issues/12/labels").respond(200, json=[{"name": "kickoff"}])

    await gateway.add_labels(INSTALLATION_ID, "octo", "hello", 12, ["kickoff", "agent:fix"])
    await gateway.add_labels(INSTALLATION_ID, "octo", "hello", 12, [])

    assert route.call_count == 1
    assert sent_json(route) == {"labels": ["kickoff", "agent:fix"]}


async def test_remove_label_escapes_the_name_and_tolerates_absence(
    gateway: GitHubGateway, mock_github: respx.MockRouter
) -> None:
    route = mock_github.delete(url__regex=r".*/issues/12/labels/.*").respond(
        404, json={"message": "Label does not exist"}
    )

    await gateway.remove_label(INSTALLATION_ID, "octo", "hello", 12, "agent:fix me/now")

    assert route.calls.last.request.url.raw_path == b"/repos/octo/hello/issues/12/labels/agent%3Afix%20me%2Fnow"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"permission": "admin", "role_name": "admin"}, "admin"),
        ({"permission": "write", "role_name": "maintain"}, "maintain"),
        ({"permission": "write", "role_name": "write"}, "write"),
        ({"permission": "read", "role_name": "triage"}, "triage"),
        ({"permission": "read", "role_name": "read"}, "read"),
        ({"permission": "read", "role_name": "security-reviewer"}, "read"),  # a custom role: its base
        ({"permission": "write"}, "write"),  # older GHES: no role_name
        ({"permission": "none", "role_name": ""}, "none"),
    ],
)
async def test_get_collaborator_permission(
    gateway: GitHubGateway, mock_github: respx.MockRouter, body: dict[str, Any], expected: str
) -> None:
    mock_github.get(f"{REPO_URL}/collaborators/ann/permission").respond(json={**body, "user": {"login": "ann"}})

    assert await gateway.get_collaborator_permission(INSTALLATION_ID, "octo", "hello", "ann") == expected


async def test_an_unknown_user_has_no_permission(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    mock_github.get(f"{REPO_URL}/collaborators/nobody/permission").respond(404, json={"message": "Not Found"})

    assert await gateway.get_collaborator_permission(INSTALLATION_ID, "octo", "hello", "nobody") == "none"


async def test_get_installation_for_repo_not_installed(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    mock_github.get(f"{REPO_URL}/installation").respond(404, json={"message": "Not Found"})

    with pytest.raises(NotFound):
        await gateway.get_installation_for_repo("octo", "hello")


class PullRequest(BaseModel):
    number: int
    html_url: str


async def test_request_is_a_typed_escape_hatch(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    route = mock_github.post(f"{REPO_URL}/pulls").respond(201, json={"number": 8, "html_url": "https://x/8", "id": 1})
    mock_github.get(f"{REPO_URL}/pulls/8/merge").respond(204)

    pr = await gateway.request(
        INSTALLATION_ID, "POST", "/repos/octo/hello/pulls", json={"title": "t"}, model=PullRequest
    )
    raw = await gateway.request(INSTALLATION_ID, "get", "/repos/octo/hello/pulls/8/merge")

    assert pr == PullRequest(number=8, html_url="https://x/8")
    assert raw is None
    assert sent_json(route) == {"title": "t"}


async def test_request_as_the_app(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    route = mock_github.get(f"{BASE_URL}/app/hook/deliveries").respond(json=[{"id": 1, "guid": "g"}])

    data = await gateway.request(None, "GET", "/app/hook/deliveries", params={"per_page": 50})

    assert data == [{"id": 1, "guid": "g"}]
    assert route.calls.last.request.headers["authorization"].startswith("Bearer ")
    assert route.calls.last.request.url.params["per_page"] == "50"


def _operations() -> list[tuple[str, re.Pattern[str]]]:
    spec = json.loads(OPENAPI.read_text())
    operations: list[tuple[str, re.Pattern[str]]] = []
    for template, item in spec["paths"].items():
        # `{path}` (contents) and `{ref}` (git refs) may hold slashes; other parameters are one segment.
        regex = re.escape(template).replace(r"\{path\}", ".+").replace(r"\{ref\}", ".+")
        pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", regex) + "$")
        operations.extend((method.upper(), pattern) for method in item if method != "parameters")
    return operations


async def test_every_request_names_a_real_operation(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    if not OPENAPI.exists():
        pytest.skip(f"GitHub's OpenAPI description is not beside the checkout ({OPENAPI})")
    mock_github.route(host="api.github.com").respond(
        200,
        json={
            "id": 1,
            "type": "file",
            "encoding": "none",
            "content": "",
            "sha": "s",
            "permission": "read",
            "name": "hello",
            "full_name": "octo/hello",
            "owner": {"login": "octo"},
        },
    )
    gh = gateway
    await gh.get_installation_for_repo("octo", "hello")
    await gh.get_repository(INSTALLATION_ID, "octo", "hello")
    await gh.get_file(INSTALLATION_ID, "octo", "hello", "a/b.md", ref="main")  # and its blob
    await gh.comment(INSTALLATION_ID, "octo", "hello", 1, "x")
    await gh.edit_comment(INSTALLATION_ID, "octo", "hello", 1, "x")
    await gh.add_reaction_to_comment(INSTALLATION_ID, "octo", "hello", 1, "rocket")
    await gh.add_labels(INSTALLATION_ID, "octo", "hello", 1, ["a"])
    await gh.remove_label(INSTALLATION_ID, "octo", "hello", 1, "a")
    await gh.get_collaborator_permission(INSTALLATION_ID, "octo", "hello", "ann")
    await gh.mint_run_token(INSTALLATION_ID, "hello", {"contents": "write"})

    operations = _operations()
    sent = {(c.request.method, c.request.url.path) for c in mock_github.calls}
    unknown = [(m, p) for m, p in sent if not any(m == om and pattern.match(p) for om, pattern in operations)]
    assert unknown == []
    assert len(sent) >= 10
