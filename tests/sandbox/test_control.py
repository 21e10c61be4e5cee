"""The HTTP control API, driving a sandbox that runs in a separate process; unknown REST paths are violations."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from bot.sandbox import AppCredentials, Sandbox
from tests.sandbox.support import OWNER, REPO, Installed, app_jwt


def test_sandbox_as_a_separate_process(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.sandbox", "--root", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = json.loads(proc.stdout.readline())["url"]
        with httpx.Client(base_url=url, trust_env=False, timeout=30) as c:

            def call(verb: str, **kwargs: object) -> object:
                r = c.post(f"/_sandbox/call/{verb}", json=kwargs)
                assert r.status_code == 200, r.text
                return r.json()["result"]

            creds = call("create_app", name="Kickoff")
            assert isinstance(creds, dict)
            call("create_repo", owner=OWNER, name=REPO, files={"README.md": "hi\n"})
            installation_id = call("install", app_id=creds["app_id"], owner=OWNER)
            number = call("open_issue", owner=OWNER, repo=REPO, title="Remote", sender="alice")
            call("add_label", owner=OWNER, repo=REPO, number=number, label="agent:fix", sender="alice")
            call("wait_idle")
            token = call("installation_token", installation_id=installation_id)
            issue = c.get(f"/repos/{OWNER}/{REPO}/issues/{number}", headers={"Authorization": f"token {token}"})
            assert [label["name"] for label in issue.json()["labels"]] == ["agent:fix"]
            assert c.post("/_sandbox/call/no_such_verb", json={}).status_code == 404
            assert c.post("/_sandbox/call/open_issue", json={"owner": "x"}).status_code == 422
            paused = c.post("/_sandbox/webhooks/pause", params={"drop": "true"})
            assert paused.json() == {"paused": True, "drop": True}
            c.post("/_sandbox/webhooks/resume")
            kinds = {r["kind"] for r in c.get("/_sandbox/requests").json()}
            assert kinds == {"control", "rest"}
            state = c.get("/_sandbox/state").json()
            assert state["repos"][0]["clone_url"] == f"{url}/{OWNER}/{REPO}.git"
            assert c.get("/_sandbox/violations").json() == []
            me = c.get("/app", headers={"Authorization": f"Bearer {app_jwt_from(creds)}"})
            assert me.json()["id"] == creds["app_id"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "fidelity violation" not in err


def app_jwt_from(creds: dict[str, object]) -> str:
    return app_jwt(
        AppCredentials(int(str(creds["app_id"])), str(creds["slug"]), str(creds["private_key_pem"]), None, "", "")
    )


def test_unknown_rest_path_is_a_violation(sandbox: Sandbox, client: httpx.Client, installed: Installed) -> None:
    r = client.get(f"/repos/{OWNER}/{REPO}/not-a-thing", headers=installed.headers)
    assert r.status_code == 404
    assert r.json()["message"] == "Not Found"
    [violation] = sandbox.take_violations()
    assert violation.where == f"GET /repos/{OWNER}/{REPO}/not-a-thing"


def test_bad_request_bodies_are_recorded(sandbox: Sandbox, client: httpx.Client, installed: Installed) -> None:
    r = client.post(f"/repos/{OWNER}/{REPO}/issues", headers=installed.headers, json={"title": "x", "labels": "oops"})
    assert r.status_code == 422
    violations = sandbox.take_violations()
    assert any("request body" in p for v in violations for p in v.problems)
