"""The local backend with real processes (the fake runner): workspaces, secrets, cancel, timeout, re-attach."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.runners.local import WORKSPACE_PREFIX, LocalRunner, ProcessIdentity, WorkspaceOwner, parse_ref
from bot.runs.backend import RunnerError, RunnerExit
from bot.runspec import ENV_GIT_TOKEN, ENV_RUN_SECRET, AgentCommand, CommitIdentity, RunSpec
from tests.runs.support import FAKE_RUNNER, eventually, live_processes, processes_alive, processes_gone

TOKEN = "ghs_faketoken0123456789abcdefghijklmnopqrstuv"
SECRET = "report-secret-0123456789"
SECRETS = {ENV_GIT_TOKEN: TOKEN, ENV_RUN_SECRET: SECRET}


def spec(run_id: int, *words: str) -> RunSpec:
    return RunSpec(
        run_id=run_id, repository="octo/hello", clone_url="https://github.com/octo/hello.git", base_branch="main",
        branch=f"kickoff/1-fix-a-{run_id}", task="fix", issue_number=1,
        agent=AgentCommand(name="a", adapter="command", command=("fake", *words)), prompt="Fix it.",
        commit_identity=CommitIdentity(name="kickoff[bot]", email="kickoff[bot]@users.noreply.github.com"),
        commit_message="fix", report_url=None,
    )


class Exits:
    def __init__(self) -> None:
        self.seen: list[RunnerExit] = []

    async def __call__(self, exit_: RunnerExit) -> None:
        self.seen.append(exit_)

    async def wait(self, count: int = 1, timeout: float = 20.0) -> list[RunnerExit]:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count:
            assert time.monotonic() < deadline, "the runner did not exit in time"
            await asyncio.sleep(0.02)
        return self.seen


def backend(tmp_path: Path, exits: Exits, **options: object) -> LocalRunner:
    runner = LocalRunner(command=(sys.executable, str(FAKE_RUNNER)), workspace_root=tmp_path / "ws",
                         grace_seconds=0.5, extra_env={"FAKE_RUNNER_LOG": str(tmp_path / "log.jsonl")},
                         **options)  # type: ignore[arg-type]
    runner.bind(exits)
    return runner


def records(tmp_path: Path) -> list[dict[str, object]]:
    import json

    path = tmp_path / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def started(tmp_path: Path, run_id: int) -> None:
    """Wait for the runner's own first record: until exec has finished, /proc shows an empty argv."""
    async def check() -> bool:
        return any(r["event"] == "start" and r["run"] == run_id for r in records(tmp_path))

    await eventually(check, 15, f"runner {run_id} to start")


async def test_a_runner_runs_in_its_own_workspace_with_the_secrets_in_its_environment_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", "never-for-runners")
    monkeypatch.setenv("HOUSE_API_KEY", "for-the-agent")
    exits = Exits()
    runner = backend(tmp_path, exits, agent_env=frozenset({"HOUSE_API_KEY"}))
    the_spec = spec(1, "sleep=0.6").model_copy(update={"agent": AgentCommand(
        name="a", adapter="command", command=("fake", "sleep=0.6"), env=("HOUSE_API_KEY",))})
    ref = await runner.start(the_spec, SECRETS, deadline=30)
    _host, pid, workspace = parse_ref(ref) or ("", 0, Path())
    await started(tmp_path, 1)
    assert runner.owns(ref)
    assert runner.running() == {1: ref}
    assert workspace.parent == (tmp_path / "ws").resolve()
    assert workspace.name.startswith(f"{WORKSPACE_PREFIX}1-")
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert TOKEN.encode() not in cmdline
    assert SECRET.encode() not in cmdline
    assert f"{ENV_GIT_TOKEN}={TOKEN}".encode() in environ.split(b"\0")
    assert os.getpgid(pid) == pid  # its own process group
    spec_file = workspace / "spec.json"
    assert stat.S_IMODE(spec_file.stat().st_mode) == 0o600
    assert TOKEN not in spec_file.read_text()
    assert SECRET not in spec_file.read_text()
    written = RunSpec.model_validate_json(spec_file.read_text())
    assert written.sandbox == "required"  # the backend's own decision, whatever the spec builder sent
    (done,) = await exits.wait()
    assert (done.run_id, done.exit_code, done.timed_out, done.cancelled) == (1, 0, False, False)
    assert done.result is not None
    assert done.result.outcome == "succeeded"
    start = next(r for r in records(tmp_path) if r["event"] == "start")
    assert start["token_sha256"] == hashlib.sha256(TOKEN.encode()).hexdigest()
    assert start["cwd"] == str(workspace)
    assert start["spec_mode"] == "0o600"
    env = set(start["env"])  # type: ignore[call-overload]
    assert {"HOUSE_API_KEY", ENV_GIT_TOKEN, ENV_RUN_SECRET, "PATH"} <= env
    assert not env & {"WEBHOOK_SECRET", "DATABASE_URL", "PRIVATE_KEY", "APP_ID"}
    await asyncio.sleep(0.1)
    assert not workspace.exists()  # removed after a successful run
    assert runner.running() == {}


