"""Bring the resolution tables to a full rebuild's rows, slice by slice, in one transaction.

Most rows of a rebuild come out as they were, so only the rows that differ from the stored ones are
written (`models.warehouse.diff`). The stored rows are read one slice at a time, beside the new rows
of that slice only: golden contacts (and their lineage) by slices of ``WRITE_SLICE_CONTACTS`` contact
ids, ``contact_sources`` and ``contact_identifiers`` by ranges of raw record ids holding
``WRITE_SLICE_RECORDS`` records. Comparing whole tables at once held every stored row as a tuple
beside the new frames: at a million records that was about 1.2 GiB of the rebuild's 3 GiB peak.

Slices by contact read the stored rows by their ids, bound as one array (`key_in`), not by key
ranges: a range of text compared in SQL follows the database's collation, which need not be the byte
order Python sorts by.
Raw record ids are integers, so their slices are ranges, and every stored row falls in one.

Reading the stored rows back and comparing them is most of the write's time, and no slice's
comparison needs another's, so with many slices worker processes compare the slices ahead while
this process writes the one at hand (`write_rebuild` says why what they read is what it would).
"""

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from models.identity.phases import (
    LINEAGE_COLUMNS,
    decision_rows,
    golden_frame,
    insert_rows,
    merge_rows,
    suppressed_rows,
)
from models.identity.resolution import Resolution
from models.warehouse.bulk import bulk_insert, read_frame
from models.warehouse.db import by_key_only, open_warehouse
from models.warehouse.diff import (
    apply_keyed,
    apply_multiset,
    delete_keys,
    keyed_changes,
    keyed_changes_from,
    slice_positions,
    unkeyed_changes,
    update_rows,
)
from models.warehouse.key_lists import key_in
from models.warehouse.tables import (
    Contact,
    ContactFieldLineage,
    ContactIdentifier,
    ContactLinkDecision,
    ContactMerge,
    ContactSource,
    SuppressedIdentifier,
)
from models.warehouse.waits import writing
from models.warehouse.worker_processes import available_processes, map_in_processes

#: Golden contacts compared and written at a time, with their lineage (about eight rows each).
WRITE_SLICE_CONTACTS = 10_000

#: Raw records whose ``contact_sources`` and ``contact_identifiers`` rows are compared at a time.
WRITE_SLICE_RECORDS = 50_000

#: contact_field_lineage's key: one row per contact and field.
_LINEAGE_KEY = ["contact_id", "field"]


def write_rebuild(  # noqa: PLR0917 - the rows of one rebuild, each going to its table
    engine: Engine,
    contacts: pd.DataFrame,
    sources: pd.DataFrame,
    identifiers: pd.DataFrame,
    lineage: pd.DataFrame,
    resolution: Resolution,
    now: datetime,
    run_id: str | None,
    checkpoint: Callable[[], None],
) -> None:
    """Bring every resolution table to the new rows in one transaction, writing only the rows that
    differ from the stored ones (``contacts``: the golden contacts, without their times); waiting
    for the write lock gives way to ``checkpoint`` (a stop).

    The order keeps every foreign key satisfied: contacts are added and updated first, then records
    move to their new contacts and lineage is replaced, and only then do the contacts left without
    records go (their lineage first, their activity unlinked by the key's ``SET NULL``).

    From `SLICES_FOR_WORKERS` slices on (and with contacts stored), worker processes read the
    stored rows of the slices ahead and compare them while this process writes the differences of
    the slice at hand (`models.warehouse.worker_processes`). They read what was committed before
    this transaction, which holds the warehouse's write lock: the rows this process reads in it,
    for no slice's rows are written before that slice's comparison."""
    lineage = lineage.loc[:, list(LINEAGE_COLUMNS)]
    with writing(engine, checkpoint) as connection:
        by_key_only(connection)
        stored_ids = set(connection.execute(sa.select(Contact.contact_id)).scalars())
        new_ids = contacts["contact_id"].astype(object).tolist()
        gone = sorted(stored_ids.difference(new_ids))
        # A first build compares with empty tables: nothing for workers to read, and every row
        # would travel to them and back as added.
        first = not stored_ids
        del stored_ids
        count, pieces = _pieces(contacts, sources, identifiers, lineage, new_ids, now)
        workers = available_processes() if count >= SLICES_FOR_WORKERS and not first else 1
        for piece, changes in _compared(engine, connection, pieces, processes=workers):
            _apply(connection, piece, changes)
            checkpoint()
        delete_keys(connection, ContactFieldLineage, ["contact_id"], [(contact_id,) for contact_id in gone])
        delete_keys(connection, Contact, ["contact_id"], [(contact_id,) for contact_id in gone])
        insert_rows(connection, ContactMerge, merge_rows(resolution.merges, now, run_id))
        connection.execute(sa.delete(SuppressedIdentifier))
        insert_rows(connection, SuppressedIdentifier, suppressed_rows(resolution.suppressed, now))
        connection.execute(sa.delete(ContactLinkDecision))
        insert_rows(connection, ContactLinkDecision, decision_rows(resolution.refused, now))


