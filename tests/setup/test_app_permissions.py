"""The manifest's permissions against every GitHub call Kickoff makes, in both directions.

`bot/github/app_permissions.py` maps each `GitHubAPI` verb to the endpoints it calls and each endpoint to the permission
GitHub requires; the source of `bot/` is scanned for `request(...)`/`paginate(...)` paths. A new verb, a new path or
a manifest that lacks (or adds) a permission fails here.
"""

from __future__ import annotations

import inspect
import json
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import pytest
import yaml

from bot.github import GitHubAPI, GitHubGateway
from bot.github.app_permissions import ENDPOINTS, EVENTS, VERBS, Need, at_least, missing, required_permissions
from tests.setup.scan import Call, Scan, match, scan, scan_source

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "app-manifest.yml"
REST_DESCRIPTION = ROOT.parent / "shared" / "github" / "openapi" / "rest-api.github.com.json"
EXPECTED_EVENTS = [
    "issues", "issue_comment", "pull_request", "pull_request_review", "pull_request_review_comment", "check_run",
    "check_suite", "status", "push", "workflow_run", "workflow_job",
]
EXPECTED_PERMISSIONS = {
    "issues": "write", "pull_requests": "write", "contents": "write", "checks": "write", "statuses": "read",
    "metadata": "read", "actions": "write",
}


def manifest() -> dict[str, Any]:
    data = yaml.safe_load(MANIFEST.read_text())
    assert isinstance(data, dict)
    return data


@cache
def source_scan() -> Scan:
    files = [p for p in (ROOT / "bot").rglob("*.py") if "sandbox" not in p.relative_to(ROOT / "bot").parts]
    return scan(files, ROOT)


def protocol_verbs(protocol: type) -> set[str]:
    """The public methods of a Protocol and of the Protocols it extends."""
    return {
        name
        for cls in protocol.__mro__
        if cls is not object and cls is not Protocol and getattr(cls, "_is_protocol", False)
        for name, value in vars(cls).items()
        if not name.startswith("_") and inspect.isfunction(value)
    }


def verbs_without_entry(protocol: type) -> list[str]:
    return sorted(protocol_verbs(protocol) - set(VERBS))


def unknown_calls(calls: list[Call]) -> list[str]:
    """Calls whose path cannot be read, that match no endpoint, or that match endpoints needing different things."""
    problems = []
    for call in calls:
        if call.method is None or call.template is None:
            problems.append(f"{call}: write the method and path literally (or as an f-string) so they can be checked")
            continue
        found = match(call.method, call.template, ENDPOINTS)
        if not found:
            problems.append(f"{call}: no entry in bot/github/app_permissions.py ENDPOINTS")
        elif len({ENDPOINTS[e] for e in found}) > 1:
            problems.append(f"{call}: ambiguous, could be any of {found}")
    return problems


def defined_in(name: str) -> str:
    """`Class.name` for the class of `GitHubGateway`'s MRO (its verb mixins, its transport) that defines `name`."""
    for cls in GitHubGateway.__mro__:
        if name in vars(cls):
            return f"{cls.__name__}.{name}"
    raise AssertionError(f"GitHubGateway has no {name}")


def gateway_endpoints(result: Scan, verb: str) -> set[tuple[str, str]]:
    """The endpoints `GitHubGateway.<verb>` calls, directly or through its private helpers."""
    seen: set[str] = set()
    todo = [defined_in(verb)]
    out: set[tuple[str, str]] = set()
    while todo:
        function = todo.pop()
        if function in seen:
            continue
        seen.add(function)
        for call in result.calls:
            if call.function == function and call.method and call.template:
                out.update(match(call.method, call.template, ENDPOINTS))
        for name in result.self_calls.get(function, ()):
            if name.startswith("_") and hasattr(GitHubGateway, name):
                todo.append(defined_in(name))
    return out


def test_every_protocol_verb_has_an_entry_and_every_entry_is_a_verb() -> None:
    assert verbs_without_entry(GitHubAPI) == [], "add each new GitHubAPI verb to VERBS in bot/github/app_permissions.py"
    assert sorted(set(VERBS) - protocol_verbs(GitHubAPI)) == [], "VERBS lists a method GitHubAPI no longer has"


def test_a_new_verb_without_an_entry_fails() -> None:
    class Extended(GitHubAPI, Protocol):
        async def merge_pull_request(self, installation_id: int, owner: str, repo: str, number: int) -> None: ...

    assert verbs_without_entry(Extended) == ["merge_pull_request"]


def test_the_gateway_verbs_call_exactly_the_endpoints_listed() -> None:
    result = source_scan()
    for verb, endpoints in VERBS.items():
        if verb in ("request", "paginate"):
            continue
        assert gateway_endpoints(result, verb) == set(endpoints), verb