@pytest.mark.parametrize("keep", [False, True])
async def test_a_crash_is_reported_with_its_exit_code(tmp_path: Path, keep: bool) -> None:
    exits = Exits()
    runner = backend(tmp_path, exits, keep_workspaces=keep)
    ref = await runner.start(spec(2, "exit=3"), SECRETS, deadline=30)
    (done,) = await exits.wait()
    assert (done.exit_code, done.result) == (3, None)
    await asyncio.sleep(0.1)
    workspace = (parse_ref(ref) or ("", 0, Path("/nonexistent")))[2]
    assert workspace.exists() is keep


async def test_cancel_stops_the_whole_process_group(tmp_path: Path) -> None:
    exits = Exits()
    runner = backend(tmp_path, exits)
    await runner.start(spec(3, "child", "sleep=60"), SECRETS, deadline=60)
    marker = f"fake-runner-child-of-run-3-in-{(tmp_path / 'ws').resolve()}"
    await eventually(lambda: processes_alive(marker), 15, "the runner's child")
    await runner.cancel(3)
    (done,) = await exits.wait()
    assert done.cancelled
    assert not done.timed_out
    assert done.exit_code is not None
    assert done.exit_code < 0
    # The child ignored SIGTERM: it got SIGKILL with its group.
    await eventually(lambda: processes_gone(marker), 5, "the child to die")


async def test_a_runner_past_its_deadline_is_stopped(tmp_path: Path) -> None:
    exits = Exits()
    runner = backend(tmp_path, exits)
    started = time.monotonic()
    await runner.start(spec(4, "ignore_term", "sleep=60"), SECRETS, deadline=0.5)
    (done,) = await exits.wait()
    assert done.timed_out
    assert not done.cancelled
    assert time.monotonic() - started < 10  # SIGTERM ignored: SIGKILL after the grace period
    await eventually(lambda: processes_gone(str((tmp_path / "ws").resolve())), 5, "the runner to die")


async def test_runners_outlive_kickoff_and_are_reattached(tmp_path: Path) -> None:
    first_exits, second_exits = Exits(), Exits()
    first = backend(tmp_path, first_exits)
    ref = await first.start(spec(5, "sleep=1.0"), SECRETS, deadline=60)
    await first.aclose()  # Kickoff stops: the runner keeps running
    _, pid, workspace = parse_ref(ref) or ("", 0, Path())
    await started(tmp_path, 5)
    assert live_processes(str(workspace)) == [pid]
    second = backend(tmp_path, second_exits)
    assert not await second.follow(6, ref, deadline=60)  # a live process, but not run 6's
    assert not await second.follow(5, f"elsewhere:{pid}:{workspace}", deadline=60)
    assert await second.follow(5, ref, deadline=60)
    assert second.running() == {5: ref}
    (done,) = await second_exits.wait()
    assert done.result is not None
    assert done.result.outcome == "succeeded"
    assert first_exits.seen == []
    await asyncio.sleep(0.1)
    assert not workspace.exists()


async def test_a_runner_whose_ref_was_never_recorded_is_found_by_its_run_alive_or_ended(tmp_path: Path) -> None:
    """Kickoff died between starting the runner and recording its ref: the next process finds it by the run's
    workspace (its runner.json), follows it while it lives, and finds the ended one's result too."""
    first = backend(tmp_path, Exits())
    ref = await first.start(spec(21, "sleep=1.0"), SECRETS, deadline=60)
    ended = await first.start(spec(22, "sleep=0", "outcome=no_changes"), SECRETS, deadline=60)
    await first.aclose()
    await started(tmp_path, 22)
    _, ended_pid, ended_workspace = parse_ref(ended) or ("", 0, Path())
    await eventually(lambda: processes_gone(str(ended_workspace)), 15, "the runner to end")
    os.waitpid(ended_pid, 0)
    exits = Exits()
    second = backend(tmp_path, exits)
    assert await second.find(23) is None  # no workspace of that run
    assert await second.find(21) == ref
    assert await second.find(22) == ended
    assert await second.follow(21, ref, deadline=60)
    result = await second.collect(22, ended)
    assert result is not None
    assert result.outcome == "no_changes"
    (done,) = await exits.wait()
    assert (done.run_id, done.result is not None and done.result.outcome) == (21, "succeeded")


