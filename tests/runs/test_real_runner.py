"""The real runner program (`python -m bot run-agent`) started by the scheduler's local backend, against a real bare
git repository (`file://`), with the `command` adapter, reporting to the report endpoint on a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

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
