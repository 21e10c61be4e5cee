"""Real payloads from tests/fixtures/github/webhooks and signed delivery headers."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from pathlib import Path
from typing import Any

WEBHOOKS = Path(__file__).parent / "fixtures" / "github" / "webhooks"


def payload_files() -> list[Path]:
    return sorted(WEBHOOKS.glob("*.json"))


def event_of(path: Path) -> tuple[str, str | None]:
    event, action, _ = path.name.split(".", 2)
    return event, None if action == "none" else action


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((WEBHOOKS / name).read_text())
    return data


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers(secret: str, event: str, body: bytes, delivery_id: str | None = None) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(secret, body),
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/test",
    }
