"""End to end in the GitHub simulator: a label on an issue → the local runner runs a `command` agent (a tiny Python
script that edits a file) → Kickoff opens the pull request with the App's token and puts the `agent-run` check on
its head; a follow-up pushes to the same branch; a merge closes the siblings. Real webhooks, real git."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.demo import sample
from bot.demo.harness import PullView, World, kickoff_world

pytestmark = pytest.mark.slow

AGENT = """\
import pathlib, sys
app = pathlib.Path(sys.argv[1], "app.py")
app.write_text(app.read_text() + f"# fixed by {sys.argv[2]}\\n")
print(f"{sys.argv[2]}: appended a line to app.py")
"""


def kickoff_yml() -> str:
    # The agent's script is in the repository: the agent sandbox shows the agent its own copy, not the test's files.
    command = f'["{sys.executable}", "{{workdir}}/tools/agent.py", "{{workdir}}"'
    return (
        "agents:\n"
        f"  one: {{adapter: command, command: {command}, one]}}\n"
        f"  two: {{adapter: command, command: {command}, two]}}\n"
        "tasks: {fix: {agents: [one, two]}}\n"
        "pull_requests: {labels: [kickoff, bots]}\n"
        "queue: {enabled: false}\n"
    )


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with kickoff_world(tmp_path, settings={"KICKOFF_SCHEDULER_TICK_SECONDS": "0.2",
                                            "KICKOFF_TRACKING_INTERVAL_SECONDS": "0.2"}) as built:
        await built.create_sample_repo({"README.md": "# demo\n", "app.py": "print('hi')\n",
                                        "tools/agent.py": AGENT, ".github/kickoff.yml": kickoff_yml()}, ci=False)
        yield built
        violations = built.violations()
    assert not violations, "fidelity violations:\n" + "\n".join(str(v) for v in violations)


async def test_a_label_ends_in_one_pull_request_per_agent_with_its_check(world: World) -> None:
    issue = await world.sandbox.aio.open_issue(world.owner, world.repo, "Crash on start", "It crashes.",
                                               sender=sample.MAINTAINER, labels=["agent:fix"])
    pulls: list[PullView] = []

    async def opened() -> bool:
        pulls[:] = [p for p in await world.pulls() if p.check("agent-run") is not None]
        return len(pulls) == 2

    async def seen() -> str:
        return repr([(r.agent, r.state, r.reason) for r in await world.runs()])

    await world.wait_for(opened, 60, "two pull requests with their agent-run checks", seen=seen)
    bot = f"{world.creds.slug}[bot]"
    for pull in pulls:
        assert pull.author == bot  # opened by Kickoff with the App's token, not by the runner
        assert pull.title.startswith(f"fix: Crash on start (#{issue}) [")
        assert pull.head_ref.startswith(f"kickoff/{issue}-fix-")
        assert set(pull.labels) >= {"kickoff", "bots"}
        check = pull.check("agent-run")
        assert check is not None
        assert (check.status, check.conclusion) == ("completed", "success")
    runs = await world.runs(issue)
    assert sorted(r.pr_number for r in runs if r.pr_number) == sorted(p.number for p in pulls)

    async def tracked() -> bool:
        comments = await world.comments(issue)
        return any(all(f"#{p.number}" in c.body for p in pulls) for c in comments if c.author == bot)

    await world.wait_for(tracked, 15, "the tracking comment to link both pull requests")

    # One merges: the other is closed as superseded and its branch deleted.
    merged, other = pulls
    await world.sandbox.aio.merge_pull(world.owner, world.repo, merged.number, sender=sample.MAINTAINER)

    async def superseded() -> bool:
        state = {p.number: p.state for p in await world.pulls()}
        return state.get(other.number) == "closed"

    await world.wait_for(superseded, 20, "the sibling to be closed")
    notes = [c for c in await world.comments(other.number) if c.author == bot and "Superseded by" in c.body]
    assert len(notes) == 1
    assert f"Superseded by #{merged.number}" in notes[0].body

    async def deleted() -> bool:
        engine = world.sandbox.engine
        repo = engine.find_repo(world.owner, world.repo)
        return await world.sandbox.arun(engine.git(repo).ref_sha(f"refs/heads/{other.head_ref}")) is None

    await world.wait_for(deleted, 20, "the sibling's branch to be deleted")
