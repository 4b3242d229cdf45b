"""The raw store: upserts by id with a content hash, cursors moving with their rows, deletions kept."""

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from models.warehouse.db import open_warehouse
from models.warehouse.store import (
    BadRecord,
    RawRow,
    RawStore,
    StreamKey,
    content_hash,
    keys_changed_since,
    latest_change,
    storable,
    storable_with_hash,
)
from models.warehouse.tables import Quarantine, RawRecord
from tests.models.warehouse.test_waits import StoppedError, lock_held, stop_after

KEY = StreamKey("zoho_crm", "lead")
T1 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def rows(*pairs: tuple[str, str]) -> list[RawRow]:
    return [RawRow(source_id=i, payload={"id": i, "Email": e}, modified_at=T1) for i, e in pairs]


@pytest.fixture
def store(warehouse_url: str) -> RawStore:
    return RawStore(open_warehouse(warehouse_url))


def stored(store: RawStore) -> dict[str, tuple[str, datetime | None]]:
    with store._engine.connect() as connection:
        result = connection.execute(sa.select(RawRecord.source_id, RawRecord.payload, RawRecord.deleted_at))
        return {source_id: (payload["Email"], deleted) for source_id, payload, deleted in result}


def test_content_hash_ignores_key_order_but_not_values() -> None:
    assert content_hash({"a": 1, "b": [1, 2]}) == content_hash({"b": [1, 2], "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": "1"})


def test_page_upsert_counts_new_changed_and_unchanged(store: RawStore) -> None:
    first = store.write_page(KEY, rows(("1", "a@x.com"), ("2", "b@x.com")), cursor={"modified": "t1"})
    assert (first.inserted, first.updated, first.unchanged) == (2, 0, 0)
    second = store.write_page(
        KEY, rows(("1", "a@x.com"), ("2", "B@x.com"), ("3", "c@x.com")), cursor={"m": 2}
    )
    assert (second.read, second.inserted, second.updated, second.unchanged) == (3, 1, 1, 1)
    assert stored(store)["2"][0] == "B@x.com"
    assert store.cursor(KEY) == {"m": 2}


def test_a_repeated_id_within_a_page_keeps_the_last_copy(store: RawStore) -> None:
    counts = store.write_page(KEY, rows(("1", "old@x.com"), ("1", "new@x.com")))
    assert counts.inserted == 1
    assert stored(store)["1"][0] == "new@x.com"


def test_cursor_and_rows_commit_together_or_not_at_all(store: RawStore) -> None:
    store.write_page(KEY, rows(("1", "a@x.com")), cursor={"at": 1})
    broken = [RawRow(source_id="2", payload={"Email": "b@x.com", "bad": {1, 2}}, modified_at=T1)]
    with pytest.raises(Exception):  # noqa: B017, PT011 - the driver's own error type differs per dialect
        store.write_page(KEY, broken, cursor={"at": 2})
    assert store.cursor(KEY) == {"at": 1}
    assert set(stored(store)) == {"1"}


def test_backfill_writes_rows_without_moving_the_cursor(store: RawStore) -> None:
    store.write_page(KEY, rows(("1", "a@x.com")), cursor={"at": 5})
    store.write_page(KEY, rows(("0", "old@x.com")), cursor={"at": 1}, move_cursor=False)
    assert store.cursor(KEY) == {"at": 5}
    assert set(stored(store)) == {"0", "1"}


def test_deletions_are_marked_not_dropped_and_a_return_revives(store: RawStore) -> None:
    store.write_page(KEY, rows(("1", "a@x.com"), ("2", "b@x.com")))
    counts = store.write_page(KEY, [], deleted_ids=["2", "99"])
    assert counts.deleted == 1
    assert stored(store)["2"][1] is not None
    assert store.write_page(KEY, rows(("2", "b@x.com"))).updated == 1
    assert stored(store)["2"][1] is None


def test_full_scan_marks_missing_records_deleted(store: RawStore) -> None:
    store.write_page(KEY, rows(("1", "a@x.com"), ("2", "b@x.com"), ("3", "c@x.com")))
    assert store.mark_missing_deleted(KEY, ["1", "3"]) == 1
    assert stored(store)["2"][1] is not None
    assert store.record_counts() == {("zoho_crm", "lead"): (3, 1)}


def test_bad_records_are_quarantined_with_their_reason(store: RawStore) -> None:
    counts = store.write_page(
        KEY, rows(("1", "a@x.com")), bad=[BadRecord("missing id", {"Email": "z@x.com"})]
    )
    assert (counts.read, counts.inserted, counts.quarantined) == (2, 1, 1)
    with store._engine.connect() as connection:
        reason, payload = connection.execute(sa.select(Quarantine.reason, Quarantine.payload)).one()
    assert reason == "missing id"
    assert payload == {"Email": "z@x.com"}


