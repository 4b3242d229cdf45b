"""source_checks: the last passing sync-start check per source, so a sync repeats the check's requests
once a day rather than every run.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# A frozen copy of the model's column type, so this migration never changes when
# models/warehouse/tables.py does.
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "source_checks",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result", JSON_TYPE, nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_source_checks")),
    )


def downgrade() -> None:
    op.drop_table("source_checks")
