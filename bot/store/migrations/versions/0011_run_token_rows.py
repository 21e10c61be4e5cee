"""Run tokens: one row per token, not per run, written before the token is minted. A run started twice (requeued
after its worker was declared dead, or after a kill) has two tokens; a second start used to replace the first one's
row, so a token minted by a worker that then lost the run was never revoked. And a row is now written before the
mint (`sealed` empty until GitHub answers), so a kill between GitHub's answer and the write leaves a trace: the
token cannot be revoked (only the token itself can do that), but Kickoff knows and says it expires within the hour.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

from bot.store.models import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_tokens_new",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
    )
    op.execute("INSERT INTO run_tokens_new (run_id, sealed, expires_at, created_at, revoked_at) "
               "SELECT run_id, sealed, expires_at, created_at, revoked_at FROM run_tokens ORDER BY run_id")
    op.drop_index("ix_run_tokens_unrevoked", table_name="run_tokens")
    op.drop_table("run_tokens")
    op.rename_table("run_tokens_new", "run_tokens")
    op.create_index("ix_run_tokens_unrevoked", "run_tokens", ["revoked_at"])
    op.create_index("ix_run_tokens_run", "run_tokens", ["run_id"])


def downgrade() -> None:
    op.create_table(
        "run_tokens_old",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
    )
    # The latest token of each run (what the one-row-per-run table kept).
    op.execute("INSERT INTO run_tokens_old (run_id, sealed, expires_at, created_at, revoked_at) "
               "SELECT run_id, sealed, expires_at, created_at, revoked_at FROM run_tokens t "
               "WHERE sealed IS NOT NULL AND id = (SELECT max(id) FROM run_tokens u "
               "WHERE u.run_id = t.run_id AND u.sealed IS NOT NULL)")
    op.drop_index("ix_run_tokens_run", table_name="run_tokens")
    op.drop_index("ix_run_tokens_unrevoked", table_name="run_tokens")
    op.drop_table("run_tokens")
    op.rename_table("run_tokens_old", "run_tokens")
    op.create_index("ix_run_tokens_unrevoked", "run_tokens", ["revoked_at"])
