"""`kickoff demo` as users run it: a subprocess, zero configuration, the whole story, a JSON summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bot.demo import sample
from bot.demo.run import available_real_agents, missing_real_agents

pytestmark = pytest.mark.slow


def _demo(tmp_path: Path, *args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KICKOFF_", "GITHUB_"))}
    env.update({"PYTHONUNBUFFERED": "1", "COLUMNS": "160"})
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "bot", "demo", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    return done, time.monotonic() - started


def test_the_demo_tells_the_whole_story_in_under_a_minute(tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    done, elapsed = _demo(tmp_path, "--json", str(out))
    summary: dict[str, Any] = json.loads(out.read_text())
    assert done.returncode == 0, f"exit {done.returncode}: {summary['error']}\n{done.stdout}\n{done.stderr}"
    assert summary["ok"] is True
    assert elapsed < 60, f"the demo took {elapsed:.1f}s"

    runs = [r for r in summary["runs"] if r["kind"] == "new"]
    assert sorted(r["agent"] for r in runs) == sorted(sample.SCRIPTED_AGENTS)
    assert [r["state"] for r in runs] == ["succeeded"] * 3
    # Superseded siblings are closed, not repaired: no fix run is spent on a pull request about to be closed.
    later = [r for r in summary["runs"] if r["kind"] != "new"]
    assert later == [], f"runs started on the fan-out's pull requests after the merge: {later}"
    pulls = summary["pull_requests"]
    assert len(pulls) == 3
    assert sorted(r["pull_request"] for r in runs) == sorted(p["number"] for p in pulls)
    assert len(summary["merged"]) == 1
    assert sorted(summary["superseded"]) == sorted(p["number"] for p in pulls if p["number"] not in summary["merged"])
    # The three attempts ranked (issue 16), and the reviewer approved the best one: the one that merged.
    ranking = summary["ranking"]
    assert ranking is not None
    assert [row["rank"] for row in ranking["rows"]] == [1, 2, 3]
    assert sorted(row["pull_request"] for row in ranking["rows"]) == sorted(p["number"] for p in pulls)
    assert ranking["rows"][0]["pull_request"] == summary["merged"][0]
    assert all(row["reason"] for row in ranking["rows"])
    for pull in pulls:
        queue = pull["review_queue"]
        assert queue is not None, pull
        assert queue["status"] == "completed", pull
        assert queue["title"], pull
        assert pull["state"] == ("merged" if pull["number"] in summary["merged"] else "closed")

    requests = summary["github_requests"]
    # Counted, and bounded: a few calls per event Kickoff receives (DESIGN.md, "Scale"), no polling loop.
    assert requests["webhooks_received"] >= 20, requests
    assert 20 <= requests["total"] <= 6 * requests["webhooks_received"], requests
    # GitHub's rate limit: reads are conditional, so most re-reads are 304s, which it does not count (issue 15).
    print("requests by endpoint (counted, 304):", json.dumps(requests["by_endpoint"], indent=1))
    assert requests["counted"] + requests["not_modified"] == requests["total"], requests
    assert requests["counted"] == requests["reads"] + requests["writes"]
    assert requests["not_modified"] > requests["reads"], requests
    assert requests["counted"] <= 3 * requests["webhooks_received"], requests
    # Issue 15's target for the whole story (366 before it), and the part from the label to the three pull requests
    # with their labels, reviewers and `agent-run` checks (49 before it; the target of 30 is not reached:
    # two of the eight a run are the run's own token, minted and revoked, docs/performance.md).
    assert requests["counted"] <= 90, requests
    ready = requests["until_pull_requests"]
    assert ready is not None, requests
    assert ready["pull_requests"] == 3
    assert ready["counted"] <= 40, ready
    # Who Kickoff is, learnt once per process for the three runs: the App, and its bot user (the commits' author).
    assert requests["by_endpoint"]["GET /app"] == {"counted": 1, "not_modified": 0}
    assert requests["by_endpoint"]["GET /users/{username}"] == {"counted": 1, "not_modified": 0}
    assert requests["git"] >= 6
    assert summary["violations"] == []
    assert [p["status"] for p in summary["phases"]] == ["done"] * len(summary["phases"])
    assert "Done" in done.stdout


def test_real_agents_without_their_programs_or_keys_exit_2_with_one_line(tmp_path: Path) -> None:
    if not missing_real_agents():
        pytest.skip("a built-in agent is installed and keyed here")
    done, _ = _demo(tmp_path, "--real-agents", timeout=30)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("kickoff demo --real-agents:"), done.stderr


def test_missing_real_agents_names_each_program_and_key() -> None:
    assert missing_real_agents({"PATH": "/nonexistent"}) == [
        "`claude` is not on PATH (claude)", "ANTHROPIC_API_KEY is not set (claude)",
        "`codex` is not on PATH (codex)", "OPENAI_API_KEY is not set (codex)",
        "`gemini` is not on PATH (gemini)", "GEMINI_API_KEY is not set (gemini)",
        "`aider` is not on PATH (aider)", "OPENAI_API_KEY or ANTHROPIC_API_KEY is not set (aider)",
    ]


def test_real_agents_uses_whichever_built_in_agents_are_installed_and_keyed(tmp_path: Path) -> None:
    for program in ("gemini", "aider", "codex"):
        tool = tmp_path / program
        tool.write_text("#!/bin/sh\n")
        tool.chmod(0o755)
    env = {"PATH": str(tmp_path), "GEMINI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"}
    assert available_real_agents(env) == ("gemini", "aider")  # codex has no key, claude no program
    assert missing_real_agents(env) == []


@pytest.mark.parametrize("real", [False, True], ids=["scripted", "real-agents"])
def test_the_sample_config_is_valid(tmp_path: Path, real: bool) -> None:
    from bot.config import validate_file

    agents = sample.REAL_AGENTS if real else tuple(sample.SCRIPTED_AGENTS)
    path = tmp_path / "kickoff.yml"
    path.write_text(sample.kickoff_yml(agents, real=real))
    ok, lines = validate_file(path)
    assert ok, lines
