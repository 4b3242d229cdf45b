"""The warehouse schema: raw source records, stream cursors, golden contacts and the reverse-sync ledger.

Every table the pipeline writes is declared here once; the Alembic migrations in
``models/warehouse/migrations`` must produce exactly this schema (a test compares them). Table and column
names of ``contacts``, ``contact_sources``, ``contact_merges`` and ``contact_activity`` are part of the
public contract: BI tools read them, so they change only when an issue asks for it.
"""

from datetime import UTC, datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite has no timezone-aware type and would hand back naive values; normalising at the column
    keeps every comparison between source times (Zoho offsets, Linkflow Shanghai time) honest.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: JSON on every dialect, stored as JSONB on PostgreSQL so payloads can be queried and indexed there.
JsonType = sa.JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    """The current time in UTC, aware; one place so tests and code agree on the clock's type."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so constraint names match between migration and model."""

    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JsonType}


class RawRecord(Base):
    """A source record exactly as its API sent it, upserted on (source, object, source_id).

    ``content_hash`` lets a re-read of an unchanged record skip the write; ``changed_at`` moves only
    when the content changed, which is what the canonical step reads incrementally. Deleted records
    are marked, never dropped, so their history stays. On PostgreSQL its pages keep 15% free (migration
    0011), so a re-read's ``last_seen_at`` stamp stays on the row's page with no new index entries.
    """

    __tablename__ = "raw_records"
    __table_args__ = (
        sa.UniqueConstraint("source", "object", "source_id"),
        # What moved after a watermark, source by source (canonical, activity, reverse sync's plan
        # watermark). One index over changed_at only: each one costs a changed record a random page.
        sa.Index("ix_raw_records_source_changed_at", "source", "changed_at"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(32))
    object: Mapped[str] = mapped_column(sa.String(32))
    source_id: Mapped[str] = mapped_column(sa.String(128))
    payload: Mapped[dict[str, Any]]
    content_hash: Mapped[str] = mapped_column(sa.String(64))
    source_modified_at: Mapped[datetime | None]
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    changed_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class StreamState(Base):
    """The cursor of one stream, written in the same transaction as the rows it covers.

    Dagster metadata only echoes these values; this table is the source of truth, so a crash between
    a page's rows and its cursor cannot happen.
    """

    __tablename__ = "stream_state"

    source: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    object: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    stream: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    cursor: Mapped[dict[str, Any] | None]
    cursor_updated_at: Mapped[datetime | None]
    last_run_id: Mapped[str | None] = mapped_column(sa.String(64))
    last_run_started_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_status: Mapped[str | None] = mapped_column(sa.String(16))
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    last_counts: Mapped[dict[str, Any] | None]


class Contact(Base):
    """A golden contact: one person, with fields chosen by the survivorship rules."""

    __tablename__ = "contacts"
    # The newest contacts in their sample's order (newest first, then by id) without a sort of all
    # those sharing one time (`models.identity.lookup.golden_sample`).
    __table_args__ = (sa.Index("ix_contacts_updated_at_contact_id", "updated_at", "contact_id"),)

    contact_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    email: Mapped[str | None] = mapped_column(sa.String(320), index=True)
    phone: Mapped[str | None] = mapped_column(sa.String(32), index=True)
    first_name: Mapped[str | None] = mapped_column(sa.Text)
    last_name: Mapped[str | None] = mapped_column(sa.Text)
    company: Mapped[str | None] = mapped_column(sa.Text)
    title: Mapped[str | None] = mapped_column(sa.Text)
    city: Mapped[str | None] = mapped_column(sa.Text)
    country: Mapped[str | None] = mapped_column(sa.Text)
    # Consent per channel: null when no source says; the time and source of the deciding statement.
    email_opt_out: Mapped[bool | None] = mapped_column(sa.Boolean)
    email_opt_out_at: Mapped[datetime | None]
    email_opt_out_source: Mapped[str | None] = mapped_column(sa.String(64))
    sms_opt_out: Mapped[bool | None] = mapped_column(sa.Boolean)
    sms_opt_out_at: Mapped[datetime | None]
    sms_opt_out_source: Mapped[str | None] = mapped_column(sa.String(64))
    #: The mappings file's golden fields, keyed by golden name; SQL NULL (not JSON null) without any.
    custom: Mapped[dict[str, Any] | None] = mapped_column(
        sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
    )
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    source_count: Mapped[int] = mapped_column(sa.Integer)


class ContactSource(Base):
    """The link from one source record to its golden contact (null only while quarantined)."""

    __tablename__ = "contact_sources"
    __table_args__ = (sa.UniqueConstraint("source", "object", "source_id"),)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)
    raw_record_id: Mapped[int] = mapped_column(
        sa.ForeignKey("raw_records.id", ondelete="CASCADE"), unique=True
    )
    contact_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("contacts.contact_id", ondelete="SET NULL"), index=True
    )
    source: Mapped[str] = mapped_column(sa.String(32))
    object: Mapped[str] = mapped_column(sa.String(32))
    source_id: Mapped[str] = mapped_column(sa.String(128))
    email: Mapped[str | None] = mapped_column(sa.String(320), index=True)
    phone: Mapped[str | None] = mapped_column(sa.String(32), index=True)
    updated_at: Mapped[datetime | None]
    # The record's own first name as read, so a later run can judge household links without its payload.
    first_name: Mapped[str | None] = mapped_column(sa.String(255))


