"""The reverse-sync ledger in the warehouse: what a push reads, what it plans, and how each row ends.

Every planned field is written to ``push_ledger`` before any request, marked ``sending`` (committed)
before its call (a window of calls at a time) and given its final state after it, when the next window
opens. A field that was sent, or may have been sent by a run that died mid-window, is not planned
again until the destination has been re-read since:
so a killed push, run again, sends no field twice, and a dry run records the same plan a real run
would make.

Every write takes SQLite's write lock first (`models.warehouse.waits.writing`, ``must_land``): another
process's long transaction is waited out for up to `WRITE_LOCK_WAIT_S` rather than the 30 s busy
timeout, and a stop passed as ``checkpoint`` ends only such a wait, never a write that can land.
"""

import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from models.push.field_map import CANONICAL_FIELDS
from models.push.shared_identifiers import Refuser
from models.warehouse.bulk import bulk_insert, bulk_update, next_ids, rows_frame
from models.warehouse.key_lists import key_in
from models.warehouse.store import StreamKey, read_cursor, store_cursor
from models.warehouse.tables import (
    IN_FLIGHT,
    UNDO_REASONS,
    Contact,
    ContactMerge,
    ContactSource,
    PushLedger,
    RawRecord,
    StreamState,
    utcnow,
)
from models.warehouse.waits import never_stopped, writing

#: Ledger states after which a field may already be at the destination.
#: States of rows that are not planned again for the same record, field and value: given up on after
#: their attempts, refused before sending (already recorded with the reason), or undone on purpose.
SETTLED = ("parked", "invalid", "undone")


# ------------------------------------------------------------------------------------ contact scope


@dataclass(frozen=True, slots=True)
class ContactScope:
    """The golden contacts one part of a plan covers, so every read of it stays within them: a range
    of contact ids (``after`` exclusive, ``through`` inclusive, None open: a full plan's slice), or
    the ids themselves (an incremental plan's, bound as one array: `key_in`, which both databases
    answer with an index probe per id)."""

    after: str | None = None
    through: str | None = None
    ids: frozenset[str] | None = None

    def condition(self, connection: Connection, column: Any) -> sa.ColumnElement[bool]:
        """The scope as a condition on ``column``."""
        if self.ids is not None:
            return key_in(connection, column, sorted(self.ids))
        bounds: list[sa.ColumnElement[bool]] = [column.is_not(None)]
        if self.after is not None:
            bounds.append(column > self.after)
        if self.through is not None:
            bounds.append(column <= self.through)
        return sa.and_(*bounds)


EVERY_CONTACT = ContactScope()


def contact_slices(engine: Engine, size: int) -> Iterator[ContactScope]:
    """Successive ranges of at most ``size`` golden contact ids, in id order, together covering every
    contact id (the last range is open-ended). Each bound is read from the primary key when the range
    before it is done, so the caller holds one slice at a time."""
    after: str | None = None
    while True:
        query = sa.select(Contact.contact_id).order_by(Contact.contact_id).offset(size - 1).limit(1)
        if after is not None:
            query = query.where(Contact.contact_id > after)
        with engine.connect() as connection:
            through = connection.execute(query).scalar_one_or_none()
        yield ContactScope(after=after, through=through)
        if through is None:
            return
        after = through


def _scoped(connection: Connection, query: Any, column: Any, scope: ContactScope) -> list[Any]:
    """The rows of ``query`` within ``scope``."""
    return list(connection.execute(query.where(scope.condition(connection, column))).all())


# ------------------------------------------------------------------------------- planning watermark


def plan_key(destination: str, obj: str) -> StreamKey:
    """Where a destination's planning watermark lives in stream_state."""
    return StreamKey("reverse_sync", f"{destination}/{obj}", "plan")


@dataclass(frozen=True, slots=True)
class PlanWatermark:
    """Where a destination's last plan stopped, so the next one plans only what can have changed.

    A plan is a function of each record on its own: its latest payload, its golden contact's fields,
    its ledger rows (in flight, settled) and the settings. After a plan, a record whose full plan was
    empty stays empty until one of those moves; a record that was planned has ledger rows newer than
    the plan's start. So the next plan needs only the records (and, for creates, the contacts) that:

    - were read since (``raw_records.changed_at`` after ``raw_changed_at``: content, deletion);
    - belong to a golden contact whose fields or record count moved (``contacts.updated_at`` after
      ``contacts_updated_at``; merges and splits also after ``merged_at``, for a membership change
      that leaves the count alone);
    - have ledger rows written since (``push_ledger.id`` above ``ledger_id``: the last plan's own rows,
      whatever they ended as, a killed run's rows, undo's rows), or rows that may have been in flight
      at the last plan (sent after ``read_since``, the start of the read that plan relied on): they
      stop being in flight once read back, and may then be planned again;
    - or everything, when ``settings`` (`PushConfig.fingerprint`) differs.

    Times are maxima read from the tables before the plan loads anything, never "now": a row written
    while the plan works is newer and is planned by the next one. It is stored with the plan's ledger
    rows in one transaction, so a run killed before that plans from the previous watermark again.
    """

    raw_changed_at: datetime | None
    contacts_updated_at: datetime | None
    merged_at: datetime | None
    ledger_id: int
    read_since: datetime | None
    settings: str

    def as_cursor(self) -> dict[str, Any]:
        """The JSON form kept in ``stream_state.cursor``."""
        return {
            "raw_changed_at": _iso(self.raw_changed_at),
            "contacts_updated_at": _iso(self.contacts_updated_at),
            "merged_at": _iso(self.merged_at),
            "ledger_id": self.ledger_id,
            "read_since": _iso(self.read_since),
            "settings": self.settings,
        }

    @classmethod
    def from_cursor(cls, cursor: Mapping[str, Any] | None) -> "PlanWatermark | None":
        """The watermark of a stored cursor (None: none stored, or one this code cannot read)."""
        if not cursor or "ledger_id" not in cursor or "settings" not in cursor:
            return None
        return cls(
            raw_changed_at=_moment(cursor.get("raw_changed_at")),
            contacts_updated_at=_moment(cursor.get("contacts_updated_at")),
            merged_at=_moment(cursor.get("merged_at")),
            ledger_id=int(cursor["ledger_id"]),
            read_since=_moment(cursor.get("read_since")),
            settings=str(cursor["settings"]),
        )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _moment(text: Any) -> datetime | None:
    return None if not text else datetime.fromisoformat(str(text))


