"""GitHub API fidelity: match requests to operations of GitHub's REST description and validate bodies.

The sandbox (and respx-based tests) use this to check that every request they serve names a real
operation of GitHub's REST API (method + path template), that request and response bodies match that
operation's schemas, and that every webhook payload matches GitHub's webhooks description::

    rest = load_rest_spec()
    op = rest.match("PATCH", "/repos/o/r/issues/7?x=1")  # Operation("issues/update", ..., {"issue_number": "7"})
    rest.validate_request(op, {"state": "closed"})        # [] when valid, else readable messages
    rest.validate_response(op, 200, issue_json)
    load_webhooks_spec().validate("issues", "opened", payload)

By default the subsets vendored by ``scripts/vendor_openapi.py`` (``bot/sandbox/openapi/``) are used; pass
``path=`` to load another copy of a description (the full ones work too, they are just slower to load).

OpenAPI schemas are turned into JSON Schema 2020-12:

* ``nullable: true`` becomes a type union with ``"null"`` (``null`` is added to an ``enum``; a schema without
  ``type`` is wrapped in ``anyOf: [schema, {"type": "null"}]``);
* OpenAPI 3.0 boolean ``exclusiveMinimum``/``exclusiveMaximum`` become their numeric 2020-12 forms;
* OpenAPI-only keywords (``discriminator``, ``example``, ``xml``, ``x-*``, ...) are dropped;
* ``format`` is an annotation only (GitHub's own data does not always honour it);
* ``$ref``s to ``#/components/...`` are resolved through a :class:`referencing.Registry`.

Speed: validators are built lazily and cached per schema location. Each schema is also compiled into a
plain-Python predicate covering the keywords GitHub's descriptions use; a body it accepts is valid
without running jsonschema (about 10x faster), anything else goes through jsonschema for the verdict and
the messages.

Known drift (:data:`KNOWN_DRIFT`): GitHub's descriptions mark as required some properties that GitHub added
over the years, and real deliveries recorded before then (the example payloads in ``tests/fixtures``)
lack them; a few types are also documented wrongly. Those differences are tolerated unless ``strict=True``.
Payloads the sandbox builds itself should pass with ``strict=True``.
"""

from __future__ import annotations

import json
import re
import reprlib
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import unquote, urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = [
    "GREEDY_PATH_PARAMS",
    "KNOWN_DRIFT",
    "REST_SUBSET_PATH",
    "WEBHOOKS_SUBSET_PATH",
    "Drift",
    "Operation",
    "RestSpec",
    "WebhookSpec",
    "convert_schema",
    "load_rest_spec",
    "load_webhooks_spec",
]

OPENAPI_DIR: Final = Path(__file__).resolve().with_name("openapi")
REST_SUBSET_PATH: Final = OPENAPI_DIR / "rest-subset.json"
WEBHOOKS_SUBSET_PATH: Final = OPENAPI_DIR / "webhooks-subset.json"

# Path parameters whose values may contain "/" (file paths, git refs, branch and label names, the two sides
# of a compare); ``path`` may also be empty (``/contents/`` lists the root). Other parameters match one
# non-empty path segment.
GREEDY_PATH_PARAMS: Final = frozenset({"path", "ref", "branch", "name", "base", "head"})

HTTP_METHODS: Final = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})

JSONDict = dict[str, Any]


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_NO_BODY: Final = _Absent()

# --------------------------------------------------------------------------------------------------------
# Known drift between GitHub's descriptions and what GitHub really delivered


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


