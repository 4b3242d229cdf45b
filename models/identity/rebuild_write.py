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
"""

from collections.abc import Callable, Iterator
from datetime import datetime
from itertools import pairwise
from typing import Any

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
from models.warehouse.db import by_key_only
from models.warehouse.diff import (
    delete_keys,
    keyed_changes_from,
    replace_differing,
    replace_multiset,
    slice_positions,
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
    records go (their lineage first, their activity unlinked by the key's ``SET NULL``)."""
    lineage = lineage.loc[:, list(LINEAGE_COLUMNS)]
    with writing(engine, checkpoint) as connection:
        by_key_only(connection)
        stored_ids = set(connection.execute(sa.select(Contact.contact_id)).scalars())
        new_ids = contacts["contact_id"].astype(object).tolist()
        gone = sorted(stored_ids.difference(new_ids))
        del stored_ids
        _write_contacts(connection, contacts, now)
        _write_by_records(connection, sources, identifiers)
        _write_lineage(connection, lineage, new_ids, gone)
        delete_keys(connection, Contact, ["contact_id"], [(contact_id,) for contact_id in gone])
        insert_rows(connection, ContactMerge, merge_rows(resolution.merges, now, run_id))
        connection.execute(sa.delete(SuppressedIdentifier))
        insert_rows(connection, SuppressedIdentifier, suppressed_rows(resolution.suppressed, now))
        connection.execute(sa.delete(ContactLinkDecision))
        insert_rows(connection, ContactLinkDecision, decision_rows(resolution.refused, now))


def _write_contacts(connection: Connection, golden: pd.DataFrame, now: datetime) -> None:
    """Add the new contacts and update the changed ones, a slice of ids at a time (the gone ones are
    deleted last, once nothing points at them). Each slice's stored contacts give its rows their
    times (`golden_frame`: created_at kept, updated_at moved only when a field changed)."""
    table = Contact.__table__
    for start in range(0, len(golden), WRITE_SLICE_CONTACTS):
        part = golden.iloc[start : start + WRITE_SLICE_CONTACTS]
        ids = key_in(connection, Contact.contact_id, part["contact_id"].tolist())
        stored = read_frame(connection, sa.select(table).where(ids), table.columns.keys())
        rows = golden_frame(part, stored, now)
        changes = keyed_changes_from(Contact, stored, rows, ["contact_id"])
        bulk_insert(connection, Contact, changes.added)
        update_rows(connection, Contact, ["contact_id"], changes.changed, changes.differing)


def _write_lineage(
    connection: Connection, lineage: pd.DataFrame, new_ids: list[Any], gone: list[Any]
) -> None:
    """Replace the lineage rows that differ, a slice of contacts at a time, then drop the lineage of
    the contacts that go."""
    count = -(-len(new_ids) // WRITE_SLICE_CONTACTS)
    where = pd.Index(new_ids).get_indexer(lineage["contact_id"].astype(object))
    if (where < 0).any():
        raise ValueError("lineage names a contact the rebuild did not make")
    slices = where.astype(np.int64) // WRITE_SLICE_CONTACTS
    for number, positions in enumerate(slice_positions(slices, count)):
        ids = new_ids[number * WRITE_SLICE_CONTACTS : (number + 1) * WRITE_SLICE_CONTACTS]
        within = [key_in(connection, ContactFieldLineage.contact_id, ids)]
        replace_differing(connection, ContactFieldLineage, _LINEAGE_KEY, lineage.iloc[positions], within)
    delete_keys(connection, ContactFieldLineage, ["contact_id"], [(contact_id,) for contact_id in gone])


def _write_by_records(connection: Connection, sources: pd.DataFrame, identifiers: pd.DataFrame) -> None:
    """``contact_sources`` and ``contact_identifiers``, range of raw record ids by range."""
    record_keys = sources["raw_record_id"].to_numpy(dtype=np.int64)
    bounds = np.sort(record_keys)[WRITE_SLICE_RECORDS::WRITE_SLICE_RECORDS]
    ranges = list(_ranges(bounds))
    source_slices = slice_positions(np.searchsorted(bounds, record_keys, side="right"), len(ranges))
    identifier_keys = identifiers["raw_record_id"].to_numpy(dtype=np.int64)
    identifier_slices = slice_positions(np.searchsorted(bounds, identifier_keys, side="right"), len(ranges))
    for (low, high), in_sources, in_identifiers in zip(ranges, source_slices, identifier_slices, strict=True):
        replace_differing(
            connection,
            ContactSource,
            ["raw_record_id"],
            sources.iloc[in_sources],
            [_between(ContactSource.raw_record_id, low, high)],
        )
        replace_multiset(
            connection,
            ContactIdentifier,
            identifiers.iloc[in_identifiers],
            [_between(ContactIdentifier.raw_record_id, low, high)],
        )


def _ranges(bounds: npt.NDArray[np.int64]) -> Iterator[tuple[int | None, int | None]]:
    """The ranges ``[low, high)`` that ``bounds`` cut the integers into, open at both ends."""
    edges: list[int | None] = [None, *(int(bound) for bound in bounds), None]
    return pairwise(edges)


def _between(column: Any, low: int | None, high: int | None) -> sa.ColumnElement[bool]:
    conditions = [column >= low] if low is not None else []
    if high is not None:
        conditions.append(column < high)
    return sa.and_(sa.true(), *conditions)
