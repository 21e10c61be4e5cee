"""Workers: every `kickoff serve`/`kickoff worker` process registers and heartbeats, and every claim names its worker.

A claim used to end only when it timed out: a delivery lease after `KICKOFF_LEASE_SECONDS` (120 s), a pull request
being opened after 5 minutes, and a run claimed but never started not at all (recovery ran only at start-up and
skipped such runs for 2 minutes). Now the delivery lease, the run from `starting` on, and the pull request being
opened each name their worker, and a dead worker's claims are taken over at once (bot.worker, bot.store.workers).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from bot.store.models import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("pid_namespace", sa.String(64), nullable=True),
        sa.Column("process_started", sa.BigInteger(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.Column("stopped_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_workers_live", "workers", ["stopped_at", "heartbeat_at"])
    for table in ("deliveries", "runs", "pull_requests"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("worker_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    for table in ("pull_requests", "runs", "deliveries"):
        # Natively (SQLite has DROP COLUMN since 3.35): a batch copy of `deliveries` would cascade into its payloads.
        op.execute(f"ALTER TABLE {table} DROP COLUMN worker_id")
    op.drop_index("ix_workers_live", table_name="workers")
    op.drop_table("workers")
