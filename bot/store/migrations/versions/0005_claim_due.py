"""The inbox laid out for the claim: `due_at` with its index, and the payloads in a table of their own.

`due_at` is when a delivery may next be claimed (NULL once it is done or dead). The claim used to select
`status IN (pending, retrying) AND next_attempt_at <= now OR status = processing AND lease_expires_at < now` ordered
by `received_at`: an OR over two index ranges and a sort of every due row, so with a backlog of tens of thousands of
deliveries each claim read them all. One column and one index make a claim read only the rows it takes.

The payload moves to `delivery_payloads`: SQLite rewrites a whole record, a 10 KB payload's overflow pages included,
whenever a column changes size, so each claim and each outcome wrote the payload again. The old claim's index on
`(status, next_attempt_at)` goes: nothing reads it any more, and every insert paid for it.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from bot.store.models import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("due_at", UTCDateTime(), nullable=True))
    op.execute("UPDATE deliveries SET due_at = next_attempt_at WHERE status IN ('pending', 'retrying')")
    op.execute("UPDATE deliveries SET due_at = lease_expires_at WHERE status = 'processing'")
    op.create_index("ix_deliveries_due", "deliveries", ["due_at", "id"])
    op.drop_index("ix_deliveries_claim", table_name="deliveries")  # the old claim's; one index less per insert
    op.create_table(
        "delivery_payloads",
        sa.Column("delivery_id", sa.String(100), sa.ForeignKey("deliveries.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("payload", sa.Text(), nullable=False),
    )
    op.execute("INSERT INTO delivery_payloads (delivery_id, payload) SELECT id, payload FROM deliveries")
    # Natively, not through a batch copy: re-creating `deliveries` under SQLite's foreign keys would cascade the
    # drop of the old table into the payloads just copied. (SQLite has DROP COLUMN since 3.35.)
    op.execute("ALTER TABLE deliveries DROP COLUMN payload")


def downgrade() -> None:
    op.execute("ALTER TABLE deliveries ADD COLUMN payload TEXT")
    op.execute("UPDATE deliveries SET payload = (SELECT payload FROM delivery_payloads WHERE delivery_id = id)")
    op.drop_table("delivery_payloads")
    op.create_index("ix_deliveries_claim", "deliveries", ["status", "next_attempt_at"])
    op.drop_index("ix_deliveries_due", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("due_at")
