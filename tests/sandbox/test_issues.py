"""Issues, comments (with Link pagination), labels and reactions; each change announced by its webhook."""

from __future__ import annotations

import httpx

from bot.sandbox import Sandbox
from tests.sandbox.support import OWNER, REPO, Installed, Receiver

BASE = f"/repos/{OWNER}/{REPO}"


def test_issue_create_get_update(sandbox: Sandbox, client: httpx.Client, hooked: Installed, receiver: Receiver) -> None:
    h = hooked.headers
    r = client.post(f"{BASE}/issues", headers=h, json={"title": "Crash on start", "body": "boom"})
    assert r.status_code == 201
    issue = r.json()
    assert issue["number"] == 1
    assert issue["user"]["login"] == "kickoff[bot]"
    assert r.headers["Location"].endswith(f"{BASE}/issues/1")

    r = client.patch(f"{BASE}/issues/1", headers=h, json={"title": "Crash at start", "state": "closed"})
    assert r.status_code == 200
    assert r.json()["title"] == "Crash at start"
    assert r.json()["state"] == "closed"
    assert r.json()["state_reason"] == "completed"
    assert client.get(f"{BASE}/issues/1", headers=h).json()["closed_by"]["login"] == "kickoff[bot]"
    assert client.get(f"{BASE}/issues/99", headers=h).status_code == 404

    r = client.post(f"{BASE}/issues", headers=h, json={"body": "no title"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "title"
    sandbox.take_violations()  # the request above broke the schema on purpose

    sandbox.wait_idle()
    assert receiver.events() == [("issues", "opened"), ("issues", "edited"), ("issues", "closed")]
    edited = receiver.received[1].payload
    assert edited["changes"] == {"title": {"from": "Crash on start"}}
    assert edited["sender"]["login"] == "kickoff[bot]"


def test_comments_crud_and_pagination(
    sandbox: Sandbox, client: httpx.Client, hooked: Installed, receiver: Receiver
) -> None:
    h = hooked.headers
    number = sandbox.open_issue(OWNER, REPO, "Discuss", sender="alice")
    ids = [sandbox.comment(OWNER, REPO, number, f"comment {i}", sender="alice") for i in range(5)]

    r = client.get(f"{BASE}/issues/{number}/comments", headers=h, params={"per_page": 2})
    assert [c["body"] for c in r.json()] == ["comment 0", "comment 1"]
    links = r.links
    assert set(links) == {"next", "last"}
    assert "page=2" in links["next"]["url"]
    assert "page=3" in links["last"]["url"]
    r = client.get(links["last"]["url"], headers=h)
    assert [c["body"] for c in r.json()] == ["comment 4"]
    assert set(r.links) == {"prev", "first"}

    r = client.post(f"{BASE}/issues/{number}/comments", headers=h, json={"body": "Starting 2 runs"})
    assert r.status_code == 201
    mine = r.json()["id"]
    assert r.json()["performed_via_github_app"]["slug"] == "kickoff"
    r = client.patch(f"{BASE}/issues/comments/{mine}", headers=h, json={"body": "Runs finished"})
    assert r.json()["body"] == "Runs finished"
    assert client.get(f"{BASE}/issues/comments/{mine}", headers=h).json()["body"] == "Runs finished"
    assert client.delete(f"{BASE}/issues/comments/{ids[0]}", headers=h).status_code == 204
    assert client.get(f"{BASE}/issues/comments/{ids[0]}", headers=h).status_code == 404
    assert client.get(f"{BASE}/issues/{number}", headers=h).json()["comments"] == 5

    sandbox.wait_idle()
    comment_events = [(e, a) for e, a in receiver.events() if e == "issue_comment"]
    assert comment_events == [("issue_comment", "created")] * 6 + [
        ("issue_comment", "edited"),
        ("issue_comment", "deleted"),
    ]
    edited = next(r for r in receiver.received if r.action == "edited" and r.event == "issue_comment").payload
    assert edited["changes"]["body"]["from"] == "Starting 2 runs"
    first = next(r for r in receiver.received if r.event == "issue_comment").payload
    assert first["sender"]["login"] == "alice"
    assert first["issue"]["number"] == number


def test_labels(sandbox: Sandbox, client: httpx.Client, hooked: Installed, receiver: Receiver) -> None:
    h = hooked.headers
    number = sandbox.open_issue(OWNER, REPO, "Labelled")
    r = client.post(f"{BASE}/labels", headers=h, json={"name": "agent:fix", "color": "5319e7"})
    assert r.status_code == 201
    assert client.post(f"{BASE}/labels", headers=h, json={"name": "agent:fix"}).status_code == 422
    sandbox.add_label(OWNER, REPO, number, "agent:fix", sender="maintainer")
    r = client.post(f"{BASE}/issues/{number}/labels", headers=h, json={"labels": ["kickoff", "agent:fix"]})
    assert [label["name"] for label in r.json()] == ["agent:fix", "kickoff"]
    assert client.get(f"{BASE}/labels/kickoff", headers=h).status_code == 200
    r = client.delete(f"{BASE}/issues/{number}/labels/agent:fix", headers=h)
    assert [label["name"] for label in r.json()] == ["kickoff"]
    r = client.delete(f"{BASE}/issues/{number}/labels/nope", headers=h)
    assert r.status_code == 404
    assert r.json()["message"] == "Label does not exist"
    client.post(f"{BASE}/issues/{number}/labels", headers=h, json={"labels": ["area/ui"]})
    assert client.get(f"{BASE}/labels/area%2Fui", headers=h).json()["name"] == "area/ui"
    assert client.delete(f"{BASE}/issues/{number}/labels/area%2Fui", headers=h).status_code == 200
    listed = client.get(f"{BASE}/issues/{number}/labels", headers=h).json()
    assert [label["name"] for label in listed] == ["kickoff"]
    assert "agent:fix" in [label["name"] for label in client.get(f"{BASE}/labels", headers=h).json()]

    sandbox.wait_idle()
    labeled = [
        (r.action, r.payload["label"]["name"], r.payload["sender"]["login"])
        for r in receiver.received
        if r.event == "issues" and r.action in ("labeled", "unlabeled")
    ]
    assert labeled == [
        ("labeled", "agent:fix", "maintainer"),
        ("labeled", "kickoff", "kickoff[bot]"),
        ("unlabeled", "agent:fix", "kickoff[bot]"),
        ("labeled", "area/ui", "kickoff[bot]"),
        ("unlabeled", "area/ui", "kickoff[bot]"),
    ]


def test_reactions(sandbox: Sandbox, client: httpx.Client, installed: Installed) -> None:
    h = installed.headers
    number = sandbox.open_issue(OWNER, REPO, "React to me")
    comment_id = sandbox.comment(OWNER, REPO, number, "/agent fix", sender="alice")
    r = client.post(f"{BASE}/issues/comments/{comment_id}/reactions", headers=h, json={"content": "eyes"})
    assert r.status_code == 201
    again = client.post(f"{BASE}/issues/comments/{comment_id}/reactions", headers=h, json={"content": "eyes"})
    assert again.status_code == 200
    assert again.json()["id"] == r.json()["id"]
    assert client.post(f"{BASE}/issues/{number}/reactions", headers=h, json={"content": "rocket"}).status_code == 201
    sandbox.react(OWNER, REPO, number=number, content="+1", sender="bob")
    listed = client.get(f"{BASE}/issues/comments/{comment_id}/reactions", headers=h).json()
    assert [(x["content"], x["user"]["login"]) for x in listed] == [("eyes", "kickoff[bot]")]
    issue = client.get(f"{BASE}/issues/{number}", headers=h).json()
    assert issue["reactions"]["total_count"] == 2
    assert issue["reactions"]["rocket"] == 1
    comment = client.get(f"{BASE}/issues/comments/{comment_id}", headers=h).json()
    assert comment["reactions"]["eyes"] == 1
    r = client.delete(f"{BASE}/issues/comments/{comment_id}/reactions/{r.json()['id']}", headers=h)
    assert r.status_code == 204
    assert client.get(f"{BASE}/issues/comments/{comment_id}/reactions", headers=h).json() == []
    bad = client.post(f"{BASE}/issues/{number}/reactions", headers=h, json={"content": "party"})
    assert bad.status_code == 422
    sandbox.take_violations()  # "party" is not a reaction: the request broke the schema on purpose


def test_issue_events_need_the_issues_permission(sandbox: Sandbox, receiver: Receiver) -> None:
    creds = sandbox.create_app("Reader", permissions={"contents": "read"}, webhook_url=receiver.url)
    assert creds.webhook_secret
    receiver.secret = creds.webhook_secret
    sandbox.create_repo(OWNER, REPO)
    sandbox.install(creds.app_id, OWNER)
    sandbox.open_issue(OWNER, REPO, "Not for you")
    sandbox.push_commit(OWNER, REPO, "main", {"a": "b"})
    sandbox.wait_idle()
    assert receiver.events() == [("installation", "created"), ("push", None)]


def test_labels_given_at_creation_are_announced(
    sandbox: Sandbox, client: httpx.Client, hooked: Installed, receiver: Receiver
) -> None:
    r = client.post(f"{BASE}/issues", headers=hooked.headers, json={"title": "Go", "labels": ["agent:research"]})
    assert [label["name"] for label in r.json()["labels"]] == ["agent:research"]
    sandbox.open_issue(OWNER, REPO, "Also", sender="alice", labels=["agent:fix"])
    sandbox.wait_idle()
    assert receiver.events() == [("issues", "opened"), ("issues", "labeled")] * 2
    assert receiver.received[3].payload["label"]["name"] == "agent:fix"
    assert receiver.received[3].payload["sender"]["login"] == "alice"
