"""The raw-record store: idempotent page upserts whose cursor moves in the same transaction.

Every API here delivers at least once at its boundaries (inclusive time filters, lookback windows,
re-read pages), so a page is upserted on (source, object, source_id) and a content hash decides
whether the stored row changes. Writing the page's rows and the stream's cursor in one transaction
is what makes a crash harmless: either both are stored or neither, and a re-run re-reads from the
last stored cursor.
"""

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine

from models.warehouse.bulk import bulk_update
from models.warehouse.json_text import sorted_compact
from models.warehouse.key_lists import key_in
from models.warehouse.tables import Quarantine, RawRecord, StreamState, utcnow
from models.warehouse.waits import never_stopped, wait_for_write_lock, writing

#: Rows per IN (...) list: far below SQLite's 32,766 bound parameters and PostgreSQL's 65,535.
_CHUNK = 900


@dataclass(frozen=True)
class RawRow:
    """One record of a page: its id at the source, its payload as sent, its own modified time."""

    source_id: str
    payload: Mapping[str, Any]
    modified_at: datetime | None = None


@dataclass(frozen=True)
class BadRecord:
    """A record that cannot be stored as a raw row (no id, wrong shape), kept with the reason."""

    reason: str
    payload: Mapping[str, Any] | None
    source_id: str | None = None


@dataclass
class PageCounts:
    """What writing pages did; added up per run for the materialization metadata."""

    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    quarantined: int = 0

    def add(self, other: "PageCounts") -> None:
        self.read += other.read
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.deleted += other.deleted
        self.quarantined += other.quarantined

    def as_dict(self) -> dict[str, int]:
        return {
            "rows_read": self.read,
            "rows_inserted": self.inserted,
            "rows_updated": self.updated,
            "rows_unchanged": self.unchanged,
            "rows_deleted": self.deleted,
            "rows_quarantined": self.quarantined,
        }


@dataclass(frozen=True)
class StreamKey:
    """Which cursor: a source object can have several streams (SMS history, inbound, receipts...)."""

    source: str
    object: str
    stream: str = "incremental"


@dataclass
class StreamStatus:
    """A stream's stored state, as the status command shows it."""

    key: StreamKey
    cursor: dict[str, Any] | None
    cursor_updated_at: datetime | None
    last_run_started_at: datetime | None
    last_success_at: datetime | None
    last_status: str | None
    last_error: str | None
    last_counts: dict[str, Any] = field(default_factory=dict)


def content_hash(payload: Mapping[str, Any]) -> str:
    """A stable digest of a payload: key order and whitespace do not change it, any value does."""
    return hashlib.sha256(sorted_compact(payload)).hexdigest()


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