async def test_a_runner_that_ended_unwatched_leaves_its_result(tmp_path: Path) -> None:
    exits = Exits()
    first = backend(tmp_path, exits)
    ref = await first.start(spec(7, "sleep=0.2", "outcome=no_changes"), SECRETS, deadline=60)
    await first.aclose()
    _, pid, workspace = parse_ref(ref) or ("", 0, Path())
    await started(tmp_path, 7)
    await eventually(lambda: processes_gone(str(workspace)), 15, "the runner to end")
    os.waitpid(pid, 0)  # it was our child: reap it, as init would have after a real restart
    second = backend(tmp_path, exits)
    assert not await second.follow(7, ref, deadline=60)  # dead
    result = await second.collect(7, ref)
    assert result is not None
    assert result.outcome == "no_changes"
    await second.cleanup(7, ref)
    assert not workspace.exists()
    await second.cleanup(7, f"{second.host}:1:/etc")  # never removes what is not a workspace of this run
    assert Path("/etc").exists()
    assert exits.seen == []


async def test_start_failures_are_runner_errors(tmp_path: Path) -> None:
    runner = LocalRunner(command=(str(tmp_path / "no-such-program"),), workspace_root=tmp_path / "ws")
    runner.bind(Exits())
    with pytest.raises(RunnerError, match="could not start the runner program"):
        await runner.start(spec(8), SECRETS, deadline=30)
    assert list((tmp_path / "ws").iterdir()) == []
    with pytest.raises(ValueError, match="not runner secrets"):
        await runner.start(spec(8), {"GITHUB_TOKEN": "x"}, deadline=30)


async def test_names_off_the_operators_list_never_reach_the_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spec that asks for names the operator did not allow (a config check bypassed, a stale spec): the values
    are not copied, whatever the spec says; Kickoff's own names never are."""
    monkeypatch.setenv("HOUSE_API_KEY", "allowed")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-on-the-list")
    monkeypatch.setenv("KICKOFF_DASHBOARD_TOKEN", "kickoff-own")
    exits = Exits()
    runner = backend(tmp_path, exits, agent_env=frozenset({"HOUSE_API_KEY", "KICKOFF_DASHBOARD_TOKEN"}),
                     sandbox="off", hide=("/srv/kickoff/.env",))
    the_spec = spec(2).model_copy(update={"agent": AgentCommand(
        name="a", adapter="command", command=("fake",),
        env=("HOUSE_API_KEY", "AWS_SECRET_ACCESS_KEY", "KICKOFF_DASHBOARD_TOKEN"))})
    ref = await runner.start(the_spec, SECRETS, deadline=30)
    workspace = (parse_ref(ref) or ("", 0, Path()))[2]
    written = RunSpec.model_validate_json((workspace / "spec.json").read_text())
    (done,) = await exits.wait()
    assert done.exit_code == 0
    env = set(next(r for r in records(tmp_path) if r["event"] == "start")["env"])  # type: ignore[call-overload]
    assert "HOUSE_API_KEY" in env
    assert not env & {"AWS_SECRET_ACCESS_KEY", "KICKOFF_DASHBOARD_TOKEN"}
    assert (written.sandbox, written.sandbox_hide) == ("off", ("/srv/kickoff/.env",))


REPO_ROOT = Path(__file__).resolve().parents[2]


def run_owner(tmp_path: Path, *run_ids: int) -> tuple[subprocess.Popen[bytes], dict[int, str]]:
    """A Kickoff process that starts runners for `run_ids` (see owner_process.py); it and its refs."""
    owner = subprocess.Popen(
        [sys.executable, "-m", "tests.runners.owner_process", str(tmp_path / "ws"), str(tmp_path / "log.jsonl"),
         *map(str, run_ids)], cwd=REPO_ROOT, stdout=subprocess.PIPE)
    assert owner.stdout is not None
    line = owner.stdout.readline()
    assert line, "the owner process died before starting its runners"
    return owner, {int(run_id): ref for run_id, ref in json.loads(line).items()}


def workspace_of(ref: str) -> Path:
    parsed = parse_ref(ref)
    assert parsed is not None
    return parsed[2]


