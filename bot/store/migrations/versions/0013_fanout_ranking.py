"""A fan-out's attempts ranked for review (issue 16): each pull request's place among its siblings (`rank`, 1 the
best, with its one-line reason), a sibling a maintainer chose with `/agent prefer` (`preferred_at`), and on the
trigger the ranking as published (`ranking`, JSON: its source, evidence or judge, a note, and one row an attempt)
with when it was made (`ranked_at`).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

from bot.store.models import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pull_requests") as batch:
        batch.add_column(sa.Column("rank", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("rank_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("preferred_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("triggers") as batch:
        batch.add_column(sa.Column("ranking", sa.Text(), nullable=True))
        batch.add_column(sa.Column("ranked_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("triggers") as batch:
        batch.drop_column("ranked_at")
        batch.drop_column("ranking")
    with op.batch_alter_table("pull_requests") as batch:
        batch.drop_column("preferred_at")
        batch.drop_column("rank_reason")
        batch.drop_column("rank")
