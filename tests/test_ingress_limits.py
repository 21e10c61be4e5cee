"""The webhook ingress under attack: bodies it must read before it can check their signature.

A real `kickoff serve` process (its memory measured from /proc) or a real uvicorn server, raw sockets as the
attacker's client.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.ingress import BodyGuard
from bot.web import create_app
from tests.deliveries import headers
from tests.support import WEBHOOK_SECRET, ServerThread, make_settings
from tests.test_ingress import BODY, stored

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
ATTACK_BODY = 20 * MIB  # six of them: 120 MiB offered against the default 64 MiB budget


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request_head(port: int, length: int, delivery: str) -> bytes:
    return (
        f"POST /api/github/webhooks HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\nX-GitHub-Event: issues\r\nX-GitHub-Delivery: {delivery}\r\n"
        "X-Hub-Signature-256: sha256=" + "0" * 64 + "\r\n\r\n"
    ).encode()


def read_answer(sock: socket.socket, timeout: float = 30) -> bytes:
    """Everything the server sends until it closes the connection or a whole response head has arrived."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
    except OSError:
        pass
    return data


def send_quietly(sock: socket.socket, data: bytes) -> bool:
    """Send what the server still takes; False once it has answered and closed."""
    try:
        sock.sendall(data)
    except OSError:
        return False
    return True


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def scrape(base: str) -> dict[str, float]:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = sample.name + "".join(f"{{{v}}}" for v in sample.labels.values())
            found[key] = sample.value
    return found


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def kickoff_serve(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """`kickoff serve` on loopback as its own process (defaults for the body budget and the read deadline)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KICKOFF_") and k not in {
        "APP_ID", "PRIVATE_KEY", "PRIVATE_KEY_PATH", "DASHBOARD_TOKEN", "METRICS_TOKEN", "HOST"}}
    env.update(PYTHONPATH=str(ROOT), WEBHOOK_SECRET=WEBHOOK_SECRET, DATABASE_URL=f"sqlite:///{tmp_path}/k.db")
    with (tmp_path / "serve.log").open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--no-worker", "--port", str(port)],
                                cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            try:
                return httpx.get(f"{base}/readyz", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, "kickoff serve to start")
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(15)


def test_six_concurrent_20_mib_unsigned_bodies_stay_within_the_budget(kickoff_serve: tuple[str, int]) -> None:
    base, pid = kickoff_serve
    port = int(base.rsplit(":", 1)[1])
    # Warm up: one real delivery and one scrape, so what is measured next is the attack alone.
    signed = httpx.post(f"{base}/api/github/webhooks", content=BODY,
                        headers=headers(WEBHOOK_SECRET, "issues", BODY, "warm-up"), timeout=10)
    assert signed.status_code == 202
    assert scrape(base)["kickoff_webhook_body_budget_bytes"] == 64 * MIB
    before = peak_rss(pid)

    attackers = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(6)]
    try:
        for index, sock in enumerate(attackers):
            sock.sendall(request_head(port, ATTACK_BODY, f"attack-{index}"))
        # One after another, each sends all of its body but the last byte, so the server holds what it has read.
        for index, sock in enumerate(attackers):
            sent = send_quietly(sock, b" " * (ATTACK_BODY - 1))
            if index < 3:  # 3 x 20 MiB fit in the 64 MiB budget
                assert sent
                held = (index + 1) * (ATTACK_BODY - 1)
                wait_for(lambda held=held: scrape(base)["kickoff_webhook_body_bytes"] == held,
                         f"the server to hold {held} bytes")
            else:
                answer = read_answer(sock)
                assert answer.startswith(b"HTTP/1.1 503"), (index, answer[:300])
                assert b"retry-after:" in answer.lower()
        for index in (0, 1, 2):  # the admitted ones end as what they are: unsigned
            attackers[index].sendall(b" ")
            assert read_answer(attackers[index]).startswith(b"HTTP/1.1 401")
    finally:
        for sock in attackers:
            sock.close()

    figures = scrape(base)
    assert figures["kickoff_webhook_body_bytes"] == 0
    assert figures["kickoff_webhook_body_bytes_peak"] <= 64 * MIB
    assert figures["kickoff_webhook_bodies_refused_total{budget}"] == 3
    grown = peak_rss(pid) - before
    # Three bodies held plus one joined for its signature check: about 80 MiB. Unbounded, six bodies: over 120.
    assert grown < 110 * MIB, f"the server's peak memory grew by {grown / MIB:.0f} MiB"
    # A legitimate delivery still goes through afterwards.
    after = httpx.post(f"{base}/api/github/webhooks", content=BODY,
                       headers=headers(WEBHOOK_SECRET, "issues", BODY, "after-attack"), timeout=10)
    assert after.status_code == 202


def test_a_chunked_body_past_the_budget_is_refused_while_streaming(sqlite_url: str) -> None:
    """No Content-Length: the budget counts what arrives, so a body that would pass it is cut off mid-way."""
    app = create_app(make_settings(sqlite_url, KICKOFF_WEBHOOK_BODY_BUDGET=25 * MIB), run_worker=False)
    guard: BodyGuard = app.webhook_ingress.guard
    with ServerThread(app) as running:
        host = ("127.0.0.1", running.port)
        first = socket.create_connection(host, timeout=30)
        second = socket.create_connection(host, timeout=30)
        try:
            head = request_head(running.port, 0, "chunked").replace(
                b"Content-Length: 0\r\n", b"Transfer-Encoding: chunked\r\n")
            first.sendall(head + b"%x\r\n" % (20 * MIB) + b" " * (20 * MIB) + b"\r\n")
            wait_for(lambda: guard.in_flight == 20 * MIB, "the first body to be held")
            second.sendall(head)
            for _ in range(10):
                if not send_quietly(second, b"%x\r\n" % MIB + b" " * MIB + b"\r\n"):
                    break
            assert read_answer(second).startswith(b"HTTP/1.1 503")
            assert guard.in_flight == 20 * MIB  # the refused body's bytes went back; the first still holds its own
        finally:
            first.close()
            second.close()
        wait_for(lambda: guard.in_flight == 0, "the abandoned body to be released")
    assert guard.peak <= 25 * MIB
    assert stored(sqlite_url) == []


@pytest.mark.parametrize("trickle", [True, False], ids=["trickling body", "no body at all"])
def test_a_slow_body_is_cut_off_at_its_deadline(sqlite_url: str, trickle: bool) -> None:
    app = create_app(make_settings(sqlite_url, KICKOFF_WEBHOOK_READ_SECONDS=1), run_worker=False)
    guard: BodyGuard = app.webhook_ingress.guard
    with ServerThread(app) as running, socket.create_connection(("127.0.0.1", running.port), timeout=30) as sock:
        sock.sendall(request_head(running.port, 1000, "slow"))
        began = time.monotonic()
        answer = b""
        sock.settimeout(0.2)
        while time.monotonic() - began < 30 and b"\r\n\r\n" not in answer:
            if trickle and not send_quietly(sock, b" "):
                break
            try:
                piece = sock.recv(65536)
            except TimeoutError:
                continue
            if not piece:
                break
            answer += piece
        assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
        assert b"connection: close" in answer.lower()
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["message"].startswith("the body did not arrive")
        # The server closed the connection: the rest of the body goes nowhere.
        sock.settimeout(10)
        try:
            rest = sock.recv(65536)
            while rest:
                rest = sock.recv(65536)
        except ConnectionResetError:
            pass
        # A delivery sent in time is untouched by the deadline of another.
        fine = httpx.post(f"{running.url}/api/github/webhooks", content=BODY,
                          headers=headers(WEBHOOK_SECRET, "issues", BODY, "in-time"), timeout=10)
        assert fine.status_code == 202
        assert (guard.cut_off, guard.in_flight) == (1, 0)
    assert [row.id for row in stored(sqlite_url)] == ["in-time"]


def test_the_budget_is_never_below_one_github_payload(sqlite_url: str) -> None:
    from bot.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="KICKOFF_WEBHOOK_BODY_BUDGET"):
        load_settings(_env_file=None, WEBHOOK_SECRET="x", KICKOFF_WEBHOOK_BODY_BUDGET=MIB)


BAD_INSTALLATIONS = [
    ("2^63", b'{"id": 9223372036854775808}'),
    ("2^64", b'{"id": 18446744073709551616}'),
    ("zero", b'{"id": 0}'),
    ("negative", b'{"id": -7}'),
    ("text", b'{"id": "7"}'),
    ("float", b'{"id": 7.0}'),
    ("boolean", b'{"id": true}'),
    ("no id", b"{}"),
    ("not an object", b"[7]"),
]


@pytest.mark.parametrize(("name", "installation"), BAD_INSTALLATIONS, ids=[n for n, _ in BAD_INSTALLATIONS])
def test_an_installation_id_the_database_cannot_hold_is_a_400(
    database_url: str, name: str, installation: bytes
) -> None:
    """Signed (the attacker may be GitHub-side, or hold the secret): still a clear 400, never a database error."""
    body = b'{"action": "opened", "installation": ' + installation + b', "repository": {"full_name": "o/r"}}'
    with ServerThread(create_app(make_settings(database_url), run_worker=False)) as running:
        response = httpx.post(f"{running.url}/api/github/webhooks", content=body,
                              headers=headers(WEBHOOK_SECRET, "issues", body, "bad-installation"), timeout=10)
        assert response.status_code == 400, response.text
        assert "installation.id" in response.json()["message"]
        largest = body.replace(installation, b'{"id": 9223372036854775807}')
        response = httpx.post(f"{running.url}/api/github/webhooks", content=largest,
                              headers=headers(WEBHOOK_SECRET, "issues", largest, "largest"), timeout=10)
        assert response.status_code == 202, response.text
    assert [(row.id, row.installation_id) for row in stored(database_url)] == [("largest", 2**63 - 1)]
