"""The warehouse side of identity resolution: raw records in, golden contacts and their history out.

The phases every build shares (read, join and survive, write rows) are in ``phases``; this module
reads every live contact record from the warehouse, runs them, and writes the results back in one
transaction, so a reader sees either the previous run's contacts or this run's, never a mixture.

Memory: payloads are the bulk of a record, so they are read in slices of ``LOAD_CHUNK`` records and
dropped as soon as each slice is parsed into fields and normalised contact points; what the payloads
of records our own reverse sync wrote show of those writes (survivorship's evidence) is judged in the
same slice, so neither those payloads nor the ledger's writes are held past it.

Cores: reading and parsing is most of a rebuild's time and needs no slice but its own, so from
`RANGES_FOR_WORKERS` slices on, worker processes read them, one per CPU
(`models.warehouse.worker_processes`), and send back only what the rebuild keeps of each.

The large result tables go to the database with ``models.warehouse.bulk`` (``COPY`` on PostgreSQL,
large ``executemany`` batches on SQLite) straight from their frames, never as one dict per row.

Time: most rows of a rebuild come out as they were, so only the rows that differ from the stored ones
are written (`models.identity.rebuild_write`): deleting every row and inserting it again, each index
updated twice, used to be the larger part of the rebuild. The stored rows are read inside the write
transaction, a slice at a time, so what is compared is what is replaced.

Each run re-resolves every live contact record (a full rebuild that reuses the previous ids by
greatest overlap). Ids therefore stay stable, merges and splits are recorded, and a killed run leaves
the previous state untouched.
"""

import ctypes
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from models.identity.consent import statements
from models.identity.contact_ids import ContactIdFactory
from models.identity.own_writes import judge_own_writes, own_writes_of, written_record_count
from models.identity.payload_keys import partial_columns, partial_keys, partial_payloads
from models.identity.phases import (
    CONTACT_OBJECTS,
    SOURCE_COLUMNS,
    UNREADABLE_SAID,
    CanonicalConfig,
    CanonicalReport,
    aware_utc_values,
    chosen_points,
    extract_contact_records,
    join_people,
    normalise_points,
    survive_people,
)
from models.identity.rebuild_write import write_rebuild
from models.identity.resolution import resolve
from models.normalise.contact_points import identifiers_of
from models.warehouse.bulk import read_frame
from models.warehouse.db import open_warehouse
from models.warehouse.json_text import loads as json_loads
from models.warehouse.store import chunks
from models.warehouse.tables import (
    Contact,
    ContactFieldLineage,
    ContactIdentifier,
    ContactLinkDecision,
    ContactMerge,
    ContactSource,
    RawRecord,
    SuppressedIdentifier,
    utcnow,
)
from models.warehouse.waits import writing
from models.warehouse.worker_processes import available_processes, map_in_processes

#: Raw records read, parsed and dropped per slice: a slice's payloads are the only ones held at a time.
LOAD_CHUNK = 20_000

#: From this many ranges of ``LOAD_CHUNK`` records on, a rebuild reads them in worker processes: a
#: range takes 0.7 to 1.0 s of CPU here, and at five ranges (100,000 records) two workers, which
#: must start and import the code first, took 3.9 s against 3.6 s for one core alone.
RANGES_FOR_WORKERS = 8


@dataclass
class _Read:
    """What the rebuild keeps of every live contact record once its payload is parsed and dropped."""

    keys: npt.NDArray[np.int64]
    records: pd.DataFrame
    """The fields of each record, with what its payload says of our writes (`JUDGED_COLUMNS`)."""
    points: pd.DataFrame
    issues: int
    consent: pd.DataFrame
    """Every record's consent statements (`models.identity.consent.statements`), read with its slice."""


