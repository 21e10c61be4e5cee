"""GitHub API fidelity: the vendored OpenAPI subsets, request matching, and body/payload validation.

Real data: ``tests/fixtures/github/`` (vendored from ``shared/github/``, MIT, see its NOTICE); when
``shared/github/`` sits beside the checkout its full copies are checked too.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import random
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bot.sandbox.fidelity import (
    OPENAPI_DIR,
    Operation,
    RestSpec,
    WebhookSpec,
    convert_schema,
    load_rest_spec,
    load_webhooks_spec,
)

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "github"
FIXTURES = ROOT / "tests" / "fixtures" / "github"
NO_SHARED = f"{SHARED} is absent (it only exists beside the checkout on project machines)"

EVENTS = (
    "issues",
    "issue_comment",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "check_run",
    "check_suite",
    "status",
    "push",
    "installation",
    "installation_repositories",
    "workflow_run",
    "workflow_job",
    "ping",
)
# The recorded exchanges vendored for these tests (others may vendor more into the same folder).
RECORDED = ("add-labels-to-issue", "create-status", "errors", "get-content", "get-repository", "git-refs", "labels")


def _load_vendor_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vendor_openapi", ROOT / "scripts" / "vendor_openapi.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def rest() -> RestSpec:
    return load_rest_spec()


@pytest.fixture(scope="module")
def webhooks() -> WebhookSpec:
    return load_webhooks_spec()


# --------------------------------------------------------------------------------------------------------
# The vendored subsets


@pytest.mark.skipif(not (SHARED / "openapi").is_dir(), reason=NO_SHARED)
def test_vendored_subsets_are_current() -> None:
    vendor = _load_vendor_script()
    expected: dict[str, str] = vendor.render(SHARED / "openapi")
    for name, content in expected.items():
        assert (OPENAPI_DIR / name).read_text(encoding="utf-8") == content, (
            f"{name} is stale: run .venv/bin/python scripts/vendor_openapi.py"
        )
    assert (OPENAPI_DIR / "NOTICE").read_bytes() == (SHARED / "NOTICE").read_bytes()


def test_vendor_script_fails_loudly_on_unknown_names() -> None:
    vendor = _load_vendor_script()
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {"/x": {"get": {"operationId": "x/get", "responses": {}}}},
    }
    assert set(vendor.build_rest_subset(doc, ["x/get"])["paths"]) == {"/x"}
    with pytest.raises(vendor.VendorError, match="repos/no-such-operation"):
        vendor.build_rest_subset(doc, ["x/get", "repos/no-such-operation"])
    hooks = {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "webhooks": {}}
    with pytest.raises(vendor.VendorError, match="no_such_event"):
        vendor.build_webhooks_subset(hooks, ["no_such_event"])


def test_vendored_subsets_hold_what_kickoff_uses(rest: RestSpec, webhooks: WebhookSpec) -> None:
    vendor = _load_vendor_script()
    assert rest.operation_ids == set(vendor.REST_OPERATIONS)
    assert set(webhooks.events) == set(EVENTS) == set(vendor.WEBHOOK_EVENTS)
    assert webhooks.events["push"] == {None}
    assert {"opened", "closed", "synchronize", "review_requested"} <= webhooks.events["pull_request"]


# --------------------------------------------------------------------------------------------------------
# Matching


@pytest.mark.parametrize(
    ("method", "path", "operation_id", "params"),
    [
        ("GET", "/app", "apps/get-authenticated", {}),
        (
            "post",
            "/app/installations/42/access_tokens",
            "apps/create-installation-access-token",
            {"installation_id": "42"},
        ),
        ("GET", "/repos/o/r", "repos/get", {"owner": "o", "repo": "r"}),
        ("GET", "/repos/o/r/issues/7", "issues/get", {"owner": "o", "repo": "r", "issue_number": "7"}),
        ("PATCH", "/repos/o/r/issues/7?state=closed&x=1", "issues/update", {"issue_number": "7"}),
        ("GET", "https://api.github.com/repos/o/r/pulls/3?per_page=1", "pulls/get", {"pull_number": "3"}),
        ("PUT", "/repos/o/r/pulls/3/merge", "pulls/merge", {"pull_number": "3"}),
        ("PUT", "/repos/o/r/pulls/3/update-branch", "pulls/update-branch", {"pull_number": "3"}),
        ("GET", "/repos/o/r/issues/comments/5", "issues/get-comment", {"comment_id": "5"}),
        (
            "POST",
            "/repos/o/r/pulls/comments/9/reactions",
            "reactions/create-for-pull-request-review-comment",
            {"comment_id": "9"},
        ),
        # literal preference: {ref} may hold "/", yet .../status is its own operation
        ("GET", "/repos/o/r/commits/abc123/status", "repos/get-combined-status-for-ref", {"ref": "abc123"}),
        ("GET", "/repos/o/r/commits/feature/x/check-runs", "checks/list-for-ref", {"ref": "feature/x"}),
        ("GET", "/repos/o/r/commits/feature/x", "repos/get-commit", {"ref": "feature/x"}),
        ("GET", "/repos/o/r/branches/kickoff/task-1", "repos/get-branch", {"branch": "kickoff/task-1"}),
        ("GET", "/repos/o/r/git/ref/heads/kickoff/task-1", "git/get-ref", {"ref": "heads/kickoff/task-1"}),
        ("PATCH", "/repos/o/r/git/refs/heads%2Fmain", "git/update-ref", {"ref": "heads/main"}),
        ("GET", "/repos/o/r/contents/docs/a%20b.md", "repos/get-content", {"path": "docs/a b.md"}),
        ("GET", "/repos/o/r/contents/", "repos/get-content", {"path": ""}),
        (
            "GET",
            "/repos/o/r/compare/main...kickoff/t1",
            "repos/compare-commits",
            {"base": "main", "head": "kickoff/t1"},
        ),
        ("DELETE", "/repos/o/r/issues/1/labels/kind%2Fbug", "issues/remove-label", {"name": "kind/bug"}),
        (
            "POST",
            "/repos/o/r/actions/workflows/ci.yml/dispatches",
            "actions/create-workflow-dispatch",
            {"workflow_id": "ci.yml"},
        ),
        ("GET", "/rate_limit", "rate-limit/get", {}),
    ],
)
def test_match(rest: RestSpec, method: str, path: str, operation_id: str, params: dict[str, str]) -> None:
    op = rest.match(method, path)
    assert op is not None, f"{method} {path} matched nothing"
    assert op.operation_id == operation_id
    assert op.method == method.upper()
    assert params.items() <= op.path_params.items()
    assert op == rest.operation(operation_id)  # path_params do not take part in equality


@pytest.mark.parametrize(
    ("method", "path", "github_operation"),
    [
        ("GET", "/nope", None),
        ("GET", "/repos/o/r/unknown/thing", None),
        ("POST", "/repos/o/r/issues/7", None),  # issues/{n} has no POST
        ("GET", "/repos/o/r/issues/7/", None),
        ("GET", "/repositories/1000/issues?page=2", None),
        # real GitHub routes that are not vendored: the more literal template still wins over the greedy one
        ("GET", "/repos/o/r/branches/main/protection", "repos/get-branch-protection"),
        ("GET", "/repos/o/r/commits/abc/statuses", "repos/list-commit-statuses-for-ref"),
        ("GET", "/repos/o/r/pulls/comments", "pulls/list-review-comments-for-repo"),
        ("DELETE", "/repos/o/r", "repos/delete"),
    ],
)
def test_unknown_or_unvendored_paths_match_nothing(
    rest: RestSpec, method: str, path: str, github_operation: str | None
) -> None:
    assert rest.match(method, path) is None
    route = rest.route(method, path)
    assert (route.operation_id if route else None) == github_operation


def test_operation_of_another_description_is_refused(rest: RestSpec) -> None:
    with pytest.raises(KeyError, match="not vendored"):
        rest.validate_request(Operation("repos/delete", "DELETE", "/repos/{owner}/{repo}"), None)


# --------------------------------------------------------------------------------------------------------
# Recorded exchanges with api.github.com


def _exchanges() -> Iterator[tuple[str, dict[str, Any]]]:
    files = {f"{name}.json": FIXTURES / "recorded" / f"{name}.json" for name in RECORDED}
    if (SHARED / "recorded").is_dir():
        files.update({p.name: p for p in sorted((SHARED / "recorded").glob("*.json"))})
    for name, path in sorted(files.items()):
        for i, exchange in enumerate(_read_json(path)):
            yield f"{name}#{i}", exchange


def _body(value: Any) -> Any:
    return None if value == "" else value


def test_recorded_exchanges_validate(rest: RestSpec) -> None:
    checked: set[str] = set()
    for where, ex in _exchanges():
        op = rest.match(ex["method"], ex["path"])
        if op is None:
            continue
        problems = rest.validate_request(op, _body(ex["body"]))
        problems += rest.validate_response(
            op, ex["status"], _body(ex["response"]), content_type=ex["headers"].get("content-type")
        )
        assert problems == [], f"{where} {ex['method'].upper()} {ex['path']}"
        checked.add(f"{op.operation_id} {ex['status']}")
    assert checked >= {
        "issues/create 201",
        "issues/add-labels 200",
        "issues/create-label 201",
        "issues/create-label 422",
        "issues/get-label 200",
        "repos/create-commit-status 201",
        "repos/get-combined-status-for-ref 200",
        "repos/get-content 200",
        "repos/get 200",
        "git/create-ref 201",
        "git/update-ref 200",
        "git/delete-ref 204",
    }


def _recorded(name: str, index: int) -> dict[str, Any]:
    exchange: dict[str, Any] = _read_json(FIXTURES / "recorded" / f"{name}.json")[index]
    return exchange


def test_mutated_response_fails_readably(rest: RestSpec) -> None:
    ex = _recorded("get-repository", 0)
    op = rest.match(ex["method"], ex["path"])
    assert op is not None
    body = copy.deepcopy(ex["response"])
    body["full_name"] = 42
    del body["owner"]["login"]
    body["visibility"] = None
    problems = rest.validate_response(op, 200, body)
    assert problems == [
        "repos/get 200 response $.full_name: 42 is not of type 'string'",
        "repos/get 200 response $.owner: 'login' is a required property",
        "repos/get 200 response $.visibility: None is not of type 'string'",
    ]


def test_mutated_request_fails_readably(rest: RestSpec) -> None:
    ex = _recorded("create-status", 0)
    op = rest.match(ex["method"], ex["path"])
    assert op is not None
    body = {**ex["body"], "state": "bogus"}
    [problem] = rest.validate_request(op, body)
    assert problem.startswith("repos/create-commit-status request body $.state: 'bogus' is not one of [")
    op = rest.operation("issues/create")
    assert rest.validate_request(op, {"body": "no title"}) == [
        "issues/create request body $: 'title' is a required property"
    ]
    assert rest.validate_request(op, None) == ["issues/create request body: required but absent"]
    assert rest.validate_request(op, b'{"title": "raw bytes are parsed"}') == []


def test_nullable_and_union_fields(rest: RestSpec) -> None:
    op = rest.operation("issues/update")
    assert rest.validate_request(op, {"milestone": None, "body": None, "state_reason": None, "title": 3}) == []
    [problem] = rest.validate_request(op, {"title": [1]})
    assert problem.startswith("issues/update request body $.title: [1] is not valid under any of the given schemas")
    assert rest.validate_request(op, {"labels": ["bug", {"name": "x"}]}) == []


def test_response_status_rules(rest: RestSpec) -> None:
    delete_ref = rest.operation("git/delete-ref")
    assert rest.validate_response(delete_ref, 204) == []
    assert rest.validate_response(delete_ref, 204, b"") == []
    assert rest.validate_response(delete_ref, 204, {"x": 1}) == [
        "git/delete-ref 204 response: status 204 has no documented body, got {'x': 1}"
    ]
    get_issue = rest.operation("issues/get")
    # documented error statuses use their schema; undocumented ones GitHub's generic error shape
    assert rest.validate_response(get_issue, 404, {"message": "Not Found", "documentation_url": "u"}) == []
    assert rest.validate_response(get_issue, 401, {"message": "Bad credentials", "status": "401"}) == []
    assert rest.validate_response(get_issue, 500, {"message": 5}) == [
        "issues/get 500 response $.message: 5 is not of type 'string'"
    ]
    [problem] = rest.validate_response(get_issue, 202, {})
    assert problem.startswith("issues/get 202 response: status 202 is not documented for GET /repos/")
    assert rest.validate_response(get_issue, 200) == [
        "issues/get 200 response: body expected (application/json) but absent"
    ]
    cancel = rest.operation("actions/cancel-workflow-run")
    assert rest.validate_request(cancel) == []
    assert rest.validate_request(cancel, {}) == []
    assert rest.validate_request(cancel, {"x": 1}) == [
        "actions/cancel-workflow-run request body: POST /repos/{owner}/{repo}/actions/runs/{run_id}/cancel "
        "takes no JSON body, got {'x': 1}"
    ]
    assert rest.validate_response(cancel, 202, {}) == []


# --------------------------------------------------------------------------------------------------------
# Webhooks


def _webhook_files() -> dict[str, Path]:
    files = {p.name: p for p in sorted((FIXTURES / "webhooks").glob("*.json"))}
    if (SHARED / "webhooks").is_dir():
        files.update({p.name: p for p in sorted((SHARED / "webhooks").glob("*.json"))})
    return {name: path for name, path in sorted(files.items()) if name.split(".")[0] in EVENTS}


def _event_action(name: str) -> tuple[str, str | None]:
    event, action, _n, _json = name.split(".")
    return event, (None if action == "none" else action)


def _payload(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = _read_json(FIXTURES / "webhooks" / name)
    return payload


@pytest.mark.parametrize("name", sorted(_webhook_files()))
def test_real_webhook_payload_validates(webhooks: WebhookSpec, name: str) -> None:
    event, action = _event_action(name)
    payload = _read_json(_webhook_files()[name])
    assert webhooks.validate(event, action, payload) == []
    assert webhooks.validate(event, None, payload) == []  # action read from the payload


def test_fixture_payloads_cover_every_event() -> None:
    assert {_event_action(name)[0] for name in _webhook_files()} == set(EVENTS)


def test_payload_missing_required_field_fails(webhooks: WebhookSpec) -> None:
    payload = _payload("pull_request.opened.2.json")
    del payload["pull_request"]["number"]
    del payload["sender"]
    assert webhooks.validate("pull_request", "opened", payload) == [
        "webhook pull_request.opened payload $: 'sender' is a required property",
        "webhook pull_request.opened payload $.pull_request: 'number' is a required property",
    ]
    payload = _payload("issues.opened.1.json")
    payload["issue"]["state"] = "merged"
    [problem] = webhooks.validate("issues", "opened", payload)
    assert problem.startswith("webhook issues.opened payload $.issue")
    payload = _payload("push.none.5.json")
    payload["commits"][0]["id"] = None
    assert webhooks.validate("push", None, payload) == [
        "webhook push payload $.commits[0].id: None is not of type 'string'"
    ]


def test_payload_with_wrong_action_or_event(webhooks: WebhookSpec) -> None:
    payload = _payload("issues.opened.1.json")
    [problem] = webhooks.validate("issues", "closed", payload)
    assert problem == "webhook issues.closed payload $.action: 'opened' is not one of ['closed']"
    [problem] = webhooks.validate("issues", "frobnicated", payload)
    assert problem.startswith("webhook issues.frobnicated: no payload schema for this action (known: assigned, ")
    assert webhooks.validate("label", "created", payload) == [
        "webhook label.created: event 'label' is not in the webhooks description"
    ]


def test_known_drift_is_tolerated_unless_strict(webhooks: WebhookSpec, rest: RestSpec) -> None:
    payload = _payload("push.none.2.json")
    assert webhooks.validate("push", None, payload) == []
    assert webhooks.validate("push", None, payload, strict=True) == [
        "webhook push payload $.repository: 'has_discussions' is a required property"
    ]
    # drift inside a oneOf alternative (review_requested is "requested_reviewer" | "requested_team")
    payload = _payload("pull_request.review_requested.1.json")
    assert webhooks.validate("pull_request", "review_requested", payload) == []
    [problem] = webhooks.validate("pull_request", "review_requested", payload, strict=True)
    assert "is not valid under any of the given schemas (closest alternative #0: " in problem
    assert "$.pull_request.base.repo: 'has_discussions' is a required property" in problem
    ex = _recorded("get-repository", 0)
    op = rest.operation("repos/get")
    assert rest.validate_response(op, 200, ex["response"]) == []
    assert rest.validate_response(op, 200, ex["response"], strict=True) != []


def test_fast_path_agrees_with_jsonschema(webhooks: WebhookSpec) -> None:
    """Mutated payloads: the compiled predicate and jsonschema give the same verdict."""
    rng = random.Random(20240601)
    replacements: list[Any] = [None, 0, 1.5, True, "x", "", [], {}, [1], {"a": 1}]

    def leaves(node: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        if at:
            yield at
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in children:
            yield from leaves(child, (*at, key))

    compared = 0
    for name in (
        "pull_request.opened.2.json",
        "issues.opened.1.json",
        "check_run.completed.1.json",
        "workflow_run.completed.2.json",
        "installation.created.1.json",
        "push.none.2.json",
    ):
        event, action = _event_action(name)
        validator, fast = webhooks._doc.validator(webhooks._schemas[(event, action)])
        assert fast is not None
        payload = _payload(name)
        paths = list(leaves(payload))
        for _ in range(60):
            mutated = copy.deepcopy(payload)
            *parents, last = rng.choice(paths)
            node = mutated
            for key in parents:
                node = node[key]
            if isinstance(node, dict) and rng.random() < 0.4:
                del node[last]
            else:
                node[last] = rng.choice(replacements)
            assert fast(mutated) == validator.is_valid(mutated), f"{name} at {[*parents, last]}"
            compared += 1
    assert compared == 360


def test_validation_is_fast(webhooks: WebhookSpec, rest: RestSpec) -> None:
    payload = _payload("pull_request.opened.2.json")
    op = rest.operation("pulls/get")
    assert webhooks.validate("pull_request", "opened", payload) == []  # builds and caches the validators
    assert rest.validate_response(op, 200, payload["pull_request"]) == []
    timings = []
    for _ in range(30):
        start = time.perf_counter()
        webhooks.validate("pull_request", "opened", payload)
        rest.validate_response(op, 200, payload["pull_request"])
        timings.append(time.perf_counter() - start)
    # ~0.2 ms on a developer machine; the bound leaves room for slow CI machines
    assert statistics.median(timings) < 0.005


# --------------------------------------------------------------------------------------------------------
# OpenAPI -> JSON Schema


def test_convert_schema() -> None:
    assert convert_schema({"type": "string", "nullable": True}) == {"type": ["string", "null"]}
    assert convert_schema({"type": "string", "enum": ["a"], "nullable": True}) == {
        "type": ["string", "null"],
        "enum": ["a", None],
    }
    assert convert_schema({"$ref": "#/components/schemas/x", "nullable": True}) == {
        "anyOf": [{"$ref": "#/components/schemas/x"}, {"type": "null"}]
    }
    assert convert_schema({"type": "integer", "minimum": 1, "exclusiveMinimum": True}) == {
        "type": "integer",
        "exclusiveMinimum": 1,
    }
    original = {
        "type": "object",
        "discriminator": {"propertyName": "kind"},
        "example": {"nullable": 1},
        "x-github": {"a": 1},
        "properties": {"nullable": {"type": "boolean", "nullable": True}, "example": {"type": "string"}},
        "items": {"oneOf": [{"type": "integer", "nullable": True}]},
    }
    snapshot = copy.deepcopy(original)
    assert convert_schema(original) == {
        "type": "object",
        "properties": {"nullable": {"type": ["boolean", "null"]}, "example": {"type": "string"}},
        "items": {"oneOf": [{"type": ["integer", "null"]}]},
    }
    assert original == snapshot


def test_loading_is_cached_and_accepts_a_path(tmp_path: Path) -> None:
    assert load_rest_spec() is load_rest_spec()
    assert load_webhooks_spec() is load_webhooks_spec()
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "9"},
        "paths": {
            "/things/{id}": {
                "put": {
                    "operationId": "things/put",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/thing"}}},
                    },
                    "responses": {"200": {"$ref": "#/components/responses/ok"}},
                }
            }
        },
        "components": {
            "schemas": {"thing": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}},
            "responses": {"ok": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/thing"}}}}},
        },
    }
    path = tmp_path / "api.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    spec = load_rest_spec(path)
    assert spec.version == "9"
    op = spec.match("PUT", "/things/1")
    assert op == Operation("things/put", "PUT", "/things/{id}", {"id": "1"})
    assert spec.validate_request(op, {"n": 1}) == []
    assert spec.validate_request(op, {"n": "1"}) == ["things/put request body $.n: '1' is not of type 'integer'"]
    assert spec.validate_response(op, 200, {}) == ["things/put 200 response $: 'n' is a required property"]
