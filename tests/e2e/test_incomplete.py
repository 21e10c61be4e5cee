"""A run cut short, end to end through the sandbox harness (real webhooks, real git over smart HTTP, the local
runner with its sandbox): an agent that fixes `calc.py`, then keeps spending, is stopped at `limits.max_cost_usd` and
its fix opens as a draft pull request marked incomplete, with the reason, on the simulated GitHub."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bot.demo import sample
from bot.demo.harness import AGENT_CHECK, kickoff_world
from bot.store.models import RunState

OWNER, REPO = sample.OWNER, sample.REPO
SPENDER = ("import json, pathlib, sys, time\n"
           "calc = pathlib.Path(sys.argv[1], 'calc.py')\n"
           "calc.write_text(calc.read_text().replace('return a - b', 'return a + b'))\n"
           "print('fixed add(); now rewriting the whole module', flush=True)\n"
           "for cost in (0.2, 0.45, 0.8):\n"
           "    print(json.dumps(dict(usage=dict(cost_usd=cost))), flush=True)\n"
           "    time.sleep(0.2)\n"
           "time.sleep(600)\n")
REASON = "the agent passed its cost budget of $0.50 (`limits.max_cost_usd`), at $0.80 and was stopped"


def kickoff_yml(publish_incomplete: bool) -> str:
    return json.dumps({
        "agents": {"spender": {"adapter": "command", "command": [sys.executable, "-c", SPENDER, "{workdir}"]}},
        "tasks": {"fix": {"agents": ["spender"]}},
        "limits": {"max_cost_usd": 0.5, "run_timeout_minutes": 5},
        "pull_requests": {"publish_incomplete": publish_incomplete},
    }) + "\n"


async def test_a_run_stopped_at_its_budget_opens_a_draft_marked_incomplete(tmp_path: Path) -> None:
    async with kickoff_world(tmp_path) as world:
        await world.create_sample_repo({**sample.files(), ".github/kickoff.yml": kickoff_yml(True)}, ci=False)
        issue = await world.sandbox.aio.open_issue(OWNER, REPO, sample.ISSUE_TITLE, sample.ISSUE_BODY,
                                                   sender=sample.MAINTAINER, labels=["agent:fix"])
        await world.wait_for(lambda: world.runs_settled(1, issue), 60, "the run to end")
        (run,) = await world.runs(issue)
        assert (run.state, run.reason) == (RunState.SUCCEEDED, REASON)

        async def opened() -> bool:
            return any(p.check(AGENT_CHECK) is not None for p in await world.pulls())

        await world.wait_for(opened, 30, "its pull request and its agent-run check")
        (pull,) = await world.pulls()
        assert (pull.head_ref, pull.draft, pull.state) == (run.branch, True, "open")
        body = world.sandbox.engine.find_repo(OWNER, REPO).issues[pull.number].body or ""
        assert body.startswith(f"> [!WARNING]\n> **Incomplete:** {REASON}. This draft holds what the agent had "
                               "changed by then")
        check = pull.check(AGENT_CHECK)
        assert check is not None
        assert check.conclusion == "neutral"
        assert check.title.startswith("spender: incomplete in ")
        assert run.branch is not None
        calc = await world.read_file(run.branch, "calc.py")
        assert calc is not None
        assert "return a + b" in calc
        bot = f"{world.creds.slug}[bot]"

        async def tracked() -> bool:
            return any(c.author == bot and f"#{pull.number} (draft, incomplete: " in c.body
                       for c in await world.comments(issue))

        await world.wait_for(tracked, 15, "the tracking comment to show the incomplete draft")
    assert not world.violations()


async def test_with_publish_incomplete_off_the_same_run_fails_and_opens_nothing(tmp_path: Path) -> None:
    async with kickoff_world(tmp_path) as world:
        await world.create_sample_repo({**sample.files(), ".github/kickoff.yml": kickoff_yml(False)}, ci=False)
        issue = await world.sandbox.aio.open_issue(OWNER, REPO, sample.ISSUE_TITLE, sample.ISSUE_BODY,
                                                   sender=sample.MAINTAINER, labels=["agent:fix"])
        await world.wait_for(lambda: world.runs_settled(1, issue), 60, "the run to end")
        (run,) = await world.runs(issue)
        assert (run.state, run.reason, run.pr_number) == (RunState.FAILED, REASON, None)
        assert await world.pulls() == []
        assert run.branch is not None
        assert await world.read_file(run.branch, "calc.py") is None
    assert not world.violations()
