"""GitHub's REST description: match a method and path to an operation, validate its request and response bodies."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from bot.sandbox.fidelity.common import GREEDY_PATH_PARAMS, HTTP_METHODS, NO_BODY, JSONDict
from bot.sandbox.fidelity.document import Document, json_media, parse_body, short_repr
from bot.sandbox.fidelity.drift import KNOWN_DRIFT, Drift
from bot.sandbox.fidelity.schema import json_pointer


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
        self._doc = Document(doc, "urn:kickoff:github:rest", drift)
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
        return "/" + json_pointer("paths", template, method), operation

    def validate_request(self, op: Operation, body: Any = NO_BODY, *, strict: bool = False) -> list[str]:
        """Problems with a request body (parsed JSON, raw ``bytes``, or None/omitted for no body)."""
        body = None if body is NO_BODY else parse_body(body)
        pointer, operation = self._raw_operation(op)
        name = f"{op.operation_id} request body"
        request = operation.get("requestBody")
        if request is None:
            if body is None or body == {}:
                return []
            return [f"{name}: {op.method} {op.template} takes no JSON body, got {short_repr(body)}"]
        resolved = self._doc.resolve(request)
        if body is None:
            return [f"{name}: required but absent"] if resolved.get("required") else []
        content = resolved.get("content", {})
        media = json_media(content)
        if media is None or "schema" not in content[media]:
            return [f"{name}: {op.method} {op.template} takes no JSON body, got {short_repr(body)}"]
        base = request["$ref"][1:] if "$ref" in request else f"{pointer}/requestBody"
        return self._doc.validate(f"{base}/{json_pointer('content', media, 'schema')}", body, name, strict=strict)

    def validate_response(
        self,
        op: Operation,
        status: int,
        body: Any = NO_BODY,
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
        body = None if body is NO_BODY else parse_body(body)
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
        media = json_media(content)
        if media is None or "schema" not in content[media]:
            if body is None or content:
                return []  # nothing documented as JSON: nothing to check
            return [f"{name}: status {status} has no documented body, got {short_repr(body)}"]
        if body is None:
            return [f"{name}: body expected ({media}) but absent"]
        base = raw["$ref"][1:] if "$ref" in raw else f"{pointer}/{json_pointer('responses', key)}"
        return self._doc.validate(f"{base}/{json_pointer('content', media, 'schema')}", body, name, strict=strict)
