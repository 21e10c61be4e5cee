"""The demo's story, phase by phase, against a `World`: label an issue, three agents, three PRs, the queue, a merge.

Each phase waits for what Kickoff should do, with its own timeout; the first one that does not happen ends the story
with a `StoryTimeout` naming it. The story never does Kickoff's work: it only plays the people (the maintainer who
labels the issue and protects `main`, a teammate who pushes to `main`, the reviewer who approves) and watches.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, Literal

from bot.demo import sample
from bot.demo.harness import AGENT_CHECK, CI_CHECK, QUEUE_CHECK, PullView, RunView, StoryTimeout, World
from bot.queue.texts import STATES, State
from bot.ranking import Ranking
from bot.store.models import RunState

PhaseStatus = Literal["pending", "running", "done", "failed"]
NEXT_FOR_REVIEW: Final = STATES[State.NEXT_FOR_REVIEW].title


@dataclass(frozen=True)
class Timeouts:
    """Seconds each phase may take. Real agents take minutes where the scripted ones take seconds."""

    runs_planned: float = 15.0
    runs_finished: float = 30.0
    pulls_opened: float = 20.0
    queue_published: float = 20.0
    merged: float = 30.0
    advanced: float = 20.0

    @classmethod
    def for_real_agents(cls) -> Timeouts:
        return cls(runs_finished=20 * 60.0, pulls_opened=60.0)


@dataclass
class Phase:
    key: str
    title: str
    status: PhaseStatus = "pending"
    started: float | None = None
    ended: float | None = None
    note: str = ""

    @property
    def seconds(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended or time.monotonic()) - self.started


PHASES: Final = (
    ("setup", "GitHub sandbox, Kickoff and the sample repository acme/calculator"),
    ("trigger", "A maintainer labels issue “add() returns the wrong result” with agent:fix"),
    ("runs", "The agents run in parallel, one run each"),
    ("pulls", "One pull request per run"),
    ("queue", "Kickoff ranks the three attempts; the best is next for review, the others its alternatives"),
    ("review", "A reviewer approves the best attempt; Kickoff brings it up to date and merges it"),
    ("advance", "The queue advances; the siblings are superseded"),
)


@dataclass
class Progress:
    """What the live view shows; the story updates it, the view only reads it."""

    phases: list[Phase] = field(default_factory=lambda: [Phase(k, t) for k, t in PHASES])
    runs: list[RunView] = field(default_factory=list)
    pulls: list[PullView] = field(default_factory=list)
    issue: int | None = None
    ranking: Ranking | None = None  # the fan-out's attempts as Kickoff ranked them
    head: int | None = None
    merged: int | None = None
    started: float = field(default_factory=time.monotonic)
    error: str | None = None

    def phase(self, key: str) -> Phase:
        return next(p for p in self.phases if p.key == key)

    def fan_out(self) -> list[RunView]:
        """The label's runs (one per agent); later fix or follow-up runs on the pull requests are not among them."""
        return [r for r in self.runs if r.kind == "new"]

    def pull_of(self, run: RunView) -> PullView | None:
        if run.pr_number is not None:
            return next((p for p in self.pulls if p.number == run.pr_number), None)
        return next((p for p in self.pulls if run.branch and p.head_ref == run.branch), None)


