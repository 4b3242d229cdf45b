"""Reverse sync against the emulator: fill-empty pushes, batch limits, rejections, dry runs, no echo."""

import copy
import json
import math
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import phonenumbers
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connectors.config import HttpOptions
from connectors.emulator import Emulator, FaultConfig, running_emulator
from connectors.emulator.behaviours import Behaviours, IdentifyShared
from connectors.emulator.dataset import Dataset
from connectors.emulator.generate import generate_dataset
from connectors.factory import Clients
from connectors.http import RetryPolicy
from models.identity.canonical import build_canonical
from models.identity.phases import CanonicalConfig
from models.push.field_map import CANONICAL_FIELDS, FULL_NAME, PushConfig, destination_map
from models.warehouse.db import open_warehouse
from models.warehouse.tables import Contact, ContactFieldLineage, ContactSource, PushLedger
from pipelines.clients import clients_for
from pipelines.reverse_sync import opt_out_lists, push_destination
from pipelines.runner import run_sync
from pipelines.settings import Settings, SettingsError, load_settings
from pipelines.streams import STREAMS, Stream
from tests.pipelines.conftest import settings_for
from tests.pipelines.test_canonical import REGIONS, clusters
from tests.pipelines.test_extract import extract_all

PUSH_KEYS = (
    "reverse_sync/clickfunnels/contact",
    "reverse_sync/clicksend/list_contact",
    "reverse_sync/linkflow/contact",
    "reverse_sync/zoho_crm/lead",
    "reverse_sync/zoho_crm/contact",
    "reverse_sync/zoho_bigin/contact",
)


def ledger(url: str, **where: object) -> list[dict[str, object]]:
    query = sa.select(PushLedger.__table__)
    for column, value in where.items():
        query = query.where(getattr(PushLedger, column) == value)
    with open_warehouse(url).connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]


def planned(report_assets: dict[str, dict[str, object]]) -> int:
    return sum(int(report_assets[key]["planned"]) for key in PUSH_KEYS)


def test_fill_empty_lands_and_the_second_cycle_writes_nothing(emulator: Emulator, warehouse_url: str) -> None:
    settings = settings_for(emulator, warehouse_url)
    first = run_sync(settings)
    assert first.success, first.failures
    sent = ledger(warehouse_url, status="sent")
    assert sent, "the emulator's people have fields one system lacks and another has"
    # Empty fields filled, and the sandbox's email opt-outs carried to Zoho (false -> true only).
    assert {row["reason"] for row in sent} == {"fill_empty", "consent_opt_out"}
    assert all(row["before_value"] in (None, "") for row in sent if row["reason"] == "fill_empty")
    assert {(r["before_value"], r["after_value"]) for r in sent if r["reason"] == "consent_opt_out"} == {
        ("False", "True")
    }
    # One write per record the ledger sent fields to, and no other.
    writes = sorted((w.app, str(w.record_id)) for w in emulator.writes())
    assert writes == sorted({(str(row["destination"]), str(row["record_id"])) for row in sent})

    golden = golden_and_lineage(warehouse_url)

    emulator.reset_counters()
    writes_before = len(emulator.writes())
    second = run_sync(settings)
    assert second.success, second.failures
    assert planned(second.assets) == 0
    assert len(emulator.writes()) == writes_before  # no echo: our own writes plan nothing
    # Nor do the copies we wrote, read back, take a golden value (or its lineage) from where it came.
    assert golden_and_lineage(warehouse_url) == golden


def golden_and_lineage(url: str) -> tuple[set[tuple[object, ...]], set[tuple[object, ...]]]:
    """Every golden contact's values, and where each value came from."""
    with open_warehouse(url).connect() as connection:
        contacts = connection.execute(sa.select(Contact.__table__))
        values = {
            tuple(row[name] for name in ("contact_id", *CANONICAL_FIELDS)) for row in contacts.mappings()
        }
        lineage = {
            tuple(row)
            for row in connection.execute(
                sa.select(
                    ContactFieldLineage.contact_id,
                    ContactFieldLineage.field,
                    ContactFieldLineage.value,
                    ContactFieldLineage.source,
                    ContactFieldLineage.source_id,
                )
            )
        }
    return values, lineage


BATCH_NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def zoho_pairs(count: int) -> Dataset:
    """``count`` people, each a Zoho CRM lead and a Bigin contact sharing an email and nothing else
    to fill but one field each: the lead lacks the city its Bigin twin has, the Bigin contact the
    title its lead has. So reverse sync owes exactly ``count`` records to each Zoho destination."""
    sample = generate_dataset(seed=2, people=30, now=BATCH_NOW)
    lead_template = next(iter(sample.tables["zoho_crm/lead"].values()))
    bigin_template = next(iter(sample.tables["zoho_bigin/contact"].values()))
    empty = {"Phone": None, "Mobile": None, "Secondary_Email": None, "Street": None, "State": None}
    dataset = Dataset.empty(seed=2, now=BATCH_NOW)
    for number in range(count):
        person = {"First_Name": "Batch", "Last_Name": f"Person{number}", "Full_Name": f"Batch Person{number}"}
        email = f"batch.person{number}@batch.example.org"
        lead_id, bigin_id = dataset.zoho_id("zoho_crm"), dataset.zoho_id("zoho_bigin")
        dataset.tables["zoho_crm/lead"][lead_id] = {
            **copy.deepcopy(lead_template),
            **empty,
            **person,
            "id": lead_id,
            "Email": email,
            "Company": "Batch Ltd",
            "Designation": "Buyer",
            "City": None,
            "Zip_Code": None,
            "Country": None,
        }
        dataset.tables["zoho_bigin/contact"][bigin_id] = {
            **copy.deepcopy(bigin_template),
            **empty,
            **person,
            "id": bigin_id,
            "Email": email,
            "Account_Name": None,
            "Home_Phone": None,
            "Title": None,
            "Mailing_City": "Springfield",
            "Mailing_Zip": None,
            "Mailing_Country": None,
        }
        dataset.truth[("zoho_crm", "lead", lead_id)] = number
        dataset.truth[("zoho_bigin", "contact", bigin_id)] = number
    dataset.people = count
    return dataset


