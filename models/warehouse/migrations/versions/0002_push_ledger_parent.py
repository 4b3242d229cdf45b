"""push_ledger.parent_id: the container a write went to (ClickSend list, ClickFunnels workspace,
Linkflow channel), so a run's writes can be undone without guessing where they went; and
push_ledger.record_modified_at: the record's modification time when the write was planned, so
survivorship can tell our own writes from people's edits.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 21:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("push_ledger", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("record_modified_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("push_ledger", schema=None) as batch_op:
        batch_op.drop_column("record_modified_at")
        batch_op.drop_column("parent_id")
