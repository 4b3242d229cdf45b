"""Invariants of the canonical tables, checked after every resolution (shown as asset checks in the UI)."""

from dataclasses import dataclass

import sqlalchemy as sa
import sqlalchemy.orm
from sqlalchemy.engine import Engine

from models.identity.phases import CONTACT_OBJECTS
from models.warehouse.tables import (
    ContactIdentifier,
    ContactLinkDecision,
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
    with engine.connect() as connection:
        shared = connection.execute(query).all()
    return CheckResult(
        not shared,
        len(shared),
        f"{len(shared)} usable identifiers are held by more than one golden contact with no refused link "
        "to say why",
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
