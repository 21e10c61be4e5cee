"""A converted description with validators cached per schema location, and readable error messages."""

from __future__ import annotations

import json
import re
import reprlib
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from bot.sandbox.fidelity.common import JSONDict
from bot.sandbox.fidelity.drift import Drift, is_drift
from bot.sandbox.fidelity.fast import Check, FastCompiler, Unsupported
from bot.sandbox.fidelity.schema import convert_document, resolve_pointer

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxstring, _REPR.maxother = 2, 3, 3, 40, 40


def short_repr(value: Any) -> str:
    return _REPR.repr(value)


def _message(error: ValidationError) -> str:
    msg = error.message
    full = repr(error.instance)
    if len(full) > 80 and msg.startswith(full):
        msg = short_repr(error.instance) + msg[len(full) :]
    return msg


def _format_error(error: ValidationError, what: str, drift: Sequence[Drift]) -> str:
    text = f"{what} {error.json_path}: {_message(error)}"
    if error.validator in ("anyOf", "oneOf") and error.context:
        # Show the alternative that came closest: the one with the fewest problems beyond known drift.
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            if not is_drift(sub, drift):
                branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        if branches:
            index, errs = min(branches.items(), key=lambda kv: (len(kv[1]), str(kv[0])))
            details = "; ".join(f"{e.json_path}: {_message(e)}" for e in errs[:3])
            more = f" (+{len(errs) - 3} more)" if len(errs) > 3 else ""
            text += f" (closest alternative #{index}: {details}{more})"
    return text


class Document:
    """A converted OpenAPI document registered under a URI, with cached validators for its locations."""

    def __init__(self, raw: JSONDict, uri: str, drift: Sequence[Drift]) -> None:
        self.uri = uri
        self.drift = tuple(drift)
        self.doc = convert_document(raw)
        resource: Resource[Any] = Resource.from_contents(self.doc, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(uri, resource)
        self._compiler = FastCompiler(self.doc)
        self._validators: dict[str, tuple[Draft202012Validator, Check | None]] = {}
        self._lock = threading.Lock()

    def resolve(self, node: Any) -> Any:
        """Follow ``$ref``s to ``#/...`` (for Response, Parameter and Request Body objects)."""
        for _ in range(32):
            if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
                return node
            ref: str = node["$ref"]
            if not ref.startswith("#/"):
                break
            node = resolve_pointer(self.doc, ref[1:])
        raise ValueError(f"cannot resolve $ref in {node!r}")

    def validator(self, pointer: str) -> tuple[Draft202012Validator, Check | None]:
        """The jsonschema validator and fast predicate for the schema at JSON pointer ``pointer``."""
        found = self._validators.get(pointer)
        if found is None:
            with self._lock:
                found = self._validators.get(pointer)
                if found is None:
                    validator = Draft202012Validator({"$ref": f"{self.uri}#{pointer}"}, registry=self.registry)
                    try:
                        fast: Check | None = self._compiler.compile_at(pointer)
                    except (Unsupported, KeyError, IndexError, ValueError, re.error):
                        fast = None
                    found = self._validators[pointer] = (validator, fast)
        return found

    def validate(self, pointer: str, instance: Any, what: str, *, strict: bool) -> list[str]:
        validator, fast = self.validator(pointer)
        if fast is not None and fast(instance):
            return []
        drift = () if strict else self.drift
        errors = [e for e in validator.iter_errors(instance) if not is_drift(e, drift)]
        errors.sort(key=lambda e: (e.json_path, e.message))
        return [_format_error(e, what, drift) for e in errors]


def json_media(content: Mapping[str, Any]) -> str | None:
    """The JSON media type of a content map: application/json first, else the first ``*json*`` one."""
    if "application/json" in content:
        return "application/json"
    for media in content:
        if "json" in media:
            return media
    return None


def load_json(path: Path) -> JSONDict:
    with path.open(encoding="utf-8") as f:
        doc: JSONDict = json.load(f)
    return doc


def parse_body(body: Any) -> Any:
    """``bytes`` are raw JSON (empty = no body); anything else is an already parsed JSON value."""
    if isinstance(body, bytes | bytearray):
        if not body.strip():
            return None
        return json.loads(body)
    return body
