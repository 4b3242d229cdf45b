"""Identity resolution over a real extract: golden contacts equal the emulator's recorded truth."""

import threading
import time
from collections import Counter, defaultdict
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.emulator import Emulator, running_emulator
from connectors.emulator.dataset import truth_key
from connectors.stop import STOP
from models.identity import canonical
from models.identity import checks as canonical_checks
from models.identity.activity import build_activity
from models.identity.canonical import build_canonical
from models.identity.linking import IdentityConfig
from models.identity.lookup import records_per_source
from models.identity.phases import CanonicalConfig
from models.warehouse.db import open_warehouse
from models.warehouse.store import StreamKey, read_cursor
from models.warehouse.tables import (
    Contact,
    ContactActivity,
    ContactFieldLineage,
    ContactIdentifier,
    ContactMerge,
    ContactSource,
    RawRecord,
)
from models.warehouse.worker_processes import map_in_processes
from pipelines.runner import run_sync
from pipelines.settings import SOURCES
from tests.pipelines.conftest import settings_for
from tests.pipelines.test_extract import extract_all

CANONICAL_CHECKS = (
    "identifiers_belong_to_one_contact",
    "records_link_to_one_contact",
    "merges_have_no_cycles",
)
REGIONS = {"linkflow": "CN", "clicksend": "US", "clickfunnels": "US", "zoho_crm": "US", "zoho_bigin": "US"}


def clusters(url: str) -> dict[str, set[tuple[str, str, str]]]:
    with open_warehouse(url).connect() as connection:
        rows = connection.execute(
            sa.select(
                ContactSource.contact_id, ContactSource.source, ContactSource.object, ContactSource.source_id
            )
        ).all()
    found: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    for contact_id, source, obj, source_id in rows:
        found[contact_id].add((source, obj, source_id))
    return dict(found)


def assert_clusters_match_truth(emu: Emulator, url: str) -> None:
    truth = emu.dataset.truth
    people: dict[int, set[tuple[str, str, str]]] = defaultdict(set)
    for key, person in truth.items():
        if key[1] not in ("sms", "event"):
            people[person].add(key)
    found = clusters(url)
    by_record = {record: contact for contact, records in found.items() for record in records}
    for person, records in people.items():
        live = {r for r in records if r in by_record}
        assert len({by_record[r] for r in live}) <= 1, f"person {person} split across contacts"
    for contact, records in found.items():
        owners = {truth.get(record) for record in records}
        assert len(owners) == 1, f"{contact} glues people {owners}"


ACTIVITY_IDS = {
    "linkflow/event": "linkflow:event",
    "clicksend/sms_history": "clicksend:sms:history",
    "clicksend/sms_inbound": "clicksend:sms:inbound",
    "clicksend/sms_receipt": "clicksend:sms:receipt",
}
"""Emulator table of each kind of activity -> the prefix of its ``contact_activity.activity_id``."""


def activity_people(emu: Emulator) -> dict[str, int | None]:
    """Every event and message the emulator serves, by activity id, with the person its truth gives it
    (None for activity of unknown people: anonymous visitors, messages to strangers)."""
    truth = emu.truth()
    return {
        f"{prefix}:{record_id}": truth.get(truth_key(table, record_id))
        for table, prefix in ACTIVITY_IDS.items()
        for record_id in emu.dataset.tables[table]
    }


def golden_contact_of_each_person(emu: Emulator, url: str) -> dict[int, str]:
    """Person -> the one golden contact holding their live records (a split person fails here)."""
    truth = emu.truth()
    with open_warehouse(url).connect() as connection:
        rows = connection.execute(
            sa.select(
                ContactSource.contact_id, ContactSource.source, ContactSource.object, ContactSource.source_id
            )
            .join(RawRecord, RawRecord.id == ContactSource.raw_record_id)
            .where(RawRecord.deleted_at.is_(None))
        ).all()
    contacts: dict[int, set[str]] = defaultdict(set)
    for contact_id, source, obj, source_id in rows:
        person = truth.get((source, obj, source_id))
        if person is not None:
            contacts[person].add(contact_id)
    split = {person: found for person, found in contacts.items() if len(found) != 1}
    assert split == {}, "people held by several golden contacts"
    return {person: found.pop() for person, found in contacts.items()}


