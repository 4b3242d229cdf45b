"""Household splitting: each record's first name on contact_sources, and contact_link_decisions for the
links it refused.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Integer on SQLite so the key is its rowid, as in 0001.
_ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("contact_sources") as batch:
        batch.add_column(sa.Column("first_name", sa.String(length=255), nullable=True))
    op.create_table(
        "contact_link_decisions",
        sa.Column("id", _ID_TYPE, nullable=False),
        sa.Column("raw_record_id_a", _ID_TYPE, nullable=False),
        sa.Column("raw_record_id_b", _ID_TYPE, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("first_name_a", sa.String(length=255), nullable=True),
        sa.Column("first_name_b", sa.String(length=255), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["raw_record_id_a"],
            ["raw_records.id"],
            name=op.f("fk_contact_link_decisions_raw_record_id_a_raw_records"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["raw_record_id_b"],
            ["raw_records.id"],
            name=op.f("fk_contact_link_decisions_raw_record_id_b_raw_records"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_link_decisions")),
    )
    op.create_index(
        op.f("ix_contact_link_decisions_raw_record_id_a"), "contact_link_decisions", ["raw_record_id_a"]
    )
    op.create_index(
        op.f("ix_contact_link_decisions_raw_record_id_b"), "contact_link_decisions", ["raw_record_id_b"]
    )


def downgrade() -> None:
    op.drop_table("contact_link_decisions")
    with op.batch_alter_table("contact_sources") as batch:
        batch.drop_column("first_name")
