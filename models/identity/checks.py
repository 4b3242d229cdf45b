"""Invariants of the canonical tables, checked after every resolution (shown as asset checks in the UI).

Each check runs over the whole warehouse, or over one canonical run's changes (``scope``, its run id):
the records it re-resolved and the identifiers its changed records hold or held. An incremental run
writes nothing else, so what it can break lies inside its changes; `run_check` checks the whole
warehouse anyway after a full rebuild, while the last check failed, and every ``full_every``.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
import sqlalchemy.orm
from sqlalchemy.engine import Connection, Engine

from models.identity import changes
from models.identity.identity_store import values_of_kind
from models.identity.phases import CONTACT_OBJECTS
from models.warehouse.bulk import rows_frame
from models.warehouse.key_lists import key_in
from models.warehouse.store import StreamKey, chunks, read_cursor, store_cursor
from models.warehouse.tables import (
    CanonicalChange,
    ContactIdentifier,
    ContactLinkDecision,
    ContactMerge,
    ContactSource,
    RawRecord,
    SuppressedIdentifier,
    utcnow,
)
from models.warehouse.waits import never_stopped, writing


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    failures: int
    description: str
    examples: list[str]
    full: bool = True
    """Whether the whole warehouse was checked, rather than one run's changes."""


Check = Callable[[Engine, str | None], CheckResult]


def _scope_records(connection: Connection, scope: str) -> list[int]:
    """The records the run re-resolved. Read first and bound as one array (`key_in`): with this
    subquery instead, SQLite walks every contact record (or identifier) and tests each against it."""
    keys = connection.execute(
        sa.select(CanonicalChange.raw_record_id).where(
            CanonicalChange.run_id == scope, CanonicalChange.kind == "record"
        )
    ).scalars()
    return [int(key) for key in keys if key is not None]


def _scope_identifiers(connection: Connection, scope: str) -> pd.DataFrame:
    """kind, value: what the run's records hold now, and what its changed records held before it."""
    rows: list[Any] = list(
        connection.execute(
            sa.select(CanonicalChange.kind, CanonicalChange.value).where(
                CanonicalChange.run_id == scope, CanonicalChange.kind.in_(["email", "phone"])
            )
        ).all()
    )
    records = _scope_records(connection, scope)
    if records:
        rows.extend(
            connection.execute(
                sa.select(ContactIdentifier.kind, ContactIdentifier.value).where(
                    key_in(connection, ContactIdentifier.raw_record_id, records),
                    ContactIdentifier.value.is_not(None),
                )
            ).all()
        )
    return rows_frame(rows, ["kind", "value"]).drop_duplicates()


def identifiers_belong_to_one_contact(engine: Engine, scope: str | None = None) -> CheckResult:
    """A usable (not suppressed) email or phone is held by one golden contact, unless household splitting
    refused the link between its holders: every pair of holders in different contacts must have its row
    in contact_link_decisions, so no split goes unexplained."""
    with engine.connect() as connection:
        if scope is None:
            shared = [
                (kind, value) for kind, value in connection.execute(_shared(ContactIdentifier.__table__))
            ]
        else:
            found: set[tuple[str, str]] = set()
            for kind, values in values_of_kind(_in_several_contacts(connection, scope)):
                # Their holders first, joined to themselves: joining the whole table instead, SQLite
                # walks every value of the kind on one side. In chunks: SQLite joins the holders to
                # themselves by scanning them, so a chunk bounds that square.
                for chunk in chunks(values):
                    holders = (
                        sa.select(
                            ContactIdentifier.raw_record_id, ContactIdentifier.kind, ContactIdentifier.value
                        )
                        .where(
                            ContactIdentifier.kind == kind, key_in(connection, ContactIdentifier.value, chunk)
                        )
                        .cte()
                    )
                    found.update((kind, value) for kind, value in connection.execute(_shared(holders)))
            shared = sorted(found)
    return CheckResult(
        not shared,
        len(shared),
        f"{len(shared)} usable identifiers are held by more than one golden contact with no refused link "
        "to say why",
        [f"{kind} {value}" for kind, value in shared[:10]],
        scope is None,
    )


