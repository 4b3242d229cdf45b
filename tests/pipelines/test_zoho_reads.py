"""Zoho extracts end to end under each plausible vendor behaviour: chain limits, the deleted feed's
retention, Bigin without a feed, Bigin ignoring If-Modified-Since, Bigin records awaiting approval."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from connectors.emulator import Emulator
from connectors.emulator.behaviours import Behaviours
from models.warehouse.db import open_warehouse
from models.warehouse.store import RawStore, StreamKey
from models.warehouse.tables import RawRecord
from pipelines.clients import clients_for
from pipelines.extract import run_extract
from pipelines.runner import run_sync
from pipelines.streams import Stream
from tests.connectors.test_zoho_reads import with_bulk_leads
from tests.pipelines.conftest import settings_for

LEADS = Stream("zoho_crm", "lead", writable=True)
BIGIN = Stream("zoho_bigin", "contact", writable=True)
DAILY = timedelta(hours=24)


def live_and_deleted(url: str, stream: Stream) -> tuple[set[str], set[str]]:
    query = sa.select(RawRecord.source_id, RawRecord.deleted_at).where(
        RawRecord.source == stream.source, RawRecord.object == stream.object
    )
    with open_warehouse(url).connect() as connection:
        rows = connection.execute(query).all()
    return {i for i, gone in rows if gone is None}, {i for i, gone in rows if gone is not None}


def raw_rows(url: str, stream: Stream) -> set[tuple[str, str, bool]]:
    query = sa.select(RawRecord.source_id, RawRecord.content_hash, RawRecord.deleted_at).where(
        RawRecord.source == stream.source, RawRecord.object == stream.object
    )
    with open_warehouse(url).connect() as connection:
        return {(i, digest, gone is None) for i, digest, gone in connection.execute(query)}


def extract(emu: Emulator, url: str, stream: Stream, **options: object):
    with clients_for(settings_for(emu, url), (stream.source,)) as clients:
        return run_extract(stream, clients, RawStore(open_warehouse(url)), **options)  # type: ignore[arg-type]


def test_a_module_past_the_chain_limit_is_read_whole_on_a_first_sync_and_a_full_refresh(sqlite_url):
    behaviours = Behaviours(zoho_token_chain_limit=450)
    with Emulator(dataset=with_bulk_leads(1_000, per_second=3), behaviours=behaviours) as emu:
        leads = set(emu.dataset.tables["zoho_crm/lead"])
        first = extract(emu, sqlite_url, LEADS)
        assert first.counts.read == first.counts.inserted == len(leads)  # each record read once
        assert live_and_deleted(sqlite_url, LEADS) == (leads, set())
        again = extract(emu, sqlite_url, LEADS, full_refresh=True)
    assert again.counts.read == again.counts.unchanged == len(leads)
    assert again.counts.deleted == 0
    assert live_and_deleted(sqlite_url, LEADS) == (leads, set())


def test_a_deletion_older_than_the_feeds_retention_is_still_found(sqlite_url):
    with Emulator(seed=3, people=40) as emu:
        extract(emu, sqlite_url, LEADS)
        # As if the last sync ran 70 days ago and a lead was deleted 65 days ago: Zoho's feed has
        # dropped that entry (recycle-bin entries are kept 60 days).
        now = datetime.now(UTC)
        victim, recent = sorted(emu.dataset.tables["zoho_crm/lead"])[:2]
        emu.delete_zoho_record("zoho_crm/lead", victim, when=now - timedelta(days=65))
        emu.delete_zoho_record("zoho_crm/lead", recent)
        store = RawStore(open_warehouse(sqlite_url))
        key = StreamKey("zoho_crm", "lead")
        stale = {**(store.cursor(key) or {}), "deleted_since": (now - timedelta(days=70)).isoformat()}
        store.write_page(key, [], cursor=stale)
        lines: list[str] = []
        report = extract(emu, sqlite_url, LEADS, log=lines.append)
        live, deleted = live_and_deleted(sqlite_url, LEADS)
        assert deleted == {victim, recent}
        assert live == set(emu.dataset.tables["zoho_crm/lead"])
        assert report.counts.deleted == 2
        assert any("full id scan" in line and "60 days" in line for line in lines), lines
        # The scan moved the deletion watermark: the next run trusts the feed again.
        lines.clear()
        extract(emu, sqlite_url, LEADS, log=lines.append)
    assert not any("full id scan" in line for line in lines)


@pytest.mark.parametrize("answer", ["missing_404", "record_id_400", "empty_204", "feed"])
def test_bigin_deletions_are_found_whatever_deleted_answers(sqlite_url, answer):
    with Emulator(seed=4, people=40, behaviours=Behaviours(bigin_deleted=answer)) as emu:
        assert extract(emu, sqlite_url, BIGIN, full_scan_every=DAILY).counts.inserted > 0
        first, second, third = sorted(emu.dataset.tables["zoho_bigin/contact"])[:3]
        emu.delete_zoho_record("zoho_bigin/contact", first)
        emu.delete_zoho_record("zoho_bigin/contact", second)
        extract(emu, sqlite_url, BIGIN, full_scan_every=DAILY)  # a scan is not due yet
        _, deleted = live_and_deleted(sqlite_url, BIGIN)
        assert deleted == ({first, second} if answer == "feed" else set())
        extract(emu, sqlite_url, BIGIN, full_scan_every=timedelta(0))  # the scan is due
        assert live_and_deleted(sqlite_url, BIGIN) == (
            set(emu.dataset.tables["zoho_bigin/contact"]),
            {first, second},
        )
        emu.delete_zoho_record("zoho_bigin/contact", third)
        extract(emu, sqlite_url, BIGIN, full_refresh=True)  # `sync --full-refresh` scans too
        live, deleted = live_and_deleted(sqlite_url, BIGIN)
    assert deleted == {first, second, third}
    assert live == set(emu.dataset.tables["zoho_bigin/contact"])


def test_bigin_lands_the_same_rows_whether_it_honours_if_modified_since_or_not(tmp_path):
    # A clock fixed in the future makes both emulators stamp their changes with the same time.
    future = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    warehouses = {}
    for honours in (True, False):
        url = f"sqlite:///{tmp_path / f'honours_{honours}.db'}"
        behaviours = Behaviours(bigin_honours_if_modified_since=honours)
        with Emulator(seed=6, people=50, now=future, behaviours=behaviours) as emu:
            extract(emu, url, BIGIN)
            emu.mutate(seed=2, new=4, updated=12)
            report = extract(emu, url, BIGIN)
            assert 0 < report.counts.read < len(emu.dataset.tables["zoho_bigin/contact"])
            assert live_and_deleted(url, BIGIN)[0] == set(emu.dataset.tables["zoho_bigin/contact"])
        warehouses[honours] = raw_rows(url, BIGIN)
    assert warehouses[True] == warehouses[False]


def test_bigin_records_awaiting_approval_are_read_and_never_written(sqlite_url):
    with Emulator(seed=8, people=60, behaviours=Behaviours(bigin_unapproved_share=0.3)) as emu:
        report = run_sync(settings_for(emu, sqlite_url))
        assert report.success, report.failures
        contacts = set(emu.dataset.tables["zoho_bigin/contact"])
        with open_warehouse(sqlite_url).connect() as connection:
            payloads = dict(
                connection.execute(
                    sa.select(RawRecord.source_id, RawRecord.payload).where(RawRecord.source == "zoho_bigin")
                ).all()
            )
        waiting = {i for i, p in payloads.items() if p["$approval_state"] != "approved"}
        written = {w.record_id for w in emu.writes() if w.app == "zoho_bigin"}
    assert set(payloads) == contacts
    assert waiting
    assert written, "the guard must leave the approved records writable"
    assert not written & waiting
