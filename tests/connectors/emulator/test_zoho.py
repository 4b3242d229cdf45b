"""Zoho CRM v8 and Bigin v2 behind the emulated gateway: page and token paging, incremental reads, writes."""

from collections import Counter
from datetime import datetime, timedelta

import httpx
import pytest

from connectors.emulator import running_emulator
from connectors.emulator.behaviours import Behaviours
from tests.connectors.emulator.conftest import maton_client

LEADS = "/zoho-crm/crm/v8/Leads"
CONTACTS = "/zoho-crm/crm/v8/Contacts"
BIGIN = "/zoho-bigin/bigin/v2/Contacts"
FIELDS = "Last_Name,Email,Phone,Modified_Time"


def stored(emulator, table):
    return emulator.dataset.tables[table]


def shifted(stamp: str, seconds: int) -> str:
    return (datetime.fromisoformat(stamp) + timedelta(seconds=seconds)).isoformat()


def walk(maton, path, pages_by_number: int, **params):
    """Read ``pages_by_number`` pages with ``page``, then follow ``next_page_token`` to the end."""
    rows, page, token = [], 1, None
    while True:
        query = {**params, "page_token": token} if token else {**params, "page": page}
        response = maton.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        rows += body["data"]
        info = body["info"]
        assert info["count"] == len(body["data"])
        if not info["more_records"]:
            assert info["next_page_token"] is None
            return rows
        assert info["next_page_token"]
        assert info["page_token_expiry"]
        if page < pages_by_number:
            page += 1
        else:
            token = info["next_page_token"]


def test_org_tells_the_country(maton):
    org = maton.get("/zoho-crm/crm/v8/org").json()["org"][0]
    assert org["country_code"] == "US"


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_pages_then_page_tokens_walk_every_record_once(emulator, maton, order):
    rows = walk(
        maton,
        LEADS,
        2,
        fields=FIELDS,
        per_page=7,
        sort_by="Modified_Time",
        sort_order=order,
        converted="both",
    )
    expected = sorted(stored(emulator, "zoho_crm/lead").values(), key=lambda r: (r["Modified_Time"], r["id"]))
    if order == "desc":
        expected.reverse()
    assert [row["id"] for row in rows] == [record["id"] for record in expected]
    assert set(rows[0]) == {"Last_Name", "Email", "Phone", "Modified_Time", "id"}


def test_default_order_is_id_descending(emulator, maton):
    body = maton.get(CONTACTS, params={"fields": "Email"}).json()
    assert (body["info"]["sort_by"], body["info"]["sort_order"]) == ("id", "desc")
    assert [r["id"] for r in body["data"]] == sorted(stored(emulator, "zoho_crm/contact"), reverse=True)[:200]


def test_page_numbers_stop_at_2000_records(maton):
    assert maton.get(LEADS, params={"fields": FIELDS, "page": 10, "per_page": 200}).status_code == 204
    response = maton.get(LEADS, params={"fields": FIELDS, "page": 11, "per_page": 200})
    assert response.status_code == 400
    assert response.json() == {
        "code": "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
        "details": {"limit": 2000},
        "message": "You can only get the first 2000 records without using page_token param",
        "status": "error",
    }


def test_expired_page_tokens_are_refused(emulator, maton):
    info = maton.get(LEADS, params={"fields": FIELDS, "per_page": 5}).json()["info"]
    assert maton.get(LEADS, params={"page_token": info["next_page_token"]}).status_code == 200
    emulator.expire_zoho_page_tokens()
    response = maton.get(LEADS, params={"page_token": info["next_page_token"]})
    assert response.status_code == 400
    assert response.json() == {
        "code": "EXPIRED_VALUE",
        "details": {},
        "message": "The token given has expired",
        "status": "error",
    }
    unknown = maton.get(LEADS, params={"page_token": "never-issued"})
    assert (unknown.status_code, unknown.json()["code"]) == (400, "INVALID_DATA")


