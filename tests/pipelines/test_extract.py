"""Extract against the emulator: complete first syncs, cheap incremental ones, windows, isolation."""

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.emulator import Emulator, running_emulator
from connectors.emulator.behaviours import Behaviours
from connectors.emulator.dataset import ALL_TABLES, truth_key
from models.identity.activity import build_activity
from models.warehouse.db import open_warehouse
from models.warehouse.store import RawStore, StreamKey
from models.warehouse.tables import ContactActivity, RawRecord, SourceAccount, StreamState
from pipelines.clients import clients_for
from pipelines.extract import refresh_account_country, run_backfill, run_extract
from pipelines.runner import run_sync
from pipelines.settings import SOURCES
from pipelines.streams import STREAMS, Stream
from tests.models.warehouse.test_waits import lock_held
from tests.pipelines.conftest import settings_for

SMS_PARTS = {
    "clicksend/sms_history": "history",
    "clicksend/sms_inbound": "inbound",
    "clicksend/sms_receipt": "receipt",
}
#: Sources whose APIs say when a record is deleted (Zoho CRM's deleted feed); the others keep the row.
DELETE_FEEDS = {("zoho_crm", "lead"), ("zoho_crm", "contact")}


def emulator_ids(emu: Emulator) -> dict[tuple[str, str], set[str]]:
    """What a complete read must store: every listed record of every table, by (source, object)."""
    expected: dict[tuple[str, str], set[str]] = defaultdict(set)
    for table in ALL_TABLES:
        for record_id, record in emu.dataset.tables[table].items():
            if table == "clickfunnels/contact" and record.get("anonymous") is not None:
                continue
            source, obj, raw_id = truth_key(table, record_id)
            part = SMS_PARTS.get(table)
            expected[(source, obj)].add(f"{part}:{raw_id}" if part else raw_id)
    return dict(expected)


def stored_ids(url: str, *, include_deleted: bool = False) -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    query = sa.select(RawRecord.source, RawRecord.object, RawRecord.source_id)
    if not include_deleted:
        query = query.where(RawRecord.deleted_at.is_(None))
    with open_warehouse(url).connect() as connection:
        for source, obj, source_id in connection.execute(query):
            found[(source, obj)].add(source_id)
    return dict(found)


def extract_all(emu: Emulator, url: str, streams: tuple[Stream, ...] = STREAMS) -> int:
    """Extract every stream once; returns the rows read."""
    settings = settings_for(emu, url)
    store = RawStore(open_warehouse(url))
    with clients_for(settings, SOURCES) as clients:
        return sum(run_extract(stream, clients, store).counts.read for stream in streams)


def test_first_sync_stores_exactly_the_emulators_records(emulator: Emulator, warehouse_url: str) -> None:
    extract_all(emulator, warehouse_url)
    assert stored_ids(warehouse_url) == emulator_ids(emulator)


def test_incremental_sync_reads_only_the_changes_and_converges(
    emulator: Emulator, warehouse_url: str
) -> None:
    first = extract_all(emulator, warehouse_url)
    emulator.mutate(seed=5, new=3, updated=6, deleted=2, events=7, messages=4)
    emulator.reset_counters()
    second = extract_all(emulator, warehouse_url)
    # Only the changes (plus the short lookback and ClickSend's trailing status window) are read,
    # each stream with a fixed handful of requests rather than one per page of everything.
    assert second < first / 5
    assert emulator.total_requests("zoho_crm") == 4  # two modules: changed records, then deletions
    assert emulator.total_requests("zoho_bigin") <= 3
    assert emulator.total_requests("linkflow") <= 6
    assert emulator.total_requests("clickfunnels") <= 4
    expected = emulator_ids(emulator)
    stored = stored_ids(warehouse_url)
    for key, ids in expected.items():
        if key in DELETE_FEEDS:
            assert stored[key] == ids, key
        else:  # without a delete feed a deleted record stays stored until a full scan
            assert ids <= stored[key], key


def test_nothing_changed_means_nothing_rewritten(emulator: Emulator, sqlite_url: str) -> None:
    extract_all(emulator, sqlite_url)
    store = RawStore(open_warehouse(sqlite_url))
    settings = settings_for(emulator, sqlite_url)
    with clients_for(settings, SOURCES) as clients:
        reports = [run_extract(stream, clients, store) for stream in STREAMS]
    assert sum(r.counts.inserted + r.counts.updated for r in reports) == 0


