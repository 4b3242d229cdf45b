"""Identity resolution over a real extract: golden contacts equal the emulator's recorded truth."""

from collections import defaultdict

import pytest
import sqlalchemy as sa

from connectors.emulator import Emulator, running_emulator
from models.identity import checks as canonical_checks
from models.identity.activity import build_activity
from models.identity.canonical import build_canonical
from models.identity.phases import CanonicalConfig
from models.warehouse.db import open_warehouse
from models.warehouse.tables import Contact, ContactActivity, ContactMerge, ContactSource
from pipelines.runner import run_sync
from tests.pipelines.conftest import settings_for
from tests.pipelines.test_extract import extract_all

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
    counts = build_activity(engine, REGIONS)
    assert counts["activity_linked"] > counts["activity_unmatched"] > 0


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
    kept = [c for c, records in before.items() if c in after and records & after[c]]
    assert len(kept) >= len(before) - 6  # ids survive; only contacts whose records changed may move


def test_a_bridging_record_merges_two_contacts_and_the_old_id_stays_resolvable(sqlite_url: str) -> None:
    with running_emulator(seed=5, people=60) as emu:
        extract_all(emu, sqlite_url)
        engine = open_warehouse(sqlite_url)
        build_canonical(engine, CanonicalConfig(regions=REGIONS))
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
        report = build_canonical(engine, CanonicalConfig(regions=REGIONS))
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
def test_full_sync_through_dagster_builds_contacts_activity_and_passes_checks(
    emulator: Emulator, sqlite_url: str
) -> None:
    report = run_sync(settings_for(emulator, sqlite_url))
    assert report.success, report.failures
    assert report.assets["canonical/contacts"]["contacts"] == len(clusters(sqlite_url)) > 0
    assert report.assets["canonical/activity"]["activity"] > 0
    with open_warehouse(sqlite_url).connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(ContactActivity)).scalar_one() > 0


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