def storable(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload as both dialects can store it: NUL characters become U+FFFD.

    PostgreSQL's JSONB and text refuse U+0000 ("unsupported Unicode escape sequence"); a NUL in a
    name or email is junk anyway, and replacing it the same way on SQLite keeps the two warehouses
    and their content hashes identical.
    """
    text = json.dumps(payload, ensure_ascii=False, default=str)
    return _without_nul(dict(payload)) if "\\u0000" in text else dict(payload)


def storable_with_hash(payload: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """``storable(payload)`` and its ``content_hash``, from one serialisation when it holds no NUL.

    Every record of every page goes through this, so the payload is serialised once for both the
    NUL check and the digest rather than once each."""
    text = sorted_compact(payload)
    if b"\\u0000" in text:
        cleaned = storable(payload)
        return cleaned, content_hash(cleaned)
    return dict(payload), hashlib.sha256(text).hexdigest()


def chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    """Slices small enough for one IN (...) list on every dialect."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class ChangedKeys:
    """The records of some objects that moved after a watermark, by key only (no payloads)."""

    ids: npt.NDArray[np.int64]
    """Their ids, ordered by changed_at, then id."""
    changed_at: npt.NDArray[np.datetime64]
    """Their changed_at, in UTC (naive, microseconds), in the same order."""
    latest: datetime
    """The latest change among every record that moved, of any object (the watermark when none did)."""


def keys_changed_since(
    connection: Connection, watermark: datetime, objects: Iterable[tuple[str, str]]
) -> ChangedKeys:
    """The ids and changed_at of the raw records of ``objects`` (source, object) whose content or
    deletion moved strictly after ``watermark``, found source by source through the (source,
    changed_at) index: asked for the objects too, SQLite walks every record of the objects through the
    (source, object) index, and PostgreSQL without fresh statistics reads them through the unique
    index, so the cost followed the warehouse rather than the change. Sixteen bytes a record are kept,
    never a payload. ``latest`` covers every record of those sources that moved, whatever its object,
    so the next read starts after all of them (the other sources' records are never read here)."""
    wanted = set(objects)
    ids: list[int] = []
    times: list[datetime] = []
    latest = watermark
    for source in sorted({source for source, _ in wanted}):
        moved = connection.execute(
            sa.select(RawRecord.id, RawRecord.object, RawRecord.changed_at).where(
                RawRecord.source == source, RawRecord.changed_at > watermark
            )
        )
        for key, obj, changed_at in moved:
            latest = max(latest, changed_at)
            if (source, obj) in wanted:
                ids.append(int(key))
                times.append(changed_at)
    keys = np.asarray(ids, dtype=np.int64)
    stamps = pd.to_datetime(pd.Series(times, dtype=object), utc=True).dt.tz_localize(None)
    at = stamps.to_numpy(dtype="datetime64[us]")
    order = np.lexsort((keys, at))
    return ChangedKeys(ids=keys[order], changed_at=at[order], latest=latest)


def latest_change(connection: Connection, sources: Iterable[str]) -> datetime | None:
    """The latest changed_at among the raw records of ``sources`` (None when they hold none): one
    probe of the (source, changed_at) index's end per source."""
    found = [
        connection.execute(
            sa.select(sa.func.max(RawRecord.changed_at)).where(RawRecord.source == source)
        ).scalar_one_or_none()
        for source in sorted(set(sources))
    ]
    return max((time for time in found if time is not None), default=None)


def records_by_id(
    connection: Connection, ids: Sequence[int] | npt.NDArray[np.int64], columns: Sequence[Any]
) -> list[Any]:
    """``columns`` of the raw records ``ids``, in id order: one statement, an index probe per id
    (`models.warehouse.key_lists`)."""
    keys = sorted({int(key) for key in ids})
    if not keys:
        return []
    query = sa.select(*columns).where(key_in(connection, RawRecord.id, keys)).order_by(RawRecord.id)
    return list(connection.execute(query).all())


def records_changed_since(
    connection: Connection,
    watermark: datetime,
    objects: Iterable[tuple[str, str]],
    columns: Sequence[Any],
) -> tuple[list[Any], datetime]:
    """``columns`` of the raw records of ``objects`` (source, object) whose content or deletion moved
    after ``watermark``, in id order, and the latest change among every record of their sources that
    moved, of any object.

    Two steps (`keys_changed_since` says why): the moved rows by the (source, changed_at) index, then
    read by id."""
    moved = keys_changed_since(connection, watermark, objects)
    return records_by_id(connection, moved.ids, columns), moved.latest


class RawStore:
    """Writes pages of raw records and reads and moves stream cursors, always transactionally.

    Every write transaction takes SQLite's write lock first (`models.warehouse.waits`, ``must_land``):
    another process's long transaction (a second sync's identity resolution, a BI tool) is waited out
    for up to `WRITE_LOCK_WAIT_S` instead of failing the page after the 30 s busy timeout. A page
    already read is still stored after a stop when the lock is free; ``checkpoint`` (the sync's stop)
    ends only a wait for another holder, which leaves what a kill would: the page unstored, its
    cursor where it was."""

    def __init__(self, engine: Engine, *, checkpoint: Callable[[], None] = never_stopped) -> None:
        self._engine = engine
        self._checkpoint = checkpoint
        self._held: Connection | None = None

    @property
    def engine(self) -> Engine:
        return self._engine

    @contextmanager
    def holding_connection(self) -> Iterator["RawStore"]:
        """Write the pages inside on one pooled connection, still one transaction per page.

        Taking a connection from the pool per page costs PostgreSQL two round trips of its own (the
        pre-ping's ``SELECT 1`` and the rollback that resets it on return), as many as the page's
        upsert when nothing changed. Between pages the connection holds no transaction, so SQLite's
        write lock is free for the other sources' threads. One store serves one thread at a time."""
        if self._held is not None:
            yield self
            return
        with self._engine.connect() as connection:
            self._held = connection
            try:
                yield self
            finally:
                self._held = None

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A write transaction, on the held connection if there is one, its write lock taken first."""
        if self._held is None:
            with writing(self._engine, self._checkpoint, must_land=True) as connection:
                yield connection
            return
        with self._held.begin():
            wait_for_write_lock(self._held, self._checkpoint, must_land=True)
            yield self._held

    def cursor(self, key: StreamKey) -> dict[str, Any] | None:
        with self._engine.connect() as connection:
            return connection.execute(
                sa.select(StreamState.cursor).where(*_state_where(key))
            ).scalar_one_or_none()

    def write_page(
        self,
        key: StreamKey,
        rows: Sequence[RawRow],
        *,
        cursor: Mapping[str, Any] | None = None,
        move_cursor: bool = True,
        deleted_ids: Sequence[str] = (),
        bad: Sequence[BadRecord] = (),
        run_id: str | None = None,
    ) -> PageCounts:
        """Upsert ``rows``, mark ``deleted_ids``, quarantine ``bad`` and store ``cursor``: all or nothing.

        ``move_cursor=False`` is for backfills, which write the same rows but must leave the live
        incremental cursor where it is.
        """
        now = utcnow()
        with self._transaction() as connection:
            counts = _upsert_rows(connection, key, _last_of_each(rows), now)
            counts.read = len(rows) + len(bad)
            if deleted_ids:
                counts.deleted = _mark_deleted(connection, key, deleted_ids, now)
            if bad:
                _quarantine(connection, key, bad, run_id, now)
                counts.quarantined = len(bad)
            if move_cursor and cursor is not None:
                store_cursor(connection, key, dict(cursor), now)
        return counts

    def mark_missing_deleted(self, key: StreamKey, present_ids: Iterable[str]) -> int:
        """After a full id scan: every stored, undeleted record the scan did not see is marked deleted."""
        present = set(present_ids)
        now = utcnow()
        with self._transaction() as connection:
            stored = connection.execute(
                sa.select(RawRecord.source_id).where(
                    RawRecord.source == key.source,
                    RawRecord.object == key.object,
                    RawRecord.deleted_at.is_(None),
                )
            ).scalars()
            missing = [source_id for source_id in stored if source_id not in present]
            return _mark_deleted(connection, key, missing, now) if missing else 0

    def mark_deleted(self, key: StreamKey, source_ids: Iterable[str]) -> int:
        """Records we deleted ourselves (undoing a create), or a write found gone: marked now rather
        than at the next scan."""
        ids = [str(source_id) for source_id in source_ids]
        if not ids:
            return 0
        with self._transaction() as connection:
            return _mark_deleted(connection, key, ids, utcnow())

    def last_success(self, key: StreamKey) -> datetime | None:
        """When ``key`` last finished without error (None if never)."""
        with self._engine.connect() as connection:
            return connection.execute(
                sa.select(StreamState.last_success_at).where(*_state_where(key))
            ).scalar_one_or_none()

    def start_run(self, key: StreamKey, run_id: str) -> None:
        with self._transaction() as connection:
            _ensure_state(connection, key)
            connection.execute(
                sa.update(StreamState)
                .where(*_state_where(key))
                .values(last_run_id=run_id, last_run_started_at=utcnow(), last_status="running")
            )

    def finish_run(
        self, key: StreamKey, *, counts: Mapping[str, Any], error: str | None = None, stopped: bool = False
    ) -> None:
        """Record how the run ended; a failure keeps the previous ``last_success_at``.

        ``stopped``: the run was asked to stop part-way (status ``stopped``, not an error). The pages it
        stored are stored with their cursor, and it does not count as a complete read.
        """
        values: dict[str, Any] = {"last_counts": dict(counts), "last_error": error}
        if stopped:
            values.update(last_status="stopped")
        elif error is None:
            values.update(last_status="succeeded", last_success_at=utcnow())
        else:
            values.update(last_status="failed")
        with self._transaction() as connection:
            _ensure_state(connection, key)
            connection.execute(sa.update(StreamState).where(*_state_where(key)).values(**values))

    def failures_of_run(self, run_id: str) -> dict[tuple[str, str], str]:
        """(source, object) -> "source/object: error" for every stream ``run_id`` failed."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(StreamState.source, StreamState.object, StreamState.last_error).where(
                    StreamState.last_run_id == run_id, StreamState.last_status == "failed"
                )
            ).all()
        return {(source, obj): f"{source}/{obj}: {error}" for source, obj, error in rows}

    def statuses(self) -> list[StreamStatus]:
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(StreamState).order_by(StreamState.source, StreamState.object, StreamState.stream)
            ).all()
        return [
            StreamStatus(
                key=StreamKey(row.source, row.object, row.stream),
                cursor=row.cursor,
                cursor_updated_at=row.cursor_updated_at,
                last_run_started_at=row.last_run_started_at,
                last_success_at=row.last_success_at,
                last_status=row.last_status,
                last_error=row.last_error,
                last_counts=row.last_counts or {},
            )
            for row in rows
        ]

    def record_counts(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(source, object) → (stored records, of which deleted)."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(
                    RawRecord.source,
                    RawRecord.object,
                    sa.func.count(),
                    sa.func.count(RawRecord.deleted_at),
                ).group_by(RawRecord.source, RawRecord.object)
            ).all()
        return {(source, obj): (int(total), int(deleted)) for source, obj, total, deleted in rows}


