"""One known picture for the dashboard's tests and its screenshot: an installation, two repositories, a review queue
of five pull requests, runs in every kind of state, and deliveries that failed and died."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.store.db import Store
from bot.store.models import (
    Delivery,
    DeliveryStatus,
    Installation,
    PullRequest,
    Repository,
    Run,
    RunState,
    RunTransition,
    Trigger,
)

INSTALLATION = 4242
REPO = "octo/demo"
OTHER_REPO = "octo/api"
QUEUE_ORDER = [23, 22, 21]
"""The review order: #23 was bumped, #22 is high priority, #21 waited longest at normal priority."""
NOT_IN_ORDER = [24, 25]
"""#24 is a draft, #25 is on hold."""


@dataclass(frozen=True)
class Seeded:
    running_run: int
    waiting_run: int
    dead_delivery: str
    retrying_delivery: str


def _check(title: str, state: str, position: int | None = None) -> str:
    """`pull_requests.queue_check` as the queue service writes it (`bot.queue.store.Memory`)."""
    check = {"head_sha": "0" * 40, "status": "in_progress", "conclusion": None, "title": title, "summary": ""}
    return json.dumps({"check": check, "state": state, "reason": None, "position": position})


async def seed(store: Store, now: datetime) -> Seeded:
    """Write the scenario's rows directly, as the services would have left them."""
    def ago(**parts: float) -> datetime:
        return now - timedelta(**parts)

    async with store.sessions.begin() as session:
        session.add(Installation(id=INSTALLATION, account_login="octo", account_type="Organization", suspended=False,
                                 created_at=ago(days=3), updated_at=ago(days=3)))
        session.add(Repository(id=1, installation_id=INSTALLATION, full_name=REPO, private=False))
        session.add(Repository(id=2, installation_id=INSTALLATION, full_name=OTHER_REPO, private=True))
        fix = Trigger(delivery_id="d-fix", seq=0, installation_id=INSTALLATION, repository=REPO, issue_number=7,
                      source="label", task="fix", sender="mona", created_at=ago(hours=5))
        research = Trigger(delivery_id="d-research", seq=0, installation_id=INSTALLATION, repository=REPO,
                           issue_number=9, source="comment", task="research", sender="mona", created_at=ago(minutes=9))
        api = Trigger(delivery_id="d-api", seq=0, installation_id=INSTALLATION, repository=OTHER_REPO,
                      issue_number=3, source="label", task="implement", sender="hubot", created_at=ago(hours=1))
        session.add_all([fix, research, api])
        await session.flush()

        def run(trigger: Trigger, agent: str, state: str, *, started: timedelta | None = None,
                took: timedelta | None = None, **values: object) -> Run:
            started_at = now - started if started is not None else None
            finished_at = started_at + took if started_at is not None and took is not None else None
            return Run(trigger_id=trigger.id, installation_id=INSTALLATION, repository=trigger.repository,
                       issue_number=trigger.issue_number, task=trigger.task, agent=agent, attempt=1, kind="new",
                       state=state, created_at=trigger.created_at, updated_at=finished_at or now,
                       started_at=started_at, finished_at=finished_at, **values)

        claude = run(fix, "claude", RunState.SUCCEEDED, started=timedelta(hours=4, minutes=50),
                     took=timedelta(minutes=7, seconds=12), runner="local", pr_number=21, cost_usd=0.42)
        codex = run(fix, "codex", RunState.SUCCEEDED, started=timedelta(hours=4, minutes=50),
                    took=timedelta(minutes=11, seconds=3), runner="local", pr_number=22, cost_usd=0.31)
        aider = run(fix, "aider", RunState.FAILED, started=timedelta(hours=4, minutes=50),
                    took=timedelta(minutes=2, seconds=40), runner="local",
                    reason="the verify command failed: pytest -q exited 1")
        gemini = run(fix, "gemini", RunState.NO_CHANGES, started=timedelta(hours=4, minutes=50),
                     took=timedelta(minutes=1, seconds=5), runner="local", reason="the agent changed nothing")
        running = run(research, "claude", RunState.RUNNING, started=timedelta(minutes=4, seconds=30),
                      runner="github-actions", progress="agent running",
                      runner_ref="github-actions:octo/demo:41")  # a workflow run: no worker of this test takes it over
        waiting = run(research, "codex", RunState.WAITING,
                      reason="waiting: octo/demo already has 5 agent pull requests awaiting review (max_open_prs)")
        api_run = run(api, "claude", RunState.SUCCEEDED, started=timedelta(minutes=50), took=timedelta(minutes=14),
                      runner="kubernetes", pr_number=4, cost_usd=1.07)
        runs = [claude, codex, aider, gemini, running, waiting, api_run]
        session.add_all(runs)
        await session.flush()
        for r in runs:
            session.add(RunTransition(run_id=r.id, from_state=None, to_state=r.state, at=r.updated_at))

        def pull(number: int, title: str, agent: str, *, repository: str = REPO, run_id: int | None = None,
                 eligible: timedelta | None = None, check: str | None, **values: object) -> PullRequest:
            return PullRequest(installation_id=INSTALLATION, repository=repository, number=number, run_id=run_id,
                               issue_number=7, agent=agent, title=title, author="kickoff[bot]",
                               head_ref=f"kickoff/7-fix-{agent}-{number}", head_sha=f"{number:040d}", base_ref="main",
                               state="open", eligible_since=now - eligible if eligible is not None else None,
                               queue_check=check, created_at=ago(hours=4, minutes=40), updated_at=now,
                               **values)

        session.add_all([
            pull(21, "fix: crash on empty config (#7) [claude]", "claude", run_id=claude.id,
                 eligible=timedelta(hours=4, minutes=30),
                 check=_check("Queued for review: 3rd in line — review #23 first", "queued", 3)),
            pull(22, "fix: crash on empty config (#7) [codex]", "codex", run_id=codex.id,
                 eligible=timedelta(hours=4, minutes=20), priority="high",
                 check=_check("Queued for review: 2nd in line — review #23 first", "queued", 2)),
            pull(23, "docs: explain the retry budget", "house-fixer", eligible=timedelta(hours=2),
                 bumped_at=ago(minutes=30), check=_check("Next for review", "next_for_review", 1)),
            pull(24, "refactor: split the loader (#7) [aider]", "aider", check=_check("Not queued: draft", "draft"),
                 draft=True),
            pull(25, "feat: retry with jitter (#7) [gemini]", "gemini", eligible=timedelta(hours=1), held=True,
                 check=_check("On hold", "on_hold")),
            pull(4, "implement: pagination (#3) [claude]", "claude", repository=OTHER_REPO, run_id=api_run.id,
                 eligible=timedelta(minutes=30), check=None),
        ])

        def delivery(did: str, event: str, action: str | None, status: str, attempts: int, *,
                     error: str | None = None, received: timedelta) -> Delivery:
            return Delivery(id=did, event=event, action=action, installation_id=INSTALLATION, repository=REPO,
                            received_at=now - received, payload="{}", status=status, attempts=attempts,
                            next_attempt_at=now + timedelta(minutes=2), last_error=error,
                            due_at=now + timedelta(minutes=2) if status == DeliveryStatus.RETRYING else None,
                            finished_at=None if status == DeliveryStatus.RETRYING else now - received)

        dead = "5a1c7f30-0000-4000-8000-00000000dead"
        retrying = "5a1c7f30-0000-4000-8000-0000000retry"
        session.add_all([
            delivery("5a1c7f30-0000-4000-8000-000000000001", "issues", "labeled", DeliveryStatus.DONE, 1,
                     received=timedelta(hours=5)),
            delivery(dead, "issue_comment", "created", DeliveryStatus.DEAD, 6,
                     error="GitHubUnavailable: GET /repos/octo/demo/contents/.github/kickoff.yml: 502 Bad Gateway",
                     received=timedelta(hours=2)),
            delivery(retrying, "pull_request", "synchronize", DeliveryStatus.RETRYING, 2,
                     error="RateLimited: secondary rate limit, retry after 60 s", received=timedelta(minutes=3)),
        ])
    return Seeded(running_run=running.id, waiting_run=waiting.id, dead_delivery=dead, retrying_delivery=retrying)