class ContactLinkDecision(Base):
    """A link refused by household splitting: two records sharing an identifier kept in different contacts,
    with the rule and the first names compared (`models.identity.households`)."""

    __tablename__ = "contact_link_decisions"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)
    raw_record_id_a: Mapped[int] = mapped_column(
        sa.ForeignKey("raw_records.id", ondelete="CASCADE"), index=True
    )
    raw_record_id_b: Mapped[int] = mapped_column(
        sa.ForeignKey("raw_records.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(sa.String(8))
    value: Mapped[str] = mapped_column(sa.String(320))
    rule: Mapped[str] = mapped_column(sa.String(32))
    first_name_a: Mapped[str | None] = mapped_column(sa.String(255))
    first_name_b: Mapped[str | None] = mapped_column(sa.String(255))
    decided_at: Mapped[datetime]


class ContactMerge(Base):
    """History of ids: a merged-away id maps to its survivor, so old ids stay resolvable."""

    __tablename__ = "contact_merges"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)
    old_contact_id: Mapped[str] = mapped_column(sa.String(40), index=True)
    new_contact_id: Mapped[str] = mapped_column(sa.String(40), index=True)
    merged_at: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(sa.String(16), default="merge")
    # The merges of one run (the scoped cycle check starts there) without reading the whole history.
    run_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)


class ContactIdentifier(Base):
    """Every email and phone a source record carries: the raw value, its normal form or why it has none."""

    __tablename__ = "contact_identifiers"
    # Holders and counts of an identifier read from the index alone (migration 0010).
    __table_args__ = (sa.Index("ix_contact_identifiers_kind_value_record", "kind", "value", "raw_record_id"),)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)
    raw_record_id: Mapped[int] = mapped_column(
        sa.ForeignKey("raw_records.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(sa.String(8))
    field: Mapped[str] = mapped_column(sa.String(64))
    raw_value: Mapped[str] = mapped_column(sa.Text)
    value: Mapped[str | None] = mapped_column(sa.String(320))
    reason: Mapped[str | None] = mapped_column(sa.String(32))


class SuppressedIdentifier(Base):
    """An identifier not used for linking (junk or shared by too many records), with the rule that said so."""

    __tablename__ = "suppressed_identifiers"
    __table_args__ = (sa.UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(8))
    value: Mapped[str] = mapped_column(sa.String(320))
    rule: Mapped[str] = mapped_column(sa.String(32))
    record_count: Mapped[int] = mapped_column(sa.Integer)
    record_ids: Mapped[dict[str, Any]]
    detected_at: Mapped[datetime]


class ContactFieldLineage(Base):
    """Which source record each golden field came from, and which rule chose it."""

    __tablename__ = "contact_field_lineage"

    contact_id: Mapped[str] = mapped_column(
        sa.ForeignKey("contacts.contact_id", ondelete="CASCADE"), primary_key=True
    )
    field: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    value: Mapped[str | None] = mapped_column(sa.Text)
    source: Mapped[str] = mapped_column(sa.String(32))
    object: Mapped[str] = mapped_column(sa.String(32))
    source_id: Mapped[str] = mapped_column(sa.String(128))
    rule: Mapped[str] = mapped_column(sa.String(32))


class ContactActivity(Base):
    """One Linkflow event or ClickSend message, linked to a golden contact when one matches."""

    __tablename__ = "contact_activity"
    __table_args__ = (sa.Index("ix_contact_activity_occurred_at", "occurred_at"),)

    activity_id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    contact_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("contacts.contact_id", ondelete="SET NULL"), index=True
    )
    source: Mapped[str] = mapped_column(sa.String(32))
    kind: Mapped[str] = mapped_column(sa.String(8))
    occurred_at: Mapped[datetime | None]
    summary: Mapped[str | None] = mapped_column(sa.Text)
    details: Mapped[dict[str, Any] | None]
    # What the row's contact follows, so a change of contacts re-points only the rows it can move:
    # ``linkflow:<contact id>`` (events), ``phone:<E.164>`` (messages), ``message:<id>`` (receipts).
    link_key: Mapped[str | None] = mapped_column(sa.String(340), index=True)
    # A message's ClickSend message_id, so its delivery receipts find the contact it matched.
    message_key: Mapped[str | None] = mapped_column(sa.String(128), index=True)


class CanonicalChange(Base):
    """What each canonical run changed, for the steps after it: activity re-links only the contacts the
    run touched, and the blocking checks look only at them.

    ``kind`` is ``run`` (one row per run, ``value`` ``full`` or ``incremental``), ``record`` (a record the
    run re-resolved: its link, identifiers or contact may have moved) or ``email`` / ``phone`` (an
    identifier a changed or deleted record held before the run, which no record may hold any more).
    The activity step deletes the rows it has consumed.
    """

    __tablename__ = "canonical_changes"
    # Ids only grow, on SQLite too (which would reuse the largest id once deleted): the activity step
    # remembers how far it applied them.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)
    run_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    kind: Mapped[str] = mapped_column(sa.String(8))
    raw_record_id: Mapped[int | None] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"))
    value: Mapped[str | None] = mapped_column(sa.String(320))
    changed_at: Mapped[datetime]


class Quarantine(Base):
    """A record or response the pipeline could not use, kept with the reason so nothing is lost silently."""

    __tablename__ = "quarantine"
    __table_args__ = (sa.Index("ix_quarantine_source_object", "source", "object"),)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(32))
    object: Mapped[str] = mapped_column(sa.String(32))
    source_id: Mapped[str | None] = mapped_column(sa.String(128))
    stage: Mapped[str] = mapped_column(sa.String(16))
    reason: Mapped[str] = mapped_column(sa.Text)
    payload: Mapped[dict[str, Any] | None]
    run_id: Mapped[str | None] = mapped_column(sa.String(64))
    detected_at: Mapped[datetime]


