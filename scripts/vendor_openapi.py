#!/usr/bin/env python3
"""Vendor the subset of GitHub's OpenAPI descriptions that Kickoff and its sandbox use.

Reads ``rest-api.github.com.json`` and ``webhooks-api.github.com.json`` (default: ``../shared/github/openapi/``
beside the checkout), keeps the REST operations listed in ``REST_OPERATIONS`` and the webhook payloads of
``WEBHOOK_EVENTS`` (all actions), plus every ``#/components/...`` object they reference transitively, and
writes compact, key-sorted JSON to ``bot/sandbox/openapi/``.

Documentation-only members (descriptions, summaries, examples, tags, ``x-*`` extensions, response headers,
discriminators) are dropped: the subsets exist to validate requests, responses and webhook payloads.

Usage::

    python scripts/vendor_openapi.py [--source DIR] [--out DIR] [--check]

``--check`` writes nothing and exits 1 when the vendored files differ from what would be written.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = ROOT.parent / "shared" / "github" / "openapi"
DEFAULT_OUT = ROOT / "bot" / "sandbox" / "openapi"
REST_SOURCE = "rest-api.github.com.json"
WEBHOOKS_SOURCE = "webhooks-api.github.com.json"
REST_OUT = "rest-subset.json"
WEBHOOKS_OUT = "webhooks-subset.json"

REST_OPERATIONS: tuple[str, ...] = (
    "apps/get-authenticated",
    "apps/create-installation-access-token",
    "apps/revoke-installation-access-token",
    "apps/get-installation",
    "apps/list-installations",
    "apps/get-repo-installation",
    "apps/list-webhook-deliveries",
    "apps/get-webhook-delivery",
    "apps/redeliver-webhook-delivery",
    "apps/create-from-manifest",
    "repos/get",
    "repos/get-content",
    "repos/get-branch",
    "repos/list-branches",
    "git/get-ref",
    "git/create-ref",
    "git/update-ref",
    "git/delete-ref",
    "git/get-commit",
    "repos/get-commit",
    "repos/compare-commits",
    "issues/get",
    "issues/update",
    "issues/create",
    "issues/list-comments",
    "issues/create-comment",
    "issues/get-comment",
    "issues/update-comment",
    "issues/delete-comment",
    "issues/add-labels",
    "issues/remove-label",
    "issues/list-labels-on-issue",
    "issues/create-label",
    "issues/get-label",
    "reactions/create-for-issue-comment",
    "reactions/create-for-issue",
    "reactions/create-for-pull-request-review-comment",
    "pulls/create",
    "pulls/get",
    "pulls/list",
    "pulls/update",
    "pulls/update-branch",
    "pulls/merge",
    "pulls/list-files",
    "pulls/list-reviews",
    "pulls/create-review",
    "pulls/list-review-comments",
    "pulls/request-reviewers",
    "checks/create",
    "checks/update",
    "checks/get",
    "checks/list-for-ref",
    "checks/list-suites-for-ref",
    "checks/get-suite",
    "repos/create-commit-status",
    "repos/get-combined-status-for-ref",
    "repos/get-collaborator-permission-level",
    "actions/create-workflow-dispatch",
    "actions/get-workflow-run",
    "actions/cancel-workflow-run",
    "actions/list-workflow-runs",
    "rate-limit/get",
)

# Webhook events (as sent in X-GitHub-Event) whose payload schemas are kept, for every action.
WEBHOOK_EVENTS: tuple[str, ...] = (
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

HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})

# Members of a Schema Object whose values are schemas / lists of schemas / maps of schemas.
_SCHEMA_VALUED = frozenset(
    {
        "items",
        "not",
        "additionalProperties",
        "contains",
        "propertyNames",
        "if",
        "then",
        "else",
        "unevaluatedProperties",
        "unevaluatedItems",
        "additionalItems",
    }
)
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "dependentSchemas", "$defs", "definitions"})
# Documentation-only members of a Schema Object.
_SCHEMA_DOCS = frozenset({"description", "title", "example", "examples", "externalDocs", "xml", "discriminator"})


class VendorError(Exception):
    """Raised when the source descriptions do not contain what Kickoff needs."""


def _strip_schema(schema: Any) -> Any:
    """A copy of a Schema Object without documentation members, recursing only where schemas live."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SCHEMA_DOCS or key.startswith("x-"):
            continue
        if key in _SCHEMA_VALUED:
            out[key] = [_strip_schema(v) for v in value] if isinstance(value, list) else _strip_schema(value)
        elif key in _SCHEMA_LISTS:
            out[key] = [_strip_schema(v) for v in value]
        elif key in _SCHEMA_MAPS:
            out[key] = {name: _strip_schema(v) for name, v in value.items()}
        else:
            out[key] = value
    return out


