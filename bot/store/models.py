"""Tables. Every change here comes with an Alembic migration in `migrations/versions/`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.associationproxy import AssociationProxy, association_proxy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class DeliveryStatus:
    PENDING = "pending"
    PROCESSING = "processing"
    RETRYING = "retrying"
    DONE = "done"
    DEAD = "dead"
    ALL = (PENDING, PROCESSING, RETRYING, DONE, DEAD)


class Delivery(Base):
    """The inbox: one row per acknowledged webhook delivery, keyed by GitHub's delivery id."""

    __tablename__ = "deliveries"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    event: Mapped[str] = mapped_column(String(64))
    action: Mapped[str | None] = mapped_column(String(64))
    installation_id: Mapped[int | None] = mapped_column(BigInteger)
    repository: Mapped[str | None] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When the delivery may next be claimed: its next attempt while pending or retrying, its lease's end while
    # processing, NULL once done or dead. The claim reads `due_at <= now` in index order and nothing else.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    # The worker (`workers.id`) whose dispatcher holds the lease: when that worker dies its leases end at once.
    worker_id: Mapped[int | None] = mapped_column(Integer)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The payload lives in its own table: a claim or an outcome rewrites this small row, and SQLite rewrites a whole
    # record (a 10 KB payload and its overflow pages) whenever one of its columns changes size.
    body: Mapped[DeliveryPayload] = relationship(lazy="joined", cascade="all, delete-orphan", uselist=False)
    payload: AssociationProxy[str] = association_proxy("body", "payload", creator=lambda p: DeliveryPayload(payload=p))

    __table_args__ = (
        Index("ix_deliveries_received", "received_at"),
        Index("ix_deliveries_due", "due_at", "id"),
        # Counts by status, the dashboard's problem deliveries, the 24-hour figures and retention read ranges of it.
        Index("ix_deliveries_status_received", "status", "received_at"),
        # A claim skips repositories with a delivery leased to some worker (bot.store.inbox).
        Index("ix_deliveries_leased", "status", "repository", "due_at"),
    )


class Worker(Base):
    """One `kickoff serve` or `kickoff worker` process, registered at its start and kept alive by its heartbeat
    (bot.worker's `Membership`). A worker is dead once stopped, once its heartbeat is older than
    `KICKOFF_WORKER_TIMEOUT_SECONDS`, or (seen from its own host and pid namespace) once its pid is gone or belongs to
    a process started at another time. Every claim names its worker, so the others take a dead one's claims over."""

    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    pid_namespace: Mapped[str | None] = mapped_column(String(64))  # e.g. `pid:[4026531836]`
    process_started: Mapped[int | None] = mapped_column(BigInteger)  # /proc/<pid>/stat's starttime, in clock ticks
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_workers_live", "stopped_at", "heartbeat_at"),)


class DeliveryPayload(Base):
    """A delivery's raw JSON body, exactly as signed, written once."""

    __tablename__ = "delivery_payloads"

    delivery_id: Mapped[str] = mapped_column(
        String(100), ForeignKey("deliveries.id", ondelete="CASCADE"), primary_key=True
    )
    payload: Mapped[str] = mapped_column(Text)


class Installation(Base):
    __tablename__ = "installations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_login: Mapped[str] = mapped_column(String(255))
    account_type: Mapped[str] = mapped_column(String(32))
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Repository(Base):
    __tablename__ = "repositories"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    installation_id: Mapped[int] = mapped_column(BigInteger, index=True)
    full_name: Mapped[str] = mapped_column(String(255), index=True)
    private: Mapped[bool] = mapped_column(Boolean, default=False)


class Trigger(Base):
    """One accepted request to start agents: a label, a command line, a follow-up. Keyed to its delivery."""

    __tablename__ = "triggers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(100))
    seq: Mapped[int] = mapped_column(Integer)  # which command of the delivery (0 for a label)
    installation_id: Mapped[int] = mapped_column(BigInteger)
    repository: Mapped[str] = mapped_column(String(255))
    issue_number: Mapped[int] = mapped_column(Integer)
    is_pull_request: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(32))  # label | comment | review | review_comment | check | fix
    task: Mapped[str] = mapped_column(String(64))
    sender: Mapped[str] = mapped_column(String(255))
    instructions: Mapped[str] = mapped_column(Text, default="")
    tracking_comment_id: Mapped[int | None] = mapped_column(BigInteger)
    # The fan-out's attempts ranked for review, as published (JSON; `bot.ranking`), once its runs have ended.
    ranking: Mapped[str | None] = mapped_column(Text)
    ranked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("delivery_id", "seq", name="uq_triggers_delivery_seq"),
        Index("ix_triggers_issue", "repository", "issue_number"),
    )


