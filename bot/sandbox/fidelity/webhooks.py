"""GitHub's webhooks description: validate a payload against the schema of its event and action."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.sandbox.fidelity.common import HTTP_METHODS, JSONDict
from bot.sandbox.fidelity.document import Document, json_media, parse_body
from bot.sandbox.fidelity.drift import KNOWN_DRIFT, Drift
from bot.sandbox.fidelity.schema import json_pointer


class WebhookSpec:
    """GitHub's webhooks description (or a vendored subset of it): payload validation per event/action."""

    def __init__(self, doc: JSONDict, *, drift: Sequence[Drift] = KNOWN_DRIFT) -> None:
        self._doc = Document(doc, "urn:kickoff:github:webhooks", drift)
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
                media = json_media(content)
                if media is None:
                    continue
                pointer = "/" + json_pointer("webhooks", key, method, "requestBody", "content", media, "schema")
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
        payload = parse_body(payload)
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
