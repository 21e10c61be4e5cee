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

from functools import lru_cache
from pathlib import Path

from bot.sandbox.fidelity.common import GREEDY_PATH_PARAMS, OPENAPI_DIR, REST_SUBSET_PATH, WEBHOOKS_SUBSET_PATH
from bot.sandbox.fidelity.document import load_json
from bot.sandbox.fidelity.drift import KNOWN_DRIFT, Drift
from bot.sandbox.fidelity.rest import Operation, RestSpec
from bot.sandbox.fidelity.schema import convert_schema
from bot.sandbox.fidelity.webhooks import WebhookSpec

__all__ = [
    "GREEDY_PATH_PARAMS",
    "KNOWN_DRIFT",
    "OPENAPI_DIR",
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


@lru_cache(maxsize=8)
def _load_rest(path: Path) -> RestSpec:
    return RestSpec(load_json(path))


@lru_cache(maxsize=8)
def _load_webhooks(path: Path) -> WebhookSpec:
    return WebhookSpec(load_json(path))


def load_rest_spec(path: str | Path | None = None) -> RestSpec:
    """The REST description at ``path`` (default: the vendored subset). Cached per path: share it."""
    return _load_rest(Path(path).resolve() if path is not None else REST_SUBSET_PATH)


def load_webhooks_spec(path: str | Path | None = None) -> WebhookSpec:
    """The webhooks description at ``path`` (default: the vendored subset). Cached per path: share it."""
    return _load_webhooks(Path(path).resolve() if path is not None else WEBHOOKS_SUBSET_PATH)
