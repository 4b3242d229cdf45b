"""`contact-sync undo RUN_ID` against the emulator: fields put back, created records deleted, outside
edits left alone, and the next sync does not redo what was undone."""

import time
from collections import Counter
from typing import Any

import pytest

from connectors.emulator import Emulator
from connectors.emulator.behaviours import Behaviours
from pipelines.cli import main
from pipelines.clients import clients_for
from pipelines.runner import run_sync, run_undo
from tests.pipelines.conftest import settings_for
from tests.pipelines.test_reverse_sync import create_setting, ledger, planned

TABLES = {
    ("clickfunnels", "contact"): "clickfunnels/contact",
    ("clicksend", "list_contact"): "clicksend/list_contact",
    ("linkflow", "contact"): "linkflow/contact",
    ("zoho_crm", "lead"): "zoho_crm/lead",
    ("zoho_crm", "contact"): "zoho_crm/contact",
    ("zoho_bigin", "contact"): "zoho_bigin/contact",
}


def held(emu: Emulator, row: dict[str, Any]) -> Any:
    """What the emulator's record holds now in the field a ledger row wrote (None if the record is gone)."""
    records = emu.dataset.tables[TABLES[(row["destination"], row["object"])]]
    record = records.get(row["record_id"])
    if record is None and str(row["record_id"]).isdigit():
        record = records.get(int(row["record_id"]))
    return None if record is None else record.get(row["field"])


def empty(value: Any) -> bool:
    return value is None or value == ""


def test_undo_puts_fields_back_keeps_outside_edits_and_is_not_redone(
    emulator: Emulator, sqlite_url: str
) -> None:
    settings = settings_for(emulator, sqlite_url)
    first = run_sync(settings)
    assert first.success, first.failures
    sent = ledger(sqlite_url, run_id=first.run_id, status="sent")
    assert len(sent) > 10
    # The sandbox's opt-outs carried to Zoho are never taken back.
    consents = [r for r in sent if r["reason"] == "consent_opt_out"]
    assert consents
    # Someone edits one field we filled in ClickSend; a later sync reads the edit.
    edited = next(r for r in sent if r["destination"] == "clicksend" and r["field"] != "phone_number")
    with clients_for(settings, ("clicksend",)) as clients:
        assert clients.clicksend is not None
        assert clients.clicksend.update_contact(
            edited["parent_id"], edited["record_id"], {edited["field"]: "Outsider"}
        ).ok
    assert run_sync(settings).success

    undo = run_undo(settings, first.run_id)
    assert undo.success, undo.failures
    counts = undo.assets["undo"]
    assert counts["kept"] == 1 + len(consents)
    assert counts["failed"] == 0
    assert counts["restored"] == len(sent) - 1 - len(consents)
    assert held(emulator, edited) == "Outsider"
    for row in sent:
        if row["reason"] == "consent_opt_out":
            assert held(emulator, row) is True, row
        elif row["id"] != edited["id"]:
            assert empty(held(emulator, row)), row
    assert {r["status"] for r in ledger(sqlite_url, run_id=first.run_id)} >= {"undone"}
    kept = Counter(r["error"] for r in ledger(sqlite_url, run_id=undo.run_id, status="unchanged"))
    assert kept == {
        "changed at the destination since it was written": 1,
        "an opt-out is never taken back: consent moves in the restrictive direction only": len(consents),
    }

    # The next sync reads the emptied fields and does not fill them again with the same values.
    writes = len(emulator.writes())
    after = run_sync(settings)
    assert after.success, after.failures
    assert planned(after.assets) == 0, [
        (
            r["destination"],
            r["record_id"],
            r["field"],
            r["before_value"],
            r["after_value"],
            r["reason"],
            r["status"],
        )
        for r in ledger(sqlite_url, run_id=after.run_id)
    ]
    assert len(emulator.writes()) == writes


