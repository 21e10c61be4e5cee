"""The operator surfaces' gate, attacked: a server bound to every interface, a proxy on this machine, a remote peer,
the wrong token. Real servers on 127.0.0.1; a remote peer through the ASGI seam (no test may bind elsewhere)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from bot.dashboard.auth import is_loopback
from bot.web import create_app
from tests.dashboard.conftest import TOKEN
from tests.deliveries import headers
from tests.support import WEBHOOK_SECRET, ServerThread, make_settings

Serve = Callable[..., ServerThread]
ROOT = Path(__file__).resolve().parents[2]
METRICS = "metrics-token-0123456789abcdef"
ALL_INTERFACES = ".".join("0" * 4)  # what the app is told; no test binds it (servers stay on 127.0.0.1)
# Every operator surface behind DASHBOARD_TOKEN.
OPERATOR_PATHS = ("/", "/dashboard/live", "/api/runs", "/api/queue", "/api/deliveries", "/api/deliveries?status=dead")
FORWARDED = [
    {"X-Forwarded-For": "127.0.0.1"},
    {"X-Forwarded-For": "203.0.113.9"},
    {"Forwarded": "for=127.0.0.1"},
    {"X-Real-IP": "127.0.0.1"},
    {"X-Forwarded-Host": "localhost"},
    {"X-Forwarded-Proto": "https"},
]


def test_bound_to_every_interface_without_a_token_serves_the_dashboard_to_nobody(
    sqlite_url: str, serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """As the Dockerfile runs it (`--host 0.0.0.0`): even a request from loopback gets 401 and the next step."""
    with caplog.at_level(logging.WARNING, logger="bot.web"):
        server = serve(make_settings(sqlite_url, HOST=ALL_INTERFACES))
    started = [r.getMessage() for r in caplog.records]
    assert any("DASHBOARD_TOKEN is not set" in m and ALL_INTERFACES in m for m in started), started
    assert any("METRICS_TOKEN is not set" in m for m in started), started
    with httpx.Client(base_url=server.url, trust_env=False) as client:
        for path in OPERATOR_PATHS:
            answer = client.get(path)
            assert answer.status_code == 401, path
            assert "DASHBOARD_TOKEN" in answer.text, path
            assert answer.headers["www-authenticate"] == "Bearer"
        assert client.post("/dashboard/login", content=b"token=x").status_code == 401
        assert client.get("/metrics").status_code == 401
        # The bot itself goes on.
        assert client.get("/healthz").status_code == 200
        body = b'{"action": "opened"}'
        delivered = client.post("/api/github/webhooks", content=body,
                                headers=headers(WEBHOOK_SECRET, "issues", body, "still-served"))
        assert delivered.status_code == 202


def test_bound_to_every_interface_with_the_tokens(sqlite_url: str, serve: Serve) -> None:
    server = serve(make_settings(sqlite_url, HOST=ALL_INTERFACES, DASHBOARD_TOKEN=TOKEN, METRICS_TOKEN=METRICS))
    with httpx.Client(base_url=server.url, trust_env=False) as client:
        for path in OPERATOR_PATHS:
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200, path
        assert client.get("/metrics", headers={"Authorization": f"Bearer {METRICS}"}).status_code == 200


@pytest.mark.parametrize("forwarded", FORWARDED, ids=[next(iter(h.items()))[0] for h in FORWARDED])
def test_a_request_through_a_proxy_on_this_machine_is_not_local(
    sqlite_url: str, serve: Serve, forwarded: dict[str, str]
) -> None:
    """nginx or a tunnel's agent on this host connects from loopback on behalf of anyone; its headers give it away,
    and a forged `X-Forwarded-For: 127.0.0.1` is no way in either."""
    server = serve(make_settings(sqlite_url))
    with httpx.Client(base_url=server.url, trust_env=False) as client:
        assert client.get("/api/runs").status_code == 200  # straight from loopback, to a loopback bind
        assert client.get("/metrics").status_code == 200
        for path in OPERATOR_PATHS:
            assert client.get(path, headers=forwarded).status_code == 401, path
        assert client.get("/metrics", headers=forwarded).status_code == 401


@asynccontextmanager
async def asgi_client(app: object, peer: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, called as if from `peer` (the ASGI seam: scope["client"])."""
    async with app.router.lifespan_context(app):  # type: ignore[attr-defined]
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:3000") as client:
            yield client


@pytest.mark.parametrize("peer", ["203.0.113.9", "10.0.0.5", "::ffff:192.0.2.1", "2001:db8::1"])
async def test_a_remote_peer_is_refused_even_on_a_loopback_bind(sqlite_url: str, peer: str) -> None:
    app = create_app(make_settings(sqlite_url), run_worker=False)
    async with asgi_client(app, peer) as client:
        for path in OPERATOR_PATHS:
            assert (await client.get(path)).status_code == 401, path
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/healthz")).status_code == 200
    app = create_app(make_settings(sqlite_url), run_worker=False)
    async with asgi_client(app, "::ffff:127.0.0.1") as client:  # the control: the same app, a loopback peer
        assert (await client.get("/api/runs")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200


def test_metrics_token_is_required_once_set_and_is_its_own(sqlite_url: str, serve: Serve) -> None:
    server = serve(make_settings(sqlite_url, METRICS_TOKEN=METRICS, DASHBOARD_TOKEN=TOKEN))
    with httpx.Client(base_url=server.url, trust_env=False) as client:
        for attempt in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {TOKEN}"},
                        {"Authorization": METRICS}, {"Authorization": f"Basic {METRICS}"},
                        {"Authorization": f"Bearer {METRICS}x"}):
            answer = client.get("/metrics", headers=attempt)
            assert answer.status_code == 401, attempt  # from loopback too: a set token is always required
            assert "METRICS_TOKEN" in answer.json()["detail"]
        scraped = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS}"})
        assert scraped.status_code == 200
        assert "kickoff_webhook_body_bytes" in scraped.text
        # And the metrics token opens nothing else.
        assert client.get("/api/runs", headers={"Authorization": f"Bearer {METRICS}"}).status_code == 401


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("::ffff:127.0.0.1", True), (ALL_INTERFACES, False), ("::", False), ("10.0.0.1", False),
     ("kickoff.internal", False), ("fly-local-6pn", False), ("", False), ("127.0.0.1.nip.io", False)],
)
def test_what_counts_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_kickoff_serve_hands_its_bind_address_to_the_app(tmp_path: Path) -> None:
    """`--host` is what the app judges by, whatever HOST says in the environment."""
    port = _free_port()
    dropped = {"APP_ID", "PRIVATE_KEY", "DASHBOARD_TOKEN", "METRICS_TOKEN"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(PYTHONPATH=str(ROOT), WEBHOOK_SECRET=WEBHOOK_SECRET, DATABASE_URL=f"sqlite:///{tmp_path}/k.db",
               HOST=ALL_INTERFACES)
    with (tmp_path / "serve.log").open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--no-worker", "--host", "127.0.0.1",
                                 "--port", str(port)], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        assert httpx.get(f"{base}/api/runs", timeout=10).status_code == 200
        assert httpx.get(f"{base}/api/runs", headers={"X-Forwarded-For": "127.0.0.1"}, timeout=10).status_code == 401
    finally:
        proc.terminate()
        proc.wait(15)
    assert "DASHBOARD_TOKEN is not set" not in (tmp_path / "serve.log").read_text()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