def test_zoho_deletions_are_marked_not_dropped(emulator: Emulator, sqlite_url: str) -> None:
    extract_all(emulator, sqlite_url)
    before = emulator_ids(emulator)
    deleted = emulator.mutate(seed=9, deleted=6).deleted
    extract_all(emulator, sqlite_url)
    everything = stored_ids(sqlite_url, include_deleted=True)
    live = stored_ids(sqlite_url)
    for key in DELETE_FEEDS:
        assert live[key] == emulator_ids(emulator)[key]
        assert everything[key] == before[key]  # the deleted rows are kept, marked
        assert len(everything[key]) - len(live[key]) == deleted.get("/".join(key), 0)
    assert sum(deleted.get("/".join(key), 0) for key in DELETE_FEEDS) > 0


def test_full_refresh_scan_finds_clickfunnels_deletions(emulator: Emulator, sqlite_url: str) -> None:
    stream = Stream("clickfunnels", "contact", writable=True)
    extract_all(emulator, sqlite_url, (stream,))
    victim = next(iter(emulator_ids(emulator)[("clickfunnels", "contact")]))
    with clients_for(settings_for(emulator, sqlite_url), ("clickfunnels",)) as clients:
        clients.clickfunnels.http.request("DELETE", f"/api/v2/contacts/{victim}")  # type: ignore[union-attr]
        report = run_extract(stream, clients, RawStore(open_warehouse(sqlite_url)), full_refresh=True)
    assert report.counts.deleted == 1
    assert victim not in stored_ids(sqlite_url)[("clickfunnels", "contact")]


def test_backfill_window_rereads_without_moving_the_cursor(emulator: Emulator, warehouse_url: str) -> None:
    extract_all(emulator, warehouse_url)
    store = RawStore(open_warehouse(warehouse_url))
    stream = Stream("zoho_crm", "lead", writable=True)
    key = StreamKey("zoho_crm", "lead")
    cursor = store.cursor(key)
    with clients_for(settings_for(emulator, warehouse_url), ("zoho_crm",)) as clients:
        report = run_backfill(
            stream, clients, store, datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(days=1)
        )
    assert report.counts.read == len(emulator_ids(emulator)[("zoho_crm", "lead")])
    assert report.counts.unchanged == report.counts.read
    assert store.cursor(key) == cursor


def test_a_failing_source_does_not_stop_the_others(emulator: Emulator, sqlite_url: str) -> None:
    settings = settings_for(emulator, sqlite_url, linkflow_app_secret="wrong-secret-value")
    report = run_sync(settings)
    assert not report.success
    assert any(f.startswith("linkflow/contact: ") for f in report.failures), report.failures
    assert all("wrong-secret-value" not in failure for failure in report.failures)
    stored = stored_ids(sqlite_url)
    for key, ids in emulator_ids(emulator).items():
        if key[0] != "linkflow":
            assert stored[key] == ids, key
    statuses = {s.key: s for s in RawStore(open_warehouse(sqlite_url)).statuses()}
    assert statuses[StreamKey("linkflow", "contact")].last_status == "failed"
    assert statuses[StreamKey("zoho_crm", "lead")].last_status == "succeeded"


@pytest.mark.parametrize("source", ["zoho_bigin"])
def test_sync_through_dagster_reports_rows_and_requests(
    emulator: Emulator, sqlite_url: str, source: str
) -> None:
    settings = settings_for(emulator, sqlite_url, contact_sync_sources=source)
    report = run_sync(settings)
    assert report.success, report.failures
    meta = report.assets[f"{source}/contact"]
    expected = len(emulator_ids(emulator)[(source, "contact")])
    assert meta["rows_read"] == meta["rows_inserted"] == expected
    # Reverse sync asks Zoho once per run who the connection acts as (own writes); the rest is extract's.
    users = sum(
        n for (app, path), n in emulator.request_counts().items() if app == source and "/users" in path
    )
    assert meta["requests"] == emulator.total_requests(source) - users
    assert meta["cursor_after"]["modified_since"] is not None


