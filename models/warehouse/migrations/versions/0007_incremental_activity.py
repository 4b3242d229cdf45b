"""Incremental activity and scoped checks: each activity row keeps what its contact follows, and
canonical_changes says what each canonical run re-resolved. Plus indexes so reverse-sync planning
reads its watermark and its in-flight and settled ledger rows without scanning whole tables.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Integer on SQLite so the key is its rowid, as in 0001.
_ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("contact_activity") as batch:
        batch.add_column(sa.Column("link_key", sa.String(length=340), nullable=True))
        batch.add_column(sa.Column("message_key", sa.String(length=128), nullable=True))
    op.create_index(op.f("ix_contact_activity_link_key"), "contact_activity", ["link_key"])
    op.create_index(op.f("ix_contact_activity_message_key"), "contact_activity", ["message_key"])
    op.create_table(
        "canonical_changes",
        sa.Column("id", _ID_TYPE, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("raw_record_id", _ID_TYPE, nullable=True),
        sa.Column("value", sa.String(length=320), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canonical_changes")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_canonical_changes_run_id"), "canonical_changes", ["run_id"])
    op.create_index("ix_raw_records_source_changed_at", "raw_records", ["source", "changed_at"])
    op.create_index(op.f("ix_contact_merges_merged_at"), "contact_merges", ["merged_at"])
    op.create_index(
        "ix_push_ledger_destination_object_status_updated_at",
        "push_ledger",
        ["destination", "object", "status", "updated_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_push_ledger_destination_object_status_updated_at", table_name="push_ledger")
    op.drop_index(op.f("ix_contact_merges_merged_at"), table_name="contact_merges")
    op.drop_index("ix_raw_records_source_changed_at", table_name="raw_records")
    op.drop_table("canonical_changes")
    op.drop_index(op.f("ix_contact_activity_message_key"), table_name="contact_activity")
    op.drop_index(op.f("ix_contact_activity_link_key"), table_name="contact_activity")
    with op.batch_alter_table("contact_activity") as batch:
        batch.drop_column("message_key")
        batch.drop_column("link_key")