class Story:
    """Plays the demo against `world`, keeping `progress` current for the view."""

    def __init__(
        self,
        world: World,
        progress: Progress,
        *,
        agents: tuple[str, ...],
        timeouts: Timeouts,
        on_phase: Callable[[Phase], None] | None = None,
        real: bool = False,
    ) -> None:
        self.world = world
        self.real = real  # the built-in adapters (`kickoff demo --real-agents`), not the scripted agents
        self.progress = progress
        self.agents = agents
        self.timeouts = timeouts
        self.on_phase = on_phase or (lambda phase: None)
        self.bot_login = f"{world.creds.slug}[bot]"

    async def refresh(self) -> None:
        """Read the runs (from Kickoff) and the pull requests (from GitHub) into `progress`."""
        self.progress.runs = await self.world.runs(self.progress.issue)
        self.progress.pulls = [p for p in await self.world.pulls() if p.author == self.bot_login]

    async def _seen(self) -> str:
        await self.refresh()
        runs = ", ".join(f"{r.agent}={r.state}" + (f" ({r.reason})" if r.reason else "") for r in self.progress.runs)
        pulls = ", ".join(
            f"#{p.number} {p.state} {QUEUE_CHECK}="
            + (f"{q.conclusion or q.status} “{q.title}”" if (q := p.check(QUEUE_CHECK)) else "none")
            for p in self.progress.pulls
        )
        return f"runs [{runs or 'none'}]; pull requests [{pulls or 'none'}]"

    async def _wait(self, condition: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:  # noqa: ASYNC109
        async def check() -> bool:
            await self.refresh()
            return await condition()

        await self.world.wait_for(check, timeout, what, seen=self._seen, interval=0.3)

    async def _phase(self, key: str, work: Callable[[], Awaitable[str]]) -> None:
        phase = self.progress.phase(key)
        phase.status, phase.started = "running", time.monotonic()
        try:
            phase.note = await work()
        except BaseException as exc:
            phase.status, phase.ended = "failed", time.monotonic()
            phase.note = str(exc) if isinstance(exc, StoryTimeout) else f"{type(exc).__name__}: {exc}"
            self.on_phase(phase)
            raise
        phase.status, phase.ended = "done", time.monotonic()
        self.on_phase(phase)

    async def play(self) -> None:
        """Every phase in order; raises `StoryTimeout` (or the error) at the first that does not complete."""
        await self._phase("setup", self._setup)
        await self._phase("trigger", self._trigger)
        await self._phase("runs", self._runs)
        await self._phase("pulls", self._pulls)
        await self._phase("queue", self._queue)
        await self._phase("review", self._review)
        await self._phase("advance", self._advance)

    async def _setup(self) -> str:
        w = self.world
        await w.create_sample_repo(sample.files(self.agents, real=self.real))
        # `review-queue` is a required check, as docs/review-queue.md asks (without "up to date before merging":
        # Kickoff brings the head up to date itself); so is CI.
        await w.sandbox.aio.protect_branch(w.owner, w.repo, "main", required_checks=[CI_CHECK, QUEUE_CHECK])
        return f"GitHub at {w.github_url}, Kickoff at {w.kickoff_url}"

    async def _trigger(self) -> str:
        aio, w = self.world.sandbox.aio, self.world
        issue = await aio.open_issue(w.owner, w.repo, sample.ISSUE_TITLE, sample.ISSUE_BODY, sender=sample.MAINTAINER)
        self.progress.issue = issue
        await aio.add_label(w.owner, w.repo, issue, "agent:fix", sender=sample.MAINTAINER)

        async def planned() -> bool:
            return len(self.progress.fan_out()) >= len(self.agents)

        await self._wait(planned, self.timeouts.runs_planned, f"Kickoff to plan {len(self.agents)} runs on #{issue}")
        return f"issue #{issue} labelled by @{sample.MAINTAINER}; {len(self.progress.fan_out())} runs planned"

    async def _runs(self) -> str:
        async def finished() -> bool:
            runs = self.progress.fan_out()
            return len(runs) >= len(self.agents) and all(r.state in RunState.FINAL for r in runs)

        await self._wait(finished, self.timeouts.runs_finished, "every run to finish")
        failed = [r for r in self.progress.fan_out() if r.state != RunState.SUCCEEDED]
        if failed:
            raise StoryTimeout("runs did not succeed: " + "; ".join(
                f"{r.agent} {r.state}" + (f" ({r.reason})" if r.reason else "") for r in failed))
        return f"{len(self.progress.fan_out())} runs succeeded"

    async def _pulls(self) -> str:
        async def opened() -> bool:
            return all(self.progress.pull_of(r) is not None for r in self.progress.fan_out())

        await self._wait(opened, self.timeouts.pulls_opened, f"one pull request per run from {self.bot_login}")
        numbers = ", ".join(f"#{p.number}" for p in self.progress.pulls)
        return f"{len(self.progress.pulls)} pull requests opened: {numbers}"

    async def _queue(self) -> str:
        async def published() -> bool:
            # The fan-out ranked first: its best attempt leads, and is the one the reviewer looks at.
            assert self.progress.issue is not None
            self.progress.ranking = await self.world.ranking(self.progress.issue)
            if self.progress.ranking is None:
                return False
            # ...and ranked again once CI reported on every attempt (a green head outranks a pending one).
            if any(row.pr is not None and row.ci not in ("success", "failure") for row in self.progress.ranking.rows):
                return False
            pulls = [p for p in self.progress.pulls if p.state == "open"]
            checks = [p.check(QUEUE_CHECK) for p in pulls]
            if len(pulls) < len(self.agents) or not all(c is not None and c.title for c in checks):
                return False
            heads = [p for p in pulls if (c := p.check(QUEUE_CHECK)) is not None and c.title == NEXT_FOR_REVIEW]
            best = next((row.pr for row in self.progress.ranking.rows if row.pr is not None), None)
            if len(heads) != 1 or heads[0].number != best:
                return False
            self.progress.head = heads[0].number
            return True

        await self._wait(published, self.timeouts.queue_published,
                         f"the attempts ranked with CI in, a {QUEUE_CHECK} check on every PR, “{NEXT_FOR_REVIEW}” "
                         "on the best one alone")
        assert self.progress.ranking is not None
        order = ", ".join(f"#{row.pr}" for row in self.progress.ranking.rows if row.pr is not None)
        return f"attempts ranked {order}: #{self.progress.head} is next for review, the others its alternatives"

    async def _review(self) -> str:
        aio, w = self.world.sandbox.aio, self.world
        head = self.progress.head
        assert head is not None
        # A teammate's push moves `main` first, so the approved head is behind and Kickoff brings it up to date.
        await aio.push_commit(w.owner, w.repo, "main", {"CHANGELOG.md": "# Changelog\n\n- Unreleased\n"},
                              "Start a changelog", author=sample.MAINTAINER)
        await aio.approve(w.owner, w.repo, head, sample.REVIEWER, "Looks good, thanks.")

        async def merged() -> bool:
            pull = next((p for p in self.progress.pulls if p.number == head), None)
            return pull is not None and pull.state == "merged"

        await self._wait(merged, self.timeouts.merged, f"Kickoff to update and merge #{head} (merge: auto)")
        self.progress.merged = head
        return f"#{head} approved by @{sample.REVIEWER}, updated with main and merged"

    async def _advance(self) -> str:
        merged = self.progress.merged

        async def superseded() -> bool:
            others = [p for p in self.progress.pulls if p.number != merged]
            if not all(p.state == "closed" for p in others):
                return False
            for pull in self.progress.pulls:
                check = pull.check(QUEUE_CHECK)
                if check is None or check.status != "completed" or not check.title:
                    return False
            return True

        await self._wait(superseded, self.timeouts.advanced,
                         f"the siblings of #{merged} closed as superseded, every {QUEUE_CHECK} check completed")
        others = ", ".join(f"#{p.number}" for p in self.progress.pulls if p.number != merged)
        return f"{others} closed as superseded by #{merged}"


__all__ = ["AGENT_CHECK", "PHASES", "Phase", "Progress", "Story", "Timeouts"]
