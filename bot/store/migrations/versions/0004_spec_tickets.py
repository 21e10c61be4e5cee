"""Spec tickets: the one-time fetch of a run's spec by a remote runner (`GET /api/runs/{id}/spec`).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from bot.store.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spec_tickets",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True,
                  autoincrement=False),
        sa.Column("ticket_hash", sa.String(64), nullable=False),
        sa.Column("spec", sa.Text()),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("redeemed_at", UTCDateTime()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("spec_tickets")
