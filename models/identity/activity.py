"""Unified activity: Linkflow events and ClickSend messages, each linked to a golden contact if one matches.

Events carry the Linkflow contact id, so they follow that record's link. Messages carry only phone
numbers, so they are matched on the E.164 form of the other party's number, and only through a number
that identifies exactly one golden contact (a number shared by several, or suppressed as junk, links
nothing). Delivery receipts carry no number and inherit the match of the message they report on (when
several messages carry its id, only if they agree on one contact). Unmatched activity is kept with a
null ``contact_id``.

Each row keeps what its contact follows (``link_key``: the Linkflow contact id, the phone, or the
message id of a receipt), so a run costs what changed: new and changed events and messages (raw
records whose ``changed_at`` passed the watermark) are linked as they land, and the contacts a
canonical run touched (``models.identity.changes``) re-point only the rows whose keys their records
hold or held. A full rebuild happens with no watermark yet, when asked, after a full canonical rebuild,
and when the ClickSend phone region (which decides every message's key) changed.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import InstrumentedAttribute

from models.identity import changes
from models.identity.canonical import cyclic_gc_paused
from models.normalise.identifiers import normalise_phones
from models.normalise.raw_keys import parse_shanghai, parse_unix_ms, record_time
from models.warehouse.bulk import bulk_insert, bulk_update, rows_frame
from models.warehouse.db import by_key_only
from models.warehouse.key_lists import key_in
from models.warehouse.store import (
    StreamKey,
    by_source_ids,
    chunks,
    each_of,
    latest_change,
    read_cursor,
    records_changed_since,
    store_cursor,
)
from models.warehouse.tables import (
    ContactActivity,
    ContactIdentifier,
    ContactSource,
    RawRecord,
    SuppressedIdentifier,
    utcnow,
)
from models.warehouse.waits import writing

#: Where the watermark of the last activity run lives in stream_state.
WATERMARK = StreamKey("canonical", "activity", "link")

_SUMMARY_CHARS = 120
_LINKFLOW, _PHONE, _MESSAGE = "linkflow:", "phone:", "message:"
#: How the source ids of ClickSend delivery receipts begin (the part `_message_rows` reads).
_RECEIPT = "receipt:"
#: How the activity ids of ClickSend's history items and inbound messages begin.
_HISTORY_ID, _INBOUND_ID = "clicksend:sms:history:", "clicksend:sms:inbound:"
#: How the summary of a received message listed in history begins.
_RECEIVED_IN_HISTORY = "SMS received ("
#: Raw activity records a full rebuild reads, links and writes at once.
REBUILD_SLICE_RECORDS = 20_000
_ACTIVITY_OBJECTS = (("linkflow", "event"), ("clicksend", "sms"))


@dataclass
class ActivityReport:
    """What a run did, for the asset's metadata."""

    activity: int
    activity_linked: int
    activity_unmatched: int
    full_rebuild: bool
    rows_written: int
    rows_removed: int
    keys_relinked: int

    def as_metadata(self) -> dict[str, int | bool]:
        return dict(vars(self))


def _text(value: Any, limit: int = _SUMMARY_CHARS) -> str:
    text = "" if value is None else " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _event_row(source_id: str, event: dict[str, Any]) -> dict[str, Any]:
    contact = event.get("contactId")
    return {
        "activity_id": f"linkflow:event:{source_id}",
        "contact_id": None,
        "source": "linkflow",
        "kind": "event",
        "occurred_at": parse_unix_ms(event.get("eventDate")) or parse_shanghai(event.get("dateCreated")),
        "summary": _text(event.get("event")),
        "details": event,
        "link_key": None if contact is None else f"{_LINKFLOW}{contact}",
        "message_key": None,
    }


def _party(source_id: str, payload: dict[str, Any]) -> str:
    """The other party's number as written: whom a message went to, or whom it came from."""
    part = source_id.split(":", 1)[0]
    if part == "history":
        number = payload.get("to") if payload.get("direction", "out") == "out" else payload.get("from")
    elif part == "inbound":
        number = payload.get("from")
    else:
        number = None
    return "" if number is None else str(number)


