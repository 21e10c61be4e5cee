"""The webhook ingress: verify the signature over the raw bytes, store the delivery, answer. Nothing else."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from bot.services import Services
from bot.store.inbox import InboxWriter, NewDelivery
from bot.store.models import utcnow

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
_EVENT_NAME = re.compile(r"^[a-z_]{1,64}$")
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9\-_.:]{1,100}$")

router = APIRouter()


class BodyTooLarge(Exception):
    pass


def signature_for(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Only `X-Hub-Signature-256` counts; a SHA-1 signature or a bare digest is refused, never downgraded."""
    if not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(signature_for(secret, body).encode(), header.encode())


async def read_bounded(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """Read the body, refusing as soon as it passes `limit` (never buffering more than that)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


@router.post("/api/github/webhooks")
async def receive_webhook(request: Request) -> Response:
    started = time.perf_counter()
    services: Services = request.app.state.services
    writer: InboxWriter = request.app.state.inbox_writer
    secret: str = request.app.state.webhook_secret
    try:
        body = await read_bounded(request)
    except BodyTooLarge:
        return _problem(413, f"payload larger than {MAX_BODY_BYTES} bytes")
    if not verify_signature(secret, body, request.headers.get("x-hub-signature-256")):
        return _problem(401, "missing or invalid X-Hub-Signature-256")
    event = request.headers.get("x-github-event")
    delivery_id = request.headers.get("x-github-delivery")
    if not event or not _EVENT_NAME.match(event):
        return _problem(400, "missing or malformed X-GitHub-Event")
    if not delivery_id or not _DELIVERY_ID.match(delivery_id):
        return _problem(400, "missing or malformed X-GitHub-Delivery")
    try:
        payload: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _problem(400, "body is not valid JSON")
    if not isinstance(payload, dict):
        return _problem(400, "body is not a JSON object")
    if event == "ping":
        return JSONResponse({"message": "pong"}, status_code=200)
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
        return _problem(503, "could not store the delivery; GitHub can redeliver it")
    if not is_new:
        return JSONResponse({"message": "duplicate delivery", "id": delivery_id}, status_code=200)
    services.wakeup.set()
    if services.metrics is not None:
        services.metrics.delivery_received(event, time.perf_counter() - started)
    return JSONResponse({"message": "accepted", "id": delivery_id}, status_code=202)


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