def _in_several_contacts(connection: Connection, scope: str) -> pd.DataFrame:
    """kind, value of the run's identifiers whose holders are in more than one contact: the only ones
    that can break the rule (few: household splits), found with one index probe per identifier."""
    rows: list[Any] = []
    for kind, values in values_of_kind(_scope_identifiers(connection, scope)):
        rows.extend(
            connection.execute(
                sa.select(ContactIdentifier.kind, ContactIdentifier.value, ContactSource.contact_id)
                .join(ContactSource, ContactSource.raw_record_id == ContactIdentifier.raw_record_id)
                .where(ContactIdentifier.kind == kind, key_in(connection, ContactIdentifier.value, values))
            ).all()
        )
    holders = rows_frame(rows, ["kind", "value", "contact_id"])
    contacts = holders.groupby(["kind", "value"], as_index=False).agg(contacts=("contact_id", "nunique"))
    return contacts.loc[contacts["contacts"] > 1, ["kind", "value"]]


def _shared(identifiers: sa.FromClause) -> sa.Select[str, str]:
    """kind, value of the usable identifiers among ``identifiers`` (raw_record_id, kind, value rows) held
    in two contacts with no refused link between the holders."""
    suppressed = sa.select(SuppressedIdentifier.kind, SuppressedIdentifier.value)
    one, other = identifiers.alias("one"), identifiers.alias("other")
    one_source, other_source = sa.orm.aliased(ContactSource), sa.orm.aliased(ContactSource)
    decision = ContactLinkDecision
    return (
        sa.select(one.c.kind, one.c.value)
        .join(other, sa.and_(other.c.kind == one.c.kind, other.c.value == one.c.value))
        .join(one_source, one_source.raw_record_id == one.c.raw_record_id)
        .join(other_source, other_source.raw_record_id == other.c.raw_record_id)
        .outerjoin(
            decision,
            sa.and_(
                decision.raw_record_id_a == one.c.raw_record_id,
                decision.raw_record_id_b == other.c.raw_record_id,
                decision.kind == one.c.kind,
                decision.value == one.c.value,
            ),
        )
        .where(
            one.c.value.is_not(None),
            one.c.raw_record_id < other.c.raw_record_id,
            one_source.contact_id != other_source.contact_id,
            sa.tuple_(one.c.kind, one.c.value).not_in(suppressed),
            decision.id.is_(None),
        )
        .group_by(one.c.kind, one.c.value)
    )


def records_link_to_one_contact(engine: Engine, scope: str | None = None) -> CheckResult:
    """Every live contact record has exactly one link, and that link names a golden contact."""
    contact_records = sa.or_(
        *(sa.and_(RawRecord.source == s, RawRecord.object == o) for s, o in CONTACT_OBJECTS)
    )
    query = (
        sa.select(RawRecord.source, RawRecord.object, RawRecord.source_id)
        .outerjoin(ContactSource, ContactSource.raw_record_id == RawRecord.id)
        .where(RawRecord.deleted_at.is_(None), ContactSource.contact_id.is_(None))
    )
    with engine.connect() as connection:
        if scope is None:
            unlinked = list(connection.execute(query.where(contact_records)).all())
        else:
            # The run's records are contact records: no need for the filter that would lead SQLite to
            # walk all of them.
            records = _scope_records(connection, scope)
            within = key_in(connection, RawRecord.id, records)
            unlinked = list(connection.execute(query.where(within)).all()) if records else []
    return CheckResult(
        not unlinked,
        len(unlinked),
        f"{len(unlinked)} live contact records link to no golden contact",
        [f"{s}/{o}/{i}" for s, o, i in unlinked[:10]],
        scope is None,
    )


