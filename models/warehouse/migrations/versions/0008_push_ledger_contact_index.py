"""Reverse sync plans in slices of contacts: its ledger reads (rows in flight, settled, rejected before)
go by the contacts of the slice or of the change, through an index on (destination, object, contact_id),
so their cost follows what is planned, not every row ever written.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 23:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_push_ledger_destination_object_contact", "push_ledger", ["destination", "object", "contact_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_push_ledger_destination_object_contact", table_name="push_ledger")
