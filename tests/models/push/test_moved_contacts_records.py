"""`MovedContactsRecords`: one read of the moved contacts' records serves every destination, and a
destination whose plan's watermark is newer than that read reads again."""

import time
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.push.ledger import MovedContactsRecords, PlanChange, changed_targets
from models.warehouse.db import open_warehouse
from models.warehouse.tables import Contact, ContactSource, RawRecord, utcnow

#: (raw id, destination, object, record id, contact, deleted)
RECORDS = [
    (1, "zoho_crm", "lead", "L1", "c_1", False),
    (2, "zoho_crm", "lead", "L2", "c_2", False),
    (3, "zoho_crm", "contact", "C1", "c_1", False),
    (4, "linkflow", "contact", "F1", "c_1", False),
    (5, "linkflow", "contact", "F2", "c_2", True),  # deleted at the source: not a target
    (6, "linkflow", "contact", "F3", "c_3", False),  # a contact that did not move
    (7, "zoho_crm", "lead", "L9", None, False),  # quarantined: linked to no contact
]
MOVED = frozenset({"c_1", "c_2"})
DESTINATIONS = [("zoho_crm", "lead"), ("zoho_crm", "contact"), ("linkflow", "contact")]


def seeded(url: str) -> Engine:
    engine = open_warehouse(url)
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(
            sa.insert(Contact),
            [
                {"contact_id": c, "created_at": now, "updated_at": now, "source_count": 1}
                for c in ("c_1", "c_2", "c_3")
            ],
        )
        for raw_id, source, obj, record, contact, deleted in RECORDS:
            link(connection, raw_id, source, obj, record, contact, deleted=deleted)
    return engine


def link(
    connection: sa.Connection,
    raw_id: int,
    source: str,
    obj: str,
    record: str,
    contact: str | None,
    *,
    deleted: bool = False,
) -> None:
    now = utcnow()
    connection.execute(
        sa.insert(RawRecord).values(
            id=raw_id,
            source=source,
            object=obj,
            source_id=record,
            payload={},
            content_hash="h",
            first_seen_at=now,
            last_seen_at=now,
            changed_at=now,
            deleted_at=now if deleted else None,
        )
    )
    connection.execute(
        sa.insert(ContactSource).values(
            raw_record_id=raw_id, contact_id=contact, source=source, object=obj, source_id=record
        )
    )


def selects(engine: Engine) -> list[str]:
    """A list that fills with the SELECTs ``engine`` runs from now on."""
    seen: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", capture)
    return seen


def own_read(engine: Engine, destination: str, obj: str) -> pd.DataFrame:
    """What `changed_targets` reads for the moved contacts when nothing is shared."""
    return changed_targets(engine, destination, obj, PlanChange(frozenset(), MOVED, frozenset(), frozenset()))


def ordered(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return sorted(frame[["record_id", "contact_id"]].itertuples(index=False, name=None))


def test_each_destination_gets_what_its_own_read_finds_from_one_read(warehouse_url: str) -> None:
    engine = seeded(warehouse_url)
    expected = {(source, obj): ordered(own_read(engine, source, obj)) for source, obj in DESTINATIONS}
    assert expected == {
        ("zoho_crm", "lead"): [("L1", "c_1"), ("L2", "c_2")],
        ("zoho_crm", "contact"): [("C1", "c_1")],
        ("linkflow", "contact"): [("F1", "c_1")],
    }
    marked = time.monotonic()
    moved = MovedContactsRecords(engine)
    seen = selects(engine)
    shared = {(source, obj): moved.of(source, obj, MOVED, marked) for source, obj in DESTINATIONS}
    assert len(seen) == 1
    assert {key: ordered(frame) for key, frame in shared.items()} == expected
    change = PlanChange(frozenset(), MOVED, frozenset(), frozenset())
    for (source, obj), frame in shared.items():
        assert ordered(changed_targets(engine, source, obj, change, moved=frame)) == expected[(source, obj)]


def test_a_watermark_newer_than_the_read_reads_again_and_sees_a_later_link(warehouse_url: str) -> None:
    """A record linked between the shared read and a destination's watermark is older than that
    watermark: the destination's next plan would never look at it again, so this one must."""
    engine = seeded(warehouse_url)
    moved = MovedContactsRecords(engine)
    assert ordered(moved.of("linkflow", "contact", MOVED, time.monotonic())) == [("F1", "c_1")]
    with engine.begin() as connection:
        link(connection, 8, "linkflow", "contact", "F8", "c_2")
    later = time.monotonic()
    seen = selects(engine)
    assert ordered(moved.of("linkflow", "contact", MOVED, later)) == [("F1", "c_1"), ("F8", "c_2")]
    assert len(seen) == 1
    assert ordered(moved.of("zoho_crm", "contact", MOVED, later)) == [("C1", "c_1")]
    assert len(seen) == 1  # the newer read serves the next destination


def test_other_contacts_are_read_for_themselves(warehouse_url: str) -> None:
    engine = seeded(warehouse_url)
    moved = MovedContactsRecords(engine)
    marked = time.monotonic()
    assert ordered(moved.of("linkflow", "contact", MOVED, marked)) == [("F1", "c_1")]
    assert ordered(moved.of("linkflow", "contact", frozenset({"c_3"}), marked)) == [("F3", "c_3")]
