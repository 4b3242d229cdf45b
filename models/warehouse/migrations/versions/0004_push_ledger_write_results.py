"""push_ledger.result_modified_at, result_version, written_by: what the destination answered about
each write (the record's modification time after it, Linkflow's ``ver``, the Zoho user it was made
as), so survivorship can tell our own writes from people's edits by what the APIs say instead of a
window of time.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("push_ledger", schema=None) as batch_op:
        batch_op.add_column(sa.Column("result_modified_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("result_version", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("written_by", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("push_ledger", schema=None) as batch_op:
        batch_op.drop_column("written_by")
        batch_op.drop_column("result_version")
        batch_op.drop_column("result_modified_at")