def test_a_second_sync_of_a_locked_stream_refuses_with_one_line(
    emulator: Emulator, warehouse_url: str
) -> None:
    from models.warehouse.locks import source_lock

    settings = settings_for(emulator, warehouse_url, contact_sync_sources="zoho_crm")
    with source_lock(open_warehouse(warehouse_url), "extract-zoho_crm-lead"):
        report = run_sync(settings)
    assert not report.success
    assert report.failures == [
        "zoho_crm/lead: another sync is running it on this warehouse; try again when it ends"
    ]
    assert (
        stored_ids(warehouse_url)[("zoho_crm", "contact")] == emulator_ids(emulator)[("zoho_crm", "contact")]
    )
    again = run_sync(settings)
    assert again.success, again.failures


def test_clickfunnels_is_scanned_whole_on_its_cadence_to_find_deletions(
    emulator: Emulator, sqlite_url: str
) -> None:
    stream = Stream("clickfunnels", "contact", writable=True)
    store = RawStore(open_warehouse(sqlite_url))
    daily = timedelta(hours=24)
    with clients_for(settings_for(emulator, sqlite_url), ("clickfunnels",)) as clients:
        first = run_extract(stream, clients, store, full_scan_every=daily)  # never scanned: scans now
        assert store.last_success(StreamKey("clickfunnels", "contact", "id_scan")) is not None
        assert first.counts.inserted == len(emulator_ids(emulator)[("clickfunnels", "contact")])
        victim = sorted(emulator_ids(emulator)[("clickfunnels", "contact")])[0]
        clients.clickfunnels.http.request("DELETE", f"/api/v2/contacts/{victim}")  # type: ignore[union-attr]
        assert run_extract(stream, clients, store, full_scan_every=daily).counts.deleted == 0  # not due yet
        due = run_extract(stream, clients, store, full_scan_every=timedelta(0))
    assert due.counts.deleted == 1
    assert victim not in stored_ids(sqlite_url)[("clickfunnels", "contact")]


def test_inbound_sms_carrying_only_timestamp_send_get_their_times(sqlite_url: str) -> None:
    """The v3 spec's /sms/inbound example has ``timestamp_send`` and no ``timestamp``."""
    stream = Stream("clicksend", "sms", writable=False, activity=True)
    store = RawStore(open_warehouse(sqlite_url))
    with running_emulator(
        seed=11, people=120, behaviours=Behaviours(clicksend_inbound_time="timestamp_send")
    ) as emu:
        inbound = emu.dataset.tables["clicksend/sms_inbound"]
        with clients_for(settings_for(emu, sqlite_url), ("clicksend",)) as clients:
            first = run_extract(stream, clients, store)
            assert first.cursor_after is not None
            assert first.cursor_after["inbound_timestamp"] == max(m["timestamp"] for m in inbound.values())
            emu.reset_counters()
            run_extract(stream, clients, store)
        assert emu.request_counts()[("clicksend", "GET /clicksend/v3/sms/inbound")] == 1
    build_activity(store.engine, {"clicksend": "US"})
    with store.engine.connect() as connection:
        raw = dict(
            connection.execute(
                sa.select(RawRecord.source_id, RawRecord.source_modified_at).where(
                    RawRecord.source == "clicksend", RawRecord.source_id.like("inbound:%")
                )
            ).all()
        )
        occurred = dict(
            connection.execute(
                sa.select(ContactActivity.activity_id, ContactActivity.occurred_at).where(
                    ContactActivity.activity_id.like("clicksend:sms:inbound:%")
                )
            ).all()
        )
    expected = {f"inbound:{m}": datetime.fromtimestamp(r["timestamp"], UTC) for m, r in inbound.items()}
    assert raw == expected
    assert occurred == {f"clicksend:sms:{k}": v for k, v in expected.items()}