def _is_drift(error: ValidationError, drift: Sequence[Drift]) -> bool:
    """Whether ``error`` only reports tolerated drift (for anyOf/oneOf: some alternative only does)."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        return any(all(_is_drift(e, drift) for e in errs) for errs in branches.values())
    if error.validator == "required" and isinstance(error.instance, dict):
        for prop in error.validator_value:  # type: ignore[union-attr]
            if prop not in error.instance and error.message == f"{prop!r} is a required property":
                return any(d.matches("required", prop, error.json_path) for d in drift)
        return False
    if error.validator == "type":
        return any(d.matches("type", _json_type(error.instance), error.json_path) for d in drift)
    return False


# --------------------------------------------------------------------------------------------------------
# OpenAPI schema -> JSON Schema 2020-12

_SCHEMA_VALUED: Final = frozenset(
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
_SCHEMA_LISTS: Final = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_MAPS: Final = frozenset({"properties", "patternProperties", "dependentSchemas", "$defs", "definitions"})
_OPENAPI_ONLY: Final = frozenset({"nullable", "discriminator", "example", "xml", "externalDocs"})


def convert_schema(schema: Any) -> Any:
    """An OpenAPI (3.0 or 3.1) Schema Object as JSON Schema 2020-12. The input is not modified."""
    if not isinstance(schema, dict):
        return schema  # boolean schemas
    out: JSONDict = {}
    for key, value in schema.items():
        if key in _OPENAPI_ONLY or key.startswith("x-"):
            continue
        if key in _SCHEMA_VALUED:
            out[key] = [convert_schema(v) for v in value] if isinstance(value, list) else convert_schema(value)
        elif key in _SCHEMA_LISTS:
            out[key] = [convert_schema(v) for v in value]
        elif key in _SCHEMA_MAPS:
            out[key] = {name: convert_schema(v) for name, v in value.items()}
        else:
            out[key] = value
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), bool) and out.pop(bound) and limit in out:  # OpenAPI 3.0 style
            out[bound] = out.pop(limit)
    if schema.get("nullable") is True:
        out = _make_nullable(out)
    return out


def _make_nullable(schema: JSONDict) -> JSONDict:
    if "enum" in schema and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]
    typ = schema.get("type")
    if isinstance(typ, str):
        schema["type"] = [typ, "null"]
        return schema
    if isinstance(typ, list):
        if "null" not in typ:
            schema["type"] = [*typ, "null"]
        return schema
    return {"anyOf": [schema, {"type": "null"}]}


def _convert_document(doc: JSONDict) -> JSONDict:
    """Convert every Schema Object of an OpenAPI document: components.schemas and each ``schema`` member."""

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        return {
            k: (convert_schema(v) if k == "schema" else v if k in ("example", "examples") else walk(v))
            for k, v in node.items()
        }

    out: JSONDict = {k: walk(v) for k, v in doc.items() if k not in ("components", "x-kickoff-routes")}
    components: JSONDict = {}
    for kind, objects in doc.get("components", {}).items():
        if kind == "schemas":
            components[kind] = {name: convert_schema(s) for name, s in objects.items()}
        elif kind != "examples":
            components[kind] = walk(objects)
    out["components"] = components
    return out


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _lookup(doc: Any, pointer: str) -> Any:
    """The node at JSON pointer ``pointer`` (``/a/b``, no ``#``) of ``doc``; ``KeyError`` if absent."""
    node = doc
    for part in pointer.split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


# --------------------------------------------------------------------------------------------------------
# Fast path: JSON Schema compiled into plain-Python predicates

_Check = Callable[[Any], bool]


class _Unsupported(Exception):
    """A schema uses a keyword the fast path does not implement: jsonschema alone decides."""


_ANNOTATIONS: Final = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "example",
        "format",
        "readOnly",
        "writeOnly",
        "deprecated",
        "$comment",
        "contentMediaType",
        "contentEncoding",
        "$schema",
    }
)


def _always(_: Any) -> bool:
    return True


def _never(_: Any) -> bool:
    return False


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


_TYPE_TESTS: Final[dict[str, _Check]] = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
    "number": _is_number,
    "integer": lambda x: (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer()),
}


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality as jsonschema has it: booleans are not numbers, 1 == 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, str) or isinstance(b, str):
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | dict) or isinstance(b, list | dict):
        return False
    return bool(a == b)


def _all_of(checks: list[_Check]) -> _Check:
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]

    def check(x: Any) -> bool:
        for c in checks:  # noqa: SIM110 - a plain loop is faster than all() over a generator here
            if not c(x):
                return False
        return True

    return check


def _const(value: Any) -> _Check:
    return lambda x: _json_equal(x, value)


def _required(names: tuple[str, ...]) -> _Check:
    def check(x: Any) -> bool:
        if isinstance(x, dict):
            for name in names:
                if name not in x:
                    return False
        return True

    return check