def _message_rows(messages: list[tuple[str, dict[str, Any]]], region: str) -> list[dict[str, Any]]:
    if not messages:
        return []
    parties = [_party(source_id, payload) for source_id, payload in messages]
    phones = normalise_phones(pd.DataFrame({"raw": parties, "region": region}))["phone"].tolist()
    rows = []
    for (source_id, payload), phone in zip(messages, phones, strict=True):
        part = source_id.split(":", 1)[0]
        message_id = payload.get("message_id")
        link_key = f"{_PHONE}{phone}" if isinstance(phone, str) else None
        message_key = None if message_id is None else str(message_id)
        # The time each part's key spec reads: receipt and inbound ``timestamp`` (inbound items may
        # carry only ``timestamp_send``, as the v3 spec's example does), history ``date``.
        occurred = record_time("clicksend", "sms", part, payload)
        if part == "receipt":
            link_key = None if message_id is None else f"{_MESSAGE}{message_id}"
            message_key = None
            summary = f"delivery receipt: {_text(payload.get('status_text'))}"
        elif part == "inbound":
            summary = f"SMS received: {_text(payload.get('body'))}"
        else:
            direction = "received" if payload.get("direction") == "in" else "sent"
            summary = f"SMS {direction} ({payload.get('status')}): {_text(payload.get('body'))}"
            # (a received one starts with `_RECEIVED_IN_HISTORY`)
        rows.append(
            {
                "activity_id": f"clicksend:sms:{source_id}",
                "contact_id": None,
                "source": "clicksend",
                "kind": "sms",
                "occurred_at": occurred,
                "summary": summary,
                "details": payload,
                "link_key": link_key,
                "message_key": message_key,
            }
        )
    return rows


def _rows(records: Iterable[tuple[str, str, dict[str, Any]]], region: str) -> list[dict[str, Any]]:
    """Activity rows of (object, source_id, payload) raw records, contacts not yet linked."""
    events, messages = [], []
    for obj, source_id, payload in records:
        if obj == "event":
            events.append(_event_row(source_id, payload))
        else:
            messages.append((source_id, payload))
    return events + _message_rows(messages, region)


def _linkflow_owners(connection: Connection, ids: list[str]) -> dict[str, str]:
    """Linkflow contact id → its record's golden contact."""
    columns = (ContactSource.source_id, ContactSource.contact_id)
    found: dict[str, str] = {}
    for chunk in chunks(ids):
        query = by_source_ids(
            ContactSource,
            columns,
            "linkflow",
            "contact",
            chunk,
            connection.dialect.name,
            ContactSource.contact_id.is_not(None),
        )
        found.update((str(source_id), str(contact)) for source_id, contact in connection.execute(query))
    return found


def _phone_owners(connection: Connection, phones: list[str]) -> dict[str, str]:
    """E.164 number → the one golden contact it identifies (numbers of several contacts left out)."""
    suppressed = sa.select(SuppressedIdentifier.value).where(SuppressedIdentifier.kind == "phone")

    def owners(value: sa.ColumnElement[bool]) -> Any:
        # No "value IS NOT NULL" beside the list (no NULL is in it): with both, SQLite took the range
        # value > NULL on the (kind, value) index and walked every phone of the warehouse.
        return (
            sa.select(ContactIdentifier.value, ContactSource.contact_id)
            .join(ContactSource, ContactSource.raw_record_id == ContactIdentifier.raw_record_id)
            .where(
                ContactIdentifier.kind == "phone",
                value,
                ContactIdentifier.value.not_in(suppressed),
                ContactSource.contact_id.is_not(None),
            )
        )

    if not phones:
        return {}
    if connection.dialect.name == "postgresql":  # each number through the (kind, value) index
        pairs: list[Any] = []
        for chunk in chunks(phones):
            query = each_of(chunk, lambda wanted: owners(ContactIdentifier.value == wanted))
            pairs.extend(connection.execute(query).all())
        return _unique(pairs)
    return _unique(connection.execute(owners(key_in(connection, ContactIdentifier.value, phones))).all())


