"""GitHub's rate limit spent by `kickoff demo`'s story: requests by endpoint, counted total, and 304s.

Plays the demo's story (`bot.demo`: the sandbox and Kickoff in this process, three scripted agents, three pull
requests, one merge, two superseded) and reads the sandbox's request log: every REST request Kickoff made with its
App JWT or its installation tokens, by endpoint (method and route template), split into reads, writes and
`304 Not Modified` answers (which GitHub does not count against the primary rate limit). Prints the counted total
against the figure measured before issue 15 (`BEFORE`) and the target (`TARGET`).

Usage: `.venv/bin/python bench/github_budget.py [--json FILE]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.demo import sample  # noqa: E402
from bot.demo.harness import kickoff_world  # noqa: E402
from bot.demo.story import Phase, Progress, Story, Timeouts  # noqa: E402
from bot.demo.summary import request_budget, until_pulls_ready  # noqa: E402
from bot.store.models import RunState  # noqa: E402

BEFORE = 366
"""Counted requests of the story before issue 15 (312 reads)."""
TARGET = 90
BEFORE_PULLS = 49
"""Counted requests before issue 15 from the label to the three pull requests with labels, reviewers, checks."""


async def play(root: Path) -> dict[str, Any]:
    progress = Progress()
    started = time.monotonic()
    async with kickoff_world(root) as world:
        seen: list[tuple[str, int]] = []  # (phase, requests so far) as each phase ends

        def phase_done(phase: Phase) -> None:
            seen.append((phase.key, len(world.kickoff_requests())))

        # Generous phase timeouts: on a loaded machine the scripted runs take longer than the demo's own bounds,
        # and the requests counted do not depend on how long the phases take.
        timeouts = Timeouts(**{name: 4 * value for name, value in vars(Timeouts()).items()})
        story = Story(world, progress, agents=tuple(sample.SCRIPTED_AGENTS), timeouts=timeouts,
                      on_phase=phase_done)
        await story.play()
        requests = world.kickoff_requests()
        budget = request_budget(requests)
        budget["second_fan_out"] = await second_fan_out(world, 60.0)
        budget["until_pull_requests"] = until_pulls_ready(requests, [p.number for p in progress.pulls])
        budget["webhooks_received"] = len(world.sandbox.deliveries(world.creds.app_id))
    phases: dict[str, dict[str, int]] = {}
    start = 0
    for key, end in seen:
        part = request_budget(requests[start:end])
        phases[key] = {"counted": part["counted"], "writes": part["writes"], "not_modified": part["not_modified"],
                       "by_endpoint": part["by_endpoint"]}
        start = end
    budget["by_phase"] = phases
    budget["seconds"] = round(time.monotonic() - started, 1)
    return budget


async def second_fan_out(world: Any, patience: float) -> dict[str, Any] | None:
    """After the story, in the same (warm) process: a second issue labelled `agent:fix`, counted from its label to
    its three pull requests with their labels, reviewers and `agent-run` checks. What one more trigger of three
    runs costs, without the once-a-process requests (the App, the bot user, Kickoff's token, the config's first
    read) that the story's first fan-out pays."""
    aio = world.sandbox.aio
    before = len(world.kickoff_requests())
    known = {p.number for p in await world.pulls()}
    issue = await aio.open_issue(world.owner, world.repo, "subtract() is off by one", "Please fix `subtract`.",
                                 sender=sample.MAINTAINER)
    await aio.add_label(world.owner, world.repo, issue, "agent:fix", sender=sample.MAINTAINER)

    async def ready() -> bool:  # every run ended, and each one that succeeded has its pull request ready
        runs = await world.runs(issue)
        if len(runs) < len(sample.SCRIPTED_AGENTS) or any(r.state not in RunState.FINAL for r in runs):
            return False
        fresh = [p.number for p in await world.pulls() if p.number not in known]
        return len(fresh) == sum(r.state == RunState.SUCCEEDED for r in runs) and until_pulls_ready(
            world.kickoff_requests()[before:], fresh) is not None

    async def seen() -> str:
        return ", ".join(f"{r.agent}={r.state}({r.reason})" for r in await world.runs(issue))

    await world.wait_for(ready, patience, "the second fan-out's pull requests", interval=0.3, seen=seen)
    fresh = [p.number for p in await world.pulls() if p.number not in known]
    found = until_pulls_ready(world.kickoff_requests()[before:], fresh)
    if found is not None:
        found["runs"] = len(await world.runs(issue))
    return found


def report(budget: dict[str, Any]) -> str:
    lines = [f"{'endpoint':<72} {'counted':>7} {'304':>5}"]
    for endpoint, row in budget["by_endpoint"].items():
        lines.append(f"{endpoint:<72} {row['counted']:>7} {row['not_modified']:>5}")
    lines += ["", f"{'phase (requests seen by its end)':<40} {'counted':>7} {'writes':>6} {'304':>5}"]
    for key, row in budget["by_phase"].items():
        lines.append(f"{key:<40} {row['counted']:>7} {row['writes']:>6} {row['not_modified']:>5}")
    counted = budget["counted"]
    ready = budget["until_pull_requests"]
    if ready is not None:
        lines += ["", f"{'until the PRs are ready (labels, reviewers, agent-run)':<72} {'counted':>7} {'304':>5}"]
        for endpoint, row in ready["by_endpoint"].items():
            lines.append(f"  {endpoint:<70} {row['counted']:>7} {row['not_modified']:>5}")
    runs = ready["pull_requests"] if ready is not None else 0
    second = budget["second_fan_out"]
    if second is not None:
        lines += ["", f"{'a second fan-out, warm process: label to PRs ready':<72} {'counted':>7} {'304':>5}"]
        for endpoint, row in second["by_endpoint"].items():
            lines.append(f"  {endpoint:<70} {row['counted']:>7} {row['not_modified']:>5}")
    lines += [
        "",
        f"webhooks received:       {budget['webhooks_received']}",
        f"counted requests:        {counted} (reads {budget['reads']}, writes {budget['writes']}); "
        f"before issue 15: {BEFORE}; target: <= {TARGET}",
        f"304 Not Modified:        {budget['not_modified']} (not counted by GitHub)",
        f"label to {runs} PRs ready:   {ready['counted'] if ready else 'never'} counted "
        f"(target: <= 8 a run + 6 a trigger = {8 * runs + 6}; before issue 15: {BEFORE_PULLS})",
        f"second fan-out:          {second['counted'] if second else 'never'} counted for "
        f"{second['runs'] if second else 0} runs and {second['pull_requests'] if second else 0} PRs, warm process "
        f"(target: {8 * (second['runs'] if second else 0) + 6})",
        f"story took:              {budget['seconds']} s",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="kickoff-budget-") as tmp:
        budget = asyncio.run(play(Path(tmp)))
    print(report(budget))
    if args.json:
        args.json.write_text(json.dumps(budget, indent=2) + "\n")


if __name__ == "__main__":
    main()
