"""Golden contacts kept current from the raw records that changed since the last resolution.

`build_canonical` re-resolves every record, so its cost follows the warehouse. This re-resolves only the
neighbourhood the changes can reach (`models.identity.resolution.resolve_incremental` says why that is exact),
recomputes survivorship for the contacts in it, and writes only their rows, so a run costs what changed.
It gives what a full rebuild from the same state would give: the same contacts with the same ids and
fields, the same record links, lineage and suppressed identifiers, and the same merges and splits.

Where the last run stopped is a watermark in `stream_state` (canonical / contacts / resolve): the largest
`raw_records.changed_at` it read, written in the same transaction as its results, so a killed run leaves
the previous results and watermark together. The watermark is a time read, never "now": a record written
while a run works carries a later changed_at and is picked up by the next run.

Many changes (the sync after a full sync that wrote reads back most of the warehouse) are resolved in
slices, so the step's memory follows the slice, not the change: the changed records are first listed by
key and changed_at alone, ordered by changed_at then id, and cut every ``RESOLVE_SLICE_RECORDS``, never
between two records of the same changed_at. Each slice loads its payloads, resolves as above against
the state the slices before it committed, and writes its results with its watermark (its latest
changed_at) in one transaction; a stop between slices keeps those committed, and the next run starts
after them. Each slice is exact against that state, so the run ends with what a full rebuild gives for
which records form a contact and what it holds. The contact ids and the merges recorded are those of
running the step after each slice: when changes in two slices move the same contact's links (merged
by one, split by the next), its ids take that path, as they would with runs that often. A slice holds
the whole neighbourhood of its records (components cannot be cut), so one record linked to a huge
contact is still one large slice.

What each run re-resolved (its records, and the identifiers its changed records held before) goes to
`canonical_changes` in the same transaction (`models.identity.changes`), so activity and the blocking
checks follow only the contacts it touched; a full rebuild marks itself there before it starts. A run
in several slices writes a set of rows per slice, all under its run id, so both see every slice.

Limits, honestly:
- Only record changes are followed. A change of the linking rules (blocklists, record limit, household
  splitting, nicknames) is noticed by a fingerprint stored with the watermark and rebuilds in full; a
  change of phone regions or survivorship priorities is not: run with ``full=True`` after one.
- A slice reads its neighbours' payloads as they are now: a neighbour changed in a later slice of the
  same run already shows its new fields (a deleted one, its last ones) until that slice re-resolves it.
- A writer whose transaction commits after a run read the watermark, yet stamped changed_at before it,
  would be skipped; the pipeline runs resolution after extraction, never beside it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import InstrumentedAttribute

from models.identity.canonical import build_canonical, cyclic_gc_paused
from models.identity.changes import prune as prune_changes
from models.identity.changes import record_full_rebuild, record_incremental
from models.identity.contact_ids import ContactIdFactory
from models.identity.identity_store import SqlIdentityStore, values_of_kind
from models.identity.linking import link
from models.identity.own_writes import own_writes_of
from models.identity.phases import (
    CONTACT_OBJECTS,
    SOURCE_COLUMNS,
    CanonicalConfig,
    CanonicalReport,
    aware_utc,
    chosen_points,
    decision_rows,
    extract_contact_records,
    golden_frame,
    insert_rows,
    join_people,
    lineage_frame,
    merge_rows,
    none_for_missing,
    normalise_points,
    suppressed_rows,
    survive_people,
)
from models.identity.resolution import ReadOnceStore, Resolution, resolve_incremental
from models.identity.source_counts import forget as forget_source_counts
from models.identity.source_counts import linked_per_source, store_counted, store_moved
from models.normalise.contact_points import identifiers_of
from models.warehouse.bulk import bulk_insert, rows_frame
from models.warehouse.diff import keyed_changes, replace_differing, replace_multiset, update_rows
from models.warehouse.key_lists import key_in
from models.warehouse.store import StreamKey, keys_changed_since, latest_change, records_by_id, store_cursor
from models.warehouse.tables import (
    Contact,
    ContactFieldLineage,
    ContactIdentifier,
    ContactLinkDecision,
    ContactMerge,
    ContactSource,
    RawRecord,
    StreamState,
    SuppressedIdentifier,
    utcnow,
)
from models.warehouse.waits import wait_for_write_lock, writing

#: Where the watermark of the last resolution lives in stream_state.
WATERMARK = StreamKey("canonical", "contacts", "resolve")

_RAW_COLUMNS = ["record_key", "source", "object", "source_id", "payload"]
_RAW_SELECT = [RawRecord.id, RawRecord.source, RawRecord.object, RawRecord.source_id, RawRecord.payload]

#: Changed records resolved per transaction. A slice holds their payloads, and the payloads and fields
#: of their neighbourhood, so it bounds the step's memory when a run brings many changes (the sync
#: after a full sync that wrote reads back most of the warehouse); a scheduled run is one slice.
RESOLVE_SLICE_RECORDS = 20_000

#: contact_field_lineage's key: one row per contact and field.
_LINEAGE_KEY = ["contact_id", "field"]


def build_canonical_incremental(
    engine: Engine,
    config: CanonicalConfig,
    *,
    run_id: str | None = None,
    full: bool = False,
    checkpoint: Callable[[], None] = lambda: None,
    slice_records: int = RESOLVE_SLICE_RECORDS,
) -> CanonicalReport:
    """Bring the golden contacts up to date with the raw records changed since the last run.

    With no watermark yet, or with ``full=True``, this is `build_canonical` followed by storing the
    watermark. Otherwise the changes are resolved in slices of about ``slice_records`` (see the
    module's docstring), each committed with its watermark; `records` in the report counts the raw rows
    the slices loaded (the changes and their neighbourhoods); `contacts` and `suppressed_identifiers`
    are totals after the run, the other counts describe what this run changed. ``checkpoint`` is called
    between phases and between slices and may raise to abandon the run (a sync asked to stop): the
    slices committed stay, with their watermark, and the next run goes on from there.
    """
    with writing(engine, checkpoint) as connection:
        prune_changes(connection)
    if not full:
        with engine.connect() as connection:
            watermark, rules = _watermark(connection)
        if watermark is not None and rules == config.fingerprint():
            return _resolve_in_slices(engine, config, watermark, run_id, checkpoint, slice_records)
    return _rebuild(engine, config, run_id, checkpoint)


def _rebuild(
    engine: Engine, config: CanonicalConfig, run_id: str | None, checkpoint: Callable[[], None]
) -> CanonicalReport:
    """A full rebuild, then its watermark: read before the rebuild reads, so nothing it missed is skipped."""
    with engine.connect() as connection:
        # Over every record of the contact sources, as `keys_changed_since` reads them.
        latest = latest_change(connection, (source for source, _ in CONTACT_OBJECTS))
    with writing(engine, checkpoint) as connection:
        record_full_rebuild(connection, run_id)
        forget_source_counts(connection)
    report = build_canonical(engine, config, run_id=run_id, checkpoint=checkpoint)
    with writing(engine, checkpoint) as connection:
        store_counted(connection)
        if latest is not None:
            _store_watermark(connection, latest, config)
    return report


def slice_ends(changed_at: npt.NDArray[np.datetime64], size: int) -> list[int]:
    """Where each slice of the changes (ordered by changed_at) ends: after about ``size`` records, moved
    on past every record of the same changed_at, so a slice's watermark (its latest changed_at) leaves
    none of them for the next run to skip. A slice is longer than ``size`` only by such ties."""
    ends: list[int] = []
    start, total = 0, len(changed_at)
    while start < total:
        end = min(start + max(size, 1), total)
        end = int(np.searchsorted(changed_at, changed_at[end - 1], side="right"))
        ends.append(end)
        start = end
    return ends


def _resolve_in_slices(  # noqa: PLR0917 - the run's settings, passed on to each slice
    engine: Engine,
    config: CanonicalConfig,
    watermark: datetime,
    run_id: str | None,
    checkpoint: Callable[[], None],
    slice_records: int,
) -> CanonicalReport:
    """The changes after ``watermark``, listed by key alone, resolved slice after slice: each slice is
    one transaction with its watermark, and a stop between slices keeps those committed."""
    with engine.connect() as connection:
        changed = keys_changed_since(connection, watermark, CONTACT_OBJECTS)
    report = CanonicalReport()
    if not len(changed.ids):
        with writing(engine, checkpoint) as connection:
            record_incremental(connection, run_id, np.array([], dtype=np.int64), _no_identifiers())
            return _with_totals(connection, report)
    start = 0
    for end in slice_ends(changed.changed_at, slice_records):
        checkpoint()
        with engine.begin() as connection, cyclic_gc_paused():
            _resolve_slice(
                connection,
                config,
                _Slice(changed.ids[start:end], aware_utc(changed.changed_at[end - 1])),
                run_id,
                checkpoint=checkpoint,
                report=report,
            )
        start = end
    with engine.connect() as connection:
        return _with_totals(connection, report)


@dataclass(frozen=True)
class _Slice:
    """Changed records resolved in one transaction, and the watermark stored with their results."""

    keys: npt.NDArray[np.int64]
    watermark: datetime


def _resolve_slice(
    connection: Connection,
    config: CanonicalConfig,
    part: _Slice,
    run_id: str | None,
    *,
    checkpoint: Callable[[], None],
    report: CanonicalReport,
) -> None:
    """Resolve one slice's changes against the state the slices before it committed, write the results
    and the slice's watermark, and add what it did to ``report``."""
    now = utcnow()
    changed = _load_changed(connection, part.keys)
    report.records += len(changed)
    checkpoint()
    is_deleted = changed["deleted_at"].notna().to_numpy()
    live = changed.loc[~is_deleted, _RAW_COLUMNS]
    updated = live["record_key"].to_numpy(dtype=np.int64)
    deleted = changed.loc[is_deleted, "record_key"].to_numpy(dtype=np.int64)
    touched = np.union1d(updated, deleted)

    fields, points, issues = (
        extract_contact_records(live, config.regions, config.mappings, report.unreadable_custom)
        if len(live)
        else _no_fields()
    )
    report.field_issues += issues
    normalised = normalise_points(points)
    report.unusable_values += int(normalised["value"].isna().sum())
    now_held = identifiers_of(normalised)
    store = SqlIdentityStore(connection)
    # The state before this slice's writes, each record and identifier read once (the writes below
    # read through ``store`` itself).
    reads = ReadOnceStore(store)
    held_before = reads.identifiers_of(touched)
    checkpoint()
    resolution = resolve_incremental(
        now_held,
        updated,
        deleted,
        store=reads,
        config=config.identity,
        id_factory=ContactIdFactory.after(_latest_contact_id(connection)),
        changed_names=fields.reindex(columns=["record_key", "first_name"]),
    )

    neighbours = np.setdiff1d(resolution.assignment["record_key"].to_numpy(dtype=np.int64), updated)
    neighbour_raw = _load_records(connection, neighbours)
    report.records += len(neighbour_raw)
    if len(neighbour_raw):
        fields = pd.concat(
            [fields, extract_contact_records(neighbour_raw, config.regions, config.mappings)[0]],
            ignore_index=True,
        )
    chosen = pd.concat(
        [chosen_points(normalised, config.identity), _stored_primaries(connection, neighbours)],
        ignore_index=True,
    )
    people = join_people(fields, chosen, resolution.assignment)
    writes = own_writes_of(connection, people)
    golden = survive_people(people, writes, config, pd.concat([live, neighbour_raw], ignore_index=True))
    merges = resolution.merges
    merged_away = merges.loc[merges["kind"] == "merge", "old_contact_id"].tolist()
    gone = sorted({*merged_away, *resolution.retired_contact_ids})
    in_scope = sorted({*resolution.assignment["contact_id"].tolist(), *gone})
    old_contacts = _load_contacts(connection, in_scope)
    _count_moves(report, resolution, merged_away)

    scope = np.union1d(resolution.assignment["record_key"].to_numpy(dtype=np.int64), deleted)
    wait_for_write_lock(connection, checkpoint)
    linked_before = linked_per_source(connection, scope.tolist())
    _replace_identifiers(connection, touched, normalised)
    _delete_where_in(connection, ContactSource.raw_record_id, deleted)
    _write_contacts(connection, golden_frame(golden.contacts, old_contacts, now))
    _upsert_sources(connection, people)
    replace_differing(
        connection,
        ContactFieldLineage,
        _LINEAGE_KEY,
        lineage_frame(golden.lineage),
        [key_in(connection, ContactFieldLineage.contact_id, in_scope)],
    )
    _delete_where_in(connection, Contact.contact_id, gone)
    insert_rows(connection, ContactMerge, merge_rows(merges, now, run_id))
    _refresh_suppressed(connection, store, pd.concat([held_before, now_held]), config, now)
    _replace_decisions(connection, resolution, deleted, now)
    record_incremental(connection, run_id, scope, held_before)
    store_moved(connection, linked_before, linked_per_source(connection, scope.tolist()))
    _store_watermark(connection, part.watermark, config)


def _count_moves(report: CanonicalReport, resolution: Resolution, merged_away: list[str]) -> None:
    """Add one slice's new contacts, merges, splits and retired contacts to the run's counts."""
    report.new_contacts += len(resolution.new_contact_ids)
    report.merges += len(merged_away)
    report.splits += int((resolution.merges["kind"] == "split").sum())
    report.retired += len(resolution.retired_contact_ids)


def _replace_decisions(
    connection: Connection, resolution: Resolution, deleted: npt.NDArray[np.int64], now: datetime
) -> None:
    """The refused links of the records in scope, rewritten: the scope holds whole linked groups, so
    every decision touching one of its records is decided again inside it."""
    scope = np.union1d(resolution.assignment["record_key"].to_numpy(dtype=np.int64), deleted)
    _delete_where_in(connection, ContactLinkDecision.raw_record_id_a, scope)
    _delete_where_in(connection, ContactLinkDecision.raw_record_id_b, scope)
    insert_rows(connection, ContactLinkDecision, decision_rows(resolution.refused, now))


def _watermark(connection: Connection) -> tuple[datetime | None, str | None]:
    """The last run's watermark and the fingerprint of the linking rules it resolved with."""
    cursor = connection.execute(
        sa.select(StreamState.cursor).where(
            StreamState.source == WATERMARK.source,
            StreamState.object == WATERMARK.object,
            StreamState.stream == WATERMARK.stream,
        )
    ).scalar_one_or_none()
    if not cursor or not cursor.get("changed_at"):
        return None, None
    return datetime.fromisoformat(str(cursor["changed_at"])), cursor.get("rules")


def _store_watermark(connection: Connection, changed_at: datetime, config: CanonicalConfig) -> None:
    cursor = {"changed_at": changed_at.isoformat(), "rules": config.fingerprint()}
    store_cursor(connection, WATERMARK, cursor, utcnow())


def _load_changed(connection: Connection, record_keys: npt.NDArray[np.int64]) -> pd.DataFrame:
    """The changed contact records ``record_keys`` as they are now, deleted ones included."""
    rows = records_by_id(connection, record_keys, [*_RAW_SELECT, RawRecord.deleted_at])
    return rows_frame(rows, [*_RAW_COLUMNS, "deleted_at"])


def _load_records(connection: Connection, record_keys: npt.NDArray[np.int64]) -> pd.DataFrame:
    """The neighbours `record_keys` as `models.identity.phases.extract_contact_records` takes them.

    Deleted ones too: a neighbour is linked in the stored state, so one marked deleted is a change a
    later slice of the run resolves; until then it stays with its contact as it last was, and is not
    left behind, unlinked, when its contact merges."""
    return rows_frame(records_by_id(connection, record_keys, _RAW_SELECT), _RAW_COLUMNS)


def _stored_primaries(connection: Connection, record_keys: npt.NDArray[np.int64]) -> pd.DataFrame:
    """record_key, email, phone of unchanged records as the last run chose them: their contact points did
    not change, so normalising them again would give the same values."""
    rows = connection.execute(
        sa.select(ContactSource.raw_record_id, ContactSource.email, ContactSource.phone).where(
            key_in(connection, ContactSource.raw_record_id, record_keys)
        )
    ).all()
    frame = rows_frame(rows, ["record_key", "email", "phone"])
    return frame.astype({"record_key": np.int64, "email": object, "phone": object})


def _no_fields() -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """What `extract_contact_records` gives for no records, with the columns the steps after it join on."""
    points = pd.DataFrame(columns=["record_key", "kind", "field", "position", "raw", "region"])
    return pd.DataFrame(columns=["record_key"]), points.astype({"record_key": np.int64}), 0


def _no_identifiers() -> pd.DataFrame:
    return pd.DataFrame(columns=["record_key", "kind", "value"])


def _latest_contact_id(connection: Connection) -> str | None:
    """The largest id ever minted, merged-away ones included, so none is minted twice."""
    ids = sa.union_all(
        sa.select(sa.func.max(Contact.contact_id).label("id")),
        sa.select(sa.func.max(ContactMerge.old_contact_id).label("id")),
        sa.select(sa.func.max(ContactMerge.new_contact_id).label("id")),
    ).subquery()
    return cast(str | None, connection.execute(sa.select(sa.func.max(ids.c.id))).scalar_one_or_none())


def _load_contacts(connection: Connection, contact_ids: list[str]) -> pd.DataFrame:
    columns = [column.name for column in Contact.__table__.columns]
    rows = connection.execute(
        sa.select(Contact.__table__).where(key_in(connection, Contact.contact_id, contact_ids))
    ).all()
    return rows_frame(rows, columns).astype({"contact_id": object})


def _delete_where_in(
    connection: Connection, column: InstrumentedAttribute[Any], keys: npt.NDArray[np.int64] | list[str]
) -> None:
    if len(keys):
        connection.execute(sa.delete(column.class_).where(key_in(connection, column, keys)))


def _replace_identifiers(
    connection: Connection, touched: npt.NDArray[np.int64], normalised: pd.DataFrame
) -> None:
    """The contact points of the changed records: only the rows that differ from the stored ones are
    deleted and inserted, as an edit of one field leaves a record's other points as they were."""
    rows = normalised.loc[:, ["record_key", "kind", "field", "raw", "value", "reason"]].rename(
        columns={"record_key": "raw_record_id", "raw": "raw_value"}
    )
    within = [key_in(connection, ContactIdentifier.raw_record_id, touched)]
    replace_multiset(connection, ContactIdentifier, none_for_missing(rows), within)


def _write_contacts(connection: Connection, rows: pd.DataFrame) -> None:
    """New contacts inserted, known ones updated in place (so activity linked to them stays linked),
    and only where a value differs: most contacts in scope are neighbours of a change, unchanged."""
    within = [key_in(connection, Contact.contact_id, rows["contact_id"])]
    changes = keyed_changes(connection, Contact, rows, ["contact_id"], within)
    bulk_insert(connection, Contact, changes.added)
    update_rows(connection, Contact, ["contact_id"], changes.changed, changes.differing)


def _upsert_sources(connection: Connection, people: pd.DataFrame) -> None:
    """contact_sources rows of the records in scope: updated where they exist and differ (their ids
    stay), else added; the neighbours' rows mostly come out as they were and are left alone."""
    if people.empty:
        return
    rows = none_for_missing(people.loc[:, list(SOURCE_COLUMNS)]).rename(
        columns={"record_key": "raw_record_id", "modified_at": "updated_at"}
    )
    rows["raw_record_id"] = [int(key) for key in rows["raw_record_id"]]
    # An object Series: a list of datetimes and None would become a datetime column with NaT for None.
    rows["updated_at"] = pd.Series(
        [None if value is None else aware_utc(value) for value in rows["updated_at"]],
        index=rows.index,
        dtype=object,
    )
    within = [key_in(connection, ContactSource.raw_record_id, rows["raw_record_id"])]
    changes = keyed_changes(connection, ContactSource, rows, ["raw_record_id"], within)
    bulk_insert(connection, ContactSource, changes.added)
    update_rows(connection, ContactSource, ["raw_record_id"], changes.changed, changes.differing)


def _refresh_suppressed(
    connection: Connection,
    store: SqlIdentityStore,
    touched_identifiers: pd.DataFrame,
    config: CanonicalConfig,
    now: datetime,
) -> None:
    """Rewrite the suppressed_identifiers rows of every identifier the changed records held before or
    hold now: only their record counts and holders moved. Run after contact_identifiers is written, so
    counts and holders are read whole, as a full rebuild sees them."""
    identifiers = touched_identifiers.loc[:, ["kind", "value"]].drop_duplicates()
    for kind, values in values_of_kind(identifiers):
        connection.execute(
            sa.delete(SuppressedIdentifier).where(
                SuppressedIdentifier.kind == kind, key_in(connection, SuppressedIdentifier.value, values)
            )
        )
    holders = store.holders_of(identifiers)
    if holders.empty:
        return
    suppressed = link(holders["record_key"].to_numpy(dtype=np.int64), holders, config.identity).suppressed
    insert_rows(connection, SuppressedIdentifier, suppressed_rows(suppressed, now))


def _with_totals(connection: Connection, report: CanonicalReport) -> CanonicalReport:
    report.contacts = connection.execute(sa.select(sa.func.count()).select_from(Contact)).scalar_one()
    report.suppressed_identifiers = connection.execute(
        sa.select(sa.func.count()).select_from(SuppressedIdentifier)
    ).scalar_one()
    return report
