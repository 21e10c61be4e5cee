"""Reviews and permission, as on GitHub: anyone who can read a public repository may press "Approve", but the review
decision (and branch protection's required approvals) counts only reviewers who hold write access now."""

from __future__ import annotations

import httpx

from bot.sandbox import Sandbox
from tests.sandbox.support import OWNER, Installed

PUBLIC = "open"
BASE = f"/repos/{OWNER}/{PUBLIC}"


def as_user(sandbox: Sandbox, login: str) -> dict[str, str]:
    return {"Authorization": f"token {sandbox.user_token(login)}"}


def test_a_readers_approval_is_accepted_but_does_not_count(
    sandbox: Sandbox, client: httpx.Client, installed: Installed
) -> None:
    sandbox.create_repo(OWNER, PUBLIC, {"README.md": "p\n"}, private=False)
    sandbox.set_permission(OWNER, PUBLIC, "writer", "write")
    sandbox.protect_branch(OWNER, PUBLIC, "main", required_approvals=1)
    sandbox.push_commit(OWNER, PUBLIC, "feature", {"NEW.md": "n\n"})
    app = {"Authorization": f"token {sandbox.installation_token(installed.installation_id)}"}
    r = client.post(f"{BASE}/pulls", headers=app, json={"title": "Change", "head": "feature", "base": "main"})
    assert r.status_code == 201, r.text
    number = r.json()["number"]

    # A stranger (read, as everyone on a public repository) approves through the REST API: GitHub accepts it.
    r = client.post(f"{BASE}/pulls/{number}/reviews", headers=as_user(sandbox, "stranger"), json={"event": "APPROVE"})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "APPROVED"
    assert sandbox.review_decision(OWNER, PUBLIC, number) == "REVIEW_REQUIRED"
    refused = client.put(f"{BASE}/pulls/{number}/merge", headers=app, json={})
    assert refused.status_code == 405, refused.text

    # A stranger's change request does not block a writer's approval either.
    sandbox.review(OWNER, PUBLIC, number, "stranger", "REQUEST_CHANGES", "no")
    sandbox.approve(OWNER, PUBLIC, number, "writer")
    assert sandbox.review_decision(OWNER, PUBLIC, number) == "APPROVED"

    # The writer loses write access: their approval stops counting.
    sandbox.set_permission(OWNER, PUBLIC, "writer", "read")
    assert sandbox.review_decision(OWNER, PUBLIC, number) == "REVIEW_REQUIRED"
    refused = client.put(f"{BASE}/pulls/{number}/merge", headers=app, json={})
    assert refused.status_code == 405, refused.text


def test_a_private_repository_refuses_reviews_from_users_who_cannot_see_it(
    sandbox: Sandbox, client: httpx.Client, installed: Installed
) -> None:
    sandbox.create_repo(OWNER, "secret", {"README.md": "s\n"}, private=True)
    sandbox.push_commit(OWNER, "secret", "feature", {"NEW.md": "n\n"})
    number = sandbox.open_pull(OWNER, "secret", "feature", "main", "Change")
    r = client.post(
        f"/repos/{OWNER}/secret/pulls/{number}/reviews", headers=as_user(sandbox, "stranger"), json={"event": "APPROVE"}
    )
    assert r.status_code == 404