def test_run_bookkeeping_keeps_last_success_through_a_failure(store: RawStore) -> None:
    store.start_run(KEY, "run-1")
    store.finish_run(KEY, counts={"rows_read": 3})
    (ok,) = store.statuses()
    store.start_run(KEY, "run-2")
    store.finish_run(KEY, counts={"rows_read": 0}, error="zoho_crm GET /crm/v8/Leads -> 503")
    (failed,) = store.statuses()
    assert failed.last_status == "failed"
    assert failed.last_error == "zoho_crm GET /crm/v8/Leads -> 503"
    assert failed.last_success_at == ok.last_success_at


def test_nul_characters_are_stored_as_replacement_characters(store: RawStore) -> None:
    counts = store.write_page(KEY, [RawRow("1", {"id": "1", "First_Name": "Ann\x00e", "tags": ["a\x00"]})])
    assert counts.inserted == 1
    with store.engine.connect() as connection:
        payload = connection.execute(sa.select(RawRecord.payload)).scalar_one()
    assert payload == {"id": "1", "First_Name": "Ann\ufffde", "tags": ["a\ufffd"]}
    assert (
        store.write_page(
            KEY, [RawRow("1", {"id": "1", "First_Name": "Ann\x00e", "tags": ["a\x00"]})]
        ).unchanged
        == 1
    )


@pytest.mark.parametrize(
    "payload",
    [
        {"id": "1", "b": [1, {"z": None, "a": "é"}], "a": 2.5},
        {"id": "1", "First_Name": "Ann\x00e", "tags": ["a\x00"], "k\x00": 1},
        {"id": "1", "note": "a backslash then u0000: \\u0000", "when": T1},
    ],
)
def test_storable_with_hash_is_storable_then_content_hash(payload: dict[str, object]) -> None:
    cleaned = storable(payload)
    assert storable_with_hash(payload) == (cleaned, content_hash(cleaned))


def test_pages_written_on_a_held_connection_commit_one_by_one(store: RawStore) -> None:
    broken = [RawRow(source_id="2", payload={"Email": "b@x.com", "bad": {1, 2}}, modified_at=T1)]
    with store.holding_connection():
        store.write_page(KEY, rows(("1", "a@x.com")), cursor={"at": 1})
        assert RawStore(store.engine).cursor(KEY) == {"at": 1}  # committed: another connection sees it
        with pytest.raises(Exception):  # noqa: B017, PT011 - the driver's own error type differs per dialect
            store.write_page(KEY, broken, cursor={"at": 2})
        assert RawStore(store.engine).cursor(KEY) == {"at": 1}
        store.write_page(KEY, rows(("3", "c@x.com")), cursor={"at": 3})
    assert store.cursor(KEY) == {"at": 3}
    assert set(stored(store)) == {"1", "3"}


def _plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(child for sub in node.get("Plans", []) for child in _plan_nodes(sub))]


@pytest.mark.postgres
def test_postgres_looks_up_a_pages_stored_rows_by_id_without_statistics(postgres_schema_url: str) -> None:
    """Before the table's first ANALYZE (or with autovacuum off) the planner took ``source_id IN (...)``
    as a filter over every record of the object; the lookup must probe the unique index by id."""
    engine = open_warehouse(postgres_schema_url)
    store = RawStore(engine)
    store.write_page(KEY, rows(*((str(i), f"{i}@x.com") for i in range(3000))))
    sent: list[tuple[str, Any]] = []

    def remember(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
    ) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "raw_records" in statement:
            sent.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", remember)
    try:
        counts = store.write_page(KEY, rows(("5", "5@x.com"), ("77", "new@x.com"), ("9999", "n@x.com")))
    finally:
        sa.event.remove(engine, "before_cursor_execute", remember)
    assert (counts.unchanged, counts.updated, counts.inserted) == (1, 1, 1)
    ((statement, parameters),) = sent
    with engine.connect() as connection:
        (plan,) = connection.exec_driver_sql(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters
        ).scalar_one()
    scans = [node for node in _plan_nodes(plan["Plan"]) if node.get("Relation Name") == "raw_records"]
    assert scans
    assert all("source_id" in node.get("Index Cond", "") for node in scans)
    assert sum(node.get("Rows Removed by Filter", 0) for node in scans) == 0


