"""The runner's three phases under attack, on the real program with real git over smart HTTP: the agent phase holds
no credential and nothing it or `verify` writes changes what the trusted publish step does or pushes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config.model import RepoConfig
from tests.runner_program.githttp import GitHttp, serve_git
from tests.runner_program.support import (
    BASE_FILES,
    PYTHON,
    SCRIPTS,
    all_bytes,
    git,
    make_remote,
    make_spec,
    new_token,
    run_program,
    runner_env,
    script,
)

BRANCH = "kickoff/7-fix-house-42"


def test_the_agent_finds_no_token_and_no_helper_to_hijack_and_the_push_still_authenticates(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    token = new_token()
    dump, marker = tmp_path / "seen.bin", tmp_path / "stolen.txt"
    with serve_git(tmp_path, token) as server:
        spec = make_spec(remote, script("hunt.py", str(tmp_path), str(dump), str(marker)),
                         clone_url=f"{server.url}/remote.git")
        out = run_program(tmp_path, spec, env=runner_env(token=token))
    assert out.result.outcome == "succeeded", out.result.reason
    assert remote.branch_sha(BRANCH) == out.result.head_sha
    assert server.refused == []
    assert server.authorized >= 2  # the clone and the push, both with the right token

    seen = dump.read_bytes()
    found = json.loads(dump.with_suffix(".json").read_text())
    agent_config = str(out.workspace / "agent" / "repo" / ".git" / "config")
    assert agent_config in found["read"]  # the hunt did reach the workspace
    assert token.encode() not in seen, "the agent phase could read the run token"
    # The only helper it could hijack is the one it planted itself, and git never ran it.
    assert found["hijacked"] == [str(out.workspace / "bin" / "git-askpass")]
    assert not marker.exists(), marker.read_text()
    for path, data in all_bytes(out.workspace):
        assert token.encode() not in data, path


@pytest.fixture
def attacker(tmp_path: Path) -> Iterator[GitHttp]:
    """A second git server on 127.0.0.1, playing the attacker: it records every request it gets."""
    root = tmp_path / "attacker"
    root.mkdir()
    make_remote(root, name="remote.git")
    with serve_git(root, new_token()) as server:
        yield server


def test_verify_cannot_redirect_the_push_or_run_a_hook(tmp_path: Path, attacker: GitHttp) -> None:
    remote = make_remote(tmp_path)
    token = new_token()
    marker = tmp_path / "hooked.txt"
    with serve_git(tmp_path, token) as server:
        real = f"{server.url}/remote.git"
        verify = f"{PYTHON} {SCRIPTS}/redirect.py {attacker.url}/remote.git {real} {marker}"
        spec = make_spec(remote, script("edit.py", "{prompt_file}"), clone_url=real, verify_command=verify)
        out = run_program(tmp_path, spec, env=runner_env(token=token))
    assert out.result.outcome == "succeeded", out.result.reason
    assert out.result.verify is not None
    assert out.result.verify.passed, out.result.verify.output_tail
    assert attacker.requests == [], "the push (and the token) went to the attacker"
    assert remote.branch_sha(BRANCH) == out.result.head_sha
    assert not marker.exists(), marker.read_text()
    # What verify wrote is really there: the attack ran, and it did not matter.
    agent_config = (out.workspace / "agent" / "repo" / ".git" / "config").read_text()
    assert f"{attacker.url}/remote.git" in agent_config
    assert f"{attacker.url}/remote.git" in (out.workspace / "agent" / "home" / ".gitconfig").read_text()


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("config", "the private clone was changed during the agent phase (repo.git/config)"),
        ("home", "the private clone was changed during the agent phase (home/.gitconfig)"),
        ("commondir", "the private clone was changed during the agent phase (evil.git"),
        ("hooks", "the private clone was changed during the agent phase (repo.git/hooks"),
        ("workcopy", "the agent replaced its working copy with something else; nothing was pushed"),
    ],
)
def test_without_a_sandbox_tampering_with_the_private_clone_refuses_the_publish(
        tmp_path: Path, attacker: GitHttp, kind: str, reason: str) -> None:
    remote = make_remote(tmp_path)
    token = new_token()
    marker = tmp_path / "stolen.txt"
    with serve_git(tmp_path, token) as server:
        spec = make_spec(remote, script("private_tamper.py", kind, f"{attacker.url}/", str(marker)),
                         clone_url=f"{server.url}/remote.git")
        out = run_program(tmp_path, spec, env=runner_env(token=token))
    assert out.result.outcome == "failed"
    assert out.result.reason is not None
    assert reason in out.result.reason
    assert out.result.reason.endswith("nothing was pushed")
    assert not out.result.pushed
    assert remote.branch_sha(BRANCH) is None
    assert attacker.requests == []
    assert not marker.exists()


WITHOUT_GITHUB = {path: text for path, text in BASE_FILES.items() if not path.startswith(".github/")}


@pytest.mark.parametrize(
    ("kind", "files", "reason"),
    [
        ("workflows-link", WITHOUT_GITHUB,
         "the agent changed protected paths: .github/workflows; nothing was pushed"),
        ("workflows-link", BASE_FILES,
         "the agent changed protected paths: .github/workflows, .github/workflows/ci.yml; nothing was pushed"),
        ("github-link", WITHOUT_GITHUB, "the agent changed protected paths: .github; nothing was pushed"),
        ("plain-link", BASE_FILES,
         "the agent made symbolic links, which Kickoff does not push: docs/readme.md; nothing was pushed"),
        ("gitlink", BASE_FILES, "the agent added nested git repositories (gitlinks), which Kickoff does not push: "
                                "vendor/lib; nothing was pushed"),
        ("gitmodules", BASE_FILES, "the agent changed protected paths: .gitmodules; nothing was pushed"),
        ("gitattributes", BASE_FILES, "the agent changed protected paths: .gitattributes; nothing was pushed"),
        ("nested-gitattributes", BASE_FILES,
         "the agent changed protected paths: src/.gitattributes; nothing was pushed"),
    ],
)
def test_links_nested_repositories_and_git_metadata_fail_the_run_and_push_nothing(
        tmp_path: Path, kind: str, files: dict[str, str], reason: str) -> None:
    remote = make_remote(tmp_path, files=files)
    spec = make_spec(remote, script("links.py", kind), protected_paths=list(RepoConfig().protected_paths))
    out = run_program(tmp_path, spec)
    assert out.result.outcome == "failed"
    assert out.result.reason == reason
    assert not out.result.pushed
    assert remote.branch_sha(BRANCH) is None


def test_a_symbolic_link_the_base_already_has_is_left_alone(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    work = tmp_path / "maintainer"
    git("clone", "-q", remote.url, str(work), cwd=tmp_path)
    (work / "docs").mkdir()
    (work / "docs" / "readme.md").symlink_to("../README.md")
    git("add", "-A", cwd=work)
    git("-c", "user.name=m", "-c", "user.email=m@x", "commit", "-qm", "link", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    out = run_program(tmp_path, make_spec(remote, script("edit.py", "{prompt_file}")))
    assert out.result.outcome == "succeeded", out.result.reason
    assert out.result.files_changed == ("NOTES.md", "src/app.py")
    assert "docs/readme.md" in remote.files(BRANCH)


def test_nothing_verify_writes_is_pushed(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    spec = make_spec(remote, script("edit.py", "{prompt_file}"), verify_command=f"{PYTHON} {SCRIPTS}/scribble.py")
    out = run_program(tmp_path, spec)
    result = out.result
    assert result.outcome == "succeeded", result.reason
    assert result.verify is not None
    assert result.verify.passed
    assert result.files_changed == ("NOTES.md", "src/app.py")
    assert sorted(remote.files(BRANCH)) == sorted([*BASE_FILES, "NOTES.md"])
    assert remote.show(BRANCH, "src/app.py").strip().endswith("return 42")
    assert remote.show(BRANCH, "README.md") == BASE_FILES["README.md"]
    assert remote.show(BRANCH, "NOTES.md") == "The answer is 42.\n"
    # verify's writes are in the agent's copy, which is never published.
    assert (out.workspace / "agent" / "repo" / "scribbled.txt").exists()
