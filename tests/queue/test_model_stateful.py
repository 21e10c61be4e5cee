"""Model-based test: the queue model drives a tiny simulated repository through random histories.

Agents open pull requests, CI passes or fails, reviewers approve or ask for changes, people type commands, the base
moves, pull requests close and time passes. Some pull requests are siblings of a fan-out (one trigger's runs): they
are ranked, preferred with `/agent prefer`, and closed as superseded when one of them merges; the fan-out takes one
review slot. After every step the test reconciles like the service will: it updates
each entry's `eligible_since` with the helper, evaluates the queue, writes the check diff and executes the actions
(update-branch makes the head contain the current base and resets CI; merge advances the base).

The same rules with the service, a database and webhooks delivered late, twice, out of order or not at all:
`tests/queue/test_delivery_faults.py`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from bot.config.model import Queue
from bot.queue.model import (
    BAND,
    CI,
    Action,
    DesiredCheck,
    Entry,
    Merge,
    Plan,
    Push,
    Review,
    Snapshot,
    UpdateBranch,
    base_priority,
    diff,
    next_eligible_since,
    plan,
)
from bot.queue.texts import Reason

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
FILES = ("src/a.py", "src/b.py", "src/c.py", "src/d.py", "docs/e.md", "docs/f.md", "tests/g.py", "tests/h.py")
MAX_OPEN = 8
Command = Literal["hold", "unhold", "bump", "skip", "unqueue", "requeue", "priority", "prefer"]
# files, priority label, by Kickoff, labelled, draft, fan-out (trigger), rank
PRSpec = tuple[frozenset[str], str | None, bool, bool, bool, int | None, int | None]
PR_SPECS = st.tuples(
    st.frozensets(st.sampled_from(FILES), min_size=1, max_size=2),
    st.sampled_from([None, "urgent", "high", "low"]),
    st.sampled_from([True, True, True, False]),
    st.booleans(),
    st.sampled_from([False, False, False, True]),
    st.sampled_from([None, None, 1, 1, 2, 3]),
    st.none() | st.integers(1, 3),
)


@dataclass
class SimPR:
    number: int
    files: frozenset[str]
    kickoff: bool
    labels: frozenset[str]
    head_sha: str
    based_on: int  # the base version its head contains
    draft: bool = False
    ci: dict[str, CI] = field(default_factory=dict)
    review: Review = "pending"
    closed: bool = False
    merged: bool = False
    priority: Literal["urgent", "high", "normal", "low"] | None = None
    held: bool = False
    unqueued: bool = False
    bumped_at: datetime | None = None
    let_ahead: int | None = None
    dequeued: Reason | None = None
    eligible_since: datetime | None = None
    push: Push = Push.NONE
    fanout: int | None = None
    rank: int | None = None
    preferred_at: datetime | None = None


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.config = Queue()
        self.now = T0
        self.base_commits: list[frozenset[str]] = []  # files changed by each base commit, oldest first
        self.prs: dict[int, SimPR] = {}
        self.commits = 0
        self.current: dict[int, DesiredCheck] = {}
        self.snapshot = Snapshot("octo/repo", "main", self.base_sha, ())
        self.plan: Plan = plan(self.snapshot, self.config, self.now)

    # ---- The simulated repository ------------------------------------------------------------------------------

    @property
    def base_version(self) -> int:
        return len(self.base_commits)

    @property
    def base_sha(self) -> str:
        return f"base{self.base_version:036d}"

    def new_sha(self) -> str:
        self.commits += 1
        return f"{self.commits:040x}"

    def conflicts(self, pr: SimPR) -> bool:
        return any(pr.files & files for files in self.base_commits[pr.based_on :])

    def open_prs(self) -> list[SimPR]:
        return [pr for pr in self.prs.values() if not pr.closed and not pr.merged]

    def pick(self, candidates: list[SimPR], index: int) -> SimPR | None:
        return candidates[index % len(candidates)] if candidates else None

    def push(self, pr: SimPR, kind: Push, *, onto_base: bool = False) -> None:
        pr.head_sha = self.new_sha()
        pr.ci[pr.head_sha] = "pending"
        pr.push = kind
        if onto_base:
            pr.based_on = self.base_version
        if kind is not Push.UPDATE:
            pr.review = "pending"

    def entry(self, pr: SimPR) -> Entry:
        ci = pr.ci[pr.head_sha]
        return Entry(
            pr.number,
            pr.head_sha,
            title=f"PR {pr.number}",
            url=f"https://github.com/octo/repo/pull/{pr.number}",
            kickoff=pr.kickoff,
            labels=pr.labels,
            closed=pr.closed,
            draft=pr.draft,
            ci=ci,
            failing_checks=("test",) if ci == "failure" else (),
            conflicts=self.conflicts(pr),
            review=pr.review,
            files=pr.files,
            contains_base=pr.based_on == self.base_version,
            priority=pr.priority,
            held=pr.held,
            unqueued=pr.unqueued,
            bumped_at=pr.bumped_at,
            let_ahead=pr.let_ahead,
            dequeued=pr.dequeued,
            eligible_since=pr.eligible_since,
            fanout=pr.fanout if pr.kickoff else None,
            rank=pr.rank,
            preferred_at=pr.preferred_at,
        )

    def merge(self, pr: SimPR, expected_head_sha: str) -> None:
        """What GitHub and the branch rules must never see: a merge that is stale, red or unreviewed."""
        assert not pr.closed
        assert not pr.merged
        assert pr.head_sha == expected_head_sha
        assert pr.based_on == self.base_version, "merged without being up to date with the base it merged onto"
        assert pr.ci[pr.head_sha] == "success", "merged without green CI on its current head"
        assert pr.review == "approved"
        pr.merged = True
        self.base_commits.append(pr.files)
        event("merged")
        if pr.fanout is not None and pr.kickoff:  # `queue.close_siblings`: the others are superseded
            for other in self.open_prs():
                if other.fanout == pr.fanout and other.kickoff:
                    other.closed = True
                    event("sibling superseded")

    def execute(self, action: Action) -> None:
        pr = self.prs[action.number]
        if isinstance(action, UpdateBranch):
            assert action.expected_head_sha == pr.head_sha
            assert action.base_sha == self.base_sha
            self.push(pr, Push.UPDATE, onto_base=True)
        elif isinstance(action, Merge):
            self.merge(pr, action.expected_head_sha)

    def reconcile(self) -> None:
        """What the service does on every event: remember, evaluate, write the diff, act; until nothing moves."""
        for _ in range(8):
            for pr in self.prs.values():
                if not pr.merged:
                    pr.eligible_since = next_eligible_since(self.entry(pr), pr.push, self.now)
                    pr.push = Push.NONE
            entries = tuple(self.entry(pr) for pr in self.prs.values() if not pr.merged)
            self.snapshot = Snapshot("octo/repo", "main", self.base_sha, entries)
            self.plan = plan(self.snapshot, self.config, self.now)
            for verdict in self.plan.verdicts.values():
                event(f"state {verdict.state}")
            for write in diff(self.current, self.plan.checks):
                self.current[write.number] = write.check
            if not self.plan.actions:
                return
            for action in self.plan.actions:
                self.execute(action)
        raise AssertionError("the merge lane did not settle")

    # ---- Rules -------------------------------------------------------------------------------------------------

    def add_pr(self, spec: PRSpec) -> None:
        files, priority, kickoff, labelled, draft, fanout, rank = spec
        labels = {f"priority:{priority}"} if priority else set()
        if labelled:
            labels.add("kickoff:queue")
        number = len(self.prs) + 1
        pr = SimPR(number, files, kickoff, frozenset(labels), self.new_sha(), self.base_version, draft=draft,
                   fanout=fanout if kickoff else None, rank=rank)
        pr.ci[pr.head_sha] = "pending"
        self.prs[number] = pr

    @initialize(
        review_window=st.integers(1, 3),
        merge=st.sampled_from(["manual", "auto"]),
        aging_hours=st.sampled_from([0, 6, 24]),
        hold_overlaps=st.booleans(),
        prs=st.lists(PR_SPECS, min_size=2, max_size=6),
    )
    def start(
        self,
        review_window: int,
        merge: Literal["manual", "auto"],
        aging_hours: int,
        hold_overlaps: bool,
        prs: list[PRSpec],
    ) -> None:
        self.config = Queue(
            review_window=review_window, merge=merge, aging_hours=aging_hours, hold_overlaps=hold_overlaps
        )
        for spec in prs:
            self.add_pr(spec)
        self.reconcile()

    @precondition(lambda self: len(self.open_prs()) < MAX_OPEN)
    @rule(spec=PR_SPECS)
    def agent_opens_pr(self, spec: PRSpec) -> None:
        self.add_pr(spec)
        self.reconcile()

    @rule(index=st.integers(0, 99), passed=st.sampled_from([True, True, True, False]))
    def ci_finishes(self, index: int, passed: bool) -> None:
        pr = self.pick([pr for pr in self.open_prs() if pr.ci[pr.head_sha] == "pending"], index)
        if pr is not None:
            pr.ci[pr.head_sha] = "success" if passed else "failure"
        self.reconcile()

    @rule()
    def ci_catches_up(self) -> None:
        for pr in self.open_prs():
            if pr.ci[pr.head_sha] == "pending":
                pr.ci[pr.head_sha] = "success"
        self.reconcile()

    @rule(approve=st.sampled_from([True, True, False]))
    def reviewer_follows_the_queue(self, approve: bool) -> None:
        """Reviewers take the first pull request the queue says is next for review."""
        window = [self.prs[number] for number in self.plan.window if self.prs[number].review == "pending"]
        if window:
            window[0].review = "approved" if approve else "changes_requested"
        self.reconcile()

    @rule(index=st.integers(0, 99), approve=st.sampled_from([True, True, False]))
    def review(self, index: int, approve: bool) -> None:
        pr = self.pick([pr for pr in self.open_prs() if pr.review != "approved"], index)
        if pr is not None:
            pr.review = "approved" if approve else "changes_requested"
        self.reconcile()

    @rule(index=st.integers(0, 99))
    def agent_answers_review(self, index: int) -> None:
        pr = self.pick([pr for pr in self.open_prs() if pr.review == "changes_requested"], index)
        if pr is not None:
            self.push(pr, Push.REVIEW_ANSWER)
        self.reconcile()

    @rule(index=st.integers(0, 99), more=st.sampled_from(FILES))
    def new_work_pushed(self, index: int, more: str) -> None:
        pr = self.pick(self.open_prs(), index)
        if pr is not None:
            pr.files |= {more}
            self.push(pr, Push.OTHER)
            pr.dequeued = None
        self.reconcile()

    @rule(index=st.integers(0, 99))
    def agent_rebases(self, index: int) -> None:
        pr = self.pick([pr for pr in self.open_prs() if pr.based_on < self.base_version], index)
        if pr is not None:
            self.push(pr, Push.UPDATE, onto_base=True)
            pr.dequeued = None
        self.reconcile()

    @rule(files=st.frozensets(st.sampled_from((*FILES, "CHANGELOG", "ci.yml", "LICENSE")), min_size=1, max_size=2))
    def outside_push_to_base(self, files: frozenset[str]) -> None:
        self.base_commits.append(files)
        self.reconcile()

    @rule(index=st.integers(0, 99))
    def close(self, index: int) -> None:
        pr = self.pick(self.open_prs(), index)
        if pr is not None:
            pr.closed = True
        self.reconcile()

    @rule(index=st.integers(0, 99))
    def human_merges_a_green_check(self, index: int) -> None:
        """With `review-queue` required, a person can merge exactly the pull requests whose check passes."""
        passing = [
            pr
            for pr in self.open_prs()
            if pr.number in self.current
            and self.current[pr.number].head_sha == pr.head_sha
            and self.current[pr.number].conclusion == "success"
        ]
        pr = self.pick(passing, index)
        if pr is not None:
            self.merge(pr, pr.head_sha)
        self.reconcile()

    @rule(index=st.integers(0, 99))
    def mark_ready(self, index: int) -> None:
        pr = self.pick([pr for pr in self.open_prs() if pr.draft], index)
        if pr is not None:
            pr.draft = False
        self.reconcile()

    @rule(
        index=st.integers(0, 99),
        command=st.sampled_from(["hold", "unhold", "bump", "skip", "unqueue", "requeue", "priority", "prefer"]),
        priority=st.sampled_from(["urgent", "high", "normal", "low"]),
    )
    def command(self, index: int, command: Command, priority: Literal["urgent", "high", "normal", "low"]) -> None:
        pr = self.pick(self.open_prs(), index)
        if pr is not None:
            if command in ("hold", "unhold"):
                pr.held = command == "hold"
            elif command == "bump":
                pr.bumped_at = self.now
            elif command == "skip":
                pr.let_ahead = self.plan.behind(pr.number)
            elif command == "unqueue":
                pr.unqueued, pr.bumped_at = True, None
            elif command == "requeue":
                pr.unqueued, pr.dequeued = False, None
            elif command == "prefer":
                if pr.fanout is not None:
                    pr.preferred_at = self.now
            else:
                pr.priority = priority
        self.reconcile()

    @rule(index=st.integers(0, 99), reason=st.sampled_from([Reason.UPDATE_FAILED, Reason.CHECKS_TIMED_OUT]))
    def merge_lane_gives_up(self, index: int, reason: Reason) -> None:
        """The I/O side records what the model cannot see: a failed update, checks that never reported."""
        pr = self.pick([pr for pr in self.open_prs() if pr.number == self.plan.head], index)
        if pr is not None:
            pr.dequeued = reason
        self.reconcile()

    @rule(index=st.integers(0, 99), rank=st.integers(1, 3))
    def fanout_ranked(self, index: int, rank: int) -> None:
        """The ranking (re)published: a sibling's rank changes (CI reported, a judge answered)."""
        pr = self.pick([pr for pr in self.open_prs() if pr.fanout is not None], index)
        if pr is not None:
            pr.rank = rank
        self.reconcile()

    @rule(hours=st.integers(1, 30))
    def time_passes(self, hours: int) -> None:
        self.now += timedelta(hours=hours)
        self.reconcile()

    # ---- Invariants ----------------------------------------------------------------------------------------------

    @invariant()
    def at_most_one_success(self) -> None:
        passing = [
            pr.number
            for pr in self.open_prs()
            if self.current[pr.number].head_sha == pr.head_sha and self.current[pr.number].conclusion == "success"
        ]
        assert len(passing) <= 1, passing

    @invariant()
    def every_open_pr_shows_its_check_on_its_head(self) -> None:
        for pr in self.open_prs():
            assert self.current[pr.number].head_sha == pr.head_sha

    @invariant()
    def a_reconcile_with_no_change_writes_nothing(self) -> None:
        again = plan(self.snapshot, self.config, self.now)
        assert diff(self.current, again.checks) == []
        assert again == self.plan

    @invariant()
    def nothing_waits_past_its_aging_bound_behind_lower_bands(self) -> None:
        entries = {entry.number: entry for entry in self.snapshot.entries}
        ordinary = [
            entries[number]
            for number in self.plan.order
            if entries[number].bumped_at is None and entries[number].let_ahead is None
            and number not in self.plan.alternatives  # they follow their leader
        ]

        def rank(entry: Entry) -> int:
            since = entry.eligible_since
            assert since is not None
            assert since <= self.now
            aged = 0 if self.config.aging_hours == 0 else (self.now - since) // timedelta(hours=self.config.aging_hours)
            return max(0, BAND[base_priority(entry)] - aged)

        for ahead, behind in itertools.pairwise(ordinary):
            assert (rank(ahead), ahead.eligible_since) <= (rank(behind), behind.eligible_since)
        if self.config.aging_hours:
            bound = timedelta(hours=self.config.aging_hours)
            for index, entry in enumerate(ordinary):
                assert entry.eligible_since is not None
                if self.now - entry.eligible_since >= BAND[base_priority(entry)] * bound:
                    # It has aged to the top: only entries that became eligible before it are still ahead.
                    assert all(
                        (other.eligible_since, other.number) < (entry.eligible_since, entry.number)
                        for other in ordinary[:index]
                    )


    @invariant()
    def a_fanout_takes_one_review_slot_behind_its_leader(self) -> None:
        result = self.plan
        entries = {entry.number: entry for entry in self.snapshot.entries}
        assert result.head not in result.alternatives
        assert not set(result.window) & set(result.alternatives)
        in_window: dict[int, int] = {}
        for number in result.window:
            fanout = entries[number].fanout
            if fanout is not None:
                assert fanout not in in_window, (fanout, in_window[fanout], number)
                in_window[fanout] = number
        for index, number in enumerate(result.order):
            if number not in result.alternatives:
                continue
            leader = result.alternatives[number]
            assert entries[leader].fanout == entries[number].fanout
            start = result.order.index(leader)
            assert all(result.alternatives.get(between) == leader for between in result.order[start + 1 : index])
            assert result.verdicts[number].position == result.verdicts[leader].position
            assert result.checks[number].conclusion is None
        for number, leader in result.alternatives.items():
            entry, head = entries[number], entries[leader]
            assert not head.closed
            assert not head.unqueued
            assert head.dequeued is None
            # The leader: not rejected unless every sibling is, then the latest preference, the rank, the number.
            assert (head.review == "changes_requested") <= (entry.review == "changes_requested")
        event(f"fan-outs in the window: {len(in_window)}")


QueueMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestQueueModel = QueueMachine.TestCase
