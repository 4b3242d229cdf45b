"""Why records are one contact, and which records beside it were kept apart: read back from what the
last resolution stored (`contact_identifiers`, `suppressed_identifiers`, `contact_link_decisions`), so
the answer is the one the pipeline acted on, not a recomputation that could differ from it."""

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from models.identity.lookup import survivor
from models.warehouse.tables import (
    ContactIdentifier,
    ContactLinkDecision,
    ContactSource,
    SuppressedIdentifier,
)


@dataclass(frozen=True)
class SourceRecord:
    """One source record as explain names it."""

    record_key: int
    source: str
    object: str
    source_id: str
    first_name: str | None
    contact_id: str | None

    @property
    def label(self) -> str:
        name = f" ({self.first_name})" if self.first_name else ""
        return f"{self.source}/{self.object} {self.source_id}{name}"


@dataclass(frozen=True)
class SharedIdentifier:
    """An identifier two or more of the contact's records hold; `suppressed` names the rule that kept it
    from linking, if one did."""

    kind: str
    value: str
    record_keys: tuple[int, ...]
    suppressed: str | None


@dataclass(frozen=True)
class KeptApart:
    """A refused link between one of the contact's records and a record of another contact."""

    inside: SourceRecord
    outside: SourceRecord
    kind: str
    value: str
    rule: str


@dataclass
class Explanation:
    contact_id: str
    merged_from: list[str] = field(default_factory=list)
    records: list[SourceRecord] = field(default_factory=list)
    shared: list[SharedIdentifier] = field(default_factory=list)
    kept_apart: list[KeptApart] = field(default_factory=list)


def contact_of_record(connection: Connection, source: str, obj: str, source_id: str) -> str | None:
    """The contact of a record named source/object/id."""
    return connection.execute(
        sa.select(ContactSource.contact_id).where(
            ContactSource.source == source, ContactSource.object == obj, ContactSource.source_id == source_id
        )
    ).scalar_one_or_none()


def explain(connection: Connection, contact_id: str) -> Explanation | None:
    """What links the records of `contact_id` (or of the contact it was merged into), and what was kept
    apart from them; None when the id is unknown."""
    live, chain = survivor(connection, contact_id)
    if live is None:
        return None
    explanation = Explanation(contact_id=live, merged_from=[change.old_contact_id for change in chain])
    explanation.records = _records(connection, ContactSource.contact_id == live)
    keys = [record.record_key for record in explanation.records]
    explanation.shared = _shared(connection, keys)
    explanation.kept_apart = _kept_apart(connection, explanation.records)
    return explanation


def _records(connection: Connection, condition: sa.ColumnElement[bool]) -> list[SourceRecord]:
    rows = connection.execute(
        sa.select(
            ContactSource.raw_record_id,
            ContactSource.source,
            ContactSource.object,
            ContactSource.source_id,
            ContactSource.first_name,
            ContactSource.contact_id,
        )
        .where(condition)
        .order_by(ContactSource.source, ContactSource.object, ContactSource.source_id)
    ).all()
    return [SourceRecord(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]


def _shared(connection: Connection, keys: list[int]) -> list[SharedIdentifier]:
    if len(keys) < 2:
        return []
    rows = connection.execute(
        sa.select(ContactIdentifier.kind, ContactIdentifier.value, ContactIdentifier.raw_record_id)
        .where(ContactIdentifier.raw_record_id.in_(keys), ContactIdentifier.value.is_not(None))
        .distinct()
    ).all()
    holders: dict[tuple[str, str], set[int]] = {}
    for kind, value, key in rows:
        holders.setdefault((str(kind), str(value)), set()).add(int(key))
    shared = {pair: members for pair, members in holders.items() if len(members) > 1}
    rules = dict(
        ((kind, value), rule)
        for kind, value, rule in connection.execute(
            sa.select(SuppressedIdentifier.kind, SuppressedIdentifier.value, SuppressedIdentifier.rule).where(
                SuppressedIdentifier.value.in_(sorted(value for _, value in shared))
            )
        ).all()
    )
    return [
        SharedIdentifier(kind, value, tuple(sorted(members)), rules.get((kind, value)))
        for (kind, value), members in sorted(shared.items())
    ]


def _kept_apart(connection: Connection, records: list[SourceRecord]) -> list[KeptApart]:
    by_key = {record.record_key: record for record in records}
    if not by_key:
        return []
    keys = list(by_key)
    rows = connection.execute(
        sa.select(
            ContactLinkDecision.raw_record_id_a,
            ContactLinkDecision.raw_record_id_b,
            ContactLinkDecision.kind,
            ContactLinkDecision.value,
            ContactLinkDecision.rule,
        )
        .where(
            sa.or_(
                ContactLinkDecision.raw_record_id_a.in_(keys), ContactLinkDecision.raw_record_id_b.in_(keys)
            )
        )
        .order_by(ContactLinkDecision.kind, ContactLinkDecision.value, ContactLinkDecision.raw_record_id_a)
    ).all()
    others = sorted({int(b if a in by_key else a) for a, b, *_ in rows})
    outside = {
        record.record_key: record for record in _records(connection, ContactSource.raw_record_id.in_(others))
    }
    kept: list[KeptApart] = []
    for a, b, kind, value, rule in rows:
        inside_key, outside_key = (a, b) if a in by_key else (b, a)
        if outside_key in by_key or outside_key not in outside:
            continue  # both ends in this contact (joined another way) or the other record is gone
        kept.append(KeptApart(by_key[inside_key], outside[outside_key], kind, value, rule))
    return kept
