"""Every read and write path replayed from a cassette recorded against the emulator.

The cassettes pin the exact requests each client sends (method, path, query, body, conditional
headers): a change to a client that alters them fails here until the cassettes are re-recorded on
purpose (see ``vcr_support``). Playback needs no emulator and reaches no network: the clients point at
a port where nothing listens.
"""

from datetime import UTC, datetime, timedelta

import pytest
from vcr.errors import CannotOverwriteExistingCassetteException

import connectors.zoho
from connectors.config import HttpOptions, LinkflowConfig, MatonConfig
from connectors.emulator import Emulator, generate_dataset
from connectors.emulator.behaviours import Behaviours
from connectors.factory import build_clients
from connectors.http import RetryPolicy
from connectors.times import parse_instant
from tests.connectors.conftest import LINKFLOW_KEY, LINKFLOW_SECRET, MATON_KEY, drain
from tests.connectors.vcr_support import (
    RECORDING,
    SECRET_HEADERS,
    TOKEN_PLACEHOLDER,
    cassette,
    cassette_files,
)

FIXED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
PEOPLE = 40
CONNECTION_ID = "maton-connection-id-7f3a9c"
NOWHERE = "http://127.0.0.1:9"

playback_only = pytest.mark.skipif(RECORDING, reason="checks strict playback")


def _world(behaviours=None):
    """(clients, a pristine copy of the emulator's data for building inputs and checking results);
    when recording, the emulator plays ``behaviours``."""
    dataset = generate_dataset(7, PEOPLE, FIXED)
    emu = Emulator(dataset=dataset, behaviours=behaviours).start() if RECORDING else None
    base = emu.base_url if emu else NOWHERE
    clients = build_clients(
        MatonConfig(MATON_KEY, base, {"zoho_crm": CONNECTION_ID}),
        LinkflowConfig(LINKFLOW_KEY, LINKFLOW_SECRET, base + "/linkflow"),
        options=HttpOptions(retry=RetryPolicy(max_attempts=1)),
        now=lambda: FIXED,
    )
    yield clients, generate_dataset(7, PEOPLE, FIXED)
    clients.close()
    if emu is not None:
        emu.stop()


@pytest.fixture
def world():
    yield from _world()


@pytest.fixture
def world_whole_call():
    """Zoho refuses a conditional write as a whole (``Behaviours.zoho_conflict``)."""
    yield from _world(Behaviours(zoho_conflict="whole_call"))


@pytest.fixture
def world_company_mandatory():
    """The org's Leads layout makes Company mandatory (``Behaviours.zoho_layout_required``)."""
    yield from _world(Behaviours(zoho_layout_required=("Leads.Company",)))


def full_then_incremental(read):
    records, cursor, _, _ = drain(read())
    again, _, _, _ = drain(read(cursor))
    return records, again


# ---------------------------------------------------------------- reads


def test_cassette_zoho_crm_leads(world):
    clients, data = world
    with cassette("zoho_crm/read_leads"):
        records, again = full_then_incremental(clients.zoho_crm.read_leads)
    assert {r["id"] for r in records} == set(data.tables["zoho_crm/lead"])
    assert 0 < len(again) < len(records)


def test_cassette_zoho_crm_contacts(world):
    clients, data = world
    with cassette("zoho_crm/read_contacts"):
        records, _ = full_then_incremental(clients.zoho_crm.read_contacts)
    assert {r["id"] for r in records} == set(data.tables["zoho_crm/contact"])


def test_cassette_zoho_bigin_contacts(world):
    clients, data = world
    with cassette("zoho_bigin/read_contacts"):
        records, cursor, _, _ = drain(clients.zoho_bigin.read_contacts())
        _, cursor2, _, _ = drain(clients.zoho_bigin.read_contacts(cursor))
    assert {r["id"] for r in records} == set(data.tables["zoho_bigin/contact"])
    assert cursor2.honours_if_modified_since is False
    assert cursor2.deleted_feed is False


def test_cassette_zoho_org(world):
    clients, _ = world
    with cassette("zoho_crm/org"):
        assert clients.zoho_crm.org_country() == "US"


def test_cassette_zoho_layouts(world_company_mandatory):
    clients, _ = world_company_mandatory
    with cassette("zoho_crm/layouts"):
        (standard,) = clients.zoho_crm.layouts("Leads")
    required = {f["api_name"] for s in standard["sections"] for f in s["fields"] if f["required"]}
    assert required == {"Last_Name", "Company", "Owner"}