def assert_activity_lands_on_the_right_contacts(emu: Emulator, url: str) -> dict[str, str | None]:
    """Each event and message is stored once, on its person's golden contact, or on none when its
    person is unknown; returns what was expected, by activity id."""
    golden = golden_contact_of_each_person(emu, url)
    people = activity_people(emu)
    homeless = {aid: person for aid, person in people.items() if person is not None and person not in golden}
    assert homeless == {}, "activity of people the warehouse holds no contact for"
    expected = {aid: None if person is None else golden[person] for aid, person in people.items()}
    with open_warehouse(url).connect() as connection:
        stored = dict(
            connection.execute(sa.select(ContactActivity.activity_id, ContactActivity.contact_id)).all()
        )
    assert sorted(stored.keys() - expected.keys()) == [], "activity the emulator does not serve"
    wrong = {
        aid: (stored.get(aid, "missing"), want)
        for aid, want in expected.items()
        if stored.get(aid, "missing") != want
    }
    assert wrong == {}, "activity on the wrong contact (stored, expected)"
    return expected


def test_golden_contacts_equal_the_truth_and_checks_pass(emulator: Emulator, warehouse_url: str) -> None:
    extract_all(emulator, warehouse_url)
    engine = open_warehouse(warehouse_url)
    report = build_canonical(engine, CanonicalConfig(regions=REGIONS))
    assert report.contacts == len(clusters(warehouse_url))
    assert_clusters_match_truth(emulator, warehouse_url)
    for check in (
        canonical_checks.identifiers_belong_to_one_contact,
        canonical_checks.records_link_to_one_contact,
        canonical_checks.merges_have_no_cycles,
    ):
        assert check(engine).passed, check(engine).description
    counts = build_activity(engine, REGIONS).as_metadata()
    expected = assert_activity_lands_on_the_right_contacts(emulator, warehouse_url)
    linked = sum(contact is not None for contact in expected.values())
    assert {name: counts[name] for name in ("activity", "activity_linked", "activity_unmatched")} == {
        "activity": len(expected),
        "activity_linked": linked,
        "activity_unmatched": len(expected) - linked,
    }


def test_ids_are_stable_and_changes_keep_the_truth(emulator: Emulator, sqlite_url: str) -> None:
    extract_all(emulator, sqlite_url)
    engine = open_warehouse(sqlite_url)
    build_canonical(engine, CanonicalConfig(regions=REGIONS))
    before = clusters(sqlite_url)
    again = build_canonical(engine, CanonicalConfig(regions=REGIONS))
    assert (again.new_contacts, again.merges, again.splits) == (0, 0, 0)
    assert clusters(sqlite_url) == before
    emulator.mutate(seed=31, new=4, updated=8, deleted=3)
    extract_all(emulator, sqlite_url)
    build_canonical(engine, CanonicalConfig(regions=REGIONS))
    assert_clusters_match_truth(emulator, sqlite_url)
    after = clusters(sqlite_url)
    # Exactly the contacts that lost a record, or whose person gained one, change; every other one
    # keeps its id and its records.
    removed = set().union(*before.values()) - set().union(*after.values())
    added = set().union(*after.values()) - set().union(*before.values())
    grown = [records for records in after.values() if records & added]
    touched = {c for c, records in before.items() if records & removed or any(records & g for g in grown)}
    assert touched, "the changes touched no contact"
    kept = {contact: records for contact, records in before.items() if contact not in touched}
    assert {contact: after.get(contact) for contact in kept} == kept


def test_a_bridging_record_merges_two_contacts_and_the_old_id_stays_resolvable(sqlite_url: str) -> None:
    with running_emulator(seed=5, people=60) as emu:
        extract_all(emu, sqlite_url)
        engine = open_warehouse(sqlite_url)
        build_canonical(
            engine, CanonicalConfig(regions=REGIONS, identity=IdentityConfig(household_split=False))
        )
        with engine.connect() as connection:
            (a_id, a_email), (b_id, b_phone) = connection.execute(
                sa.select(Contact.contact_id, sa.func.coalesce(Contact.email, Contact.phone))
                .where(Contact.email.is_not(None), Contact.phone.is_not(None))
                .order_by(Contact.contact_id)
                .limit(2)
            ).all()
        # A new Zoho lead carrying A's email and B's phone: the same person as both, so they merge.
        zoho = emu.dataset.tables["zoho_crm/lead"]
        template = dict(next(iter(zoho.values())))
        with engine.connect() as connection:
            b_phone = connection.execute(
                sa.select(Contact.phone).where(Contact.contact_id == b_id)
            ).scalar_one()
        lead_id = "4970762000099999999"
        emu_lead = {**template, "id": lead_id, "Email": a_email, "Phone": b_phone, "Mobile": None}
        from models.warehouse.store import RawRow, RawStore, StreamKey

        RawStore(engine).write_page(StreamKey("zoho_crm", "lead"), [RawRow(lead_id, emu_lead)])
        report = build_canonical(
            engine, CanonicalConfig(regions=REGIONS, identity=IdentityConfig(household_split=False))
        )
        assert report.merges == 1
        with engine.connect() as connection:
            merge = connection.execute(
                sa.select(ContactMerge.old_contact_id, ContactMerge.new_contact_id)
            ).one()
            survivor = connection.execute(
                sa.select(ContactSource.contact_id).where(ContactSource.source_id == lead_id)
            ).scalar_one()
        assert merge == (max(a_id, b_id), min(a_id, b_id))  # the oldest id survives
        assert survivor == min(a_id, b_id)