def current_watermark(engine: Engine, destination: str, obj: str, settings: str) -> PlanWatermark:
    """The watermark a plan starting now stores: read before the plan loads its inputs."""
    with engine.connect() as connection:
        raw = connection.execute(
            sa.select(sa.func.max(RawRecord.changed_at)).where(RawRecord.source == destination)
        ).scalar_one_or_none()
        contacts = connection.execute(sa.select(sa.func.max(Contact.updated_at))).scalar_one_or_none()
        merged = connection.execute(sa.select(sa.func.max(ContactMerge.merged_at))).scalar_one_or_none()
        ledger_id = connection.execute(sa.select(sa.func.max(PushLedger.id))).scalar_one_or_none()
        read_since = _read_since(connection, destination, obj)
    return PlanWatermark(raw, contacts, merged, int(ledger_id or 0), read_since, settings)


def stored_watermark(engine: Engine, destination: str, obj: str) -> PlanWatermark | None:
    """The watermark the destination's last recorded plan stored (None: it has never been planned)."""
    key = plan_key(destination, obj)
    with engine.connect() as connection:
        cursor = connection.execute(
            sa.select(StreamState.cursor).where(
                StreamState.source == key.source,
                StreamState.object == key.object,
                StreamState.stream == key.stream,
            )
        ).scalar_one_or_none()
    return PlanWatermark.from_cursor(cursor)


def requirements_key(destination: str, obj: str) -> StreamKey:
    """Where the fields a destination's creates must carry, as last read from it, live in stream_state."""
    return StreamKey("reverse_sync", f"{destination}/{obj}", "create_requires")


def store_create_requirements(
    engine: Engine, destination: str, obj: str, fields: frozenset[str], checkpoint: Callable[[], None]
) -> None:
    """Keep what the destination said its creates must carry (`models.push.required_fields`), so a
    run that cannot ask plans under the same settings as the last one that could. Written only when
    it differs from what is kept."""
    key = requirements_key(destination, obj)
    kept = stored_create_requirements(engine, destination, obj)
    if kept == fields:
        return
    with writing(engine, checkpoint) as connection:
        store_cursor(connection, key, {"fields": sorted(fields)}, utcnow())


def stored_create_requirements(engine: Engine, destination: str, obj: str) -> frozenset[str] | None:
    """The fields kept by `store_create_requirements` (None: never read from the destination)."""
    key = requirements_key(destination, obj)
    with engine.connect() as connection:
        cursor = read_cursor(connection, key)
    fields = cursor.get("fields") if isinstance(cursor, dict) else None
    return frozenset(str(name) for name in fields) if isinstance(fields, list) else None


def _after(column: Any, moment: datetime | None) -> sa.ColumnElement[bool]:
    """Rows whose ``column`` is later than ``moment``; every row when there was none then."""
    return sa.true() if moment is None else column > moment


def _unindexed(column: Any) -> sa.ColumnElement[Any]:
    """``column`` as an expression no index serves (``column || ''``), so SQLite, which has no
    statistics to go by, reads a scoped query through the index of its scope (contact ids, record
    ids, the ledger key) rather than through a (destination, object, ...) index that would walk
    every row of the destination. PostgreSQL plans by its statistics either way."""
    unindexed: sa.ColumnElement[Any] = column.concat("")
    return unindexed


def _open_rows(since: PlanWatermark, destination: str, obj: str) -> list[sa.ColumnElement[bool]]:
    """Ledger rows written since the last plan began, or possibly in flight when it ran: two
    conditions, each read through its own index (the ledger key, the status index), where one OR
    of both would make SQLite scan the ledger."""
    in_flight: sa.ColumnElement[bool] = PushLedger.status.in_(IN_FLIGHT)
    if since.read_since is not None:
        in_flight = sa.and_(in_flight, PushLedger.updated_at >= since.read_since)
    return [
        sa.and_(
            _unindexed(PushLedger.destination) == destination,
            _unindexed(PushLedger.object) == obj,
            PushLedger.id > since.ledger_id,
        ),
        sa.and_(PushLedger.destination == destination, PushLedger.object == obj, in_flight),
    ]


@dataclass(frozen=True, slots=True)
class PlanChange:
    """What moved since the last plan (`PlanWatermark`), read once through indexes: the ids an
    incremental plan then reads its records and contacts by (bound as arrays, `key_in`)."""

    raw_record_ids: frozenset[int]
    """Records of the destination system (any object) read since: content, deletion."""
    contact_ids: frozenset[str]
    """Golden contacts whose fields or membership moved."""
    ledger_record_ids: frozenset[str]
    """Records of this destination with ledger rows open (`_open_rows`)."""
    ledger_contact_ids: frozenset[str]
    """Contacts of those open rows (a create's among them)."""