def test_no_feature_calls_github_outside_the_gateways_verbs() -> None:
    """Features call verbs (each listed in VERBS with its endpoints), never a raw `request`/`paginate`."""
    calls = source_scan().calls
    assert any(c.where.startswith("bot/github/") for c in calls), "the scan found no request(...) in the gateway"
    assert [f"{c.where}: {c.method} {c.template}" for c in calls if not c.where.startswith("bot/github/")] == []


def test_a_new_request_path_without_an_entry_fails() -> None:
    code = '''
async def delete_branch(github, site, branch, installation_id):
    path = f"{site.api}/git/refs/heads/{branch}"
    await github.request(installation_id, "DELETE", path)

async def forwarded(github, installation_id, method, path):
    return await github.request(installation_id, method, path)

async def computed(github, installation_id, paths):
    await github.request(installation_id, "GET", paths[0])
'''
    problems = unknown_calls(scan_source(code, "new.py").calls)
    assert len(problems) == 2
    assert "DELETE {}/git/refs/heads/{}: no entry" in problems[0]
    assert "GET ?: write the method and path literally" in problems[1]


def test_the_scanner_reads_site_relative_and_nested_paths() -> None:
    code = '''
class G:
    async def verb(self, installation_id, owner, repo, path):
        base = f"/repos/{_seg(owner)}/{_seg(repo)}"
        url = f"{base}/contents/{quote(path)}"
        await self._fetch(installation_id, "GET", url)
        async for _ in self.paginate(installation_id, f"{site.api}/issues/{n}/comments", model=X):
            pass
'''
    calls = scan_source(code, "g.py").calls
    assert [(c.method, c.template) for c in calls] == [
        ("GET", "/repos/{}/{}/contents/{}"), ("GET", "{}/issues/{}/comments"),
    ]
    assert match("GET", "{}/issues/{}/comments", ENDPOINTS) == [
        ("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments")
    ]


def test_the_manifest_grants_every_permission_kickoff_needs() -> None:
    granted = manifest()["default_permissions"]
    needs: list[Need] = [n for ns in ENDPOINTS.values() for n in ns]
    needs += [EVENTS[e] for e in manifest()["default_events"]]
    assert missing(granted, needs) == []


def test_a_manifest_without_a_needed_permission_fails() -> None:
    granted = dict(manifest()["default_permissions"])
    granted["checks"] = "read"
    del granted["actions"]
    needs = [n for ns in ENDPOINTS.values() for n in ns]
    assert set(missing(granted, needs)) == {("checks", "write"), ("actions", "read"), ("actions", "write")}


def test_the_manifest_grants_nothing_more() -> None:
    """Least privilege: each permission, at its level, is needed by some call or event; `workflows` is not."""
    granted = manifest()["default_permissions"]
    assert granted == required_permissions()
    assert granted == EXPECTED_PERMISSIONS
    assert "workflows" not in granted
    for permission, level in granted.items():
        if permission == "metadata":
            continue
        users = [e for e, ns in ENDPOINTS.items() if (permission, level) in ns]
        assert users, f"nothing needs {permission}: {level}"


def test_the_manifest_subscribes_to_the_events_kickoff_handles() -> None:
    data = manifest()
    assert data["default_events"] == EXPECTED_EVENTS
    assert set(data["default_events"]) <= set(EVENTS)
    for event in data["default_events"]:
        permission, level = EVENTS[event]
        assert at_least(data["default_permissions"].get(permission), level), event
    assert data["public"] is False
    assert set(data["hook_attributes"]) >= {"url"}
    assert "redirect_url" in data
    assert data["name"]
    assert "url" in data


@pytest.fixture(scope="module")
def rest_description() -> dict[str, Any]:
    if not REST_DESCRIPTION.is_file():
        pytest.skip(f"GitHub's REST description is not at {REST_DESCRIPTION} (the shared folder beside the checkout)")
    data = json.loads(REST_DESCRIPTION.read_text())
    assert isinstance(data, dict)
    return data


def test_every_endpoint_is_a_real_github_operation(rest_description: dict[str, Any]) -> None:
    paths = rest_description["paths"]
    for method, template in ENDPOINTS:
        if ".git/" in template:
            continue  # git's smart HTTP, not the REST API
        assert method.lower() in paths.get(template, {}), f"{method} {template} is not in GitHub's REST description"


def test_the_permission_names_and_levels_are_githubs(rest_description: dict[str, Any]) -> None:
    schema = rest_description["components"]["schemas"]["app-permissions"]["properties"]
    for permission, level in manifest()["default_permissions"].items():
        assert permission in schema, permission
        assert level in schema[permission]["enum"], (permission, level)
    for needs in ENDPOINTS.values():
        for permission, level in needs:
            assert permission in schema, permission
            assert level in schema[permission]["enum"], (permission, level)
