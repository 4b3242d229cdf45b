"""ClickSend v3 through the emulated gateway: the pagination envelope, time filters and contact writes."""

import pytest

from connectors.emulator.behaviours import Behaviours

CUSTOMERS = 3555278
OPT_OUT = 3555270


def walk(maton, path, **params) -> tuple[list[dict], list[dict]]:
    """Follow next_page_url to the end; returns the rows and each page's envelope (without rows)."""
    rows, envelopes, page = [], [], 1
    while True:
        response = maton.get(path, params={**params, "page": page})
        assert response.status_code == 200
        body = response.json()
        assert (body["http_code"], body["response_code"]) == (200, "SUCCESS")
        data = body["data"]
        rows += data.pop("data")
        envelopes.append(data)
        if data["next_page_url"] is None:
            return rows, envelopes
        assert data["next_page_url"] == f"/?page={page + 1}"
        page += 1


def stored_contacts(emulator, list_id):
    records = emulator.dataset.tables["clicksend/list_contact"].values()
    return sorted((r for r in records if r["list_id"] == list_id), key=lambda r: r["contact_id"])


def test_account_tells_the_country(maton):
    body = maton.get("/clicksend/v3/account").json()
    assert body["data"]["country"] == "US"


def test_lists_include_the_default_opt_out_list(emulator, maton):
    lists = maton.get("/clicksend/v3/lists").json()["data"]
    names = {item["list_name"]: item for item in lists["data"]}
    assert names["Opt-Out List"]["list_id"] == OPT_OUT
    assert names["Customers"]["_contacts_count"] == len(stored_contacts(emulator, CUSTOMERS))


@pytest.mark.parametrize("limit", [15, 100])
def test_list_contacts_walk_to_the_end_equals_the_stored_list(emulator, maton, limit):
    rows, envelopes = walk(maton, f"/clicksend/v3/lists/{CUSTOMERS}/contacts", limit=limit)
    assert rows == stored_contacts(emulator, CUSTOMERS)
    first, last = envelopes[0], envelopes[-1]
    assert first["prev_page_url"] is None
    assert first["from"] == 1
    assert first["per_page"] == limit
    assert last["current_page"] == last["last_page"] == len(envelopes)
    assert last["to"] == last["total"] == len(rows)


def test_limit_is_clamped_to_the_documented_range(maton):
    small = maton.get(f"/clicksend/v3/lists/{CUSTOMERS}/contacts", params={"limit": 3}).json()["data"]
    large = maton.get(f"/clicksend/v3/lists/{CUSTOMERS}/contacts", params={"limit": 500}).json()["data"]
    assert (small["per_page"], large["per_page"]) == (15, 100)


