"""Incremental activity against the warehouse: after any change, the same rows as a full rebuild.

Each comparison runs the incremental `build_activity` after the canonical step, keeps its table, then
rebuilds in full from the same state and compares every row.
"""

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from connectors.emulator import Emulator, running_emulator
from models.identity import activity as activity_module
from models.identity.activity import WATERMARK as ACTIVITY_WATERMARK
from models.identity.activity import ActivityReport, build_activity
from models.identity.canonical_incremental import build_canonical_incremental
from models.identity.linking import IdentityConfig
from models.identity.phases import CanonicalConfig
from models.warehouse import store
from models.warehouse.db import open_warehouse
from models.warehouse.store import RawRow, RawStore, StreamKey, chunks, read_cursor
from models.warehouse.tables import Base, CanonicalChange, Contact, ContactActivity, ContactSource, RawRecord
from tests.pipelines.test_extract import extract_all
from tests.plans import keyed_plans

REGIONS = {"linkflow": "CN", "clicksend": "US", "clickfunnels": "US", "zoho_crm": "US", "zoho_bigin": "US"}
DEFAULT = CanonicalConfig(regions=REGIONS)
ANY_SHARED = CanonicalConfig(regions=REGIONS, identity=IdentityConfig(household_split=False))


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with running_emulator(seed=11, people=120) as emu:
        yield emu


def activity(engine: Engine) -> dict[str, tuple[Any, ...]]:
    with engine.connect() as connection:
        return {
            row.activity_id: tuple(row)
            for row in connection.execute(sa.select(ContactActivity.__table__)).all()
        }


def contact_of(engine: Engine) -> dict[str, str | None]:
    return {aid: row[1] for aid, row in activity(engine).items()}


def assert_incremental_equals_full(engine: Engine, config: CanonicalConfig) -> ActivityReport:
    """Canonical, then incremental activity; its rows must be the rows a full rebuild gives."""
    build_canonical_incremental(engine, config, run_id="inc")
    report = build_activity(engine, REGIONS)
    assert not report.full_rebuild
    incremental = activity(engine)
    rebuilt = build_activity(engine, REGIONS, full=True)
    full = activity(engine)
    assert incremental.keys() == full.keys()
    assert {k: v for k, v in incremental.items() if v != full[k]} == {}
    assert (report.activity, report.activity_linked) == (rebuilt.activity, rebuilt.activity_linked)
    return report


def test_new_changed_and_deleted_activity_and_contacts_equal_a_full_rebuild(
    emulator: Emulator, warehouse_url: str
) -> None:
    extract_all(emulator, warehouse_url)
    engine = open_warehouse(warehouse_url)
    build_canonical_incremental(engine, DEFAULT)
    first = build_activity(engine, REGIONS)
    assert first.full_rebuild
    assert first.activity_linked > 0
    for seed in (31, 32):
        emulator.mutate(seed=seed, new=4, updated=8, deleted=3, events=10, messages=6)
        extract_all(emulator, warehouse_url)
        report = assert_incremental_equals_full(engine, DEFAULT)
        assert 0 < report.rows_written < first.activity / 4
    # What the activity step applied is deleted by the next canonical run; a run with no change adds
    # only its own row.
    build_canonical_incremental(engine, DEFAULT)
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(CanonicalChange)).scalar_one() == 1


