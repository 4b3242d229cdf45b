"""Reverse sync never writes over another person: a create never lands on a record someone else holds, no
email or mobile goes to a ClickFunnels or Linkflow record while another person's record there holds it,
and no write carries an identifier identity resolution set aside as junk (shared by strangers), which
is a person's golden value only when they hold nothing else.

Zoho creates are upserts on Email, ClickFunnels creates upserts on the email, and a Linkflow create may
join the contact already holding its email or mobile. Which record a Zoho upsert takes when several
hold the value, and whether Linkflow merges, the vendors leave open: the emulator plays each answer
(`zoho_upsert_several`, `linkflow_identify_shared`) and the same guarantees hold under all of them.
"""

import re

import pytest
import sqlalchemy as sa

from connectors.emulator import Emulator, running_emulator
from connectors.emulator.behaviours import Behaviours, IdentifyShared, UpsertSeveral
from models.push.field_map import destination_map
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


IDENTITY_FIELDS = {("clickfunnels", "email_address"), ("linkflow", "email"), ("linkflow", "mobilePhone")}


def key_of(value: object) -> str:
    """An email casefolded, a phone as its last ten digits: how a written value is found among held ones
    (Linkflow's mobiles go without their +86)."""
    text = str(value)
    return text.casefold() if "@" in text else digits(text)[-10:]


def identity_holders(url: str) -> dict[tuple[str, str], set[str]]:
    """(destination, value key) -> the golden contacts whose records there hold that email or mobile."""
    query = sa.text(
        "SELECT r.source, i.field, i.value, s.contact_id FROM contact_identifiers i "
        "JOIN raw_records r ON r.id = i.raw_record_id JOIN contact_sources s ON s.raw_record_id = r.id "
        "WHERE r.deleted_at IS NULL AND i.value IS NOT NULL"
    )
    found: dict[tuple[str, str], set[str]] = {}
    with open_warehouse(url).connect() as connection:
        for source, field, value, contact_id in connection.execute(query):
            if (str(source), str(field)) in IDENTITY_FIELDS:
                found.setdefault((str(source), key_of(value)), set()).add(str(contact_id))
    return found


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

    # No email or mobile went to a ClickFunnels or Linkflow record while another person's record there
    # held it: ClickFunnels refuses a taken email, and Linkflow may merge the two.
    holders = identity_holders(sqlite_url)
    shared = [
        row
        for row in ledger(sqlite_url, status="sent")
        if row["reason"] != "create"
        and (str(row["destination"]), str(row["field"])) in IDENTITY_FIELDS
        and holders.get((str(row["destination"]), key_of(row["after_value"])), set())
        - {str(row["contact_id"])}
    ]
    assert not shared, shared[:3]

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


def share_an_email(emu: Emulator) -> tuple[str, str, str]:
    """Give Tao's ClickFunnels contact (Tao's other record is a Linkflow contact without an email) the
    email Ann's Linkflow contact holds, as a person typing a relative's address into a form would:
    household splitting keeps Tao and Ann apart, and Tao's golden email becomes Ann's. Returns Tao's
    Linkflow id, Ann's Linkflow id and the email."""
    per_person: dict[object, dict[str, str]] = {}
    for (source, obj, record_id), person in emu.dataset.truth.items():
        if obj in ("contact", "lead", "list_contact"):
            per_person.setdefault(person, {})[source] = str(record_id)
    funnels, flows = emu.dataset.tables["clickfunnels/contact"], emu.dataset.tables["linkflow/contact"]
    by_id = {str(k): k for k in (*funnels, *flows)}
    tao = next(
        records
        for records in per_person.values()
        if sorted(records) == ["clickfunnels", "linkflow"] and not flows[by_id[records["linkflow"]]]["email"]
    )
    ann_id, ann = next(
        (records["linkflow"], flows[by_id[records["linkflow"]]])
        for records in per_person.values()
        if set(records) == {"linkflow"}
        and flows[by_id[records["linkflow"]]]["email"]
        and str(flows[by_id[records["linkflow"]]]["name"] or "").split()[:1] not in ([], ["Tao"])
    )
    emu.edit("clickfunnels/contact", by_id[tao["clickfunnels"]], {"email_address": ann["email"]})
    return tao["linkflow"], ann_id, str(ann["email"])


def test_an_email_another_persons_linkflow_contact_holds_is_never_written_to_a_linkflow_contact(
    sqlite_url: str,
) -> None:
    with running_emulator(seed=11, people=160) as emu:
        tao, ann, email = share_an_email(emu)
        result = run_sync(settings_for(emu, sqlite_url))
        assert result.success, result.failures
        writes = emu.writes()
    with open_warehouse(sqlite_url).connect() as connection:
        owners = dict(
            connection.execute(
                sa.select(ContactSource.source_id, ContactSource.contact_id).where(
                    ContactSource.source == "linkflow", ContactSource.source_id.in_([tao, ann])
                )
            ).all()
        )
    assert owners[tao] != owners[ann], "household splitting keeps the two people apart"
    (refused,) = [
        row for row in ledger(sqlite_url, destination="linkflow", field="email") if row["record_id"] == tao
    ]
    assert refused["status"] == "invalid"
    assert refused["after_value"] == email
    assert refused["error"] == (
        f"its email is held by record {ann} of golden contact {owners[ann]}: Linkflow may merge contacts "
        "that share an email or mobile"
    )
    assert not [w for w in writes if w.app == "linkflow" and w.record_id == tao and "email" in (w.body or {})]


HELD_BY = re.compile(r"its email is held by record (\S+) of golden contact (\S+):")


def test_a_create_refused_for_another_persons_record_goes_once_that_record_lets_the_email_go(
    sqlite_url: str,
) -> None:
    """Two people of one household share an email that ClickFunnels holds on one's record, so the
    other's create there is refused. Once that record changes to an address of its own, the next
    incremental plan takes the refused create up again (the person it named moved) and sends it,
    though nothing of the refused person changed."""
    with running_emulator(seed=11, people=160, households=True) as emu:
        settings = settings_for(emu, sqlite_url, contact_sync_push_create=create_setting(emu))
        assert run_sync(settings).success
        refused = ledger(sqlite_url, destination="clickfunnels", reason="create", status="invalid")
        found = sorted(
            {(str(r["contact_id"]), m.groups()) for r in refused if (m := HELD_BY.match(str(r["error"])))}
        )
        assert found, "a household's shared email is on one member's ClickFunnels contact"
        person, (record, holder) = found[0]
        settle = run_sync(settings)  # reads the first run's writes back: the next plan is the edit's alone
        assert settle.success
        assert not ledger(sqlite_url, run_id=settle.run_id, destination="clickfunnels", contact_id=person)
        field = next(
            f.field for f in destination_map("clickfunnels", "contact").fields if f.canonical == "email"
        )
        emu.edit("clickfunnels/contact", record, {field: "their.own.address.7731@example.org"})
        writes = len(emu.writes())
        again = run_sync(settings)
        assert again.success, again.failures
        made = [w for w in emu.writes()[writes:] if w.app == "clickfunnels" and w.method == "POST"]
    assert again.assets["reverse_sync/clickfunnels/contact"]["plan"] == "incremental"
    created = ledger(sqlite_url, run_id=again.run_id, destination="clickfunnels", contact_id=person)
    assert {(r["reason"], r["status"]) for r in created} == {("create", "sent")}
    assert [str(w.record_id) for w in made] == [str(created[0]["record_id"])]
    assert holder != person