def _last_of_each(rows: Sequence[RawRow]) -> list[RawRow]:
    """A page can repeat an id (pages shifting under a scan); the last copy read is the newest."""
    by_id = {row.source_id: row for row in rows}
    return list(by_id.values())


def _stored_versions(
    connection: Connection, key: StreamKey, source_ids: Sequence[str]
) -> dict[str, tuple[int, str, datetime | None]]:
    """source_id -> (row id, content hash, deleted_at) of the stored records among ``source_ids``, each
    looked up by its key (`by_source_ids`)."""
    found: dict[str, tuple[int, str, datetime | None]] = {}
    columns = (RawRecord.id, RawRecord.source_id, RawRecord.content_hash, RawRecord.deleted_at)
    for chunk in chunks(source_ids):
        query = by_source_ids(RawRecord, columns, key.source, key.object, chunk, connection.dialect.name)
        for record_id, source_id, digest, deleted_at in connection.execute(query):
            found[source_id] = (record_id, digest, deleted_at)
    return found


def payloads_by_source_id(engine: Engine, key: StreamKey, source_ids: Sequence[str]) -> dict[str, Any]:
    """source_id -> the stored payload of each of ``source_ids`` held for ``key`` (deleted ones too)."""
    found: dict[str, Any] = {}
    columns = (RawRecord.source_id, RawRecord.payload)
    with engine.connect() as connection:
        for chunk in chunks(source_ids):
            query = by_source_ids(RawRecord, columns, key.source, key.object, chunk, connection.dialect.name)
            found.update({source_id: payload for source_id, payload in connection.execute(query)})
    return found


