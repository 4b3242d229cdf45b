"""Linkflow through the emulator: token life, id windows and their splitting, hydration, events, writes."""

import logging
from datetime import UTC, timedelta

import pytest

from connectors.config import LinkflowConfig
from connectors.emulator import Emulator, generate_dataset
from connectors.emulator.behaviours import Behaviours
from connectors.emulator.dataset import truth_key
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


def test_contacts_since_the_cursor_include_one_identified_after_it(emu, connect):
    """Reverse sync's look before creating: what the next extract would read (the cursor less the
    lookback), a contact a signup form identified just now among it; everyone without a cursor."""
    linkflow = connect(emu).linkflow
    _, cursor, _, _ = drain(linkflow.read_contacts())
    assert {r["id"] for r in linkflow.contacts_since(None)} == set(emu.dataset.tables["linkflow/contact"])
    emu.reset_counters()
    recent = {r["id"] for r in linkflow.contacts_since(cursor)}
    assert endpoint_count(emu, "linkflow", IDS) == 1
    assert len(recent) < len(emu.dataset.tables["linkflow/contact"])
    added = linkflow.identify("signup-1", "web-form", {"email": "rua@example.org", "name": "Rua"})
    assert {r["id"] for r in linkflow.contacts_since(cursor)} == {*recent, int(str(added.record_id))}
    # A shorter lookback (reverse sync's: as long as since its extract started) reads from the
    # watermark less that: a contact changed three minutes before the watermark is in the extract's
    # ten-minute lookback, not in a minute's; the newcomer is in both.
    mark = from_linkflow(cursor.updated_until)
    earlier = next(iter(set(last_updated(emu)) - recent - {int(str(added.record_id))}))
    emu.edit(
        "linkflow/contact", earlier, {"name": "Rua Earlier"}, when=mark.astimezone(UTC) - timedelta(minutes=3)
    )
    assert earlier in {r["id"] for r in linkflow.contacts_since(cursor)}
    shorter = {r["id"] for r in linkflow.contacts_since(cursor, lookback=timedelta(minutes=1))}
    assert int(str(added.record_id)) in shorter
    assert earlier not in shorter


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


# ------------------------------------------- the vendors' open questions (emulator Behaviours)

ORDERS = ("ascending", "descending", "newest_tail")
EVENTS_LITE = "GET /linkflow/events/lite"


def linkflow_with_events(start_emulator, count: int, *, shift_ms=None, **behaviours) -> Emulator:
    """An emulator whose only events are ``count`` events of listed contacts (no visitors)."""
    data = generate_dataset(7, 40)
    contacts = data.tables["linkflow/contact"]
    events = data.tables["linkflow/event"]
    keep = sorted(i for i, e in events.items() if e["contactId"] in contacts)[:count]
    assert len(keep) == count
    for event_id in set(events) - set(keep):
        del events[event_id]
        data.truth.pop(truth_key("linkflow/event", event_id), None)
    for n, event_id in enumerate(keep):
        if shift_ms is not None:
            events[event_id]["eventDate"] += shift_ms(n)
    return start_emulator(dataset=data, behaviours=Behaviours(**behaviours))


def visitors_events(emu: Emulator) -> set[int]:
    """Events of visitors: contacts the API does not list, so no per-contact read can find them."""
    contacts = emu.dataset.tables["linkflow/contact"]
    return {i for i, e in emu.dataset.tables["linkflow/event"].items() if e["contactId"] not in contacts}