def test_zoho_pushes_more_than_100_records_in_the_fewest_calls_the_limit_allows(sqlite_url: str) -> None:
    """230 records owed to each Zoho destination go in exactly ceil(230 / 100) = 3 update calls each
    (the emulator refuses a call of more than 100, as Zoho does), and every record is written once."""
    people = 230
    with Emulator(dataset=zoho_pairs(people)) as emu:
        settings = settings_for(emu, sqlite_url, contact_sync_sources="zoho_crm,zoho_bigin")
        report = run_sync(settings)
        assert report.success, report.failures
        counts = emu.request_counts()
        writes = emu.writes()
        leads = set(emu.dataset.tables["zoho_crm/lead"])
        bigin = set(emu.dataset.tables["zoho_bigin/contact"])
    calls = math.ceil(people / 100)
    assert counts[("zoho_crm", "PUT /zoho-crm/crm/v8/{module}")] == calls
    assert counts[("zoho_bigin", "PUT /zoho-bigin/bigin/v2/{module}")] == calls
    assert sorted(endpoint for _, endpoint in counts if not endpoint.startswith("GET ")) == [
        "PUT /zoho-bigin/bigin/v2/{module}",
        "PUT /zoho-crm/crm/v8/{module}",
    ]
    for key in ("zoho_crm/lead", "zoho_bigin/contact"):
        meta = report.assets[f"reverse_sync/{key}"]
        assert (meta["planned"], meta["sent"], meta["failed"], meta["requests"]) == (people, people, 0, calls)
    written = Counter((w.app, w.method, w.record_id, json.dumps(w.body, sort_keys=True)) for w in writes)
    expected = [("zoho_crm", lead, {"City": "Springfield"}) for lead in leads]
    expected += [("zoho_bigin", contact, {"Title": "Buyer"}) for contact in bigin]
    assert written == Counter(
        (app, "PUT", record, json.dumps({**body, "id": record}, sort_keys=True))
        for app, record, body in expected
    )


ZOHO_PUTS = {
    "zoho_crm": ("zoho_crm/lead", "PUT /zoho-crm/crm/v8/{module}"),
    "zoho_bigin": ("zoho_bigin/contact", "PUT /zoho-bigin/bigin/v2/{module}"),
}


def test_writes_answered_with_garbage_are_unconfirmed_once_and_settled_by_the_read_back(
    sqlite_url: str,
) -> None:
    """Each Zoho product pushes one batch. Seed 1 answers one of the two with its body cut short (the
    emulator applied it) and the other with a CDN's "Just a moment..." page (nothing applied): each is
    one call, neither halved nor repeated, and its fields count unconfirmed. The next run reads both
    again and settles them as a dropped connection's write is settled: the applied batch plans
    nothing, the other is sent once."""
    people = 4
    garbage = FaultConfig(
        challenge_rate=0.5, truncate_rate=0.5, garbage_methods=frozenset({"PUT", "POST"}), seed=1
    )
    with Emulator(dataset=zoho_pairs(people), faults=garbage) as emu:
        settings = settings_for(emu, sqlite_url, contact_sync_sources="zoho_crm,zoho_bigin")
        first = run_sync(settings)
        assert first.success, first.failures
        assert emu.injected_faults() == {"challenge": 1, "truncate": 1}
        counts = emu.request_counts()
        applied = Counter(w.app for w in emu.writes())
        for app, (table, put) in ZOHO_PUTS.items():
            meta = first.assets[f"reverse_sync/{table}"]
            assert (meta["planned"], meta["sent"], meta["unconfirmed"], meta["failed"]) == (
                people,
                0,
                people,
                0,
            )
            assert counts[(app, put)] == 1, f"{app}: the batch was split or sent again"
        assert sorted(applied[app] for app in ZOHO_PUTS) == [0, people]
        assert Counter(r["status"] for r in ledger(sqlite_url)) == {"unconfirmed": 2 * people}

        emu.set_faults(FaultConfig())
        second = run_sync(settings)
        assert second.success, second.failures
        written = Counter((w.app, w.record_id) for w in emu.writes())
        held = {app: set(emu.dataset.tables[table]) for app, (table, _) in ZOHO_PUTS.items()}
    for app, (table, _) in ZOHO_PUTS.items():
        again = second.assets[f"reverse_sync/{table}"]
        assert (again["planned"], again["sent"]) == ((0, 0) if applied[app] else (people, people)), app
    # Every record ends written exactly once, whichever way the garbage answer hid the outcome.
    assert written == Counter((app, record) for app, records in held.items() for record in records)


def test_dry_run_writes_nothing_and_predicts_the_real_run(emulator: Emulator, sqlite_url: str) -> None:
    settings = settings_for(emulator, sqlite_url)
    dry = run_sync(settings, dry_run=True)  # as `contact-sync sync --dry-run` does
    assert dry.success, dry.failures
    assert emulator.writes() == []
    predicted = {
        (r["destination"], r["record_id"], r["field"], r["after_value"])
        for r in ledger(sqlite_url, dry_run=True)
    }
    real = run_sync(settings)
    assert real.success, real.failures
    done = {
        (r["destination"], r["record_id"], r["field"], r["after_value"])
        for r in ledger(sqlite_url, status="sent")
    }
    assert predicted == done
    assert planned(dry.assets) == planned(real.assets)