def by_source_ids(  # noqa: PLR0917 - a table, what to read, and the key it is read by
    model: Any,
    columns: Sequence[Any],
    source: str,
    obj: str,
    source_ids: Sequence[str],
    dialect: str,
    *conditions: sa.ColumnElement[bool],
) -> sa.Select[Any]:
    """``columns`` of ``model``'s rows (``raw_records``, ``contact_sources``: keyed by source, object
    and source_id) with one of ``source_ids`` and ``conditions``.

    On PostgreSQL each id is looked up on its own through the (source, object, source_id) index (a
    lateral join the planner cannot flatten): asked as ``source_id IN (...)``, a planner without
    statistics for the table (before its first ANALYZE, or with autovacuum off) takes the index for
    (source, object) alone and filters every row of the object by id, so each list read the whole
    object: the extract's pages and the activity step's owners grew with the warehouse."""
    if dialect != "postgresql":
        return sa.select(*columns).where(
            model.source == source, model.object == obj, model.source_id.in_(list(source_ids)), *conditions
        )
    return each_of(
        source_ids,
        lambda wanted: (
            sa.select(*columns)
            .where(model.source == source, model.object == obj, model.source_id == wanted, *conditions)
            .limit(1)
        ),
    )


def each_of(values: Sequence[str], rows_of: Callable[[Any], sa.Select[Any]]) -> sa.Select[Any]:
    """PostgreSQL: the rows ``rows_of(value)`` gives for each of ``values``, as one statement in which
    the planner must look every value up on its own (``unnest`` joined to a ``LATERAL`` subquery),
    where a ``value IN (...)`` list lets a planner without statistics take an index for the other
    columns alone and filter every row they match."""
    wanted = (
        sa.func.unnest(sa.cast(sa.bindparam("values", list(values)), postgresql.ARRAY(sa.String)))
        .table_valued("value")
        .render_derived(name="wanted")
    )
    # OFFSET 0 keeps the subquery whole: without a LIMIT or OFFSET the planner pulls it up into a
    # join, and it reads every row the other columns match again.
    found = rows_of(wanted.c.value).offset(0).lateral("found")
    return sa.select(found).select_from(wanted).join(found, sa.true())


#: What a changed (or undeleted) record's update sets, in the order `_upsert_rows` gives them.
_UPDATED_COLUMNS = [
    "payload",
    "content_hash",
    "source_modified_at",
    "last_seen_at",
    "changed_at",
    "deleted_at",
]