def test_clicksend_list_contacts_are_scanned_whole_to_find_deletions(
    emulator: Emulator, warehouse_url: str
) -> None:
    stream = Stream("clicksend", "list_contact", writable=True)
    store = RawStore(open_warehouse(warehouse_url))
    daily = timedelta(hours=24)
    contacts = emulator.dataset.tables["clicksend/list_contact"]
    with clients_for(settings_for(emulator, warehouse_url), ("clicksend",)) as clients:
        first = run_extract(stream, clients, store, full_scan_every=daily)  # never scanned: scans now
        assert first.counts.inserted == len(contacts)
        assert store.last_success(StreamKey("clicksend", "list_contact", "id_scan")) is not None
        victim = min(contacts.values(), key=lambda r: r["contact_id"])
        clients.clicksend.delete_contact(victim["list_id"], victim["contact_id"])  # type: ignore[union-attr]
        assert run_extract(stream, clients, store, full_scan_every=daily).counts.deleted == 0  # not due yet
        due = run_extract(stream, clients, store, full_scan_every=timedelta(0))
        assert due.counts.deleted == 1
        assert str(victim["contact_id"]) not in stored_ids(warehouse_url)[("clicksend", "list_contact")]
        other = min(emulator.dataset.tables["clicksend/list_contact"].values(), key=lambda r: r["contact_id"])
        clients.clicksend.delete_contact(other["list_id"], other["contact_id"])  # type: ignore[union-attr]
        refreshed = run_extract(stream, clients, store, full_refresh=True)
    assert refreshed.counts.deleted == 1
    assert (
        stored_ids(warehouse_url)[("clicksend", "list_contact")]
        == emulator_ids(emulator)[("clicksend", "list_contact")]
    )


@pytest.mark.parametrize("after", ["keyset", "id_filter"])
def test_clickfunnels_converges_whether_after_continues_the_order_or_filters_ids(
    sqlite_url: str, after: str, caplog: pytest.LogCaptureFixture
) -> None:
    """ClickFunnels does not say what ``after`` means under ``sort_property=updated_at``."""
    stream = Stream("clickfunnels", "contact", writable=True)
    store = RawStore(open_warehouse(sqlite_url))
    with running_emulator(seed=11, people=120, behaviours=Behaviours(clickfunnels_after=after)) as emu:
        settings = settings_for(emu, sqlite_url)
        with caplog.at_level("WARNING", logger="connectors.clickfunnels"):
            with clients_for(settings, ("clickfunnels",)) as clients:
                run_extract(stream, clients, store)
                client = clients.clickfunnels
                assert client is not None
                ids = sorted(emulator_ids(emu)[("clickfunnels", "contact")], key=int)
                for contact_id in ids[:30]:
                    assert client.update_contact(contact_id, {"last_name": f"Changed {contact_id}"}).ok
                for n in range(3):
                    assert client.upsert_contact(435231, {"email_address": f"new{n}@example.org"}).ok
                assert client.delete_contact(ids[-1]).ok
            with clients_for(settings, ("clickfunnels",)) as clients:
                second = run_extract(stream, clients, store)
        listed = {
            str(i): r for i, r in emu.dataset.tables["clickfunnels/contact"].items() if r["anonymous"] is None
        }
    assert second.counts.inserted == 3
    assert second.counts.updated == 30
    with store.engine.connect() as connection:
        stored = dict(
            connection.execute(
                sa.select(RawRecord.source_id, RawRecord.payload).where(RawRecord.source == "clickfunnels")
            ).all()
        )
    assert set(stored) == set(listed) | {ids[-1]}  # no delete feed: the deleted one waits for a scan
    assert {i: stored[i] for i in listed} == listed
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == (2 if after == "id_filter" else 0), warnings  # one line per run that saw it


def from_the_future(value: object) -> object:
    """A cursor of the same shape, every time and id in it pushed past anything the source holds."""
    if isinstance(value, dict):
        return {key: from_the_future(item) for key, item in value.items()}
    if isinstance(value, int) and not isinstance(value, bool):
        return value + 10**9
    if isinstance(value, str):
        return re.sub(r"^20\d\d", "2099", value)
    return value


RUN_CLOCK_KEYS = {"deleted_since", "updated_until"}
"""Cursor keys stamped from the reading run's own clock rather than from the data."""


def without_run_clock(cursor: dict[str, object]) -> dict[str, object]:
    return {key: value for key, value in cursor.items() if key not in RUN_CLOCK_KEYS}


