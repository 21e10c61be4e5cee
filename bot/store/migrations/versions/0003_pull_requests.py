"""Pull requests and their review-queue state.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from bot.store.models import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pull_requests",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("installation_id", sa.BigInteger(), nullable=False),
        sa.Column("repository", sa.String(255), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="SET NULL")),
        sa.Column("trigger_id", sa.Integer(), sa.ForeignKey("triggers.id", ondelete="SET NULL")),
        sa.Column("issue_number", sa.Integer()),
        sa.Column("agent", sa.String(64)),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("author", sa.String(255)),
        sa.Column("head_ref", sa.String(255), nullable=False),
        sa.Column("head_sha", sa.String(64)),
        sa.Column("base_ref", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("draft", sa.Boolean(), nullable=False),
        sa.Column("agent_check_run_id", sa.BigInteger()),
        sa.Column("fix_attempts", sa.Integer(), nullable=False),
        sa.Column("priority", sa.String(16)),
        sa.Column("held", sa.Boolean(), nullable=False),
        sa.Column("unqueued", sa.Boolean(), nullable=False),
        sa.Column("bumped_at", UTCDateTime()),
        sa.Column("let_ahead", sa.Integer()),
        sa.Column("eligible_since", UTCDateTime()),
        sa.Column("dequeued", sa.String(32)),
        sa.Column("queue_check_run_id", sa.BigInteger()),
        sa.Column("queue_check", sa.Text()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("merged_at", UTCDateTime()),
        sa.Column("closed_at", UTCDateTime()),
        sa.UniqueConstraint("repository", "number", name="uq_pull_requests_repository_number"),
        sa.UniqueConstraint("run_id", name="uq_pull_requests_run"),
    )
    op.create_index("ix_pull_requests_queue", "pull_requests", ["repository", "base_ref", "state"])
    op.create_index("ix_runs_updated_at", "runs", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_updated_at", "runs")
    op.drop_table("pull_requests")