def _upsert_rows(connection: Connection, key: StreamKey, rows: Sequence[RawRow], now: datetime) -> PageCounts:
    counts = PageCounts()
    if not rows:
        return counts
    payloads: dict[str, dict[str, Any]] = {}
    hashes: dict[str, str] = {}
    for row in rows:
        payloads[row.source_id], hashes[row.source_id] = storable_with_hash(row.payload)
    existing = _stored_versions(connection, key, [row.source_id for row in rows])
    inserts: list[dict[str, Any]] = []
    updates: list[tuple[Any, ...]] = []  # id, then the values of `_UPDATED_COLUMNS`
    unchanged_ids: list[int] = []
    for row in rows:
        digest = hashes[row.source_id]
        found = existing.get(row.source_id)
        if found is None:
            inserts.append(
                {
                    "source": key.source,
                    "object": key.object,
                    "source_id": row.source_id,
                    "payload": payloads[row.source_id],
                    "content_hash": digest,
                    "source_modified_at": row.modified_at,
                    "first_seen_at": now,
                    "last_seen_at": now,
                    "changed_at": now,
                    "deleted_at": None,
                }
            )
        elif found[1] != digest or found[2] is not None:
            updates.append((found[0], payloads[row.source_id], digest, row.modified_at, now, now, None))
        else:
            unchanged_ids.append(found[0])
    if inserts:
        connection.execute(sa.insert(RawRecord), inserts)
    # One statement per page on PostgreSQL rather than one per record (`bulk_update`).
    bulk_update(connection, RawRecord, ["id"], _UPDATED_COLUMNS, updates)
    for chunk in chunks(unchanged_ids):
        connection.execute(sa.update(RawRecord).where(RawRecord.id.in_(chunk)).values(last_seen_at=now))
    counts.inserted, counts.updated, counts.unchanged = len(inserts), len(updates), len(unchanged_ids)
    return counts


def _mark_deleted(connection: Connection, key: StreamKey, source_ids: Sequence[str], now: datetime) -> int:
    marked = 0
    for chunk in chunks(list(dict.fromkeys(source_ids))):
        result = connection.execute(
            sa.update(RawRecord)
            .where(
                RawRecord.source == key.source,
                RawRecord.object == key.object,
                RawRecord.source_id.in_(chunk),
                RawRecord.deleted_at.is_(None),
            )
            .values(deleted_at=now, changed_at=now)
        )
        marked += result.rowcount
    return marked


def _quarantine(
    connection: Connection, key: StreamKey, bad: Sequence[BadRecord], run_id: str | None, now: datetime
) -> None:
    connection.execute(
        sa.insert(Quarantine),
        [
            {
                "source": key.source,
                "object": key.object,
                "source_id": record.source_id,
                "stage": "extract",
                "reason": record.reason,
                "payload": storable(record.payload) if record.payload is not None else None,
                "run_id": run_id,
                "detected_at": now,
            }
            for record in bad
        ],
    )


def _state_where(key: StreamKey) -> tuple[sa.ColumnElement[bool], ...]:
    return (
        StreamState.source == key.source,
        StreamState.object == key.object,
        StreamState.stream == key.stream,
    )


def _ensure_state(connection: Connection, key: StreamKey) -> None:
    exists = connection.execute(sa.select(StreamState.source).where(*_state_where(key))).first()
    if exists is None:
        connection.execute(
            sa.insert(StreamState).values(source=key.source, object=key.object, stream=key.stream)
        )


def read_cursor(connection: Connection, key: StreamKey) -> dict[str, Any] | None:
    """``key``'s cursor as the caller's transaction sees it (None: none stored)."""
    cursor: dict[str, Any] | None = connection.execute(
        sa.select(StreamState.cursor).where(*_state_where(key))
    ).scalar_one_or_none()
    return cursor


def store_cursor(connection: Connection, key: StreamKey, cursor: dict[str, Any], now: datetime) -> None:
    """Write ``key``'s cursor inside the caller's transaction (so it commits with the rows it covers).

    One statement per page once the stream has its row (the insert only the first time)."""
    moved = connection.execute(
        sa.update(StreamState).where(*_state_where(key)).values(cursor=cursor, cursor_updated_at=now)
    )
    if moved.rowcount == 0:
        connection.execute(
            sa.insert(StreamState).values(
                source=key.source, object=key.object, stream=key.stream, cursor=cursor, cursor_updated_at=now
            )
        )
