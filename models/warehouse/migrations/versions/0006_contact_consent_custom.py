"""Consent and custom fields on golden contacts: per channel whether, when and where the person opted
out, and the mappings file's golden fields as one JSON object; plus an index on contacts.updated_at so
watermarks read from it stop scanning the table.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 20:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("email_opt_out", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("email_opt_out_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("email_opt_out_source", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("sms_opt_out", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("sms_opt_out_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("sms_opt_out_source", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("custom", JSON_TYPE, nullable=True))
    op.create_index(op.f("ix_contacts_updated_at"), "contacts", ["updated_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_contacts_updated_at"), table_name="contacts")
    with op.batch_alter_table("contacts") as batch:
        for column in (
            "custom",
            "sms_opt_out_source",
            "sms_opt_out_at",
            "sms_opt_out",
            "email_opt_out_source",
            "email_opt_out_at",
            "email_opt_out",
        ):
            batch.drop_column(column)