@pytest.mark.parametrize("shape", ["per_record", "whole_call"])
def test_undo_leaves_a_zoho_record_edited_since_our_write_alone(
    emulator: Emulator, sqlite_url: str, shape: str
) -> None:
    """Not read since the edit, so only Zoho's If-Unmodified-Since can tell: the restore of the edited
    lead is refused (per record, or with its whole call) and the lead is left alone; the other leads
    of the same call are put back."""
    emulator.set_behaviours(Behaviours(zoho_conflict=shape))
    settings = settings_for(emulator, sqlite_url)
    first = run_sync(settings)
    assert first.success, first.failures
    sent = ledger(sqlite_url, run_id=first.run_id, status="sent")
    # Opt-outs carried are kept whatever happens; this is about the fields we filled.
    consents = sum(r["reason"] == "consent_opt_out" for r in sent)
    leads = [
        r
        for r in sent
        if (r["destination"], r["object"]) == ("zoho_crm", "lead") and r["reason"] != "consent_opt_out"
    ]
    assert len({r["record_id"] for r in leads}) >= 3
    victim = str(leads[0]["record_id"])
    # Zoho compares times to the second: the edit comes a second after our write's time.
    time.sleep(1.1)
    with clients_for(settings, ("zoho_crm",)) as clients:
        assert clients.zoho_crm is not None
        assert clients.zoho_crm.update("Leads", [{"id": victim, "Lead_Status": "Contacted"}])[0].ok

    undo = run_undo(settings, first.run_id)
    assert undo.success, undo.failures
    counts = undo.assets["undo"]
    edited = [r for r in leads if r["record_id"] == victim]
    assert counts["kept"] == len(edited) + consents
    assert counts["failed"] == 0
    for row in leads:
        assert empty(held(emulator, row)) == (row["record_id"] != victim), row
    refused = [
        r for r in ledger(sqlite_url, run_id=undo.run_id, record_id=victim) if r["field"] != "Email_Opt_Out"
    ]
    assert {(r["status"], r["error"]) for r in refused} == {
        ("conflict", "changed at the destination since it was written; kept")
    }
    victims = ledger(sqlite_url, run_id=first.run_id, record_id=victim)
    assert {r["status"] for r in victims if r["field"] != "Email_Opt_Out"} == {"sent"}


def test_undo_deletes_the_records_a_run_created(emulator: Emulator, sqlite_url: str) -> None:
    settings = settings_for(emulator, sqlite_url)
    assert run_sync(settings).success
    creating = settings_for(emulator, sqlite_url, contact_sync_push_create=create_setting(emulator))
    made = run_sync(creating)
    assert made.success, made.failures
    created = {
        (r["destination"], r["object"], r["record_id"])
        for r in ledger(sqlite_url, run_id=made.run_id, reason="create", status="sent")
    }
    assert {dest for dest, _, _ in created} >= {"clicksend", "zoho_crm", "linkflow"}

    dry = run_undo(creating, made.run_id, dry_run=True)
    assert dry.success
    assert dry.assets["undo"]["deleted"] == len({c for c in created if c[0] != "linkflow"})
    assert all(emulator.dataset.tables[TABLES[(d, o)]].get(_id(i)) for d, o, i in created)

    undo = run_undo(creating, made.run_id)
    assert undo.success, undo.failures
    assert undo.assets["undo"]["deleted"] == dry.assets["undo"]["deleted"]
    for dest, obj, record_id in created:
        present = emulator.dataset.tables[TABLES[(dest, obj)]].get(_id(record_id)) is not None
        assert present == (dest == "linkflow"), (dest, record_id)  # Linkflow's API has no delete
    # Undone creates are not made again by the next sync.
    again = run_sync(creating)
    assert again.success, again.failures
    assert not ledger(sqlite_url, run_id=again.run_id, reason="create", status="sent")


def _id(record_id: str) -> Any:
    return int(record_id) if record_id.isdigit() and len(record_id) < 12 else record_id


def test_undo_of_an_unknown_run_is_one_line(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONTACT_SYNC_DATABASE_URL", sqlite_url)
    assert main(["undo", "no-such-run"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        err[-1]
        == "contact-sync: undo failed: undo: the ledger has no run no-such-run; see push_ledger.run_id"
    )
