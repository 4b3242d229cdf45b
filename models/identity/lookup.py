"""Reading golden contacts back: one person's whole story, and the figures the UI plots.

``find_contacts`` turns what a person types (an email, a phone, a contact id) into the golden contacts
it leads to, normalising emails and phones exactly as resolution does, so `` Ada@Example.COM`` and
``(415) 555-0100`` find what ``ada@example.com`` and ``+14155550100`` were stored as; a merged-away id
leads to its survivor through ``contact_merges``. ``contact_story`` gathers everything the warehouse
holds on one contact: its source records, where each field came from and by which rule, the merges
and splits in its history, its latest activity and the reverse-sync writes planned for it.
``golden_sample`` and ``records_per_source`` feed the ``canonical/contacts`` materialization.

Every query here is a lookup on an indexed column or a grouped count: ``show`` answers at once on a
warehouse of millions of records.
"""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from models.identity.contact_ids import ContactIdFactory
from models.normalise.identifiers import normalise_email, normalise_phone
from models.warehouse.tables import (
    Contact,
    ContactActivity,
    ContactFieldLineage,
    ContactIdentifier,
    ContactMerge,
    ContactSource,
    PushLedger,
    RawRecord,
)

CONTACT_ID = re.compile(rf"{ContactIdFactory.PREFIX}\d+")
"""What a typed contact id looks like; anything else with an ``@`` is an email, the rest a phone."""

GOLDEN_COLUMNS = (
    "contact_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "company",
    "title",
    "city",
    "country",
)
"""The columns of ``contacts`` a person reads to recognise someone (the UI's sample shows these)."""


@dataclass(frozen=True)
class IdChange:
    """One row of ``contact_merges``: ``merge`` (old id gone, its records now under new) or ``split``
    (old id lives on; some of its records left it for new)."""

    kind: str
    old_contact_id: str
    new_contact_id: str
    at: datetime
    run_id: str | None


@dataclass(frozen=True)
class Lookup:
    """What a query leads to.

    ``kind`` is how the query was read; ``value`` the normal form looked up (None when the query
    has none, ``reason`` then says why, in the words of ``contact_identifiers.reason``).
    ``contact_ids`` are the live golden contacts found, sorted; more than one only for an identifier
    that is not used to link (shared by too many records, or on the blocklist). ``merged`` is the
    chain from a merged-away id to its survivor, oldest first.
    """

    kind: Literal["contact_id", "email", "phone"]
    value: str | None
    reason: str | None
    contact_ids: tuple[str, ...]
    merged: tuple[IdChange, ...] = ()


@dataclass(frozen=True)
class SourceRecord:
    """One source record of a contact: where it lives, when it last changed there, what links it."""

    source: str
    object: str
    source_id: str
    updated_at: datetime | None
    email: str | None
    phone: str | None
    deleted_at: datetime | None


@dataclass(frozen=True)
class FieldOrigin:
    """The record a golden field's value came from, the rule that chose it (``most_recent`` or
    ``source_priority``) and that record's modification time, which is what ``most_recent`` compared."""

    field: str
    value: str | None
    source: str
    object: str
    source_id: str
    rule: str
    record_updated_at: datetime | None


@dataclass(frozen=True)
class ActivityItem:
    """One event or message on the contact."""

    activity_id: str
    source: str
    kind: str
    occurred_at: datetime | None
    summary: str | None


@dataclass(frozen=True)
class PushItem:
    """One reverse-sync write planned for the contact, with where it stands."""

    destination: str
    object: str
    record_id: str
    field: str
    before: str | None
    after: str | None
    reason: str | None
    status: str
    dry_run: bool
    error: str | None
    run_id: str
    updated_at: datetime


@dataclass(frozen=True)
class ContactStory:
    """Everything the warehouse holds on one golden contact.

    ``former_ids`` are the ids merged into this one (directly or along a chain); their pushes and
    history are this contact's too. ``activity`` and ``pushes`` are the latest few; the totals say
    how many there are in all.
    """

    contact: dict[str, Any]
    former_ids: tuple[str, ...]
    records: tuple[SourceRecord, ...]
    fields: tuple[FieldOrigin, ...]
    history: tuple[IdChange, ...]
    activity: tuple[ActivityItem, ...]
    activity_total: int
    pushes: tuple[PushItem, ...]
    pushes_total: int


