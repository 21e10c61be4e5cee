"""Webhooks out: signed, in order, retried, listed and redelivered through /app/hook/deliveries."""

from __future__ import annotations

from pathlib import Path

import httpx

from bot.sandbox import Sandbox, SandboxServer
from tests.sandbox.support import OWNER, REPO, Installed, Receiver, app_jwt


def test_deliveries_are_signed_and_shaped(sandbox: Sandbox, hooked: Installed, receiver: Receiver) -> None:
    number = sandbox.open_issue(OWNER, REPO, "Signed", sender="alice")
    sandbox.wait_idle()
    [got] = receiver.wait_for(1)
    assert receiver.bad_signatures == 0
    h = got.headers
    assert h["x-github-event"] == "issues"
    assert h["user-agent"] == "GitHub-Hookshot/sandbox"
    assert h["content-type"] == "application/json"
    assert h["x-github-hook-installation-target-id"] == str(hooked.creds.app_id)
    assert len(h["x-github-delivery"]) == 36
    body = got.payload
    assert body["action"] == "opened"
    assert body["issue"]["number"] == number
    assert body["repository"]["full_name"] == f"{OWNER}/{REPO}"
    assert body["sender"]["login"] == "alice"
    assert set(body["installation"]) == {"id", "node_id"}
    [delivery] = sandbox.deliveries(hooked.creds.app_id)
    assert (delivery.status, delivery.status_code, delivery.guid) == ("OK", 202, h["x-github-delivery"])


def test_deliveries_keep_their_order(sandbox: Sandbox, hooked: Installed, receiver: Receiver) -> None:
    number = sandbox.open_issue(OWNER, REPO, "Ordered")
    for i in range(10):
        sandbox.comment(OWNER, REPO, number, f"#{i}")
    sandbox.wait_idle()
    bodies = [r.payload["comment"]["body"] for r in receiver.received if r.event == "issue_comment"]
    assert bodies == [f"#{i}" for i in range(10)]


def test_retried_after_500_then_listed_as_delivered(
    sandbox: Sandbox, client: httpx.Client, hooked: Installed, receiver: Receiver
) -> None:
    receiver.fail_with = [500, 502]
    sandbox.open_issue(OWNER, REPO, "Flaky receiver")
    sandbox.wait_idle()
    assert len(receiver.wait_for(1)) == 1
    [delivery] = sandbox.deliveries(hooked.creds.app_id)
    assert [a.status_code for a in delivery.attempts] == [500, 502, 202]
    listed = client.get("/app/hook/deliveries", headers=hooked.jwt_headers).json()
    assert [(d["status"], d["status_code"], d["event"], d["action"]) for d in listed] == [
        ("OK", 202, "issues", "opened")
    ]


def test_failed_delivery_is_redelivered_with_the_same_guid(
    sandbox: Sandbox, client: httpx.Client, hooked: Installed, receiver: Receiver
) -> None:
    receiver.stop()  # Kickoff is down: connection refused, retried, then given up
    sandbox.open_issue(OWNER, REPO, "Nobody listening")
    sandbox.wait_idle()
    h = hooked.jwt_headers
    [failed] = client.get("/app/hook/deliveries", headers=h).json()
    assert failed["status_code"] == 0
    assert failed["status"] != "OK"
    assert failed["redelivery"] is False
    assert client.get("/app/hook/deliveries", headers=h, params={"status": "success"}).json() == []
    detail = client.get(f"/app/hook/deliveries/{failed['id']}", headers=h).json()
    assert detail["request"]["payload"]["issue"]["title"] == "Nobody listening"
    assert detail["request"]["headers"]["X-GitHub-Delivery"] == failed["guid"]

    receiver.start()  # back, on the same port
    r = client.post(f"/app/hook/deliveries/{failed['id']}/attempts", headers=h)
    assert r.status_code == 202
    sandbox.wait_idle()
    [got] = receiver.wait_for(1)
    assert got.headers["x-github-delivery"] == failed["guid"]
    assert got.payload["issue"]["title"] == "Nobody listening"
    newest, oldest = client.get("/app/hook/deliveries", headers=h).json()
    assert (newest["guid"], newest["redelivery"], newest["status_code"]) == (failed["guid"], True, 202)
    assert oldest["id"] == failed["id"]