def test_a_rejected_record_is_recorded_and_retried_next_run(emulator: Emulator, sqlite_url: str) -> None:
    settings = settings_for(emulator, sqlite_url, contact_sync_push="dry-run")
    run_sync(settings)
    victim = next(r for r in ledger(sqlite_url, dry_run=True) if r["destination"] == "linkflow")
    emulator.reject_writes("linkflow", victim["record_id"])
    victim_fields = ledger(sqlite_url, dry_run=True, destination="linkflow", record_id=victim["record_id"])
    others = [
        r
        for r in ledger(sqlite_url, dry_run=True, destination="linkflow")
        if r["record_id"] != victim["record_id"]
    ]
    first = run_sync(settings.model_copy(update={"contact_sync_push": "on"}))
    assert first.success, first.failures  # a refused record is the ledger's news, not a failed run
    meta = first.assets["reverse_sync/linkflow/contact"]
    assert (meta["rejected"], meta["sent"]) == (len(victim_fields), len(others))
    rejected = ledger(sqlite_url, status="rejected", record_id=victim["record_id"])
    assert len(rejected) == len(victim_fields)
    assert {r["error"] for r in rejected} == {"rejected by the emulator's test hook"}
    emulator.allow_writes("linkflow", victim["record_id"])
    run_sync(settings.model_copy(update={"contact_sync_push": "on"}))
    assert ledger(sqlite_url, status="sent", record_id=victim["record_id"])


@pytest.mark.parametrize("shape", ["per_record", "whole_call"])
def test_a_record_changed_since_it_was_read_is_not_overwritten(
    emulator: Emulator, sqlite_url: str, shape: str
) -> None:
    """Whichever way Zoho refuses a conditional write (the refused records inside data[], or the whole
    call with nothing written), the edited lead is a conflict and every other lead is written now."""
    emulator.set_behaviours(Behaviours(zoho_conflict=shape))
    settings = settings_for(emulator, sqlite_url, contact_sync_push="dry-run")
    run_sync(settings)
    row = next(
        r
        for r in ledger(sqlite_url, dry_run=True)
        if r["destination"] == "zoho_crm" and r["object"] == "lead"
    )
    lead_id, field = str(row["record_id"]), str(row["field"])
    with clients_for(settings, ("zoho_crm",)) as clients:
        assert clients.zoho_crm is not None
        outside = clients.zoho_crm.update("Leads", [{"id": lead_id, "Lead_Source": "Trade Show"}])
        assert outside[0].ok  # someone edits the lead after our extract read it
        emulator.reset_counters()
        report = push_destination(
            Stream("zoho_crm", "lead", writable=True),
            open_warehouse(sqlite_url),
            clients,
            PushConfig(),
            run_id="conflict-run",
            dry_run=False,
        )
    rows = ledger(sqlite_url, run_id="conflict-run")
    mine = [r for r in rows if r["record_id"] == lead_id]
    assert {r["status"] for r in mine} == {"conflict"}
    if shape == "per_record":  # Zoho's own words for the refusal (api-notes §5.7)
        assert {r["error"] for r in mine} == {
            "Record updated time has already passed if-unmodified-since time"
        }
    else:
        assert all(str(r["error"]).startswith("changed at Zoho since it was read") for r in mine)
    others = [r for r in rows if r["record_id"] != lead_id and r["status"] != "invalid"]
    assert others
    assert {r["status"] for r in others} == {"sent"}, "the good leads of the batch are written in this run"
    assert report.conflict == len(mine)  # the edited lead alone; the rest of its batch went through
    assert report.sent == len(others)
    assert not emulator.dataset.tables["zoho_crm/lead"][lead_id].get(field)  # not overwritten
    # Whole call: one more PUT (the batch without the edited lead) and one read back by id.
    calls = math.ceil(len({r["record_id"] for r in rows if r["status"] != "invalid"}) / 100)
    counts = emulator.request_counts()
    extra = 1 if shape == "whole_call" else 0
    assert counts.get(("zoho_crm", "PUT /zoho-crm/crm/v8/{module}"), 0) == calls + extra
    assert counts.get(("zoho_crm", "GET /zoho-crm/crm/v8/{module}"), 0) == extra
    # The next full cycle reads the edited lead again and then fills the field.
    again = run_sync(settings.model_copy(update={"contact_sync_push": "on"}))
    assert again.success, again.failures
    assert emulator.dataset.tables["zoho_crm/lead"][lead_id].get(field)


def test_non_empty_values_survive_unless_the_field_is_opted_in(emulator: Emulator, sqlite_url: str) -> None:
    # The rename below is to a clearly different first name, which household splitting reads as another
    # person (tests/models/identity/test_households.py); here only the overwrite rules are at stake.
    settings = settings_for(emulator, sqlite_url, contact_sync_household_split="off")
    assert run_sync(settings).success
    # A person held by one Zoho record (a lead) and by ClickSend, both with a first name.
    with open_warehouse(sqlite_url).connect() as connection:
        pairs = connection.execute(
            sa.text(
                "SELECT z.source_id, c.source_id FROM contact_sources z JOIN contact_sources c "
                "ON z.contact_id = c.contact_id WHERE z.source = 'zoho_crm' AND z.object = 'lead' "
                "AND c.source = 'clicksend' AND (SELECT count(*) FROM contact_sources o "
                "WHERE o.contact_id = z.contact_id AND o.source IN ('zoho_crm', 'zoho_bigin')) = 1"
            )
        ).all()
    leads = emulator.dataset.tables["zoho_crm/lead"]
    contacts = emulator.dataset.tables["clicksend/list_contact"]
    lead_id, contact_id = next(
        (str(z), str(c))
        for z, c in pairs
        if leads[str(z)].get("First_Name") and contacts[int(c)].get("first_name")
    )
    original = contacts[int(contact_id)]["first_name"]
    with clients_for(settings, ("zoho_crm",)) as clients:
        assert clients.zoho_crm is not None
        assert clients.zoho_crm.update("Leads", [{"id": lead_id, "First_Name": "Zebedee"}])[0].ok

    # First names from Zoho CRM win the golden record (recency alone would depend on which record
    # our own pushes touched last); ClickSend keeps its own non-empty first name all the same.
    zoho_first = {
        "contact_sync_source_priority": "first_name:zoho_crm",
        "contact_sync_household_split": "off",
    }
    assert run_sync(settings_for(emulator, sqlite_url, **zoho_first)).success
    assert contacts[int(contact_id)]["first_name"] == original

    opted = settings_for(
        emulator, sqlite_url, contact_sync_push_overwrite="clicksend/list_contact:first_name", **zoho_first
    )
    assert run_sync(opted).success
    assert contacts[int(contact_id)]["first_name"] == "Zebedee"
    rows = ledger(sqlite_url, status="sent", record_id=contact_id, field="first_name")
    assert [(r["before_value"], r["after_value"], r["reason"]) for r in rows] == [
        (original, "Zebedee", "overwrite_opt_in")
    ]