@pytest.mark.parametrize("order", ORDERS)
def test_a_backlog_larger_than_a_page_is_read_whole_under_every_order(start_emulator, connect, caplog, order):
    # Issue 18: under a newest-first tail, 10 events read 3 a page came back as the newest 3 only.
    emu = linkflow_with_events(start_emulator, 10, linkflow_events_order=order)
    caplog.set_level(logging.INFO, logger="connectors.linkflow")
    linkflow = LinkflowClient(connect(emu).linkflow.http, event_page_size=3)
    events, cursor, _, _ = drain(linkflow.read_events())
    ids = [e["id"] for e in events]
    assert sorted(ids) == sorted(emu.dataset.tables["linkflow/event"])
    assert len(ids) == len(set(ids))
    assert cursor.last_max_id == max(ids)
    said = [r.getMessage() for r in caplog.records if "/events/lite answers" in r.getMessage()]
    assert len(said) == 1
    assert f"({order})" in said[0]
    assert ("per contact" in said[0]) == (order == "newest_tail")

    # New events, more than a page of them, arrive; a visitor's may be among them.
    before = set(emu.dataset.tables["linkflow/event"])
    emu.mutate(seed=3, events=12)
    fresh = set(emu.dataset.tables["linkflow/event"]) - before
    events, cursor2, _, _ = drain(LinkflowClient(linkflow.http, event_page_size=3).read_events(cursor))
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids))
    assert cursor2.last_max_id == max(fresh)
    if order == "newest_tail":
        # Only a visitor's events below the tail are out of reach (no endpoint lists visitors).
        tail = set(sorted(fresh)[-3:])
        assert fresh - tail - visitors_events(emu) <= set(ids) <= fresh
        assert fresh - set(ids) <= visitors_events(emu)
    else:
        assert set(ids) == fresh


@pytest.mark.parametrize("order", ORDERS)
def test_detect_events_order_tells_the_three_apart_in_two_reads(start_emulator, connect, order):
    emu = start_emulator(seed=7, people=60, behaviours=Behaviours(linkflow_events_order=order))
    linkflow = connect(emu).linkflow
    assert linkflow.detect_events_order() == order
    assert endpoint_count(emu, "linkflow", EVENTS_LITE) == 2
    assert emu.writes() == []


def test_detect_events_order_is_unknown_with_one_event(start_emulator, connect):
    emu = linkflow_with_events(start_emulator, 1, linkflow_events_order="newest_tail")
    assert connect(emu).linkflow.detect_events_order() == "unknown"


def test_contacts_left_out_of_bulk_answers_are_asked_again_not_retired(start_emulator, connect, caplog):
    emu = start_emulator(seed=7, people=200, behaviours=Behaviours(linkflow_bulk_omission_rate=0.25))
    caplog.set_level(logging.INFO, logger="connectors.linkflow")
    linkflow = LinkflowClient(connect(emu).linkflow.http, id_cap=20, id_page_size=10)
    records, cursor, deleted, _ = drain(linkflow.read_contacts())
    assert {r["id"] for r in records} == set(emu.dataset.tables["linkflow/contact"])
    assert deleted == []
    assert "came on a second ask, 0 confirmed gone" in caplog.text
    before = last_updated(emu)
    emu.mutate(seed=11, new=10, updated=60)
    changed = {rid for rid, stamp in last_updated(emu).items() if before.get(rid) != stamp}
    records, _, deleted, _ = drain(linkflow.read_contacts(cursor))
    assert changed <= {r["id"] for r in records}
    assert deleted == []


def test_a_contact_really_gone_is_still_retired_under_omissions(start_emulator, connect):
    emu = start_emulator(seed=7, people=700, behaviours=Behaviours(linkflow_bulk_omission_rate=0.25))
    reader = connect(emu).linkflow.read_contacts()
    first = next(reader)
    before = set(emu.dataset.tables["linkflow/contact"])
    emu.mutate(seed=2, deleted=120)
    gone = before - set(emu.dataset.tables["linkflow/contact"]) - {r["id"] for r in first.records}
    assert gone
    deleted = {d for page in reader for d in page.deleted_ids}
    assert deleted == {str(i) for i in gone}
    assert endpoint_count(emu, "linkflow", "GET /linkflow/contacts/{contact_id}/identities") == len(gone)


