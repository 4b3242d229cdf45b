"""Linkflow through the emulator: token life, id windows and their splitting, hydration, events, writes."""

import logging

import pytest

from connectors.config import LinkflowConfig
from connectors.errors import AuthError, FatalError
from connectors.factory import linkflow_http
from connectors.linkflow import LinkflowClient, LinkflowContactCursor, LinkflowEventCursor
from connectors.stats import RequestStats
from connectors.times import from_linkflow
from tests.connectors.conftest import LINKFLOW_KEY, drain, endpoint_count

TOKEN = "GET /linkflow/token"
IDS = "GET /linkflow/v2/contacts_bulk/ids"


def last_updated(emu):
    return {rid: r["lastUpdated"] for rid, r in emu.dataset.tables["linkflow/contact"].items()}


def test_token_is_fetched_once_and_reused(emu, connect):
    linkflow = connect(emu).linkflow
    drain(linkflow.read_events())
    drain(linkflow.read_contacts())
    assert endpoint_count(emu, "linkflow", TOKEN) == 1


def test_token_close_to_its_expiration_is_replaced_before_use(start_emulator, connect):
    emu = start_emulator(seed=7, people=200, linkflow_token_ttl=120.0)
    clients = connect(emu)
    drain(clients.linkflow.read_events())
    drain(clients.linkflow.read_events())
    # Each token expires within the 5-minute margin, so every call fetches a fresh one, and no 401.
    assert endpoint_count(emu, "linkflow", TOKEN) == 2
    assert clients.stats.snapshot().total_retries() == 0


def test_expired_token_is_refreshed_once_on_401(emu, connect):
    clients = connect(emu)
    drain(clients.linkflow.read_events())
    emu.expire_linkflow_tokens()
    records, _, _, _ = drain(clients.linkflow.read_events())
    assert records
    assert endpoint_count(emu, "linkflow", TOKEN) == 2
    assert endpoint_count(emu, "linkflow", "GET /linkflow/events/lite") == 3


def test_wrong_secret_is_an_auth_error_that_names_no_secret(emu):
    http = linkflow_http(
        LinkflowConfig(LINKFLOW_KEY, "not-the-secret", emu.linkflow_base_url), stats=RequestStats()
    )
    try:
        with pytest.raises(AuthError) as info:
            list(LinkflowClient(http).read_events())
    finally:
        http.close()
    assert str(info.value).startswith("linkflow GET /token -> 401 B00401")
    assert "not-the-secret" not in str(info.value) + repr(http) + repr(http.auth)
    assert endpoint_count(emu, "linkflow", TOKEN) == 1


def test_contacts_full_then_incremental(emu, connect):
    linkflow = connect(emu).linkflow
    records, cursor, deleted, _ = drain(linkflow.read_contacts())
    assert {r["id"] for r in records} == set(emu.dataset.tables["linkflow/contact"])
    assert deleted == []
    assert cursor.updated_until is not None
    before = last_updated(emu)
    emu.mutate(seed=11, new=20, updated=80)
    changed = {rid for rid, stamp in last_updated(emu).items() if before.get(rid) != stamp}
    assert changed
    emu.reset_counters()
    records, cursor2, _, _ = drain(linkflow.read_contacts(cursor))
    assert changed <= {r["id"] for r in records}
    assert len(records) < len(before)
    assert from_linkflow(cursor2.updated_until) >= from_linkflow(cursor.updated_until)
    assert endpoint_count(emu, "linkflow", IDS) == 1


def test_crowded_window_is_split_until_each_part_fits(emu, connect, caplog):
    http = connect(emu).linkflow.http
    caplog.set_level(logging.INFO, logger="connectors.linkflow")
    linkflow = LinkflowClient(http, id_cap=20, id_page_size=10)
    records, _cursor, _, pages = drain(linkflow.read_contacts())
    assert {r["id"] for r in records} == set(emu.dataset.tables["linkflow/contact"])
    assert "splitting it" in caplog.text
    ends = [from_linkflow(p.cursor.updated_until) for p in pages if p.cursor.updated_until]
    assert ends == sorted(ends)
    windows = endpoint_count(emu, "linkflow", IDS)
    assert windows > 6
    assert all(len(p.records) <= 100 for p in pages)


def test_ids_gone_before_hydration_are_reported_deleted(start_emulator, connect):
    emu = start_emulator(seed=7, people=700)
    linkflow = connect(emu).linkflow
    reader = linkflow.read_contacts()
    first = next(reader)
    assert len(first.records) == 100
    before = set(emu.dataset.tables["linkflow/contact"])
    emu.mutate(seed=2, deleted=120)
    gone = before - set(emu.dataset.tables["linkflow/contact"]) - {r["id"] for r in first.records}
    assert gone
    rest = list(reader)
    assert {str(i) for i in gone} <= {d for page in rest for d in page.deleted_ids}
    assert all(p.cursor == LinkflowContactCursor() for p in [first, *rest[:-1]])


def test_events_move_forward_by_id(emu, connect):
    linkflow = connect(emu).linkflow
    events, cursor, _, _ = drain(linkflow.read_events())
    assert len(events) == len(emu.dataset.tables["linkflow/event"])
    assert cursor.last_max_id == max(e["id"] for e in events)
    emu.mutate(seed=4, events=25)
    fresh, cursor2, _, _ = drain(linkflow.read_events(cursor))
    assert len(fresh) == 25
    assert all(e["id"] > cursor.last_max_id for e in fresh)
    assert LinkflowEventCursor.from_json(cursor2.to_json()) == cursor2
    assert list(linkflow.read_events(cursor2)) == []


def test_page_size_cap_is_a_fatal_business_error_not_retried(emu, connect):
    http = connect(emu).linkflow.http
    with pytest.raises(FatalError) as info:
        http.request("GET", "/v2/contacts_bulk/ids", params={"page": 101, "size": 100})
    assert info.value.status == 500
    assert info.value.code == "B00030"
    assert endpoint_count(emu, "linkflow", IDS) == 1


def test_update_identify_and_refusals(emu, connect):
    linkflow = connect(emu).linkflow
    contact_id = next(iter(emu.dataset.tables["linkflow/contact"]))
    ok = linkflow.update_contact(contact_id, {"title": "CTO"})
    assert ok.ok
    assert ok.record_id == str(contact_id)
    assert emu.dataset.tables["linkflow/contact"][contact_id]["title"] == "CTO"

    emu.reject_writes("linkflow", contact_id)
    emu.reset_counters()
    refused = linkflow.update_contact(contact_id, {"title": "CEO"})
    assert (refused.ok, refused.code, refused.retriable) == (False, "B00030", False)
    assert endpoint_count(emu, "linkflow", "PUT /linkflow/v2/contacts/{contact_id}") == 1

    missing = linkflow.update_contact(1, {"title": "CEO"})
    assert (missing.ok, missing.code) == (False, "B00008")

    created = linkflow.identify("golden-1", "udc_contact_sync", {"email": "ana@example.org"})
    again = linkflow.identify("golden-1", "udc_contact_sync", {"city": "Hangzhou"})
    assert created.ok
    assert again.ok
    assert created.record_id == again.record_id
