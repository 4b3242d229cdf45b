"""ClickSend through the emulator: lists and contacts, SMS history/inbound/receipts, contact writes."""

from datetime import UTC, datetime, timedelta

import pytest

from connectors.clicksend import (
    ClickSendClient,
    ClickSendListContactCursor,
    ClickSendSmsCursor,
    PollRules,
    is_opt_out_list,
)
from connectors.emulator import FaultConfig, generate_dataset
from connectors.emulator.behaviours import Behaviours
from connectors.errors import AmbiguousWriteError, AuthError
from connectors.http import HttpClient, RetryPolicy
from tests.connectors.conftest import drain, endpoint_count
from tests.connectors.scripted_server import Answer, ScriptedServer

CONTACTS = "GET /clicksend/v3/lists/{list_id}/contacts"


def test_every_list_and_contact_then_only_changes(emu, connect):
    clicksend = connect(emu).clicksend
    stored = emu.dataset.tables["clicksend/list_contact"]
    records, cursor, _, _ = drain(clicksend.read_list_contacts())
    assert {r["contact_id"] for r in records} == set(stored)
    lists = clicksend.lists()
    assert {str(item["list_id"]) for item in lists} >= set(cursor.updated_after)
    assert sum(is_opt_out_list(item) for item in lists) == 1
    assert ClickSendListContactCursor.from_json(cursor.to_json()) == cursor

    before = {rid: r["date_updated"] for rid, r in stored.items()}
    emu.mutate(seed=9, updated=80, new=10)
    after = emu.dataset.tables["clicksend/list_contact"]
    changed = {rid for rid, r in after.items() if before.get(rid) != r["date_updated"]}
    assert changed
    emu.reset_counters()
    records, cursor2, _, _pages = drain(clicksend.read_list_contacts(cursor))
    assert changed <= {r["contact_id"] for r in records}
    assert len(records) < len(after) / 2
    assert endpoint_count(emu, "clicksend", CONTACTS) == len(lists)
    assert all(cursor2.updated_after[k] >= v for k, v in cursor.updated_after.items())


def test_sms_history_inbound_and_receipts(emu, connect):
    clicksend = connect(emu).clicksend
    _records, cursor, _, pages = drain(clicksend.read_sms())
    by_part: dict[str, set[str]] = {}
    for page in pages:
        by_part.setdefault(page.part, set()).update(r["message_id"] for r in page.records)
    assert by_part["history"] == set(emu.dataset.tables["clicksend/sms_history"])
    assert by_part["inbound"] == set(emu.dataset.tables["clicksend/sms_inbound"])
    assert by_part["receipt"] == set(emu.dataset.tables["clicksend/sms_receipt"])
    assert cursor.history_date
    assert cursor.inbound_timestamp
    assert cursor.receipt_timestamp
    assert ClickSendSmsCursor.from_json(cursor.to_json()) == cursor


def test_sms_incremental_rereads_the_status_window_and_stops_early_on_inbound(start_emulator, connect):
    data = generate_dataset(7, 1500)
    history = data.tables["clicksend/sms_history"]
    # The ten newest messages are still queued; the emulator's mutate delivers queued messages later,
    # changing their status but not their send date.
    queued = sorted(history, key=lambda m: history[m]["date"])[-10:]
    for message_id in queued:
        history[message_id]["status"] = "Queued"
    emu = start_emulator(dataset=data)
    clicksend = connect(emu).clicksend
    _, cursor, _, _ = drain(clicksend.read_sms())
    emu.mutate(seed=7, updated=200)
    delivered = {m for m in queued if history[m]["status"] != "Queued"}
    assert delivered
    emu.reset_counters()
    _, cursor2, _, pages = drain(clicksend.read_sms(cursor))
    read = {r["message_id"]: r for p in pages if p.part == "history" for r in p.records}
    # Delivered messages keep their send date, at or below the watermark: the trailing window finds them.
    assert all(history[m]["date"] <= cursor.history_date for m in delivered)
    assert delivered <= set(read)
    assert all(read[m]["status"] != "Queued" for m in delivered)
    assert len(read) < len(history)
    assert cursor2.history_date == cursor.history_date
    assert endpoint_count(emu, "clicksend", "GET /clicksend/v3/sms/inbound") == 1
    assert endpoint_count(emu, "clicksend", "GET /clicksend/v3/sms/receipts") == 1