def test_a_live_contact_the_bulk_answer_never_gives_holds_the_cursor(start_emulator, connect, caplog):
    emu = start_emulator(seed=7, people=60, behaviours=Behaviours(linkflow_bulk_omission_rate=1.0))
    caplog.set_level(logging.INFO, logger="connectors.linkflow")
    records, _, deleted, pages = drain(connect(emu).linkflow.read_contacts())
    assert deleted == []
    assert len(records) == len(emu.dataset.tables["linkflow/contact"]) - 1
    assert all(page.cursor == LinkflowContactCursor() for page in pages)
    assert "1 alive but not given" in caplog.text


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Tokyo"])
def test_a_wrong_zone_guess_opens_no_gap_and_keeps_the_token(start_emulator, connect, zone):
    emu = start_emulator(seed=7, people=200, behaviours=Behaviours(linkflow_zone=zone))
    linkflow = connect(emu).linkflow
    records, cursor, _, _ = drain(linkflow.read_contacts())
    assert {r["id"] for r in records} == set(emu.dataset.tables["linkflow/contact"])
    before = last_updated(emu)
    emu.mutate(seed=11, new=10, updated=40)
    changed = {rid for rid, stamp in last_updated(emu).items() if before.get(rid) != stamp}
    records, cursor2, _, _ = drain(linkflow.read_contacts(cursor))
    assert changed <= {r["id"] for r in records}
    assert len(records) < len(before)
    emu.mutate(seed=12, updated=15)
    third = {rid for rid, stamp in last_updated(emu).items() if before.get(rid) != stamp} - changed
    records, _, _, _ = drain(linkflow.read_contacts(cursor2))
    assert third <= {r["id"] for r in records}
    assert endpoint_count(emu, "linkflow", TOKEN) == 1


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("Asia/Shanghai", {"UTC+08:00"}),
        ("UTC", {"UTC+00:00"}),
        ("Asia/Kolkata", {"UTC+05:30"}),
        ("America/New_York", {"UTC-05:00", "UTC-04:00"}),
    ],
)
def test_detect_zone_reads_the_offset_from_events(start_emulator, connect, zone, expected):
    emu = start_emulator(seed=7, people=120, behaviours=Behaviours(linkflow_zone=zone))
    linkflow = connect(emu).linkflow
    assert linkflow.detect_zone() in expected
    assert endpoint_count(emu, "linkflow", EVENTS_LITE) == 1


def test_detect_zone_is_none_when_events_cannot_tell(start_emulator, connect):
    # Events backdated by unrelated amounts (as ``POST /ude`` with an old ``eventDate`` makes them).
    emu = linkflow_with_events(start_emulator, 6, shift_ms=lambda n: -(n * 7_777_000 + 600_000))
    assert connect(emu).linkflow.detect_zone() is None
    empty = linkflow_with_events(start_emulator, 0)
    assert connect(empty).linkflow.detect_zone() is None


@pytest.mark.parametrize("shared", ["new_contact", "merge"])
def test_an_identity_carrying_another_contacts_email_is_played_each_way(start_emulator, connect, shared):
    """Whether Linkflow joins a new identity to the contact holding its email is open (api-notes §4.4):
    the emulator makes a new contact, or merges into the holder and updates it."""
    emu = start_emulator(seed=7, people=60, behaviours=Behaviours(linkflow_identify_shared=shared))
    contacts = emu.dataset.tables["linkflow/contact"]
    holder = next(i for i in sorted(contacts) if contacts[i]["email"])
    email = str(contacts[holder]["email"]).upper()
    result = connect(emu).linkflow.identify(
        "golden-9", "udc_contact_sync", {"email": email, "title": "Buyer"}
    )
    assert result.ok
    if shared == "merge":
        assert result.record_id == str(holder)
        assert contacts[holder]["title"] == "Buyer"
    else:
        assert result.record_id != str(holder)
        assert contacts[holder]["title"] != "Buyer"
