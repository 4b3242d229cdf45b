"""The newest golden contacts read through an index in their sample's order: (updated_at, contact_id)
replaces the index on updated_at alone, under which the contacts sharing the newest time (every one,
after a full rebuild) were all read and sorted to show ten. And contact_merges.run_id indexed: the
scoped cycle check reads one run's merges, not the whole history.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 23:05:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_contacts_updated_at_contact_id", "contacts", ["updated_at", "contact_id"])
    op.drop_index(op.f("ix_contacts_updated_at"), table_name="contacts")
    op.create_index(op.f("ix_contact_merges_run_id"), "contact_merges", ["run_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_contact_merges_run_id"), table_name="contact_merges")
    op.create_index(op.f("ix_contacts_updated_at"), "contacts", ["updated_at"])
    op.drop_index("ix_contacts_updated_at_contact_id", table_name="contacts")