def create_setting(emu: Emulator) -> str:
    """Creates into every destination: the sandbox's workspace and first ordinary list, a UDC channel."""
    workspace = emu.dataset.clickfunnels_workspace["id"]
    lists = emu.dataset.clicksend_lists.items()
    list_id = next(i for i, item in lists if str(item["list_name"]).casefold() != "opt-out list")
    return (
        f"clickfunnels/contact={workspace};clicksend/list_contact={list_id};"
        "linkflow/contact=udc-contact-sync;zoho_crm/lead;zoho_bigin/contact"
    )


def golden_count(url: str) -> int:
    with open_warehouse(url).connect() as connection:
        return int(connection.execute(sa.text("SELECT count(*) FROM contacts")).scalar_one())


def test_opted_in_creates_land_once_and_read_back_as_the_same_people(
    emulator: Emulator, sqlite_url: str
) -> None:
    assert run_sync(settings_for(emulator, sqlite_url)).success  # updates only: creates are opt-in
    assert not ledger(sqlite_url, reason="create")
    people = golden_count(sqlite_url)

    settings = settings_for(emulator, sqlite_url, contact_sync_push_create=create_setting(emulator))
    first = run_sync(settings)
    assert first.success, first.failures
    created = {key: int(first.assets[f"reverse_sync/{key}"]["created"]) for key in CREATE_KEYS}
    assert all(created.values()), created
    rows = ledger(sqlite_url, reason="create", status="sent")
    assert all(row["record_id"] for row in rows), "every created row names the record it made"
    # Zoho CRM: a person held as a contact is not created again as a lead.
    with open_warehouse(sqlite_url).connect() as connection:
        crm_contacts = set(
            connection.execute(
                sa.text("SELECT contact_id FROM contact_sources WHERE source = 'zoho_crm'")
            ).scalars()
        )
    lead_creates = {row["contact_id"] for row in rows if row["destination"] == "zoho_crm"}
    assert lead_creates
    assert not lead_creates & crm_contacts

    writes = len(emulator.writes())
    second = run_sync(settings)
    assert second.success, second.failures
    # The created records were read back and joined the people they were made for.
    assert golden_count(sqlite_url) == people
    assert not [r for r in ledger(sqlite_url, reason="create") if r["run_id"] == second.run_id]
    third = run_sync(settings)
    assert third.success
    assert planned(third.assets) == 0
    # The second and third runs wrote once to each record the second run's ledger sent to, no more.
    later = sorted((w.app, str(w.record_id)) for w in emulator.writes()[writes:])
    sent_second = ledger(sqlite_url, run_id=second.run_id, status="sent")
    assert later == sorted({(str(r["destination"]), str(r["record_id"])) for r in sent_second})


CREATE_KEYS = (
    "clickfunnels/contact",
    "clicksend/list_contact",
    "linkflow/contact",
    "zoho_crm/lead",
    "zoho_bigin/contact",
)


def test_a_create_setting_without_its_container_is_refused_in_one_line() -> None:
    with pytest.raises(SettingsError, match="clicksend/list_contact needs the list id"):
        load_settings(contact_sync_push_create="clicksend/list_contact")


def test_creates_into_two_objects_of_one_system_are_refused_in_one_line() -> None:
    """A person Zoho CRM lacks is missing from its leads and its contacts alike: with both named, one
    run would create them in both."""
    with pytest.raises(SettingsError, match="names both zoho_crm/lead and zoho_crm/contact: a person"):
        load_settings(contact_sync_push_create="zoho_crm/lead;zoho_bigin/contact;zoho_crm/contact")


def test_a_create_whose_answer_was_lost_is_not_sent_again_until_read_back(
    emulator: Emulator, sqlite_url: str
) -> None:
    setting = create_setting(emulator)
    settings = settings_for(emulator, sqlite_url)
    assert run_sync(settings).success  # fills the empty fields: what follows plans creates alone
    list_id = setting.split("clicksend/list_contact=")[1].split(";")[0]
    stream = Stream("clicksend", "list_contact", writable=True)
    engine = open_warehouse(sqlite_url)
    with clients_for(settings, ("clicksend",)) as clients:
        assert clients.clicksend is not None
        config = PushConfig(  # the lists are read before the connection starts dropping
            create_missing=frozenset({("clicksend", "list_contact")}),
            create_parents={("clicksend", "list_contact"): list_id},
            opt_out_lists=opt_out_lists(clients),
        )
        # Creates only: the look at the list just before them (`pipelines.late_arrivals`) goes through.
        dropped = FaultConfig(drop_rate=1.0, apps=frozenset({"clicksend"}), methods=frozenset({"POST"}))
        emulator.set_faults(dropped)
        lost = push_destination(stream, engine, clients, config, run_id="lost", dry_run=False)
        emulator.set_faults(FaultConfig())
        assert lost.created == 0
        states = Counter(r["status"] for r in ledger(sqlite_url, run_id="lost"))
        assert +states == +Counter(unconfirmed=lost.unconfirmed, invalid=lost.invalid)
        assert lost.unconfirmed == lost.planned - lost.invalid > 0
        # Not read back yet: the same contacts are not created again, whatever the first attempt did.
        again = push_destination(stream, engine, clients, config, run_id="again", dry_run=False)
    assert again.created == 0
    waiting = {r["contact_id"] for r in ledger(sqlite_url, run_id="lost", status="unconfirmed")}
    assert not waiting & {r["contact_id"] for r in ledger(sqlite_url, run_id="again")}

    # After an extract has read ClickSend again, the creates that never landed are made, once each.
    only_clicksend = f"clicksend/list_contact={list_id}"
    report = run_sync(settings.model_copy(update={"contact_sync_push_create": only_clicksend}))
    assert report.success, report.failures
    posts = [w for w in emulator.writes() if w.method == "POST" and w.app == "clicksend"]
    people = [(w.body.get("email"), w.body.get("phone_number")) for w in posts]
    assert len(people) == len(set(people)) == len(waiting), "each waiting contact created once"
    created = ledger(sqlite_url, run_id=report.run_id, status="sent", reason="create")
    assert {r["contact_id"] for r in created} == waiting