def _items(item: _Check) -> _Check:
    return lambda x: not isinstance(x, list) or all(item(i) for i in x)


def _any_of(checks: list[_Check]) -> _Check:
    return lambda x: any(c(x) for c in checks)


def _one_of(checks: list[_Check]) -> _Check:
    return lambda x: sum(1 for c in checks if c(x)) == 1


def _not(check: _Check) -> _Check:
    return lambda x: not check(x)


class _FastCompiler:
    """Compiles schemas of one (converted) document; ``$ref`` targets are compiled once and shared."""

    def __init__(self, doc: JSONDict) -> None:
        self._doc = doc
        self._refs: dict[str, _Check] = {}

    def compile_at(self, pointer: str) -> _Check:
        return self.compile(_lookup(self._doc, pointer))

    def _ref(self, ref: str) -> _Check:
        if not ref.startswith("#/"):
            raise _Unsupported(ref)
        found = self._refs.get(ref)
        if found is not None:
            return found
        slot: list[_Check] = []
        self._refs[ref] = lambda x: slot[0](x)  # stands in while compiling, should the ref be recursive
        try:
            compiled = self.compile(_lookup(self._doc, ref[1:]))
        except (_Unsupported, KeyError, IndexError, ValueError):
            del self._refs[ref]
            raise
        slot.append(compiled)
        self._refs[ref] = compiled
        return compiled

    def compile(self, schema: Any) -> _Check:
        if schema is True:
            return _always
        if schema is False:
            return _never
        if not isinstance(schema, dict):
            raise _Unsupported(repr(schema))
        checks: list[_Check] = []
        props: dict[str, _Check] = {}
        for key, value in schema.items():
            if key in _ANNOTATIONS or key.startswith("x-"):
                continue
            if key == "$ref":
                checks.append(self._ref(value))
            elif key == "type":
                checks.append(self._type(value))
            elif key == "enum":
                checks.append(self._enum(value))
            elif key == "const":
                checks.append(_const(value))
            elif key == "properties":
                props = {name: self.compile(sub) for name, sub in value.items()}
                checks.append(self._properties(props))
            elif key == "required":
                checks.append(_required(tuple(value)))
            elif key == "additionalProperties":
                if "patternProperties" in schema:
                    raise _Unsupported(key)
                checks.append(self._additional(self.compile(value), frozenset(schema.get("properties", ()))))
            elif key == "items":
                if not isinstance(value, dict | bool):
                    raise _Unsupported("items as a list")
                checks.append(_items(self.compile(value)))
            elif key in ("allOf", "anyOf", "oneOf"):
                subs = [self.compile(s) for s in value]
                checks.append({"allOf": _all_of, "anyOf": _any_of, "oneOf": _one_of}[key](subs))
            elif key == "not":
                checks.append(_not(self.compile(value)))
            else:
                checks.append(self._simple(key, value))
        return _all_of(checks)

    @staticmethod
    def _type(value: Any) -> _Check:
        types = [value] if isinstance(value, str) else list(value)
        try:
            tests = [_TYPE_TESTS[t] for t in types]
        except KeyError as exc:
            raise _Unsupported(f"type {exc}") from None
        if len(tests) == 1:
            return tests[0]
        return lambda x: any(t(x) for t in tests)

    @staticmethod
    def _enum(values: list[Any]) -> _Check:
        if all(v is None or isinstance(v, str) for v in values):
            strings = frozenset(v for v in values if v is not None)
            nullable = None in values
            return lambda x: (x is None and nullable) or (isinstance(x, str) and x in strings)
        return lambda x: any(_json_equal(x, v) for v in values)

    @staticmethod
    def _properties(props: dict[str, _Check]) -> _Check:
        items = tuple(props.items())

        def check(x: Any) -> bool:
            if not isinstance(x, dict):
                return True
            for name, c in items:  # noqa: SIM110 - speed, as in _all_of
                if name in x and not c(x[name]):
                    return False
            return True

        return check

    @staticmethod
    def _additional(extra: _Check, known: frozenset[str]) -> _Check:
        if extra is _always:
            return _always
        return lambda x: not isinstance(x, dict) or all(extra(v) for k, v in x.items() if k not in known)

    @staticmethod
    def _simple(key: str, value: Any) -> _Check:
        if key == "minimum":
            return lambda x: not _is_number(x) or bool(x >= value)
        if key == "maximum":
            return lambda x: not _is_number(x) or bool(x <= value)
        if key == "exclusiveMinimum":
            return lambda x: not _is_number(x) or bool(x > value)
        if key == "exclusiveMaximum":
            return lambda x: not _is_number(x) or bool(x < value)
        if key == "minLength":
            return lambda x: not isinstance(x, str) or len(x) >= value
        if key == "maxLength":
            return lambda x: not isinstance(x, str) or len(x) <= value
        if key == "pattern":
            rx = re.compile(value)
            return lambda x: not isinstance(x, str) or rx.search(x) is not None
        if key == "minItems":
            return lambda x: not isinstance(x, list) or len(x) >= value
        if key == "maxItems":
            return lambda x: not isinstance(x, list) or len(x) <= value
        if key == "minProperties":
            return lambda x: not isinstance(x, dict) or len(x) >= value
        if key == "maxProperties":
            return lambda x: not isinstance(x, dict) or len(x) <= value
        if key == "uniqueItems":
            if not value:
                return _always
            return lambda x: (
                not isinstance(x, list) or all(not _json_equal(a, b) for i, a in enumerate(x) for b in x[i + 1 :])
            )
        raise _Unsupported(key)


