"""Initial warehouse schema: raw records, stream state, golden contacts, activity, quarantine, ledger.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-24 18:41:10.852790
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Frozen copies of the model's column types, so this migration never changes when models/warehouse/tables.py
# does.
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contact_merges",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("old_contact_id", sa.String(length=40), nullable=False),
        sa.Column("new_contact_id", sa.String(length=40), nullable=False),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_merges")),
    )
    with op.batch_alter_table("contact_merges", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contact_merges_new_contact_id"), ["new_contact_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_contact_merges_old_contact_id"), ["old_contact_id"], unique=False
        )

    op.create_table(
        "contacts",
        sa.Column("contact_id", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("last_name", sa.Text(), nullable=True),
        sa.Column("company", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("city", sa.Text(), nullable=True),
        sa.Column("country", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("contact_id", name=op.f("pk_contacts")),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contacts_email"), ["email"], unique=False)
        batch_op.create_index(batch_op.f("ix_contacts_phone"), ["phone"], unique=False)

    op.create_table(
        "push_ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("destination", sa.String(length=32), nullable=False),
        sa.Column("object", sa.String(length=32), nullable=False),
        sa.Column("record_id", sa.String(length=128), nullable=False),
        sa.Column("contact_id", sa.String(length=40), nullable=True),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("before_value", sa.Text(), nullable=True),
        sa.Column("after_value", sa.Text(), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_ledger")),
    )
    with op.batch_alter_table("push_ledger", schema=None) as batch_op:
        batch_op.create_index(
            "ix_push_ledger_destination_record", ["destination", "object", "record_id"], unique=False
        )
        batch_op.create_index("ix_push_ledger_run_id", ["run_id"], unique=False)

    op.create_table(
        "quarantine",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("object", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=True),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", JSON_TYPE, nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
    )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.create_index("ix_quarantine_source_object", ["source", "object"], unique=False)

    op.create_table(
        "raw_records",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("object", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("payload", JSON_TYPE, nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("source_modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_raw_records")),
        sa.UniqueConstraint(
            "source", "object", "source_id", name=op.f("uq_raw_records_source_object_source_id")
        ),
    )
    with op.batch_alter_table("raw_records", schema=None) as batch_op:
        batch_op.create_index("ix_raw_records_changed_at", ["changed_at"], unique=False)

    op.create_table(
        "source_accounts",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("country", sa.String(length=8), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_source_accounts")),
    )
    op.create_table(
        "stream_state",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("object", sa.String(length=32), nullable=False),
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("cursor", JSON_TYPE, nullable=True),
        sa.Column("cursor_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_id", sa.String(length=64), nullable=True),
        sa.Column("last_run_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.String(length=16), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_counts", JSON_TYPE, nullable=True),
        sa.PrimaryKeyConstraint("source", "object", "stream", name=op.f("pk_stream_state")),
    )
    op.create_table(
        "suppressed_identifiers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.Column("record_ids", JSON_TYPE, nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressed_identifiers")),
        sa.UniqueConstraint("kind", "value", name=op.f("uq_suppressed_identifiers_kind_value")),
    )
    op.create_table(
        "contact_activity",
        sa.Column("activity_id", sa.String(length=200), nullable=False),
        sa.Column("contact_id", sa.String(length=40), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("details", JSON_TYPE, nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.contact_id"],
            name=op.f("fk_contact_activity_contact_id_contacts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("activity_id", name=op.f("pk_contact_activity")),
    )
    with op.batch_alter_table("contact_activity", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contact_activity_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index("ix_contact_activity_occurred_at", ["occurred_at"], unique=False)

    op.create_table(
        "contact_field_lineage",
        sa.Column("contact_id", sa.String(length=40), nullable=False),
        sa.Column("field", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("object", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.contact_id"],
            name=op.f("fk_contact_field_lineage_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("contact_id", "field", name=op.f("pk_contact_field_lineage")),
    )
    op.create_table(
        "contact_identifiers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("raw_record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("raw_value", sa.Text(), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["raw_record_id"],
            ["raw_records.id"],
            name=op.f("fk_contact_identifiers_raw_record_id_raw_records"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_identifiers")),
    )
    with op.batch_alter_table("contact_identifiers", schema=None) as batch_op:
        batch_op.create_index("ix_contact_identifiers_kind_value", ["kind", "value"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_contact_identifiers_raw_record_id"), ["raw_record_id"], unique=False
        )

    op.create_table(
        "contact_sources",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("raw_record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("contact_id", sa.String(length=40), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("object", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.contact_id"],
            name=op.f("fk_contact_sources_contact_id_contacts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["raw_record_id"],
            ["raw_records.id"],
            name=op.f("fk_contact_sources_raw_record_id_raw_records"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_sources")),
        sa.UniqueConstraint("raw_record_id", name=op.f("uq_contact_sources_raw_record_id")),
        sa.UniqueConstraint(
            "source", "object", "source_id", name=op.f("uq_contact_sources_source_object_source_id")
        ),
    )
    with op.batch_alter_table("contact_sources", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contact_sources_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_contact_sources_email"), ["email"], unique=False)
        batch_op.create_index(batch_op.f("ix_contact_sources_phone"), ["phone"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("contact_sources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_sources_phone"))
        batch_op.drop_index(batch_op.f("ix_contact_sources_email"))
        batch_op.drop_index(batch_op.f("ix_contact_sources_contact_id"))

    op.drop_table("contact_sources")
    with op.batch_alter_table("contact_identifiers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_identifiers_raw_record_id"))
        batch_op.drop_index("ix_contact_identifiers_kind_value")

    op.drop_table("contact_identifiers")
    op.drop_table("contact_field_lineage")
    with op.batch_alter_table("contact_activity", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_activity_occurred_at")
        batch_op.drop_index(batch_op.f("ix_contact_activity_contact_id"))

    op.drop_table("contact_activity")
    op.drop_table("suppressed_identifiers")
    op.drop_table("stream_state")
    op.drop_table("source_accounts")
    with op.batch_alter_table("raw_records", schema=None) as batch_op:
        batch_op.drop_index("ix_raw_records_changed_at")

    op.drop_table("raw_records")
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index("ix_quarantine_source_object")

    op.drop_table("quarantine")
    with op.batch_alter_table("push_ledger", schema=None) as batch_op:
        batch_op.drop_index("ix_push_ledger_run_id")
        batch_op.drop_index("ix_push_ledger_destination_record")

    op.drop_table("push_ledger")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contacts_phone"))
        batch_op.drop_index(batch_op.f("ix_contacts_email"))

    op.drop_table("contacts")
    with op.batch_alter_table("contact_merges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_merges_old_contact_id"))
        batch_op.drop_index(batch_op.f("ix_contact_merges_new_contact_id"))

    op.drop_table("contact_merges")