def _strip_content(content: dict[str, Any]) -> dict[str, Any]:
    """Media type map: keep only each media type's schema."""
    return {mt: ({"schema": _strip_schema(m["schema"])} if "schema" in m else {}) for mt, m in content.items()}


def _strip_parameter(param: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in param:
        return {"$ref": param["$ref"]}
    out: dict[str, Any] = {k: param[k] for k in ("name", "in", "required", "style", "explode") if k in param}
    if "schema" in param:
        out["schema"] = _strip_schema(param["schema"])
    if "content" in param:
        out["content"] = _strip_content(param["content"])
    return out


def _strip_request_body(body: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in body:
        return {"$ref": body["$ref"]}
    out: dict[str, Any] = {"content": _strip_content(body.get("content", {}))}
    if "required" in body:
        out["required"] = body["required"]
    return out


def _strip_response(resp: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in resp:
        return {"$ref": resp["$ref"]}
    out: dict[str, Any] = {}
    if "content" in resp:
        out["content"] = _strip_content(resp["content"])
    return out


def _strip_operation(op: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op["operationId"]}
    if op.get("deprecated"):
        out["deprecated"] = True
    if "parameters" in op:
        out["parameters"] = [_strip_parameter(p) for p in op["parameters"]]
    if "requestBody" in op:
        out["requestBody"] = _strip_request_body(op["requestBody"])
    if "responses" in op:
        out["responses"] = {status: _strip_response(r) for status, r in op["responses"].items()}
    return out


_COMPONENT_STRIPPERS = {
    "schemas": _strip_schema,
    "parameters": _strip_parameter,
    "requestBodies": _strip_request_body,
    "responses": _strip_response,
}


def _iter_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _iter_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _iter_refs(value)


def _collect_components(doc: dict[str, Any], roots: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """Every component referenced from ``roots``, transitively, stripped of documentation."""
    components: dict[str, dict[str, Any]] = {}
    pending = [ref for root in roots for ref in _iter_refs(root)]
    seen: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        parts = ref.split("/")
        if len(parts) != 4 or parts[:2] != ["#", "components"]:
            raise VendorError(f"unsupported $ref {ref!r} (only #/components/<kind>/<name> is handled)")
        _, _, kind, name = parts
        source = doc.get("components", {}).get(kind, {})
        if name not in source:
            raise VendorError(f"dangling $ref {ref!r}")
        stripper = _COMPONENT_STRIPPERS.get(kind)
        if stripper is None:
            raise VendorError(f"unsupported component kind in $ref {ref!r}")
        obj = stripper(source[name])
        components.setdefault(kind, {})[name] = obj
        pending.extend(_iter_refs(obj))
    return components


def build_rest_subset(doc: dict[str, Any], operation_ids: Iterable[str] = REST_OPERATIONS) -> dict[str, Any]:
    wanted = list(operation_ids)
    found: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for template, item in doc["paths"].items():
        if "parameters" in item:  # path-level parameters: not used by GitHub's description today
            raise VendorError(f"path-level parameters on {template} are not supported")
        for method, op in item.items():
            if method in HTTP_METHODS and isinstance(op, dict) and "operationId" in op:
                found[op["operationId"]] = (template, method, op)
    unknown = [op_id for op_id in wanted if op_id not in found]
    if unknown:
        raise VendorError(f"operationIds not in the REST description: {', '.join(unknown)}")
    paths: dict[str, dict[str, Any]] = {}
    for op_id in wanted:
        template, method, op = found[op_id]
        paths.setdefault(template, {})[method] = _strip_operation(op)
    # Every route of the REST API (template -> method -> operationId), so that matching a request against
    # the subset still prefers the most literal of GitHub's templates (GET .../branches/main/protection is
    # repos/get-branch-protection, not repos/get-branch with branch "main/protection").
    routes: dict[str, dict[str, str]] = {}
    for op_id, (template, method, _) in found.items():
        routes.setdefault(template, {})[method] = op_id
    return {
        "openapi": doc["openapi"],
        "info": {
            "title": doc["info"]["title"],
            "version": doc["info"]["version"],
            "x-kickoff-subset": sorted(set(wanted)),
        },
        "servers": doc.get("servers", []),
        "paths": paths,
        "components": _collect_components(doc, [paths]),
        "x-kickoff-routes": routes,
    }


def _webhook_event(operation_id: str) -> str:
    """``pull-request-review/submitted`` -> ``pull_request_review``; ``push`` -> ``push``."""
    return operation_id.split("/", 1)[0].replace("-", "_")


def build_webhooks_subset(doc: dict[str, Any], events: Iterable[str] = WEBHOOK_EVENTS) -> dict[str, Any]:
    wanted = set(events)
    webhooks: dict[str, dict[str, Any]] = {}
    seen_events: set[str] = set()
    for key, item in doc["webhooks"].items():
        for method, op in item.items():
            if method not in HTTP_METHODS or not isinstance(op, dict):
                continue
            event = _webhook_event(op["operationId"])
            if event not in wanted:
                continue
            seen_events.add(event)
            stripped: dict[str, Any] = {"operationId": op["operationId"]}
            if "requestBody" in op:
                stripped["requestBody"] = _strip_request_body(op["requestBody"])
            webhooks.setdefault(key, {})[method] = stripped
    missing = wanted - seen_events
    if missing:
        raise VendorError(f"webhook events not in the webhooks description: {', '.join(sorted(missing))}")
    return {
        "openapi": doc["openapi"],
        "info": {
            "title": doc["info"]["title"],
            "version": doc["info"]["version"],
            "x-kickoff-subset": sorted(wanted),
        },
        "webhooks": webhooks,
        "components": _collect_components(doc, [webhooks]),
    }


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def render(source: Path) -> dict[str, str]:
    """File name -> content of the vendored subsets built from the descriptions in ``source``."""
    with (source / REST_SOURCE).open(encoding="utf-8") as f:
        rest = json.load(f)
    with (source / WEBHOOKS_SOURCE).open(encoding="utf-8") as f:
        webhooks = json.load(f)
    return {REST_OUT: dumps(build_rest_subset(rest)), WEBHOOKS_OUT: dumps(build_webhooks_subset(webhooks))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="folder with GitHub's descriptions")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder to write the subsets to")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if the files are stale")
    args = parser.parse_args(argv)
    try:
        files = render(args.source)
    except (OSError, VendorError, KeyError) as exc:
        print(f"vendor_openapi: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    stale = []
    for name, content in files.items():
        target = args.out / name
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == content:
            continue
        stale.append(name)
        if not args.check:
            args.out.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
            print(f"wrote {target} ({len(content.encode()):,} bytes)")
    if args.check and stale:
        print(f"vendor_openapi: stale: {', '.join(stale)}; run scripts/vendor_openapi.py", file=sys.stderr)
        return 1
    if not stale:
        print("vendor_openapi: up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