def test_a_rebuild_in_slices_of_a_few_records_gives_the_rows_of_one_slice(
    emulator: Emulator, warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full rebuild reads, links and writes a slice of raw records at a time, receipts after every
    message: slices of seven give the rows of one slice holding everything."""
    extract_all(emulator, warehouse_url)
    engine = open_warehouse(warehouse_url)
    build_canonical_incremental(engine, DEFAULT)
    whole = build_activity(engine, REGIONS, full=True)
    rows = activity(engine)
    receipts = [v for k, v in rows.items() if k.startswith("clicksend:sms:receipt:")]
    assert any(row[1] is not None for row in receipts), "some receipt must inherit its message's contact"
    writes: list[int] = []
    insert = activity_module._insert
    monkeypatch.setattr(activity_module, "REBUILD_SLICE_RECORDS", 7)
    monkeypatch.setattr(activity_module, "_insert", lambda c, r: (writes.append(len(r)), insert(c, r)))
    sliced = build_activity(engine, REGIONS, full=True)
    assert max(writes) <= 7
    assert len(writes) >= len(rows) // 7
    assert activity(engine) == rows
    assert (sliced.activity, sliced.activity_linked) == (whole.activity, whole.activity_linked)


def test_in_lists_of_a_few_values_give_the_same_rows(
    emulator: Emulator, warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changed activity, its owners (phones, Linkflow ids) and the keys to re-link are read by literal
    IN lists in chunks: with chunks of three, each read takes many statements, and the rows are still
    a full rebuild's."""
    for module in (activity_module, store):
        monkeypatch.setattr(module, "chunks", lambda items: chunks(items, 3))
    extract_all(emulator, warehouse_url)
    engine = open_warehouse(warehouse_url)
    build_canonical_incremental(engine, DEFAULT)
    build_activity(engine, REGIONS)
    emulator.mutate(seed=35, new=4, updated=8, deleted=3, events=10, messages=6)
    extract_all(emulator, warehouse_url)
    report = assert_incremental_equals_full(engine, DEFAULT)
    assert report.rows_written > 3


def test_a_merge_and_a_split_re_point_only_the_merged_contacts_activity(warehouse_url: str) -> None:
    with running_emulator(seed=5, people=60) as emu:
        extract_all(emu, warehouse_url)
    engine = open_warehouse(warehouse_url)
    build_canonical_incremental(engine, ANY_SHARED)
    build_activity(engine, REGIONS)
    before = contact_of(engine)
    # Two contacts that both have activity, with an email and a phone each.
    with engine.connect() as connection:
        (a_id, a_email, _), (b_id, _, b_phone) = connection.execute(
            sa.select(Contact.contact_id, Contact.email, Contact.phone)
            .join(ContactActivity, ContactActivity.contact_id == Contact.contact_id)
            .where(Contact.email.is_not(None), Contact.phone.is_not(None))
            .group_by(Contact.contact_id, Contact.email, Contact.phone)
            .order_by(Contact.contact_id)
            .limit(2)
        ).all()
    lead = {"id": "4970762000099999999", "Email": a_email, "Phone": b_phone, "Last_Name": "Bridge"}
    RawStore(engine).write_page(StreamKey("zoho_crm", "lead"), [RawRow(lead["id"], lead)])
    merged = assert_incremental_equals_full(engine, ANY_SHARED)
    survivor, gone = min(a_id, b_id), max(a_id, b_id)
    after = contact_of(engine)
    moved = {aid for aid in after if after[aid] != before[aid]}
    assert moved
    assert {before[aid] for aid in moved} == {gone}
    assert {after[aid] for aid in moved} == {survivor}
    assert merged.keys_relinked < len({row for row in before.values() if row is not None})

    RawStore(engine).write_page(StreamKey("zoho_crm", "lead"), [], deleted_ids=[lead["id"]])
    assert_incremental_equals_full(engine, ANY_SHARED)
    split = contact_of(engine)
    # The split-off half has a new id; the rows that moved away from the survivor all went to it.
    back = {aid for aid in moved if split[aid] != survivor}
    assert back == moved
    assert len({split[aid] for aid in back}) == 1


def test_a_changed_phone_moves_its_messages(sqlite_url: str) -> None:
    """A record's phone edited: messages to the old number leave its contact, messages to the new one
    arrive, including a receipt whose message only lands after it."""
    engine = open_warehouse(sqlite_url)
    store = RawStore(engine)
    lead = StreamKey("zoho_crm", "lead")
    sms = StreamKey("clicksend", "sms")
    store.write_page(lead, [RawRow("1", {"id": "1", "Email": "ann@example.com", "Phone": "+14155550101"})])
    store.write_page(lead, [RawRow("2", {"id": "2", "Email": "bob@example.com", "Phone": "+14155550102"})])
    store.write_page(sms, [RawRow("history:m1", _history("m1", "+1 415 555 0101"))])
    build_canonical_incremental(engine, DEFAULT)
    build_activity(engine, REGIONS)
    ann, bob = (_contact_of_record(engine, key) for key in ("1", "2"))
    assert contact_of(engine) == {"clicksend:sms:history:m1": ann}

    store.write_page(sms, [RawRow("receipt:r1", {"message_id": "m2", "status_text": "Delivered"})])
    assert_incremental_equals_full(engine, DEFAULT)
    store.write_page(lead, [RawRow("1", {"id": "1", "Email": "ann@example.com", "Phone": "+14155550109"})])
    store.write_page(sms, [RawRow("history:m2", _history("m2", "4155550109"))])
    assert_incremental_equals_full(engine, DEFAULT)
    assert contact_of(engine) == {
        "clicksend:sms:history:m1": None,
        "clicksend:sms:history:m2": ann,
        "clicksend:sms:receipt:r1": ann,
    }
    store.write_page(lead, [RawRow("2", {"id": "2", "Email": "bob@example.com", "Phone": "+14155550101"})])
    store.write_page(sms, [], deleted_ids=["history:m2"])
    assert_incremental_equals_full(engine, DEFAULT)
    assert contact_of(engine) == {"clicksend:sms:history:m1": bob, "clicksend:sms:receipt:r1": None}


def test_the_watermark_passes_records_extracted_after_the_last_activity(sqlite_url: str) -> None:
    """Contact records of the activity sources extracted after the last message are behind the
    watermark once a run has seen them: with the latest activity change as the watermark, every run
    after a full sync read again every such record extracted after the last event or message (its
    cost grew with the warehouse). The other sources' records are never read by this step, so they
    need not move it."""
    engine = open_warehouse(sqlite_url)
    store = RawStore(engine)
    lead, linkflow = StreamKey("zoho_crm", "lead"), StreamKey("linkflow", "contact")
    store.write_page(StreamKey("clicksend", "sms"), [RawRow("history:m1", _history("m1", "+1 415 555 0101"))])
    store.write_page(linkflow, [RawRow("9", {"id": 9, "email": "cy@example.com"})])
    store.write_page(lead, [RawRow("1", {"id": "1", "Email": "ann@example.com", "Phone": "+14155550101"})])
    build_canonical_incremental(engine, DEFAULT)
    assert build_activity(engine, REGIONS).full_rebuild
    assert _activity_watermark(engine) == _latest_change(engine, "linkflow", "clicksend")

    store.write_page(linkflow, [RawRow("10", {"id": 10, "email": "di@example.com"})])
    store.write_page(lead, [RawRow("2", {"id": "2", "Email": "bob@example.com", "Phone": "+14155550102"})])
    assert_incremental_equals_full(engine, DEFAULT)
    build_canonical_incremental(engine, DEFAULT, run_id="again")
    assert not build_activity(engine, REGIONS).full_rebuild
    assert _activity_watermark(engine) == _latest_change(engine, "linkflow", "clicksend")
    assert _activity_watermark(engine) < _latest_change(engine, "zoho_crm")


def _activity_watermark(engine: Engine) -> datetime:
    with engine.connect() as connection:
        cursor = read_cursor(connection, ACTIVITY_WATERMARK)
    assert cursor is not None
    return datetime.fromisoformat(str(cursor["changed_at"]))


def _latest_change(engine: Engine, *sources: str) -> datetime:
    with engine.connect() as connection:
        return connection.execute(
            sa.select(sa.func.max(RawRecord.changed_at)).where(RawRecord.source.in_(sources))
        ).scalar_one()


def test_full_rebuilds_come_with_a_full_canonical_rebuild_and_a_new_region(sqlite_url: str) -> None:
    engine = open_warehouse(sqlite_url)
    RawStore(engine).write_page(
        StreamKey("zoho_crm", "lead"), [RawRow("1", {"id": "1", "Phone": "+14155550101"})]
    )
    build_canonical_incremental(engine, DEFAULT)
    assert build_activity(engine, REGIONS).full_rebuild
    build_canonical_incremental(engine, DEFAULT)
    assert not build_activity(engine, REGIONS).full_rebuild
    build_canonical_incremental(engine, DEFAULT, full=True)
    assert build_activity(engine, REGIONS).full_rebuild
    assert build_activity(engine, {**REGIONS, "clicksend": "GB"}).full_rebuild
    assert not build_activity(engine, {**REGIONS, "clicksend": "GB"}).full_rebuild


def _history(message_id: str, to: str) -> dict[str, Any]:
    return {"message_id": message_id, "to": to, "direction": "out", "status": "Sent", "body": "hi", "date": 1}


def _contact_of_record(engine: Engine, source_id: str) -> str:
    with engine.connect() as connection:
        return str(
            connection.execute(
                sa.select(ContactSource.contact_id).where(ContactSource.source_id == source_id)
            ).scalar_one()
        )


# Property: over random worlds of a few leads and Linkflow contacts sharing a few emails and phones,
# and events and messages pointing at them, any two rounds of changes leave incremental activity equal
# to a full rebuild. A record limit of 3 makes identifiers cross the suppression limit both ways.
_PHONES = ["+14155550101", "+14155550102", "+14155550103", "+14155550104"]
_EMAILS = ["a@example.com", "b@example.com", "c@example.com"]
_LEAD = st.fixed_dictionaries(
    {"Email": st.sampled_from([None, *_EMAILS]), "Phone": st.sampled_from([None, *_PHONES])}
)
_LINKFLOW = st.fixed_dictionaries(
    {"email": st.sampled_from([None, *_EMAILS]), "mobilePhone": st.sampled_from([None, *_PHONES])}
)
_EVENT = st.fixed_dictionaries({"contactId": st.sampled_from([None, "1", "2", "3", "9"])})
_MESSAGE = st.fixed_dictionaries(
    {
        "to": st.sampled_from(["", *_PHONES, "(415) 555-0102"]),
        "message_id": st.sampled_from(["m1", "m2", "m3"]),
    }
)
_RECEIPT = st.fixed_dictionaries({"message_id": st.sampled_from(["m1", "m2", "m3", "m4"])})
_STREAMS: dict[tuple[str, str], tuple[StreamKey, Any, list[str]]] = {
    ("lead", ""): (StreamKey("zoho_crm", "lead"), _LEAD, ["1", "2", "3", "4", "5"]),
    ("linkflow", ""): (StreamKey("linkflow", "contact"), _LINKFLOW, ["1", "2", "3"]),
    ("event", ""): (StreamKey("linkflow", "event"), _EVENT, ["1", "2", "3", "4"]),
    ("sms", "history:"): (StreamKey("clicksend", "sms"), _MESSAGE, ["1", "2", "3", "4"]),
    ("sms", "receipt:"): (StreamKey("clicksend", "sms"), _RECEIPT, ["1", "2"]),
}
# One change: a record of a stream written with a new payload, or deleted (None).
_CHANGE = st.one_of(
    *(
        st.tuples(st.just(name), st.integers(0, 4), st.none() | strategy)
        for name, (_, strategy, _) in sorted(_STREAMS.items())
    )
)
_ROUND = st.lists(_CHANGE, max_size=8)
# The first state: every record of every stream, so the changes after it have something to move.
_WORLD = st.tuples(
    *(
        st.tuples(st.just(name), st.just(index), strategy)
        for name, (_, strategy, ids) in sorted(_STREAMS.items())
        for index in range(len(ids))
    )
).map(list)
Change = tuple[tuple[str, str], int, dict[str, Any] | None]
TIGHT = CanonicalConfig(
    regions=REGIONS, identity=IdentityConfig(max_records_per_identifier=3, household_split=False)
)


def _apply(engine: Engine, changes: list[Change]) -> None:
    store = RawStore(engine)
    for (name, part), index, drawn in changes:
        key, _, ids = _STREAMS[(name, part)]
        source_id = part + ids[index % len(ids)]
        if drawn is None:
            store.write_page(key, [], deleted_ids=[source_id])
            continue
        payload = {"id": source_id, **drawn}
        if part == "history:":
            payload.update(direction="out", status="Sent", body="hi", date=1)
        store.write_page(key, [RawRow(source_id, payload)])


def _empty(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_WORLD, st.lists(_ROUND, min_size=1, max_size=2))
def test_incremental_activity_equals_a_full_rebuild_after_any_changes(
    sqlite_url: str, world: list[Change], rounds: list[list[Change]]
) -> None:
    engine = open_warehouse(sqlite_url)
    _empty(engine)
    # A record that never changes, so the canonical step keeps a watermark and runs incrementally.
    RawStore(engine).write_page(
        StreamKey("zoho_crm", "lead"), [RawRow("0", {"id": "0", "Last_Name": "Base"})]
    )
    _apply(engine, world)
    build_canonical_incremental(engine, TIGHT)
    build_activity(engine, REGIONS)
    for changes in rounds:
        _apply(engine, changes)
        assert_incremental_equals_full(engine, TIGHT)


@pytest.mark.parametrize("full", [True, False], ids=["rebuild", "incremental"])
def test_activity_reads_owners_by_key_on_postgresql(
    postgres_schema_url: str, emulator: Emulator, full: bool
) -> None:
    """Each slice of activity looks its keys' owners up by ``IN`` lists: on tables without statistics
    PostgreSQL scanned the whole of ``contact_identifiers`` and ``contact_sources`` per list, so the
    first sync's activity step grew with the square of the warehouse. Every such read uses an index."""
    extract_all(emulator, postgres_schema_url)
    engine = open_warehouse(postgres_schema_url)
    build_canonical_incremental(engine, DEFAULT)
    build_activity(engine, REGIONS)
    if not full:
        with engine.begin() as connection:  # a change that re-points activity: records re-resolved
            connection.execute(sa.update(RawRecord).values(changed_at=sa.func.now()))
        build_canonical_incremental(engine, DEFAULT)
    tables = ("contact_sources", "contact_identifiers", "contact_activity")
    plans = keyed_plans(engine, lambda: build_activity(engine, REGIONS, full=full), tables)
    assert plans
    assert not [plan for plan in plans if "Seq Scan" in plan], plans
    # Owners are looked up by the whole key, not by (kind) or (source, object) and a filter.
    # (PostgreSQL writes the kind as "(kind)::text" or, through the covering index, "kind".)
    phones = [plan for plan in plans if re.search(r"kind\)?(::text)? = 'phone'", plan)]
    linkflow = [plan for plan in plans if "contact_sources_source_object_source_id" in plan]
    assert phones or not full, plans
    assert all(re.search(r"Index Cond: [^/]*\(value(\)::text)? = ", plan) for plan in phones), phones
    assert all(re.search(r"Index Cond: [^/]*\(source_id\)", plan) for plan in linkflow), linkflow


@pytest.mark.parametrize("first", ["inbound", "history"])
def test_a_received_message_listed_in_history_too_is_one_row_in_either_order(
    first: str, sqlite_url: str
) -> None:
    # ClickSend may list a received message in /sms/history (direction in) as well as /sms/inbound,
    # under one message_id; the two parts can land in separate runs, either first.
    engine = open_warehouse(sqlite_url)
    sms = RawStore(engine)
    key = StreamKey("clicksend", "sms")
    inbound = {"message_id": "M1", "timestamp": 1_750_000_000, "from": "+14155550100", "body": "yes"}
    copy = {"message_id": "M1", "date": 1_750_000_000, "direction": "in", "status": "Received",
            "from": "+14155550100", "to": "+14155550999", "body": "yes"}  # fmt: skip
    sent = {"message_id": "M2", "date": 1_749_999_000, "direction": "out", "status": "Completed",
            "from": "+14155550999", "to": "+14155550100", "body": "hi"}  # fmt: skip
    parts = {"inbound": RawRow("inbound:M1", inbound), "history": RawRow("history:M1", copy)}
    later = "history" if first == "inbound" else "inbound"
    sms.write_page(key, [parts[first], RawRow("history:M2", sent)])
    build_activity(engine, REGIONS)
    sms.write_page(key, [parts[later]])
    build_activity(engine, REGIONS)
    rows = activity(engine)
    assert sorted(rows) == ["clicksend:sms:history:M2", "clicksend:sms:inbound:M1"]
    assert build_activity(engine, REGIONS, full=True).activity == 2
    assert sorted(activity(engine)) == sorted(rows)
