"""A pull request's reviewer brief kept current (issue 16): what its body was rendered from besides the run
(`brief_context`, JSON: the issue's title, the sender, the task's output, the follow-up target, the report's path)
and the SHA-256 of the body Kickoff last wrote (`body_sha256`), so a refresh that renders the same text writes
nothing.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pull_requests") as batch:
        batch.add_column(sa.Column("brief_context", sa.Text(), nullable=True))
        batch.add_column(sa.Column("body_sha256", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pull_requests") as batch:
        batch.drop_column("body_sha256")
        batch.drop_column("brief_context")