def list_reads(emu: Emulator) -> int:
    """Pages of ClickSend list contacts served so far."""
    return sum(
        n
        for (app, route), n in emu.request_counts().items()
        if route.startswith("GET") and route.endswith("/contacts") and app == "clicksend"
    )


def synced_for_creates(
    emu: Emulator, url: str, stream: Stream, parent: str
) -> tuple[Settings, Engine, PushConfig]:
    """After a first sync, which fills the empty fields so that what follows plans creates alone: its
    settings, the warehouse, and a push config creating into ``stream`` under ``parent``."""
    settings = settings_for(emu, url)
    assert run_sync(settings).success
    config = PushConfig(
        regions=REGIONS,
        create_missing=frozenset({(stream.source, stream.object)}),
        create_parents={(stream.source, stream.object): parent},
    )
    return settings, open_warehouse(url), config


def test_a_person_added_to_the_list_after_the_extract_is_linked_not_created_twice(
    emulator: Emulator, warehouse_url: str
) -> None:
    """ClickSend has no upsert: a contact someone adds to the list between our extract and our push
    (the same phone, typed as people type it) holds our create back, so the list never holds the
    person twice; the next sync reads that contact and links it instead."""
    setting = create_setting(emulator)
    list_id = setting.split("clicksend/list_contact=")[1].split(";")[0]
    stream = Stream("clicksend", "list_contact", writable=True)
    settings, engine, config = synced_for_creates(emulator, warehouse_url, stream, list_id)
    preview = push_destination(stream, engine, None, config, run_id="preview", dry_run=True)
    assert preview.planned > 0
    creates = ledger(warehouse_url, run_id="preview", reason="create")
    phones = {
        str(r["contact_id"]): phonenumbers.parse(str(r["after_value"]))
        for r in creates
        if r["field"] == "phone_number"
    }
    first_names = {str(r["contact_id"]): r["after_value"] for r in creates if r["field"] == "first_name"}
    target, number = next(
        (c, n)
        for c, n in sorted(phones.items())
        if phonenumbers.region_code_for_number(n) == "US" and c in first_names
    )
    typed = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)  # "(415) 555-0123"
    with clients_for(settings, ("clicksend",)) as clients:
        assert clients.clicksend is not None
        # As the person gave them at the counter: their first name, their phone as people write it.
        walk_in = clients.clicksend.create_contact(
            list_id, {"phone_number": typed, "first_name": first_names[target]}
        )
        assert walk_in.ok
        config = replace(config, opt_out_lists=opt_out_lists(clients))
        writes = len(emulator.writes())
        reads = list_reads(emulator)
        report = push_destination(
            stream, engine, clients, config, run_id="push", dry_run=False, full_plan=True
        )
    # One request before the creates (what it asks for: tests/connectors/test_clicksend.py).
    assert list_reads(emulator) - reads == 1
    posts = [w for w in emulator.writes()[writes:] if w.method == "POST"]
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    assert e164 not in {w.body.get("phone_number") for w in posts}, "created a second contact for the walk-in"
    people = {r["contact_id"] for r in creates}
    assert report.created == len(posts) == len(people) - 1 > 0, "the other creates went out"
    held = ledger(warehouse_url, run_id="push", contact_id=target)
    assert held
    assert {r["status"] for r in held} == {"unchanged"}
    assert {r["error"] for r in held} == {
        f"not created: list {list_id} gained a contact with this phone after the extract; "
        "the next sync links it instead"
    }

    # The next sync reads the walk-in, links it to the person, and fills it rather than creating.
    writes = len(emulator.writes())
    only_clicksend = f"clicksend/list_contact={list_id}"
    after = run_sync(settings.model_copy(update={"contact_sync_push_create": only_clicksend}))
    assert after.success, after.failures
    assert not [w for w in emulator.writes()[writes:] if w.method == "POST" and w.app == "clicksend"]
    with open_warehouse(warehouse_url).connect() as connection:
        sources = (
            connection.execute(
                sa.select(ContactSource.contact_id).where(
                    ContactSource.source == "clicksend", ContactSource.source_id == str(walk_in.record_id)
                )
            )
            .scalars()
            .all()
        )
    assert sources == [target]


def add_by_hand(clients: Clients, stream: Stream, parent: str, record: dict[str, str]) -> tuple[str, str]:
    """Someone adds ``record`` at the destination through its API, as a signup form, an import or a
    colleague would (not through our push): its object and id. In Zoho CRM a colleague adds the
    person as a contact while we would create a lead."""
    if stream.source == "linkflow":
        assert clients.linkflow is not None
        made, obj = clients.linkflow.identify("signup-7731", "web-form", record), "contact"
    elif stream.source == "clickfunnels":
        assert clients.clickfunnels is not None
        made, obj = clients.clickfunnels.upsert_contact(parent, record), "contact"
    else:
        zoho = clients.zoho_crm if stream.source == "zoho_crm" else clients.zoho_bigin
        assert zoho is not None
        (made,), obj = zoho.upsert("Contacts", [record]), "contact"
    assert made.ok, made
    return obj, str(made.record_id)


UPSERTED = [
    (Stream("linkflow", "contact", writable=True), "Linkflow"),
    (Stream("clickfunnels", "contact", writable=True), "workspace {parent}"),
    (Stream("zoho_crm", "lead", writable=True), "Zoho CRM"),
    (Stream("zoho_bigin", "contact", writable=True), "Zoho Bigin"),
]


def create_rows_by_contact(rows: list[dict[str, object]], stream: Stream) -> dict[str, dict[str, str]]:
    """contact -> the email and name fields its planned create carries."""
    spec = destination_map(stream.source, stream.object)
    names = {f.field for f in spec.fields if f.canonical in ("email", "first_name", "last_name", FULL_NAME)}
    fields: dict[str, dict[str, str]] = {}
    for row in rows:
        if row["field"] in names:
            fields.setdefault(str(row["contact_id"]), {})[str(row["field"])] = str(row["after_value"])
    return fields