def _read_records(
    engine: Engine,
    config: CanonicalConfig,
    unreadable: list[str],
    *,
    expected: int = 0,
    checkpoint: Callable[[], None] = lambda: None,
) -> _Read:
    """Every live contact record, read in ranges of about ``LOAD_CHUNK`` records by id: each range's
    payloads become fields, normalised contact points, consent statements and the judgement of our
    writes to its records (`_with_judged_writes`), and are dropped, so the payloads of the whole
    warehouse are never in memory at once, and neither are our writes. Only the keys the readers
    look at are fetched (`models.identity.payload_keys`), and the records we wrote a second time
    whole, unless those are many of the ``expected`` records (`cut_payloads`).

    From `RANGES_FOR_WORKERS` ranges on, worker processes read them, as many as there are CPUs
    (`models.warehouse.worker_processes`), and they are put together here in id order, so the
    result is the one reading them in turn gives; a stop (``checkpoint``) is looked at as each
    range comes back. Each range is read in a transaction of its own: a record that changes
    meanwhile is read as it was or as it is, and resolved again by the next run either way, since
    the rebuild's watermark was read before it began (`models.identity.canonical_incremental`)."""
    with engine.connect() as connection:
        partial = (
            partial_keys(CONTACT_OBJECTS, config.mappings, connection.dialect.name)
            if cut_payloads(written_record_count(connection), expected)
            else None
        )
        ranges = record_ranges(connection)
    read_range: Callable[[tuple[int, int | None]], _Part]
    processes = available_processes() if len(ranges) >= RANGES_FOR_WORKERS else 1
    if processes > 1:
        url = engine.url.render_as_string(hide_password=False)
        read_range = _RangeReader(url, config, partial, LOAD_CHUNK)
    else:

        def read_range(bounds: tuple[int, int | None]) -> _Part:
            with engine.connect() as connection:
                return _read_range(connection, config, partial, bounds, LOAD_CHUNK)

    parts: list[_Part] = []
    for part in map_in_processes(read_range, ranges, processes=processes):
        if len(part.keys):
            parts.append(part)
        unreadable.extend(part.unreadable[: UNREADABLE_SAID - len(unreadable)])
        checkpoint()
    if not parts:
        empty = pd.DataFrame(columns=_RAW_COLUMNS)
        return _Read(np.zeros(0, dtype=np.int64), pd.DataFrame(), pd.DataFrame(), 0, statements(empty))
    return _Read(
        keys=np.concatenate([part.keys for part in parts]),
        records=pd.concat([part.records for part in parts], ignore_index=True),
        points=pd.concat([part.points for part in parts], ignore_index=True),
        issues=sum(part.issues for part in parts),
        consent=pd.concat([part.consent for part in parts], ignore_index=True),
    )


@dataclass
class _Part:
    """What one range of records gives the rebuild (`_read_range`), pickled back from its worker."""

    keys: npt.NDArray[np.int64]
    records: pd.DataFrame
    points: pd.DataFrame
    """Normalised (`normalise_points`)."""
    issues: int
    consent: pd.DataFrame
    unreadable: list[str]


@dataclass(frozen=True)
class _RangeReader:
    """`_read_range` in a worker process, on that process's own engine for ``url`` (which may hold
    the database's password, so it is left out of the reader's repr)."""

    url: str = field(repr=False)
    config: CanonicalConfig
    partial: dict[tuple[str, str], tuple[str, ...]] | None
    slice_records: int

    def __call__(self, bounds: tuple[int, int | None]) -> _Part:
        with open_warehouse(self.url).connect() as connection:
            return _read_range(connection, self.config, self.partial, bounds, self.slice_records)


def _read_range(
    connection: Connection,
    config: CanonicalConfig,
    partial: dict[tuple[str, str], tuple[str, ...]] | None,
    bounds: tuple[int, int | None],
    slice_records: int,
) -> _Part:
    """The live contact records of ids ``bounds`` (``[low, high)``, high None: no end), a slice of
    ``slice_records`` at a time."""
    keys: list[npt.NDArray[np.int64]] = []
    records: list[pd.DataFrame] = []
    points: list[pd.DataFrame] = []
    consent: list[pd.DataFrame] = []
    unreadable: list[str] = []
    low, high = bounds
    issues, last = 0, low - 1
    while True:
        raw = _slice(connection, last, partial, high, slice_records)
        if raw.empty:
            break
        last = int(raw["record_key"].iloc[-1])
        found, found_points, found_issues = extract_contact_records(
            raw, config.regions, config.mappings, unreadable
        )
        keys.append(raw["record_key"].to_numpy(dtype=np.int64))
        records.append(_with_judged_writes(connection, found, raw, whole=partial is None))
        points.append(normalise_points(found_points))
        issues += found_issues
        consent.append(statements(raw))
        if len(raw) < slice_records:
            break
    return _Part(
        keys=np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64),
        records=pd.concat(records, ignore_index=True) if records else pd.DataFrame(),
        points=pd.concat(points, ignore_index=True) if points else pd.DataFrame(),
        issues=issues,
        consent=pd.concat(consent, ignore_index=True) if consent else statements(raw),
        unreadable=unreadable,
    )


