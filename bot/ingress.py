"""The webhook ingress: verify the signature over the raw bytes, store the delivery, answer. Nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import orjson
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from bot import messages
from bot.services import Services
from bot.store.inbox import InboxWriter, NewDelivery
from bot.store.models import utcnow

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
BODY_BUDGET_BYTES: Final = 64 * 1024 * 1024  # defaults of KICKOFF_WEBHOOK_BODY_BUDGET / _READ_SECONDS
READ_SECONDS: Final = 30.0
MAX_INSTALLATION_ID: Final = 2**63 - 1  # the database's BIGINT
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


UNSIGNED: Final[tuple[int, dict[str, str] | None]] = (401, {"message": "missing or invalid X-Hub-Signature-256"})


async def accept(
    app_state: Any, headers: dict[str, str], body: bytes, started: float
) -> tuple[int, dict[str, str] | None]:
    """Validate and store one delivery whose signature the caller verified; return the status and the JSON
    answer. No GitHub call, ever."""
    services: Services = app_state.services
    writer: InboxWriter = app_state.inbox_writer
    event = headers.get("x-github-event")
    delivery_id = headers.get("x-github-delivery")
    if not event or not _EVENT_NAME.match(event):
        return 400, {"message": "missing or malformed X-GitHub-Event"}
    if not delivery_id or not _DELIVERY_ID.match(delivery_id):
        return 400, {"message": "missing or malformed X-GitHub-Delivery"}
    try:
        envelope = read_envelope(body)
        text = body.decode("utf-8")
    except EnvelopeError as exc:
        return 400, {"message": str(exc)}
    except msgspec.ValidationError:  # valid JSON, but not an object
        return 400, {"message": "body is not a JSON object"}
    except (msgspec.DecodeError, UnicodeDecodeError):
        return 400, {"message": "body is not valid JSON"}
    if event == "ping":
        return 200, {"message": "pong"}
    delivery = NewDelivery(
        id=delivery_id,
        event=event,
        action=envelope.action,
        installation_id=envelope.installation_id,
        repository=envelope.repository,
        payload=text,
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
    return 202, None  # the status says it all; no body saves a second write to the socket


_WANTED = frozenset({b"content-length", b"x-hub-signature-256", b"x-github-event", b"x-github-delivery"})
_CLOSE: Final = ((b"connection", b"close"),)
_BUSY: Final = (*_CLOSE, (b"retry-after", b"5"))


class BodyGuard:
    """The webhook bodies being read, before any signature can be checked: a budget of bytes held at once across
    all of them, and a deadline for each read.

    Plain counters, so the hot path pays a few integer operations per chunk; the deadlines are enforced by one
    reaper task (`run`) that cancels the reads that are past theirs, rather than a timer per request.
    """

    def __init__(self, budget: int = BODY_BUDGET_BYTES, read_seconds: float = READ_SECONDS) -> None:
        self.budget = budget
        self.read_seconds = read_seconds
        self.in_flight = 0  # unauthenticated body bytes held right now
        self.peak = 0
        self.refused = 0  # bodies answered 503 for want of budget
        self.cut_off = 0  # bodies answered 408 for missing their deadline
        self._reading: dict[asyncio.Task[Any], float] = {}
        self._late: set[asyncio.Task[Any]] = set()

    def take(self, size: int) -> bool:
        if self.in_flight + size > self.budget:
            return False
        self.in_flight += size
        if self.in_flight > self.peak:
            self.peak = self.in_flight
        return True

    def give(self, size: int) -> None:
        self.in_flight -= size

    def reading(self, task: asyncio.Task[Any], started: float) -> None:
        self._reading[task] = started + self.read_seconds

    def done(self, task: asyncio.Task[Any]) -> None:
        self._reading.pop(task, None)

    def was_late(self, task: asyncio.Task[Any]) -> bool:
        if task in self._late:
            self._late.discard(task)
            return True
        return False

    async def run(self) -> None:
        """Cancel every read past its deadline (their handlers answer 408), until cancelled."""
        tick = min(1.0, max(0.01, self.read_seconds / 10))
        while True:
            await asyncio.sleep(tick)
            now = time.perf_counter()
            for task, due in list(self._reading.items()):
                if due <= now:
                    del self._reading[task]
                    self._late.add(task)
                    task.cancel()


class WebhookIngress:
    """The webhook endpoint as plain ASGI: it is the one hot path of the service.

    `KickoffApp` hands it the webhook path before FastAPI's middleware stack and routing. The body is read chunk by
    chunk and refused as soon as it passes 25 MiB (or at once when Content-Length says so), when the bodies being
    read together would pass the `BodyGuard`'s budget (503), or when it is not in by its deadline (408). Its bytes
    leave the budget once the signature is checked.
    """

    def __init__(self, state: Any) -> None:
        self.state = state
        self.guard = BodyGuard()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        if scope["method"] != "POST":
            await _answer(send, 405, {"message": "use POST"}, extra=((b"allow", b"POST"),))
            return
        services: Services | None = getattr(self.state, "services", None)
        if services is not None:
            services.ingress.enter()
        try:
            await self._post(scope, receive, send, started)
        finally:
            if services is not None:
                services.ingress.leave()

    async def _post(self, scope: Scope, receive: Receive, send: Send, started: float) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in _WANTED}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            await _answer(send, 413, {"message": f"payload larger than {MAX_BODY_BYTES} bytes"}, extra=_CLOSE)
            return
        guard = self.guard
        task = asyncio.current_task()
        assert task is not None
        chunks: list[bytes] = []
        size = 0
        more = True
        guard.reading(task, started)
        try:
            try:
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    chunk = message.get("body", b"")
                    if size + len(chunk) > MAX_BODY_BYTES:
                        await _answer(send, 413, {"message": f"payload larger than {MAX_BODY_BYTES} bytes"},
                                      extra=_CLOSE)
                        return
                    if not guard.take(len(chunk)):
                        guard.refused += 1
                        await _answer(send, 503, {"message": messages.WEBHOOK_BUSY}, extra=_BUSY)
                        return
                    size += len(chunk)
                    chunks.append(chunk)
                    more = message.get("more_body", False)
            except asyncio.CancelledError:
                if not guard.was_late(task):
                    raise
                task.uncancel()
                guard.cut_off += 1
                late = messages.WEBHOOK_TOO_SLOW.format(seconds=guard.read_seconds)
                with contextlib.suppress(Exception):
                    await _answer(send, 408, {"message": late}, extra=_CLOSE)
                return
            finally:
                guard.done(task)
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            del chunks
            signed = verify_signature(self.state.webhook_secret, body, headers.get("x-hub-signature-256"))
        finally:
            guard.give(size)
        if not signed:
            status, answer = UNSIGNED
        else:
            try:
                status, answer = await accept(self.state, headers, body, started)
            except Exception:
                log.exception("the webhook ingress failed")
                status, answer = 500, {"message": "internal error; GitHub can redeliver it"}
        await _answer(send, status, answer)


class KickoffApp(FastAPI):
    """FastAPI, with `POST /api/github/webhooks` taken before the middleware stack (errors, telemetry, routing)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.webhook_ingress = WebhookIngress(self.state)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == WEBHOOK_PATH:
            scope["app"] = self
            await self.webhook_ingress(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


async def _answer(
    send: Send, status: int, body: dict[str, str] | None, extra: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    if body is None:
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        return
    data = orjson.dumps(body)
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *extra],
    })
    await send({"type": "http.response.body", "body": data})


