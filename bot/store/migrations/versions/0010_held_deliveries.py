"""One repository's deliveries leased to one worker at a time: the index the claim reads to see whether another
delivery of the same repository is leased (`status = 'processing'`, its lease running), in a few rows.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deliveries_leased", "deliveries", ["status", "repository", "due_at"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_leased", table_name="deliveries")