def test_history_window(emu, connect):
    clicksend = connect(emu).clicksend
    history = emu.dataset.tables["clicksend/sms_history"]
    dates = sorted(r["date"] for r in history.values())
    start, end = dates[len(dates) // 3], dates[2 * len(dates) // 3]
    records, _, _, _ = drain(
        clicksend.read_sms_history_window(
            datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
        )
    )
    assert {r["message_id"] for r in records} == {m for m, r in history.items() if start <= r["date"] <= end}


def test_account_country(emu, connect):
    assert connect(emu).clicksend.account_country() == "US"


def customer_list(clicksend):
    return next(item for item in clicksend.lists() if not is_opt_out_list(item))


def test_create_and_update_contacts(emu, connect):
    clicksend = connect(emu).clicksend
    list_id = customer_list(clicksend)["list_id"]
    created = clicksend.create_contact(list_id, {"phone_number": "+14155550123", "first_name": "Rua"})
    assert created.ok
    assert created.record_id
    updated = clicksend.update_contact(list_id, created.record_id, {"last_name": "Kenana"})
    assert updated.ok
    stored = emu.dataset.tables["clicksend/list_contact"][int(created.record_id)]
    assert (stored["first_name"], stored["last_name"]) == ("Rua", "Kenana")


def test_a_lists_contacts_since_its_watermark_are_what_the_next_extract_reads_of_it(emu, connect):
    """Reverse sync's look before creating: the contacts updated after the watermark minus the
    lookback (a contact added now among them), every contact of the list without a watermark."""
    clicksend = connect(emu).clicksend
    list_id = str(customer_list(clicksend)["list_id"])
    _, cursor, _, _ = drain(clicksend.read_list_contacts())
    everyone = clicksend.list_contacts_since(list_id, None)
    assert len(everyone) > 1
    mark = cursor.updated_after[list_id]
    recent = {
        str(r["contact_id"])
        for r in everyone
        if int(r["date_updated"]) > mark - clicksend.lookback.total_seconds()
    }
    assert len(recent) < len(everyone)
    assert {str(r["contact_id"]) for r in clicksend.list_contacts_since(list_id, mark)} == recent
    before = datetime.now(UTC) - timedelta(seconds=1)
    added = clicksend.create_contact(list_id, {"phone_number": "+14155550123", "first_name": "Rua"})
    since = clicksend.list_contacts_since(list_id, mark)
    assert {str(r["contact_id"]) for r in since} == {*recent, str(added.record_id)}
    # From an instant instead (the extract's start, less a margin): what changed after it alone.
    after = clicksend.list_contacts_since(list_id, mark, after=before)
    assert {str(r["contact_id"]) for r in after} == {str(added.record_id)}


def test_opt_out_list_is_never_written(emu, connect):
    clicksend = connect(emu).clicksend
    opt_out = next(item for item in clicksend.lists() if is_opt_out_list(item))
    emu.reset_counters()
    with pytest.raises(ValueError, match="opt-out"):
        clicksend.create_contact(opt_out["list_id"], {"phone_number": "+14155550123"})
    assert emu.total_requests() == 0


def test_refused_update_is_a_record_result(emu, connect):
    clicksend = connect(emu).clicksend
    record = next(iter(emu.dataset.tables["clicksend/list_contact"].values()))
    emu.reject_writes("clicksend", record["contact_id"], "BAD_REQUEST", "Invalid phone_number")
    result = clicksend.update_contact(record["list_id"], record["contact_id"], {"first_name": "X"})
    assert (result.ok, result.code, result.message) == (False, "BAD_REQUEST", "Invalid phone_number")


def test_create_is_not_repeated_when_the_connection_drops(emu, connect):
    clicksend = connect(emu).clicksend
    list_id = customer_list(clicksend)["list_id"]
    emu.set_faults(FaultConfig(drop_rate=1.0, apps=frozenset({"clicksend"})))
    emu.reset_counters()
    with pytest.raises(AmbiguousWriteError) as info:
        clicksend.create_contact(list_id, {"email": "once@example.org"})
    assert "clicksend POST /v3/lists/" in str(info.value)
    assert endpoint_count(emu, "clicksend", "POST /clicksend/v3/lists/{list_id}/contacts") == 1


def test_status_window_defaults_cover_three_days(emu, connect):
    assert connect(emu).clicksend.status_window == timedelta(hours=72)


def by_part(pages) -> dict[str, list[str]]:
    """Message ids per part, in the order read, repeats kept."""
    found: dict[str, list[str]] = {}
    for page in pages:
        found.setdefault(page.part, []).extend(r["message_id"] for r in page.records)
    return found


@pytest.mark.parametrize("shape", ["timestamp", "timestamp_send", "both"])
def test_inbound_watermark_moves_whichever_time_key_the_items_carry(start_emulator, connect, shape):
    emu = start_emulator(seed=7, people=200, behaviours=Behaviours(clicksend_inbound_time=shape))
    clicksend = connect(emu).clicksend
    _, cursor, _, pages = drain(clicksend.read_sms())
    inbound = emu.dataset.tables["clicksend/sms_inbound"]
    assert set(by_part(pages)["inbound"]) == set(inbound)
    assert cursor.inbound_timestamp == max(m["timestamp"] for m in inbound.values())
    emu.mutate(seed=3, messages=30)
    emu.reset_counters()
    _, cursor2, _, pages = drain(clicksend.read_sms(cursor))
    # The second run stops at the watermark: one page, holding only what arrived since (and the lookback).
    assert endpoint_count(emu, "clicksend", "GET /clicksend/v3/sms/inbound") == 1
    assert set(by_part(pages)["inbound"]) < set(emu.dataset.tables["clicksend/sms_inbound"])
    assert cursor2.inbound_timestamp >= cursor.inbound_timestamp


def test_messages_repeated_by_several_poll_rules_are_read_once(start_emulator, connect):
    # Three POLL rules list each message three times; at 100 a page, copies fall within a page and
    # across page boundaries.
    emu = start_emulator(seed=7, people=400, behaviours=Behaviours(clicksend_poll_rules=3))
    clicksend = connect(emu).clicksend
    _, cursor, _, pages = drain(clicksend.read_sms())
    read = by_part(pages)
    for part, table in (("inbound", "clicksend/sms_inbound"), ("receipt", "clicksend/sms_receipt")):
        stored = emu.dataset.tables[table]
        assert 3 * len(stored) > 100, "copies must straddle a page boundary"
        assert sorted(read[part]) == sorted(stored), part
    assert endpoint_count(emu, "clicksend", "GET /clicksend/v3/sms/inbound") > 1
    assert cursor.receipt_timestamp == max(
        m["timestamp"] for m in emu.dataset.tables["clicksend/sms_receipt"].values()
    )


@pytest.mark.parametrize(
    ("inbound", "receipts"), [(True, True), (False, True), (True, False), (False, False)]
)
def test_poll_rules_say_whether_inbound_and_receipts_can_be_read(start_emulator, connect, inbound, receipts):
    emu = start_emulator(
        seed=7,
        people=40,
        behaviours=Behaviours(
            clicksend_inbound_poll=inbound, clicksend_receipts_poll=receipts, clicksend_poll_rules=2
        ),
    )
    rules = connect(emu).clicksend.poll_rules()
    assert rules == PollRules(inbound=inbound, receipts=receipts)
    counts = emu.request_counts()
    assert set(counts) == {
        ("clicksend", "GET /clicksend/v3/automations/sms/inbound"),
        ("clicksend", "GET /clicksend/v3/automations/sms/receipts"),
    }
    assert emu.writes() == []


def test_poll_rules_are_unknown_when_the_account_cannot_list_them():
    forbidden = {"http_code": 403, "response_code": "FORBIDDEN", "response_msg": "No access.", "data": None}
    odd = {"http_code": 200, "response_code": "SUCCESS", "response_msg": "ok", "data": "rules"}
    with ScriptedServer() as server:
        http = HttpClient("clicksend", server.url, retry=RetryPolicy(max_attempts=1))
        server.answer(Answer(403, forbidden), Answer(200, odd))
        assert ClickSendClient(http).poll_rules() == PollRules(inbound=None, receipts=None)
        server.answer(Answer(401, {"error": {"message": "Invalid API key", "code": 401}}))
        with pytest.raises(AuthError):
            ClickSendClient(http).poll_rules()
        http.close()
    assert [seen.method for seen in server.seen] == ["GET", "GET", "GET"]


def test_history_as_a_bare_array_is_one_last_page(start_emulator, connect, caplog):
    emu = start_emulator(seed=7, people=200, behaviours=Behaviours(clicksend_history_shape="bare_array"))
    clicksend = connect(emu).clicksend
    with caplog.at_level("INFO", logger="connectors.clicksend"):
        _, cursor, _, pages = drain(clicksend.read_sms())
        drain(clicksend.read_sms(cursor))
    history = emu.dataset.tables["clicksend/sms_history"]
    assert sorted(by_part(pages)["history"]) == sorted(history)
    assert cursor.history_date == max(m["date"] for m in history.values())
    assert set(by_part(pages)["inbound"]) == set(emu.dataset.tables["clicksend/sms_inbound"])
    lines = [r.getMessage() for r in caplog.records if "bare" in r.getMessage()]
    assert len(lines) == 1, lines