def _insert(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert activity rows in bulk (``COPY`` on PostgreSQL): through ``executemany`` of dicts,
    PostgreSQL took 6.6 s for the 140,922 rows of a 200k-record first sync."""
    rows = _one_row_per_received_message(connection, rows)
    if rows:
        bulk_insert(connection, ContactActivity, pd.DataFrame(rows))


def _one_row_per_received_message(connection: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` without the history copies of received messages, which ClickSend may list twice.

    History items carry a direction, and received messages exist (status ``Received``), so
    ``/sms/history`` may list what ``/sms/inbound`` lists, under the same ``message_id`` (the
    vendor does not say; the emulator plays both, ``clicksend_history_inbound``). The inbound item is
    the row kept: a history copy is left out when its inbound row is stored or comes with it, and
    deleted when its inbound row comes later, so each received message is one activity row in
    whichever order the two parts land (a rebuild reads history first)."""
    inbound = {row["message_key"] for row in rows if _is_inbound(row) and row["message_key"]}
    copies = {row["message_key"] for row in rows if _is_history_copy(row) and row["message_key"]}
    if inbound:
        connection.execute(
            sa.delete(ContactActivity).where(
                key_in(connection, ContactActivity.message_key, sorted(inbound)),
                ContactActivity.activity_id.like(f"{_HISTORY_ID}%"),
                ContactActivity.summary.like(f"{_RECEIVED_IN_HISTORY}%"),
            )
        )
    unmatched = sorted(copies - inbound)
    stored: set[str] = set()
    if unmatched:
        query = sa.select(ContactActivity.message_key).where(
            key_in(connection, ContactActivity.message_key, unmatched),
            ContactActivity.activity_id.like(f"{_INBOUND_ID}%"),
        )
        stored = {str(key) for key in connection.execute(query).scalars()}
    kept = inbound | stored
    return [row for row in rows if not (_is_history_copy(row) and row["message_key"] in kept)]


def _is_inbound(row: Mapping[str, Any]) -> bool:
    return str(row["activity_id"]).startswith(_INBOUND_ID)


def _is_history_copy(row: Mapping[str, Any]) -> bool:
    """A received message as ``/sms/history`` lists it."""
    details = row["details"] if isinstance(row["details"], dict) else {}
    return str(row["activity_id"]).startswith(_HISTORY_ID) and details.get("direction") == "in"


def _unique(pairs: Iterable[tuple[Any, Any]]) -> dict[str, str]:
    """key → value for the keys paired with exactly one distinct value."""
    owners = rows_frame(pairs, ["key", "value"]).drop_duplicates()
    single = owners.drop_duplicates("key", keep=False)
    return dict(zip(single["key"], single["value"], strict=True))


def _link(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Set ``contact_id`` of events and messages from their keys (receipts are linked after)."""
    keys = {row["link_key"] for row in rows if row["link_key"] is not None}
    linkflow = sorted(key[len(_LINKFLOW) :] for key in keys if key.startswith(_LINKFLOW))
    phones = sorted(key[len(_PHONE) :] for key in keys if key.startswith(_PHONE))
    owners = {
        **{f"{_LINKFLOW}{k}": v for k, v in _linkflow_owners(connection, linkflow).items()},
        **{f"{_PHONE}{k}": v for k, v in _phone_owners(connection, phones).items()},
    }
    for row in rows:
        row["contact_id"] = owners.get(row["link_key"]) if row["link_key"] is not None else None


def _link_receipts(rows: list[dict[str, Any]], matched: Mapping[str, str]) -> None:
    """A receipt takes the contact the messages with its id agree on (``matched``: message id → that
    contact, for the ids whose messages name exactly one)."""
    for row in rows:
        key = row["link_key"]
        if key is not None and key.startswith(_MESSAGE):
            row["contact_id"] = matched.get(key[len(_MESSAGE) :])


def _watermark(connection: Connection) -> tuple[datetime | None, str | None]:
    cursor = read_cursor(connection, WATERMARK)
    if not cursor or not cursor.get("changed_at"):
        return None, None
    return datetime.fromisoformat(str(cursor["changed_at"])), cursor.get("region")


def _store_watermark(connection: Connection, changed_at: datetime | None, region: str) -> None:
    cursor = {"changed_at": None if changed_at is None else changed_at.isoformat(), "region": region}
    store_cursor(connection, WATERMARK, cursor, utcnow())


def _totals(connection: Connection) -> tuple[int, int]:
    """Rows in ``contact_activity``, and how many are linked to a contact: a count of the whole table,
    the last read of the step's transaction. On PostgreSQL it is read sequentially, whatever
    `by_key_only` set for the keyed reads before it: at 742,766 rows the contact_id index's bitmap
    took 0.60 s, a (parallel) sequential scan 0.10 s."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SET LOCAL enable_seqscan = on"))
    total, linked = connection.execute(
        sa.select(sa.func.count(), sa.func.count(ContactActivity.contact_id)).select_from(ContactActivity)
    ).one()
    return int(total), int(linked)