def test_cassette_clickfunnels_contacts(world):
    clients, data = world
    with cassette("clickfunnels/read_contacts"):
        records, _ = full_then_incremental(clients.clickfunnels.read_contacts)
    listed = {rid for rid, r in data.tables["clickfunnels/contact"].items() if r["anonymous"] is None}
    assert {r["id"] for r in records} == listed


def test_cassette_clickfunnels_contact_ids(world):
    clients, data = world
    with cassette("clickfunnels/contact_ids"):
        ids = clients.clickfunnels.contact_ids()
    assert ids == {
        str(rid) for rid, r in data.tables["clickfunnels/contact"].items() if r["anonymous"] is None
    }


def test_cassette_clicksend_list_contacts(world):
    clients, data = world
    with cassette("clicksend/read_list_contacts"):
        records, _ = full_then_incremental(clients.clicksend.read_list_contacts)
    assert {r["contact_id"] for r in records} == set(data.tables["clicksend/list_contact"])


def test_cassette_clicksend_sms(world):
    clients, data = world
    with cassette("clicksend/read_sms"):
        records, again = full_then_incremental(clients.clicksend.read_sms)
    assert again, "the trailing status window re-reads recent history"
    assert len(records) == sum(
        len(data.tables[t])
        for t in ("clicksend/sms_history", "clicksend/sms_inbound", "clicksend/sms_receipt")
    )


def test_cassette_clicksend_account(world):
    clients, _ = world
    with cassette("clicksend/account"):
        assert clients.clicksend.account_country() == "US"


def test_cassette_linkflow_contacts(world):
    clients, data = world
    with cassette("linkflow/read_contacts"):
        records, _ = full_then_incremental(clients.linkflow.read_contacts)
    assert {r["id"] for r in records} == set(data.tables["linkflow/contact"])


def test_cassette_linkflow_events(world):
    clients, data = world
    with cassette("linkflow/read_events"):
        records, again = full_then_incremental(clients.linkflow.read_events)
    assert len(records) == len(data.tables["linkflow/event"])
    assert again == []


# --------------------------------------------------------------- writes


def test_cassette_zoho_update(world):
    clients, data = world
    leads = data.tables["zoho_crm/lead"]
    first, second = sorted(leads)[:2]
    read_at = parse_instant(leads[second]["Modified_Time"]) - timedelta(seconds=1)
    with cassette("zoho_crm/update"):
        [ok] = clients.zoho_crm.update("Leads", [{"id": first, "City": "Nelson"}])
        [conflict] = clients.zoho_crm.update(
            "Leads", [{"id": second, "City": "Nelson"}], if_unmodified_since=read_at
        )
    assert ok.ok
    assert conflict.conflict


def test_cassette_zoho_update_refused_as_a_whole(world_whole_call):
    """The whole call refused: the two leads read back by id, the unchanged one sent again."""
    clients, data = world_whole_call
    leads = data.tables["zoho_crm/lead"]
    first, second = sorted(leads)[:2]
    read_at = parse_instant(leads[first]["Modified_Time"])
    if parse_instant(leads[second]["Modified_Time"]) <= read_at:
        first, second = second, first
        read_at = parse_instant(leads[first]["Modified_Time"])
    with cassette("zoho_crm/update_refused_as_a_whole"):
        results = clients.zoho_crm.update(
            "Leads", [{"id": i, "City": "Nelson"} for i in (first, second)], if_unmodified_since=read_at
        )
    assert [(r.ok, r.conflict) for r in results] == [(True, False), (False, True)]


def test_cassette_zoho_upsert(world):
    clients, _ = world
    with cassette("zoho_crm/upsert"):
        results = clients.zoho_crm.upsert(
            "Contacts",
            [{"Last_Name": "Tane", "Email": "tane@example.org"}, {"Last_Name": "", "Email": "bad"}],
        )
    assert [r.ok for r in results] == [True, False]


def test_cassette_clickfunnels_writes(world):
    clients, data = world
    contact_id = min(rid for rid, r in data.tables["clickfunnels/contact"].items() if r["anonymous"] is None)
    with cassette("clickfunnels/upsert_contact"):
        upserted = clients.clickfunnels.upsert_contact(435231, {"email_address": "kiri@example.org"})
    with cassette("clickfunnels/update_contact"):
        updated = clients.clickfunnels.update_contact(contact_id, {"last_name": None})
    assert upserted.ok
    assert updated.ok


