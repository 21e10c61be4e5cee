"""The real Claude Code CLI (from the npm registry) through the whole runner program, in the bubblewrap sandbox,
offline: a scripted Anthropic
Messages server on 127.0.0.1 makes it call the Write tool, then finish; the runner pushes the file it wrote and the
claude adapter reads cost and tokens from the CLI's real output."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.agents.anthropic_stub import FINAL_TEXT, INPUT_TOKENS, OUTPUT_TOKENS, ScriptedAnthropic, serve
from tests.agents.real_cli import npm_cli
from tests.runner_program.sandbox_support import bwrap  # noqa: F401 - fixture
from tests.runner_program.support import make_remote, make_spec, new_token, run_program, runner_env

VERSION = "2.1.328"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    """The directory holding the real `claude`, installed once into a cache shared by test runs and workers."""
    return npm_cli("@anthropic-ai/claude-code", VERSION, "claude")


@pytest.mark.usefixtures("bwrap")
def test_the_real_claude_code_cli_writes_a_file_that_the_runner_pushes(tmp_path: Path, claude_bin: Path) -> None:
    remote = make_remote(tmp_path)
    api_key = f"sk-ant-test-{new_token()}"
    token = new_token()
    stub = ScriptedAnthropic(file_path="FIXED.txt", content="fixed by the real CLI\n")
    with serve(stub) as base_url:
        spec = make_spec(remote, [], agent={"name": "claude", "adapter": "claude", "command": [],
                                            "env": ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"]},
                         prompt="Create FIXED.txt saying the bug is fixed.\n", sandbox="required")
        env = runner_env(token=token, ANTHROPIC_API_KEY=api_key, ANTHROPIC_BASE_URL=base_url,
                         PATH=f"{claude_bin}{os.pathsep}{os.environ['PATH']}")
        out = run_program(tmp_path, spec, env=env, timeout=300)
    result = out.result
    assert result.outcome == "succeeded", f"{result.reason}\n{result.transcript_tail}\n{out.process.stderr}"
    assert result.files_changed == ("FIXED.txt",)
    assert remote.show(result.branch or "", "FIXED.txt") == "fixed by the real CLI\n"
    # Read from the CLI's own JSON output by the claude adapter.
    assert result.summary == FINAL_TEXT
    assert result.usage.turns == 2
    assert result.usage.input_tokens == 2 * INPUT_TOKENS
    assert result.usage.output_tokens == 2 * OUTPUT_TOKENS
    assert result.usage.cost_usd is not None
    assert result.usage.cost_usd > 0
    assert result.usage.model

    messages = [r for r in stub.requests if r["path"].startswith("/v1/messages")]
    assert len(messages) >= 2
    first_user = json.dumps(messages[0]["body"]["messages"][0])
    assert "Create FIXED.txt saying the bug is fixed." in first_user  # the prompt arrived on stdin
    assert {h.get("x-api-key") or h.get("X-Api-Key") for h in stub.headers} == {api_key}
    sent = json.dumps(stub.requests) + json.dumps(stub.headers)
    assert token not in sent, "the git token must never reach the agent (or its model)"
    assert api_key not in result.transcript_tail


@pytest.mark.usefixtures("bwrap")
def test_the_real_claude_code_cli_runs_the_shell_inside_the_sandbox_without_asking(
    tmp_path: Path, claude_bin: Path
) -> None:
    """In the sandbox Claude Code may use Bash (to run the repository's tests) without a prompt nobody could answer:
    the scripted model asks for a shell command, the CLI runs it, and the file it wrote is pushed."""
    remote = make_remote(tmp_path)
    stub = ScriptedAnthropic(file_path="FIXED.txt", content="", bash="sh -c \"echo 'fixed by the shell' > FIXED.txt\"")
    with serve(stub) as base_url:
        spec = make_spec(remote, [], agent={"name": "claude", "adapter": "claude", "command": [],
                                            "env": ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"]},
                         prompt="Fix it with the shell.\n", sandbox="required")
        env = runner_env(token=new_token(), ANTHROPIC_API_KEY=f"sk-ant-test-{new_token()}", ANTHROPIC_BASE_URL=base_url,
                         PATH=f"{claude_bin}{os.pathsep}{os.environ['PATH']}")
        out = run_program(tmp_path, spec, env=env, timeout=300)
    result = out.result
    results = [block for r in stub.requests if r["path"].startswith("/v1/messages")
               for message in r["body"].get("messages") or [] if isinstance(message.get("content"), list)
               for block in message["content"] if isinstance(block, dict) and block.get("type") == "tool_result"]
    assert results
    assert not any(block.get("is_error") for block in results), results  # run, not refused for want of a prompt
    assert result.outcome == "succeeded", f"{result.reason}\n{results}"
    assert result.files_changed == ("FIXED.txt",)
    assert remote.show(result.branch or "", "FIXED.txt") == "fixed by the shell\n"