#: From this many slices to compare (contacts, ranges of records, lineage: 128 at a million
#: records), worker processes compare them: a slice's comparison takes about 0.3 s of CPU there.
SLICES_FOR_WORKERS = 16

Table = Literal["contacts", "sources", "identifiers", "lineage"]


@dataclass(frozen=True)
class _Piece:
    """One slice of one table: its new rows, and which stored rows it covers: contacts ``ids``
    (contacts, lineage) or the raw record ids ``[low, high)`` (sources, identifiers; None: open)."""

    table: Table
    new: pd.DataFrame
    ids: tuple[Any, ...] = ()
    low: int | None = None
    high: int | None = None
    now: datetime | None = None
    """Contacts: the time the rebuild gives the rows it adds or changes (`golden_frame`)."""


def _pieces(  # noqa: PLR0917 - the rebuild's tables and what slices them
    contacts: pd.DataFrame,
    sources: pd.DataFrame,
    identifiers: pd.DataFrame,
    lineage: pd.DataFrame,
    new_ids: list[Any],
    now: datetime,
) -> tuple[int, Iterator[_Piece]]:
    """How many slices the rebuild's tables make, and the slices in the order they are written,
    made one at a time: contacts by slices of ``WRITE_SLICE_CONTACTS`` ids, then ``contact_sources``
    and ``contact_identifiers`` by ranges of raw record ids holding ``WRITE_SLICE_RECORDS`` records,
    then lineage by the same slices of contacts."""
    contact_slices = -(-len(contacts) // WRITE_SLICE_CONTACTS)
    record_keys = sources["raw_record_id"].to_numpy(dtype=np.int64)
    bounds = np.sort(record_keys)[WRITE_SLICE_RECORDS::WRITE_SLICE_RECORDS]
    ranges = list(_ranges(bounds))
    source_slices = slice_positions(np.searchsorted(bounds, record_keys, side="right"), len(ranges))
    identifier_keys = identifiers["raw_record_id"].to_numpy(dtype=np.int64)
    identifier_slices = slice_positions(np.searchsorted(bounds, identifier_keys, side="right"), len(ranges))
    lineage_count = -(-len(new_ids) // WRITE_SLICE_CONTACTS)
    where = pd.Index(new_ids).get_indexer(lineage["contact_id"].astype(object))
    if (where < 0).any():
        raise ValueError("lineage names a contact the rebuild did not make")
    lineage_slices = slice_positions(where.astype(np.int64) // WRITE_SLICE_CONTACTS, lineage_count)

    def pieces() -> Iterator[_Piece]:
        for start in range(0, len(contacts), WRITE_SLICE_CONTACTS):
            part = contacts.iloc[start : start + WRITE_SLICE_CONTACTS]
            yield _Piece("contacts", part, ids=tuple(part["contact_id"].tolist()), now=now)
        for (low, high), in_sources, in_identifiers in zip(
            ranges, source_slices, identifier_slices, strict=True
        ):
            yield _Piece("sources", sources.iloc[in_sources], low=low, high=high)
            yield _Piece("identifiers", identifiers.iloc[in_identifiers], low=low, high=high)
        for number, positions in enumerate(lineage_slices):
            ids = new_ids[number * WRITE_SLICE_CONTACTS : (number + 1) * WRITE_SLICE_CONTACTS]
            yield _Piece("lineage", lineage.iloc[positions], ids=tuple(ids))

    return contact_slices + 2 * len(ranges) + lineage_count, pieces()


def _compared(
    engine: Engine, connection: Connection, pieces: Iterable[_Piece], *, processes: int
) -> Iterator[tuple[_Piece, Any]]:
    """Each piece with what turns its stored rows into its new ones (`_compare`): from up to
    ``processes`` worker processes, or with fewer than two read here, in this transaction, just
    before its writes."""
    if processes < 2:
        for piece in pieces:
            yield piece, _compare(connection, piece)
        return
    held: deque[_Piece] = deque()

    def handed_out() -> Iterator[_Piece]:
        for piece in pieces:
            held.append(piece)
            yield piece

    comparer = _Comparer(engine.url.render_as_string(hide_password=False))
    for changes in map_in_processes(comparer, handed_out(), processes=processes):
        yield held.popleft(), changes


@dataclass(frozen=True)
class _Comparer:
    """`_compare` in a worker process, in a read transaction of its own on ``url`` (which may hold
    the database's password, so it is left out of the repr)."""

    url: str = field(repr=False)

    def __call__(self, piece: _Piece) -> Any:
        with open_warehouse(self.url).connect() as connection:
            by_key_only(connection)
            return _compare(connection, piece)


def _within(connection: Connection, piece: _Piece) -> list[sa.ColumnElement[bool]]:
    """The stored rows ``piece`` covers."""
    if piece.table == "contacts":
        return [key_in(connection, Contact.contact_id, list(piece.ids))]
    if piece.table == "lineage":
        return [key_in(connection, ContactFieldLineage.contact_id, list(piece.ids))]
    column = ContactSource.raw_record_id if piece.table == "sources" else ContactIdentifier.raw_record_id
    return [_between(column, piece.low, piece.high)]


def _compare(connection: Connection, piece: _Piece) -> Any:
    """What turns the stored rows ``piece`` covers into its new rows: `KeyedChanges` for the keyed
    tables (contacts given their times first, from the stored ones), the ids that go and the rows
    that come for the identifiers."""
    within = _within(connection, piece)
    if piece.table == "contacts":
        table = Contact.__table__
        stored = read_frame(connection, sa.select(table).where(*within), table.columns.keys())
        rows = golden_frame(piece.new, stored, cast(datetime, piece.now))
        return keyed_changes_from(Contact, stored, rows, ["contact_id"])
    if piece.table == "identifiers":
        return unkeyed_changes(connection, ContactIdentifier, piece.new, within=within)
    model, key = _KEYED[piece.table]
    return keyed_changes(connection, model, piece.new, key, within)


def _apply(connection: Connection, piece: _Piece, changes: Any) -> None:
    """Write the changes `_compare` found for ``piece`` (contacts: added and changed; the contacts
    that go are deleted last, once nothing points at them)."""
    if piece.table == "contacts":
        bulk_insert(connection, Contact, changes.added)
        update_rows(connection, Contact, ["contact_id"], changes.changed, changes.differing)
        return
    within = _within(connection, piece)
    if piece.table == "identifiers":
        apply_multiset(connection, ContactIdentifier, piece.new, within, *changes)
        return
    model, key = _KEYED[piece.table]
    apply_keyed(connection, model, key, piece.new, within, changes)


#: The keyed tables compared by `keyed_changes`, with their keys.
_KEYED: dict[str, tuple[Any, list[str]]] = {
    "sources": (ContactSource, ["raw_record_id"]),
    "lineage": (ContactFieldLineage, _LINEAGE_KEY),
}


def _ranges(bounds: npt.NDArray[np.int64]) -> Iterator[tuple[int | None, int | None]]:
    """The ranges ``[low, high)`` that ``bounds`` cut the integers into, open at both ends."""
    edges: list[int | None] = [None, *(int(bound) for bound in bounds), None]
    return pairwise(edges)


def _between(column: Any, low: int | None, high: int | None) -> sa.ColumnElement[bool]:
    conditions = [column >= low] if low is not None else []
    if high is not None:
        conditions.append(column < high)
    return sa.and_(sa.true(), *conditions)