def find_contacts(engine: Engine, query: str, regions: Sequence[str]) -> Lookup:
    """The golden contacts ``query`` leads to.

    A phone written without a country code is read with each of ``regions`` in turn (the default
    region first, then the sources' own), as resolution read it with its record's source's region;
    every reading that names a stored number counts.
    """
    text = query.strip()
    with engine.connect() as connection:
        if CONTACT_ID.fullmatch(text):
            live, chain = survivor(connection, text)
            return Lookup("contact_id", text, None, (live,) if live else (), tuple(chain))
        if "@" in text:
            email = normalise_email(text)
            if email.value is None:
                return Lookup("email", None, email.reason, ())
            return Lookup("email", email.value, None, _holders(connection, "email", [email.value]))
        tried: list[str | None] = [*dict.fromkeys(regions)] or [None]
        readings = [normalise_phone(text, region) for region in tried]
        phones = list(dict.fromkeys(r.value for r in readings if r.value is not None))
        if not phones:
            return Lookup("phone", None, readings[0].reason, ())
        held = {phone: _holders(connection, "phone", [phone]) for phone in phones}
        holders = tuple(sorted({contact for found in held.values() for contact in found}))
        return Lookup("phone", next((p for p, found in held.items() if found), phones[0]), None, holders)


def survivor(connection: Connection, contact_id: str) -> tuple[str | None, list[IdChange]]:
    """The live id ``contact_id`` leads to along ``contact_merges`` (None when it leads nowhere)."""
    chain: list[IdChange] = []
    current = contact_id
    seen = {current}
    while True:
        live = connection.execute(
            sa.select(Contact.contact_id).where(Contact.contact_id == current)
        ).scalar_one_or_none()
        if live is not None:
            return live, chain
        row = connection.execute(
            _changes()
            .where(ContactMerge.old_contact_id == current, ContactMerge.kind == "merge")
            .order_by(ContactMerge.merged_at.desc(), ContactMerge.id.desc())
            .limit(1)
        ).one_or_none()
        if row is None or row.new_contact_id in seen:
            return None, chain
        chain.append(_change(row))
        current = row.new_contact_id
        seen.add(current)


def _holders(connection: Connection, kind: str, values: Sequence[str]) -> tuple[str, ...]:
    """Live contacts holding ``values`` as their chosen email/phone, on a linked record, or among any
    record's identifiers (a secondary email, a second phone)."""
    column = Contact.email if kind == "email" else Contact.phone
    source_column = ContactSource.email if kind == "email" else ContactSource.phone
    candidates = sa.union(
        sa.select(Contact.contact_id.label("contact_id")).where(column.in_(values)),
        sa.select(ContactSource.contact_id).where(source_column.in_(values)),
        sa.select(ContactSource.contact_id)
        .join(ContactIdentifier, ContactIdentifier.raw_record_id == ContactSource.raw_record_id)
        .where(ContactIdentifier.kind == kind, ContactIdentifier.value.in_(values)),
    ).subquery()
    found = connection.execute(
        sa.select(Contact.contact_id)
        .where(Contact.contact_id.in_(sa.select(candidates.c.contact_id)))
        .order_by(Contact.contact_id)
    ).scalars()
    return tuple(found)


def _changes() -> sa.Select[str, str, str, datetime, str | None]:
    return sa.select(
        ContactMerge.kind,
        ContactMerge.old_contact_id,
        ContactMerge.new_contact_id,
        ContactMerge.merged_at,
        ContactMerge.run_id,
    )


def _change(row: sa.Row[str, str, str, datetime, str | None]) -> IdChange:
    return IdChange(row.kind, row.old_contact_id, row.new_contact_id, row.merged_at, row.run_id)


def _former_ids(connection: Connection, contact_id: str) -> list[str]:
    """Every id merged into ``contact_id``, directly or through ids merged into those."""
    found: list[str] = []
    frontier = [contact_id]
    seen = {contact_id}
    while frontier:
        rows = connection.execute(
            sa.select(ContactMerge.old_contact_id).where(
                ContactMerge.new_contact_id.in_(frontier), ContactMerge.kind == "merge"
            )
        ).scalars()
        frontier = [old for old in dict.fromkeys(rows) if old not in seen]
        seen.update(frontier)
        found.extend(frontier)
    return sorted(found)