def changes_since(engine: Engine, destination: str, obj: str, since: PlanWatermark) -> PlanChange:
    """What moved since ``since`` for one destination (`PlanChange`)."""
    with engine.connect() as connection:
        raw = connection.execute(
            sa.select(RawRecord.id).where(
                RawRecord.source == destination, _after(RawRecord.changed_at, since.raw_changed_at)
            )
        ).scalars()
        raw_ids = frozenset(int(i) for i in raw)
        contacts = {
            str(c)
            for c in connection.execute(
                sa.select(Contact.contact_id).where(_after(Contact.updated_at, since.contacts_updated_at))
            ).scalars()
        }
        contacts.update(
            str(c)
            for c in connection.execute(
                sa.select(ContactMerge.new_contact_id).where(_after(ContactMerge.merged_at, since.merged_at))
            ).scalars()
        )
        records: set[str] = set()
        owners: set[str] = set()
        for condition in _open_rows(since, destination, obj):
            for record_id, contact_id in connection.execute(
                sa.select(PushLedger.record_id, PushLedger.contact_id).where(condition)
            ):
                records.add(str(record_id))
                if contact_id is not None:
                    owners.add(str(contact_id))
    return PlanChange(raw_ids, frozenset(contacts), frozenset(records), frozenset(owners))


def changed_contacts(engine: Engine, destination: str, obj: str, change: PlanChange) -> frozenset[str]:
    """The contacts whose create plan can differ from the last plan's: fields or membership moved,
    a record of the destination system read since (it may hold them now, or no longer), ledger rows
    open for them, or a create refused for one of those records or contacts (`refused_for`)."""
    found = set(change.contact_ids) | set(change.ledger_contact_ids)
    records: set[str] = set()
    if change.raw_record_ids:
        query = sa.select(ContactSource.contact_id, ContactSource.source_id).where(
            _unindexed(ContactSource.source) == destination
        )
        with engine.connect() as connection:
            within = key_in(connection, ContactSource.raw_record_id, sorted(change.raw_record_ids))
            for contact, record in connection.execute(query.where(within)):
                records.add(str(record))
                if contact is not None:
                    found.add(str(contact))
    found.update(refused_for(engine, destination, obj, found, records))
    return frozenset(found)


