"""Model-based test of the queue on webhook-fed state: a simulated GitHub (the shared FakeGitHub) changes through
random histories, and each change's webhook goes into a mailbox; the mailbox delivers them late, twice, out of
order or not at all, through the real inbox, dispatcher and handlers into a real database (SQLite and PostgreSQL).

Whatever the deliveries: the merge lane never merges a pull request that is not approved, green and up to date on
GitHub itself; never two `success` checks at once; and once the mailbox is delivered (or given up) and the sweep
has run, the queue agrees with GitHub: a second sweep finds no drift and writes nothing, and every open pull
request shows its check on its current head.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import delete

from bot.github import CheckRunInfo
from bot.github.models import PullReview
from bot.store.db import Store
from bot.store.models import Base
from tests.deliveries import load
from tests.handlers.harness import DEFAULT_BRANCH, FULL_NAME, INSTALLATION_ID, OWNER, REPO, Harness, harness, user
from tests.queue.webhooks import CI_APP, add_prs, check_run_payload, pull_payload

WRITES = frozenset({"create_check_run", "update_check_run", "update_branch", "merge_pull"})
MAX_MAIL = 12
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


class DeliveryMachine(RuleBasedStateMachine):
    database_url = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.context = harness(self.database_url)
        self.h: Harness = self.loop.run_until_complete(self.context.__aenter__())
        self.gh = self.h.gh
        self.gh.branch_shas[(OWNER, REPO, DEFAULT_BRANCH)] = _sha("base")
        self.gh.permissions["rev"] = "write"
        self.h.config("queue:\n  merge: auto\n  hold_overlaps: false\n")
        self.mail: list[tuple[str, dict[str, Any]]] = []
        self.run_id = 5000
        self.review_id = 0
        self.stamp = T0
        self.calls_seen = 0
        self.seen: dict[int, tuple[str, str, bool]] = {}  # number → head, state, merged (what webhooks said)
        self.base_before = self.gh.branch_shas[(OWNER, REPO, DEFAULT_BRANCH)]

    def teardown(self) -> None:
        try:
            self.loop.run_until_complete(self._clear())
            self.loop.run_until_complete(self.context.__aexit__(None, None, None))
        finally:
            self.loop.close()

    async def _clear(self) -> None:
        store: Store = self.h.services.store
        async with store.sessions.begin() as session:
            for table in reversed(Base.metadata.sorted_tables):
                await session.execute(delete(table))

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    # ---- The simulated GitHub and its webhooks ----------------------------------------------------------------

    def open_numbers(self) -> list[int]:
        return sorted(n for (_o, _r, n), pull in self.gh.pulls.items() if pull.state == "open")

    def pick(self, index: int) -> int | None:
        numbers = self.open_numbers()
        return numbers[index % len(numbers)] if numbers else None

    def next_stamp(self) -> str:
        self.stamp += timedelta(seconds=1)
        return self.stamp.isoformat().replace("+00:00", "Z")

    def start_ci(self, number: int) -> None:
        head = self.gh.pulls[(OWNER, REPO, number)].head_sha
        self.run_id += 1
        self.gh.foreign_check_runs[(OWNER, REPO, head)] = [CheckRunInfo(
            id=self.run_id, name="ci", head_sha=head, status="in_progress", conclusion=None, app_id=CI_APP, title="",
            summary="",
        )]
        self.mail.append(("check_run", check_run_payload(self.h, number, "created", None, run_id=self.run_id)))

    def observe_github(self) -> None:
        """What the merge lane did on GitHub sends its webhooks too (a new head after update-branch, a merge)."""
        for (_o, _r, number), pull in sorted(self.gh.pulls.items()):
            now = (pull.head_sha, pull.state, pull.merged)
            before = self.seen.get(number)
            if before is None or before == now:
                self.seen[number] = now
                continue
            self.seen[number] = now
            if pull.merged:
                self.mail.append(("pull_request", pull_payload(self.h, number, "closed", self.next_stamp())))
            elif before[0] != pull.head_sha:
                self.mail.append(("pull_request", pull_payload(self.h, number, "synchronize", self.next_stamp())))
                self.start_ci(number)

    def check_merges(self) -> None:
        """Every merge since the last step was of an approved, green pull request containing its base."""
        base = self.base_before
        for verb, args in self.gh.calls[self.calls_seen:]:
            if verb != "merge_pull":
                continue
            number, head = args[3], args[4]
            pull = self.gh.pulls[(OWNER, REPO, number)]
            if not pull.merged or pull.head_sha != head:
                continue  # refused by GitHub
            runs = self.gh.foreign_check_runs.get((OWNER, REPO, head), [])
            assert runs, f"#{number} merged with no CI on {head[:7]}"
            assert all(r.status == "completed" and r.conclusion == "success" for r in runs), f"#{number} red"
            reviews = [r for r in self.gh.pull_reviews.get((OWNER, REPO, number), []) if r.state != "COMMENTED"]
            assert reviews, f"#{number} merged unreviewed"
            assert reviews[-1].state == "APPROVED", f"#{number} merged with {reviews[-1].state}"
            assert (OWNER, REPO, head, base) in self.gh.contains or head == base, f"#{number} merged stale"
            base = _sha(f"{base}+{head}")
            event("merged")
        self.calls_seen = len(self.gh.calls)
        self.base_before = self.gh.branch_shas[(OWNER, REPO, DEFAULT_BRANCH)]

    def after(self) -> None:
        self.check_merges()
        self.observe_github()

    def deliver(self, event: str, payload: dict[str, Any]) -> None:
        self.run(self.h.deliver(event, copy.deepcopy(payload)))
        self.after()

    # ---- Rules ---------------------------------------------------------------------------------------------------

    @initialize(count=st.integers(2, 4))
    def start(self, count: int) -> None:
        self.run(add_prs(self.h, count, approve_every=0))
        for number in range(1, count + 1):
            self.seen[number] = (self.gh.pulls[(OWNER, REPO, number)].head_sha, "open", False)
            self.mail.append(("pull_request", pull_payload(self.h, number, "opened", self.next_stamp())))
        self.calls_seen = len(self.gh.calls)

    @precondition(lambda self: len(self.mail) < MAX_MAIL)
    @rule(index=st.integers(0, 9), passed=st.sampled_from([True, True, False]))
    def ci_finishes(self, index: int, passed: bool) -> None:
        number = self.pick(index)
        if number is None:
            return
        head = self.gh.pulls[(OWNER, REPO, number)].head_sha
        runs = self.gh.foreign_check_runs.get((OWNER, REPO, head), [])
        pending = [run for run in runs if run.status != "completed"]
        if not pending:
            return
        run = pending[0]
        done = replace(run, status="completed", conclusion="success" if passed else "failure")
        self.gh.foreign_check_runs[(OWNER, REPO, head)] = [done if r.id == run.id else r for r in runs]
        self.mail.append(("check_run", check_run_payload(
            self.h, number, "completed", done.conclusion, run_id=run.id)))

    @precondition(lambda self: len(self.mail) < MAX_MAIL)
    @rule()
    def ci_catches_up(self) -> None:
        """Every pending CI run passes; the head of the queue gets approved (reviewers follow the queue)."""
        for number in self.open_numbers():
            head = self.gh.pulls[(OWNER, REPO, number)].head_sha
            runs = self.gh.foreign_check_runs.get((OWNER, REPO, head), [])
            for run in runs:
                if run.status != "completed":
                    self.gh.foreign_check_runs[(OWNER, REPO, head)] = [
                        replace(r, status="completed", conclusion="success") if r.id == run.id else r for r in runs
                    ]
                    self.mail.append(("check_run", check_run_payload(
                        self.h, number, "completed", "success", run_id=run.id)))

    @precondition(lambda self: len(self.mail) < MAX_MAIL)
    @rule(index=st.integers(0, 9))
    def ci_reruns(self, index: int) -> None:
        number = self.pick(index)
        if number is not None:
            self.start_ci(number)

    @precondition(lambda self: len(self.mail) < MAX_MAIL)
    @rule(index=st.integers(0, 9), approve=st.sampled_from([True, True, False]))
    def review(self, index: int, approve: bool) -> None:
        number = self.pick(index)
        if number is not None:
            self.submit(number, approve)

    @precondition(lambda self: len(self.mail) < MAX_MAIL)
    @rule()
    def reviewers_approve_everything(self) -> None:
        for number in self.open_numbers():
            reviews = self.gh.pull_reviews.get((OWNER, REPO, number), [])
            if not reviews or reviews[-1].state != "APPROVED":
                self.submit(number, True)

    def submit(self, number: int, approve: bool) -> None:
        self.review_id += 1
        state = "APPROVED" if approve else "CHANGES_REQUESTED"
        self.gh.pull_reviews.setdefault((OWNER, REPO, number), []).append(PullReview(self.review_id, "rev", state))
        payload = copy.deepcopy(load("pull_request_review.submitted.2.json"))
        payload["installation"] = {"id": INSTALLATION_ID}
        payload["repository"]["full_name"] = FULL_NAME
        payload["pull_request"]["number"] = number
        payload["review"].update(id=self.review_id, state=state.lower(), user=user("rev"))
        self.mail.append(("pull_request_review", payload))

    @precondition(lambda self: len(self.mail) < MAX_MAIL)
    @rule(index=st.integers(0, 9))
    def new_work_pushed(self, index: int) -> None:
        number = self.pick(index)
        if number is None:
            return
        pull = self.gh.pulls[(OWNER, REPO, number)]
        self.gh.pulls[(OWNER, REPO, number)] = replace(pull, head_sha=_sha(f"{pull.head_sha}-push"))
        self.gh.pull_reviews.pop((OWNER, REPO, number), None)  # a push of work dismisses its approvals
        self.seen[number] = (self.gh.pulls[(OWNER, REPO, number)].head_sha, "open", False)
        self.mail.append(("pull_request", pull_payload(self.h, number, "synchronize", self.next_stamp())))
        self.start_ci(number)

    @precondition(lambda self: len(self.mail) < MAX_MAIL)
    @rule(index=st.integers(0, 9))
    def draft_toggles(self, index: int) -> None:
        number = self.pick(index)
        if number is None:
            return
        pull = self.gh.pulls[(OWNER, REPO, number)]
        self.gh.pulls[(OWNER, REPO, number)] = replace(pull, draft=not pull.draft)
        action = "converted_to_draft" if not pull.draft else "ready_for_review"
        self.mail.append(("pull_request", pull_payload(self.h, number, action, self.next_stamp())))

    @precondition(lambda self: bool(self.mail))
    @rule(index=st.integers(0, 99))
    def a_webhook_arrives(self, index: int) -> None:
        """Any waiting webhook, not necessarily the oldest: late and out of order."""
        event, payload = self.mail.pop(index % len(self.mail))
        self.deliver(event, payload)

    @precondition(lambda self: bool(self.mail))
    @rule(index=st.integers(0, 99))
    def a_webhook_arrives_twice(self, index: int) -> None:
        event, payload = self.mail[index % len(self.mail)]
        self.deliver(event, payload)

    @precondition(lambda self: bool(self.mail))
    @rule(index=st.integers(0, 99))
    def a_webhook_is_lost(self, index: int) -> None:
        self.mail.pop(index % len(self.mail))

    @rule()
    def the_sweep_runs(self) -> None:
        drift = self.h.services.queue.facts.drift.total
        self.run(self.h.services.queue.sweep())
        self.after()
        if self.h.services.queue.facts.drift.total > drift:
            event("the sweep repaired drift")

    @rule(lose=st.booleans())
    def everything_settles(self, lose: bool) -> None:
        """The mailbox empties (delivered in order, or lost), the sweep repairs; then the queue agrees with GitHub."""
        while self.mail:
            event, payload = self.mail.pop(0)
            if not lose:
                self.deliver(event, payload)
        queue = self.h.services.queue
        for _ in range(3):  # the merge lane may advance (each advance's webhooks delivered), then it rests
            self.run(queue.sweep())
            self.after()
            while self.mail:
                self.deliver(*self.mail.pop(0))
        drift, before = queue.facts.drift.total, len(self.gh.calls)
        self.run(queue.sweep())
        self.after()
        assert queue.facts.drift.total == drift, "the sweep found drift after a settled history"
        assert [verb for verb, _ in self.gh.calls[before:] if verb in WRITES] == []
        for number in self.open_numbers():
            head = self.gh.pulls[(OWNER, REPO, number)].head_sha
            assert any(run["head_sha"] == head and run["name"] == "review-queue"
                       for run in self.gh.check_runs.values()), f"#{number} shows no check on its head"

    # ---- Invariants ----------------------------------------------------------------------------------------------

    @invariant()
    def at_most_one_success(self) -> None:
        passing = []
        for number in self.open_numbers():
            head = self.gh.pulls[(OWNER, REPO, number)].head_sha
            runs = [run for _, run in sorted(self.gh.check_runs.items())
                    if run["head_sha"] == head and run["name"] == "review-queue"]
            if runs and runs[-1]["conclusion"] == "success":
                passing.append(number)
        assert len(passing) <= 1, passing


def test_the_queue_holds_whatever_the_deliveries(database_url: str) -> None:
    DeliveryMachine.database_url = database_url
    run_state_machine_as_test(DeliveryMachine, settings=settings(
        max_examples=25, stateful_step_count=30, deadline=None, suppress_health_check=list(HealthCheck),
        derandomize=True,
    ))
