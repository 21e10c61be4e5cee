"""Pull request and commit facts kept from webhooks (issue 15): the queue stops re-reading every open pull request
from GitHub on every event; it reads one only when its facts are not trusted (first sight, stale, or older than
the sweep's window), and the periodic sweep re-reads them all and repairs drift.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

from bot.store.models import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pull_facts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("repository", sa.String(255), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("pull", sa.Text(), nullable=True),
        sa.Column("pull_stamp", UTCDateTime(), nullable=True),
        sa.Column("labels", sa.Text(), nullable=True),
        sa.Column("reviews", sa.Text(), nullable=True),
        sa.Column("decision", sa.Text(), nullable=True),
        sa.Column("synced_at", UTCDateTime(), nullable=True),
        sa.Column("stale", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("repository", "number", name="uq_pull_facts_repository_number"),
    )
    op.create_table(
        "commit_facts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("repository", sa.String(255), nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("runs", sa.Text(), nullable=False),
        sa.Column("statuses", sa.Text(), nullable=False),
        sa.Column("synced_at", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("repository", "sha", name="uq_commit_facts_repository_sha"),
    )
    op.create_index("ix_commit_facts_updated", "commit_facts", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_commit_facts_updated", table_name="commit_facts")
    op.drop_table("commit_facts")
    op.drop_table("pull_facts")
