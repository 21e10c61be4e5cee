"""Trigger snapshots: the issue's text and comments as they were when a trigger was accepted, with their sha256.

The prompt used to read the issue and every comment when the run started, so a comment added after the `agent:*`
label (and deleted after the run) reached the agent. The snapshot is taken when the trigger is accepted and the
prompt is built from it (see `bot.runs.snapshot`). Its own table, so loading a trigger never reads it.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from bot.store.models import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trigger_snapshots",
        sa.Column("trigger_id", sa.Integer(), sa.ForeignKey("triggers.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("taken_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("trigger_snapshots")
