"""The real Gemini CLI (from the npm registry) through the whole runner program, in the bubblewrap sandbox,
offline: a scripted Gemini API on 127.0.0.1 (GOOGLE_GEMINI_BASE_URL, which needs the adapter's settings file
selecting key auth) makes it run a shell command, allowed in the runner's sandbox, that writes a file; the runner
pushes it and the gemini adapter reads the summary, tokens and turns from the CLI's JSON output."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.agents.gemini_stub import CANDIDATE_TOKENS, FINAL_TEXT, PROMPT_TOKENS, ScriptedGemini, serve
from tests.agents.real_cli import npm_cli
from tests.runner_program.sandbox_support import bwrap  # noqa: F401 - fixture
from tests.runner_program.support import BASE_FILES, git, make_remote, make_spec, new_token, run_program, runner_env

VERSION = "0.61.0"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def gemini_bin() -> Path:
    return npm_cli("@google/gemini-cli", VERSION, "gemini")


@pytest.mark.usefixtures("bwrap")
def test_the_real_gemini_cli_runs_a_shell_command_that_edits_a_file_the_runner_pushes(
        tmp_path: Path, gemini_bin: Path) -> None:
    remote = make_remote(tmp_path)
    api_key = f"AIza-test-{new_token()}"
    token = new_token()
    stub = ScriptedGemini(file_path="FIXED.txt", content="fixed by the real CLI\n")
    with serve(stub) as base_url:
        spec = make_spec(remote, [], agent={"name": "gemini", "adapter": "gemini", "command": [],
                                            "env": ["GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL"],
                                            "model": "gemini-2.5-pro"},
                         prompt="Create FIXED.txt saying the bug is fixed.\n", sandbox="required",
                         timeout_seconds=240)
        env = runner_env(token=token, GEMINI_API_KEY=api_key, GOOGLE_GEMINI_BASE_URL=base_url,
                         PATH=f"{gemini_bin}{os.pathsep}{os.environ['PATH']}")
        out = run_program(tmp_path, spec, env=env, timeout=300)
    result = out.result
    assert result.outcome == "succeeded", f"{result.reason}\n{result.transcript_tail}\n{out.process.stderr}"
    assert result.files_changed == ("FIXED.txt",)
    branch = result.branch or ""
    assert remote.show(branch, "FIXED.txt") == "fixed by the real CLI\n"
    assert sorted(remote.files(branch)) == sorted([*BASE_FILES, "FIXED.txt"])
    assert git("diff", "--name-only", remote.base_sha, branch, cwd=remote.path).split() == ["FIXED.txt"]
    assert (out.workspace / "agent" / "home" / ".gemini" / "settings.json").is_file()
    turns = stub.turn_requests()
    assert len(turns) == 2
    # Read from the CLI's own JSON output by the gemini adapter.
    assert result.summary == FINAL_TEXT
    assert result.usage.turns is not None
    assert result.usage.turns >= 2
    assert result.usage.input_tokens is not None
    assert result.usage.input_tokens >= 2 * PROMPT_TOKENS
    assert result.usage.output_tokens is not None
    assert result.usage.output_tokens >= 2 * CANDIDATE_TOKENS
    assert result.usage.cost_usd is None  # Gemini reports no cost
    assert result.usage.model

    assert "Create FIXED.txt saying the bug is fixed." in json.dumps(turns[0]["body"]["contents"])
    keys = {h.get("x-goog-api-key") or h.get("X-Goog-Api-Key") for h, r in zip(stub.headers, stub.requests,
                                                                               strict=True) if r in turns}
    assert keys == {api_key}
    # The shell command's output (the agent's environment) went back to the model: no Kickoff credential in it.
    assert "KICKOFF_RUN_MARKER" in json.dumps(turns[1]["body"]["contents"])
    assert token not in stub.sent(), "the git token must never reach the agent (or its model)"
    assert api_key not in result.transcript_tail


@pytest.mark.usefixtures("bwrap")
def test_the_real_gemini_cli_on_an_endpoint_that_never_answers_is_stopped_by_the_watchdog(
        tmp_path: Path, gemini_bin: Path) -> None:
    remote = make_remote(tmp_path)
    stub = ScriptedGemini(file_path="FIXED.txt", content="never\n", hang=True)
    with serve(stub) as base_url:
        spec = make_spec(remote, [], agent={"name": "gemini", "adapter": "gemini", "command": [],
                                            "env": ["GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL"],
                                            "model": "gemini-2.5-pro"},
                         prompt="Create FIXED.txt.\n", sandbox="required", timeout_seconds=600,
                         idle_timeout_seconds=10)
        env = runner_env(token=new_token(), GEMINI_API_KEY=f"AIza-test-{new_token()}",
                         GOOGLE_GEMINI_BASE_URL=base_url, PATH=f"{gemini_bin}{os.pathsep}{os.environ['PATH']}")
        out = run_program(tmp_path, spec, env=env, timeout=300)
    result = out.result
    assert result.outcome == "timed_out", f"{result.reason}\n{result.transcript_tail}"
    assert result.reason is not None
    assert result.reason.startswith("the agent printed nothing (but that it was retrying or waiting) and changed no "
                                    "file for 10 s")
    assert stub.requests, "the CLI did reach the endpoint, which never answered"
    assert result.branch is None
