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

import sqlalchemy as sa
import sqlalchemy.orm
from sqlalchemy.engine import Connection, Engine

from models.identity import changes
from models.identity.phases import CONTACT_OBJECTS
from models.warehouse.store import StreamKey, read_cursor, store_cursor
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


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    failures: int
    description: str
    examples: list[str]
    full: bool = True
    """Whether the whole warehouse was checked, rather than one run's changes."""


Check = Callable[[Engine, str | None], CheckResult]


def _scope_records(scope: str) -> sa.Select[Any]:
    return sa.select(CanonicalChange.raw_record_id).where(
        CanonicalChange.run_id == scope, CanonicalChange.kind == "record"
    )


def _scope_identifiers(scope: str) -> sa.CompoundSelect[Any]:
    """(kind, value) the run's records hold now, and those its changed records held before it."""
    return sa.union(
        sa.select(ContactIdentifier.kind, ContactIdentifier.value).where(
            ContactIdentifier.raw_record_id.in_(_scope_records(scope)), ContactIdentifier.value.is_not(None)
        ),
        sa.select(CanonicalChange.kind, CanonicalChange.value).where(
            CanonicalChange.run_id == scope, CanonicalChange.kind.in_(["email", "phone"])
        ),
    )


def identifiers_belong_to_one_contact(engine: Engine, scope: str | None = None) -> CheckResult:
    """A usable (not suppressed) email or phone is held by one golden contact, unless household splitting
    refused the link between its holders: every pair of holders in different contacts must have its row
    in contact_link_decisions, so no split goes unexplained."""
    suppressed = sa.select(SuppressedIdentifier.kind, SuppressedIdentifier.value)
    one, other = sa.orm.aliased(ContactIdentifier), sa.orm.aliased(ContactIdentifier)
    one_source, other_source = sa.orm.aliased(ContactSource), sa.orm.aliased(ContactSource)
    decision = ContactLinkDecision
    query = (
        sa.select(one.kind, one.value)
        .join(other, sa.and_(other.kind == one.kind, other.value == one.value))
        .join(one_source, one_source.raw_record_id == one.raw_record_id)
        .join(other_source, other_source.raw_record_id == other.raw_record_id)
        .outerjoin(
            decision,
            sa.and_(
                decision.raw_record_id_a == one.raw_record_id,
                decision.raw_record_id_b == other.raw_record_id,
                decision.kind == one.kind,
                decision.value == one.value,
            ),
        )
        .where(
            one.value.is_not(None),
            one.raw_record_id < other.raw_record_id,
            one_source.contact_id != other_source.contact_id,
            sa.tuple_(one.kind, one.value).not_in(suppressed),
            decision.id.is_(None),
        )
        .group_by(one.kind, one.value)
    )
    if scope is not None:
        query = query.where(sa.tuple_(one.kind, one.value).in_(_scope_identifiers(scope)))
    with engine.connect() as connection:
        shared = connection.execute(query).all()
    return CheckResult(
        not shared,
        len(shared),
        f"{len(shared)} usable identifiers are held by more than one golden contact with no refused link "
        "to say why",
        [f"{kind} {value}" for kind, value in shared[:10]],
        scope is None,
    )


def records_link_to_one_contact(engine: Engine, scope: str | None = None) -> CheckResult:
    """Every live contact record has exactly one link, and that link names a golden contact."""
    contact_records = sa.or_(
        *(sa.and_(RawRecord.source == s, RawRecord.object == o) for s, o in CONTACT_OBJECTS)
    )
    query = (
        sa.select(RawRecord.source, RawRecord.object, RawRecord.source_id)
        .outerjoin(ContactSource, ContactSource.raw_record_id == RawRecord.id)
        .where(contact_records, RawRecord.deleted_at.is_(None), ContactSource.contact_id.is_(None))
    )
    if scope is not None:
        query = query.where(RawRecord.id.in_(_scope_records(scope)))
    with engine.connect() as connection:
        unlinked = connection.execute(query).all()
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


def run_check(name: str, engine: Engine, run_id: str | None, full_every: timedelta) -> CheckResult:
    """Check ``name`` over the changes of the canonical run ``run_id`` when that is enough, else over
    the whole warehouse: when the run rebuilt in full, recorded no changes (a check run on its own),
    the last whole check of ``name`` failed or is older than ``full_every``. A passing whole check is
    remembered in stream_state (canonical / checks / ``name``)."""
    now = utcnow()
    key = StreamKey("canonical", "checks", name)
    with engine.connect() as connection:
        kind = None if run_id is None else changes.run_kind(connection, run_id)
        last = _last_full(connection, key)
    whole = kind != changes.INCREMENTAL or last is None or now - last >= full_every
    result = CHECKS[name](engine, None if whole else run_id)
    with engine.begin() as connection:
        if whole:
            store_cursor(connection, key, {"full_passed_at": now.isoformat() if result.passed else None}, now)
    return result


def _last_full(connection: Connection, key: StreamKey) -> datetime | None:
    cursor = read_cursor(connection, key)
    if not cursor or not cursor.get("full_passed_at"):
        return None
    return datetime.fromisoformat(str(cursor["full_passed_at"]))