def test_updated_after_is_strict(emulator, maton):
    contacts = stored_contacts(emulator, CUSTOMERS)
    pivot = sorted(r["date_updated"] for r in contacts)[len(contacts) // 2]
    rows, _ = walk(maton, f"/clicksend/v3/lists/{CUSTOMERS}/contacts", limit=100, updated_after=pivot)
    assert [r["contact_id"] for r in rows] == [r["contact_id"] for r in contacts if r["date_updated"] > pivot]


def test_history_window_is_inclusive_and_ordered(emulator, maton):
    dates = sorted(r["date"] for r in emulator.dataset.tables["clicksend/sms_history"].values())
    low, high = dates[len(dates) // 4], dates[3 * len(dates) // 4]
    rows, _ = walk(
        maton, "/clicksend/v3/sms/history", limit=100, date_from=low, date_to=high, order_by="date:desc"
    )
    assert [r["date"] for r in rows] == sorted((d for d in dates if low <= d <= high), reverse=True)
    assert rows[0]["date"] == high
    assert rows[-1]["date"] == low


def test_inbound_and_receipts_come_newest_first(emulator, maton):
    inbound, _ = walk(maton, "/clicksend/v3/sms/inbound", limit=100)
    assert len(inbound) == len(emulator.dataset.tables["clicksend/sms_inbound"])
    assert [m["timestamp"] for m in inbound] == sorted((m["timestamp"] for m in inbound), reverse=True)
    receipts, _ = walk(maton, "/clicksend/v3/sms/receipts", limit=100)
    assert [m["timestamp"] for m in receipts] == sorted((m["timestamp"] for m in receipts), reverse=True)


def test_contacts_have_no_upsert_so_duplicates_are_allowed(emulator, maton):
    url = f"/clicksend/v3/lists/{CUSTOMERS}/contacts"
    body = {"phone_number": "(415) 261-0000", "email": "dup@zylker.com", "first_name": "Dup"}
    first = maton.post(url, json=body).json()["data"]
    second = maton.post(url, json=body).json()["data"]
    assert first["contact_id"] != second["contact_id"]
    assert first["phone_number"] == "+14152610000"
    assert len([w for w in emulator.writes() if w.app == "clicksend"]) == 2


def test_update_changes_fields_and_date_updated(emulator, maton):
    contact = stored_contacts(emulator, CUSTOMERS)[0]
    url = f"/clicksend/v3/lists/{CUSTOMERS}/contacts/{contact['contact_id']}"
    updated = maton.put(url, json={"organization_name": "Initech"}).json()["data"]
    assert updated["organization_name"] == "Initech"
    assert updated["date_updated"] >= contact["date_updated"]
    assert maton.get(url).json()["data"]["organization_name"] == "Initech"


def test_errors_use_the_envelope(emulator, maton):
    missing = maton.get(f"/clicksend/v3/lists/{CUSTOMERS}/contacts/1")
    assert missing.status_code == 404
    assert missing.json()["response_code"] == "NOT_FOUND"
    bad = maton.post(f"/clicksend/v3/lists/{CUSTOMERS}/contacts", json={"first_name": "Nobody"})
    assert (bad.status_code, bad.json()["response_code"]) == (400, "BAD_REQUEST")
    contact = stored_contacts(emulator, CUSTOMERS)[0]
    emulator.reject_writes("clicksend", contact["contact_id"], code="FORBIDDEN")
    refused = maton.delete(f"/clicksend/v3/lists/{CUSTOMERS}/contacts/{contact['contact_id']}")
    assert (refused.status_code, refused.json()["response_code"]) == (403, "FORBIDDEN")


@pytest.mark.parametrize(
    ("shape", "keys"),
    [
        ("timestamp", {"timestamp"}),
        ("timestamp_send", {"timestamp_send"}),
        ("both", {"timestamp", "timestamp_send"}),
    ],
)
def test_inbound_time_key_follows_the_behaviour(emulator, maton, shape, keys):
    emulator.set_behaviours(Behaviours(clicksend_inbound_time=shape))
    inbound, _ = walk(maton, "/clicksend/v3/sms/inbound", limit=100)
    assert inbound
    assert all({"timestamp", "timestamp_send"} & set(m) == keys for m in inbound)
    stored = emulator.dataset.tables["clicksend/sms_inbound"]
    assert all(
        m.get("timestamp", m.get("timestamp_send")) == stored[m["message_id"]]["timestamp"] for m in inbound
    )


def test_inbound_and_receipts_are_listed_once_per_poll_rule(emulator, maton):
    emulator.set_behaviours(Behaviours(clicksend_inbound_poll=False, clicksend_poll_rules=3))
    inbound, _ = walk(maton, "/clicksend/v3/sms/inbound", limit=100)
    receipts, _ = walk(maton, "/clicksend/v3/sms/receipts", limit=100)
    assert inbound == []
    stored = emulator.dataset.tables["clicksend/sms_receipt"]
    assert len(receipts) == 3 * len(stored)
    assert {m["message_id"] for m in receipts} == set(stored)


def test_automation_rules_list_the_poll_rules_in_play(emulator, maton):
    def polling(path):
        rules, _ = walk(maton, path, limit=100)
        return [r for r in rules if r["action"] == "POLL" and r["enabled"] == 1], rules

    emulator.set_behaviours(Behaviours(clicksend_receipts_poll=False, clicksend_poll_rules=2))
    inbound, rules = polling("/clicksend/v3/automations/sms/inbound")
    assert len(inbound) == 2
    assert {"inbound_rule_id", "dedicated_number", "rule_name", "action", "action_address", "enabled"} <= set(
        rules[0]
    )
    receipts, rules = polling("/clicksend/v3/automations/sms/receipts")
    assert receipts == []
    assert any(r["action"] == "POLL" for r in rules), "a disabled POLL rule is listed but does not poll"
    assert {"receipt_rule_id", "rule_name", "match_type", "action", "action_address", "enabled"} <= set(
        rules[0]
    )


def test_history_as_the_vendors_example_is_a_bare_array(emulator, maton):
    emulator.set_behaviours(Behaviours(clicksend_history_shape="bare_array"))
    body = maton.get("/clicksend/v3/sms/history", params={"limit": 15, "order_by": "date:asc"}).json()
    assert (body["status"], body["response_code"]) == (200, "SUCCESS")
    assert "http_code" not in body
    dates = [m["date"] for m in body["data"]]
    assert dates == sorted(r["date"] for r in emulator.dataset.tables["clicksend/sms_history"].values())
