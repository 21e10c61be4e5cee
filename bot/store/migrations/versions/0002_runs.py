"""Triggers, runs and their transitions.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from bot.store.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "triggers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("delivery_id", sa.String(100), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("installation_id", sa.BigInteger(), nullable=False),
        sa.Column("repository", sa.String(255), nullable=False),
        sa.Column("issue_number", sa.Integer(), nullable=False),
        sa.Column("is_pull_request", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("sender", sa.String(255), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column("tracking_comment_id", sa.BigInteger()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("delivery_id", "seq", name="uq_triggers_delivery_seq"),
    )
    op.create_index("ix_triggers_issue", "triggers", ["repository", "issue_number"])
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("trigger_id", sa.Integer(), sa.ForeignKey("triggers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("installation_id", sa.BigInteger(), nullable=False),
        sa.Column("repository", sa.String(255), nullable=False),
        sa.Column("issue_number", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("agent", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("branch", sa.String(255)),
        sa.Column("base_branch", sa.String(255)),
        sa.Column("pr_number", sa.Integer()),
        sa.Column("runner", sa.String(32)),
        sa.Column("runner_ref", sa.String(255)),
        sa.Column("secret_hash", sa.String(128)),
        sa.Column("progress", sa.String(32)),
        sa.Column("result", sa.Text()),
        sa.Column("cost_usd", sa.Float()),
        sa.Column("input_tokens", sa.Integer()),
        sa.Column("output_tokens", sa.Integer()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("finished_at", UTCDateTime()),
        sa.UniqueConstraint("trigger_id", "agent", "attempt", name="uq_runs_trigger_agent_attempt"),
    )
    op.create_index("ix_runs_state", "runs", ["state"])
    op.create_index("ix_runs_repository_state", "runs", ["repository", "state"])
    op.create_table(
        "run_transitions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("from_state", sa.String(16)),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_run_transitions_run_id", "run_transitions", ["run_id"])


def downgrade() -> None:
    op.drop_table("run_transitions")
    op.drop_table("runs")
    op.drop_table("triggers")