@pytest.mark.slow
def test_full_sync_through_dagster_puts_each_event_and_message_on_its_persons_contact(
    emulator: Emulator, sqlite_url: str
) -> None:
    """The emulator knows whose each Linkflow event and ClickSend message (history, reply, receipt)
    is; after a sync, and after another one over new people, events and messages, every row sits on
    that person's golden contact, and the activity of unknown people on none."""
    report = run_sync(settings_for(emulator, sqlite_url))
    assert report.success, report.failures
    assert report.assets["canonical/contacts"]["contacts"] == len(clusters(sqlite_url))
    expected = assert_activity_lands_on_the_right_contacts(emulator, sqlite_url)
    kinds = {(aid.rsplit(":", 1)[0], contact is not None) for aid, contact in expected.items()}
    assert {(prefix, True) for prefix in ACTIVITY_IDS.values()} <= kinds, "some kind never linked"
    assert {("linkflow:event", False), ("clicksend:sms:history", False)} <= kinds, "no unknown people"
    assert report.assets["canonical/activity"]["activity"] == len(expected)

    emulator.mutate(seed=3, new=6, updated=6, events=12, messages=8)
    again = run_sync(settings_for(emulator, sqlite_url))
    assert again.success, again.failures
    grown = assert_activity_lands_on_the_right_contacts(emulator, sqlite_url)
    added = Counter(aid.rsplit(":", 1)[0] for aid in grown.keys() - expected.keys())
    assert (added["linkflow:event"], added["clicksend:sms:history"]) == (12, 8)
    # The second run is incremental all through: activity from what changed, checks on its changes.
    assert report.checks["records_link_to_one_contact"]["scope"] == "whole warehouse"
    assert {again.checks[name]["scope"] for name in CANONICAL_CHECKS} == {"this run's changes"}
    assert again.assets["canonical/activity"]["full_rebuild"] is False
    # The records per source the UI plots: kept by the canonical runs, equal to counting them all.
    counted = records_per_source(open_warehouse(sqlite_url), SOURCES)
    assert {s: again.assets["canonical/contacts"][f"records_{s}"] for s in counted} == counted


def test_settings_add_to_the_blocklist_limit_and_priorities(emulator: Emulator, sqlite_url: str) -> None:
    assert run_sync(settings_for(emulator, sqlite_url, contact_sync_push="off")).success
    with open_warehouse(sqlite_url).connect() as connection:
        email = connection.execute(
            sa.text(
                "SELECT value FROM contact_identifiers WHERE kind = 'email' AND value IS NOT NULL "
                "GROUP BY value HAVING count(DISTINCT raw_record_id) >= 2 ORDER BY value LIMIT 1"
            )
        ).scalar_one()
    tuned = settings_for(
        emulator,
        sqlite_url,
        contact_sync_push="off",
        contact_sync_blocked_identifiers=email.upper(),
        contact_sync_source_priority="first_name,last_name:zoho_crm",
    )
    report = run_sync(tuned, full_refresh=True)
    assert report.success, report.failures
    assert report.assets["canonical/contacts"]["full_rebuild"] is True
    assert report.assets["zoho_crm/lead"]["full_refresh"] is True  # credentials kept on a full refresh
    assert report.assets["canonical/activity"]["full_rebuild"] is True
    assert {report.checks[name]["scope"] for name in CANONICAL_CHECKS} == {"whole warehouse"}
    with open_warehouse(sqlite_url).connect() as connection:
        rule = connection.execute(
            sa.text("SELECT rule FROM suppressed_identifiers WHERE kind = 'email' AND value = :v"),
            {"v": email},
        ).scalar_one()
        priority_rows = connection.execute(
            sa.text("SELECT count(*) FROM contact_field_lineage WHERE rule = 'source_priority'")
        ).scalar_one()
    assert rule == "blocklist"
    assert priority_rows > 0


