"""Bounded storage: the indexes that let the dashboard, `/metrics` and retention read ranges, never whole tables.

With a year of history, counts by status and state, the latest finished runs of each repository and the open pull
requests read every row of `deliveries`, `runs` and `pull_requests`. Retention (`bot.store.retention`) deletes
handled deliveries by `(status, received_at)`; the 24-hour figures read `runs.finished_at`.

Revision ID: 0009
Revises: 0006
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deliveries_status_received", "deliveries", ["status", "received_at"])
    op.create_index("ix_runs_repository_id", "runs", ["repository", "id"])
    op.create_index("ix_runs_finished", "runs", ["finished_at"])
    op.create_index("ix_pull_requests_open", "pull_requests", ["state", "repository", "base_ref"])


def downgrade() -> None:
    op.drop_index("ix_pull_requests_open", table_name="pull_requests")
    op.drop_index("ix_runs_finished", table_name="runs")
    op.drop_index("ix_runs_repository_id", table_name="runs")
    op.drop_index("ix_deliveries_status_received", table_name="deliveries")