def contact_story(
    engine: Engine, contact_id: str, *, activity_limit: int = 5, push_limit: int = 10
) -> ContactStory | None:
    """What the warehouse holds on the live contact ``contact_id`` (None when there is no such contact)."""
    with engine.connect() as connection:
        contact = (
            connection.execute(sa.select(Contact.__table__).where(Contact.contact_id == contact_id))
            .mappings()
            .one_or_none()
        )
        if contact is None:
            return None
        former = _former_ids(connection, contact_id)
        family = [contact_id, *former]
        records = connection.execute(
            sa.select(
                ContactSource.source,
                ContactSource.object,
                ContactSource.source_id,
                ContactSource.updated_at,
                ContactSource.email,
                ContactSource.phone,
                RawRecord.deleted_at,
            )
            .join(RawRecord, RawRecord.id == ContactSource.raw_record_id)
            .where(ContactSource.contact_id == contact_id)
            .order_by(ContactSource.source, ContactSource.object, ContactSource.source_id)
        ).all()
        fields = connection.execute(
            sa.select(
                ContactFieldLineage.field,
                ContactFieldLineage.value,
                ContactFieldLineage.source,
                ContactFieldLineage.object,
                ContactFieldLineage.source_id,
                ContactFieldLineage.rule,
                ContactSource.updated_at,
            )
            .outerjoin(
                ContactSource,
                sa.and_(
                    ContactSource.source == ContactFieldLineage.source,
                    ContactSource.object == ContactFieldLineage.object,
                    ContactSource.source_id == ContactFieldLineage.source_id,
                ),
            )
            .where(ContactFieldLineage.contact_id == contact_id)
        ).all()
        history = connection.execute(
            _changes()
            .where(sa.or_(ContactMerge.old_contact_id.in_(family), ContactMerge.new_contact_id.in_(family)))
            .order_by(ContactMerge.merged_at, ContactMerge.id)
        ).all()
        activity_where = ContactActivity.contact_id == contact_id
        activity = connection.execute(
            sa.select(
                ContactActivity.activity_id,
                ContactActivity.source,
                ContactActivity.kind,
                ContactActivity.occurred_at,
                ContactActivity.summary,
            )
            .where(activity_where)
            .order_by(ContactActivity.occurred_at.desc().nulls_last(), ContactActivity.activity_id)
            .limit(activity_limit)
        ).all()
        push_where = PushLedger.contact_id.in_(family)
        pushes = connection.execute(
            sa.select(
                PushLedger.destination,
                PushLedger.object,
                PushLedger.record_id,
                PushLedger.field,
                PushLedger.before_value.label("before"),
                PushLedger.after_value.label("after"),
                PushLedger.reason,
                PushLedger.status,
                PushLedger.dry_run,
                PushLedger.error,
                PushLedger.run_id,
                PushLedger.updated_at,
            )
            .where(push_where)
            .order_by(PushLedger.updated_at.desc(), PushLedger.id.desc())
            .limit(push_limit)
        ).all()
        activity_total = _count(connection, ContactActivity, activity_where)
        pushes_total = _count(connection, PushLedger, push_where)
    order = {name: index for index, name in enumerate(GOLDEN_COLUMNS)}
    return ContactStory(
        contact=dict(contact),
        former_ids=tuple(former),
        records=tuple(SourceRecord(*row) for row in records),
        fields=tuple(sorted((FieldOrigin(*row) for row in fields), key=lambda f: order.get(f.field, 99))),
        history=tuple(_change(row) for row in history),
        activity=tuple(ActivityItem(*row) for row in activity),
        activity_total=activity_total,
        pushes=tuple(PushItem(**row._asdict()) for row in pushes),
        pushes_total=pushes_total,
    )


def _count(connection: Connection, table: Any, where: sa.ColumnElement[bool]) -> int:
    return int(connection.execute(sa.select(sa.func.count()).select_from(table).where(where)).scalar_one())


def golden_sample(engine: Engine, limit: int = 10) -> list[dict[str, Any]]:
    """The ``limit`` most recently updated golden contacts, their recognisable columns and record count."""
    columns = [getattr(Contact, name) for name in GOLDEN_COLUMNS]
    query = sa.select(*columns, Contact.source_count, Contact.updated_at).order_by(Contact.contact_id)
    found: list[dict[str, Any]] = []
    with engine.connect() as connection:
        # One time at a time, newest first, each read in id order through the (updated_at, contact_id)
        # index: asked in one query, the database sorts every contact of the newest time (after a full
        # rebuild, every contact) to keep ten.
        at = connection.execute(sa.select(sa.func.max(Contact.updated_at))).scalar_one_or_none()
        while at is not None and len(found) < limit:
            rows = connection.execute(query.where(Contact.updated_at == at).limit(limit - len(found)))
            found.extend(dict(row) for row in rows.mappings())
            at = connection.execute(
                sa.select(sa.func.max(Contact.updated_at)).where(Contact.updated_at < at)
            ).scalar_one_or_none()
    return found


def records_per_source(engine: Engine, sources: Iterable[str] = ()) -> dict[str, int]:
    """Live source records linked to a golden contact, per source (every name in ``sources`` present,
    zero when it holds none, so a source that drops to nothing still plots)."""
    with engine.connect() as connection:
        counted = connection.execute(
            sa.select(ContactSource.source, sa.func.count())
            .join(RawRecord, RawRecord.id == ContactSource.raw_record_id)
            .where(ContactSource.contact_id.is_not(None), RawRecord.deleted_at.is_(None))
            .group_by(ContactSource.source)
        ).all()
    counts = dict.fromkeys(sources, 0)
    counts.update({source: int(n) for source, n in counted})
    return dict(sorted(counts.items()))