def refused_for(
    engine: Engine, destination: str, obj: str, contacts: Collection[str], records: Collection[str]
) -> frozenset[str]:
    """Contacts whose create here was refused because of one of ``records`` (read since the last
    plan: changed, deleted, linked anew) or ``contacts`` (moved since): the value's holder, or the
    contact whose create carried it (`Refuser`). Its moving may have freed the value, so the refused
    create is planned again: it goes if nothing holds the value now, and a refusal planned again alike
    records nothing (`models.push.plan.drop_settled`). Read through the ledger key: a create keeps an
    empty record id until one is made."""
    if not contacts and not records:
        return frozenset()
    query = sa.select(PushLedger.contact_id, PushLedger.error).where(
        PushLedger.destination == destination,
        PushLedger.object == obj,
        PushLedger.record_id == "",
        _unindexed(PushLedger.status) == "invalid",
        PushLedger.reason == "create",
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    refused: set[str] = set()
    for contact, error in rows:
        refuser = Refuser.of(str(error or ""))
        if contact is not None and refuser and (refuser.record in records or refuser.contact in contacts):
            refused.add(str(contact))
    return frozenset(refused)


_TARGET_COLUMNS = [
    "destination",
    "object",
    "record_id",
    "contact_id",
    "payload",
    "modified_at",
    "last_seen_at",
]


def _targets_query(destination: str, obj: str, *, by_key: bool) -> sa.Select[Any]:
    """Live records of the destination linked to a contact; ``by_key``: to be narrowed by record id
    (through the (source, object, source_id) key), else by contacts or raw ids (`_unindexed`)."""
    source, kind = (
        (ContactSource.source, ContactSource.object)
        if by_key
        else (_unindexed(ContactSource.source), _unindexed(ContactSource.object))
    )
    return (
        sa.select(
            ContactSource.source.label("destination"),
            ContactSource.object,
            ContactSource.source_id.label("record_id"),
            ContactSource.contact_id,
            RawRecord.payload,
            RawRecord.source_modified_at.label("modified_at"),
            RawRecord.last_seen_at,
        )
        .join(RawRecord, RawRecord.id == ContactSource.raw_record_id)
        .where(
            source == destination,
            kind == obj,
            ContactSource.contact_id.is_not(None),
            RawRecord.deleted_at.is_(None),
        )
    )


def changed_targets(
    engine: Engine, destination: str, obj: str, change: PlanChange, *, moved: pd.DataFrame | None = None
) -> pd.DataFrame:
    """record_id, contact_id of the destination's live linked records whose plan can differ from the
    last one's: read since, of a contact that moved, or with ledger rows open. Ids only: the plan
    then loads their payloads a slice of contacts at a time (`load_targets` with ``records``).

    ``moved``: the records of ``change.contact_ids`` here (record_id, contact_id), when they were read
    already (`MovedContactsRecords`); else they are read here."""
    columns = [ContactSource.source_id, ContactSource.contact_id]
    by_contact = _targets_query(destination, obj, by_key=False).with_only_columns(*columns)
    by_key = _targets_query(destination, obj, by_key=True).with_only_columns(*columns)
    rows: list[Any] = []
    with engine.connect() as connection:
        if change.raw_record_ids:
            raw_ids = key_in(connection, ContactSource.raw_record_id, sorted(change.raw_record_ids))
            rows.extend(connection.execute(by_contact.where(raw_ids)))
        if change.contact_ids and moved is not None:
            rows.extend(moved.itertuples(index=False, name=None))
        elif change.contact_ids:
            rows.extend(
                _scoped(
                    connection, by_contact, ContactSource.contact_id, ContactScope(ids=change.contact_ids)
                )
            )
        if change.ledger_record_ids:
            open_ids = key_in(connection, ContactSource.source_id, sorted(change.ledger_record_ids))
            rows.extend(connection.execute(by_key.where(open_ids)))
    frame = rows_frame(rows, ["record_id", "contact_id"])
    return frame.drop_duplicates("record_id", ignore_index=True)


class MovedContactsRecords:
    """The live linked records of the contacts that moved since the last plans, every destination's
    at once: read once and shared by the destinations' threads of one reverse sync.

    Each destination read them on its own (`changed_targets`): the records of every source linked to
    those contacts, of which it kept its own. At a million records on PostgreSQL that was six reads
    of about 35,000 rows for 12,000 contacts, 1.8 s of statements in all.

    A destination takes a read only if the read began after its plan's watermark had been read
    (``not_before``, this process's monotonic clock, taken once those reads returned): the watermark
    says everything before it has been planned, so a read older than it could miss a record linked
    in between, and the next plan would not look again. Any other destination reads anew."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._reads: dict[frozenset[str], tuple[float, pd.DataFrame]] = {}

    def of(self, destination: str, obj: str, contacts: frozenset[str], not_before: float) -> pd.DataFrame:
        """record_id, contact_id of the destination's live records linked to one of ``contacts``."""
        with self._lock:
            found = self._reads.get(contacts)
            if found is None or found[0] < not_before:
                began = time.monotonic()
                found = (began, _records_of_contacts(self._engine, contacts))
                self._reads[contacts] = found
        every = found[1]
        mine = (every["source"] == destination) & (every["object"] == obj)
        return every.loc[mine.to_numpy(), ["record_id", "contact_id"]].reset_index(drop=True)


def _records_of_contacts(engine: Engine, contacts: frozenset[str]) -> pd.DataFrame:
    """source, object, record_id, contact_id of the live records linked to ``contacts``, of every
    destination (`_targets_query`'s rows without its destination), through the contact_id index."""
    query = (
        sa.select(
            ContactSource.source, ContactSource.object, ContactSource.source_id, ContactSource.contact_id
        )
        .join(RawRecord, RawRecord.id == ContactSource.raw_record_id)
        .where(ContactSource.contact_id.is_not(None), RawRecord.deleted_at.is_(None))
    )
    with engine.connect() as connection:
        rows = _scoped(connection, query, ContactSource.contact_id, ContactScope(ids=contacts))
    return rows_frame(rows, ["source", "object", "record_id", "contact_id"])


def load_targets(
    engine: Engine,
    destination: str,
    obj: str,
    scope: ContactScope = EVERY_CONTACT,
    records: Collection[str] | None = None,
) -> pd.DataFrame:
    """Every live record of the destination linked to a golden contact of ``scope`` (or, given
    ``records``, those of them), with its latest payload."""
    with engine.connect() as connection:
        if records is not None:
            by_key = _targets_query(destination, obj, by_key=True)
            within = key_in(connection, ContactSource.source_id, sorted(records))
            rows: list[Any] = list(connection.execute(by_key.where(within)).all()) if records else []
        elif scope == EVERY_CONTACT:
            rows = list(connection.execute(_targets_query(destination, obj, by_key=True)).all())
        else:
            by_contact = _targets_query(destination, obj, by_key=False)
            rows = _scoped(connection, by_contact, ContactSource.contact_id, scope)
    frame = rows_frame(rows, _TARGET_COLUMNS)
    for column in ("modified_at", "last_seen_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def load_golden(engine: Engine, scope: ContactScope = EVERY_CONTACT) -> pd.DataFrame:
    """contact_id, the canonical fields, the consent flags and the mapped fields (``custom``) of every
    golden contact of ``scope``."""
    names = [*CANONICAL_FIELDS, "email_opt_out", "sms_opt_out", "custom"]
    columns = [Contact.contact_id, *(getattr(Contact, name) for name in names)]
    with engine.connect() as connection:
        rows = _scoped(connection, sa.select(*columns), Contact.contact_id, scope)
    return rows_frame(rows, ["contact_id", *names])


def _ledger_rows(
    connection: Connection,
    columns: Sequence[Any],
    destination: str,
    obj: str,
    statuses: Sequence[str],
    *conditions: Any,
    contacts: ContactScope = EVERY_CONTACT,
    records: Collection[str] | None = None,
) -> list[Any]:
    """Real runs' ledger rows of one destination in ``statuses``, of ``contacts`` or of ``records``
    only. Narrowed, the status goes unindexed so the (destination, object, contact_id) or the
    (destination, object, record_id) index serves the read: the rows of the slice's or the change's
    contacts or records, not every row of the destination in that status."""
    narrowed = records is not None or contacts != EVERY_CONTACT
    status = (_unindexed(PushLedger.status) if narrowed else PushLedger.status).in_(statuses)
    query = sa.select(*columns).where(
        PushLedger.destination == destination,
        PushLedger.object == obj,
        status,
        PushLedger.dry_run.is_(False),
        *conditions,
    )
    if records is not None:
        if not records:
            return []
        return list(
            connection.execute(query.where(key_in(connection, PushLedger.record_id, sorted(records))))
        )
    if not narrowed:
        return list(connection.execute(query).all())
    return _scoped(connection, query, PushLedger.contact_id, contacts)


def in_flight(
    engine: Engine, targets: pd.DataFrame, destination: str, obj: str, *, narrow: bool = False
) -> pd.DataFrame:
    """record_id, field of rows sent (or being sent) after the record was last read from the destination.

    Every source's incremental read returns the records modified since its cursor, so a write that
    landed is read back by the next complete extract. A row older than the start of that extract whose
    record was not read back never reached the API (a run killed before its call went out): it is no
    longer in flight, and is planned again. ``narrow``: read only the rows of the ``targets``' records
    (a slice's or a change's), by record id: a record keeps its ledger rows when its contact merges.
    """
    with engine.connect() as connection:
        read_since = _read_since(connection, destination, obj)
        conditions: list[Any] = []
        if read_since is not None:
            # Only rows since that extract can still be in flight: the (destination, object, status,
            # updated_at) index reads just those, not every write ever sent. Grouped here rather than
            # in SQL, where SQLite would walk the record index for the GROUP BY's order instead.
            conditions.append(PushLedger.updated_at >= read_since)
        columns = [PushLedger.record_id, PushLedger.field, PushLedger.updated_at]
        records = set(targets["record_id"].astype(str)) if narrow else None
        rows = _ledger_rows(connection, columns, destination, obj, IN_FLIGHT, *conditions, records=records)
    latest = rows_frame(rows, ["record_id", "field", "sent_at"])
    sent = latest.groupby(["record_id", "field"], as_index=False, sort=False).agg(sent_at=("sent_at", "max"))
    sent["sent_at"] = pd.to_datetime(sent["sent_at"], utc=True)
    seen = targets.loc[:, ["record_id", "last_seen_at"]]
    merged = sent.merge(seen, on="record_id", how="left")
    pending = merged["last_seen_at"].isna() | (merged["sent_at"] >= merged["last_seen_at"])
    if read_since is not None:
        pending &= merged["sent_at"] >= pd.Timestamp(read_since)
    return merged.loc[pending, ["record_id", "field"]]


def read_started(engine: Engine, destination: str, obj: str) -> datetime | None:
    """When the latest complete incremental extract of the destination object started (None: none
    complete): a record changed after the extract read it was changed after this."""
    with engine.connect() as connection:
        return _read_since(connection, destination, obj)


def _read_since(connection: Connection, destination: str, obj: str) -> datetime | None:
    """When the latest complete incremental extract of the destination started (None: none complete)."""
    streams = connection.execute(
        sa.select(StreamState.last_status, StreamState.last_run_started_at).where(
            StreamState.source == destination,
            StreamState.object == obj,
            StreamState.stream == "incremental",
        )
    ).all()
    if not streams or any(status != "succeeded" or started is None for status, started in streams):
        return None
    return min(started for _, started in streams if started is not None)


def settled(engine: Engine, destination: str, obj: str, scope: ContactScope = EVERY_CONTACT) -> pd.DataFrame:
    """Rows of real runs not to plan again for the same value (`SETTLED`): parked, invalid, undone
    (``status``; `models.push.plan.drop_settled` says what each settles); of ``scope``'s contacts only
    (those of the slice or the change being planned).

    A create row is keyed with an empty record id, as a new create plan is, whatever id it got.
    """
    record_key = sa.case((PushLedger.reason == "create", ""), else_=PushLedger.record_id)
    columns = [
        PushLedger.destination,
        PushLedger.object,
        record_key,
        PushLedger.contact_id,
        PushLedger.field,
        PushLedger.after_value,
        PushLedger.status,
    ]
    with engine.connect() as connection:
        rows = _ledger_rows(connection, columns, destination, obj, SETTLED, contacts=scope)
    names = ["destination", "object", "record_id", "contact_id", "field", "after_value", "status"]
    frame = rows_frame(rows, names).drop_duplicates(ignore_index=True)
    frame["record_id"] = frame["record_id"].where(frame["record_id"] != "", None)
    return frame


def held_contacts(engine: Engine, destination: str, scope: ContactScope = EVERY_CONTACT) -> pd.DataFrame:
    """contact_id, destination, object of every live record of the destination system linked to a
    contact of ``scope``: the contacts a create would duplicate."""
    query = (
        sa.select(ContactSource.contact_id, ContactSource.source, ContactSource.object)
        .join(RawRecord, RawRecord.id == ContactSource.raw_record_id)
        .where(_unindexed(ContactSource.source) == destination, RawRecord.deleted_at.is_(None))
    )
    with engine.connect() as connection:
        rows = _scoped(connection, query, ContactSource.contact_id, scope)
    return rows_frame(rows, ["contact_id", "destination", "object"])


def creates_in_flight(
    engine: Engine, destination: str, obj: str, scope: ContactScope = EVERY_CONTACT
) -> frozenset[str]:
    """Contacts (of ``scope``) whose create was sent (or may have been) after the destination's last
    complete read.

    A created record only becomes "held" once an extract that started after the create has finished;
    until then the create is not planned again, so a killed or unconfirmed create is never doubled.
    """
    with engine.connect() as connection:
        read_since = _read_since(connection, destination, obj)
        conditions: list[Any] = [PushLedger.reason == "create"]
        if read_since is not None:
            conditions.append(PushLedger.updated_at >= read_since)
        rows = _ledger_rows(
            connection, [PushLedger.contact_id], destination, obj, IN_FLIGHT, *conditions, contacts=scope
        )
        return frozenset(str(c) for (c,) in rows)


def creates_sent(
    engine: Engine, destination: str, obj: str, fields: Collection[str], values: Collection[str]
) -> list[Any]:
    """(contact_id, field, after_value) of the creates sent (or that may have been) after the
    destination's last complete read whose ``field`` is one of ``fields`` holding one of ``values``:
    their records are not in the warehouse yet, but may be at the destination."""
    if not fields or not values:
        return []
    with engine.connect() as connection:
        read_since = _read_since(connection, destination, obj)
        conditions: list[Any] = [
            PushLedger.reason == "create",
            PushLedger.field.in_(sorted(fields)),
            key_in(connection, PushLedger.after_value, values),
        ]
        if read_since is not None:
            conditions.append(PushLedger.updated_at >= read_since)
        columns = [PushLedger.contact_id, PushLedger.field, PushLedger.after_value]
        return _ledger_rows(connection, columns, destination, obj, IN_FLIGHT, *conditions)


def set_record_ids(
    engine: Engine, new_ids: Mapping[int, str], *, checkpoint: Callable[[], None] = never_stopped
) -> None:
    """Give created rows the id the destination assigned, so undo can find the record."""
    if not new_ids:
        return
    with writing(engine, checkpoint, must_land=True) as connection:
        _set_record_ids(connection, new_ids)


def _set_record_ids(connection: Connection, new_ids: Mapping[int, str]) -> None:
    bulk_update(connection, PushLedger, ["id"], ["record_id"], list(new_ids.items()))


def set_write_results(
    engine: Engine,
    results: Mapping[int, tuple[datetime | None, int | None, str | None]],
    *,
    checkpoint: Callable[[], None] = never_stopped,
) -> None:
    """Keep, per sent row, what the destination answered about the record after our write: its
    modification time, Linkflow's version and the Zoho user it was made as (`models.push.plan.WriteStamp`),
    so survivorship tells our writes from people's edits by them (`models.identity.own_writes`)."""
    if all(stamp == (None, None, None) for stamp in results.values()):
        return
    with writing(engine, checkpoint, must_land=True) as connection:
        _set_write_results(connection, results)


def _set_write_results(
    connection: Connection, results: Mapping[int, tuple[datetime | None, int | None, str | None]]
) -> None:
    rows = [
        (ledger_id, _time(at), version, by)
        for ledger_id, (at, version, by) in results.items()
        if at is not None or version is not None or by is not None
    ]
    bulk_update(connection, PushLedger, ["id"], _STAMP_COLUMNS, rows)


#: Where an answer's stamp (`set_write_results`) goes: its time, version and who made it.
_STAMP_COLUMNS = ["result_modified_at", "result_version", "written_by"]


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """How the rows of one write call end: ``marks`` (status, error, attempts) -> ledger ids, the ids
    creates were given (`set_record_ids`), what the answers said of the records (`set_write_results`),
    all at ``at`` (right after the call answered)."""

    marks: Mapping[tuple[str, str | None, int], Sequence[int]]
    new_ids: Mapping[int, str]
    results: Mapping[int, tuple[datetime | None, int | None, str | None]]
    at: datetime


def record_call(
    engine: Engine,
    outcomes: Sequence[CallOutcome] = (),
    *,
    sending: Sequence[int] = (),
    planned: Sequence[int] = (),
    checkpoint: Callable[[], None] = never_stopped,
) -> None:
    """Calls' outcomes, the next calls' rows marked ``sending`` and rows that never went out put back to
    ``planned``, in one transaction: every outcome is committed before the next rows go out, and rows
    are ``sending`` before their call does. The outcomes of all the calls go in one statement each for
    the created ids, the rows with a stamp and the rows without: in a sync's threads every statement
    also waits its turn for the interpreter, so a window of calls pays for three, not three a call."""
    new_ids = {key: record_id for outcome in outcomes for key, record_id in outcome.new_ids.items()}
    stamped, plain = _outcome_rows(outcomes)
    with writing(engine, checkpoint, must_land=True) as connection:
        _set_record_ids(connection, new_ids)
        _finish(connection, stamped, stamped=True)
        _finish(connection, plain, stamped=False)
        _mark(connection, sending, "sending")
        _mark(connection, planned, "planned")


def _outcome_rows(outcomes: Sequence[CallOutcome]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each row's final state (status, error, attempts, when), split into the rows whose answer told
    something of the record (with that stamp: `set_write_results`) and the others."""
    stamped: list[dict[str, Any]] = []
    plain: list[dict[str, Any]] = []
    for outcome in outcomes:
        for (status, error, attempts), ledger_ids in outcome.marks.items():
            for ledger_id in ledger_ids:
                row = {
                    "ledger_id": ledger_id,
                    "state": status,
                    "message": error,
                    "tries": attempts,
                    "moment": outcome.at,
                }
                stamp = outcome.results.get(ledger_id, (None, None, None))
                if stamp == (None, None, None):
                    plain.append(row)
                else:
                    stamped.append({**row, "at": _time(stamp[0]), "version": stamp[1], "by": stamp[2]})
    return stamped, plain


def _finish(connection: Connection, rows: list[dict[str, Any]], *, stamped: bool) -> None:
    """Rows to their final state in one statement (`bulk_update`), with the answer's stamp
    (`_STAMP_COLUMNS`, from ``at``, ``version`` and ``by``) when ``stamped``. ``error`` is kept when
    the outcome has none, as `mark` keeps it. A row given twice ends as its last outcome says."""
    last = {row["ledger_id"]: row for row in rows}
    names = ["state", "message", "tries", "moment", *(["at", "version", "by"] if stamped else [])]
    columns = ["status", "error", "attempts", "updated_at", *(_STAMP_COLUMNS if stamped else [])]
    values = [(ledger_id, *(row[name] for name in names)) for ledger_id, row in last.items()]
    bulk_update(connection, PushLedger, ["id"], columns, values, kept_when_none=("error",))


def previous_attempts(
    engine: Engine, destination: str, obj: str, records: Collection[str] | None = None
) -> dict[tuple[str, str, str], int]:
    """(record_id, field, after_value) → how many real runs were rejected writing that value (of
    ``records`` only, when given: those of the plan about to be sent)."""
    with engine.connect() as connection:
        rows = _ledger_rows(
            connection,
            [PushLedger.record_id, PushLedger.field, PushLedger.after_value],
            destination,
            obj,
            ("rejected",),
            records=records,
        )
    counts: dict[tuple[str, str, str], int] = {}
    for r, f, v in rows:
        key = (str(r), str(f), str(v))
        counts[key] = counts.get(key, 0) + 1
    return counts


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return str(value)


def _time(value: Any) -> datetime | None:
    if value is None or pd.isna(value):
        return None
    moment = pd.Timestamp(value)
    return (moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")).to_pydatetime()


def record_plan(
    engine: Engine,
    plan: pd.DataFrame,
    *,
    run_id: str,
    dry_run: bool,
    watermark: tuple[StreamKey, PlanWatermark] | None = None,
    planned_as: str = "planned",
    checkpoint: Callable[[], None] = never_stopped,
) -> list[int]:
    """Store the plan (``planned``, or ``invalid`` for refused rows); returns the ledger ids in order.

    ``watermark``, when given (`plan_key`, the plan's `PlanWatermark`), is stored in the same
    transaction, so the rows and where the plan stopped commit together or not at all.
    ``planned_as``: the state of the sendable rows; a dry run stores them ``unchanged`` at once, in
    one bulk insert that returns no ids (a real run needs the ids to mark each row as it goes)."""
    now = utcnow()
    rows = _ledger_frame(plan, run_id=run_id, dry_run=dry_run, planned_as=planned_as, now=now)
    if rows.empty and watermark is None:
        return []
    with writing(engine, checkpoint, must_land=True) as connection:
        ids: list[int] = []
        if not rows.empty and planned_as != "planned":
            bulk_insert(connection, PushLedger, rows)
        elif not rows.empty:
            ids = _insert_with_ids(connection, rows)
        if watermark is not None:
            key, mark = watermark
            store_cursor(connection, key, mark.as_cursor(), now)
        return ids


def _ledger_frame(
    plan: pd.DataFrame, *, run_id: str, dry_run: bool, planned_as: str, now: datetime
) -> pd.DataFrame:
    """The ledger rows of ``plan``, one per planned field, as the table's columns."""
    invalid = [_text(value) for value in plan["invalid_reason"].to_numpy(dtype=object)]
    modified: list[datetime | None] = [None] * len(plan)
    if "record_modified_at" in plan:
        times = pd.to_datetime(plan["record_modified_at"], utc=True)
        known = times.notna().to_numpy()
        modified = [m if k else None for m, k in zip(times.dt.to_pydatetime(), known, strict=True)]

    def texts(name: str) -> list[str | None]:
        return [_text(value) for value in plan[name].to_numpy(dtype=object)]

    columns: dict[str, Any] = {
        "run_id": run_id,
        "destination": plan["destination"].to_numpy(dtype=object),
        "object": plan["object"].to_numpy(dtype=object),
        "record_id": [text or "" for text in texts("record_id")],
        "contact_id": texts("contact_id"),
        "parent_id": texts("parent_id"),
        "record_modified_at": pd.Series(modified, dtype=object),
        "field": plan["field"].to_numpy(dtype=object),
        "before_value": texts("before_value"),
        "after_value": texts("after_value"),
        "reason": plan["reason"].to_numpy(dtype=object),
        "status": ["invalid" if reason else planned_as for reason in invalid],
        "error": invalid,
        "attempts": 0,
        "dry_run": dry_run,
        "created_at": now,
        "updated_at": now,
    }
    return pd.DataFrame(columns, index=pd.RangeIndex(len(plan))).astype(object)


def _insert_with_ids(connection: Connection, rows: pd.DataFrame) -> list[int]:
    """Insert ledger rows; their ids in the order of ``rows``.

    PostgreSQL: the ids are taken from the table's sequence first, in one query, and the rows go
    with them by ``COPY``. As one ``INSERT ... RETURNING`` of a thousand rows each, psycopg parsed
    every statement's 17,000 placeholders in Python (too long for its statement cache): 20,000 rows
    took 3.4 to 3.6 s, most of a first sync's reverse-sync statements.

    SQLite has no form of INSERT that ties each new rowid to its parameters, so asked for ids in
    order SQLAlchemy sends one statement a row: 917,000 of them for a first sync at a million
    records. Here the write lock is taken first, so no other connection inserts until the
    transaction ends; each row then gets the largest rowid plus one (SQLite's rule for an integer
    primary key given no value), so the new ids are those above the largest before, in the order
    inserted."""
    if connection.dialect.name != "sqlite":
        ids = next_ids(connection, PushLedger, len(rows))
        bulk_insert(connection, PushLedger, rows.assign(id=ids))
        return ids
    before = connection.execute(sa.select(sa.func.max(PushLedger.id))).scalar_one_or_none() or 0
    bulk_insert(connection, PushLedger, rows)
    ids = [
        int(ledger_id)
        for ledger_id in connection.execute(
            sa.select(PushLedger.id).where(PushLedger.id > before).order_by(PushLedger.id)
        ).scalars()
    ]
    if len(ids) != len(rows) or (ids and ids[-1] - ids[0] != len(rows) - 1):
        raise RuntimeError(f"push_ledger: {len(rows)} rows inserted after id {before}, {len(ids)} ids found")
    return ids


def mark(
    engine: Engine,
    ledger_ids: Sequence[int],
    status: str,
    *,
    error: str | None = None,
    attempts: int | None = None,
    at: datetime | None = None,
    checkpoint: Callable[[], None] = never_stopped,
) -> None:
    """Move rows to ``status`` in their own transaction (committed before the next call goes out)."""
    if not ledger_ids:
        return
    with writing(engine, checkpoint, must_land=True) as connection:
        _mark(connection, ledger_ids, status, error=error, attempts=attempts, at=at)


def _mark(
    connection: Connection,
    ledger_ids: Sequence[int],
    status: str,
    *,
    error: str | None = None,
    attempts: int | None = None,
    at: datetime | None = None,
) -> None:
    if not len(ledger_ids):
        return
    values: dict[str, Any] = {"status": status, "updated_at": at or utcnow()}
    if error is not None:
        values["error"] = error
    if attempts is not None:
        values["attempts"] = attempts
    connection.execute(
        sa.update(PushLedger).where(key_in(connection, PushLedger.id, ledger_ids)).values(**values)
    )


def abandon_planned(
    engine: Engine,
    run_id: str,
    destination: str,
    obj: str,
    why: str,
    *,
    checkpoint: Callable[[], None] = never_stopped,
) -> int:
    """End the rows of ``run_id`` still ``planned`` for a destination as ``unchanged`` with ``why``:
    a run asked to stop never sent them. They are neither in flight nor settled, so the next run plans
    them again from what it reads. Returns how many rows that was."""
    with writing(engine, checkpoint, must_land=True) as connection:
        result = connection.execute(
            sa.update(PushLedger)
            .where(
                PushLedger.run_id == run_id,
                PushLedger.destination == destination,
                PushLedger.object == obj,
                PushLedger.status == "planned",
            )
            .values(status="unchanged", error=why, updated_at=utcnow())
        )
        return int(result.rowcount or 0)


# ------------------------------------------------------------------------------------------ undo


def load_run_writes(engine: Engine, run_id: str) -> pd.DataFrame:
    """The fields a real run sent (`models.push.undo.WRITTEN_COLUMNS`); undo rows themselves excluded."""
    query = sa.select(
        PushLedger.id.label("ledger_id"),
        PushLedger.run_id,
        PushLedger.destination,
        PushLedger.object,
        PushLedger.record_id,
        PushLedger.parent_id,
        PushLedger.contact_id,
        PushLedger.field,
        PushLedger.before_value,
        PushLedger.after_value,
        PushLedger.reason,
        PushLedger.updated_at.label("sent_at"),
    ).where(
        PushLedger.run_id == run_id,
        PushLedger.status == "sent",
        PushLedger.dry_run.is_(False),
        PushLedger.reason.not_in(UNDO_REASONS),
    )
    with engine.connect() as connection:
        frame = pd.DataFrame(connection.execute(query.order_by(PushLedger.id)).mappings().all())
    if frame.empty:
        return pd.DataFrame(columns=list(query.selected_columns.keys()))
    return frame


def run_exists(engine: Engine, run_id: str) -> bool:
    """Whether the ledger holds any row of ``run_id`` (a run that planned nothing holds none)."""
    with engine.connect() as connection:
        found = connection.execute(sa.select(PushLedger.id).where(PushLedger.run_id == run_id).limit(1))
        return found.first() is not None


def later_writes(engine: Engine, written: pd.DataFrame) -> pd.DataFrame:
    """destination, object, record_id, field, run_id of fields other real runs sent after ``written``."""
    columns = ["destination", "object", "record_id", "field", "run_id"]
    if written.empty:
        return pd.DataFrame(columns=columns)
    first = int(written["ledger_id"].min())
    query = sa.select(*(getattr(PushLedger, c) for c in columns)).where(
        PushLedger.id > first,
        PushLedger.run_id != str(written["run_id"].iloc[0]),
        PushLedger.status.in_(IN_FLIGHT),
        PushLedger.dry_run.is_(False),
        PushLedger.destination.in_(sorted(set(written["destination"]))),
    )
    with engine.connect() as connection:
        frame = rows_frame(connection.execute(query.order_by(PushLedger.id)), columns)
    return frame.merge(
        written.loc[:, ["destination", "object", "record_id", "field"]].drop_duplicates(),
        on=["destination", "object", "record_id", "field"],
    )


def load_current(engine: Engine, written: pd.DataFrame) -> pd.DataFrame:
    """The warehouse's latest copy of every record in ``written`` (`models.push.undo.CURRENT_COLUMNS`)."""
    columns = ["destination", "object", "record_id", "payload", "last_seen_at", "modified_at", "deleted"]
    rows: list[Any] = []
    with engine.connect() as connection:
        for (dest, obj), group in written.groupby(["destination", "object"], sort=False):
            records = sorted({str(r) for r in group["record_id"] if r})
            if records:
                rows.extend(
                    connection.execute(
                        sa.select(
                            RawRecord.source,
                            RawRecord.object,
                            RawRecord.source_id,
                            RawRecord.payload,
                            RawRecord.last_seen_at,
                            RawRecord.source_modified_at,
                            RawRecord.deleted_at.is_not(None),
                        ).where(
                            RawRecord.source == dest,
                            RawRecord.object == obj,
                            key_in(connection, RawRecord.source_id, records),
                        )
                    ).all()
                )
    return rows_frame(rows, columns)
