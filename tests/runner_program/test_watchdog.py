"""The no-progress watchdog (RunSpec.idle_timeout_seconds): a real agent subprocess that hangs silently is stopped
as timed out, long before the run's timeout, with a reason naming the likely cause; one that keeps working (writing
files, without printing) is not. Also: agent CLIs' scratch files never reach a commit."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import messages
from bot.runner_program.program import idle_cause, only_waiting
from tests.runner_program.support import PYTHON, make_remote, make_spec, process_gone, run_program, script

BRANCH = "kickoff/7-fix-house-42"
SILENT_AFTER = """
import sys, time
from pathlib import Path
Path(sys.argv[1]).write_text(str(__import__("os").getpid()))
print(sys.argv[2], flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize(
    ("last_words", "cause"),
    [
        ("Reconnecting... 2/5 (error sending request for url (http://127.0.0.1:9/v1/responses))", "unreachable"),
        ("Waiting for authentication in your browser...", "waiting for a login"),
        ("", "likely causes: its model endpoint is unreachable"),
    ],
)
def test_a_silent_agent_is_stopped_by_the_watchdog_with_the_likely_cause(tmp_path: Path, last_words: str,
                                                                         cause: str) -> None:
    remote = make_remote(tmp_path)
    pid_file = tmp_path / "pid"
    # 5 s: the agent's last words are printed well within it (so the cause read from them is the one asserted).
    spec = make_spec(remote, [PYTHON, "-c", SILENT_AFTER, str(pid_file), last_words], timeout_seconds=600,
                     idle_timeout_seconds=5)
    out = run_program(tmp_path, spec, timeout=120)
    result = out.result
    assert result.outcome == "timed_out", result.reason
    assert result.reason is not None
    assert result.reason.startswith("the agent printed nothing (but that it was retrying or waiting) and changed no "
                                    "file for 5 s (`limits.agent_idle_minutes`) and was stopped; ")
    assert cause in result.reason
    assert remote.branch_sha(BRANCH) is None
    assert process_gone(int(pid_file.read_text()))


RETRYING_FOREVER = """
import sys, time
from pathlib import Path
Path(sys.argv[1]).write_text(str(__import__("os").getpid()))
n = 0
while True:  # as Codex does against a dead endpoint: a reconnect line every moment, never giving up
    n += 1
    print(f"Reconnecting... {n}/5 (error sending request for url (http://127.0.0.1:9/v1/responses))", flush=True)
    time.sleep(0.3)
"""


def test_an_agent_that_only_prints_retries_is_stopped_by_the_watchdog(tmp_path: Path) -> None:
    """Printing "Reconnecting..." forever is not progress: the run ends at the idle time, not at its timeout."""
    remote = make_remote(tmp_path)
    pid_file = tmp_path / "pid"
    spec = make_spec(remote, [PYTHON, "-c", RETRYING_FOREVER, str(pid_file)], timeout_seconds=600,
                     idle_timeout_seconds=5)
    out = run_program(tmp_path, spec, timeout=120)
    assert out.result.outcome == "timed_out", out.result.reason
    assert out.result.reason is not None
    assert "its model endpoint is likely unreachable" in out.result.reason
    assert process_gone(int(pid_file.read_text()))


def test_only_retry_lines_count_as_waiting() -> None:
    assert only_waiting("Reconnecting... 2/5 (error sending request for url (http://127.0.0.1:9))")
    assert only_waiting("Retrying in 4s: ECONNREFUSED")
    assert not only_waiting("Edited calculator.py: fixed the timeout handling")
    assert not only_waiting("Running the tests")


def test_an_agent_that_keeps_changing_files_without_printing_is_not_idle(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    # 8 s of work, a write every 0.1 s, against a 4 s idle time: silent on stdout, but never idle.
    work = ("import time\nfrom pathlib import Path\nfor i in range(80):\n"
            "    Path('progress.txt').write_text(str(i))\n    time.sleep(0.1)\n")
    out = run_program(tmp_path, make_spec(remote, [PYTHON, "-c", work], idle_timeout_seconds=4), timeout=120)
    assert out.result.outcome == "succeeded", out.result.reason
    assert out.result.files_changed == ("progress.txt",)


def test_the_watchdog_leaves_a_slow_agent_to_the_runs_timeout_when_it_prints(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    pids = tmp_path / "pids"
    # hang.py prints once and sleeps: with the default idle time (5 minutes) the run's own timeout ends it.
    out = run_program(tmp_path, make_spec(remote, script("hang.py", str(pids)), timeout_seconds=10))
    assert out.result.reason == "the agent did not finish within 10 s and was stopped"


def test_idle_cause_reads_the_last_line_only() -> None:
    assert idle_cause("please log in\nReconnecting... 1/5\n") == messages.AGENT_IDLE_ENDPOINT.format(
        line="Reconnecting... 1/5")
    assert idle_cause("[kickoff: running the agent WITHOUT a sandbox: off]\n") == messages.AGENT_IDLE_UNKNOWN


def test_agent_scratch_files_are_never_committed_for_any_adapter(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    scratch = ("import os\nfrom pathlib import Path\n"
               "Path('.aider.chat.history.md').write_text('# aider chat started at ...\\n> /ws/agent/repo\\n')\n"
               "Path('.aider.input.history').write_text('x')\n"
               "os.makedirs('.aider.tags.cache.v4', exist_ok=True)\n"
               "Path('.aider.tags.cache.v4/cache.db').write_text('x')\n"
               "os.makedirs('.claude', exist_ok=True)\n"
               "Path('.claude/settings.local.json').write_text('{}')\n"
               "Path('src/app.py').write_text('def answer() -> int:\\n    return 42\\n')\n")
    out = run_program(tmp_path, make_spec(remote, [PYTHON, "-c", scratch]))
    assert out.result.outcome == "succeeded", out.result.reason
    assert out.result.files_changed == ("src/app.py",)
    assert not [name for name in remote.files(BRANCH) if ".aider" in name or ".claude" in name]
