"""githubkit (Kickoff's client) against the sandbox: its models must parse every response the sandbox gives."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from githubkit import AppAuthStrategy, GitHub
from githubkit.cache import MemCacheStrategy
from githubkit.exception import RequestFailed

from bot.sandbox import Sandbox, SandboxServer
from tests.sandbox.support import OWNER, REPO


def data(response: Any) -> Any:
    """The parsed model (typed loosely: githubkit's generated list types confuse mypy)."""
    return response.parsed_data


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Sandbox, str]]:
    sb = Sandbox(tmp_path / "github", retry_delays=())
    try:
        async with SandboxServer(sb) as base:
            yield sb, base
    finally:
        violations = sb.violations
        sb.close()
    assert not violations, "\n".join(str(v) for v in violations)


async def test_kickoff_verbs_through_githubkit(served: tuple[Sandbox, str]) -> None:
    sb, base = served
    creds = await sb.aio.create_app("Kickoff")
    await sb.aio.create_repo(OWNER, REPO, {"README.md": "hi\n", ".github/kickoff.yml": "agents: {}\n"})
    await sb.aio.set_permission(OWNER, REPO, "alice", "write")
    await sb.aio.set_ci(OWNER, REPO, [sys.executable, "-c", "print('green')"])
    installation_id = await sb.aio.install(creds.app_id, OWNER)
    number = await sb.aio.open_issue(OWNER, REPO, "Crash", "It crashes", sender="alice")
    head = await sb.aio.push_commit(OWNER, REPO, "kickoff/1-fix-claude-1", {"fix.txt": "fixed\n"}, "Fix crash")

    app_gh = GitHub(
        AppAuthStrategy(str(creds.app_id), creds.private_key_pem),
        base_url=base,
        cache_strategy=MemCacheStrategy(),
        auto_retry=False,
    )
    async with app_gh:
        found = data(await app_gh.rest.apps.async_get_repo_installation(OWNER, REPO))
        assert found.id == installation_id
        assert data(await app_gh.rest.apps.async_get_authenticated()).slug == "kickoff"
        deliveries = data(await app_gh.rest.apps.async_list_webhook_deliveries())
        assert deliveries == []
        token = (
            await app_gh.rest.apps.async_create_installation_access_token(
                installation_id, data={"repositories": [REPO]}
            )
        ).parsed_data
        assert token.token.startswith("ghs_")

    gh = app_gh.with_auth(app_gh.auth.as_installation(installation_id))
    async with gh:
        rest = gh.rest
        repo = data(await rest.repos.async_get(OWNER, REPO))
        assert repo.default_branch == "main"
        content = data(await rest.repos.async_get_content(OWNER, REPO, ".github/kickoff.yml", ref="main"))
        assert getattr(content, "encoding", None) == "base64"
        perm = data(await rest.repos.async_get_collaborator_permission_level(OWNER, REPO, "alice"))
        assert perm.permission == "write"
        issue = data(await rest.issues.async_get(OWNER, REPO, number))
        assert issue.title == "Crash"
        comment = data(await rest.issues.async_create_comment(OWNER, REPO, number, data={"body": "Starting"}))
        await rest.issues.async_update_comment(OWNER, REPO, comment.id, data={"body": "Started"})
        comments = data(await rest.issues.async_list_comments(OWNER, REPO, number))
        assert [c.body for c in comments] == ["Started"]
        await rest.reactions.async_create_for_issue_comment(OWNER, REPO, comment.id, data={"content": "eyes"})
        await rest.issues.async_add_labels(OWNER, REPO, number, data={"labels": ["kickoff"]})
        await rest.issues.async_remove_label(OWNER, REPO, number, "kickoff")
        await rest.issues.async_create_label(OWNER, REPO, data={"name": "agent:fix", "color": "5319e7"})

        pr = (
            await rest.pulls.async_create(
                OWNER,
                REPO,
                data={
                    "title": "fix: Crash (#1) [claude]",
                    "head": "kickoff/1-fix-claude-1",
                    "base": "main",
                    "body": "Closes #1",
                },
            )
        ).parsed_data
        assert pr.head.sha == head
        await rest.pulls.async_request_reviewers(OWNER, REPO, pr.number, data={"reviewers": ["alice"]})
        check = (
            await rest.checks.async_create(
                OWNER,
                REPO,
                data={
                    "name": "agent-run",
                    "head_sha": head,
                    "status": "completed",
                    "conclusion": "success",
                    "output": {"title": "Run 1", "summary": "Changed 1 file"},
                    "actions": [{"label": "Retry", "description": "Run again", "identifier": "retry"}],
                },
            )
        ).parsed_data
        await rest.checks.async_update(OWNER, REPO, check.id, data={"output": {"title": "Run 1", "summary": "ok"}})
        await rest.repos.async_create_commit_status(OWNER, REPO, head, data={"state": "success", "context": "x"})
        await sb.aio.wait_idle()
        runs = data(await rest.checks.async_list_for_ref(OWNER, REPO, head))
        assert sorted(r.name for r in runs.check_runs) == ["agent-run", "ci"]
        suites = data(await rest.checks.async_list_suites_for_ref(OWNER, REPO, head))
        assert suites.total_count == 2
        combined = data(await rest.repos.async_get_combined_status_for_ref(OWNER, REPO, head))
        assert combined.state == "success"
        files = data(await rest.pulls.async_list_files(OWNER, REPO, pr.number))
        assert [f.filename for f in files] == ["fix.txt"]
        listed = data(await rest.pulls.async_list(OWNER, REPO, head=f"{OWNER}:kickoff/1-fix-claude-1"))
        assert [p.number for p in listed] == [pr.number]
        await sb.aio.approve(OWNER, REPO, pr.number, "alice")
        reviews = data(await rest.pulls.async_list_reviews(OWNER, REPO, pr.number))
        assert [r.state for r in reviews] == ["APPROVED"]
        full = data(await rest.pulls.async_get(OWNER, REPO, pr.number))
        assert full.mergeable is True
        assert full.mergeable_state == "clean"
        await rest.pulls.async_update(OWNER, REPO, pr.number, data={"body": "Closes #1\n\nDone"})
        await sb.aio.push_commit(OWNER, REPO, "main", {"other.txt": "o\n"})
        await rest.pulls.async_update_branch(OWNER, REPO, pr.number)
        merged = data(await rest.pulls.async_merge(OWNER, REPO, pr.number, data={"merge_method": "squash"}))
        assert merged.merged is True
        commit = data(await rest.repos.async_get_commit(OWNER, REPO, "main"))
        assert commit.sha == merged.sha
        compare = data(await rest.repos.async_compare_commits(OWNER, REPO, f"{head}...main"))
        assert compare.status == "diverged"
        ref = data(await rest.git.async_get_ref(OWNER, REPO, "heads/main"))
        assert ref.object_.sha == merged.sha
        await rest.git.async_delete_ref(OWNER, REPO, "heads/kickoff/1-fix-claude-1")
        branches = data(await rest.repos.async_list_branches(OWNER, REPO))
        assert [b.name for b in branches] == ["main"]
        with pytest.raises(RequestFailed) as failed:
            await rest.pulls.async_merge(OWNER, REPO, pr.number)
        assert failed.value.response.status_code == 405
        await sb.aio.wait_idle()
