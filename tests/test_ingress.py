"""The webhook endpoint over a real uvicorn server: real HMAC over real payload bytes, stored exactly once."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from bot.ingress import MAX_BODY_BYTES, Envelope, read_envelope
from bot.services import IngressLoad
from bot.store.db import Store
from bot.store.inbox import Inbox
from bot.store.models import Delivery
from bot.web import create_app
from tests.deliveries import event_of, headers, payload_files, sign
from tests.support import WEBHOOK_SECRET, ServerThread, make_settings


@pytest.fixture
def server(database_url: str) -> Iterator[tuple[str, str]]:
    app = create_app(make_settings(database_url), run_worker=False)
    with ServerThread(app) as running:
        yield running.url, database_url


def stored(database_url: str) -> list[Delivery]:
    async def read() -> list[Delivery]:
        store = Store(database_url)
        try:
            return await Inbox(store).list(limit=10_000)
        finally:
            await store.close()

    return asyncio.run(read())


def test_every_real_payload_is_stored_exactly_once(server: tuple[str, str]) -> None:
    url, database_url = server
    files = payload_files()
    assert len(files) == 151
    sent: dict[str, bytes] = {}
    with httpx.Client(base_url=url, timeout=10) as client:
        for path in files:
            event, _ = event_of(path)
            body = path.read_bytes()
            delivery_id = f"d-{path.stem}"
            response = client.post("/api/github/webhooks", content=body,
                                   headers=headers(WEBHOOK_SECRET, event, body, delivery_id))
            if event == "ping":
                assert response.status_code == 200, path.name
                continue
            assert response.status_code == 202, (path.name, response.text)
            assert response.content == b""  # the status says it all
            sent[delivery_id] = body
            # GitHub's redelivery keeps the id: the second copy is acknowledged and ignored.
            again = client.post("/api/github/webhooks", content=body,
                                headers=headers(WEBHOOK_SECRET, event, body, delivery_id))
            assert again.status_code == 200, path.name
    rows = {row.id: row for row in stored(database_url)}
    assert set(rows) == set(sent)
    for delivery_id, body in sent.items():
        row = rows[delivery_id]
        assert row.payload.encode() == body
        event, action = event_of(Path(delivery_id[2:] + ".json"))
        assert row.event == event
        assert row.action == action
        assert row.status == "pending"
        payload = json.loads(body)
        assert row.installation_id == (payload.get("installation") or {}).get("id")
        assert row.repository == (payload.get("repository") or {}).get("full_name")


BODY = json.dumps({"action": "opened", "issue": {"number": 1}}).encode()


def _bad_cases() -> list[tuple[str, dict[str, str], bytes, int]]:
    good = headers(WEBHOOK_SECRET, "issues", BODY, "bad-case")
    without = lambda *names: {k: v for k, v in good.items() if k not in names}  # noqa: E731
    array = b"[1, 2, 3]"
    truncated = BODY[:-5]
    return [
        ("no signature", without("X-Hub-Signature-256"), BODY, 401),
        ("wrong secret", {**good, "X-Hub-Signature-256": sign("not-the-secret", BODY)}, BODY, 401),
        ("signature over other bytes", {**good, "X-Hub-Signature-256": sign(WEBHOOK_SECRET, BODY + b" ")}, BODY, 401),
        ("bare digest without sha256=", {**good, "X-Hub-Signature-256": sign(WEBHOOK_SECRET, BODY)[7:]}, BODY, 401),
        ("SHA-1 header only", {**without("X-Hub-Signature-256"),
                               "X-Hub-Signature": "sha1=" + __import__("hmac").new(
                                   WEBHOOK_SECRET.encode(), BODY, "sha1").hexdigest()}, BODY, 401),
        ("no event header", without("X-GitHub-Event"), BODY, 400),
        ("malformed event header", {**good, "X-GitHub-Event": "issues; rm -rf /"}, BODY, 400),
        ("no delivery id", without("X-GitHub-Delivery"), BODY, 400),
        ("not JSON", {**good, "X-Hub-Signature-256": sign(WEBHOOK_SECRET, b"hello")}, b"hello", 400),
        ("a JSON array", {**good, "X-Hub-Signature-256": sign(WEBHOOK_SECRET, array)}, array, 400),
        ("truncated JSON", {**good, "X-Hub-Signature-256": sign(WEBHOOK_SECRET, truncated)}, truncated, 400),
        ("invalid UTF-8", {**good, "X-Hub-Signature-256": sign(WEBHOOK_SECRET, b"\xff\xfe{}")}, b"\xff\xfe{}", 400),
    ]


@pytest.mark.parametrize(("name", "hdrs", "body", "status"), _bad_cases(), ids=[c[0] for c in _bad_cases()])
def test_bad_delivery_is_refused_and_not_stored(
    server: tuple[str, str], name: str, hdrs: dict[str, str], body: bytes, status: int
) -> None:
    url, database_url = server
    response = httpx.post(f"{url}/api/github/webhooks", content=body, headers=hdrs, timeout=10)
    assert response.status_code == status, (name, response.text)
    assert "message" in response.json()
    assert stored(database_url) == []


def test_oversized_body_is_refused_without_reading_it(server: tuple[str, str]) -> None:
    url, database_url = server
    body = b"{" + b" " * (26 * 1024 * 1024) + b"}"
    hdrs = headers(WEBHOOK_SECRET, "issues", body)
    response = httpx.post(f"{url}/api/github/webhooks", content=body, headers=hdrs, timeout=30)
    assert response.status_code == 413
    assert stored(database_url) == []


def test_oversized_chunked_body_is_cut_off(server: tuple[str, str]) -> None:
    """No Content-Length to trust: the limit applies while streaming."""
    url, database_url = server
    host, port = url.removeprefix("http://").split(":")
    chunk = b" " * (1024 * 1024)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /api/github/webhooks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"X-GitHub-Event: issues\r\nX-GitHub-Delivery: chunked-1\r\nX-Hub-Signature-256: sha256=00\r\n\r\n"
        )
        response = b""
        try:
            for _ in range(40):  # 40 MiB offered; the server stops reading at 25
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        except OSError:
            pass  # the server answered and closed the connection while we were still sending
        sock.settimeout(10)
        try:
            while b"\r\n\r\n" not in response:
                data = sock.recv(65536)
                if not data:
                    break
                response += data
        except OSError:
            pass
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert stored(database_url) == []


def test_ping_is_answered_and_not_stored(server: tuple[str, str]) -> None:
    url, database_url = server
    body = (payload_files()[0].parent / "ping.none.1.json").read_bytes()
    response = httpx.post(f"{url}/api/github/webhooks", content=body, headers=headers(WEBHOOK_SECRET, "ping", body))
    assert response.status_code == 200
    assert stored(database_url) == []


def test_concurrent_copies_of_one_delivery_store_one_row(server: tuple[str, str]) -> None:
    url, database_url = server
    hdrs = headers(WEBHOOK_SECRET, "issues", BODY, "same-id")

    async def send_all() -> list[int]:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            responses = await asyncio.gather(
                *(client.post("/api/github/webhooks", content=BODY, headers=hdrs) for _ in range(20))
            )
        return sorted(r.status_code for r in responses)

    statuses = asyncio.run(send_all())
    assert statuses == [200] * 19 + [202]
    assert [row.id for row in stored(database_url)] == ["same-id"]


def test_only_post_is_accepted(server: tuple[str, str]) -> None:
    url, database_url = server
    response = httpx.get(f"{url}/api/github/webhooks")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert stored(database_url) == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"action": "opened", "installation": {"id": 7}, "repository": {"full_name": "o/r"}}',
         Envelope("opened", 7, "o/r")),
        (b'{"zen": "Keep it logically awesome."}', Envelope(None, None, None)),
        (b'{"action": 3, "installation": null, "repository": {"full_name": 5}}', Envelope(None, None, None)),
        (b'{"action": null, "repository": "o/r"}', Envelope(None, None, None)),
        (b'{"installation": {"id": 9223372036854775807}}', Envelope(None, 2**63 - 1, None)),
        (b'{"action": "' + b"x" * 100 + b'"}', Envelope("x" * 64, None, None)),
    ],
)
def test_the_envelope_takes_only_well_shaped_fields(body: bytes, expected: Envelope) -> None:
    assert read_envelope(body) == expected


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"3", b"null"])
def test_json_that_is_not_an_object_is_told_apart(body: bytes) -> None:
    with pytest.raises(msgspec.ValidationError):
        read_envelope(body)


@pytest.mark.parametrize("body", [b'{"action": "opened"} trailing', b'{"action": ', b'{"a": 1,}', b"\xff{}", b""])
def test_broken_json_is_told_apart(body: bytes) -> None:
    with pytest.raises(msgspec.DecodeError) as broken:
        read_envelope(body)
    assert not isinstance(broken.value, msgspec.ValidationError)


async def test_the_ingress_load_tells_the_dispatcher_when_it_may_claim() -> None:
    load = IngressLoad()
    await asyncio.wait_for(load.wait_idle(30), 1)  # idle: no wait at all
    load.enter()
    load.enter()
    loop = asyncio.get_running_loop()
    began = loop.time()
    await load.wait_idle(0.05)  # busy: waits, but only so long
    assert loop.time() - began >= 0.04
    waiting = asyncio.create_task(load.wait_idle(30))
    load.leave()
    await asyncio.sleep(0.01)
    assert not waiting.done()
    load.leave()
    await asyncio.wait_for(waiting, 1)
    assert load.in_flight == 0


def test_every_answer_leaves_the_ingress_idle(database_url: str) -> None:
    app = create_app(make_settings(database_url), run_worker=False)
    big = b"{" + b" " * (MAX_BODY_BYTES + 1) + b"}"
    with ServerThread(app) as running, httpx.Client(base_url=running.url, timeout=30) as client:
        assert client.post("/api/github/webhooks", content=BODY,
                           headers=headers(WEBHOOK_SECRET, "issues", BODY, "idle-1")).status_code == 202
        unsigned = client.post("/api/github/webhooks", content=BODY, headers={"X-GitHub-Event": "issues"})
        assert unsigned.status_code == 401
        assert client.post("/api/github/webhooks", content=big,
                           headers=headers(WEBHOOK_SECRET, "issues", big, "idle-2")).status_code == 413
        assert client.get("/api/github/webhooks").status_code == 405
        assert app.state.services.ingress.in_flight == 0
        assert app.webhook_ingress.guard.in_flight == 0  # every body's bytes went back to the budget
