"""Known drift between GitHub's descriptions and what GitHub really delivered, and how an error is matched to it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from jsonschema.exceptions import ValidationError


@dataclass(frozen=True)
class Drift:
    """A tolerated difference: a ``required`` property absent, or a ``type`` other than documented.

    ``value`` is the missing property (``required``) or the JSON type really sent (``type``); ``paths`` are
    globs (``*`` = anything, array indices written ``[]``) over the JSON path of the object concerned
    (``required``) or of the value itself (``type``).
    """

    keyword: Literal["required", "type"]
    value: str
    paths: tuple[str, ...]
    reason: str

    def matches(self, keyword: str, value: str, json_path: str) -> bool:
        return keyword == self.keyword and value == self.value and _path_matches(self.paths, json_path)


_LATER = "added by GitHub after older deliveries were recorded; the description lists it as required"
_REPOSITORY = ("$", "*repository", "*.repo")

KNOWN_DRIFT: Final[tuple[Drift, ...]] = (
    *(Drift("required", p, _REPOSITORY, _LATER) for p in ("has_discussions", "topics", "visibility", "disabled")),
    Drift("required", "reactions", ("$.comment", "$.issue"), _LATER),
    Drift("required", "performed_via_github_app", ("$.comment",), _LATER),
    Drift("required", "active_lock_reason", ("$.issue", "$.pull_request"), _LATER),
    Drift("required", "auto_merge", ("$.pull_request",), _LATER),
    Drift("required", "draft", ("$.pull_request",), _LATER),
    Drift("required", "description", ("*.labels[]",), _LATER),
    *(
        Drift("required", p, ("$.comment",), "multi-line review comments: " + _LATER)
        for p in ("line", "original_line", "start_line", "original_start_line", "side", "start_side")
    ),
    Drift("required", "details_url", ("$.check_run",), _LATER),
    Drift("required", "node_id", ("$.check_run",), _LATER),
    Drift("required", "events", ("*.app",), _LATER),
    Drift("required", "permissions", ("*.app",), _LATER),
    Drift("required", "verified_at", ("*.verification",), _LATER),
    *(Drift("required", p, ("$.installation",), _LATER) for p in ("app_slug", "suspended_at", "suspended_by")),
    Drift("required", "requester", ("$",), "installation_repositories: " + _LATER),
    *(
        Drift("required", p, ("$.workflow_job",), _LATER)
        for p in ("created_at", "head_branch", "run_attempt", "workflow_name")
    ),
    *(Drift("required", p, ("$.workflow_run",), _LATER) for p in ("actor", "path", "triggering_actor")),
    Drift(
        "type",
        "integer",
        ("$.installation.created_at", "$.installation.updated_at"),
        "installation webhooks carry Unix timestamps; the description says date-time strings",
    ),
)

_GLOB_CACHE: dict[str, re.Pattern[str]] = {}
_INDEX_RE: Final = re.compile(r"\[\d+\]")


def _path_matches(globs: Iterable[str], json_path: str) -> bool:
    path = _INDEX_RE.sub("[]", json_path)
    for glob in globs:
        rx = _GLOB_CACHE.get(glob)
        if rx is None:
            rx = _GLOB_CACHE[glob] = re.compile(re.escape(glob).replace(r"\*", ".*") + r"\Z")
        if rx.match(path):
            return True
    return False


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def is_drift(error: ValidationError, drift: Sequence[Drift]) -> bool:
    """Whether ``error`` only reports tolerated drift (for anyOf/oneOf: some alternative only does)."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        return any(all(is_drift(e, drift) for e in errs) for errs in branches.values())
    if error.validator == "required" and isinstance(error.instance, dict):
        for prop in error.validator_value:  # type: ignore[union-attr]
            if prop not in error.instance and error.message == f"{prop!r} is a required property":
                return any(d.matches("required", prop, error.json_path) for d in drift)
        return False
    if error.validator == "type":
        return any(d.matches("type", _json_type(error.instance), error.json_path) for d in drift)
    return False
