"""The end of the story in detail: approval, update with `main`, auto merge, siblings superseded (the demo's Story)."""

from __future__ import annotations

from pathlib import Path

from bot import messages
from bot.demo import sample
from bot.demo.harness import CI_CHECK, QUEUE_CHECK, kickoff_world
from bot.demo.story import Progress, Story, Timeouts
from bot.queue.texts import STATES, State


async def test_the_approved_head_is_updated_merged_and_its_siblings_superseded(tmp_path: Path) -> None:
    async with kickoff_world(tmp_path) as world:
        progress = Progress()
        story = Story(world, progress, agents=tuple(sample.SCRIPTED_AGENTS), timeouts=Timeouts())
        await story.play()
        merged, issue = progress.merged, progress.issue
        assert merged is not None
        assert issue is not None
        pulls = {p.number: p for p in await world.pulls()}
        head = pulls.pop(merged)

        # Merged with the teammate's change underneath: Kickoff brought the head up to date before merging.
        assert head.state == "merged"
        assert await world.read_file("main", "CHANGELOG.md") is not None
        calc = await world.read_file("main", "calc.py")
        assert calc is not None
        assert "return a - b" not in calc
        queue = head.check(QUEUE_CHECK)
        assert queue is not None
        assert queue.conclusion == "success"
        assert queue.title.startswith(STATES[State.MERGE_READY].title.split("{")[0])
        ci = head.check(CI_CHECK)
        assert ci is not None
        assert ci.conclusion == "success"  # on the updated head, the one that merged

        # The siblings: closed (not merged), told why, their queue checks finished.
        assert len(pulls) == 2
        for sibling in pulls.values():
            assert sibling.state == "closed"
            bodies = [c.body for c in await world.comments(sibling.number)]
            assert any(messages.SUPERSEDED.format(number=merged) in body for body in bodies), bodies
            check = sibling.check(QUEUE_CHECK)
            assert check is not None
            assert check.status == "completed"
            assert check.title

        # Only the fan-out's runs: nothing was started on a pull request about to be superseded.
        runs = await world.runs(issue)
        assert [(r.kind, r.state) for r in runs] == [("new", "succeeded")] * 3, runs
        assert world.violations() == []
