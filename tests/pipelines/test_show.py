"""`contact-sync show` and the `canonical/contacts` metadata, on a warehouse two real syncs built.

One module-wide warehouse: a sync against the emulator, then a Zoho lead written through the API with
one contact's email and another's phone, then a second sync, which merges the two. Every test reads it
through the CLI entry point (in process) or the Dagster instance the runs were stored in.
"""

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import phonenumbers
import pytest
import sqlalchemy as sa

from connectors.emulator import running_emulator
from models.identity.lookup import FieldOrigin
from models.warehouse.db import open_warehouse
from models.warehouse.tables import (
    Contact,
    ContactActivity,
    ContactFieldLineage,
    ContactMerge,
    ContactSource,
    PushLedger,
    RawRecord,
)
from pipelines.canonical import CONTACTS_KEY
from pipelines.cli import main
from pipelines.clients import clients_for
from pipelines.runner import run_sync
from pipelines.settings import SOURCES, load_settings
from pipelines.show import why
from tests.pipelines.conftest import settings_for


@dataclass(frozen=True)
class Synced:
    url: str
    instance: dg.DagsterInstance
    survivor: str
    merged_away: str
    bridge_lead: str


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synced]:
    url = f"sqlite:///{tmp_path_factory.mktemp('show') / 'warehouse.db'}"
    with (
        pytest.MonkeyPatch.context() as patch,
        running_emulator(seed=11, people=40) as emu,
        dg.DagsterInstance.ephemeral() as instance,
    ):
        for name in list(os.environ):
            if name.startswith(("CONTACT_SYNC_", "MATON_", "LINKFLOW_")) and "TEST_POSTGRES" not in name:
                patch.delenv(name)
        # The bridge below has no first name and A's email: with household splitting it would join A
        # alone (tests/models/identity/test_households.py); here the merge it makes is what is shown.
        settings = settings_for(emu, url, contact_sync_household_split="off")
        assert run_sync(settings, instance=instance).success
        # A's email must not be on a Zoho lead already: the upsert would match that lead instead.
        zoho_lead_emails = sa.select(ContactSource.email).where(
            ContactSource.source == "zoho_crm",
            ContactSource.object == "lead",
            ContactSource.email.is_not(None),
        )
        with open_warehouse(url).connect() as connection:
            (a, a_email), (b, b_phone) = (
                connection.execute(
                    sa.select(Contact.contact_id, Contact.email)
                    .where(Contact.email.is_not(None), Contact.email.not_in(zoho_lead_emails))
                    .order_by(Contact.contact_id)
                    .limit(1)
                ).all()
                + connection.execute(
                    sa.select(Contact.contact_id, Contact.phone)
                    .where(Contact.phone.is_not(None))
                    .order_by(Contact.contact_id.desc())
                    .limit(1)
                ).all()
            )
        # Someone types A's email and B's phone into one Zoho lead: the next sync makes them one person.
        with clients_for(settings, ("zoho_crm",)) as clients:
            assert clients.zoho_crm is not None
            (written,) = clients.zoho_crm.upsert(
                "Leads", [{"Last_Name": "Bridge", "Email": a_email, "Phone": b_phone}]
            )
        assert written.ok, written
        assert written.record_id
        assert run_sync(settings, instance=instance).success
        with open_warehouse(url).connect() as connection:
            merge = connection.execute(
                sa.select(ContactMerge.old_contact_id, ContactMerge.new_contact_id).where(
                    ContactMerge.kind == "merge"
                )
            ).one()
        assert merge == (max(a, b), min(a, b))  # the oldest id survives
        yield Synced(url, instance, merge[1], merge[0], str(written.record_id))