def build_activity(
    engine: Engine,
    regions: Mapping[str, str],
    *,
    full: bool = False,
    checkpoint: Callable[[], None] = lambda: None,
) -> ActivityReport:
    """Bring ``contact_activity`` up to date with the raw events and messages and the golden contacts.

    Incremental unless ``full``, or a full rebuild is due (see the module's docstring). Results, the
    watermark and the consumed canonical changes are written in one transaction, so a killed run
    leaves the previous ones and the next run picks up from the same place. The transaction takes
    SQLite's write lock first, in short tries with ``checkpoint()`` between them (which may raise to
    abandon the run), so a stop ends a wait on another process's lock (`writing`).
    """
    region = regions.get("clicksend", "US")
    with writing(engine, checkpoint) as connection:
        by_key_only(connection)  # every read is by key: owners of a slice's keys, rows to re-point
        watermark, stored_region = _watermark(connection)
        todo = changes.pending(connection)
        if full or todo.full or watermark is None or stored_region != region:
            return _rebuild(connection, region, todo)
        # As identity resolution's slices do (`cyclic_gc_paused` says why): the change's rows, frames
        # and payloads are freed by reference counting; the collector would only walk them, and every
        # other object the process holds, again and again. At 100,000 people after a 10% change
        # (20,000 events and messages): 1.58 to 1.66 s with it, 1.37 to 1.48 s without; the same peak.
        with cyclic_gc_paused():
            return _apply_changes(connection, region, watermark, todo)


def _rebuild(connection: Connection, region: str, todo: changes.Pending) -> ActivityReport:
    """Every activity row again, `REBUILD_SLICE_RECORDS` raw records at a time, so a first sync holds one
    slice of payloads (it held them all: 3.3 GiB at a million contact records) and the owners of that
    slice's keys. Receipts come last, once every message's contact is known."""
    # Read before the rows, in the same transaction: every record changed up to it is read here, the
    # activity ones whatever their kind. Over every record of the activity sources (their contacts
    # too), as `keys_changed_since` reads them, so the next run does not read again what those
    # sources' other streams extracted after the last event or message.
    latest = latest_change(connection, (source for source, _ in _ACTIVITY_OBJECTS))
    deleted = connection.execute(sa.delete(ContactActivity)).rowcount
    said: set[tuple[str, str]] = set()
    for raw in _activity_slices(connection, REBUILD_SLICE_RECORDS, receipts=False):
        with cyclic_gc_paused():  # a slice at a time, so what cycles one leaves go before the next
            rows = _rows(raw, region)
            _link(connection, rows)
            said.update(
                (row["message_key"], row["contact_id"])
                for row in rows
                if row["message_key"] is not None and row["contact_id"] is not None
            )
            _insert(connection, rows)
    agreed = _unique(said)
    for raw in _activity_slices(connection, REBUILD_SLICE_RECORDS, receipts=True):
        with cyclic_gc_paused():
            rows = _rows(raw, region)
            _link_receipts(rows, agreed)
            _insert(connection, rows)
    # With no activity at all yet, the watermark still marks that a rebuild happened.
    _store_watermark(connection, latest or datetime.fromtimestamp(0, UTC), region)
    changes.consume(connection, todo)
    # Counted in the table: a received message listed twice is one row (`_one_row_per_received_message`).
    total, linked = _totals(connection)
    return ActivityReport(total, linked, total - linked, True, total, deleted, 0)