def test_deliveries_api_is_jwt_only_and_paginates(
    sandbox: Sandbox, client: httpx.Client, hooked: Installed, receiver: Receiver
) -> None:
    number = sandbox.open_issue(OWNER, REPO, "Many")
    for i in range(4):
        sandbox.comment(OWNER, REPO, number, str(i))
    sandbox.wait_idle()
    assert client.get("/app/hook/deliveries", headers=hooked.headers).status_code == 401
    h = hooked.jwt_headers
    first = client.get("/app/hook/deliveries", headers=h, params={"per_page": 2})
    assert len(first.json()) == 2
    seen = [d["id"] for d in first.json()]
    nxt: str | None = first.links["next"]["url"]
    while nxt:
        page = client.get(nxt, headers=h)
        seen += [d["id"] for d in page.json()]
        nxt = page.links.get("next", {}).get("url")
    assert seen == sorted(seen, reverse=True)
    assert len(seen) == 5
    other = sandbox.create_app("Other")
    others = client.get("/app/hook/deliveries", headers={"Authorization": f"Bearer {app_jwt(other)}"})
    assert others.json() == []
    assert (
        client.get(f"/app/hook/deliveries/{seen[0]}", headers={"Authorization": f"Bearer {app_jwt(other)}"}).status_code
        == 404
    )


def test_pause_holds_and_resume_sends(sandbox: Sandbox, hooked: Installed, receiver: Receiver) -> None:
    sandbox.pause_webhooks()
    sandbox.open_issue(OWNER, REPO, "Held")
    sandbox.wait_idle()  # held deliveries do not count as pending
    assert receiver.received == []
    sandbox.resume_webhooks()
    sandbox.wait_idle()
    assert receiver.events() == [("issues", "opened")]

    sandbox.pause_webhooks(drop=True)
    sandbox.open_issue(OWNER, REPO, "Dropped")
    sandbox.wait_idle()
    sandbox.resume_webhooks()
    sandbox.wait_idle()
    assert len(receiver.received) == 1
    assert sandbox.deliveries()[-1].status_code == 0


def test_no_retries_when_configured(tmp_path: Path, receiver: Receiver) -> None:
    with Sandbox(tmp_path, retry_delays=()) as sb, SandboxServer(sb):
        creds = sb.create_app("Kickoff", webhook_url=receiver.url)
        assert creds.webhook_secret
        receiver.secret = creds.webhook_secret
        receiver.fail_with = [500]
        sb.create_repo(OWNER, REPO)
        sb.install(creds.app_id, OWNER)
        sb.wait_idle()
        [delivery] = sb.deliveries()
        assert delivery.event == "installation"
        assert [a.status_code for a in delivery.attempts] == [500]
        assert receiver.received == []
        assert sb.violations == []


def test_installation_created_is_announced(sandbox: Sandbox, receiver: Receiver) -> None:
    creds = sandbox.create_app("Fresh", webhook_url=receiver.url)
    assert creds.webhook_secret
    receiver.secret = creds.webhook_secret
    sandbox.create_repo(OWNER, REPO)
    sandbox.create_repo(OWNER, "second")
    installation_id = sandbox.install(creds.app_id, OWNER, [REPO], sender="admin")
    sandbox.wait_idle()
    [got] = receiver.wait_for(1)
    assert (got.event, got.action) == ("installation", "created")
    assert got.payload["installation"]["id"] == installation_id
    assert [r["full_name"] for r in got.payload["repositories"]] == [f"{OWNER}/{REPO}"]
    assert got.payload["sender"]["login"] == "admin"