def record_ranges(connection: Connection) -> list[tuple[int, int | None]]:
    """Ranges ``[low, high)`` of raw record ids (the last open) that hold about ``LOAD_CHUNK``
    contact records each, in id order, cut from the ids of every contact record, deleted ones too:
    read from the (source, object, source_id) index alone, those cost a fraction of the payloads."""
    contacts = (sa.and_(RawRecord.source == s, RawRecord.object == o) for s, o in CONTACT_OBJECTS)
    found = connection.execute(sa.select(RawRecord.id).where(sa.or_(*contacts))).scalars()
    ids = np.sort(np.fromiter(found, dtype=np.int64))
    lows = [int(low) for low in ids[::LOAD_CHUNK]]
    return list(zip(lows, [*lows[1:], None], strict=True)) if lows else []


def _with_judged_writes(
    connection: Connection, found: pd.DataFrame, raw: pd.DataFrame, *, whole: bool
) -> pd.DataFrame:
    """A slice's records (``found``) with `JUDGED_COLUMNS`, from the ledger's writes to them and the
    payloads of those we wrote: the ``raw`` ones when ``whole``, else read again whole (the cut ones
    lack the fields we sent)."""
    writes = own_writes_of(connection, found)
    judged = found.loc[:, ["source", "object", "source_id", "modified_at"]]
    if len(writes):
        key = ["source", "object", "source_id"]
        ours = pd.MultiIndex.from_frame(writes.loc[:, key].astype(str))
        mine = pd.MultiIndex.from_frame(judged.loc[:, key].astype(str)).isin(ours)
        mine_keys = found.loc[mine, "record_key"].to_numpy(dtype=np.int64)
        source = raw.loc[:, ["record_key", "payload"]] if whole else _whole(connection, mine_keys)
        by_key = pd.Series(source["payload"].to_numpy(dtype=object), index=source["record_key"].to_numpy())
        payloads = np.full(len(found), None, dtype=object)
        payloads[mine] = by_key.reindex(mine_keys).to_numpy(dtype=object)
        judged = judged.assign(payload=payloads)
    return pd.concat([found, judge_own_writes(judged, writes)], axis=1)


def cut_payloads(written: int, expected: int) -> bool:
    """Whether to read the keys the readers look at rather than whole payloads, given how many records
    we wrote (each then read twice, cut and whole) among the ``expected`` ones the last run resolved.

    Measured at 100k records, cutting saves about 14 µs of CPU a record on SQLite and 20 on PostgreSQL,
    and reading one record again whole costs about 16 and 20: past half the records written, most
    of the saving is gone and the single whole read is kept."""
    return 2 * written <= expected or written == 0


_RAW_COLUMNS = ["record_key", "source", "object", "source_id", "payload"]


def slice_query(
    last: int | None, below: int | None = None, limit: int | None = None
) -> sa.Select[int, str, str, str]:
    """The ids, sources, objects and source ids of the next ``LOAD_CHUNK`` live contact records after
    id ``last`` (and below id ``below``, when given), in id order; ``limit`` instead of ``LOAD_CHUNK``.

    ``source || ''`` keeps the planner off the (source, object, source_id) index: through it every
    slice read all contact records again and sorted them by id (0.8 s a slice at 1M records, most of
    the rebuild's reading); the primary key's range reads each record once over all slices."""
    unindexed = RawRecord.source.concat("")
    condition = sa.or_(*(sa.and_(unindexed == s, RawRecord.object == o) for s, o in CONTACT_OBJECTS))
    query = (
        sa.select(RawRecord.id, RawRecord.source, RawRecord.object, RawRecord.source_id)
        .where(condition, RawRecord.deleted_at.is_(None))
        .order_by(RawRecord.id)
        .limit(limit or LOAD_CHUNK)
    )
    if below is not None:
        query = query.where(RawRecord.id < below)
    return query if last is None else query.where(RawRecord.id > last)


