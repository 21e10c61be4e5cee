"""The real Claude Code CLI (from the npm registry) through the whole runner program, offline: a scripted Anthropic
Messages server on 127.0.0.1 makes it call the Write tool, then finish; the runner pushes the file it wrote and the
claude adapter reads cost and tokens from the CLI's real output."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agents.anthropic_stub import FINAL_TEXT, INPUT_TOKENS, OUTPUT_TOKENS, ScriptedAnthropic, serve
from tests.runner_program.support import make_remote, make_spec, new_token, run_program, runner_env

VERSION = "2.1.328"
PACKAGE = f"@anthropic-ai/claude-code@{VERSION}"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kickoff-tests" / f"claude-code-{VERSION}"

pytestmark = pytest.mark.slow


def _works(bin_dir: Path) -> bool:
    claude = bin_dir / "claude"
    if not claude.exists():
        return False
    try:
        done = subprocess.run([str(claude), "--version"], capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return False
    return done.returncode == 0 and VERSION in done.stdout


@pytest.fixture(scope="session")
def claude_bin() -> Iterator[Path]:
    """The directory holding the real `claude`, installed once into a cache shared by test runs and workers."""
    bin_dir = CACHE / "node_modules" / ".bin"
    if _works(bin_dir):
        yield bin_dir
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed, so the real Claude Code CLI cannot be installed")
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE.parent / f".claude-code-{VERSION}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one xdist worker installs, the others wait and reuse
        if not _works(bin_dir):
            try:
                done = subprocess.run([npm, "install", "--prefix", str(CACHE), "--no-audit", "--no-fund",
                                       "--loglevel=error", PACKAGE], capture_output=True, text=True, timeout=900,
                                      check=False)
            except subprocess.TimeoutExpired:
                pytest.skip(f"`npm install {PACKAGE}` took longer than 15 minutes")
            if done.returncode != 0 or not _works(bin_dir):
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                pytest.skip(f"`npm install {PACKAGE}` failed (is the npm registry reachable?): {last}")
    yield bin_dir


def test_the_real_claude_code_cli_writes_a_file_that_the_runner_pushes(tmp_path: Path, claude_bin: Path) -> None:
    remote = make_remote(tmp_path)
    api_key = f"sk-ant-test-{new_token()}"
    token = new_token()
    stub = ScriptedAnthropic(file_path="FIXED.txt", content="fixed by the real CLI\n")
    with serve(stub) as base_url:
        spec = make_spec(remote, [], agent={"name": "claude", "adapter": "claude", "command": [],
                                            "env": ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"]},
                         prompt="Create FIXED.txt saying the bug is fixed.\n")
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
