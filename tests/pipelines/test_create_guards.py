"""Reverse sync never writes over another person: a create never lands on a record someone else holds, and
no write carries an identifier identity resolution set aside as junk (shared by strangers).

Zoho creates are upserts on Email, ClickFunnels creates upserts on the email, and a Linkflow create may
join the contact already holding its email or mobile. Which record a Zoho upsert takes when several
hold the value, and whether Linkflow merges, the vendors leave open: the emulator plays each answer
(`zoho_upsert_several`, `linkflow_identify_shared`) and the same guarantees hold under all of them.
"""

import pytest
import sqlalchemy as sa

from connectors.emulator import Emulator, running_emulator
from connectors.emulator.behaviours import Behaviours, IdentifyShared, UpsertSeveral
from models.warehouse.db import open_warehouse
from models.warehouse.tables import Contact, ContactSource
from pipelines.runner import run_sync
from tests.pipelines.conftest import settings_for
from tests.pipelines.test_reverse_sync import create_setting, ledger

VENDOR_ANSWERS = [
    pytest.param(False, "refuse", "new_contact", id="zoho-refuses-linkflow-new"),
    pytest.param(True, "update_oldest", "merge", id="households-zoho-oldest-linkflow-merges"),
    pytest.param(False, "update_newest", "merge", id="zoho-newest-linkflow-merges"),
]


def existing_ids(emu: Emulator) -> dict[str, set[str]]:
    """Per app, the ids of every record it held before the sync (Zoho ids span its modules)."""
    held: dict[str, set[str]] = {}
    for table, records in emu.dataset.tables.items():
        app, _, obj = table.partition("/")
        if obj in ("contact", "lead", "list_contact"):
            held.setdefault(app, set()).update(str(i) for i in records)
    return held


def give_junk_email(emu: Emulator) -> str:
    """Edit a ClickFunnels contact whose person has no other record to hold ``test@test.com`` as its
    only email (a placeholder typed into a form); its id."""
    per_person: dict[object, list[tuple[str, str, str]]] = {}
    for (source, obj, record_id), person in emu.dataset.truth.items():
        if obj in ("contact", "lead", "list_contact"):
            per_person.setdefault(person, []).append((source, obj, str(record_id)))
    alone = sorted(
        records[0][2]
        for records in per_person.values()
        if len(records) == 1 and records[0][0] == "clickfunnels"
    )
    assert alone, "the sandbox has people ClickFunnels alone holds"
    table = emu.dataset.tables["clickfunnels/contact"]
    record_id = next(key for key in table if str(key) == alone[0])
    emu.edit("clickfunnels/contact", record_id, {"email_address": "test@test.com"})
    return alone[0]


def junk_values(url: str) -> set[str]:
    with open_warehouse(url).connect() as connection:
        return {
            str(v) for v in connection.execute(sa.text("SELECT value FROM suppressed_identifiers")).scalars()
        }


def digits(value: object) -> str:
    return "".join(ch for ch in str(value) if ch.isdigit())


def is_junk(value: object, emails: set[str], phones: set[str]) -> bool:
    """Whether a written value is one of the junk identifiers, an email or a phone in any written form
    (Linkflow's mobiles go without their +86)."""
    text, numbers = str(value), digits(value)
    return text.casefold() in emails or (len(numbers) >= 7 and any(p.endswith(numbers) for p in phones))


@pytest.mark.parametrize(("households", "zoho_several", "linkflow_shared"), VENDOR_ANSWERS)
def test_no_create_lands_on_another_persons_record_and_no_write_carries_junk(
    sqlite_url: str, households: bool, zoho_several: UpsertSeveral, linkflow_shared: IdentifyShared
) -> None:
    behaviours = Behaviours(zoho_upsert_several=zoho_several, linkflow_identify_shared=linkflow_shared)
    with running_emulator(seed=11, people=160, behaviours=behaviours, households=households) as emu:
        only_junk = give_junk_email(emu)
        before = existing_ids(emu)
        settings = settings_for(emu, sqlite_url, contact_sync_push_create=create_setting(emu))
        result = run_sync(settings)
        assert result.success, result.failures
        writes = emu.writes()

    creates = ledger(sqlite_url, reason="create")
    landed = [row for row in creates if row["status"] == "sent"]
    assert landed, "the sandbox has people some systems lack"
    # Every create made a record of its own: none answered with a record that was there before.
    taken = [row for row in landed if str(row["record_id"]) in before[str(row["destination"])]]
    assert not taken, taken[:3]
    # Every write to a record that was there before was an update planned for that very record.
    updates = {
        (str(row["destination"]), str(row["record_id"]))
        for row in ledger(sqlite_url)
        if row["reason"] != "create" and row["status"] == "sent"
    }
    strays = [
        (w.app, w.path, w.record_id)
        for w in writes
        if str(w.record_id) in before.get(w.app, set()) and (w.app, str(w.record_id)) not in updates
    ]
    assert not strays, strays[:3]
    # A create refused for another person's record says so, in one line.
    refused = [row for row in creates if "held by" in str(row["error"] or "")]
    assert all(row["status"] == "invalid" for row in refused)
    if households:
        assert refused, "people of one household share an email or a landline some systems hold"

    junk = junk_values(sqlite_url)
    with open_warehouse(sqlite_url).connect() as connection:
        golden = {
            str(row.contact_id): row
            for row in connection.execute(sa.select(Contact.contact_id, Contact.email, Contact.phone))
        }
        held = connection.execute(
            sa.select(ContactSource.contact_id, ContactSource.source_id, ContactSource.email)
        ).all()
    # A junk value is a person's golden email only when none of their records holds another.
    real = {str(c) for c, _, email in held if email is not None and email not in junk}
    assert not [c for c, row in golden.items() if row.email in junk and c in real]
    # The person given nothing but a junk email keeps it as their golden email, and it goes nowhere.
    (theirs,) = {str(c) for c, source_id, _ in held if source_id == only_junk}
    assert golden[theirs].email == "test@test.com"
    junk_emails = {v.casefold() for v in junk if "@" in v}
    junk_phones = {digits(v) for v in junk if "@" not in v}
    carried = [
        row
        for row in ledger(sqlite_url)
        if row["after_value"] is not None and is_junk(row["after_value"], junk_emails, junk_phones)
    ]
    assert not carried, carried[:3]