IN_FLIGHT = ("sending", "sent", "unconfirmed")
"""Ledger statuses of a write that went out or may have: not planned again until read back."""
UNDO_REASONS = ("undo", "undo_create")
"""Ledger reasons of an undo's writes: they put a person's values back, so they are not our values."""


class PushLedger(Base):
    """One planned field write to a destination, from plan to its final state.

    The plan is recorded before any write, so a dry run and a real run plan the same rows, a killed
    push can resume without sending a field twice, and a run's writes can be undone from
    ``before_value``.
    """

    __tablename__ = "push_ledger"
    __table_args__ = (
        sa.Index("ix_push_ledger_destination_record", "destination", "object", "record_id"),
        sa.Index("ix_push_ledger_run_id", "run_id"),
        # Rows in flight or settled for one destination, recent ones first: planning reads only those.
        sa.Index(
            "ix_push_ledger_destination_object_status_updated_at",
            "destination",
            "object",
            "status",
            "updated_at",
        ),
        # One slice's or one change's rows (in flight, settled, rejected before), by their contacts.
        sa.Index("ix_push_ledger_destination_object_contact", "destination", "object", "contact_id"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)
    run_id: Mapped[str] = mapped_column(sa.String(64))
    destination: Mapped[str] = mapped_column(sa.String(32))
    object: Mapped[str] = mapped_column(sa.String(32))
    record_id: Mapped[str] = mapped_column(sa.String(128))
    contact_id: Mapped[str | None] = mapped_column(sa.String(40))
    field: Mapped[str] = mapped_column(sa.String(64))
    before_value: Mapped[str | None] = mapped_column(sa.Text)
    after_value: Mapped[str | None] = mapped_column(sa.Text)
    reason: Mapped[str | None] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(16))
    error: Mapped[str | None] = mapped_column(sa.Text)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    dry_run: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    parent_id: Mapped[str | None] = mapped_column(sa.String(128))
    """Where the write went when the API addresses records inside a container (ClickSend list,
    ClickFunnels workspace for creates, Linkflow channel for creates)."""
    record_modified_at: Mapped[datetime | None]
    """The record's own modification time when the write was planned (None for a create): a later
    modification up to our write is ours, which survivorship must not take for a person's edit."""
    result_modified_at: Mapped[datetime | None]
    """The record's modification time as the destination's answer to our write gave it (None: no
    answer, or one without it). The record still showing exactly this time was last modified by us."""
    result_version: Mapped[int | None] = mapped_column(sa.BigInteger)
    """Linkflow: the ``ver`` our write gave the record; a higher one means someone edited it since."""
    written_by: Mapped[str | None] = mapped_column(sa.String(64))
    """Zoho: the id of the user the connection acts as; a record whose ``Modified_By`` names anyone
    else was last modified by someone other than us."""


class SourceAccount(Base):
    """Facts about the account behind a source that its API tells (the country phones default to)."""

    __tablename__ = "source_accounts"

    source: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    country: Mapped[str | None] = mapped_column(sa.String(8))
    fetched_at: Mapped[datetime]


class SourceCheckResult(Base):
    """The last passing sync-start check of a source, so a sync asks the check's questions once a day.

    ``fingerprint`` is a one-way digest of the settings the result depends on (URL, credentials,
    connection id); when it differs the settings changed and the check runs again. A failing check is
    never kept: the next sync asks again.
    """

    __tablename__ = "source_checks"

    source: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    checked_at: Mapped[datetime]
    result: Mapped[dict[str, Any]]
