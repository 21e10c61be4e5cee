"""The webhook ingress: verify the signature over the raw bytes, store the delivery, answer. Nothing else."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.services import Services
from bot.store.inbox import InboxWriter, NewDelivery
from bot.store.models import utcnow

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
_EVENT_NAME = re.compile(r"^[a-z_]{1,64}$")
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9\-_.:]{1,100}$")

def signature_for(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Only `X-Hub-Signature-256` counts; a SHA-1 signature or a bare digest is refused, never downgraded."""
    if not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(signature_for(secret, body).encode(), header.encode())


WEBHOOK_PATH = "/api/github/webhooks"


async def accept(app_state: Any, headers: dict[str, str], body: bytes, started: float) -> tuple[int, dict[str, str]]:
    """Verify, validate and store one delivery; return the status and the JSON answer. No GitHub call, ever."""
    services: Services = app_state.services
    writer: InboxWriter = app_state.inbox_writer
    if not verify_signature(app_state.webhook_secret, body, headers.get("x-hub-signature-256")):
        return 401, {"message": "missing or invalid X-Hub-Signature-256"}
    event = headers.get("x-github-event")
    delivery_id = headers.get("x-github-delivery")
    if not event or not _EVENT_NAME.match(event):
        return 400, {"message": "missing or malformed X-GitHub-Event"}
    if not delivery_id or not _DELIVERY_ID.match(delivery_id):
        return 400, {"message": "missing or malformed X-GitHub-Delivery"}
    try:
        payload: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 400, {"message": "body is not valid JSON"}
    if not isinstance(payload, dict):
        return 400, {"message": "body is not a JSON object"}
    if event == "ping":
        return 200, {"message": "pong"}
    delivery = NewDelivery(
        id=delivery_id,
        event=event,
        action=_str_or_none(payload.get("action")),
        installation_id=_installation_id(payload),
        repository=_repository(payload),
        payload=body.decode("utf-8"),
        received_at=utcnow(),
    )
    try:
        is_new = await writer.submit(delivery)
    except Exception:
        log.exception("could not store delivery %s", delivery_id)
        return 503, {"message": "could not store the delivery; GitHub can redeliver it"}
    if not is_new:
        return 200, {"message": "duplicate delivery", "id": delivery_id}
    services.wakeup.set()
    if services.metrics is not None:
        services.metrics.delivery_received(event, time.perf_counter() - started)
    return 202, {"message": "accepted", "id": delivery_id}


_WANTED = frozenset({b"content-length", b"x-hub-signature-256", b"x-github-event", b"x-github-delivery"})


class WebhookIngress:
    """The webhook endpoint as plain ASGI, ahead of FastAPI's routing: it is the one hot path of the service.

    Everything else goes to the application unchanged. The body is read chunk by chunk and refused as soon as it
    passes 25 MiB (or at once when Content-Length says so).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != WEBHOOK_PATH:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        if scope["method"] != "POST":
            await _answer(send, 405, {"message": "use POST"}, extra=((b"allow", b"POST"),))
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in _WANTED}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            await _answer(send, 413, {"message": f"payload larger than {MAX_BODY_BYTES} bytes"})
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                await _answer(send, 413, {"message": f"payload larger than {MAX_BODY_BYTES} bytes"})
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        status, answer = await accept(scope["app"].state, headers, b"".join(chunks), started)
        await _answer(send, status, answer)


async def _answer(
    send: Send, status: int, body: dict[str, str], extra: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    data = orjson.dumps(body)
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *extra],
    })
    await send({"type": "http.response.body", "body": data})


def _str_or_none(value: object) -> str | None:
    return value[:64] if isinstance(value, str) else None


def _installation_id(payload: dict[str, Any]) -> int | None:
    installation = payload.get("installation")
    if isinstance(installation, dict):
        value = installation.get("id")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _repository(payload: dict[str, Any]) -> str | None:
    repository = payload.get("repository")
    if isinstance(repository, dict):
        name = repository.get("full_name")
        if isinstance(name, str):
            return name[:255]
    return None
