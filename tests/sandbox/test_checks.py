"""Check runs (with GitHub's button limits), check suites, commit statuses, collaborator permission."""

from __future__ import annotations

import httpx
import pytest

from bot.sandbox import Sandbox
from tests.sandbox.support import OWNER, REPO, Installed, Receiver, bare_git

BASE = f"/repos/{OWNER}/{REPO}"
RETRY = {"label": "Retry", "description": "Run the agent again", "identifier": "retry"}


def test_check_run_lifecycle(sandbox: Sandbox, client: httpx.Client, hooked: Installed, receiver: Receiver) -> None:
    h = hooked.headers
    sha = sandbox.push_commit(OWNER, REPO, "feature", {"x.txt": "x\n"})
    number = sandbox.open_pull(OWNER, REPO, "feature", title="Feature")
    r = client.post(
        f"{BASE}/check-runs",
        headers=h,
        json={
            "name": "review-queue",
            "head_sha": sha,
            "status": "in_progress",
            "output": {"title": "2nd in queue", "summary": "Wait"},
        },
    )
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["status"] == "in_progress"
    assert run["app"]["id"] == hooked.creds.app_id
    assert [p["number"] for p in run["pull_requests"]] == [number]

    r = client.patch(
        f"{BASE}/check-runs/{run['id']}",
        headers=h,
        json={
            "conclusion": "success",
            "output": {"title": "Head of the queue", "summary": "Review me"},
            "actions": [RETRY],
        },
    )
    assert r.json()["status"] == "completed"
    assert r.json()["conclusion"] == "success"
    assert r.json()["output"]["title"] == "Head of the queue"
    assert client.get(f"{BASE}/check-runs/{run['id']}", headers=h).json()["completed_at"] is not None

    client.post(f"{BASE}/check-runs", headers=h, json={"name": "agent-run", "head_sha": sha, "conclusion": "failure"})
    listed = client.get(f"{BASE}/commits/feature/check-runs", headers=h).json()
    assert listed["total_count"] == 2
    named = client.get(f"{BASE}/commits/{sha}/check-runs", headers=h, params={"check_name": "review-queue"}).json()
    assert [c["id"] for c in named["check_runs"]] == [run["id"]]
    suites = client.get(f"{BASE}/commits/{sha}/check-suites", headers=h).json()
    assert suites["total_count"] == 1
    assert suites["check_suites"][0]["status"] == "completed"
    assert suites["check_suites"][0]["conclusion"] == "failure"
    suite_id = suites["check_suites"][0]["id"]
    assert client.get(f"{BASE}/check-suites/{suite_id}", headers=h).json()["latest_check_runs_count"] == 2

    sandbox.request_check_run_action(OWNER, REPO, run["id"], "retry", sender="alice")
    assert client.post(f"{BASE}/check-runs/{run['id']}/rerequest", headers=h).status_code == 201
    sandbox.wait_idle()
    checks = [(r.event, r.action) for r in receiver.received if r.event.startswith("check_")]
    assert checks == [
        ("check_run", "created"),
        ("check_run", "completed"),
        ("check_suite", "completed"),
        ("check_run", "created"),
        ("check_run", "completed"),
        ("check_suite", "completed"),
        ("check_run", "requested_action"),
        ("check_run", "rerequested"),
    ]
    clicked = next(r.payload for r in receiver.received if r.action == "requested_action")
    assert clicked["requested_action"] == {"identifier": "retry"}
    assert clicked["sender"]["login"] == "alice"


