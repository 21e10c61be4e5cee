"""A repository's daily cost (issue 16, `limits.daily_cost_usd`): the claim step sums `runs.cost_usd` of the
repository's runs finished since UTC midnight, one range of `(repository, finished_at)` however long the history.

Revision ID: 0015
Revises: 0014
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_repository_finished", "runs", ["repository", "finished_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_repository_finished", table_name="runs")