def show(synced: Synced, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    os.environ["CONTACT_SYNC_DATABASE_URL"] = synced.url  # the autouse fixture clears it afterwards
    code = main(["show", *args])
    out, err = capsys.readouterr()
    return code, out, err


def sources_of(synced: Synced, contact_id: str) -> list[tuple[str, str, str]]:
    with open_warehouse(synced.url).connect() as connection:
        rows = connection.execute(
            sa.select(ContactSource.source, ContactSource.object, ContactSource.source_id)
            .where(ContactSource.contact_id == contact_id)
            .order_by(ContactSource.source, ContactSource.object, ContactSource.source_id)
        ).all()
    return [tuple(row) for row in rows]


def section(out: str, title: str) -> list[str]:
    """The lines of one section of `show`'s text, after its title line, up to the blank line."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i]), len(lines))
    return lines[start + 1 : end]


def test_a_merged_away_id_shows_its_survivor_and_says_so(
    synced: Synced, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = show(synced, capsys, synced.merged_away)
    assert (code, err) == (0, "")
    assert out.splitlines()[0].startswith(
        f"contact {synced.survivor} ({synced.merged_away} was merged into {synced.survivor} on "
    )
    records = section(out, "source records")
    assert records[0].split() == ["SYSTEM/OBJECT", "ID", "LAST", "MODIFIED", "EMAIL", "PHONE"]
    assert [(*line.split()[0].split("/"), line.split()[1]) for line in records[1:]] == sources_of(
        synced, synced.survivor
    )
    assert any(line.split()[:2] == ["zoho_crm/lead", synced.bridge_lead] for line in records)
    history = section(out, "merges and splits")
    assert [line.split("  ", 2)[-1].split(" (run ")[0] for line in history] == [
        f"merge: {synced.merged_away} merged into {synced.survivor}"
    ]


def test_an_email_or_phone_as_typed_finds_its_contact_and_where_each_field_came_from(
    synced: Synced, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_warehouse(synced.url).connect() as connection:
        contact_id, email, phone = connection.execute(
            sa.select(Contact.contact_id, Contact.email, Contact.phone)
            .where(Contact.email.is_not(None), Contact.phone.like("+1%"))
            .order_by(Contact.source_count.desc(), Contact.contact_id)
            .limit(1)
        ).one()
        lineage = connection.execute(
            sa.select(
                ContactFieldLineage.field,
                ContactFieldLineage.value,
                ContactFieldLineage.source,
                ContactFieldLineage.object,
                ContactFieldLineage.source_id,
                ContactFieldLineage.rule,
            ).where(ContactFieldLineage.contact_id == contact_id)
        ).all()
    # As a person in the US writes it: no "+", no country code; read with the default region (US).
    national = phonenumbers.format_number(phonenumbers.parse(phone), phonenumbers.PhoneNumberFormat.NATIONAL)
    assert not national.startswith("+")
    for query, found_by in ((f"  {email.upper()} ", f"email {email}"), (national, f"phone {phone}")):
        code, out, err = show(synced, capsys, query)
        assert (code, err) == (0, ""), query
        assert out.splitlines()[0] == f"contact {contact_id} (found by {found_by})"
    fields = section(out, "fields")[1:]
    assert len(fields) == len(lineage) > 0
    for field, value, source, obj, source_id, rule in lineage:
        (line,) = [line for line in fields if line.split()[0] == field]
        assert f"  {value}  " in line
        assert f"  {source}/{obj} {source_id}  " in line
        assert ("most recently modified record with a value" in line) == (rule == "most_recent")


def test_json_holds_the_contact_its_records_fields_history_activity_and_pushes(
    synced: Synced, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_warehouse(synced.url).connect() as connection:
        busiest = connection.execute(
            sa.select(ContactActivity.contact_id)
            .where(ContactActivity.contact_id.is_not(None))
            .group_by(ContactActivity.contact_id)
            .order_by(sa.func.count().desc(), ContactActivity.contact_id)
            .limit(1)
        ).scalar_one()
        activity = connection.execute(
            sa.select(ContactActivity.activity_id, ContactActivity.occurred_at)
            .where(ContactActivity.contact_id == busiest)
            .order_by(ContactActivity.occurred_at.desc())
        ).all()
        pushes = connection.execute(
            sa.select(PushLedger.record_id, PushLedger.field, PushLedger.status).where(
                PushLedger.contact_id == busiest
            )
        ).all()
        contact = connection.execute(sa.select(Contact.email).where(Contact.contact_id == busiest)).one()
        live = connection.execute(
            sa.select(sa.func.count())
            .select_from(ContactSource)
            .join(RawRecord, RawRecord.id == ContactSource.raw_record_id)
            .where(ContactSource.contact_id == busiest, RawRecord.deleted_at.is_(None))
        ).scalar_one()
    code, out, err = show(synced, capsys, busiest, "--json")
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert document["contact"]["contact_id"] == busiest
    assert document["contact"]["email"] == contact.email
    assert document["merged"] == []
    assert [(r["source"], r["object"], r["source_id"]) for r in document["records"]] == sources_of(
        synced, busiest
    )
    assert sum(r["deleted_at"] is None for r in document["records"]) == live
    assert {f["field"] for f in document["fields"]} >= {"email", "first_name"}
    assert all(f["why"] for f in document["fields"])
    assert document["activity"]["total"] == len(activity) > 5
    assert [a["activity_id"] for a in document["activity"]["latest"]] == [a for a, _ in activity[:5]]
    assert document["pushes"]["total"] == len(pushes) > 0
    latest = [(p["record_id"], p["field"], p["status"]) for p in document["pushes"]["latest"]]
    assert len(latest) == min(10, len(pushes))
    assert set(latest) <= {tuple(p) for p in pushes}

    code, out, _ = show(synced, capsys, synced.merged_away, "--json")
    merged = json.loads(out)
    assert code == 0
    assert [(m["kind"], m["old_contact_id"], m["new_contact_id"]) for m in merged["merged"]] == [
        ("merge", synced.merged_away, synced.survivor)
    ]
    assert merged["contact"]["contact_id"] == synced.survivor
    assert merged["former_ids"] == [synced.merged_away]


@pytest.mark.parametrize(
    ("query", "line"),
    [
        ("nobody@example.com", "no golden contact has the email nobody@example.com"),
        ("c_000000999999", "no golden contact has the contact id c_000000999999"),
        ("+1 202 555 0143", "no golden contact has the phone +1 202 555 0143 (read as +12025550143)"),
        ("not a person", "'not a person' is not a usable phone (unparseable)"),
    ],
)
def test_an_unknown_person_is_one_line_and_a_failure(
    synced: Synced, capsys: pytest.CaptureFixture[str], query: str, line: str
) -> None:
    assert show(synced, capsys, query) == (1, "", f"contact-sync: show: {line}\n")


def test_the_contacts_materialization_carries_a_sample_table_and_per_source_counts(synced: Synced) -> None:
    """What the UI reads: the events stored in the instance by the two runs."""
    events = synced.instance.fetch_materializations(CONTACTS_KEY, limit=10).records
    assert len(events) == 2
    with open_warehouse(synced.url).connect() as connection:
        counted = dict(
            connection.execute(
                sa.select(ContactSource.source, sa.func.count())
                .join(RawRecord, RawRecord.id == ContactSource.raw_record_id)
                .where(ContactSource.contact_id.is_not(None), RawRecord.deleted_at.is_(None))
                .group_by(ContactSource.source)
            ).all()
        )
        latest = connection.execute(
            sa.select(Contact.contact_id, Contact.email, Contact.source_count)
            .order_by(Contact.updated_at.desc(), Contact.contact_id)
            .limit(10)
        ).all()
    for event in events:  # every run carries the numbers, so the UI can plot them across runs
        metadata = event.asset_materialization.metadata
        for source in SOURCES:
            assert isinstance(metadata[f"records_{source}"], dg.IntMetadataValue)
    metadata = events[0].asset_materialization.metadata  # the newest first
    assert {source: metadata[f"records_{source}"].value for source in SOURCES} == {
        source: counted.get(source, 0) for source in SOURCES
    }
    assert all(counted.get(source, 0) > 0 for source in SOURCES)
    sample = metadata["sample"]
    assert isinstance(sample, dg.TableMetadataValue)
    assert [column.name for column in sample.schema.columns] == [
        "contact_id",
        "email",
        "phone",
        "first_name",
        "last_name",
        "company",
        "title",
        "city",
        "country",
        "source_count",
        "updated_at",
    ]
    assert [
        (row.data["contact_id"], row.data["email"] or None, row.data["source_count"])
        for row in sample.records
    ] == [tuple(row) for row in latest]


def test_why_names_the_setting_behind_a_source_priority() -> None:
    settings = load_settings(contact_sync_source_priority="first_name:zoho_crm,clickfunnels")
    origin = FieldOrigin("first_name", "Ada", "zoho_crm", "lead", "1", "source_priority", None)
    assert why(origin, settings) == (
        "source priority for first_name: zoho_crm, clickfunnels (CONTACT_SYNC_SOURCE_PRIORITY)"
    )
