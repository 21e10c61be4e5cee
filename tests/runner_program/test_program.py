"""The runner program as a backend runs it: a real subprocess, real git against a bare repository, real agents (the
`command` adapter with the scripts in tests/runner_program/scripts/)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bot.runner_program.git import TRAILER
from tests.runner_program.support import (
    IDENTITY,
    PYTHON,
    SCRIPTS,
    all_bytes,
    command_line,
    git,
    make_remote,
    make_spec,
    new_token,
    process_gone,
    receiver,
    run_program,
    runner_env,
    script,
)

BRANCH = "kickoff/7-fix-house-42"


def test_an_edit_is_committed_with_the_trailer_and_identity_and_pushed(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    out = run_program(tmp_path, make_spec(remote, script("edit.py", "{prompt_file}")))
    assert out.process.returncode == 0, out.process.stderr
    result = out.result
    assert result.outcome == "succeeded", result.reason
    assert result.pushed
    assert result.branch == BRANCH
    assert result.base_sha == remote.base_sha
    assert result.head_sha == remote.branch_sha(BRANCH)
    assert result.files_changed == ("NOTES.md", "src/app.py")
    assert result.files_deleted == ()
    assert (result.lines_added, result.lines_removed) == (2, 1)  # 41 → 42 in app.py, a new line in NOTES.md
    assert "edited src/app.py" in result.transcript_tail
    assert result.duration_seconds > 0
    assert remote.show(BRANCH, "src/app.py").strip().endswith("return 42")
    assert remote.show(BRANCH, "NOTES.md") == "The answer is 42.\n"
    message = remote.log_message(BRANCH)
    assert message.startswith("fix: the answer (#7)\n\n")
    assert message.strip().endswith(f"{TRAILER}: 42")
    person = f"{IDENTITY['name']} <{IDENTITY['email']}>"
    assert remote.author(BRANCH) == f"{person} / {person}"
    assert remote.branch_sha("main") == remote.base_sha  # the base branch is untouched
    assert "prompt.md" not in remote.files(BRANCH)
    assert f"run 42: succeeded (result in {out.result_path})" in out.process.stdout


def test_a_deleted_file_and_the_changed_lines_are_reported_for_the_brief(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    out = run_program(tmp_path, make_spec(remote, script("delete.py")))
    result = out.result
    assert result.outcome == "succeeded", result.reason
    assert result.files_changed == ("README.md", "src/app.py")
    assert result.files_deleted == ("README.md",)
    assert (result.lines_added, result.lines_removed) == (1, 2)
    assert "README.md" not in remote.files(BRANCH)


def test_no_changes_pushes_nothing(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    out = run_program(tmp_path, make_spec(remote, script("noop.py")))
    assert out.process.returncode == 0
    assert out.result.outcome == "no_changes"
    assert not out.result.pushed
    assert out.result.files_changed == ()
    assert remote.branch_sha(BRANCH) is None


def test_a_crashing_agent_fails_with_its_exit_code_and_pushes_nothing(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    out = run_program(tmp_path, make_spec(remote, script("crash.py")))
    assert out.process.returncode == 0
    assert out.result.outcome == "failed"
    assert out.result.reason == "the agent exited with code 3"
    assert "something went wrong" in out.result.transcript_tail
    assert remote.branch_sha(BRANCH) is None


def test_an_agent_that_is_not_installed_fails_clearly(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    out = run_program(tmp_path, make_spec(remote, ["no-such-agent-cli", "{prompt_file}"]))
    assert out.result.outcome == "failed"
    assert out.result.reason is not None
    assert out.result.reason.startswith("could not start the agent: no-such-agent-cli")


def test_a_hanging_agent_times_out_and_leaves_no_process_behind(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    pids = tmp_path / "pids"
    started = time.monotonic()
    out = run_program(tmp_path, make_spec(remote, script("hang.py", str(pids)), timeout_seconds=10))
    assert out.result.outcome == "timed_out"
    assert out.result.reason == "the agent did not finish within 10 s and was stopped"
    assert "working…" in out.result.transcript_tail
    assert time.monotonic() - started < 40
    assert remote.branch_sha(BRANCH) is None
    agent, stubborn, escaped = (int(pid) for pid in pids.read_text().split())
    deadline = time.monotonic() + 5
    while not all(process_gone(pid) for pid in (agent, stubborn, escaped)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_gone(agent)
    assert process_gone(stubborn), "a child ignoring SIGTERM must be killed with the group"
    assert process_gone(escaped), "a grandchild that left the process group must be found and killed"


def test_megabytes_of_output_keep_a_bounded_transcript_and_bounded_memory(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    peak = tmp_path / "peak-kb"
    out = run_program(tmp_path, make_spec(remote, script("flood.py", "200", str(peak)),
                                          transcript_limit_bytes=4096))
    assert out.result.outcome == "no_changes"
    tail = out.result.transcript_tail
    assert tail.endswith("THE END\n")
    assert len(tail.encode()) <= 4096 + 100
    assert tail.startswith("[… ")
    assert "earlier bytes not kept]" in tail
    assert int(peak.read_text()) < 150 * 1024, "the runner must not hold the agent's output in memory"
    assert len(out.result_path.read_bytes()) < 20_000


def test_a_protected_path_fails_the_run_and_nothing_is_pushed(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    out = run_program(tmp_path, make_spec(remote, script("protected.py")))
    assert out.result.outcome == "failed"
    assert out.result.reason == "the agent changed protected paths: .github/workflows/ci.yml; nothing was pushed"
    assert out.result.files_changed == (".github/workflows/ci.yml", "src/app.py")
    assert remote.branch_sha(BRANCH) is None


def test_a_change_the_agent_committed_itself_is_still_checked(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    out = run_program(tmp_path, make_spec(remote, script("sneaky_commit.py")))
    assert out.result.outcome == "failed"
    assert ".github/workflows/ci.yml" in (out.result.reason or "")
    assert remote.branch_sha(BRANCH) is None


def test_too_many_changed_files_fail_the_run(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    out = run_program(tmp_path, make_spec(remote, script("many_files.py", "6"), max_changed_files=5))
    assert out.result.outcome == "failed"
    assert out.result.reason == "the agent changed 6 files, more than the limit of 5; nothing was pushed"
    assert remote.branch_sha(BRANCH) is None


def test_a_final_json_report_gives_summary_and_usage(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    out = run_program(tmp_path, make_spec(remote, script("cost_report.py")))
    result = out.result
    assert result.outcome == "succeeded"
    assert result.summary == "Changed the answer to 42."
    assert result.usage.input_tokens == 1200
    assert result.usage.output_tokens == 345
    assert result.usage.cost_usd == pytest.approx(0.0123)
    assert result.usage.turns == 3
    assert result.usage.model == "house-model-1"


def test_a_passing_verify_is_recorded_and_its_artifacts_are_not_committed(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    spec = make_spec(remote, script("edit.py", "{prompt_file}"), verify_command=f"{PYTHON} {SCRIPTS}/verify.py pass")
    with receiver() as reports:
        spec["report_url"] = reports.url
        out = run_program(tmp_path, spec, env=runner_env(run_secret="s3cret-run-value"))
    result = out.result
    assert result.outcome == "succeeded"
    assert result.verify is not None
    assert result.verify.passed
    assert result.verify.exit_code == 0
    assert "1 passed" in result.verify.output_tail
    assert result.files_changed == ("NOTES.md", "src/app.py")
    assert "build/out.txt" not in remote.files(BRANCH)
    assert reports.events() == ["started", "agent_done", "verify_done", "pushed", "finished"]


def test_a_failing_verify_is_recorded_and_still_pushed(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    out = run_program(tmp_path, make_spec(remote, script("edit.py", "{prompt_file}"),
                                          verify_command=f"{PYTHON} '{SCRIPTS}/verify.py' fail"))
    result = out.result
    assert result.outcome == "succeeded"
    assert result.pushed
    assert result.verify is not None
    assert not result.verify.passed
    assert result.verify.exit_code == 1
    assert "FAILED test_answer" in result.verify.output_tail
    assert remote.branch_sha(BRANCH) == result.head_sha


def test_a_verify_command_that_does_not_exist_is_a_failed_verify(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    out = run_program(tmp_path, make_spec(remote, script("edit.py", "{prompt_file}"),
                                          verify_command="no-such-test-runner -q"))
    assert out.result.outcome == "succeeded"
    assert out.result.verify is not None
    assert out.result.verify.exit_code is None
    assert not out.result.verify.passed
    assert "cannot start the verify command" in out.result.verify.output_tail


def test_a_research_run_pushes_only_the_report(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    report_path = "research/7-answer.md"
    out = run_program(tmp_path, make_spec(remote, script("research.py", report_path), output="report",
                                          report_path=report_path, task="research"))
    result = out.result
    assert result.outcome == "succeeded", result.reason
    assert result.files_changed == (report_path,)
    assert result.report is not None
    assert result.report.startswith("# Findings")
    assert remote.show(BRANCH, report_path).startswith("# Findings")
    assert remote.show(BRANCH, "src/app.py") == remote.show("main", "src/app.py")


def test_a_research_run_without_the_report_fails(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    out = run_program(tmp_path, make_spec(remote, script("edit.py", "{prompt_file}"), output="report",
                                          report_path="research/7.md"))
    assert out.result.outcome == "failed"
    assert out.result.reason == "the agent did not write the report at research/7.md"
    assert remote.branch_sha(BRANCH) is None


def test_a_follow_up_fast_forwards_the_existing_branch(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    (tmp_path / "1").mkdir()
    first = run_program(tmp_path / "1", make_spec(remote, script("cost_report.py")))
    assert first.result.outcome == "succeeded"
    (tmp_path / "2").mkdir()
    second = run_program(tmp_path / "2", make_spec(remote, script("edit.py", "{prompt_file}"), checkout="branch",
                                                   run_id=43))
    result = second.result
    assert result.outcome == "succeeded", result.reason
    assert result.base_sha == first.result.head_sha
    assert remote.branch_sha(BRANCH) == result.head_sha
    assert result.files_changed == ("NOTES.md",)  # src/app.py already had the fix on the branch
    assert remote.log_message(BRANCH).strip().endswith(f"{TRAILER}: 43")


def test_a_rejected_push_fails_with_gits_reason(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    (tmp_path / "1").mkdir()
    assert run_program(tmp_path / "1", make_spec(remote, script("cost_report.py"))).result.outcome == "succeeded"
    (tmp_path / "2").mkdir()
    # A new run on the base branch whose branch name is already taken: never forced.
    out = run_program(tmp_path / "2", make_spec(remote, script("edit.py", "{prompt_file}")))
    assert out.result.outcome == "failed"
    assert out.result.reason is not None
    assert out.result.reason.startswith("git push to kickoff/7-fix-house-42 failed (exit 1): ")
    assert "[rejected]" in out.result.reason
    assert not out.result.pushed


def test_a_missing_base_branch_fails_the_clone(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    out = run_program(tmp_path, make_spec(remote, script("edit.py", "{prompt_file}"), base_branch="develop"))
    assert out.process.returncode == 0
    assert out.result.outcome == "failed"
    assert out.result.reason is not None
    assert out.result.reason.startswith("clone: git clone of branch develop failed")


def test_reports_reach_the_receiver_with_the_bearer_secret_despite_5xx(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    with receiver(fail_first=2) as reports:
        spec = make_spec(remote, script("cost_report.py"), report_url=reports.url)
        out = run_program(tmp_path, spec, env=runner_env(run_secret="per-run-secret-value-123"))
    assert out.result.outcome == "succeeded"
    assert [r["status"] for r in reports.requests][:3] == [503, 503, 200]
    assert reports.events() == ["started", "agent_done", "pushed", "finished"]
    for request in reports.requests:
        assert request["headers"]["Authorization"] == "Bearer per-run-secret-value-123"
        assert request["path"] == "/api/runs/42/report"
    finished = reports.reports()[-1]
    assert finished.result == out.result
    assert "per-run-secret-value-123" not in json.dumps([r["body"] for r in reports.requests])


def test_an_unreachable_report_url_does_not_change_the_outcome(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    spec = make_spec(remote, script("noop.py"), report_url="http://127.0.0.1:9/api/runs/42/report")
    out = run_program(tmp_path, spec, env=runner_env(run_secret="per-run-secret-value-123"))
    assert out.process.returncode == 0
    assert out.result.outcome == "no_changes"
    assert "not delivered" in out.process.stderr


def test_sigterm_cancels_the_run_and_kills_the_agent_group(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    pids = tmp_path / "pids"
    with receiver() as reports:
        spec = make_spec(remote, script("wait.py", str(pids)), report_url=reports.url)
        spec_path = tmp_path / "spec.json"
        spec_path.write_text(json.dumps(spec))
        workspace = tmp_path / "ws"
        proc = subprocess.Popen(command_line(spec_path, workspace), env=runner_env(run_secret="secret-value-1234"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while not (pids.exists() and len(pids.read_text().split()) == 2) and time.monotonic() < deadline:
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            stdout, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0
    assert "run 42: cancelled" in stdout
    result = json.loads((workspace / "result.json").read_text())
    assert result["outcome"] == "cancelled"
    assert reports.events()[-1] == "finished"
    assert reports.reports()[-1].result is not None
    for pid in (int(p) for p in pids.read_text().split()):
        deadline = time.monotonic() + 5
        while not process_gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process_gone(pid)
    assert remote.branch_sha(BRANCH) is None


def test_the_token_appears_nowhere_and_the_agent_cannot_see_credentials(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    token, run_secret = new_token(), new_token()
    seen = tmp_path / "seen.json"
    spec = make_spec(remote, script("dump_env.py", str(seen)),
                     agent={"env": ["KICKOFF_GIT_TOKEN", "KICKOFF_RUN_SECRET", "GITHUB_TOKEN", "PRIVATE_KEY",
                                    "WEBHOOK_SECRET", "DATABASE_URL", "HOUSE_API_KEY"]})
    with receiver() as reports:
        spec["report_url"] = reports.url
        env = runner_env(token=token, run_secret=run_secret, GITHUB_TOKEN="gh-token-value-xyz",
                         PRIVATE_KEY="private-key-value", WEBHOOK_SECRET="webhook-secret-value",
                         DATABASE_URL="postgresql://u:p@db/x", HOUSE_API_KEY="house-key-value-123",
                         UNLISTED_VARIABLE="not-passed")
        out = run_program(tmp_path, spec, env=env)
    assert out.result.outcome == "succeeded", out.result.reason

    agent = json.loads(seen.read_text())
    visible = agent["env"]
    for name in ("KICKOFF_GIT_TOKEN", "KICKOFF_RUN_SECRET", "GITHUB_TOKEN", "PRIVATE_KEY", "WEBHOOK_SECRET",
                 "DATABASE_URL", "UNLISTED_VARIABLE", "GIT_ASKPASS"):
        assert name not in visible
    assert visible["HOUSE_API_KEY"] == "house-key-value-123"
    assert set(visible) <= {"PATH", "HOME", "LANG", "TERM", "TMPDIR", "HOUSE_API_KEY", "KICKOFF_RUN_MARKER",
                            "LC_CTYPE", "PWD", "OLDPWD", "SHLVL", "_"}
    assert Path(visible["HOME"]).is_relative_to(out.workspace)
    # The runner's own environment block, readable through /proc by any process of the same user, is scrubbed.
    assert token not in agent["parent_environ"]
    assert run_secret not in agent["parent_environ"]
    assert token not in agent["git_config"]

    everything: list[tuple[str, bytes]] = [(str(p), data) for p, data in all_bytes(out.workspace)]
    everything += [("stdout", out.process.stdout.encode()), ("stderr", out.process.stderr.encode()),
                   ("spec", (tmp_path / "spec.json").read_bytes())]
    everything += [(f"report body {i}", r["body"].encode()) for i, r in enumerate(reports.requests)]
    assert {r["headers"]["Authorization"] for r in reports.requests} == {f"Bearer {run_secret}"}
    everything += [(str(p), data) for p, data in all_bytes(remote.path)]
    for where, data in everything:
        assert token.encode() not in data, f"the git token leaked into {where}"
        assert run_secret.encode() not in data, f"the run secret leaked into {where}"
    config = (out.workspace / "agent" / "repo" / ".git" / "config").read_text()
    assert "@" not in config.split("url =", 1)[1].splitlines()[0]
    assert "house-key-value-123" not in out.result.transcript_tail  # passed-through API keys are redacted too
    assert "[redacted]" in out.result.transcript_tail


def test_an_agent_cannot_redirect_the_push_or_run_hooks(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    evil = make_remote(tmp_path, name="evil.git")
    marker = tmp_path / "stolen.txt"
    out = run_program(tmp_path, make_spec(remote, script("tamper.py", evil.url, str(marker), remote.url)),
                      env=runner_env(token=new_token()))
    assert out.result.outcome == "succeeded", out.result.reason
    assert remote.branch_sha(BRANCH) == out.result.head_sha
    assert evil.branch_sha(BRANCH) is None
    assert not marker.exists(), marker.read_text() if marker.exists() else ""


def test_the_default_result_file_and_workspace(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(make_spec(remote, script("noop.py"))))
    result_path = tmp_path / "out" / "result.json"
    done = subprocess.run(
        [PYTHON, "-m", "bot", "run-agent", "--spec", str(spec_path), "--result", str(result_path)],
        env={**runner_env(), "TMPDIR": str(tmp_path)}, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(result_path.read_text())["outcome"] == "no_changes"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("kickoff-run-42-")]


def test_the_prompt_file_is_outside_the_checkout(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    out = run_program(tmp_path, make_spec(remote, ["sh", "-c", 'test -f "$1" && echo x > PROMPT_SEEN', "sh",
                                                   "{prompt_file}"]))
    assert out.result.outcome == "succeeded", out.result.reason
    assert out.result.files_changed == ("PROMPT_SEEN",)
    prompt = out.workspace / "agent" / "prompt.md"
    assert prompt.read_text() == "Fix the answer in src/app.py.\n"
    assert not (out.workspace / "agent" / "repo" / "prompt.md").exists()
    assert os.path.commonpath([prompt, out.workspace / "agent" / "repo"]) == str(out.workspace / "agent")


def attempt_branch(tmp_path: Path, remote_url: str, branch: str, files: dict[str, str]) -> str:
    """An attempt's branch on the remote: one commit on main, as a runner pushes it."""
    work = tmp_path / f"attempt-{branch.replace('/', '-')}"
    git("clone", "-q", remote_url, str(work), cwd=tmp_path)
    git("checkout", "-q", "-b", branch, cwd=work)
    for rel, content in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(content)
    git("add", "-A", cwd=work)
    git("-c", "user.name=a", "-c", "user.email=a@example.com", "commit", "-q", "-m", "attempt", cwd=work)
    git("push", "-q", "origin", branch, cwd=work)
    return git("rev-parse", "HEAD", cwd=work).strip()


