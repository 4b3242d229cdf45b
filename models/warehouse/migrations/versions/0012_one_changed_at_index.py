"""raw_records keeps one index on changed_at, (source, changed_at), not two.

Every record whose content changed moves its ``changed_at``, and each index over it then deletes the
old entry, which sits wherever that record's last change put it: a random leaf page, read from disk
when the warehouse is larger than what the page cache keeps. Measured on a 994,789-record SQLite
warehouse with its file dropped from the page cache, 13,800 changed records updated in pages of 500:
3.6 to 3.8 s with both indexes, 1.9 to 2.4 s with (source, changed_at) alone. The readers that went
through (changed_at) now ask source by source (`models.warehouse.store.keys_changed_since`,
`latest_change`).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 18:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_raw_records_changed_at", table_name="raw_records")


def downgrade() -> None:
    op.create_index("ix_raw_records_changed_at", "raw_records", ["changed_at"])
