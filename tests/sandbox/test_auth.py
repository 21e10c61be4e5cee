"""App JWTs and installation tokens are checked, scoped and expire as on GitHub."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import jwt

from bot.sandbox import FakeClock, Sandbox, SandboxServer
from bot.sandbox.auth import generate_key_pair
from tests.sandbox.support import OWNER, REPO, Installed, app_jwt


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_app_jwt_is_checked(sandbox: Sandbox, client: httpx.Client, installed: Installed) -> None:
    creds = installed.creds
    assert client.get("/app", headers=bearer(app_jwt(creds))).json()["id"] == creds.app_id

    other = generate_key_pair()
    forged = jwt.encode(
        {"iss": str(creds.app_id), "iat": int(time.time()) - 60, "exp": int(time.time()) + 500},
        other.private_pem,
        algorithm="RS256",
    )
    expired = app_jwt(creds, now=time.time() - 3600)
    too_long = app_jwt(creds, lifetime=3600)
    unknown_app = app_jwt(creds, iss="999999")
    for bad in (forged, expired, too_long, unknown_app, "not-a-jwt.at.all"):
        r = client.get("/app", headers=bearer(bad))
        assert r.status_code == 401, (bad, r.text)
        assert set(r.json()) >= {"message", "documentation_url"}

    r = client.get("/app")
    assert r.status_code == 401
    # An installation token is not an App JWT.
    assert client.get("/app", headers=installed.headers).status_code == 401


def test_wrong_app_key_is_rejected(sandbox: Sandbox, client: httpx.Client, installed: Installed) -> None:
    second = sandbox.create_app("Other")
    # Signed with the second App's key but claiming to be the first App.
    token = app_jwt(second, iss=str(installed.creds.app_id))
    assert client.get("/app", headers=bearer(token)).status_code == 401
    assert client.get("/app", headers=bearer(app_jwt(second))).json()["slug"] == "other"


def test_app_may_bring_its_own_public_key(sandbox: Sandbox, client: httpx.Client) -> None:
    pair = generate_key_pair()
    creds = sandbox.create_app("Byo", public_key_pem=pair.public_pem)
    assert creds.private_key_pem == ""
    now = int(time.time())
    claims = {"iss": str(creds.app_id), "iat": now - 60, "exp": now + 500}
    token = jwt.encode(claims, pair.private_pem, algorithm="RS256")
    r = client.get("/app", headers=bearer(token))
    assert r.status_code == 200
    assert r.json()["slug"] == "byo"


def test_installations_listing(sandbox: Sandbox, client: httpx.Client, installed: Installed) -> None:
    h = installed.jwt_headers
    listed = client.get("/app/installations", headers=h).json()
    assert [i["id"] for i in listed] == [installed.installation_id]
    one = client.get(f"/app/installations/{installed.installation_id}", headers=h).json()
    assert one["account"]["login"] == OWNER
    assert one["app_id"] == installed.creds.app_id
    assert client.get(f"/repos/{OWNER}/{REPO}/installation", headers=h).json()["id"] == installed.installation_id
    assert client.get("/app/installations/424242", headers=h).status_code == 404
    sandbox.create_repo("elsewhere", "x")
    assert client.get("/repos/elsewhere/x/installation", headers=h).status_code == 404


def test_both_authorization_schemes(client: httpx.Client, installed: Installed) -> None:
    for scheme in ("token", "Bearer"):
        r = client.get(f"/repos/{OWNER}/{REPO}", headers={"Authorization": f"{scheme} {installed.token}"})
        assert r.status_code == 200
    assert client.get(f"/repos/{OWNER}/{REPO}", headers={"Authorization": "token ghs_nope"}).status_code == 401
    # Private repositories are invisible without credentials.
    assert client.get(f"/repos/{OWNER}/{REPO}").status_code == 404


def test_token_repository_scope(sandbox: Sandbox, client: httpx.Client, installed: Installed) -> None:
    sandbox.create_repo(OWNER, "other", {"a.txt": "a"})
    r = client.post(
        f"/app/installations/{installed.installation_id}/access_tokens",
        headers=installed.jwt_headers,
        json={"repositories": [REPO]},
    )
    assert r.status_code == 201
    body = r.json()
    assert body["repository_selection"] == "selected"
    assert [repo["name"] for repo in body["repositories"]] == [REPO]
    scoped = {"Authorization": f"token {body['token']}"}
    assert client.get(f"/repos/{OWNER}/{REPO}", headers=scoped).status_code == 200
    assert client.get(f"/repos/{OWNER}/other", headers=scoped).status_code == 404
    assert client.post(f"/repos/{OWNER}/other/issues", headers=scoped, json={"title": "x"}).status_code == 404
    # The unscoped token sees both.
    assert client.get(f"/repos/{OWNER}/other", headers=installed.headers).status_code == 200

    other_id = client.get(f"/repos/{OWNER}/other", headers=installed.headers).json()["id"]
    r = client.post(
        f"/app/installations/{installed.installation_id}/access_tokens",
        headers=installed.jwt_headers,
        json={"repository_ids": [other_id]},
    )
    by_id = {"Authorization": f"token {r.json()['token']}"}
    assert client.get(f"/repos/{OWNER}/{REPO}", headers=by_id).status_code == 404
    assert client.get(f"/repos/{OWNER}/other", headers=by_id).status_code == 200

    r = client.post(
        f"/app/installations/{installed.installation_id}/access_tokens",
        headers=installed.jwt_headers,
        json={"repositories": ["does-not-exist"]},
    )
    assert r.status_code == 422


def test_token_permission_scope(sandbox: Sandbox, client: httpx.Client, installed: Installed) -> None:
    r = client.post(
        f"/app/installations/{installed.installation_id}/access_tokens",
        headers=installed.jwt_headers,
        json={"permissions": {"contents": "read", "pull_requests": "read"}},
    )
    assert r.status_code == 201
    assert r.json()["permissions"] == {"contents": "read", "pull_requests": "read", "metadata": "read"}
    limited = {"Authorization": f"token {r.json()['token']}"}
    assert client.get(f"/repos/{OWNER}/{REPO}/contents/README.md", headers=limited).status_code == 200
    r = client.post(f"/repos/{OWNER}/{REPO}/issues", headers=limited, json={"title": "x"})
    assert r.status_code == 403
    assert r.json()["message"] == "Resource not accessible by integration"
    sandbox.open_issue(OWNER, REPO, "exists")
    assert client.get(f"/repos/{OWNER}/{REPO}/issues/1", headers=limited).status_code == 403
    assert client.get(f"/repos/{OWNER}/{REPO}/issues/1", headers=installed.headers).status_code == 200

    r = client.post(
        f"/app/installations/{installed.installation_id}/access_tokens",
        headers=installed.jwt_headers,
        json={"permissions": {"administration": "write"}},
    )
    assert r.status_code == 422


def test_installation_permissions_narrower_than_app(sandbox: Sandbox, client: httpx.Client) -> None:
    creds = sandbox.create_app("Narrow", permissions={"contents": "read", "metadata": "read"})
    sandbox.create_repo(OWNER, REPO)
    installation_id = sandbox.install(creds.app_id, OWNER)
    token = sandbox.installation_token(installation_id)
    r = client.post(f"/repos/{OWNER}/{REPO}/issues", headers={"Authorization": f"token {token}"}, json={"title": "x"})
    assert r.status_code == 403


def test_tokens_expire_after_an_hour(tmp_path: Path) -> None:
    clock = FakeClock()
    with Sandbox(tmp_path, clock=clock) as sb, SandboxServer(sb) as base, httpx.Client(base_url=base) as c:
        sb.create_repo(OWNER, REPO)
        creds = sb.create_app("Kickoff")
        installation_id = sb.install(creds.app_id, OWNER)
        r = c.post(
            f"/app/installations/{installation_id}/access_tokens",
            headers=bearer(app_jwt(creds, now=clock().timestamp())),
        )
        token = r.json()["token"]
        assert r.json()["expires_at"].endswith("Z")
        h = {"Authorization": f"token {token}"}
        assert c.get(f"/repos/{OWNER}/{REPO}", headers=h).status_code == 200
        clock.advance(3599)
        assert c.get(f"/repos/{OWNER}/{REPO}", headers=h).status_code == 200
        clock.advance(2)
        assert c.get(f"/repos/{OWNER}/{REPO}", headers=h).status_code == 401
        # The App JWT is judged by the same clock.
        assert c.get("/app", headers=bearer(app_jwt(creds, now=clock().timestamp() - 700))).status_code == 401
        assert sb.violations == []


def test_requests_are_logged_with_who(sandbox: Sandbox, client: httpx.Client, installed: Installed) -> None:
    client.get(f"/repos/{OWNER}/{REPO}", headers=installed.headers)
    last = sandbox.requests[-1]
    assert (last.method, last.path, last.status) == ("GET", f"/repos/{OWNER}/{REPO}", 200)
    assert last.installation_id == installed.installation_id
    assert last.app_id == installed.creds.app_id
    assert last.actor == "kickoff[bot]"


def test_personal_tokens_act_as_the_user(sandbox: Sandbox, client: httpx.Client, installed: Installed) -> None:
    sandbox.set_permission(OWNER, REPO, "alice", "write")
    sandbox.set_permission(OWNER, REPO, "reader", "read")
    alice = {"Authorization": f"token {sandbox.user_token('alice')}"}
    reader = {"Authorization": f"token {sandbox.user_token('reader')}"}
    stranger = {"Authorization": f"token {sandbox.user_token('stranger')}"}
    r = client.post(f"/repos/{OWNER}/{REPO}/issues", headers=alice, json={"title": "By hand"})
    assert r.status_code == 201
    assert r.json()["user"]["login"] == "alice"
    assert r.json()["author_association"] == "COLLABORATOR"
    assert sandbox.requests[-1].actor == "alice"
    assert client.get(f"/repos/{OWNER}/{REPO}", headers=reader).json()["permissions"]["push"] is False
    assert client.post(f"/repos/{OWNER}/{REPO}/issues", headers=reader, json={"title": "x"}).status_code == 403
    assert client.get(f"/repos/{OWNER}/{REPO}", headers=stranger).status_code == 404


def test_a_revoked_token_is_refused_and_listed_as_revoked(sandbox: Sandbox, client: httpx.Client) -> None:
    creds = sandbox.create_app("Kickoff", permissions={"contents": "write", "metadata": "read"})
    sandbox.create_repo(OWNER, REPO)
    installation_id = sandbox.install(creds.app_id, OWNER)
    token, other = sandbox.installation_token(installation_id), sandbox.installation_token(installation_id)
    h = {"Authorization": f"token {token}"}
    assert client.get(f"/repos/{OWNER}/{REPO}", headers=h).status_code == 200
    assert client.delete("/installation/token", headers=h).status_code == 204
    assert client.get(f"/repos/{OWNER}/{REPO}", headers=h).status_code == 401
    refs = f"/{OWNER}/{REPO}.git/info/refs?service=git-upload-pack"
    assert client.get(refs, auth=("x-access-token", other)).status_code == 200
    assert client.get(refs, auth=("x-access-token", token)).status_code == 401  # git over HTTP refuses it too
    assert client.delete("/installation/token", headers=h).status_code == 401  # revoking twice: it is dead
    assert client.get(f"/repos/{OWNER}/{REPO}", headers={"Authorization": f"token {other}"}).status_code == 200
    issued = {t.token: t for t in sandbox.tokens()}
    assert issued[token].revoked_at is not None
    assert issued[other].revoked_at is None
    assert client.delete("/installation/token").status_code == 401  # no token at all