def test_cassette_clicksend_writes(world):
    clients, data = world
    contact = min(data.tables["clicksend/list_contact"].values(), key=lambda r: r["contact_id"])
    with cassette("clicksend/create_contact"):
        created = clients.clicksend.create_contact(3555278, {"email": "wiremu@example.org"})
    with cassette("clicksend/update_contact"):
        updated = clients.clicksend.update_contact(
            contact["list_id"], contact["contact_id"], {"custom_1": "x"}
        )
    assert created.ok
    assert updated.ok


def test_cassette_linkflow_writes(world):
    clients, data = world
    contact_id = min(data.tables["linkflow/contact"])
    with cassette("linkflow/update_contact"):
        updated = clients.linkflow.update_contact(contact_id, {"company": "Kōwhai Ltd"})
    with cassette("linkflow/identify"):
        identified = clients.linkflow.identify(
            "golden-42", "udc_contact_sync", {"email": "aroha@example.org"}
        )
    assert updated.ok
    assert identified.ok


def test_cassette_zoho_bigin_writes(world):
    """Bigin takes the same record writes as CRM: an update by id and an upsert on Email."""
    clients, data = world
    contact_id = min(data.tables["zoho_bigin/contact"])
    with cassette("zoho_bigin/update"):
        [updated] = clients.zoho_bigin.update("Contacts", [{"id": contact_id, "Title": "Kaiako"}])
    with cassette("zoho_bigin/upsert"):
        [upserted] = clients.zoho_bigin.upsert(
            "Contacts", [{"Last_Name": "Rangi", "Email": "rangi@example.org"}]
        )
    assert updated.ok
    assert upserted.ok


def test_cassette_deletes_undo_sends(world):
    """The deletes `contact-sync undo` sends for records a run created: Zoho by ids, ClickFunnels and
    ClickSend one record per call (Linkflow has no delete)."""
    clients, data = world
    leads = sorted(data.tables["zoho_crm/lead"])[:2]
    cf_contact = max(rid for rid, r in data.tables["clickfunnels/contact"].items() if r["anonymous"] is None)
    cs_contact = max(data.tables["clicksend/list_contact"].values(), key=lambda r: r["contact_id"])
    with cassette("zoho_crm/delete"):
        zoho = clients.zoho_crm.delete("Leads", leads)
    with cassette("clickfunnels/delete_contact"):
        clickfunnels = clients.clickfunnels.delete_contact(cf_contact)
    with cassette("clicksend/delete_contact"):
        clicksend = clients.clicksend.delete_contact(cs_contact["list_id"], cs_contact["contact_id"])
    assert [r.ok for r in zoho] == [True, True]
    assert clickfunnels.ok
    assert clicksend.ok


# ------------------------------------------------- the cassettes themselves


def test_cassettes_hold_no_secret():
    files = cassette_files()
    assert len(files) >= 24, "cassettes are missing; record them with CONTACT_SYNC_RECORD_CASSETTES=1"
    for path in files:
        text = path.read_text()
        for secret in (MATON_KEY, LINKFLOW_KEY, LINKFLOW_SECRET, CONNECTION_ID):
            assert secret not in text, f"{path.name} contains a secret"
        for header in SECRET_HEADERS:
            assert f"{header}:" not in text, f"{path.name} records the {header} header"
        if "/token" in text:
            assert TOKEN_PLACEHOLDER in text


@playback_only
def test_a_changed_request_fails_its_cassette(world, monkeypatch):
    clients, _ = world
    monkeypatch.setattr(connectors.zoho, "PER_PAGE", 100)
    with pytest.raises(CannotOverwriteExistingCassetteException), cassette("zoho_crm/read_leads"):
        drain(clients.zoho_crm.read_leads())


@playback_only
def test_a_missing_request_fails_its_cassette(world):
    clients, _ = world
    with pytest.raises(AssertionError, match="not made"), cassette("clickfunnels/read_contacts"):
        next(clients.clickfunnels.read_contacts())


@playback_only
def test_a_repeated_request_fails_its_cassette(world):
    clients, _ = world
    with cassette("zoho_crm/org"):
        clients.zoho_crm.org_country()
        with pytest.raises(CannotOverwriteExistingCassetteException):
            clients.zoho_crm.org_country()