def walk_in_is_held_back(
    emu: Emulator, settings: Settings, stream: Stream, parent: str, place: str
) -> tuple[str, tuple[str, str], str]:
    """Against one destination: its creates held back while it cannot be read; then someone adds a
    person we would create, with their name and email as typed, and our push holds that create back,
    saying why, and sends the rest. The person, the record added (its object and id) and its email."""
    engine = open_warehouse(settings.database_url)
    key = (stream.source, stream.object)
    config = PushConfig(
        regions=REGIONS, create_missing=frozenset({key}), create_parents={key: parent} if parent else {}
    )
    once = HttpOptions(retry=RetryPolicy(max_attempts=1))  # a challenge page would be retried for 30 s
    with clients_for(settings, (stream.source,), once) as clients:
        emu.set_faults(FaultConfig(challenge_rate=1.0, apps=frozenset({stream.source})))
        blind = push_destination(stream, engine, clients, config, run_id=f"blind {stream}", dry_run=False)
        emu.set_faults(FaultConfig())
    planned = ledger(settings.database_url, run_id=f"blind {stream}", reason="create")
    creates = [r for r in planned if r["status"] != "invalid"]  # those lacking a mandatory field
    where = place.format(parent=parent)
    assert blind.created == 0
    assert creates
    assert {(r["status"], str(r["error"]).split(" (")[0]) for r in creates} == {
        ("unchanged", f"not created: {where} could not be read for changes since the extract")
    }

    email = next(f.field for f in destination_map(*key).fields if f.canonical == "email")
    fields = create_rows_by_contact(creates, stream)
    person = min(c for c, given in fields.items() if email in given)
    typed = {**fields[person], email: fields[person][email].upper()}  # the email as they typed it
    with clients_for(settings, (stream.source,)) as clients:
        record = add_by_hand(clients, stream, parent, typed)
        writes = len(emu.writes())
        report = push_destination(stream, engine, clients, config, run_id=f"push {stream}", dry_run=False)
    sent = [json.dumps(w.body).casefold() for w in emu.writes()[writes:]]
    assert not [body for body in sent if fields[person][email].casefold() in body], stream
    assert report.created == len(fields) - 1 > 0
    noun = "record" if stream.source.startswith("zoho") else "contact"
    held = ledger(settings.database_url, run_id=f"push {stream}", contact_id=person)
    assert {(r["status"], r["error"]) for r in held} == {
        (
            "unchanged",
            f"not created: {where} gained a {noun} with this email after the extract; "
            "the next sync links it instead",
        )
    }
    return person, record, fields[person][email]


@pytest.mark.parametrize("shared", ["new_contact", "merge"])
def test_a_person_added_after_the_extract_is_linked_not_created_or_overwritten(
    sqlite_url: str, shared: IdentifyShared
) -> None:
    """Zoho's and ClickFunnels' creates are upserts on the email, so a record someone added with it
    between our extract and our push would get our fields written over its own; Linkflow's identify
    may join it or make the person twice (api-notes §4.4, played both ways here). So each create waits
    for the next extract, which links the newcomer. A destination that cannot be read first gets no
    create at all."""
    with running_emulator(seed=11, people=120, behaviours=Behaviours(linkflow_identify_shared=shared)) as emu:
        parents = dict(part.split("=") for part in create_setting(emu).split(";") if "=" in part)
        settings = settings_for(emu, sqlite_url)
        assert run_sync(settings).success  # fills the empty fields: what follows plans creates alone
        walk_ins = {
            stream.name: walk_in_is_held_back(emu, settings, stream, parents.get(stream.name, ""), place)
            for stream, place in UPSERTED
        }
        # The next sync reads each newcomer, links it to the person, and creates nothing for them.
        setting = ";".join(f"{name}={parents[name]}" if name in parents else name for name in walk_ins)
        writes = len(emu.writes())
        after = run_sync(settings.model_copy(update={"contact_sync_push_create": setting}))
        assert after.success, after.failures
        posted = [(w.app, json.dumps(w.body).casefold()) for w in emu.writes()[writes:] if w.method == "POST"]
    columns = (ContactSource.source, ContactSource.object, ContactSource.source_id, ContactSource.contact_id)
    with open_warehouse(sqlite_url).connect() as connection:
        linked = {(str(s), str(o), str(r)): str(c) for s, o, r, c in connection.execute(sa.select(*columns))}
    for name, (person, (obj, record), email) in walk_ins.items():
        assert linked[(name.split("/")[0], obj, record)] == person, name
        assert not [body for app, body in posted if app == name.split("/")[0] and email.casefold() in body]


UNCONDITIONAL = [
    Stream("clickfunnels", "contact", writable=True),
    Stream("clicksend", "list_contact", writable=True),
    Stream("linkflow", "contact", writable=True),
]


