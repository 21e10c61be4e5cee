"""The App-manifest flow: the fake settings page issues a one-hour, single-use code; conversion returns the App."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from bot.sandbox import AppCredentials, FakeClock, Sandbox, SandboxServer
from tests.sandbox.support import app_jwt

MANIFEST = {
    "name": "Kickoff Demo",
    "url": "https://kickoff.example",
    "hook_attributes": {"url": "https://kickoff.example/api/github/webhooks"},
    "redirect_url": "http://localhost:3000/setup/callback",
    "public": False,
    "default_permissions": {"issues": "write", "pull_requests": "write", "contents": "write", "checks": "write"},
    "default_events": ["issues", "issue_comment", "pull_request"],
}


def start_flow(client: httpx.Client, manifest: dict[str, object] = MANIFEST) -> str:
    r = client.post("/settings/apps/new", params={"state": "xyz"}, data={"manifest": json.dumps(manifest)})
    assert r.status_code == 302
    target = urlsplit(r.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == MANIFEST["redirect_url"]
    query = parse_qs(target.query)
    assert query["state"] == ["xyz"]
    return query["code"][0]


def test_manifest_conversion_is_single_use(sandbox: Sandbox, client: httpx.Client) -> None:
    code = start_flow(client)
    r = client.post(f"/app-manifests/{code}/conversions")
    assert r.status_code == 201
    app = r.json()
    assert app["name"] == "Kickoff Demo"
    assert app["slug"] == "kickoff-demo"
    assert app["pem"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert app["webhook_secret"]
    assert app["client_id"]
    assert app["client_secret"]
    assert app["html_url"].endswith("/apps/kickoff-demo")
    assert app["permissions"]["issues"] == "write"
    assert app["events"] == ["issues", "issue_comment", "pull_request"]
    assert client.post(f"/app-manifests/{code}/conversions").status_code == 404

    # The PEM works as the App's key.
    creds = AppCredentials(app["id"], app["slug"], app["pem"], app["webhook_secret"], app["client_id"], "")
    me = client.get("/app", headers={"Authorization": f"Bearer {app_jwt(creds)}"}).json()
    assert me["id"] == app["id"]


def test_bad_manifest_and_unknown_code(sandbox: Sandbox, client: httpx.Client) -> None:
    r = client.post("/settings/apps/new", data={"manifest": "{not json"})
    assert r.status_code == 422
    assert client.post("/app-manifests/deadbeef/conversions").status_code == 404


def test_manifest_code_expires_after_an_hour(tmp_path: Path) -> None:
    clock = FakeClock()
    with Sandbox(tmp_path, clock=clock) as sb, SandboxServer(sb) as base, httpx.Client(base_url=base) as c:
        code = start_flow(c)
        clock.advance(3601)
        assert c.post(f"/app-manifests/{code}/conversions").status_code == 404
        assert sb.violations == []