def _slice(
    connection: Connection,
    last: int | None,
    partial: dict[tuple[str, str], tuple[str, ...]] | None,
    below: int | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """The next ``LOAD_CHUNK`` (or ``limit``) live contact records after id ``last`` (and below ``below``):
    record_key, source, object, source_id and payload, the partial payload
    (`models.identity.payload_keys`) when ``partial`` names the keys, else the whole one. A SQLite
    payload that is not strict JSON (``NaN``) fails the cut, and its slice is read whole."""
    query = slice_query(last, below, limit)
    if partial is not None:
        dialect = connection.dialect.name
        arrays, present = partial_columns(
            RawRecord.payload, RawRecord.source, RawRecord.object, partial, dialect
        )
        try:
            raw = read_frame(connection, query.add_columns(arrays, present), [*_RAW_COLUMNS, "present"])
        except sa.exc.OperationalError as error:
            if dialect != "sqlite" or "malformed JSON" not in str(error):
                raise
        else:
            raw["payload"] = pd.Series(
                partial_payloads(raw["payload"], raw["present"], raw["source"], raw["object"], partial),
                dtype=object,
            )
            return raw.drop(columns="present")
    return _parsed(connection, read_frame(connection, query.add_columns(_payload(connection)), _RAW_COLUMNS))


def _payload(connection: Connection) -> Any:
    """The payload column: as text on SQLite, parsed by `_parsed` in one pass rather than through a
    processor per row."""
    if connection.dialect.name == "sqlite":
        return sa.type_coerce(RawRecord.payload, sa.Text)
    return RawRecord.payload


def _parsed(connection: Connection, raw: pd.DataFrame) -> pd.DataFrame:
    if connection.dialect.name == "sqlite":
        raw["payload"] = pd.Series([json_loads(text) for text in raw["payload"]], dtype=object)
    return raw


def _whole(connection: Connection, keys: npt.NDArray[np.int64]) -> pd.DataFrame:
    """record_key, payload (whole) of the records ``keys``."""
    parts = [
        _parsed(
            connection,
            read_frame(
                connection,
                sa.select(RawRecord.id, _payload(connection)).where(
                    RawRecord.id.in_([int(k) for k in chunk])
                ),
                ["record_key", "payload"],
            ),
        )
        for chunk in chunks(keys.tolist())
    ]
    if not parts:
        return pd.DataFrame(columns=["record_key", "payload"])
    return pd.concat(parts, ignore_index=True).sort_values("record_key", kind="stable").reset_index(drop=True)


def _previous(connection: Connection) -> tuple[pd.DataFrame, str | None]:
    """The last run's assignment and the largest contact id it gave. Its contacts are read at the
    write, a slice at a time, for their created_at and to tell which changed (`write_rebuild`)."""
    assignment = read_frame(
        connection,
        sa.select(ContactSource.raw_record_id, ContactSource.contact_id).where(
            ContactSource.contact_id.is_not(None)
        ),
        ["record_key", "contact_id"],
    ).astype({"record_key": np.int64, "contact_id": object})
    latest = connection.execute(
        sa.select(sa.func.max(sa.literal_column("id"))).select_from(
            sa.union_all(
                sa.select(Contact.contact_id.label("id")),
                sa.select(ContactMerge.old_contact_id.label("id")),
                sa.select(ContactMerge.new_contact_id.label("id")),
            ).subquery()
        )
    ).scalar_one_or_none()
    return assignment, latest


def _return_freed_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc's ``malloc_trim``), where there is one.

    Reading a slice parses its payloads into many small objects and frees them; glibc keeps the
    freed heap for reuse, so the process kept the size of the read's highest tide through the phases
    after it, with the linking phase's working frames on top: trimmed after the read and after
    normalising, a rebuild at a million records (PostgreSQL, after real pushes) peaks at 1,928 MiB
    rather than 2,058."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to trim, or no way to ask
        return
    libc.malloc_trim(0)


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Python's cycle collector off for the length of a resolution (as it was after it): the full
    rebuild, or each slice of an incremental run; activity's runs and rebuild slices too.

    A slice makes hundreds of thousands of short-lived objects (payloads, rows, frames), so the
    collector runs often, and each full collection walks every object the process holds: the name
    reader's phrase dictionary (`models.normalise.given_names`), the phone metadata and the modules,
    about a million long-lived objects. At 9,000 records in scope that was a fifth of the step's CPU
    (0.45 s), for no garbage: a slice's objects are freed by reference counting as it drops them,
    and its peak memory is the same without the collector. What cycles a slice leaves are collected
    once it has ended. The full rebuild at a million records: 92.1 -> 82.7 s, peak 1,596 -> 1,592 MiB."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def build_canonical(
    engine: Engine,
    config: CanonicalConfig,
    *,
    run_id: str | None = None,
    checkpoint: Callable[[], None] = lambda: None,
) -> CanonicalReport:
    """Resolve every live contact record into golden contacts and write the results in one transaction.

    ``checkpoint`` is called between phases and may raise to abandon the build (a sync asked to stop):
    nothing is written before the last phase, and that one is a single transaction.
    """
    with cyclic_gc_paused():
        return _build(engine, config, run_id, checkpoint)


