"""Runners below the server: a real runner (the runner program, bubblewrap, the agent) at the lowest CPU priority,
its session's autogroup included, read from /proc while it runs."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.runner_program import priority
from bot.runner_program.process import descendants, process_table
from bot.runners.local import LocalRunner, parse_ref
from bot.runs.backend import RunnerExit
from bot.runspec import AgentCommand, CommitIdentity, RunSpec
from tests.runner_program.sandbox_support import bwrap  # noqa: F401 - the fixture
from tests.runner_program.support import make_remote
from tests.runs.support import eventually

# The agent, in the sandbox: what it sees of its own priority, then it waits for the test to have looked.
AGENT = """
import os, pathlib, sys, time
repo = pathlib.Path(sys.argv[1])
group = open('/proc/self/autogroup').read().split() if os.path.exists('/proc/self/autogroup') else ['-', '-', '-']
(repo / 'priority.txt').write_text(f"{group[0]} {group[2]} {os.getpriority(os.PRIO_PROCESS, 0)}")
deadline = time.monotonic() + 60
while not (repo / 'go').exists() and time.monotonic() < deadline:
    time.sleep(0.02)
"""


def nice_of(pid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, pid)


@pytest.mark.usefixtures("bwrap")
async def test_a_runner_and_its_sandboxed_agent_run_at_the_lowest_priority_in_a_low_autogroup(
    tmp_path: Path,
) -> None:
    remote = make_remote(tmp_path)
    exits: list[RunnerExit] = []

    async def on_exit(exit_: RunnerExit) -> None:
        exits.append(exit_)

    backend = LocalRunner(workspace_root=tmp_path / "ws", grace_seconds=1)  # the real runner program, sandboxed
    backend.bind(on_exit)
    spec = RunSpec(
        run_id=7, repository="octo/demo", clone_url=remote.url, base_branch="main", branch="kickoff/1-fix-a-7",
        task="fix", issue_number=1, prompt="Look at your priority.",
        agent=AgentCommand(name="a", adapter="command", command=(sys.executable, "-c", AGENT, "{workdir}")),
        commit_identity=CommitIdentity(name="kickoff[bot]", email="kickoff[bot]@users.noreply.github.com"),
        commit_message="fix", report_url=None,
    )
    ref = await backend.start(spec, {}, deadline=120)
    parsed = parse_ref(ref)
    assert parsed is not None
    _, runner_pid, workspace = parsed
    found: list[Path] = []

    async def agent_wrote() -> bool:  # the runner program makes its own directory under the workspace
        found[:] = list(workspace.glob("*/agent/repo/priority.txt"))
        return bool(found)

    try:
        await eventually(agent_wrote, 60, "the agent to report its priority")
        repo = found[0].parent
        tree = descendants(process_table(), {runner_pid})
        mine = priority.read_autogroup()
        groups = {pid: priority.read_autogroup(pid) for pid in tree}
        nices = {pid: nice_of(pid) for pid in tree}
        sessions = {os.getsid(pid) for pid in tree}
    finally:
        for path in found:
            (path.parent / "go").write_text("")
    seen_inside = (repo / "priority.txt").read_text().split()

    async def exited() -> bool:
        return bool(exits)

    await eventually(exited, 60, "the runner to exit")
    await backend.aclose()

    assert len(tree) >= 3  # the runner, bwrap (and its init), the agent
    assert set(nices.values()) == {19}, nices
    assert int(seen_inside[2]) == 19  # the agent's own nice value, read in the sandbox
    assert os.getsid(0) not in sessions  # the runner started a session of its own (and the sandbox another)
    if mine is not None:  # a kernel with autogroups: each runner session's autogroup is at nice 19, not ours
        seen = [group for group in groups.values() if group is not None]
        assert len(seen) == len(groups)
        assert {nice for _, nice in seen} == {19}, groups
        assert len({name for name, _ in seen}) >= 2  # the runner's session, the sandbox's
        assert mine[0] not in {name for name, _ in seen}
        assert seen_inside[1] == "19"  # what the agent itself sees in /proc/self/autogroup
        assert priority.read_autogroup() == mine  # the server's own autogroup is untouched
    assert exits[0].exit_code == 0
    assert exits[0].result is not None
    assert exits[0].result.outcome == "succeeded", exits[0].log_tail


async def test_lower_puts_a_process_and_its_sessions_autogroup_at_nice_19() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        before = priority.read_autogroup(child.pid)
        outcome = priority.lower(child.pid)
        assert outcome.nice
        assert outcome.problem is None
        assert nice_of(child.pid) == 19
        if before is not None:
            assert outcome.autogroup
            assert priority.read_autogroup(child.pid) == (before[0], 19)
        assert nice_of(0) != 19  # only the child's
        assert priority.lower(child.pid) == outcome  # again: nothing left to do, the same answer
    finally:
        child.kill()
        child.wait()
    await asyncio.sleep(0)


def test_a_process_that_cannot_be_lowered_is_said_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(priority, "_warned", False)  # a fresh process's state: nothing said yet
    nobody = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1  # a pid no process can have
    with caplog.at_level(logging.WARNING, logger="bot.runner_program.priority"):
        first = priority.lower_runner(nobody)
        second = priority.lower_runner(nobody)
    assert not first.nice
    assert not second.nice
    assert len([r for r in caplog.records if "could not lower" in r.getMessage()]) == 1
