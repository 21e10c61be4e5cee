"""The real runner program (`python -m bot run-agent`) started by the scheduler's local backend, against a real bare
git repository (`file://`), with the `command` adapter, reporting to the report endpoint on a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.runners.local import DEFAULT_COMMAND
from bot.store.models import RunState
from tests.runs.support import World, eventually, report_server, running, world

pytestmark = pytest.mark.slow

WRITE_FIX = [sys.executable, "-c",
             "import pathlib, sys; pathlib.Path(sys.argv[1], 'FIXED.txt').write_text('fixed\\n')", "{workdir}"]
DO_NOTHING = [sys.executable, "-c", "pass"]


def git(*args: str, cwd: Path) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True,
                          timeout=60).stdout


def bare_repository(tmp_path: Path) -> Path:
    seed = tmp_path / "seed"
    seed.mkdir()
    git("init", "-q", "-b", "main", cwd=seed)
    (seed / "README.md").write_text("# hello\n")
    git("add", "-A", cwd=seed)
    git("-c", "user.name=seed", "-c", "user.email=seed@example.com", "commit", "-q", "-m", "initial", cwd=seed)
    bare = tmp_path / "hello.git"
    git("clone", "-q", "--bare", str(seed), str(bare), cwd=tmp_path)
    return bare


@pytest.fixture
async def w(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    with report_server(database_url) as base:
        async with world(database_url, tmp_path, PUBLIC_URL=base) as built:
            yield built


async def test_the_real_runner_pushes_a_branch_and_reports(w: World) -> None:
    from bot.config import RepoConfig

    remote = bare_repository(w.tmp)
    w.default_config = RepoConfig.model_validate({
        "agents": {"house": {"adapter": "command", "command": WRITE_FIX},
                   "idle": {"adapter": "command", "command": DO_NOTHING}},
        "tasks": {"fix": {"agents": ["house", "idle"]}},
    })
    _, (fixer, idle) = await w.add_trigger(["house", "idle"])
    runner = w.local_runner(command=DEFAULT_COMMAND, extra_env={})
    scheduler = w.scheduler(runner, clone_url=lambda repository: remote.as_uri())
    async with running(scheduler):
        w.services.runs_changed.set()

        async def ended() -> bool:
            return all([await w.state(r.id) in RunState.FINAL for r in (fixer, idle)])

        await eventually(ended, 120, "both runs to end")

        async def cleaned() -> bool:
            return not any((w.tmp / "workspaces").iterdir())

        await eventually(cleaned, 30, "the runners to exit and their workspaces to go")
    fixed = await w.runs.require(fixer.id)
    assert fixed.state == RunState.SUCCEEDED, fixed.reason
    assert fixed.progress == "delivered"  # and its pull request opened (bot.prs)
    assert fixed.result is not None
    assert "FIXED.txt" in fixed.result
    branch = f"kickoff/12-fix-house-{fixer.id}"
    assert fixed.branch == branch
    assert git("show", f"{branch}:FIXED.txt", cwd=remote) == "fixed\n"
    message = git("log", "-1", "--format=%an%n%B", branch, cwd=remote)
    assert message.startswith("kickoff[bot]\nfix: Crash on start (#12)")
    assert f"Kickoff-Run: {fixer.id}" in message
    assert (await w.runs.require(idle.id)).state == RunState.NO_CHANGES
    transitions = [t.to_state for t in await w.runs.transitions(fixer.id)]
    assert transitions == [RunState.QUEUED, RunState.STARTING, RunState.RUNNING, RunState.SUCCEEDED]


HALF_DONE = [sys.executable, "-c",
             "import json, pathlib, sys, time\n"
             "pathlib.Path(sys.argv[1], 'HALF.txt').write_text('half done\\n')\n"
             "print('wrote HALF.txt; the rest next', flush=True)\n"
             "for cost in sys.argv[2:]:\n"
             "    print(json.dumps(dict(usage=dict(cost_usd=float(cost)))), flush=True)\n"
             "time.sleep(600)\n",
             "{workdir}"]


def half_done_config(*costs: str, **sections: object) -> Any:
    from bot.config import RepoConfig

    return RepoConfig.model_validate({
        "agents": {"house": {"adapter": "command", "command": [*HALF_DONE, *costs]}},
        "tasks": {"fix": {"agents": ["house"]}},
        **sections,
    })


async def test_a_run_that_times_out_after_writing_files_opens_a_draft_marked_incomplete(w: World) -> None:
    """The real runner: the agent writes a file and hangs past `limits.run_timeout_minutes` (one minute); in one
    repository what it left becomes a draft marked incomplete, in the other (`publish_incomplete: false`) nothing
    is pushed and there is no pull request, as before."""
    for name in ("kept", "dropped"):
        (w.tmp / name).mkdir()
    remotes = {name: bare_repository(w.tmp / name) for name in ("kept", "dropped")}
    w.configs["octo/kept"] = half_done_config(limits={"run_timeout_minutes": 1})
    w.configs["octo/dropped"] = half_done_config(limits={"run_timeout_minutes": 1},
                                                 pull_requests={"publish_incomplete": False})
    kept_trigger, (kept,) = await w.add_trigger(["house"], repository="octo/kept")
    _, (dropped,) = await w.add_trigger(["house"], repository="octo/dropped")
    runner = w.local_runner(command=DEFAULT_COMMAND, extra_env={})
    scheduler = w.scheduler(runner, clone_url=lambda repository: remotes[repository.partition("/")[2]].as_uri())
    async with running(scheduler):
        w.services.runs_changed.set()

        async def delivered() -> bool:
            return ((await w.runs.require(kept.id)).progress == "delivered"
                    and await w.state(dropped.id) in RunState.FINAL)

        await eventually(delivered, 150, "the runs to end and the kept one's pull request to open")
    reason = "the agent did not finish within 60 s and was stopped"
    done = await w.runs.require(kept.id)
    assert (done.state, done.reason) == (RunState.SUCCEEDED, reason)
    assert done.branch is not None
    assert git("show", f"{done.branch}:HALF.txt", cwd=remotes["kept"]) == "half done\n"
    ((_, owner, repo, head, _base, _title, body, draft),) = w.github.calls_to("open_pull_request")
    assert (owner, repo, head, draft) == ("octo", "kept", done.branch, True)
    assert body.startswith(f"> [!WARNING]\n> **Incomplete:** {reason}. This draft holds what the agent had changed")
    assert done.pr_number is not None
    assert kept_trigger.tracking_comment_id is not None

    async def tracked() -> bool:
        assert kept_trigger.tracking_comment_id is not None
        return f"#{done.pr_number} (draft, incomplete: {reason})" in w.github.comments[
            kept_trigger.tracking_comment_id].body

    await eventually(tracked, 10, "the tracking comment to show the incomplete draft")
    lost = await w.runs.require(dropped.id)
    assert (lost.state, lost.reason, lost.pr_number) == (RunState.TIMED_OUT, reason, None)
    assert git("branch", "--list", "kickoff/*", cwd=remotes["dropped"]) == ""


async def test_a_run_whose_streamed_cost_passes_its_budget_opens_a_draft_marked_incomplete(w: World) -> None:
    remote = bare_repository(w.tmp)
    w.default_config = half_done_config("0.60", "1.20", limits={"max_cost_usd": 1.0})
    _, (run,) = await w.add_trigger(["house"])
    runner = w.local_runner(command=DEFAULT_COMMAND, extra_env={})
    scheduler = w.scheduler(runner, clone_url=lambda repository: remote.as_uri())
    async with running(scheduler):
        w.services.runs_changed.set()

        async def delivered() -> bool:
            return (await w.runs.require(run.id)).progress == "delivered"

        await eventually(delivered, 90, "the run to end and its pull request to open")
    done = await w.runs.require(run.id)
    reason = "the agent passed its cost budget of $1.00 (`limits.max_cost_usd`), at $1.20 and was stopped"
    assert (done.state, done.reason, done.cost_usd) == (RunState.SUCCEEDED, reason, 1.2)
    ((*_, body, draft),) = w.github.calls_to("open_pull_request")
    assert draft is True
    assert body.startswith(f"> [!WARNING]\n> **Incomplete:** {reason}. ")


def write_answer(value: int) -> list[str]:
    return [sys.executable, "-c", "import pathlib, sys; pathlib.Path(sys.argv[1], 'answer.txt').write_text("
            f"'{value}\\n')", "{workdir}"]


JUDGE = [sys.executable, "-c", """
import json, re, sys
prompt = open(sys.argv[1]).read()
parts = re.split(r"^## Attempt: run (\\d+)$", prompt, flags=re.MULTILINE)
sections = dict(zip(map(int, parts[1::2]), parts[2::2]))
order = sorted(sections, key=lambda run: "+42" not in sections[run])
print(json.dumps(dict(ranking=[dict(run=run, reason="answers 42" if "+42" in sections[run] else "does not")
                               for run in order])))
