"""Run tokens: each run's GitHub token, sealed, with its expiry and when it was revoked.

Run tokens were kept only in the memory of the process that minted them, so a kill left them valid for up to an
hour. Kept here sealed (AES-GCM under a key derived from the App's private key, see `bot.runs.tokens`), whoever
ends or recovers a run revokes its token, and the sweep revokes those of ended runs still unrevoked.

Revision ID: 0008
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from bot.store.models import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_tokens",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_run_tokens_unrevoked", "run_tokens", ["revoked_at"])


def downgrade() -> None:
    op.drop_index("ix_run_tokens_unrevoked", table_name="run_tokens")
    op.drop_table("run_tokens")
