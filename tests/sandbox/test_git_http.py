"""Real `git clone` and `git push` over smart HTTP, authenticated with installation tokens."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx

from bot.sandbox import Sandbox
from tests.sandbox.support import OWNER, REPO, Installed, Receiver, app_jwt, bare_git, git, git_env


def scoped_token(client: httpx.Client, installed: Installed, **body: object) -> str:
    r = client.post(
        f"/app/installations/{installed.installation_id}/access_tokens",
        headers={"Authorization": f"Bearer {app_jwt(installed.creds)}"},
        json=body,
    )
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    return token


def test_clone_and_push_with_a_token(sandbox: Sandbox, url: str, installed: Installed, tmp_path: Path) -> None:
    env = git_env(installed.token, tmp_path)
    work = tmp_path / "work"
    git(["clone", "--quiet", f"{url}/{OWNER}/{REPO}.git", str(work)], env)
    assert (work / "src" / "app.py").read_text() == "print('hi')\n"

    git(["switch", "--quiet", "-c", "feature"], env, work)
    (work / "NEW.md").write_text("new\n")
    git(["add", "NEW.md"], env, work)
    git(["commit", "--quiet", "-m", "Add NEW"], env, work)
    git(["push", "--quiet", "origin", "feature"], env, work)
    head = git(["rev-parse", "HEAD"], env, work).stdout.strip()
    assert bare_git(sandbox, "rev-parse", "refs/heads/feature") == head

    push = sandbox.requests[-1]
    assert push.kind == "git"
    assert push.actor == "kickoff[bot]"


def test_askpass_credentials_work_too(sandbox: Sandbox, url: str, installed: Installed, tmp_path: Path) -> None:
    askpass = tmp_path / "askpass.sh"
    askpass.write_text(f'#!/bin/sh\ncase "$1" in Username*) echo x-access-token;; *) echo {installed.token};; esac\n')
    askpass.chmod(askpass.stat().st_mode | stat.S_IXUSR)
    env = git_env(None, tmp_path)
    env["GIT_ASKPASS"] = str(askpass)
    result = git(["clone", "--quiet", f"{url}/{OWNER}/{REPO}.git", str(tmp_path / "w")], env)
    assert result.returncode == 0
    assert (tmp_path / "w" / "README.md").exists()


def test_no_token_no_clone(url: str, installed: Installed, tmp_path: Path) -> None:
    result = git(
        ["clone", "--quiet", f"{url}/{OWNER}/{REPO}.git", str(tmp_path / "w")], git_env(None, tmp_path), check=False
    )
    assert result.returncode != 0
    bad = git(
        ["clone", "--quiet", f"{url}/{OWNER}/{REPO}.git", str(tmp_path / "w2")],
        git_env("ghs_wrong", tmp_path),
        check=False,
    )
    assert bad.returncode != 0
    assert not (tmp_path / "w2" / "README.md").exists()


def test_read_only_token_cannot_push(
    sandbox: Sandbox, client: httpx.Client, url: str, installed: Installed, tmp_path: Path
) -> None:
    read_only = scoped_token(client, installed, permissions={"contents": "read"})
    env = git_env(read_only, tmp_path)
    work = tmp_path / "work"
    git(["clone", "--quiet", f"{url}/{OWNER}/{REPO}.git", str(work)], env)
    (work / "x.txt").write_text("x\n")
    git(["add", "x.txt"], env, work)
    git(["commit", "--quiet", "-m", "x"], env, work)
    result = git(["push", "origin", "HEAD:refs/heads/sneaky"], env, work, check=False)
    assert result.returncode != 0
    assert "403" in result.stderr
    assert bare_git(sandbox, "for-each-ref", "refs/heads/sneaky") == ""


def test_token_scoped_to_another_repository(
    sandbox: Sandbox, client: httpx.Client, url: str, installed: Installed, tmp_path: Path
) -> None:
    sandbox.create_repo(OWNER, "other", {"o.txt": "o\n"})
    only_other = scoped_token(client, installed, repositories=["other"])
    env = git_env(only_other, tmp_path)
    assert git(["clone", "--quiet", f"{url}/{OWNER}/other.git", str(tmp_path / "o")], env).returncode == 0
    denied = git(["clone", "--quiet", f"{url}/{OWNER}/{REPO}.git", str(tmp_path / "d")], env, check=False)
    assert denied.returncode != 0
    assert "not found" in denied.stderr.lower()


def test_push_announces_and_updates_pull_requests(
    sandbox: Sandbox, url: str, hooked: Installed, receiver: Receiver, tmp_path: Path
) -> None:
    sandbox.push_commit(OWNER, REPO, "feature", {"f.txt": "1\n"}, "First")
    number = sandbox.open_pull(OWNER, REPO, "feature", title="Feature")
    sandbox.wait_idle()
    before = len(receiver.received)

    env = git_env(hooked.token, tmp_path)
    work = tmp_path / "work"
    git(["clone", "--quiet", "--branch", "feature", f"{url}/{OWNER}/{REPO}.git", str(work)], env)
    (work / "f.txt").write_text("2\n")
    git(["commit", "--quiet", "-am", "Second"], env, work)
    git(["push", "--quiet", "origin", "feature"], env, work)
    new_head = git(["rev-parse", "HEAD"], env, work).stdout.strip()
    sandbox.wait_idle()

    later = receiver.received[before:]
    events = [(r.event, r.action) for r in later]
    assert events == [("push", None), ("pull_request", "synchronize")]
    push, sync = later[0].payload, later[1].payload
    assert push["ref"] == "refs/heads/feature"
    assert push["after"] == new_head
    assert [c["message"] for c in push["commits"]] == ["Second"]
    assert push["commits"][0]["modified"] == ["f.txt"]
    assert push["pusher"]["name"] == "kickoff[bot]"
    assert sync["number"] == number
    assert sync["after"] == new_head
    assert sync["pull_request"]["head"]["sha"] == new_head
    assert sync["installation"]["id"] == hooked.installation_id


def test_workflow_files_need_the_workflows_permission(
    sandbox: Sandbox, client: httpx.Client, url: str, installed: Installed, tmp_path: Path
) -> None:
    env = git_env(installed.token, tmp_path)
    work = tmp_path / "work"
    git(["clone", "--quiet", f"{url}/{OWNER}/{REPO}.git", str(work)], env)
    (work / ".github" / "workflows").mkdir(parents=True)
    (work / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    git(["add", "."], env, work)
    git(["commit", "--quiet", "-m", "Add a workflow"], env, work)
    refused = git(["push", "origin", "HEAD:refs/heads/wf"], env, work, check=False)
    assert refused.returncode != 0
    assert "without `workflows` permission" in refused.stderr
    assert bare_git(sandbox, "for-each-ref", "refs/heads/wf") == ""

    allowed = sandbox.create_app("Workflows", permissions={"contents": "write", "workflows": "write"})
    installation_id = sandbox.install(allowed.app_id, OWNER)
    token = sandbox.installation_token(installation_id)
    git(["push", "--quiet", "origin", "HEAD:refs/heads/wf"], git_env(token, tmp_path), work)
    assert bare_git(sandbox, "for-each-ref", "--format=%(refname)", "refs/heads/wf") == "refs/heads/wf"


def test_git_refs_api(sandbox: Sandbox, client: httpx.Client, hooked: Installed, receiver: Receiver) -> None:
    h = hooked.headers
    base = f"/repos/{OWNER}/{REPO}/git"
    main = bare_git(sandbox, "rev-parse", "main")
    r = client.post(f"{base}/refs", headers=h, json={"ref": "refs/heads/kickoff/7-fix-a-1", "sha": main})
    assert r.status_code == 201
    assert r.json()["object"]["sha"] == main
    assert (
        client.post(f"{base}/refs", headers=h, json={"ref": "refs/heads/kickoff/7-fix-a-1", "sha": main}).status_code
        == 422
    )
    assert client.get(f"{base}/ref/heads/kickoff/7-fix-a-1", headers=h).json()["ref"] == "refs/heads/kickoff/7-fix-a-1"
    matching = client.get(f"{base}/matching-refs/heads/kickoff/", headers=h).json()
    assert [m["ref"] for m in matching] == ["refs/heads/kickoff/7-fix-a-1"]

    ahead = sandbox.push_commit(OWNER, REPO, "side", {"s.txt": "s\n"})
    r = client.patch(f"{base}/refs/heads/kickoff/7-fix-a-1", headers=h, json={"sha": ahead})
    assert r.json()["object"]["sha"] == ahead
    r = client.patch(f"{base}/refs/heads/kickoff/7-fix-a-1", headers=h, json={"sha": main})
    assert r.status_code == 422
    assert r.json()["message"] == "Update is not a fast forward"
    assert (
        client.patch(f"{base}/refs/heads/kickoff/7-fix-a-1", headers=h, json={"sha": main, "force": True}).status_code
        == 200
    )
    assert client.delete(f"{base}/refs/heads/kickoff/7-fix-a-1", headers=h).status_code == 204
    assert client.get(f"{base}/ref/heads/kickoff/7-fix-a-1", headers=h).status_code == 404
    sandbox.wait_idle()
    pushes = [
        (p["ref"], p["created"], p["deleted"], p["forced"])
        for p in (r.payload for r in receiver.received if r.event == "push")
    ]
    assert pushes == [
        ("refs/heads/kickoff/7-fix-a-1", True, False, False),
        ("refs/heads/side", True, False, False),
        ("refs/heads/kickoff/7-fix-a-1", False, False, False),
        ("refs/heads/kickoff/7-fix-a-1", False, False, True),
        ("refs/heads/kickoff/7-fix-a-1", False, True, False),
    ]
