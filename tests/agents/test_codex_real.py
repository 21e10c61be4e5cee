"""The real Codex CLI (from the npm registry) through the whole runner program, in the bubblewrap sandbox, offline:
a scripted OpenAI Responses API (server-sent events) on 127.0.0.1 makes it run a shell command that writes a file,
then finish; the runner pushes the file and the codex adapter reads the summary and tokens from Codex's JSON events.

The user gives the vendor's usual names, OPENAI_API_KEY and OPENAI_BASE_URL, which current Codex reads neither of:
the adapter's config.toml in the agent's HOME makes them work."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.agents.openai_stub import FINAL_TEXT, INPUT_TOKENS, OUTPUT_TOKENS, ScriptedResponses, serve
from tests.agents.real_cli import npm_cli
from tests.runner_program.sandbox_support import bwrap  # noqa: F401 - fixture
from tests.runner_program.support import BASE_FILES, git, make_remote, make_spec, new_token, run_program, runner_env

VERSION = "0.169.0"
"""The version the GitHub Actions workflow pins (bot/runners/workflow)."""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def codex_bin() -> Path:
    return npm_cli("@openai/codex", VERSION, "codex")


@pytest.mark.usefixtures("bwrap")
def test_the_real_codex_cli_with_the_vendors_env_names_edits_a_file_that_the_runner_pushes(
        tmp_path: Path, codex_bin: Path) -> None:
    remote = make_remote(tmp_path)
    api_key = f"sk-proj-test-{new_token()}"
    token = new_token()
    stub = ScriptedResponses(file_path="FIXED.txt", content="fixed by the real CLI\n", show_env=True)
    with serve(stub) as base_url:
        spec = make_spec(remote, [], agent={"name": "codex", "adapter": "codex", "command": [],
                                            "env": ["OPENAI_API_KEY", "OPENAI_BASE_URL"], "model": "gpt-5-codex"},
                         prompt="Create FIXED.txt saying the bug is fixed.\n", sandbox="required",
                         timeout_seconds=240)
        env = runner_env(token=token, OPENAI_API_KEY=api_key, OPENAI_BASE_URL=f"{base_url}/v1",
                         PATH=f"{codex_bin}{os.pathsep}{os.environ['PATH']}")
        out = run_program(tmp_path, spec, env=env, timeout=300)
    result = out.result
    assert result.outcome == "succeeded", f"{result.reason}\n{result.transcript_tail}\n{out.process.stderr}"
    assert result.files_changed == ("FIXED.txt",)
    branch = result.branch or ""
    assert remote.show(branch, "FIXED.txt") == "fixed by the real CLI\n"
    # Nothing but the intended change: Codex's state stayed in the agent's HOME, outside the checkout.
    assert sorted(remote.files(branch)) == sorted([*BASE_FILES, "FIXED.txt"])
    assert git("diff", "--name-only", remote.base_sha, branch, cwd=remote.path).split() == ["FIXED.txt"]
    assert (out.workspace / "agent" / "home" / ".codex" / "config.toml").is_file()
    # Read from Codex's own JSON events by the codex adapter (cumulative over the two model requests).
    assert result.summary == FINAL_TEXT
    assert result.usage.input_tokens == 2 * INPUT_TOKENS
    assert result.usage.output_tokens == 2 * OUTPUT_TOKENS
    assert result.usage.cost_usd is None  # Codex reports no cost
    assert result.usage.model == "gpt-5-codex"

    calls = [r for r in stub.requests if r["path"].endswith("/responses")]
    assert len(calls) == 2
    assert "Create FIXED.txt saying the bug is fixed." in json.dumps(calls[0]["body"]["input"])  # prompt on stdin
    auth = {h.get("authorization") or h.get("Authorization") for h, r in zip(stub.headers, stub.requests,
                                                                             strict=True) if r in calls}
    assert auth == {f"Bearer {api_key}"}
    # The shell command's output (the agent's environment, `env`) went back to the model: no Kickoff credential.
    assert "KICKOFF_RUN_MARKER" in json.dumps(calls[1]["body"]["input"])
    assert token not in stub.sent(), "the git token must never reach the agent (or its model)"
    assert api_key not in result.transcript_tail