# --------------------------------------------------------------------------------------------------------
# A converted document with cached validators


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxstring, _REPR.maxother = 2, 3, 3, 40, 40


def _short(value: Any) -> str:
    return _REPR.repr(value)


def _message(error: ValidationError) -> str:
    msg = error.message
    full = repr(error.instance)
    if len(full) > 80 and msg.startswith(full):
        msg = _short(error.instance) + msg[len(full) :]
    return msg


def _format_error(error: ValidationError, what: str, drift: Sequence[Drift]) -> str:
    text = f"{what} {error.json_path}: {_message(error)}"
    if error.validator in ("anyOf", "oneOf") and error.context:
        # Show the alternative that came closest: the one with the fewest problems beyond known drift.
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            if not _is_drift(sub, drift):
                branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        if branches:
            index, errs = min(branches.items(), key=lambda kv: (len(kv[1]), str(kv[0])))
            details = "; ".join(f"{e.json_path}: {_message(e)}" for e in errs[:3])
            more = f" (+{len(errs) - 3} more)" if len(errs) > 3 else ""
            text += f" (closest alternative #{index}: {details}{more})"
    return text


class _Document:
    """A converted OpenAPI document registered under a URI, with cached validators for its locations."""

    def __init__(self, raw: JSONDict, uri: str, drift: Sequence[Drift]) -> None:
        self.uri = uri
        self.drift = tuple(drift)
        self.doc = _convert_document(raw)
        resource: Resource[Any] = Resource.from_contents(self.doc, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(uri, resource)
        self._compiler = _FastCompiler(self.doc)
        self._validators: dict[str, tuple[Draft202012Validator, _Check | None]] = {}
        self._lock = threading.Lock()

    def resolve(self, node: Any) -> Any:
        """Follow ``$ref``s to ``#/...`` (for Response, Parameter and Request Body objects)."""
        for _ in range(32):
            if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
                return node
            ref: str = node["$ref"]
            if not ref.startswith("#/"):
                break
            node = _lookup(self.doc, ref[1:])
        raise ValueError(f"cannot resolve $ref in {node!r}")

    def validator(self, pointer: str) -> tuple[Draft202012Validator, _Check | None]:
        """The jsonschema validator and fast predicate for the schema at JSON pointer ``pointer``."""
        found = self._validators.get(pointer)
        if found is None:
            with self._lock:
                found = self._validators.get(pointer)
                if found is None:
                    validator = Draft202012Validator({"$ref": f"{self.uri}#{pointer}"}, registry=self.registry)
                    try:
                        fast: _Check | None = self._compiler.compile_at(pointer)
                    except (_Unsupported, KeyError, IndexError, ValueError, re.error):
                        fast = None
                    found = self._validators[pointer] = (validator, fast)
        return found

    def validate(self, pointer: str, instance: Any, what: str, *, strict: bool) -> list[str]:
        validator, fast = self.validator(pointer)
        if fast is not None and fast(instance):
            return []
        drift = () if strict else self.drift
        errors = [e for e in validator.iter_errors(instance) if not _is_drift(e, drift)]
        errors.sort(key=lambda e: (e.json_path, e.message))
        return [_format_error(e, what, drift) for e in errors]


def _json_media(content: Mapping[str, Any]) -> str | None:
    """The JSON media type of a content map: application/json first, else the first ``*json*`` one."""
    if "application/json" in content:
        return "application/json"
    for media in content:
        if "json" in media:
            return media
    return None


def _load_json(path: Path) -> JSONDict:
    with path.open(encoding="utf-8") as f:
        doc: JSONDict = json.load(f)
    return doc


def _parse_body(body: Any) -> Any:
    """``bytes`` are raw JSON (empty = no body); anything else is an already parsed JSON value."""
    if isinstance(body, bytes | bytearray):
        if not body.strip():
            return None
        return json.loads(body)
    return body


# --------------------------------------------------------------------------------------------------------
# REST


@dataclass(frozen=True)
class Operation:
    """One REST operation; ``path_params`` holds the (percent-decoded) values of a matched path."""

    operation_id: str
    method: str  # upper case
    template: str
    path_params: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class _Route:
    operation_id: str
    method: str
    template: str
    regex: re.Pattern[str]
    params: tuple[str, ...]
    literal: int  # characters of the template outside {params}: more means more specific


_PARAM_RE: Final = re.compile(r"\{([^{}]+)\}")


def _compile_template(template: str, greedy: frozenset[str]) -> tuple[re.Pattern[str], tuple[str, ...], int]:
    pattern, params, pos = ["^"], [], 0
    for m in _PARAM_RE.finditer(template):
        pattern.append(re.escape(template[pos : m.start()]))
        name = m.group(1)
        params.append(name)
        pattern.append("(.*?)" if name == "path" and name in greedy else "(.+?)" if name in greedy else "([^/]+)")
        pos = m.end()
    pattern.append(re.escape(template[pos:]) + r"\Z")
    return re.compile("".join(pattern)), tuple(params), len(_PARAM_RE.sub("", template))


class RestSpec:
    """GitHub's REST description (or a vendored subset of it): request matching and body validation.

    A subset written by ``scripts/vendor_openapi.py`` also lists every route of the full API
    (``x-kickoff-routes``), so matching picks the template GitHub would, even when that operation is not
    vendored: :meth:`match` then returns None and :meth:`route` names the operation.
    """

    def __init__(
        self,
        doc: JSONDict,
        *,
        greedy_params: Iterable[str] = GREEDY_PATH_PARAMS,
        drift: Sequence[Drift] = KNOWN_DRIFT,
    ) -> None:
        self._doc = _Document(doc, "urn:kickoff:github:rest", drift)
        self.version: str = str(doc.get("info", {}).get("version", ""))
        self._vendored: dict[str, tuple[str, str]] = {}  # operationId -> (template, method)
        routes: dict[str, dict[str, str]] = {}
        for template, item in doc.get("paths", {}).items():
            for method, op in item.items():
                if method in HTTP_METHODS and isinstance(op, dict) and "operationId" in op:
                    self._vendored[op["operationId"]] = (template, method)
                    routes.setdefault(template, {})[method] = op["operationId"]
        for template, methods in doc.get("x-kickoff-routes", {}).items():
            for method, op_id in methods.items():
                routes.setdefault(template, {}).setdefault(method, op_id)
        greedy = frozenset(greedy_params)
        by_method: dict[str, list[_Route]] = {}
        for template, methods in routes.items():
            regex, params, literal = _compile_template(template, greedy)
            for method, op_id in methods.items():
                by_method.setdefault(method.upper(), []).append(
                    _Route(op_id, method.upper(), template, regex, params, literal)
                )
        # Most literal template first, so the first match is the most specific one.
        self._routes = {m: sorted(rs, key=lambda r: (-r.literal, r.template)) for m, rs in by_method.items()}

    @property
    def operation_ids(self) -> frozenset[str]:
        """The operations whose schemas this description holds."""
        return frozenset(self._vendored)

    def operation(self, operation_id: str) -> Operation:
        """The operation named ``operation_id`` (``KeyError`` if not vendored), with no path parameters."""
        template, method = self._vendored[operation_id]
        return Operation(operation_id, method.upper(), template)

    def route(self, method: str, path: str) -> Operation | None:
        """The GitHub operation that serves ``method path``, vendored or not; None if GitHub has none.

        ``path`` may be a full URL; query string and fragment are ignored. When several templates match,
        the most literal one wins (``/pulls/comments`` over ``/pulls/{pull_number}``).
        """
        path = urlsplit(path).path if "://" in path else path.split("?", 1)[0].split("#", 1)[0]
        for route in self._routes.get(method.upper(), ()):
            m = route.regex.match(path)
            if m is not None:
                values = {name: unquote(value) for name, value in zip(route.params, m.groups(), strict=True)}
                return Operation(route.operation_id, route.method, route.template, values)
        return None

    def match(self, method: str, path: str) -> Operation | None:
        """The vendored operation that serves ``method path`` (see :meth:`route`), or None."""
        op = self.route(method, path)
        return op if op is not None and op.operation_id in self._vendored else None

    def _raw_operation(self, op: Operation) -> tuple[str, JSONDict]:
        found = self._vendored.get(op.operation_id)
        if found is None:
            raise KeyError(f"operation {op.operation_id!r} is not vendored; add it to scripts/vendor_openapi.py")
        template, method = found
        operation: JSONDict = self._doc.doc["paths"][template][method]
        return "/" + _pointer("paths", template, method), operation

    def validate_request(self, op: Operation, body: Any = _NO_BODY, *, strict: bool = False) -> list[str]:
        """Problems with a request body (parsed JSON, raw ``bytes``, or None/omitted for no body)."""
        body = None if body is _NO_BODY else _parse_body(body)
        pointer, operation = self._raw_operation(op)
        name = f"{op.operation_id} request body"
        request = operation.get("requestBody")
        if request is None:
            if body is None or body == {}:
                return []
            return [f"{name}: {op.method} {op.template} takes no JSON body, got {_short(body)}"]
        resolved = self._doc.resolve(request)
        if body is None:
            return [f"{name}: required but absent"] if resolved.get("required") else []
        content = resolved.get("content", {})
        media = _json_media(content)
        if media is None or "schema" not in content[media]:
            return [f"{name}: {op.method} {op.template} takes no JSON body, got {_short(body)}"]
        base = request["$ref"][1:] if "$ref" in request else f"{pointer}/requestBody"
        return self._doc.validate(f"{base}/{_pointer('content', media, 'schema')}", body, name, strict=strict)

    def validate_response(
        self,
        op: Operation,
        status: int,
        body: Any = _NO_BODY,
        *,
        content_type: str | None = None,
        strict: bool = False,
    ) -> list[str]:
        """Problems with a response body for ``status`` (parsed JSON, raw ``bytes``, or None for no body).

        The schema is the one documented for ``status``, else for ``NXX``, else ``default``. An error status
        (>= 400) that the operation does not document is checked against GitHub's generic ``basic-error``
        when the description has it; an undocumented success status is a problem in itself. With a
        non-JSON ``content_type`` (raw media types such as ``application/vnd.github.raw``) the body is not
        checked.
        """
        body = None if body is _NO_BODY else _parse_body(body)
        pointer, operation = self._raw_operation(op)
        name = f"{op.operation_id} {status} response"
        responses: JSONDict = operation.get("responses", {})
        key = next((k for k in (str(status), f"{status // 100}XX", "default") if k in responses), None)
        if key is None:
            if status >= 400 and "basic-error" in self._doc.doc["components"].get("schemas", {}):
                if body is None:
                    return []
                return self._doc.validate("/components/schemas/basic-error", body, name, strict=strict)
            documented = ", ".join(sorted(responses))
            return [f"{name}: status {status} is not documented for {op.method} {op.template} ({documented})"]
        if content_type is not None and "json" not in content_type.lower():
            return []
        raw = responses[key]
        resolved = self._doc.resolve(raw)
        content = resolved.get("content", {})
        media = _json_media(content)
        if media is None or "schema" not in content[media]:
            if body is None or content:
                return []  # nothing documented as JSON: nothing to check
            return [f"{name}: status {status} has no documented body, got {_short(body)}"]
        if body is None:
            return [f"{name}: body expected ({media}) but absent"]
        base = raw["$ref"][1:] if "$ref" in raw else f"{pointer}/{_pointer('responses', key)}"
        return self._doc.validate(f"{base}/{_pointer('content', media, 'schema')}", body, name, strict=strict)


# --------------------------------------------------------------------------------------------------------
# Webhooks


class WebhookSpec:
    """GitHub's webhooks description (or a vendored subset of it): payload validation per event/action."""

    def __init__(self, doc: JSONDict, *, drift: Sequence[Drift] = KNOWN_DRIFT) -> None:
        self._doc = _Document(doc, "urn:kickoff:github:webhooks", drift)
        self.version: str = str(doc.get("info", {}).get("version", ""))
        # (event, action or None) -> JSON pointer of the payload schema
        self._schemas: dict[tuple[str, str | None], str] = {}
        for key, item in doc.get("webhooks", {}).items():
            for method, op in item.items():
                if method not in HTTP_METHODS or not isinstance(op, dict) or "requestBody" not in op:
                    continue
                # operationId "pull-request-review/submitted" -> event pull_request_review, action submitted
                event, _, action = str(op["operationId"]).partition("/")
                content = self._doc.resolve(op["requestBody"]).get("content", {})
                media = _json_media(content)
                if media is None:
                    continue
                pointer = "/" + _pointer("webhooks", key, method, "requestBody", "content", media, "schema")
                self._schemas[(event.replace("-", "_"), action.replace("-", "_") or None)] = pointer

    @property
    def events(self) -> dict[str, frozenset[str | None]]:
        """Event name -> its actions (``{None}`` for events without actions, such as push)."""
        out: dict[str, set[str | None]] = {}
        for event, action in self._schemas:
            out.setdefault(event, set()).add(action)
        return {event: frozenset(actions) for event, actions in out.items()}

    def validate(self, event: str, action: str | None, payload: Any, *, strict: bool = False) -> list[str]:
        """Problems with a webhook payload (parsed JSON or raw ``bytes``).

        ``event`` is the X-GitHub-Event header; ``action`` None means the payload's own ``action``, if any.
        """
        payload = _parse_body(payload)
        if action is None and (event, None) not in self._schemas and isinstance(payload, dict):
            found = payload.get("action")
            action = found if isinstance(found, str) else None
        label = f"{event}.{action}" if action is not None else event
        pointer = self._schemas.get((event, action))
        if pointer is None:
            known = self.events.get(event)
            if known is None:
                return [f"webhook {label}: event {event!r} is not in the webhooks description"]
            actions = ", ".join(sorted(a or "(none)" for a in known))
            return [f"webhook {label}: no payload schema for this action (known: {actions})"]
        return self._doc.validate(pointer, payload, f"webhook {label} payload", strict=strict)


# --------------------------------------------------------------------------------------------------------
# Loading


@lru_cache(maxsize=8)
def _load_rest(path: Path) -> RestSpec:
    return RestSpec(_load_json(path))


@lru_cache(maxsize=8)
def _load_webhooks(path: Path) -> WebhookSpec:
    return WebhookSpec(_load_json(path))


def load_rest_spec(path: str | Path | None = None) -> RestSpec:
    """The REST description at ``path`` (default: the vendored subset). Cached per path: share it."""
    return _load_rest(Path(path).resolve() if path is not None else REST_SUBSET_PATH)


def load_webhooks_spec(path: str | Path | None = None) -> WebhookSpec:
    """The webhooks description at ``path`` (default: the vendored subset). Cached per path: share it."""
    return _load_webhooks(Path(path).resolve() if path is not None else WEBHOOKS_SUBSET_PATH)