""", "{prompt_file}"]


async def test_a_judge_run_on_the_real_runner_reads_the_attempts_branches_and_ranks_them(w: World) -> None:
    from bot.config import RepoConfig
    from bot.ranking import Ranking

    remote = bare_repository(w.tmp)
    w.default_config = RepoConfig.model_validate({
        "agents": {"forty": {"adapter": "command", "command": write_answer(40)},
                   "answer": {"adapter": "command", "command": write_answer(42)},
                   "judge": {"adapter": "command", "command": JUDGE}},
        "tasks": {"fix": {"agents": ["forty", "answer"], "judge": "judge"}},
    })
    trigger, (forty, answer) = await w.add_trigger(["forty", "answer"])
    runner = w.local_runner(command=DEFAULT_COMMAND, extra_env={})
    scheduler = w.scheduler(runner, clone_url=lambda repository: remote.as_uri())
    async with running(scheduler):
        w.services.runs_changed.set()

        async def ranked() -> bool:
            stored = await w.runs.trigger(trigger.id)
            return stored is not None and stored.ranked_at is not None

        await eventually(ranked, 180, "the fan-out to be ranked")

        async def cleaned() -> bool:
            return not any((w.tmp / "workspaces").iterdir())

        await eventually(cleaned, 30, "the runners to exit and their workspaces to go")
    stored = await w.runs.trigger(trigger.id)
    ranking = Ranking.from_json(stored.ranking if stored else None)
    assert ranking is not None
    assert (ranking.source, ranking.note) == ("judge", None)
    assert [(row.run_id, row.reason) for row in ranking.rows] == [(answer.id, "answers 42"), (forty.id, "does not")]
    [judged] = [run for run in await w.runs.runs_of_trigger(trigger.id) if run.kind == "judge"]
    assert (judged.agent, judged.attempt, judged.state, judged.progress) == ("judge", 0, RunState.SUCCEEDED,
                                                                             "delivered")
    assert judged.pr_number is None
    assert [args[2] for args in w.github.calls_to("mint_run_token")][-1] == {"contents": "read"}
    branches = git("for-each-ref", "--format=%(refname:short)", "refs/heads", cwd=remote).split()
    assert sorted(branches) == sorted(["main", f"kickoff/12-fix-forty-{forty.id}",
                                       f"kickoff/12-fix-answer-{answer.id}"])  # the judge pushed nothing
    assert sorted(args[3] for args in w.github.calls_to("open_pull_request")) == sorted([
        f"kickoff/12-fix-forty-{forty.id}", f"kickoff/12-fix-answer-{answer.id}"])  # none for the judge