@pytest.mark.parametrize(
    "actions",
    [
        [RETRY, {**RETRY, "identifier": "b"}, {**RETRY, "identifier": "c"}, {**RETRY, "identifier": "d"}],
        [{**RETRY, "label": "A label that is far too long"}],
        [{**RETRY, "description": "d" * 41}],
        [{**RETRY, "identifier": "i" * 21}],
    ],
    ids=["four-buttons", "long-label", "long-description", "long-identifier"],
)
def test_check_run_button_limits(
    sandbox: Sandbox, client: httpx.Client, installed: Installed, actions: list[dict[str, str]]
) -> None:
    sha = bare_git(sandbox, "rev-parse", "main")
    body = {"name": "agent-run", "head_sha": sha, "conclusion": "success", "actions": actions}
    r = client.post(f"{BASE}/check-runs", headers=installed.headers, json=body)
    assert r.status_code == 422
    assert r.json()["message"] == "Validation Failed"
    assert r.json()["errors"]
    ok = client.post(f"{BASE}/check-runs", headers=installed.headers, json={**body, "actions": [RETRY]})
    assert ok.status_code == 201
    r = client.patch(f"{BASE}/check-runs/{ok.json()['id']}", headers=installed.headers, json={"actions": actions})
    assert r.status_code == 422
    sandbox.take_violations()  # the schema itself may reject these bodies: they were sent on purpose


def test_check_run_for_unknown_commit(sandbox: Sandbox, client: httpx.Client, installed: Installed) -> None:
    r = client.post(f"{BASE}/check-runs", headers=installed.headers, json={"name": "x", "head_sha": "a" * 40})
    assert r.status_code == 422


def test_statuses_and_combined_status(
    sandbox: Sandbox, client: httpx.Client, hooked: Installed, receiver: Receiver
) -> None:
    h = hooked.headers
    sha = bare_git(sandbox, "rev-parse", "main")
    assert client.get(f"{BASE}/commits/main/status", headers=h).json()["state"] == "pending"
    for state, context in [("pending", "ci/lint"), ("success", "ci/lint"), ("failure", "ci/test")]:
        r = client.post(f"{BASE}/statuses/{sha}", headers=h, json={"state": state, "context": context})
        assert r.status_code == 201
    combined = client.get(f"{BASE}/commits/{sha}/status", headers=h).json()
    assert combined["state"] == "failure"
    assert combined["total_count"] == 2
    assert {s["context"]: s["state"] for s in combined["statuses"]} == {"ci/lint": "success", "ci/test": "failure"}
    assert len(client.get(f"{BASE}/commits/main/statuses", headers=h).json()) == 3
    bad = client.post(f"{BASE}/statuses/{sha}", headers=h, json={"state": "great"})
    assert bad.status_code == 422
    sandbox.take_violations()  # on purpose
    sandbox.wait_idle()
    statuses = [r.payload for r in receiver.received if r.event == "status"]
    assert [(s["context"], s["state"]) for s in statuses] == [
        ("ci/lint", "pending"),
        ("ci/lint", "success"),
        ("ci/test", "failure"),
    ]
    assert statuses[0]["branches"][0]["name"] == "main"


def test_collaborator_permission(sandbox: Sandbox, client: httpx.Client, installed: Installed) -> None:
    sandbox.set_permission(OWNER, REPO, "maintainer", "maintain")
    sandbox.set_permission(OWNER, REPO, "writer", "write")
    sandbox.set_permission(OWNER, REPO, "triager", "triage")
    sandbox.comment(OWNER, REPO, sandbox.open_issue(OWNER, REPO, "hi"), "drive-by", sender="stranger")
    expected = {
        OWNER: ("admin", "admin"),
        "maintainer": ("write", "maintain"),
        "writer": ("write", "write"),
        "triager": ("read", "triage"),
        "stranger": ("none", "none"),
    }
    for login, (permission, role) in expected.items():
        r = client.get(f"{BASE}/collaborators/{login}/permission", headers=installed.headers)
        assert r.status_code == 200
        assert (r.json()["permission"], r.json()["role_name"]) == (permission, role), login
        assert r.json()["user"]["login"] == login
    sandbox.set_permission(OWNER, REPO, "writer", "none")
    r = client.get(f"{BASE}/collaborators/writer/permission", headers=installed.headers)
    assert r.json()["permission"] == "none"
    assert client.get(f"{BASE}/collaborators/nobody-at-all/permission", headers=installed.headers).status_code == 404