async def test_every_workspace_names_its_owner_and_its_runner(tmp_path: Path) -> None:
    exits = Exits()
    runner = backend(tmp_path, exits)
    ref = await runner.start(spec(11, "sleep=0.3"), SECRETS, deadline=60)
    _, pid, workspace = parse_ref(ref) or ("", 0, Path())
    owner = WorkspaceOwner.read(workspace)
    assert owner is not None
    assert (owner.run_id, owner.kept) == (11, False)
    assert owner.owner == ProcessIdentity.of(os.getpid(), runner.host)
    assert owner.runner is not None
    assert (owner.runner.pid, owner.runner.host) == (pid, runner.host)
    assert stat.S_IMODE((workspace / "runner.json").stat().st_mode) == 0o600
    await exits.wait()
    await runner.aclose()


async def test_a_restarted_kickoff_kills_the_runners_no_live_run_holds_and_removes_their_workspaces(
    tmp_path: Path,
) -> None:
    # The previous Kickoff started runners for runs 1, 2 and 3, then was killed; the runners live on.
    owner, refs = run_owner(tmp_path, 1, 2, 3)
    for run_id in refs:
        await started(tmp_path, run_id)
        await eventually(lambda run_id=run_id: processes_alive(f"fake-runner-child-of-run-{run_id}-"), 15,
                         f"run {run_id}'s child")  # type: ignore[misc]
    owner.kill()
    owner.wait()
    assert owner.stdout is not None
    owner.stdout.close()
    assert all(live_processes(str(workspace_of(ref))) for ref in refs.values())  # they outlived their owner
    exits = Exits()
    restarted = backend(tmp_path, exits)
    # In the database: run 1 is running (recovery re-attached it), run 2 is over, run 3 is `starting` (its ref never
    # got written) and not taken over yet. Held: 1 (watched here) and 3 (not final: whichever worker takes it over
    # finds its runner, so a sweep of its dead owner's workspace would lose its work).
    assert await restarted.follow(1, refs[1], deadline=60)
    removed = await restarted.sweep({1, 3})
    assert removed == [refs[2]]
    workspace = workspace_of(refs[2])
    assert not workspace.exists()
    await eventually(lambda: processes_gone(str(workspace)), 10, "run 2's processes to die")
    for run_id in (1, 3):  # the live runs' runners and workspaces are kept
        assert live_processes(str(workspace_of(refs[run_id])))
        assert workspace_of(refs[run_id]).is_dir()
    assert await backend(tmp_path, Exits(), sweep_grace=0.0).sweep({1, 3}) == []  # by any process on the host
    # Once run 3 is over (recovery ended it), the next sweep removes it, its owner being dead.
    assert await restarted.sweep({1}) == [refs[3]]
    await eventually(lambda: processes_gone(str(workspace_of(refs[3]))), 10, "run 3's processes to die")
    # Another Kickoff process on this host leaves it alone while run 1 is live and its owner (here) lives ...
    other = backend(tmp_path, Exits(), sweep_grace=0.0)
    assert await other.sweep({1}) == []
    assert workspace_of(refs[1]).is_dir()
    assert await restarted.sweep(set()) == []  # ... and so does this one, which watches it
    # ... but once run 1 is final in the database, a sweep anywhere on the host removes it.
    assert await other.sweep(set()) == [refs[1]]
    (ended,) = await exits.wait()
    assert ended.run_id == 1
    await eventually(lambda: processes_gone(str(workspace_of(refs[1]))), 10, "run 1's processes to die")
    await restarted.aclose()


async def test_a_kept_workspace_and_a_young_one_of_a_live_owner_are_left_alone(tmp_path: Path) -> None:
    exits = Exits()
    runner = backend(tmp_path, exits, keep_workspaces=True)
    ref = await runner.start(spec(21, "exit=3"), SECRETS, deadline=60)
    await exits.wait()
    await asyncio.sleep(0.05)
    kept = workspace_of(ref)
    assert kept.is_dir()
    owner = WorkspaceOwner.read(kept)
    assert owner is not None
    assert owner.kept
    assert await backend(tmp_path, Exits(), sweep_grace=0.0).sweep(set()) == []
    assert kept.is_dir()
    # A workspace being set up by a live process, for a run claimed after the sweep read the live runs.
    young = tmp_path / "ws" / f"{WORKSPACE_PREFIX}22-abcdef"
    young.mkdir()
    WorkspaceOwner(22, ProcessIdentity.of(os.getpid(), runner.host)).write(young)
    assert await backend(tmp_path, Exits()).sweep(set()) == []
    assert young.is_dir()
    assert await backend(tmp_path, Exits(), sweep_grace=0.0).sweep(set()) != []
    assert not young.exists()
