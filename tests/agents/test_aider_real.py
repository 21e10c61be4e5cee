"""The real aider (from PyPI) through the whole runner program, in the bubblewrap sandbox, offline: a scripted OpenAI
chat-completions API on 127.0.0.1 answers with a SEARCH/REPLACE edit creating a file; aider applies it, the runner
pushes it, and aider's own state (its chat history, its repo-map cache) reaches no commit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.agents.openai_stub import INPUT_TOKENS, OUTPUT_TOKENS, ScriptedChat, serve
from tests.agents.real_cli import pip_cli
from tests.runner_program.sandbox_support import bwrap  # noqa: F401 - fixture
from tests.runner_program.support import BASE_FILES, git, make_remote, make_spec, new_token, run_program, runner_env

VERSION = "0.86.2"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def aider_bin() -> Path:
    return pip_cli("aider-chat", VERSION, "aider")


@pytest.mark.usefixtures("bwrap")
def test_the_real_aider_edits_a_file_that_the_runner_pushes_without_its_scratch_files(
        tmp_path: Path, aider_bin: Path) -> None:
    remote = make_remote(tmp_path)
    api_key = f"sk-proj-test-{new_token()}"
    token = new_token()
    stub = ScriptedChat(file_path="FIXED.txt", content="fixed by the real CLI\n")
    with serve(stub) as base_url:
        spec = make_spec(remote, [], agent={"name": "aider", "adapter": "aider", "command": [],
                                            "env": ["OPENAI_API_KEY", "OPENAI_API_BASE"], "model": "gpt-4o"},
                         prompt="Create FIXED.txt saying the bug is fixed.\n", sandbox="required",
                         timeout_seconds=240)
        env = runner_env(token=token, OPENAI_API_KEY=api_key, OPENAI_API_BASE=f"{base_url}/v1",
                         PATH=f"{aider_bin}{os.pathsep}{os.environ['PATH']}")
        out = run_program(tmp_path, spec, env=env, timeout=300)
    result = out.result
    assert result.outcome == "succeeded", f"{result.reason}\n{result.transcript_tail}\n{out.process.stderr}"
    assert result.files_changed == ("FIXED.txt",)
    branch = result.branch or ""
    assert remote.show(branch, "FIXED.txt") == "fixed by the real CLI\n"
    # Nothing but the intended change, though aider did leave its files in the checkout and HOME.
    assert sorted(remote.files(branch)) == sorted([*BASE_FILES, "FIXED.txt"])
    assert git("diff", "--name-only", remote.base_sha, branch, cwd=remote.path).split() == ["FIXED.txt"]
    assert remote.show(branch, ".gitignore") == BASE_FILES[".gitignore"]
    assert (out.workspace / "agent" / "repo" / ".aider.tags.cache.v4").is_dir()  # left in the checkout, not taken
    assert (out.workspace / "agent" / "home" / ".aider.chat.history.md").is_file()
    # Read from aider's cost line by the aider adapter: one model request.
    assert result.usage.input_tokens == INPUT_TOKENS
    assert result.usage.output_tokens == OUTPUT_TOKENS
    assert result.usage.turns == 1
    assert result.usage.cost_usd is not None
    assert result.usage.cost_usd > 0

    calls = [r for r in stub.requests if r["path"].endswith("/chat/completions")]
    assert len(calls) == 1
    assert "Create FIXED.txt saying the bug is fixed." in json.dumps(calls[0]["body"]["messages"])
    auth = {h.get("authorization") or h.get("Authorization") for h, r in zip(stub.headers, stub.requests,
                                                                             strict=True) if r in calls}
    assert auth == {f"Bearer {api_key}"}
    assert token not in stub.sent(), "the git token must never reach the agent (or its model)"
    assert api_key not in result.transcript_tail