def resolution_tables(url: str) -> dict[str, list[tuple[object, ...]]]:
    """The rows a rebuild writes, surrogate ids left out, sorted."""
    tables = {
        "contacts": sa.select(Contact),
        "sources": sa.select(*(c for c in ContactSource.__table__.columns if c.name != "id")),
        "identifiers": sa.select(*(c for c in ContactIdentifier.__table__.columns if c.name != "id")),
        "lineage": sa.select(ContactFieldLineage),
    }
    with open_warehouse(url).connect() as connection:
        return {
            name: sorted((tuple(row) for row in connection.execute(query)), key=repr)
            for name, query in tables.items()
        }


def test_a_rebuild_reading_payloads_in_small_slices_equals_one_reading_them_at_once(
    emulator: Emulator, warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The full rebuild parses payloads a slice at a time (by id) and drops them, and many slices go
    to worker processes: slices of 7 records read by two workers must give exactly what one slice
    read here gives, with no record missed or read twice at their edges."""
    extract_all(emulator, warehouse_url)
    engine = open_warehouse(warehouse_url)
    workers: list[int] = []

    def counted(work: Any, tasks: Any, *, processes: int) -> Any:
        workers.append(processes)
        return map_in_processes(work, tasks, processes=processes)

    monkeypatch.setattr(canonical, "map_in_processes", counted)
    monkeypatch.setattr(canonical, "available_processes", lambda: 2)
    monkeypatch.setattr(canonical, "LOAD_CHUNK", 7)
    sliced = build_canonical(engine, CanonicalConfig(regions=REGIONS))
    in_slices = resolution_tables(warehouse_url)
    monkeypatch.setattr(canonical, "LOAD_CHUNK", 1_000_000)
    whole = build_canonical(engine, CanonicalConfig(regions=REGIONS))
    assert workers == [2, 1]
    assert (whole.new_contacts, whole.merges, whole.splits) == (0, 0, 0)
    assert sliced.records == whole.records == len(set().union(*clusters(warehouse_url).values()))
    assert resolution_tables(warehouse_url) == in_slices
    assert_clusters_match_truth(emulator, warehouse_url)


def test_a_stop_while_a_whole_check_waits_to_record_itself_ends_the_run_at_once(sqlite_url: str) -> None:
    """The first sync checks the whole warehouse and records that it passed. Another process holds
    SQLite's write lock when that record is written, and the sync is stopped: the run ends canceled
    within seconds (it used to wait for the holder, up to ten minutes), nothing is pushed and the
    check is not recorded, so the next sync checks whole again."""
    name = "merges_have_no_cycles"
    key = StreamKey("canonical", "checks", name)
    real = canonical_checks.CHECKS[name]
    held, release = threading.Event(), threading.Event()
    stopped_at: list[float] = []

    def hold_the_write_lock() -> None:
        with open_warehouse(sqlite_url).begin() as connection:
            connection.exec_driver_sql("DELETE FROM alembic_version WHERE 0")
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold_the_write_lock)

    def checked_then_stopped(engine: Any, run_id: str | None) -> Any:
        result = real(engine, run_id)
        holder.start()
        assert held.wait(5)
        STOP.request("a stop for the test")
        stopped_at.append(time.monotonic())
        return result

    with running_emulator(seed=5, people=40) as emu:
        settings = settings_for(emu, sqlite_url)
        canonical_checks.CHECKS[name] = checked_then_stopped
        try:
            report = run_sync(settings)
            took = time.monotonic() - stopped_at[0]
        finally:
            canonical_checks.CHECKS[name] = real
            release.set()
            if holder.is_alive():
                holder.join()
        assert report.stopped, report.failures
        assert took < 10, took
        assert not emu.writes(), "nothing may be pushed from a stopped run"
        with open_warehouse(sqlite_url).connect() as connection:
            assert read_cursor(connection, key) is None
        STOP.clear()
        again = run_sync(settings)
        assert again.success, again.failures
        assert again.checks[name]["scope"] == "whole warehouse"
        with open_warehouse(sqlite_url).connect() as connection:
            assert (read_cursor(connection, key) or {}).get("full_passed_at")
