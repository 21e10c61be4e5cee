"""Clone and push through git's smart HTTP with the token required, as against GitHub: the askpass helper supplies
it, and it is written nowhere."""

from __future__ import annotations

from pathlib import Path

from tests.runner_program.githttp import serve_git
from tests.runner_program.support import all_bytes, make_remote, make_spec, new_token, run_program, runner_env, script

BRANCH = "kickoff/7-fix-house-42"


def test_clone_and_push_over_http_with_the_token(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    token = new_token()
    with serve_git(tmp_path, token) as server:
        spec = make_spec(remote, script("edit.py", "{prompt_file}"), clone_url=f"{server.url}/remote.git")
        out = run_program(tmp_path, spec, env=runner_env(token=token))
    assert out.result.outcome == "succeeded", out.result.reason
    assert remote.branch_sha(BRANCH) == out.result.head_sha
    assert server.authorized >= 2  # the clone and the push both authenticated
    config = (out.workspace / "agent" / "repo" / ".git" / "config").read_text()
    assert f"url = {server.url}/remote.git" in config
    for path, data in all_bytes(out.workspace):
        assert token.encode() not in data, path
    assert token not in out.process.stdout + out.process.stderr


def test_a_wrong_token_fails_the_clone_without_prompting(tmp_path: Path) -> None:
    make_remote(tmp_path)
    wrong = new_token()
    with serve_git(tmp_path, new_token()) as server:
        spec = make_spec(make_remote(tmp_path, name="other.git"), script("edit.py", "{prompt_file}"),
                         clone_url=f"{server.url}/remote.git")
        out = run_program(tmp_path, spec, env=runner_env(token=wrong), timeout=60)
    assert out.process.returncode == 0
    assert out.result.outcome == "failed"
    assert out.result.reason is not None
    assert out.result.reason.startswith("clone: git clone of branch main failed")
    assert "Authentication failed" in out.result.reason
    assert wrong not in out.result.reason
    assert server.authorized == 0