def test_a_judge_run_reads_the_attempts_diffs_and_answers_without_pushing(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    attempt_branch(tmp_path, remote.url, "kickoff/7-fix-a-1", {"src/app.py": "def answer() -> int:\n    return 40\n"})
    attempt_branch(tmp_path, remote.url, "kickoff/7-fix-b-2", {"src/app.py": "def answer() -> int:\n    return 42\n",
                                                              "tests/test_app.py": "assert True\n"})
    before = {branch: remote.branch_sha(branch) for branch in ("main", "kickoff/7-fix-a-1", "kickoff/7-fix-b-2")}
    spec = make_spec(remote, script("judge.py", "{prompt_file}"), run_id=9, branch="kickoff/7-fix-judge-house-9",
                     prompt="You are the judge of 3 attempts.", verify_command="false", judge={"attempts": [
                         {"run_id": 1, "branch": "kickoff/7-fix-a-1", "facts": "run 1: a attempt 1"},
                         {"run_id": 2, "branch": "kickoff/7-fix-b-2", "facts": "run 2: b attempt 1"},
                         {"run_id": 3, "branch": None, "facts": "run 3: c attempt 1"},
                     ]})
    out = run_program(tmp_path, spec, env=runner_env(token=new_token()))
    assert out.process.returncode == 0, out.process.stderr
    result = out.result
    assert (result.outcome, result.reason, result.pushed, result.branch, result.head_sha) == (
        "succeeded", None, False, None, None)
    assert result.verify is None  # a judge runs no verify (here it would fail)
    assert result.files_changed == ()
    assert json.loads(result.report or "") == {"ranking": [
        {"run": 2, "reason": "makes it 42"}, {"run": 1, "reason": "does not make it 42"},
        {"run": 3, "reason": "does not make it 42"}]}
    prompt = (out.workspace / "agent" / "prompt.md").read_text()
    assert prompt.startswith("You are the judge of 3 attempts.\n\n## Attempt: run 1\n\nrun 1: a attempt 1\n\n")
    assert "-    return 41\n+    return 40\n" in prompt
    assert "+++ b/tests/test_app.py" in prompt
    assert "(this attempt pushed no branch: there is no diff)" in prompt
    assert prompt.count("untrusted") >= 3  # every diff is fenced as data
    # Nothing was pushed: no new branch, the attempts and the base untouched.
    assert remote.branch_sha("kickoff/7-fix-judge-house-9") is None
    assert {branch: remote.branch_sha(branch) for branch in before} == before


def test_a_judge_runs_attempt_whose_branch_is_gone_says_so(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    spec = make_spec(remote, script("judge.py", "{prompt_file}"), run_id=9, branch="kickoff/7-fix-judge-house-9",
                     prompt="Judge.\n", judge={"attempts": [{"run_id": 1, "branch": "kickoff/7-fix-a-1", "facts": ""}]})
    out = run_program(tmp_path, spec)
    assert out.result.outcome == "succeeded", out.result.reason
    assert json.loads(out.result.report or "") == {"ranking": [{"run": 1, "reason": "does not make it 42"}]}
    prompt = (out.workspace / "agent" / "prompt.md").read_text()
    assert "(the branch of this attempt could not be read: git fetch of branch kickoff/7-fix-a-1 failed" in prompt


def test_a_judges_answer_is_passed_on_as_it_is_for_kickoff_to_validate(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    spec = make_spec(remote, script("noop.py"), run_id=9, branch="kickoff/7-fix-judge-house-9", prompt="Judge.\n",
                     judge={"attempts": []})
    out = run_program(tmp_path, spec)
    assert (out.result.outcome, out.result.report) == ("succeeded", "nothing to change")
