"""Pull requests on real git: create, get, list, update, update-branch, merge (merge, squash, rebase), reviews."""

from __future__ import annotations

from typing import Any

import httpx

from bot.sandbox import Sandbox
from tests.sandbox.support import OWNER, REPO, Installed, Receiver, bare_git

BASE = f"/repos/{OWNER}/{REPO}"


def open_pr(client: httpx.Client, installed: Installed, head: str, **extra: object) -> dict[str, Any]:
    body = {"title": f"Change {head}", "head": head, "base": "main", "body": "Fixes #1", **extra}
    r = client.post(f"{BASE}/pulls", headers=installed.headers, json=body)
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


def test_create_validates_like_github(sandbox: Sandbox, client: httpx.Client, installed: Installed) -> None:
    h = installed.headers
    r = client.post(f"{BASE}/pulls", headers=h, json={"title": "x", "head": "missing", "base": "main"})
    assert r.status_code == 422
    assert r.json()["message"] == "Validation Failed"
    assert r.json()["errors"] == [{"resource": "PullRequest", "field": "head", "code": "invalid"}]
    sandbox.push_commit(OWNER, REPO, "feature", {"f.txt": "f\n"})
    r = client.post(f"{BASE}/pulls", headers=h, json={"title": "x", "head": "feature", "base": "nope"})
    assert r.json()["errors"][0]["field"] == "base"
    sandbox.push_commit(OWNER, REPO, "empty", {}, base="main")  # a commit with no change, still ahead
    bare_git(sandbox, "update-ref", "refs/heads/same", bare_git(sandbox, "rev-parse", "main"))
    r = client.post(f"{BASE}/pulls", headers=h, json={"title": "x", "head": "same", "base": "main"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["message"] == "No commits between main and same"
    open_pr(client, installed, "feature")
    r = client.post(f"{BASE}/pulls", headers=h, json={"title": "again", "head": f"{OWNER}:feature", "base": "main"})
    assert r.status_code == 422
    assert "already exists" in r.json()["errors"][0]["message"]


def test_get_list_and_update(sandbox: Sandbox, client: httpx.Client, hooked: Installed, receiver: Receiver) -> None:
    h = hooked.headers
    head_sha = sandbox.push_commit(OWNER, REPO, "kickoff/1-fix-claude-1", {"src/app.py": "print('fixed')\n"})
    pr = open_pr(client, hooked, "kickoff/1-fix-claude-1", draft=True)
    number = pr["number"]
    got = client.get(f"{BASE}/pulls/{number}", headers=h).json()
    assert got["head"]["sha"] == head_sha
    assert got["base"]["sha"] == bare_git(sandbox, "rev-parse", "main")
    assert got["mergeable"] is True
    assert got["mergeable_state"] == "draft"
    assert got["merged"] is False
    assert got["draft"] is True
    assert (got["commits"], got["additions"], got["deletions"], got["changed_files"]) == (1, 1, 1, 1)

    sandbox.set_draft(OWNER, REPO, number, False, sender="alice")
    assert client.get(f"{BASE}/pulls/{number}", headers=h).json()["mergeable_state"] == "clean"

    sandbox.push_commit(OWNER, REPO, "other", {"o.txt": "o\n"})
    other = open_pr(client, hooked, "other")
    listed = client.get(f"{BASE}/pulls", headers=h).json()
    assert [p["number"] for p in listed] == [other["number"], number]
    by_head = client.get(f"{BASE}/pulls", headers=h, params={"head": f"{OWNER}:other"}).json()
    assert [p["number"] for p in by_head] == [other["number"]]
    assert client.get(f"{BASE}/pulls", headers=h, params={"base": "develop"}).json() == []

    r = client.patch(f"{BASE}/pulls/{number}", headers=h, json={"title": "fix: crash (#1) [claude]", "body": "new"})
    assert r.json()["title"] == "fix: crash (#1) [claude]"
    r = client.patch(f"{BASE}/pulls/{other['number']}", headers=h, json={"state": "closed"})
    assert r.json()["state"] == "closed"
    assert r.json()["merged"] is False
    closed = client.get(f"{BASE}/pulls", headers=h, params={"state": "closed"}).json()
    assert [p["number"] for p in closed] == [other["number"]]
    r = client.patch(f"{BASE}/pulls/{other['number']}", headers=h, json={"state": "open"})
    assert r.json()["state"] == "open"
    issue = client.get(f"{BASE}/issues/{number}", headers=h).json()
    assert issue["pull_request"]["url"].endswith(f"/pulls/{number}")

    sandbox.wait_idle()
    actions = [r.action for r in receiver.received if r.event == "pull_request"]
    assert actions == ["opened", "ready_for_review", "opened", "edited", "closed", "reopened"]
    edited = next(r.payload for r in receiver.received if r.action == "edited")
    assert edited["changes"]["title"]["from"] == "Change kickoff/1-fix-claude-1"
    assert edited["changes"]["body"]["from"] == "Fixes #1"


def test_update_branch_merges_base_for_real(sandbox: Sandbox, client: httpx.Client, installed: Installed) -> None:
    h = installed.headers
    head_before = sandbox.push_commit(OWNER, REPO, "feature", {"feature.txt": "f\n"})
    number = open_pr(client, installed, "feature")["number"]
    r = client.put(f"{BASE}/pulls/{number}/update-branch", headers=h)
    assert r.status_code == 422
    assert r.json()["message"] == "There are no new commits on the base branch."

    base_after = sandbox.push_commit(OWNER, REPO, "main", {"main.txt": "m\n"})
    r = client.put(f"{BASE}/pulls/{number}/update-branch", headers=h, json={"expected_head_sha": "0" * 40})
    assert r.status_code == 422
    r = client.put(f"{BASE}/pulls/{number}/update-branch", headers=h, json={"expected_head_sha": head_before})
    assert r.status_code == 202
    assert r.json()["message"] == "Updating pull request branch."
    new_head = bare_git(sandbox, "rev-parse", "refs/heads/feature")
    parents = bare_git(sandbox, "rev-list", "--parents", "-n", "1", new_head).split()[1:]
    assert parents == [head_before, base_after]
    assert bare_git(sandbox, "show", f"{new_head}:main.txt") == "m"
    assert client.get(f"{BASE}/pulls/{number}", headers=h).json()["head"]["sha"] == new_head


def test_update_branch_conflict(sandbox: Sandbox, client: httpx.Client, installed: Installed) -> None:
    sandbox.push_commit(OWNER, REPO, "feature", {"README.md": "feature\n"})
    number = open_pr(client, installed, "feature")["number"]
    sandbox.push_commit(OWNER, REPO, "main", {"README.md": "main\n"})
    pr = client.get(f"{BASE}/pulls/{number}", headers=installed.headers).json()
    assert pr["mergeable"] is False
    assert pr["mergeable_state"] == "dirty"
    r = client.put(f"{BASE}/pulls/{number}/update-branch", headers=installed.headers)
    assert r.status_code == 422
    assert r.json()["message"] == "merge conflict between base and head"


def test_merge_commit(sandbox: Sandbox, client: httpx.Client, hooked: Installed, receiver: Receiver) -> None:
    h = hooked.headers
    head = sandbox.push_commit(OWNER, REPO, "feature", {"feature.txt": "f\n"})
    base = sandbox.push_commit(OWNER, REPO, "main", {"main.txt": "m\n"})
    number = open_pr(client, hooked, "feature")["number"]
    r = client.put(f"{BASE}/pulls/{number}/merge", headers=h, json={"sha": "f" * 40})
    assert r.status_code == 409
    r = client.put(f"{BASE}/pulls/{number}/merge", headers=h, json={"sha": head, "merge_method": "merge"})
    assert r.status_code == 200, r.text
    assert r.json()["merged"] is True
    merge_sha = r.json()["sha"]
    assert bare_git(sandbox, "rev-parse", "main") == merge_sha
    assert bare_git(sandbox, "rev-list", "--parents", "-n", "1", merge_sha).split()[1:] == [base, head]
    assert bare_git(sandbox, "log", "-1", "--format=%s", merge_sha) == f"Merge pull request #{number} from octo/feature"
    pr = client.get(f"{BASE}/pulls/{number}", headers=h).json()
    assert (pr["merged"], pr["state"], pr["merge_commit_sha"]) == (True, "closed", merge_sha)
    assert pr["merged_by"]["login"] == "kickoff[bot]"
    assert client.get(f"{BASE}/pulls/{number}/merge", headers=h).status_code == 204
    r = client.put(f"{BASE}/pulls/{number}/merge", headers=h)
    assert r.status_code == 405

    sandbox.wait_idle()
    closed = [x.payload for x in receiver.received if x.event == "pull_request" and x.action == "closed"]
    assert closed[0]["pull_request"]["merged"] is True
    pushes = [x.payload for x in receiver.received if x.event == "push"]
    assert pushes[-1]["ref"] == "refs/heads/main"
    assert pushes[-1]["after"] == merge_sha


def test_squash_and_rebase(sandbox: Sandbox, client: httpx.Client, installed: Installed) -> None:
    h = installed.headers
    sandbox.push_commit(OWNER, REPO, "squashme", {"a.txt": "1\n"}, "one")
    sandbox.push_commit(OWNER, REPO, "squashme", {"b.txt": "2\n"}, "two")
    head_tree = bare_git(sandbox, "rev-parse", "squashme^{tree}")
    number = open_pr(client, installed, "squashme")["number"]
    base = bare_git(sandbox, "rev-parse", "main")
    r = client.put(f"{BASE}/pulls/{number}/merge", headers=h, json={"merge_method": "squash"})
    squash = r.json()["sha"]
    assert bare_git(sandbox, "rev-list", "--parents", "-n", "1", squash).split()[1:] == [base]
    assert bare_git(sandbox, "rev-parse", f"{squash}^{{tree}}") == head_tree
    message = bare_git(sandbox, "log", "-1", "--format=%B", squash)
    assert message.splitlines()[0] == f"Change squashme (#{number})"
    assert "* one" in message
    assert "* two" in message

    sandbox.push_commit(OWNER, REPO, "rebaseme", {"c.txt": "3\n"}, "three", base="main")
    sandbox.push_commit(OWNER, REPO, "main", {"d.txt": "4\n"}, "four")
    number = open_pr(client, installed, "rebaseme")["number"]
    main_before = bare_git(sandbox, "rev-parse", "main")
    r = client.put(f"{BASE}/pulls/{number}/merge", headers=h, json={"merge_method": "rebase"})
    assert r.status_code == 200, r.text
    tip = r.json()["sha"]
    assert bare_git(sandbox, "rev-parse", "main") == tip
    assert bare_git(sandbox, "rev-parse", f"{tip}^") == main_before
    assert bare_git(sandbox, "log", "-1", "--format=%s%n%cn", tip).splitlines() == ["three", "GitHub"]
    assert bare_git(sandbox, "show", f"{tip}:c.txt") == "3"


def test_merge_conflict_is_405(sandbox: Sandbox, client: httpx.Client, installed: Installed) -> None:
    sandbox.push_commit(OWNER, REPO, "feature", {"README.md": "feature\n"})
    number = open_pr(client, installed, "feature")["number"]
    main = sandbox.push_commit(OWNER, REPO, "main", {"README.md": "main\n"})
    for method in ("merge", "squash", "rebase"):
        r = client.put(f"{BASE}/pulls/{number}/merge", headers=installed.headers, json={"merge_method": method})
        assert r.status_code == 405
        assert r.json()["message"] == "Pull Request is not mergeable"
    assert bare_git(sandbox, "rev-parse", "main") == main


def test_merge_needs_contents_write(sandbox: Sandbox, client: httpx.Client, installed: Installed) -> None:
    sandbox.push_commit(OWNER, REPO, "feature", {"x.txt": "x\n"})
    number = open_pr(client, installed, "feature")["number"]
    token = sandbox.installation_token(installed.installation_id, permissions={"pull_requests": "write"})
    r = client.put(f"{BASE}/pulls/{number}/merge", headers={"Authorization": f"token {token}"})
    assert r.status_code == 403


def test_files_reviews_and_reviewers(
    sandbox: Sandbox, client: httpx.Client, hooked: Installed, receiver: Receiver
) -> None:
    h = hooked.headers
    sandbox.set_permission(OWNER, REPO, "alice", "write")
    sandbox.push_commit(OWNER, REPO, "feature", {"src/app.py": "print('bye')\n", "NEW.md": "n\n", "README.md": None})
    number = open_pr(client, hooked, "feature")["number"]
    files = client.get(f"{BASE}/pulls/{number}/files", headers=h).json()
    assert {f["filename"]: f["status"] for f in files} == {
        "NEW.md": "added",
        "README.md": "removed",
        "src/app.py": "modified",
    }
    app_py = next(f for f in files if f["filename"] == "src/app.py")
    assert app_py["patch"].startswith("@@")
    assert (app_py["additions"], app_py["deletions"]) == (1, 1)
    commits = client.get(f"{BASE}/pulls/{number}/commits", headers=h).json()
    assert len(commits) == 1

    r = client.post(f"{BASE}/pulls/{number}/requested_reviewers", headers=h, json={"reviewers": ["alice"]})
    assert r.status_code == 201
    assert [u["login"] for u in r.json()["requested_reviewers"]] == ["alice"]
    bad = client.post(f"{BASE}/pulls/{number}/requested_reviewers", headers=h, json={"reviewers": ["stranger"]})
    assert bad.status_code == 422
    listed = client.get(f"{BASE}/pulls/{number}/requested_reviewers", headers=h).json()
    assert [u["login"] for u in listed["users"]] == ["alice"]

    # The App authored the PR: it may comment but not approve.
    own = client.post(f"{BASE}/pulls/{number}/reviews", headers=h, json={"event": "APPROVE"})
    assert own.status_code == 422
    r = client.post(
        f"{BASE}/pulls/{number}/reviews",
        headers=h,
        json={"event": "COMMENT", "body": "Self-check", "comments": [{"path": "NEW.md", "line": 1, "body": "why?"}]},
    )
    assert r.status_code == 200
    assert r.json()["state"] == "COMMENTED"
    sandbox.review(OWNER, REPO, number, "alice", "REQUEST_CHANGES", "not yet")
    assert sandbox.review_decision(OWNER, REPO, number) == "CHANGES_REQUESTED"
    sandbox.approve(OWNER, REPO, number, "alice")
    assert sandbox.review_decision(OWNER, REPO, number) == "APPROVED"
    reviews = client.get(f"{BASE}/pulls/{number}/reviews", headers=h).json()
    assert [(x["user"]["login"], x["state"]) for x in reviews] == [
        ("kickoff[bot]", "COMMENTED"),
        ("alice", "CHANGES_REQUESTED"),
        ("alice", "APPROVED"),
    ]
    comments = client.get(f"{BASE}/pulls/{number}/comments", headers=h).json()
    assert [(c["path"], c["body"]) for c in comments] == [("NEW.md", "why?")]
    assert client.get(f"{BASE}/pulls/{number}/requested_reviewers", headers=h).json()["users"] == []

    sandbox.wait_idle()
    submitted = [x.payload for x in receiver.received if x.event == "pull_request_review"]
    assert [p["review"]["state"] for p in submitted] == ["commented", "changes_requested", "approved"]
    assert submitted[-1]["sender"]["login"] == "alice"
    assert ("pull_request", "review_requested") in receiver.events()


def test_branch_protection_blocks_the_merge(sandbox: Sandbox, client: httpx.Client, installed: Installed) -> None:
    h = installed.headers
    sandbox.protect_branch(OWNER, REPO, "main", required_checks=["ci"], required_approvals=1, strict=True)
    sandbox.set_permission(OWNER, REPO, "alice", "write")
    sandbox.set_ci(OWNER, REPO, ["true"])
    sandbox.push_commit(OWNER, REPO, "feature", {"x.txt": "x\n"})
    number = open_pr(client, installed, "feature")["number"]
    sandbox.wait_idle()
    assert client.get(f"{BASE}/pulls/{number}", headers=h).json()["mergeable_state"] == "blocked"
    r = client.put(f"{BASE}/pulls/{number}/merge", headers=h)
    assert r.status_code == 405
    assert "At least 1 approving review is required" in r.json()["message"]

    sandbox.approve(OWNER, REPO, number, "alice")
    assert client.get(f"{BASE}/pulls/{number}", headers=h).json()["mergeable_state"] == "clean"
    sandbox.push_commit(OWNER, REPO, "main", {"m.txt": "m\n"})
    assert client.get(f"{BASE}/pulls/{number}", headers=h).json()["mergeable_state"] == "behind"
    assert "out of date" in client.put(f"{BASE}/pulls/{number}/merge", headers=h).json()["message"]

    client.put(f"{BASE}/pulls/{number}/update-branch", headers=h)
    sandbox.wait_idle()  # CI runs again on the new head
    assert client.get(f"{BASE}/pulls/{number}", headers=h).json()["mergeable_state"] == "clean"
    assert client.put(f"{BASE}/pulls/{number}/merge", headers=h).status_code == 200


def test_pull_request_webhooks_for_labels_drafts_and_deleted_heads(
    sandbox: Sandbox, client: httpx.Client, hooked: Installed, receiver: Receiver
) -> None:
    h = hooked.headers
    sandbox.push_commit(OWNER, REPO, "feature", {"x.txt": "x\n"})
    number = open_pr(client, hooked, "feature")["number"]
    client.post(f"{BASE}/issues/{number}/labels", headers=h, json={"labels": ["kickoff"]})
    client.delete(f"{BASE}/issues/{number}/labels/kickoff", headers=h)
    sandbox.set_draft(OWNER, REPO, number, True)
    client.patch(f"{BASE}/pulls/{number}", headers=h, json={"base": "main"})
    sandbox.push_commit(OWNER, REPO, "develop", {"d.txt": "d\n"})
    client.patch(f"{BASE}/pulls/{number}", headers=h, json={"base": "develop"})
    client.delete(f"/repos/{OWNER}/{REPO}/git/refs/heads/feature", headers=h)
    pr = client.get(f"{BASE}/pulls/{number}", headers=h).json()
    assert pr["state"] == "closed"
    assert pr["base"]["ref"] == "develop"
    r = client.patch(f"{BASE}/pulls/{number}", headers=h, json={"state": "open"})
    assert r.status_code == 422
    sandbox.wait_idle()
    actions = [r.action for r in receiver.received if r.event == "pull_request"]
    assert actions == ["opened", "labeled", "unlabeled", "converted_to_draft", "edited", "closed"]
    edited = next(r.payload for r in receiver.received if r.action == "edited")
    assert edited["changes"]["base"]["ref"]["from"] == "main"
    assert ("issues", "labeled") not in receiver.events()