def _build(
    engine: Engine, config: CanonicalConfig, run_id: str | None, checkpoint: Callable[[], None]
) -> CanonicalReport:
    now = utcnow()
    with engine.connect() as connection:
        previous, latest = _previous(connection)
    unreadable: list[str] = []
    read = _read_records(engine, config, unreadable, expected=len(previous), checkpoint=checkpoint)
    checkpoint()
    keys, records, normalised, said = read.keys, read.records, read.points, read.consent
    report = CanonicalReport(records=len(keys), field_issues=read.issues, unreadable_custom=unreadable)
    del read
    _return_freed_memory()
    if not len(keys):
        with writing(engine, checkpoint) as connection:
            for table in (
                ContactLinkDecision,
                ContactFieldLineage,
                ContactSource,
                ContactIdentifier,
                Contact,
            ):
                connection.execute(sa.delete(table))
            connection.execute(sa.delete(SuppressedIdentifier))
        return report
    report.unusable_values = int(normalised["value"].isna().sum())
    checkpoint()
    resolution = resolve(
        keys,
        identifiers_of(normalised),
        previous,
        config=config.identity,
        id_factory=ContactIdFactory.after(latest),
        names=records.loc[:, ["record_key", "first_name"]],
    )
    del previous
    people = join_people(records, chosen_points(normalised, config.identity), resolution.assignment)
    del records
    golden = survive_people(people, None, config, consent_statements=said)
    merges = resolution.merges
    report.contacts = len(golden.contacts)
    report.new_contacts = len(resolution.new_contact_ids)
    report.merges = int((merges["kind"] == "merge").sum())
    report.splits = int((merges["kind"] == "split").sum())
    report.retired = len(resolution.retired_contact_ids)
    report.suppressed_identifiers = len(resolution.suppressed)
    report.links_refused = len(resolution.refused)

    contacts, lineage = golden.contacts, golden.lineage
    # What the write does not need goes before it reads the stored rows to compare with.
    del golden, said, keys
    source_rows = people.loc[:, list(SOURCE_COLUMNS)].rename(
        columns={"record_key": "raw_record_id", "modified_at": "updated_at"}
    )
    del people
    source_rows["updated_at"] = _utc_or_none(source_rows["updated_at"])
    identifier_rows = normalised.loc[:, ["record_key", "kind", "field", "raw", "value", "reason"]].rename(
        columns={"record_key": "raw_record_id", "raw": "raw_value"}
    )
    del normalised
    # The write needs the merges and what linking refused, not every record's contact again.
    resolution = replace(resolution, assignment=resolution.assignment.iloc[:0])
    # Worker processes compare the stored rows beside this one (`write_rebuild`): what the phases
    # before freed goes back to the system first, not kept for reuse.
    _return_freed_memory()
    checkpoint()
    write_rebuild(
        engine,
        contacts,
        source_rows,
        identifier_rows,
        lineage,
        resolution,
        now,
        run_id,
        checkpoint,
    )
    return report


def _utc_or_none(values: pd.Series) -> pd.Series:
    """Aware UTC datetimes, None where missing (an object Series keeps None as None, not NaT)."""
    return pd.Series(aware_utc_values(values), index=values.index, dtype=object)
