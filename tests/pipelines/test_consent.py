"""Consent end to end: an opt-out made in one system reaches the golden contact, `show`, `export` and
Zoho in one sync, never echoes, is never written with consent push off, and keeps creates away."""

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from connectors.emulator import Emulator
from models.warehouse.db import open_warehouse
from models.warehouse.tables import Contact, ContactSource
from pipelines.export import export_table
from pipelines.runner import run_sync
from pipelines.show import show_contact, text_lines, to_json
from tests.pipelines.conftest import settings_for
from tests.pipelines.test_reverse_sync import create_setting, ledger, planned

OPTED_AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def contact_rows(url: str) -> dict[str, dict[str, Any]]:
    with open_warehouse(url).connect() as connection:
        return {
            row["contact_id"]: dict(row)
            for row in connection.execute(sa.select(Contact.__table__)).mappings()
        }


def sources_of(url: str) -> dict[str, list[tuple[str, str, str]]]:
    """contact_id -> (source, object, source_id) of its records."""
    found: dict[str, list[tuple[str, str, str]]] = {}
    with open_warehouse(url).connect() as connection:
        rows = connection.execute(
            sa.select(
                ContactSource.contact_id, ContactSource.source, ContactSource.object, ContactSource.source_id
            )
        ).all()
    for contact_id, source, obj, source_id in rows:
        found.setdefault(str(contact_id), []).append((source, obj, source_id))
    return found


