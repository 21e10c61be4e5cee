"""An agent cut short by its timeout, its idle watchdog or its cost budget: with `publish_incomplete`, what it left is
checked like any run's and pushed, and the result says `incomplete`; without it, nothing is pushed, as before. A real
runner program, real git, the scripted agent tests/runner_program/scripts/partial.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.runner_program.support import make_remote, make_spec, run_program, script

BRANCH = "kickoff/7-fix-house-42"
OVER_BUDGET = "the agent passed its cost budget of $1.00 (`limits.max_cost_usd`), at $1.30 and was stopped"
TIMED_OUT = "the agent did not finish within 10 s and was stopped"


def test_a_timed_out_agent_that_changed_files_is_published_incomplete(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    started = time.monotonic()
    out = run_program(tmp_path, make_spec(remote, script("partial.py"), timeout_seconds=10, publish_incomplete=True,
                                          verify_command="false"))
    result = out.result
    assert (result.outcome, result.incomplete, result.pushed) == ("succeeded", True, True), result.reason
    assert result.reason == TIMED_OUT
    assert result.files_changed == ("NOTES.md", "src/app.py")
    assert result.verify is None  # verify does not run on half a change
    assert result.head_sha == remote.branch_sha(BRANCH)
    assert remote.show(BRANCH, "src/app.py").strip().endswith("return 42")
    assert remote.show(BRANCH, "NOTES.md").startswith("Half done")
    assert "writing the tests next" in result.transcript_tail
    assert time.monotonic() - started < 40
    assert f"run 42: succeeded: {TIMED_OUT}" in out.process.stdout


def test_without_publish_incomplete_a_timed_out_agent_pushes_nothing(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    out = run_program(tmp_path, make_spec(remote, script("partial.py"), timeout_seconds=10))
    result = out.result
    assert (result.outcome, result.reason, result.incomplete, result.pushed) == ("timed_out", TIMED_OUT, False,
                                                                                 False)
    assert remote.branch_sha(BRANCH) is None


def test_a_timed_out_agent_that_changed_nothing_stays_timed_out(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    out = run_program(tmp_path, make_spec(remote, script("hang.py", str(tmp_path / "pids")), timeout_seconds=10,
                                          publish_incomplete=True))
    assert (out.result.outcome, out.result.reason, out.result.pushed) == ("timed_out", TIMED_OUT, False)
    assert remote.branch_sha(BRANCH) is None


def test_what_a_stopped_agent_left_goes_through_the_protected_path_check(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    out = run_program(tmp_path, make_spec(remote, script("partial.py", "protected"), timeout_seconds=10,
                                          publish_incomplete=True))
    result = out.result
    assert (result.outcome, result.pushed, result.incomplete) == ("failed", False, False)
    assert result.reason == (f"{TIMED_OUT}; the agent changed protected paths: .github/workflows/ci.yml; "
                             "nothing was pushed")
    assert remote.branch_sha(BRANCH) is None


def test_what_a_stopped_agent_left_goes_through_the_change_limit(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    out = run_program(tmp_path, make_spec(remote, script("partial.py"), timeout_seconds=10, publish_incomplete=True,
                                          max_changed_files=1))
    assert (out.result.outcome, out.result.pushed) == ("failed", False)
    assert out.result.reason == (f"{TIMED_OUT}; the agent changed 2 files, more than the limit of 1; "
                                 "nothing was pushed")
    assert remote.branch_sha(BRANCH) is None


def test_an_agent_whose_streamed_cost_passes_the_budget_is_stopped_and_published(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    started = time.monotonic()
    out = run_program(tmp_path, make_spec(remote, script("partial.py", "0.40", "0.90", "1.30"), timeout_seconds=300,
                                          max_cost_usd=1.0, publish_incomplete=True))
    result = out.result
    assert (result.outcome, result.incomplete, result.pushed) == ("succeeded", True, True), result.reason
    assert result.reason == OVER_BUDGET
    assert result.usage.cost_usd == pytest.approx(1.30)  # its last cumulative line is its final report
    assert remote.show(BRANCH, "NOTES.md").startswith("Half done")
    assert time.monotonic() - started < 60, "stopped at the budget, long before its timeout"


def test_an_agent_over_budget_without_publish_incomplete_fails_and_pushes_nothing(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    out = run_program(tmp_path, make_spec(remote, script("partial.py", "0.40", "1.30"), timeout_seconds=300,
                                          max_cost_usd=1.0))
    assert (out.result.outcome, out.result.pushed) == ("failed", False)
    assert out.result.reason == OVER_BUDGET
    assert remote.branch_sha(BRANCH) is None


def test_an_agent_within_its_budget_is_left_to_finish(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    out = run_program(tmp_path, make_spec(remote, script("partial.py", "0.40", "0.90"), timeout_seconds=10,
                                          max_cost_usd=1.0, publish_incomplete=True))
    assert (out.result.outcome, out.result.incomplete, out.result.reason) == ("succeeded", True, TIMED_OUT)


def test_a_follow_up_cut_short_never_pushes_half_a_change_onto_its_branch(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    (tmp_path / "1").mkdir()
    first = run_program(tmp_path / "1", make_spec(remote, script("cost_report.py")))
    assert first.result.outcome == "succeeded"
    (tmp_path / "2").mkdir()
    second = run_program(tmp_path / "2", make_spec(remote, script("partial.py"), checkout="branch", run_id=43,
                                                   timeout_seconds=10, publish_incomplete=True))
    assert (second.result.outcome, second.result.reason, second.result.pushed) == ("timed_out", TIMED_OUT, False)
    assert remote.branch_sha(BRANCH) == first.result.head_sha