def _activity_slices(
    connection: Connection, size: int, *, receipts: bool
) -> Iterator[list[tuple[str, str, dict[str, Any]]]]:
    """(object, source_id, payload) of the live activity records, ``size`` at a time: the receipts, or
    everything else. Keyset by source_id within each object, through the (source, object, source_id)
    unique index on both databases, so every slice starts where the last ended."""
    receipt = RawRecord.source_id.like(f"{_RECEIPT}%")
    for source, obj in _ACTIVITY_OBJECTS:
        if receipts and obj != "sms":
            continue
        query = (
            sa.select(RawRecord.source_id, RawRecord.payload)
            .where(
                RawRecord.source == source,
                RawRecord.object == obj,
                RawRecord.deleted_at.is_(None),
                receipt if receipts else sa.not_(receipt),
            )
            .order_by(RawRecord.source_id)
            .limit(size)
        )
        last: str | None = None
        while True:
            part = connection.execute(
                query if last is None else query.where(RawRecord.source_id > last)
            ).all()
            if not part:
                break
            last = str(part[-1][0])
            yield [(obj, str(source_id), payload) for source_id, payload in part]
            if len(part) < size:
                break


def _apply_changes(
    connection: Connection, region: str, watermark: datetime, todo: changes.Pending
) -> ActivityReport:
    changed, latest = _changed_since(connection, watermark)
    prefix = {"event": "linkflow:event:", "sms": "clicksend:sms:"}
    changed_ids = [f"{prefix[obj]}{source_id}" for obj, source_id, *_ in changed]
    # Receipts whose message changed or went away must be looked at again.
    messages = set(_column_of(connection, ContactActivity.message_key, changed_ids))

    if changed_ids:
        connection.execute(
            sa.delete(ContactActivity).where(key_in(connection, ContactActivity.activity_id, changed_ids))
        )
    rows = _rows(((obj, sid, payload) for obj, sid, payload, gone, _ in changed if gone is None), region)
    _link(connection, rows)
    _insert(connection, rows)
    messages.update(row["message_key"] for row in rows if row["message_key"] is not None)
    messages.update(
        row["link_key"][len(_MESSAGE) :] for row in rows if (row["link_key"] or "").startswith(_MESSAGE)
    )

    relinked = 0
    if todo.last_id is not None:
        keys = _touched_keys(connection, todo)
        relinked = len(keys)
        messages.update(_column_of(connection, ContactActivity.message_key, keys, ContactActivity.link_key))
        _relink(connection, keys)
    _relink_receipts(connection, sorted(messages))

    _store_watermark(connection, latest, region)
    changes.consume(connection, todo)
    total, linked = _totals(connection)
    removed = sum(gone is not None for *_, gone, _ in changed)
    return ActivityReport(total, linked, total - linked, False, len(rows), removed, relinked)