@pytest.mark.postgres
def test_postgres_rereading_unchanged_records_leaves_them_on_their_page(postgres_schema_url: str) -> None:
    """A re-read stamps last_seen_at on each unchanged record. With room left on its page (the table's
    fillfactor) PostgreSQL keeps the new version there, with no new index entries; on a full page it
    moved the row elsewhere and indexed it again, growing the table with every incremental read."""
    engine = open_warehouse(postgres_schema_url)
    store = RawStore(engine)
    store.write_page(KEY, rows(*((str(i), f"{i}@x.com") for i in range(3000))))

    def pages(ids: list[str]) -> dict[str, str]:
        with engine.connect() as connection:
            found = connection.execute(
                sa.text(
                    "SELECT source_id, split_part(ctid::text, ',', 1) FROM raw_records"
                    " WHERE source_id = ANY(:ids)"
                ),
                {"ids": ids},
            ).all()
        return dict(found)

    every_tenth = [str(i) for i in range(0, 3000, 10)]  # a few rows of each page, one page at a time
    before = pages(every_tenth)
    for source_id in every_tenth:
        assert store.write_page(KEY, rows((source_id, f"{source_id}@x.com"))).unchanged == 1
    assert pages(every_tenth) == before


def test_changes_since_a_watermark_are_read_source_by_source_through_one_index(sqlite_url: str) -> None:
    """Records of the asked objects that moved after the watermark, and the latest change of their
    sources (any object), each source read by a (source, changed_at) range: raw_records keeps no
    other index over changed_at, as each costs every changed record a random page."""
    engine = open_warehouse(sqlite_url)
    store = RawStore(engine)
    store.write_page(KEY, rows(("old", "old@x.com")))
    with engine.connect() as connection:
        watermark = latest_change(connection, ["zoho_crm"])
    assert watermark is not None
    store.write_page(KEY, rows(("1", "a@x.com")))
    store.write_page(StreamKey("zoho_crm", "contact"), rows(("2", "b@x.com")))
    store.write_page(StreamKey("linkflow", "contact"), rows(("3", "c@x.com")))
    statements: list[tuple[str, Any]] = []

    def remember(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
    ) -> None:
        if "changed_at >" in statement:
            statements.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", remember)
    try:
        with engine.connect() as connection:
            moved = keys_changed_since(connection, watermark, [("zoho_crm", "lead")])
            latest_zoho = latest_change(connection, ["zoho_crm"])
    finally:
        sa.event.remove(engine, "before_cursor_execute", remember)
    with engine.connect() as connection:
        plans = [
            " / ".join(str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {s}", p))
            for s, p in statements
        ]
    with engine.connect() as connection:
        lead_1 = connection.execute(sa.select(RawRecord.id).where(RawRecord.source_id == "1")).scalar_one()
    assert moved.ids.tolist() == [lead_1]
    assert moved.latest == latest_zoho  # the zoho contact, written after the lead; not linkflow's
    assert plans == [
        "SEARCH raw_records USING INDEX ix_raw_records_source_changed_at (source=? AND changed_at>?)"
    ]


@pytest.mark.usefixtures("short_busy_timeout")
def test_a_page_waits_out_another_writer_past_the_busy_timeout(sqlite_url: str) -> None:
    # A second sync's identity resolution or a BI tool holding the lock longer than the busy timeout
    # used to fail the page; it is now stored once the other writer commits.
    store = RawStore(open_warehouse(sqlite_url))
    holder = lock_held(sqlite_url, 1.0)
    store.write_page(KEY, rows(("1", "a@x.com")), cursor={"modified": "t1"})
    holder.join()
    assert stored(store) == {"1": ("a@x.com", None)}
    assert store.cursor(KEY) == {"modified": "t1"}


@pytest.mark.usefixtures("short_busy_timeout")
def test_a_stop_while_another_writer_holds_the_lock_leaves_the_page_and_cursor_unstored(
    sqlite_url: str,
) -> None:
    store = RawStore(open_warehouse(sqlite_url), checkpoint=stop_after(0.3))
    holder = lock_held(sqlite_url, 2.0)
    with pytest.raises(StoppedError):
        store.write_page(KEY, rows(("1", "a@x.com")), cursor={"modified": "t1"})
    holder.join()
    assert stored(store) == {}
    assert store.cursor(KEY) is None


def test_a_page_read_before_a_stop_is_still_stored_when_the_lock_is_free(sqlite_url: str) -> None:
    def stopped() -> None:
        raise StoppedError

    store = RawStore(open_warehouse(sqlite_url), checkpoint=stopped)
    store.write_page(KEY, rows(("1", "a@x.com")), cursor={"modified": "t1"})
    assert stored(store) == {"1": ("a@x.com", None)}