def crm_records(emu: Emulator, records: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    return [emu.dataset.tables[f"{s}/{o}"][i] for s, o, i in records if s == "zoho_crm"]


def pick(url: str, emu: Emulator) -> tuple[str, str, list[tuple[str, str, str]]]:
    """A golden contact not opted out of email with a ClickFunnels record and a CRM record: its id,
    the ClickFunnels id, and its records."""
    contacts = contact_rows(url)
    for contact_id, records in sorted(sources_of(url).items()):
        funnels = [i for s, _, i in records if s == "clickfunnels"]
        crm = crm_records(emu, records)
        usable = contacts[contact_id]["email_opt_out"] is not True and contacts[contact_id]["email"]
        writable = all(r["Email_Opt_Out"] is False and r["$approval_state"] == "approved" for r in crm)
        if usable and funnels and crm and writable:
            return contact_id, funnels[0], records
    raise AssertionError("the sandbox has no such person")


def test_an_opt_out_in_one_system_reaches_show_export_and_zoho_in_one_sync_and_never_echoes(
    emulator: Emulator, warehouse_url: str, tmp_path: Path
) -> None:
    settings = settings_for(emulator, warehouse_url)
    first = run_sync(settings)
    assert first.success, first.failures
    contacts = contact_rows(warehouse_url)
    # The sandbox's own opt-outs are read: each channel has opted-out people, named by their source.
    assert {c["email_opt_out_source"] for c in contacts.values() if c["email_opt_out"]} >= {
        "clickfunnels/contact"
    }
    assert {c["sms_opt_out_source"] for c in contacts.values() if c["sms_opt_out"]} == {
        "clicksend/list_contact"
    }
    assert all(row["after_value"] == "True" for row in ledger(warehouse_url, reason="consent_opt_out"))

    contact_id, funnel_id, records = pick(warehouse_url, emulator)
    emulator.edit("clickfunnels/contact", funnel_id, {"unsubscribed_at": "2026-03-02T09:30:00.000Z"})
    phone = contacts[contact_id]["phone"]
    if phone:
        emulator.sms_opt_out(phone, when=OPTED_AT)
    second = run_sync(settings)
    assert second.success, second.failures

    row = contact_rows(warehouse_url)[contact_id]
    assert (row["email_opt_out"], row["email_opt_out_at"], row["email_opt_out_source"]) == (
        True,
        OPTED_AT,
        "clickfunnels/contact",
    )
    if phone:
        assert (row["sms_opt_out"], row["sms_opt_out_at"], row["sms_opt_out_source"]) == (
            True,
            OPTED_AT,
            "clicksend/list_contact",
        )
    # Zoho CRM holds the opt-out now, written as a plan row in the ledger.
    assert all(record["Email_Opt_Out"] is True for record in crm_records(emulator, records))
    sent = ledger(warehouse_url, run_id=second.run_id, reason="consent_opt_out", status="sent")
    assert {(r["contact_id"], r["field"], r["before_value"], r["after_value"]) for r in sent} >= {
        (contact_id, "Email_Opt_Out", "False", "True")
    }

    engine = open_warehouse(warehouse_url)
    shown = show_contact(engine, settings, contact_id)
    text = "\n".join(text_lines(shown, settings))
    assert "email: opted out since 2026-03-02 09:30:00Z (per clickfunnels/contact)" in text
    assert to_json(shown, settings)["contact"]["email_opt_out"] is True
    output = tmp_path / "contacts.csv"
    export_table(engine, "contacts", "csv", str(output))
    with output.open() as handle:
        exported = {r["contact_id"]: r for r in csv.DictReader(handle)}
    assert exported[contact_id]["email_opt_out"] == "True"
    assert exported[contact_id]["email_opt_out_source"] == "clickfunnels/contact"

    writes = len(emulator.writes())
    third = run_sync(settings)
    assert third.success, third.failures
    assert planned(third.assets) == 0
    assert len(emulator.writes()) == writes  # our Email_Opt_Out write did not come back as a change
    assert contact_rows(warehouse_url)[contact_id] == row


def test_consent_push_off_reads_consent_and_writes_none(emulator: Emulator, sqlite_url: str) -> None:
    settings = settings_for(emulator, sqlite_url, contact_sync_consent_push="off")
    assert run_sync(settings).success
    contact_id, funnel_id, records = pick(sqlite_url, emulator)
    emulator.edit("clickfunnels/contact", funnel_id, {"unsubscribed_at": "2026-03-02T09:30:00.000Z"})
    assert run_sync(settings).success
    assert contact_rows(sqlite_url)[contact_id]["email_opt_out"] is True
    assert not ledger(sqlite_url, reason="consent_opt_out")
    assert not [w for w in emulator.writes() if "Email_Opt_Out" in str(w.body)]
    assert all(record["Email_Opt_Out"] is False for record in crm_records(emulator, records))


def test_no_create_sends_an_opted_out_person_to_that_channel(emulator: Emulator, sqlite_url: str) -> None:
    settings = settings_for(emulator, sqlite_url, contact_sync_push_create=create_setting(emulator))
    first = run_sync(settings)
    assert first.success, first.failures
    contacts = contact_rows(sqlite_url)
    creates = ledger(sqlite_url, run_id=first.run_id, reason="create")
    channels = {"clicksend": ("sms",), "clickfunnels": ("email",), "linkflow": ("email", "sms")}
    for row in creates:
        contact = contacts[str(row["contact_id"])]
        blocked = [c for c in channels.get(str(row["destination"]), ()) if contact[f"{c}_opt_out"]]
        if blocked:
            assert row["status"] == "invalid", row
            assert f"opted out of {blocked[0]}" in str(row["error"] or row.get("invalid_reason") or "")
    refused = [r for r in creates if r["status"] == "invalid" and "opted out" in str(r["error"])]
    assert {r["destination"] for r in refused} >= {"clickfunnels", "linkflow"}
    # Zoho holds the opt-out itself: a create there carries it.
    zoho = [r for r in creates if r["destination"] in ("zoho_crm", "zoho_bigin") and r["status"] == "sent"]
    opted = {str(r["contact_id"]) for r in zoho if contacts[str(r["contact_id"])]["email_opt_out"]}
    assert opted
    carried = {
        str(r["contact_id"]) for r in zoho if r["field"] == "Email_Opt_Out" and r["after_value"] == "True"
    }
    assert carried == opted