def merges_have_no_cycles(engine: Engine, scope: str | None = None) -> CheckResult:
    """Following merged ids to their survivors always ends, so every old id resolves to one contact.

    Scoped to a run, the walks start at the ids it merged away: a cycle it closed passes through one."""
    merged = sa.select(ContactMerge.old_contact_id, ContactMerge.new_contact_id).where(
        ContactMerge.kind == "merge"
    )
    with engine.connect() as connection:
        if scope is None:
            edges = dict(connection.execute(merged).all())
            starts = list(edges)
        else:
            starts = list(connection.execute(merged.where(ContactMerge.run_id == scope)).scalars())
            edges = _edges_from(connection, merged, starts)
    cyclic: list[str] = []
    for start in starts:
        seen = {start}
        current = edges[start]
        while current in edges:
            if current in seen:
                cyclic.append(start)
                break
            seen.add(current)
            current = edges[current]
    return CheckResult(
        not cyclic, len(cyclic), f"{len(cyclic)} merged ids lead into a cycle", cyclic[:10], scope is None
    )


def _edges_from(connection: Connection, merged: sa.Select[str, str], starts: list[str]) -> dict[str, str]:
    """The merge edges reachable from ``starts``, read a step at a time through the old-id index."""
    edges: dict[str, str] = {}
    frontier = set(starts)
    while frontier:
        found = dict(
            connection.execute(merged.where(ContactMerge.old_contact_id.in_(sorted(frontier)))).all()
        )
        edges.update(found)
        frontier = {new for new in found.values() if new not in edges}
    return edges


CHECKS: dict[str, Check] = {
    "identifiers_belong_to_one_contact": identifiers_belong_to_one_contact,
    "records_link_to_one_contact": records_link_to_one_contact,
    "merges_have_no_cycles": merges_have_no_cycles,
}


#: Past this many records re-resolved by a run, its checks go over the whole warehouse instead: the
#: scoped checks hold the run's identifiers and their holders in Python, the whole ones run in SQL.
#: The settling sync after a first sync at a million records re-resolves most of the warehouse: its
#: scoped checks took 87.9 s and lifted the sync to 2,203 MiB. Alone, on that warehouse, for a run of
#: every record: scoped 42.5 s and a 1,268 MiB process, whole 23.9 s and 258 MiB.
SCOPED_CHECK_RECORDS = 100_000


def run_check(
    name: str,
    engine: Engine,
    run_id: str | None,
    full_every: timedelta,
    *,
    scope_limit: int = SCOPED_CHECK_RECORDS,
    checkpoint: Callable[[], None] = never_stopped,
) -> CheckResult:
    """Check ``name`` over the changes of the canonical run ``run_id`` when that is enough, else over
    the whole warehouse: when the run rebuilt in full, recorded no changes (a check run on its own),
    re-resolved more than ``scope_limit`` records, or the last whole check of ``name`` failed or is
    older than ``full_every``. A passing whole check is remembered in stream_state
    (canonical / checks / ``name``); ``checkpoint`` (a sync's stop) is looked at before that record
    and while it waits for SQLite's write lock, so a stop never waits on another writer. A check
    stopped there is not remembered, and the next run checks whole again."""
    now = utcnow()
    key = StreamKey("canonical", "checks", name)
    with engine.connect() as connection:
        kind = None if run_id is None else changes.run_kind(connection, run_id)
        last = _last_full(connection, key)
        large = (
            kind == changes.INCREMENTAL
            and run_id is not None
            and changes.records_in_run(connection, run_id, scope_limit + 1) > scope_limit
        )
    whole = kind != changes.INCREMENTAL or large or last is None or now - last >= full_every
    result = CHECKS[name](engine, None if whole else run_id)
    if whole:
        # SQLite's write lock waited for as `models.warehouse.waits` says, not the 30 s busy timeout.
        with writing(engine, checkpoint) as connection:
            store_cursor(connection, key, {"full_passed_at": now.isoformat() if result.passed else None}, now)
    return result


def _last_full(connection: Connection, key: StreamKey) -> datetime | None:
    cursor = read_cursor(connection, key)
    if not cursor or not cursor.get("full_passed_at"):
        return None
    return datetime.fromisoformat(str(cursor["full_passed_at"]))