def test_a_field_someone_fills_after_the_extract_is_not_overwritten_by_our_fill(
    emulator: Emulator, sqlite_url: str
) -> None:
    """ClickFunnels, ClickSend and Linkflow take an update with no condition on the record's state
    (Zoho's carry If-Unmodified-Since). A field empty when the extract read it and filled by hand
    before our push would get our value written over theirs: the look before the writes sees the
    record changed in that field and holds the update as a conflict; the next sync reads their value
    and leaves it."""
    settings = settings_for(emulator, sqlite_url)
    assert run_sync(settings.model_copy(update={"contact_sync_push": "off"})).success
    engine = open_warehouse(sqlite_url)
    config = PushConfig(regions=REGIONS)
    typed: dict[str, tuple[str, str, str]] = {}  # stream -> (record, field, the value typed by hand)
    for stream in UNCONDITIONAL:
        push_destination(stream, engine, None, config, run_id=f"preview {stream}", dry_run=True)
        fills = ledger(sqlite_url, run_id=f"preview {stream}", reason="fill_empty")
        record, field = str(fills[0]["record_id"]), str(fills[0]["field"])
        value = "+14155550199" if "phone" in field.casefold() else f"typed by hand into {field}"
        typed[stream.name] = (record, field, value)
        emulator.edit(stream.name, record, {field: value})
    with clients_for(settings, tuple(s.source for s in UNCONDITIONAL)) as clients:
        writes = len(emulator.writes())
        reports = {
            s.name: push_destination(s, engine, clients, config, run_id="push", dry_run=False)
            for s in UNCONDITIONAL
        }
        written = emulator.writes()[writes:]
    for name, (record, field, _) in typed.items():
        app = name.split("/")[0]
        assert not [w for w in written if w.app == app and str(w.record_id) == record], name
        assert reports[name].sent > 0, "the other records' fills went out"
        held = ledger(sqlite_url, run_id="push", destination=app, record_id=record)
        assert reports[name].conflict == len(held) > 0
        assert {r["status"] for r in held} == {"conflict"}
        assert {str(r["error"]) for r in held} == {
            f"not written: record {record} changed at the destination since the extract ({field}); "
            "planned again from the next extract"
        }

    # The next sync reads their value and keeps it: no write to that record's field.
    writes = len(emulator.writes())
    assert run_sync(settings).success
    later = emulator.writes()[writes:]
    for name, (record, field, value) in typed.items():
        app = name.split("/")[0]
        assert not [
            w for w in later if w.app == app and str(w.record_id) == record and field in (w.body or {})
        ]
        stored = emulator.dataset.tables[name]
        assert next(r for key, r in stored.items() if str(key) == record)[field] == value


def test_the_look_at_a_busy_workspace_does_not_read_again_what_the_extract_just_read(
    emulator: Emulator, sqlite_url: str
) -> None:
    """The look before our writes reaches two minutes before the extract for the vendor's clock, and
    so re-read every contact edited in those minutes. In ClickFunnels it starts at the updated_at
    that topped the workspace as the extract's newest-first scan began: no contact changed after the
    scan read it can carry an earlier one, whatever the clocks."""
    off = settings_for(emulator, sqlite_url).model_copy(update={"contact_sync_push": "off"})
    assert run_sync(off).success
    now = datetime.now(UTC)
    table = emulator.dataset.tables["clickfunnels/contact"]
    busy = sorted(key for key, record in table.items() if record["anonymous"] is None)[:45]
    for second, record in enumerate(busy):  # 45 contacts, three pages, edited over the last 90 s
        emulator.edit(
            "clickfunnels/contact", record, {"last_name": "Busy"}, when=now - timedelta(seconds=90 - second)
        )
    assert run_sync(off).success
    stream = Stream("clickfunnels", "contact", writable=True)
    with clients_for(off, ("clickfunnels",)) as clients:
        emulator.reset_counters()
        report = push_destination(
            stream,
            open_warehouse(sqlite_url),
            clients,
            PushConfig(regions=REGIONS),
            run_id="push",
            dry_run=False,
        )
    assert report.sent > 0, "the look came before these writes"
    listing = ("clickfunnels", "GET /clickfunnels/api/v2/workspaces/{workspace_id}/contacts")
    assert emulator.request_counts().get(listing) == 1


def test_creates_into_a_list_that_cannot_be_read_first_are_held_back_for_the_next_run(
    emulator: Emulator, sqlite_url: str
) -> None:
    """Where the list's recent contacts cannot be read (here ClickSend's reads answer a CDN challenge
    page; its writes still land), no create goes out blind: each is held back, saying why."""
    setting = create_setting(emulator)
    list_id = setting.split("clicksend/list_contact=")[1].split(";")[0]
    settings = settings_for(emulator, sqlite_url)
    assert run_sync(settings).success
    stream = Stream("clicksend", "list_contact", writable=True)
    once = HttpOptions(retry=RetryPolicy(max_attempts=1))  # a challenge page would be retried for 30 s
    with clients_for(settings, ("clicksend",), once) as clients:
        config = PushConfig(
            regions=REGIONS,
            create_missing=frozenset({("clicksend", "list_contact")}),
            create_parents={("clicksend", "list_contact"): list_id},
            opt_out_lists=opt_out_lists(clients),
        )
        writes = len(emulator.writes())
        emulator.set_faults(FaultConfig(challenge_rate=1.0, apps=frozenset({"clicksend"})))
        report = push_destination(
            stream, open_warehouse(sqlite_url), clients, config, run_id="blind", dry_run=False
        )
        emulator.set_faults(FaultConfig())
    assert report.created == 0
    assert not [w for w in emulator.writes()[writes:] if w.method == "POST"]
    rows = ledger(sqlite_url, run_id="blind", reason="create")
    assert rows
    assert {r["status"] for r in rows} == {"unchanged"}
    assert all(
        str(r["error"]).startswith(f"not created: list {list_id} could not be read for changes since")
        and str(r["error"]).endswith("; planned again next run")
        for r in rows
    ), {r["error"] for r in rows}
    # Planned again by the next run, which can read the list: each goes out then, once.
    with clients_for(settings, ("clicksend",)) as clients:
        again = push_destination(
            stream, open_warehouse(sqlite_url), clients, config, run_id="again", dry_run=False
        )
    assert again.plan == "incremental"
    assert again.created == len({r["contact_id"] for r in rows})


def test_a_source_that_failed_to_extract_is_not_pushed_to_and_the_run_fails_naming_it(
    emulator: Emulator, sqlite_url: str, tmp_path: Path
) -> None:
    # What the other four sources alone resolve to, read before the run pushes anything.
    alone = f"sqlite:///{tmp_path / 'without_linkflow.db'}"
    extract_all(emulator, alone, tuple(s for s in STREAMS if s.source != "linkflow"))
    build_canonical(open_warehouse(alone), CanonicalConfig(regions=REGIONS))

    report = run_sync(settings_for(emulator, sqlite_url, linkflow_app_secret="wrong-secret-value"))
    assert not report.success
    assert [line.split(":")[0] for line in report.failures] == ["linkflow/contact", "linkflow/event"]
    # What landed was resolved and pushed; the stale source was left alone.
    assert report.assets["canonical/contacts"]["contacts"] == len(clusters(alone))
    assert sorted(map(sorted, clusters(sqlite_url).values())) == sorted(map(sorted, clusters(alone).values()))
    assert report.assets["reverse_sync/linkflow/contact"]["status"] == "skipped"
    lead = report.assets["reverse_sync/zoho_crm/lead"]
    assert lead["sent"] == lead["planned"] > 0
    assert lead["failed"] == 0
    assert not [w for w in emulator.writes() if w.app == "linkflow"]


