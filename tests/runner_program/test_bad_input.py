"""A spec or an environment the runner cannot use: exit 2, one line on stderr, no traceback, nothing cloned."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.runner_program.support import command_line, make_remote, make_spec, new_token, runner_env, script


def run_spec(tmp_path: Path, spec: Any, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    return subprocess.run(command_line(spec_path, tmp_path / "ws"), env=env or runner_env(), capture_output=True,
                          text=True, timeout=60, check=False)


def assert_one_line(done: subprocess.CompletedProcess[str], expected: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("kickoff: ")
    assert expected in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"run_id": "forty-two"}, "`run_id`: Input should be a valid integer"),
        ({"agent": {"adapter": "cursor"}}, "`agent.adapter`"),
        ({"timeout_seconds": 1}, "`timeout_seconds`: Input should be greater than or equal to 10"),
        ({"surprise": True}, "`surprise`: Extra inputs are not permitted"),
        ({"version": 2}, "spec version 2; this runner reads version 1"),
        ({"clone_url": "https://x-access-token:abc@github.com/o/r.git"}, "`clone_url` must not carry credentials"),
        ({"clone_url": "ext::sh -c evil"}, "`clone_url` must be an https"),
        ({"output": "report"}, "`report_path` is required when `output` is report"),
        ({"output": "report", "report_path": "../outside.md"}, "`report_path` must be a relative path"),
        ({"verify_command": "pytest 'unterminated"}, "`verify_command` cannot be split"),
        ({"branch": "bad..branch"}, "`branch` 'bad..branch' is not a valid branch name"),
        ({"branch": "-x"}, "`branch` '-x' is not a valid branch name"),
        ({"report_url": "ftp://example/report"}, "`report_url` must be an http(s) URL"),
        ({"agent": {"command": []}}, "`agent.command` must name a program"),
    ],
)
def test_bad_specs(tmp_path: Path, change: dict[str, Any], expected: str) -> None:
    remote = make_remote(tmp_path)
    agent_change = change.pop("agent", {})
    spec = make_spec(remote, script("edit.py"), agent=agent_change, **change)
    done = run_spec(tmp_path, spec)
    assert_one_line(done, expected)
    assert not (tmp_path / "ws").exists()


def test_not_json(tmp_path: Path) -> None:
    assert_one_line(run_spec(tmp_path, "{not json"), "not valid JSON (Expecting property name")


def test_missing_file(tmp_path: Path) -> None:
    done = subprocess.run(command_line(tmp_path / "nope.json", tmp_path / "ws"), env=runner_env(),
                          capture_output=True, text=True, timeout=60, check=False)
    assert_one_line(done, "cannot read the spec")


def test_a_spec_holding_the_token_is_refused_without_echoing_it(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    token = new_token()
    spec = make_spec(remote, script("edit.py"), prompt=f"use {token}")
    done = run_spec(tmp_path, spec, env=runner_env(token=token))
    assert_one_line(done, "the spec contains a credential")
    assert token not in done.stderr + done.stdout


def test_a_report_url_needs_the_run_secret(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    spec = make_spec(remote, script("edit.py"), report_url="http://127.0.0.1:9/api/runs/42/report")
    assert_one_line(run_spec(tmp_path, spec), "KICKOFF_RUN_SECRET is not set, but the spec has a report_url")


def test_a_used_workspace_is_refused(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "leftover").write_text("x")
    assert_one_line(run_spec(tmp_path, make_spec(remote, script("edit.py"))), "must be a new or empty directory")
