"""The agent's whole process tree dies with its runner, even when the runner is killed with SIGKILL mid-run: through
bubblewrap's PID namespace when sandboxed, through the tether (bot.runner_program.tether) when not."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.runner_program.sandbox_support import host_processes_with, require_bwrap, wait_until_gone
from tests.runner_program.support import PYTHON, ROOT, command_line, make_remote, make_spec, runner_env

# The agent: a `setsid` grandchild with an empty environment, a double-forked daemon, then work for five minutes.
# Every process of it carries the token in its command line.
LEAVE_AND_WORK = r"""
import os, subprocess, sys, time
token = sys.argv[1]
subprocess.Popen(["setsid", "env", "-i", "sh", "-c", f"exec sleep 300.{token}"],
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", f"301.{token}"])
    os._exit(0)
time.sleep(300)
"""
SCRIPT = Path(__file__).parent / "scripts" / "untethered_or_not.py"


def new_token() -> str:
    return str(secrets.randbelow(10**12) + 10**12)


def wait_for(token: str, count: int, seconds: float = 60.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while len(found := host_processes_with(token)) < count:
        assert time.monotonic() < deadline, f"only {len(found)} of the agent's {count} processes started"
        time.sleep(0.05)
    return found


def kill_all(token: str) -> None:
    for pid in host_processes_with(token):  # never leave them behind for the next test, even on failure
        os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("mode", ["required", "off"])
def test_a_runner_killed_mid_run_leaves_no_agent_process(tmp_path: Path, mode: str) -> None:
    if mode == "required":
        require_bwrap()
    token = new_token()
    spec = make_spec(make_remote(tmp_path), [PYTHON, "-c", LEAVE_AND_WORK, token], sandbox=mode,
                     timeout_seconds=600)
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    runner = subprocess.Popen(command_line(spec_path, tmp_path / "ws"), env=runner_env(), cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(token, 3)  # the agent, its setsid grandchild, its daemon
        runner.kill()
        runner.wait()
        assert wait_until_gone(token, 15) == []
    finally:
        runner.kill()
        runner.wait()
        kill_all(token)


@pytest.mark.parametrize("tethered", [True, False])
def test_the_tether_is_what_takes_an_unsandboxed_tree_along(tmp_path: Path, tethered: bool) -> None:
    token = new_token()
    runner = subprocess.Popen([PYTHON, str(SCRIPT), "on" if tethered else "off", str(tmp_path),
                               PYTHON, "-c", LEAVE_AND_WORK, token], env={**runner_env(), "PYTHONPATH": str(ROOT)},
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(token, 3)
        runner.kill()
        runner.wait()
        if tethered:
            assert wait_until_gone(token, 15) == []
        else:
            # Without the tether (the code before it), the agent and its grandchildren outlive a killed runner.
            time.sleep(0.5)
            assert len(host_processes_with(token)) == 3
    finally:
        runner.kill()
        runner.wait()
        kill_all(token)


def test_the_tether_passes_the_exit_status_and_kills_what_the_program_left(tmp_path: Path) -> None:
    token = new_token()
    tether = str(ROOT / "bot" / "runner_program" / "tether.py")
    code = f"import subprocess, sys; subprocess.Popen(['sleep', '302.{token}'], start_new_session=True); sys.exit(7)"
    done = subprocess.run([PYTHON, "-I", "-S", tether, "--", PYTHON, "-c", code], cwd=tmp_path, check=False,
                          timeout=60)
    try:
        assert done.returncode == 7
        assert wait_until_gone(token, 5) == []
        killed = subprocess.run([PYTHON, "-I", "-S", tether, "--", "sh", "-c", "kill -TERM $$"], check=False,
                                timeout=60)
        assert killed.returncode == -signal.SIGTERM
        missing = subprocess.run([PYTHON, "-I", "-S", tether, "--", "no-such-program-xyz"], check=False,
                                 capture_output=True, text=True, timeout=60)
        assert missing.returncode == 127
        assert "no-such-program-xyz" in missing.stderr
    finally:
        kill_all(token)
