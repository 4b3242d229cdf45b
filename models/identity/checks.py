"""Invariants of the canonical tables, checked after every resolution (shown as asset checks in the UI)."""

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.identity.phases import CONTACT_OBJECTS
from models.warehouse.tables import (
    ContactIdentifier,
    ContactMerge,
    ContactSource,
    RawRecord,
    SuppressedIdentifier,
)


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    failures: int
    description: str
    examples: list[str]


def identifiers_belong_to_one_contact(engine: Engine) -> CheckResult:
    """A usable (not suppressed) email or phone must never be held by two golden contacts."""
    suppressed = sa.select(SuppressedIdentifier.kind, SuppressedIdentifier.value)
    query = (
        sa.select(ContactIdentifier.kind, ContactIdentifier.value)
        .join(ContactSource, ContactSource.raw_record_id == ContactIdentifier.raw_record_id)
        .where(
            ContactIdentifier.value.is_not(None),
            sa.tuple_(ContactIdentifier.kind, ContactIdentifier.value).not_in(suppressed),
        )
        .group_by(ContactIdentifier.kind, ContactIdentifier.value)
        .having(sa.func.count(sa.distinct(ContactSource.contact_id)) > 1)
    )
    with engine.connect() as connection:
        shared = connection.execute(query).all()
    return CheckResult(
        not shared,
        len(shared),
        f"{len(shared)} usable identifiers are held by more than one golden contact",
        [f"{kind} {value}" for kind, value in shared[:10]],
    )


def records_link_to_one_contact(engine: Engine) -> CheckResult:
    """Every live contact record has exactly one link, and that link names a golden contact."""
    contact_records = sa.or_(
        *(sa.and_(RawRecord.source == s, RawRecord.object == o) for s, o in CONTACT_OBJECTS)
    )
    query = (
        sa.select(RawRecord.source, RawRecord.object, RawRecord.source_id)
        .outerjoin(ContactSource, ContactSource.raw_record_id == RawRecord.id)
        .where(contact_records, RawRecord.deleted_at.is_(None), ContactSource.contact_id.is_(None))
    )
    with engine.connect() as connection:
        unlinked = connection.execute(query).all()
    return CheckResult(
        not unlinked,
        len(unlinked),
        f"{len(unlinked)} live contact records link to no golden contact",
        [f"{s}/{o}/{i}" for s, o, i in unlinked[:10]],
    )


def merges_have_no_cycles(engine: Engine) -> CheckResult:
    """Following merged ids to their survivors always ends, so every old id resolves to one contact."""
    with engine.connect() as connection:
        edges = dict(
            connection.execute(
                sa.select(ContactMerge.old_contact_id, ContactMerge.new_contact_id).where(
                    ContactMerge.kind == "merge"
                )
            ).all()
        )
    cyclic: list[str] = []
    for start, first in edges.items():
        seen = {start}
        current = first
        while current in edges:
            if current in seen:
                cyclic.append(start)
                break
            seen.add(current)
            current = edges[current]
    return CheckResult(not cyclic, len(cyclic), f"{len(cyclic)} merged ids lead into a cycle", cyclic[:10])