def test_a_record_deleted_at_the_source_since_the_extract_is_marked_deleted_not_failed(
    emulator: Emulator, sqlite_url: str
) -> None:
    settings = settings_for(emulator, sqlite_url, contact_sync_push="dry-run")
    assert run_sync(settings).success
    victim = next(r for r in ledger(sqlite_url, dry_run=True) if r["destination"] == "clickfunnels")
    engine = open_warehouse(sqlite_url)
    with clients_for(settings, ("clickfunnels",)) as clients:
        assert clients.clickfunnels is not None
        assert clients.clickfunnels.delete_contact(victim["record_id"]).ok  # ClickFunnels has no delete feed
        report = push_destination(
            Stream("clickfunnels", "contact", writable=True),
            engine,
            clients,
            PushConfig(),
            run_id="gone",
            dry_run=False,
        )
    assert report.rejected == 0
    rows = ledger(sqlite_url, run_id="gone", record_id=victim["record_id"])
    assert {(r["status"], r["error"]) for r in rows} == {
        ("unchanged", "the record no longer exists at the destination")
    }
    with engine.connect() as connection:
        deleted_at = connection.execute(
            sa.text("SELECT deleted_at FROM raw_records WHERE source = 'clickfunnels' AND source_id = :id"),
            {"id": victim["record_id"]},
        ).scalar_one()
    assert deleted_at is not None


def test_a_launch_that_sets_only_run_options_keeps_every_setting(emulator: Emulator, sqlite_url: str) -> None:
    """What the UI launchpad sends: config for run_options alone, settings and credentials untouched."""
    from pipelines.definitions import build_definitions

    job = build_definitions(settings_for(emulator, sqlite_url)).resolve_job_def("full_sync")
    result = job.execute_in_process(
        run_config={"resources": {"run_options": {"config": {"dry_run": True, "full_refresh_sources": []}}}},
        raise_on_error=False,
    )
    assert result.success
    assert emulator.writes() == []
    assert ledger(sqlite_url, dry_run=True), "every source ran and its pushes were planned"
    assert not ledger(sqlite_url, dry_run=False)


def test_a_destination_that_holds_no_records_plans_nothing_and_does_not_fail(sqlite_url: str) -> None:
    """An enabled system with an empty module (a new Zoho CRM with no Contacts yet) has nothing to
    look up a record time for; that is an empty plan, not a crash of the whole reverse-sync step."""
    report = push_destination(
        Stream("zoho_crm", "contact", writable=True),
        open_warehouse(sqlite_url),
        None,
        PushConfig(),
        run_id="empty",
        dry_run=False,
    )
    assert (report.planned, report.sent, report.requests) == (0, 0, 0)


def write_requests(emu: Emulator) -> dict[tuple[str, str], int]:
    """Requests to every endpoint that is not a read, per (app, endpoint)."""
    return {key: n for key, n in emu.request_counts().items() if not key[1].startswith("GET ")}


def test_a_failing_blocking_check_stops_reverse_sync_before_any_write(
    emulator: Emulator, sqlite_url: str
) -> None:
    """A live record that links to no golden contact fails the blocking check
    `records_link_to_one_contact`; reverse sync then plans nothing and sends nothing, and the run
    fails. Once the link is back, the same sync pushes: the check alone held it. The broken link is
    outside what the run changed, so the check sees it when it checks the whole warehouse: every run,
    with CONTACT_SYNC_FULL_CHECK_HOURS=0."""
    settings = settings_for(emulator, sqlite_url, contact_sync_full_check_hours=0)
    assert run_sync(settings.model_copy(update={"contact_sync_push": "off"})).success
    engine = open_warehouse(sqlite_url)
    with engine.begin() as connection:
        record, contact = connection.execute(
            sa.select(ContactSource.id, ContactSource.contact_id).order_by(ContactSource.id).limit(1)
        ).one()
        connection.execute(sa.update(ContactSource).where(ContactSource.id == record).values(contact_id=None))
    emulator.reset_counters()
    report = run_sync(settings)
    assert not report.success
    assert report.failures == [
        "blocking check records_link_to_one_contact of canonical/contacts failed: 1 live contact "
        "records link to no golden contact; nothing was pushed"
    ]
    assert not [name for name in report.assets if name.startswith("reverse_sync/")]
    assert write_requests(emulator) == {}
    assert emulator.writes() == []
    assert ledger(sqlite_url) == []

    with engine.begin() as connection:
        connection.execute(
            sa.update(ContactSource).where(ContactSource.id == record).values(contact_id=contact)
        )
    again = run_sync(settings)
    assert again.success, again.failures
    assert planned(again.assets) > 0


def test_push_off_makes_no_write_request_and_no_request_beyond_the_extract(
    emulator: Emulator, sqlite_url: str
) -> None:
    """With CONTACT_SYNC_PUSH=off, every destination is skipped saying why, nothing is planned, and
    the emulator serves exactly the requests the extract reported: reverse sync asks nothing at all.
    (The same people get fills when pushing is on; see the first test of this module.)"""
    report = run_sync(settings_for(emulator, sqlite_url, contact_sync_push="off"))
    assert report.success, report.failures
    assert write_requests(emulator) == {}
    assert emulator.writes() == []
    assert ledger(sqlite_url) == []
    assert {key: report.assets[key] for key in PUSH_KEYS} == {
        key: {"status": "skipped", "reason": "CONTACT_SYNC_PUSH=off"} for key in PUSH_KEYS
    }
    extract = sum(int(report.assets[stream.name]["requests"]) for stream in STREAMS)
    assert emulator.total_requests() == extract