def test_full_refresh_ignores_a_stale_cursor_and_stores_a_fresh_one(
    emulator: Emulator, sqlite_url: str
) -> None:
    """Every stream's stored cursor is replaced by one from the future, under which an incremental
    read finds nothing; `sync --full-refresh` reads every record again and stores the cursor a first
    read stores, not the stale one."""
    settings = settings_for(emulator, sqlite_url, contact_sync_push="off")
    assert run_sync(settings).success
    store = RawStore(open_warehouse(sqlite_url))
    keys = {stream.name: StreamKey(stream.source, stream.object) for stream in STREAMS}
    first = {name: store.cursor(key) for name, key in keys.items()}
    with open_warehouse(sqlite_url).begin() as connection:
        for name, key in keys.items():
            connection.execute(
                sa.update(StreamState)
                .where(StreamState.source == key.source, StreamState.object == key.object)
                .where(StreamState.stream == key.stream)
                .values(cursor=from_the_future(first[name]))
            )
    report = run_sync(settings, full_refresh=True)  # as `contact-sync sync --full-refresh`
    assert report.success, report.failures
    held = emulator_ids(emulator)
    assert {s.name: report.assets[s.name]["rows_read"] for s in STREAMS} == {
        s.name: len(held[(s.source, s.object)]) for s in STREAMS
    }
    after = {name: store.cursor(key) or {} for name, key in keys.items()}
    clock = [value for cursor in after.values() for key, value in cursor.items() if key in RUN_CLOCK_KEYS]
    assert clock, "no cursor carries a time of the run"
    assert not [value for value in clock if str(value).startswith("2099")]
    assert {name: without_run_clock(cursor) for name, cursor in after.items()} == {
        name: without_run_clock(first[name] or {}) for name in keys
    }


@pytest.mark.usefixtures("short_busy_timeout")
def test_the_account_country_waits_out_another_writer(sqlite_url: str) -> None:
    # Stored after the stream's pages; a plain write failed after the busy timeout, which failed a
    # stream whose pages were stored and left its state "running".
    with running_emulator(seed=3, people=20) as emu:
        settings = settings_for(emu, sqlite_url)
        engine = open_warehouse(sqlite_url)
        holder = lock_held(sqlite_url, 1.0)
        with clients_for(settings, ("clicksend",)) as clients:
            refresh_account_country(engine, clients, "clicksend", lambda _line: None)
        holder.join()
        with engine.connect() as connection:
            stored = connection.execute(sa.select(SourceAccount.source, SourceAccount.country)).all()
        assert [tuple(row) for row in stored] == [("clicksend", "US")]


def _records_read(url: str) -> dict[str, int]:
    with open_warehouse(url).connect() as connection:
        rows = connection.execute(
            sa.select(StreamState.source, StreamState.object, StreamState.last_counts).where(
                StreamState.source.in_(SOURCES)
            )
        ).all()
    return {f"{source}/{obj}": int((counts or {}).get("rows_read", 0)) for source, obj, counts in rows}


def test_the_lookback_setting_sets_how_much_each_incremental_read_reads_again(tmp_path: Path) -> None:
    # Records edited three minutes apart, then a sync that reads them: the next sync re-reads what
    # changed within the lookback before each watermark. With the connectors' own 5 to 10 minutes
    # that is every edit; at 0 only those at the watermark's own second (the bound is inclusive).
    # Zoho and Linkflow filter by time on the server (ClickFunnels and ClickSend read whole pages).
    tables = ("linkflow/contact", "zoho_crm/contact")
    read_again = {}
    for minutes in (None, 0.0):
        url = f"sqlite:///{tmp_path}/lookback_{minutes}.db"
        with running_emulator(seed=4, people=60) as emu:
            settings = settings_for(emu, url, contact_sync_push="off", contact_sync_lookback_minutes=minutes)
            with clients_for(settings, tuple(SOURCES)) as clients:
                expected = timedelta(minutes=minutes) if minutes is not None else None
                readers = (clients.clickfunnels, clients.clicksend, clients.linkflow, clients.zoho_crm)
                assert all(expected is None or client.lookback == expected for client in readers)
            assert run_sync(settings).success
            now = datetime.now(UTC)
            for table in tables:
                ids = sorted(emu.dataset.tables[table], key=str)[:4]
                for number, record_id in enumerate(ids):
                    when = now if number == len(ids) - 1 else now - timedelta(minutes=3)
                    field = "title" if table.startswith("linkflow") else "Last_Name"
                    emu.edit(table, record_id, {field: f"Edit{number}"}, when=when)
            assert run_sync(settings).success
            assert run_sync(settings).success
        counts = _records_read(url)
        read_again[minutes] = {table: counts[table] for table in tables}
    assert read_again[None] == dict.fromkeys(tables, 4), read_again
    assert read_again[0.0] == dict.fromkeys(tables, 1), read_again