def test_fields_are_required_and_capped_at_50(maton):
    missing = maton.get(LEADS)
    assert (missing.status_code, missing.json()["code"]) == (400, "REQUIRED_PARAM_MISSING")
    many = ",".join(f"Field_{n}" for n in range(51))
    too_many = maton.get(LEADS, params={"fields": many})
    assert (too_many.status_code, too_many.json()["code"]) == (400, "LIMIT_EXCEEDED")


def test_converted_leads_are_hidden_unless_asked_for(emulator, maton):
    leads = stored(emulator, "zoho_crm/lead").values()
    converted = {r["id"] for r in leads if r["$converted"]}
    assert converted
    default = walk(maton, LEADS, 1, fields="Email")
    assert not converted & {r["id"] for r in default}
    both = walk(maton, LEADS, 1, fields="Email", converted="both")
    assert len(both) == len(leads)
    only = walk(maton, LEADS, 1, fields="Email", converted="true")
    assert {r["id"] for r in only} == converted


def test_if_modified_since_is_inclusive_at_second_resolution(emulator, maton):
    records = sorted(stored(emulator, "zoho_crm/contact").values(), key=lambda r: r["Modified_Time"])
    pivot = records[len(records) // 2]["Modified_Time"]

    def selected(header: str) -> set[str]:
        response = maton.get(CONTACTS, params={"fields": "Email"}, headers={"If-Modified-Since": header})
        return {row["id"] for row in response.json()["data"]}

    assert selected(pivot) == {r["id"] for r in records if r["Modified_Time"] >= pivot}
    # The same instant written in another offset selects the same records.
    india = datetime.fromisoformat(pivot).astimezone(
        datetime.fromisoformat("2026-01-01T00:00:00+05:30").tzinfo
    )
    assert selected(india.isoformat()) == selected(pivot)
    assert selected(shifted(pivot, 1)) == {r["id"] for r in records if r["Modified_Time"] > pivot}


def test_nothing_newer_is_304_and_an_empty_module_is_204(maton):
    future = (datetime.now().astimezone() + timedelta(days=1)).isoformat(timespec="seconds")
    response = maton.get(LEADS, params={"fields": "Email"}, headers={"If-Modified-Since": future})
    assert (response.status_code, response.content) == (304, b"")
    with running_emulator(people=0) as empty, maton_client(empty) as client:
        response = client.get(LEADS, params={"fields": "Email"})
        assert (response.status_code, response.content) == (204, b"")


def test_bigin_ignores_if_modified_since_unless_told(maton):
    future = (datetime.now().astimezone() + timedelta(days=1)).isoformat(timespec="seconds")
    ignored = maton.get(BIGIN, params={"fields": "Email"}, headers={"If-Modified-Since": future})
    assert ignored.status_code == 200
    assert ignored.json()["data"]
    with (
        running_emulator(people=40, bigin_honours_if_modified_since=True) as honest,
        maton_client(honest) as client,
    ):
        assert (
            client.get(BIGIN, params={"fields": "Email"}, headers={"If-Modified-Since": future}).status_code
            == 304
        )


def test_bigin_has_no_deleted_feed_by_default(maton):
    response = maton.get(BIGIN + "/deleted")
    assert (response.status_code, response.json()["code"]) == (404, "INVALID_URL_PATTERN")


def test_if_unmodified_since_refuses_records_changed_later(emulator, maton):
    record = next(iter(stored(emulator, "zoho_crm/contact").values()))
    before = shifted(record["Modified_Time"], -60)
    body = {"data": [{"id": record["id"], "Title": "Changed"}]}
    refused = maton.put(CONTACTS, json=body, headers={"If-Unmodified-Since": before})
    assert refused.status_code == 412
    [element] = refused.json()["data"]
    assert (element["code"], element["status"]) == ("ALREADY_MODIFIED", "error")
    assert element["message"] == "Record updated time has already passed if-unmodified-since time"
    assert stored(emulator, "zoho_crm/contact")[record["id"]]["Title"] == record["Title"]
    allowed = maton.put(CONTACTS, json=body, headers={"If-Unmodified-Since": record["Modified_Time"]})
    assert allowed.status_code == 200
    assert stored(emulator, "zoho_crm/contact")[record["id"]]["Title"] == "Changed"


def _one_changed_among_three(emulator):
    """Three contacts, the If-Unmodified-Since time of the second one's read, and the ids of the two
    read before it (unchanged since) and of the one modified after it (refused)."""
    contacts = stored(emulator, "zoho_crm/contact").values()
    emails = Counter(str(r["Email"]).strip().lower() for r in contacts)
    unique = [r for r in contacts if r["Email"] and emails[str(r["Email"]).strip().lower()] == 1]
    old, older, *_, newer = sorted(unique, key=lambda r: r["Modified_Time"])
    return [old["id"], older["id"], newer["id"]], older["Modified_Time"]


def test_per_record_conflicts_refuse_only_the_changed_record(emulator, maton):
    ids, read_at = _one_changed_among_three(emulator)
    body = {"data": [{"id": i, "Title": "Changed"} for i in ids]}
    mixed = maton.put(CONTACTS, json=body, headers={"If-Unmodified-Since": read_at})
    assert mixed.status_code == 207
    assert [r["code"] for r in mixed.json()["data"]] == ["SUCCESS", "SUCCESS", "ALREADY_MODIFIED"]
    titles = [stored(emulator, "zoho_crm/contact")[i]["Title"] for i in ids]
    assert titles[:2] == ["Changed", "Changed"]
    assert titles[2] != "Changed"


@pytest.mark.parametrize("path", [CONTACTS, CONTACTS + "/upsert"])
def test_whole_call_conflicts_refuse_the_call_and_write_nothing(emulator, maton, path):
    emulator.set_behaviours(Behaviours(zoho_conflict="whole_call"))
    ids, read_at = _one_changed_among_three(emulator)
    contacts = stored(emulator, "zoho_crm/contact")
    before = {i: dict(contacts[i]) for i in ids}
    items = [{"id": i, "Title": "Changed"} for i in ids]
    if path.endswith("/upsert"):  # matched on Email, as the connector's creates are
        items = [{"Email": contacts[i]["Email"], "Last_Name": "X", "Title": "Changed"} for i in ids]
    send = maton.post if path.endswith("/upsert") else maton.put
    refused = send(path, json={"data": items}, headers={"If-Unmodified-Since": read_at})
    assert refused.status_code == 412
    assert refused.json() == {
        "code": "ALREADY_MODIFIED",
        "details": {"header_name": "If-Unmodified-Since"},
        "message": "Record updated time has already passed if-unmodified-since time",
        "status": "error",
    }
    assert {i: contacts[i] for i in ids} == before
    assert emulator.writes() == []
    fine = send(path, json={"data": items[:2]}, headers={"If-Unmodified-Since": read_at})
    assert fine.status_code == 200
    assert [contacts[i]["Title"] for i in ids[:2]] == ["Changed", "Changed"]


def test_records_are_read_by_ids(emulator, maton):
    ids = sorted(stored(emulator, "zoho_crm/lead"))[:3]
    converted = next(i for i, r in stored(emulator, "zoho_crm/lead").items() if r["$converted"])
    asked = [ids[2], "4970762000999999999", ids[0], converted]
    answer = maton.get(LEADS, params={"ids": ",".join(asked), "fields": "Modified_Time", "converted": "both"})
    assert answer.status_code == 200
    assert [r["id"] for r in answer.json()["data"]] == [ids[2], ids[0], converted]
    assert set(answer.json()["data"][0]) == {"id", "Modified_Time"}
    assert answer.json()["info"]["more_records"] is False
    hidden = maton.get(LEADS, params={"ids": converted, "fields": "Modified_Time"})
    assert hidden.status_code == 204


def test_each_record_gets_its_own_result(emulator, maton):
    first = next(iter(stored(emulator, "zoho_crm/contact")))
    body = {"data": [{"id": first, "Title": "CFO"}, {"id": "4970762000999999999", "Title": "CFO"}]}
    mixed = maton.put(CONTACTS, json=body)
    assert mixed.status_code == 207
    assert [r["code"] for r in mixed.json()["data"]] == ["SUCCESS", "INVALID_DATA"]
    assert mixed.json()["data"][0]["details"]["id"] == first
    all_bad = maton.post(CONTACTS, json={"data": [{"First_Name": "No"}, {"Email": "no@x.com"}]})
    assert all_bad.status_code == 400
    assert {r["code"] for r in all_bad.json()["data"]} == {"MANDATORY_NOT_FOUND"}
    too_many = maton.post(CONTACTS, json={"data": [{"Last_Name": "X"}] * 101})
    assert (too_many.status_code, too_many.json()["code"]) == (400, "LIMIT_EXCEEDED")
    emulator.reject_writes("zoho_crm", first, code="NO_PERMISSION", message="locked")
    locked = maton.put(CONTACTS, json={"data": [{"id": first, "Title": "X"}]})
    assert (locked.status_code, locked.json()["data"][0]["code"]) == (403, "NO_PERMISSION")


def test_upsert_matches_on_email_and_refuses_ambiguous_matches(emulator, maton):
    record = next(
        r
        for r in stored(emulator, "zoho_crm/contact").values()
        if r["Email"] and "@test.com" not in r["Email"]
    )
    twice = {"data": [{"Last_Name": "Twin", "Email": "twin@zylker.com"}] * 2}
    assert maton.post(CONTACTS, json=twice).status_code == 201, "plain inserts do not check duplicates"
    body = {
        "data": [
            {"Last_Name": "Same", "Email": record["Email"].strip().upper()},
            {"Last_Name": "Fresh", "Email": "fresh.person@zylker.com"},
            {"Last_Name": "Twin", "Email": "twin@zylker.com"},
        ],
        "duplicate_check_fields": ["Email"],
        "trigger": [],
    }
    response = maton.post(CONTACTS + "/upsert", json=body)
    assert response.status_code == 207
    results = response.json()["data"]
    assert (results[0]["action"], results[0]["details"]["id"]) == ("update", record["id"])
    assert stored(emulator, "zoho_crm/contact")[record["id"]]["Last_Name"] == "Same"
    assert results[1]["action"] == "insert"
    assert results[2]["code"] == "DUPLICATE_DATA"


def test_deleted_feed_lists_deletions_since_a_time(emulator, maton):
    since = datetime.now().astimezone().isoformat(timespec="seconds")
    record_id = next(iter(stored(emulator, "zoho_crm/lead")))
    assert maton.delete(LEADS, params={"ids": record_id}).json()["data"][0]["code"] == "SUCCESS"
    recent = maton.get(LEADS + "/deleted", params={"type": "all"}, headers={"If-Modified-Since": since})
    assert [entry["id"] for entry in recent.json()["data"]] == [record_id]
    everything = maton.get(LEADS + "/deleted").json()
    assert len(everything["data"]) > 1


def test_a_token_chain_stops_at_its_limit(emulator, maton):
    emulator.set_behaviours(Behaviours(zoho_token_chain_limit=10))
    params = {"fields": FIELDS, "per_page": 5}
    first = maton.get(LEADS, params=params).json()["info"]
    second = maton.get(LEADS, params={"page_token": first["next_page_token"]})
    assert second.status_code == 200
    third = maton.get(LEADS, params={"page_token": second.json()["info"]["next_page_token"]})
    assert third.status_code == 400
    assert third.json()["code"] == "PAGINATION_LIMIT_EXCEEDED"
    assert third.json()["details"] == {"limit": 10}
    assert maton.get(LEADS, params={**params, "page": 3}).json()["code"] == "PAGINATION_LIMIT_EXCEEDED"


def test_if_modified_since_can_be_exclusive(emulator, maton):
    emulator.set_behaviours(Behaviours(zoho_if_modified_since="exclusive"))
    records = stored(emulator, "zoho_crm/contact").values()
    pivot = sorted(r["Modified_Time"] for r in records)[len(records) // 2]
    response = maton.get(CONTACTS, params={"fields": "Email"}, headers={"If-Modified-Since": pivot})
    assert {row["id"] for row in response.json()["data"]} == {
        r["id"] for r in records if r["Modified_Time"] > pivot
    }


def test_deleted_feed_keeps_entries_for_their_retention_only(emulator, maton):
    old, recent = sorted(stored(emulator, "zoho_crm/lead"))[:2]
    now = datetime.now().astimezone()
    emulator.delete_zoho_record("zoho_crm/lead", old, when=now - timedelta(days=61))
    emulator.delete_zoho_record("zoho_crm/lead", recent, when=now - timedelta(days=59))
    listed = {entry["id"] for entry in maton.get(LEADS + "/deleted").json()["data"]}
    assert recent in listed
    assert old not in listed
    emulator.set_behaviours(Behaviours(zoho_recycle_retention_days=90))
    assert old in {entry["id"] for entry in maton.get(LEADS + "/deleted").json()["data"]}


@pytest.mark.parametrize(
    ("answer", "status", "code"),
    [
        ("missing_404", 404, "INVALID_URL_PATTERN"),
        ("record_id_400", 400, "INVALID_DATA"),
        ("empty_204", 204, None),
    ],
)
def test_bigin_deleted_answers_as_the_behaviour_says(emulator, maton, answer, status, code):
    emulator.set_behaviours(Behaviours(bigin_deleted=answer))
    response = maton.get(BIGIN + "/deleted")
    assert response.status_code == status
    assert (response.json()["code"] if response.content else None) == code
    emulator.set_behaviours(Behaviours(bigin_deleted="feed"))
    assert maton.get(BIGIN + "/deleted").json()["data"]


def test_bigin_records_awaiting_approval_are_hidden_unless_asked_for(emulator, maton):
    emulator.set_behaviours(Behaviours(bigin_unapproved_share=0.3))
    everyone = set(stored(emulator, "zoho_bigin/contact"))
    fields = "Email,$approval_state"
    default = {r["id"]: r["$approval_state"] for r in walk(maton, BIGIN, 1, fields=fields)}
    waiting = {r["id"]: r["$approval_state"] for r in walk(maton, BIGIN, 1, fields=fields, approved="false")}
    both = walk(maton, BIGIN, 1, fields=fields, approved="both")
    assert waiting
    assert set(waiting.values()) == {"approval_process_pending"}
    assert set(default.values()) == {"approved"}
    assert set(default) | set(waiting) == {r["id"] for r in both} == everyone
    assert not set(default) & set(waiting)


def test_a_layouts_mandatory_fields_are_set_over_http_as_a_list_or_as_text(emulator, maton):
    """``zoho_layout_required`` through ``/_admin/behaviours``: a JSON list, or the text
    ``sandbox --behaviour`` passes (names separated by commas); a name without its module is refused."""
    admin = emulator.base_url + "/_admin/behaviours"

    def required(module: str) -> set[str]:
        (layout,) = maton.get("/zoho-crm/crm/v8/settings/layouts", params={"module": module}).json()[
            "layouts"
        ]
        return {f["api_name"] for s in layout["sections"] for f in s["fields"] if f["required"]}

    assert required("Leads") == {"Last_Name", "Owner"}
    assert httpx.post(admin, json={"zoho_layout_required": ["Leads.Company"]}).status_code == 200
    assert required("Leads") == {"Last_Name", "Owner", "Company"}
    assert httpx.post(admin, json={"zoho_layout_required": "Contacts.Title, Leads.City"}).status_code == 200
    assert (required("Leads"), required("Contacts")) == (
        {"Last_Name", "Owner", "City"},
        {"Last_Name", "Owner", "Title"},
    )
    partner = {"zoho_layout_required": [], "zoho_partner_layout_required": "Leads.Company"}
    assert httpx.post(admin, json=partner).status_code == 200
    layouts = maton.get("/zoho-crm/crm/v8/settings/layouts", params={"module": "Leads"}).json()["layouts"]
    assert [
        (layout["name"], {f["api_name"] for s in layout["sections"] for f in s["fields"] if f["required"]})
        for layout in layouts
    ] == [("Standard", {"Last_Name", "Owner"}), ("Partner", {"Last_Name", "Owner", "Company"})]
    refused = httpx.post(admin, json={"zoho_layout_required": ["Company"]})
    assert refused.status_code == 400
    assert "Module.Field" in refused.text