def _changed_since(connection: Connection, watermark: datetime) -> tuple[list[Any], datetime]:
    """object, source_id, payload, deleted_at, changed_at of the activity records changed after the
    watermark, and the next watermark: the latest change among the records of the activity sources
    read, of any kind, so the next run reads only what changed after this one (with the latest
    activity change instead, those sources' contact records extracted after the last event would be
    read again, every run after a full sync).
    (`records_changed_since` says why it reads in two steps.)"""
    columns = [RawRecord.object, RawRecord.source_id, RawRecord.payload, RawRecord.deleted_at]
    return records_changed_since(connection, watermark, _ACTIVITY_OBJECTS, [*columns, RawRecord.changed_at])


def _column_of(
    connection: Connection,
    column: InstrumentedAttribute[Any],
    values: list[str],
    match: InstrumentedAttribute[Any] = ContactActivity.activity_id,
) -> list[str]:
    """Distinct non-null ``column`` of the activity rows whose ``match`` is in ``values`` (deduplicated
    here: a DISTINCT would lead SQLite to walk ``column``'s index whole)."""
    if not values:
        return []
    query = sa.select(column).where(key_in(connection, match, values), column.is_not(None))
    return sorted(set(connection.execute(query).scalars()))


def _touched_keys(connection: Connection, todo: changes.Pending) -> list[str]:
    """Link keys whose contact the pending canonical changes can have moved: the phones and Linkflow
    ids of every record they re-resolved, and the phones changed records held before."""
    phones: set[str] = set()
    linkflow: set[str] = set()
    changed = changes.changed_records(connection, todo)
    if changed:
        # Filtered here rather than in SQL: asked for phones (or Linkflow records) only, SQLite walks
        # every one through the (kind, value) (or (source, object)) index instead of the ids.
        held = connection.execute(
            sa.select(ContactIdentifier.kind, ContactIdentifier.value).where(
                key_in(connection, ContactIdentifier.raw_record_id, changed)
            )
        ).all()
        phones.update(str(value) for kind, value in held if kind == "phone" and value is not None)
        records = connection.execute(
            sa.select(RawRecord.source, RawRecord.object, RawRecord.source_id).where(
                key_in(connection, RawRecord.id, changed)
            )
        ).all()
        linkflow.update(i for source, obj, i in records if (source, obj) == ("linkflow", "contact"))
    phones.update(changes.lost_identifiers(connection, todo, "phone"))
    return sorted({*(f"{_PHONE}{p}" for p in phones), *(f"{_LINKFLOW}{i}" for i in linkflow)})


def _relink(connection: Connection, keys: list[str]) -> None:
    """Point every event and message of ``keys`` at the key's owner now (or at none)."""
    linkflow = [key[len(_LINKFLOW) :] for key in keys if key.startswith(_LINKFLOW)]
    phones = [key[len(_PHONE) :] for key in keys if key.startswith(_PHONE)]
    owners = {
        **{f"{_LINKFLOW}{k}": v for k, v in _linkflow_owners(connection, linkflow).items()},
        **{f"{_PHONE}{k}": v for k, v in _phone_owners(connection, phones).items()},
    }
    _set_contacts(connection, {key: owners.get(key) for key in keys})


def _relink_receipts(connection: Connection, message_ids: list[str]) -> None:
    """Point the receipts of ``message_ids`` at the contact their messages agree on now."""
    pairs: Sequence[Any] = []
    if message_ids:
        pairs = connection.execute(
            sa.select(ContactActivity.message_key, ContactActivity.contact_id).where(
                key_in(connection, ContactActivity.message_key, message_ids),
                ContactActivity.contact_id.is_not(None),
            )
        ).all()
    owners = _unique(pairs)
    _set_contacts(connection, {f"{_MESSAGE}{m}": owners.get(m) for m in message_ids})


def _set_contacts(connection: Connection, contact_of: dict[str, str | None]) -> None:
    """One bulk UPDATE: each link key's rows get its contact, where it differs."""
    rows = list(contact_of.items())
    bulk_update(connection, ContactActivity, ["link_key"], ["contact_id"], rows, only_where_different=True)