class _Envelope(msgspec.Struct):
    """The three fields the inbox indexes. Decoding validates the whole body as JSON but builds only these."""

    action: msgspec.Raw = msgspec.Raw(b"null")
    installation: msgspec.Raw = msgspec.Raw(b"null")
    repository: msgspec.Raw = msgspec.Raw(b"null")


class _Installation(msgspec.Struct):
    id: object = None


class _Repository(msgspec.Struct):
    full_name: object = None


_ENVELOPE = msgspec.json.Decoder(_Envelope)


@dataclass(frozen=True, slots=True)
class Envelope:
    """What the inbox stores beside the payload."""

    action: str | None
    installation_id: int | None
    repository: str | None


class EnvelopeError(ValueError):
    """The body is a JSON object, but its envelope cannot be stored (e.g. an installation id out of range)."""


def read_envelope(body: bytes) -> Envelope:
    """Validate `body` as a JSON object and read its envelope. Raises msgspec's `ValidationError` for JSON that
    is not an object, `DecodeError` for what is not JSON, and `EnvelopeError` for an unusable installation."""
    raw = _ENVELOPE.decode(body)
    return Envelope(_action(raw.action), _installation_id(raw.installation), _repository(raw.repository))

_NULL: Final = msgspec.Raw(b"null")
_ANY = msgspec.json.Decoder(object)
_INSTALLATION = msgspec.json.Decoder(_Installation)
_REPOSITORY = msgspec.json.Decoder(_Repository)


def _action(raw: msgspec.Raw) -> str | None:
    value = _ANY.decode(raw)
    return value[:64] if isinstance(value, str) else None


def _installation_id(raw: msgspec.Raw) -> int | None:
    """None without an installation; an id GitHub could have sent, or `EnvelopeError` (a 400, not a database
    error at the insert)."""
    if raw == _NULL:
        return None
    try:
        value = _INSTALLATION.decode(raw).id
    except msgspec.ValidationError:  # not an object
        raise EnvelopeError(messages.WEBHOOK_BAD_INSTALLATION) from None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INSTALLATION_ID:
        raise EnvelopeError(messages.WEBHOOK_BAD_INSTALLATION)
    return value


def _repository(raw: msgspec.Raw) -> str | None:
    try:
        name = _REPOSITORY.decode(raw).full_name
    except msgspec.ValidationError:
        return None
    return name[:255] if isinstance(name, str) else None