class TriggerSnapshot(Base):
    """What the agent may read, frozen when the trigger was accepted: the issue's title and body and its comments
    (JSON, see `bot.runs.snapshot`), with the sha256 of that text. A table of its own: loading a trigger (the
    tracking comments do, often) never reads it."""

    __tablename__ = "trigger_snapshots"

    trigger_id: Mapped[int] = mapped_column(ForeignKey("triggers.id", ondelete="CASCADE"), primary_key=True)
    body: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RunState:
    QUEUED = "queued"
    WAITING = "waiting"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    NO_CHANGES = "no_changes"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    ACTIVE = (QUEUED, WAITING, STARTING, RUNNING)
    FINAL = (SUCCEEDED, NO_CHANGES, FAILED, CANCELLED, TIMED_OUT)


JUDGE_KIND: Final = "judge"
"""The kind of a fan-out's judge run: it ranks the attempts, reads their branches and pushes nothing."""
JUDGE_ATTEMPT: Final = 0
"""A judge run's attempt number: attempts count from 1, so (trigger, agent, 0) never collides with one, even when
the judge is one of the fan-out's agents."""


class Run(Base):
    """One agent × attempt of a trigger, on one runner, producing at most one pull request."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trigger_id: Mapped[int] = mapped_column(ForeignKey("triggers.id", ondelete="CASCADE"))
    installation_id: Mapped[int] = mapped_column(BigInteger)
    repository: Mapped[str] = mapped_column(String(255))
    issue_number: Mapped[int] = mapped_column(Integer)
    task: Mapped[str] = mapped_column(String(64))
    agent: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    kind: Mapped[str] = mapped_column(String(16), default="new")  # new | followup | fix | judge
    state: Mapped[str] = mapped_column(String(16), default=RunState.QUEUED)
    reason: Mapped[str | None] = mapped_column(Text)
    branch: Mapped[str | None] = mapped_column(String(255))
    base_branch: Mapped[str | None] = mapped_column(String(255))
    pr_number: Mapped[int | None] = mapped_column(Integer)  # the PR it opened, or the PR a follow-up works on
    runner: Mapped[str | None] = mapped_column(String(32))
    runner_ref: Mapped[str | None] = mapped_column(String(255))  # pid, job name, machine id, workflow run id
    # The worker that holds the run: the one that claimed it (`starting`), follows its runner, or delivers its
    # pull request. When that worker dies, another takes the run over (bot.runs.following).
    worker_id: Mapped[int | None] = mapped_column(Integer)
    secret_hash: Mapped[str | None] = mapped_column(String(128))  # sha256 of the per-run report secret
    progress: Mapped[str | None] = mapped_column(String(32))
    result: Mapped[str | None] = mapped_column(Text)  # RunResult JSON
    cost_usd: Mapped[float | None] = mapped_column(Float)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("trigger_id", "agent", "attempt", name="uq_runs_trigger_agent_attempt"),
        Index("ix_runs_state", "state"),
        Index("ix_runs_repository_state", "repository", "state"),
        Index("ix_runs_updated_at", "updated_at"),
        # The dashboard's latest finished runs of a repository, and the 24-hour figures of `/metrics`.
        Index("ix_runs_repository_id", "repository", "id"),
        Index("ix_runs_finished", "finished_at"),
        # A repository's cost since UTC midnight (`limits.daily_cost_usd`, bot.runs.claims).
        Index("ix_runs_repository_finished", "repository", "finished_at"),
    )


class RunTransition(Base):
    """Every state change of a run, with its time and reason."""

    __tablename__ = "run_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class RunToken(Base):
    """A run's GitHub token, kept so that whoever ends or recovers the run can revoke it (`bot.runs.tokens`).

    One row per token: a run started twice (requeued after a kill) has two. Written just before the token is
    minted, with `sealed` None until GitHub's answer is recorded: such a row of an ended run is a token lost to a
    kill between the two (it cannot be revoked; it expires by `expires_at`). `sealed` is the token encrypted with
    AES-GCM under a key derived from the App's private key: never the token in clear. `revoked_at` is set once
    GitHub has been told (or the token is past `expires_at`, or it was lost)."""

    __tablename__ = "run_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_run_tokens_unrevoked", "revoked_at"), Index("ix_run_tokens_run", "run_id"))


class PullRequest(Base):
    """A pull request Kickoff opened for a run, or a human one labelled `kickoff:queue`; with its queue state."""

    __tablename__ = "pull_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    installation_id: Mapped[int] = mapped_column(BigInteger)
    repository: Mapped[str] = mapped_column(String(255))
    number: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    trigger_id: Mapped[int | None] = mapped_column(ForeignKey("triggers.id", ondelete="SET NULL"))
    issue_number: Mapped[int | None] = mapped_column(Integer)
    agent: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str | None] = mapped_column(String(255))
    head_ref: Mapped[str] = mapped_column(String(255))
    head_sha: Mapped[str | None] = mapped_column(String(64))
    base_ref: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default="open")  # open | closed | merged
    draft: Mapped[bool] = mapped_column(Boolean, default=False)
    agent_check_run_id: Mapped[int | None] = mapped_column(BigInteger)
    fix_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The worker opening it while `opening`: a dead worker's reservation is taken over at once.
    worker_id: Mapped[int | None] = mapped_column(Integer)
    # Review queue state (see bot/queue/model.py): what Kickoff remembers between reconciles.
    priority: Mapped[str | None] = mapped_column(String(16))  # set by `/agent priority`; labels are read live
    held: Mapped[bool] = mapped_column(Boolean, default=False)
    unqueued: Mapped[bool] = mapped_column(Boolean, default=False)
    bumped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    let_ahead: Mapped[int | None] = mapped_column(Integer)
    eligible_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dequeued: Mapped[str | None] = mapped_column(String(32))
    queue_check_run_id: Mapped[int | None] = mapped_column(BigInteger)
    queue_check: Mapped[str | None] = mapped_column(Text)  # JSON of the last check written (for diffing)
    # Its place among its fan-out's siblings (1: the best attempt) and why; `/agent prefer` makes it the leader.
    rank: Mapped[int | None] = mapped_column(Integer)
    rank_reason: Mapped[str | None] = mapped_column(Text)
    preferred_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # What the reviewer brief was rendered from besides the run (JSON, `bot.prs.brief`), and the digest of the body
    # Kickoff last wrote: a refresh that renders the same text writes nothing.
    brief_context: Mapped[str | None] = mapped_column(Text)
    body_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    merged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("repository", "number", name="uq_pull_requests_repository_number"),
        UniqueConstraint("run_id", name="uq_pull_requests_run"),
        Index("ix_pull_requests_queue", "repository", "base_ref", "state"),
        Index("ix_pull_requests_open", "state", "repository", "base_ref"),  # every open pull request
    )


class PullFacts(Base):
    """What Kickoff knows of one pull request's GitHub state, kept from webhooks (`bot.queue.facts`): the pull
    request, its labels and reviews, and when it was last read from GitHub in full (`synced_at`). The queue reads
    GitHub again only when these are not trusted: never read, `stale`, or older than the sweep's window."""

    __tablename__ = "pull_facts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    repository: Mapped[str] = mapped_column(String(255))
    number: Mapped[int] = mapped_column(Integer)
    pull: Mapped[str | None] = mapped_column(Text)  # JSON of `PullRequestInfo`; None: never seen
    pull_stamp: Mapped[datetime | None] = mapped_column(UTCDateTime())  # GitHub's `updated_at` of `pull`
    labels: Mapped[str | None] = mapped_column(Text)  # JSON list; None: unknown
    reviews: Mapped[str | None] = mapped_column(Text)  # JSON {review id: [login, STATE]}; None: unknown
    decision: Mapped[str | None] = mapped_column(Text)  # JSON of the last review decision with live permissions
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    stale: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("repository", "number", name="uq_pull_facts_repository_number"),)


class CommitFacts(Base):
    """The check runs and commit statuses of one commit, kept from `check_run` and `status` webhooks; complete
    (trusted) only once read from GitHub (`synced_at`), and kept current by the webhooks after that."""

    __tablename__ = "commit_facts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    repository: Mapped[str] = mapped_column(String(255))
    sha: Mapped[str] = mapped_column(String(64))
    runs: Mapped[str] = mapped_column(Text, default="{}")  # JSON {check run id: [name, status, conclusion, app]}
    statuses: Mapped[str] = mapped_column(Text, default="{}")  # JSON {context: [state, status id or -1]}
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("repository", "sha", name="uq_commit_facts_repository_sha"),
        Index("ix_commit_facts_updated", "updated_at"),
    )
