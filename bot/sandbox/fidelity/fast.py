"""The fast path: JSON Schema compiled into plain-Python predicates; a body they accept needs no jsonschema run."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from bot.sandbox.fidelity.common import JSONDict
from bot.sandbox.fidelity.schema import resolve_pointer

Check = Callable[[Any], bool]


class Unsupported(Exception):
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


_TYPE_TESTS: Final[dict[str, Check]] = {
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


def _all_of(checks: list[Check]) -> Check:
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


def _const(value: Any) -> Check:
    return lambda x: _json_equal(x, value)


def _required(names: tuple[str, ...]) -> Check:
    def check(x: Any) -> bool:
        if isinstance(x, dict):
            for name in names:
                if name not in x:
                    return False
        return True

    return check


def _items(item: Check) -> Check:
    return lambda x: not isinstance(x, list) or all(item(i) for i in x)


def _any_of(checks: list[Check]) -> Check:
    return lambda x: any(c(x) for c in checks)


def _one_of(checks: list[Check]) -> Check:
    return lambda x: sum(1 for c in checks if c(x)) == 1


def _not(check: Check) -> Check:
    return lambda x: not check(x)


class FastCompiler:
    """Compiles schemas of one (converted) document; ``$ref`` targets are compiled once and shared."""

    def __init__(self, doc: JSONDict) -> None:
        self._doc = doc
        self._refs: dict[str, Check] = {}

    def compile_at(self, pointer: str) -> Check:
        return self.compile(resolve_pointer(self._doc, pointer))

    def _ref(self, ref: str) -> Check:
        if not ref.startswith("#/"):
            raise Unsupported(ref)
        found = self._refs.get(ref)
        if found is not None:
            return found
        slot: list[Check] = []
        self._refs[ref] = lambda x: slot[0](x)  # stands in while compiling, should the ref be recursive
        try:
            compiled = self.compile(resolve_pointer(self._doc, ref[1:]))
        except (Unsupported, KeyError, IndexError, ValueError):
            del self._refs[ref]
            raise
        slot.append(compiled)
        self._refs[ref] = compiled
        return compiled

    def compile(self, schema: Any) -> Check:
        if schema is True:
            return _always
        if schema is False:
            return _never
        if not isinstance(schema, dict):
            raise Unsupported(repr(schema))
        checks: list[Check] = []
        props: dict[str, Check] = {}
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
                    raise Unsupported(key)
                checks.append(self._additional(self.compile(value), frozenset(schema.get("properties", ()))))
            elif key == "items":
                if not isinstance(value, dict | bool):
                    raise Unsupported("items as a list")
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
    def _type(value: Any) -> Check:
        types = [value] if isinstance(value, str) else list(value)
        try:
            tests = [_TYPE_TESTS[t] for t in types]
        except KeyError as exc:
            raise Unsupported(f"type {exc}") from None
        if len(tests) == 1:
            return tests[0]
        return lambda x: any(t(x) for t in tests)

    @staticmethod
    def _enum(values: list[Any]) -> Check:
        if all(v is None or isinstance(v, str) for v in values):
            strings = frozenset(v for v in values if v is not None)
            nullable = None in values
            return lambda x: (x is None and nullable) or (isinstance(x, str) and x in strings)
        return lambda x: any(_json_equal(x, v) for v in values)

    @staticmethod
    def _properties(props: dict[str, Check]) -> Check:
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
    def _additional(extra: Check, known: frozenset[str]) -> Check:
        if extra is _always:
            return _always
        return lambda x: not isinstance(x, dict) or all(extra(v) for k, v in x.items() if k not in known)

    @staticmethod
    def _simple(key: str, value: Any) -> Check:
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
        raise Unsupported(key)
