"""Linkflow as emulated: token auth, page walks, update-time id windows, the event cursor, writes."""

import calendar
import time

import httpx
import pytest

from connectors.emulator import running_emulator
from connectors.emulator.behaviours import Behaviours
from connectors.emulator.timefmt import parse_shanghai_local
from tests.connectors.emulator.conftest import linkflow_client, linkflow_token


def stored_contacts(emulator) -> dict[int, dict]:
    return emulator.dataset.tables["linkflow/contact"]


def test_token_is_issued_for_the_right_key_and_secret_only(emulator):
    url = emulator.linkflow_base_url + "/token"
    good = httpx.get(
        url, headers={"X-OpenApi-Key": "sandbox-linkflow-key", "X-OpenApi-Secret": "sandbox-linkflow-secret"}
    )
    assert good.status_code == 200
    expiration = parse_shanghai_local(good.json()["expiration"])
    assert 7000 < expiration - time.time() <= 7201
    bad = httpx.get(url, headers={"X-OpenApi-Key": "sandbox-linkflow-key", "X-OpenApi-Secret": "wrong"})
    assert bad.status_code == 401
    assert "wrong" not in bad.text


@pytest.mark.parametrize("token", [None, "not-a-token"])
def test_calls_without_a_valid_token_get_401(emulator, token):
    headers = {"X-OpenApi-Token": token} if token else {}
    response = httpx.get(emulator.linkflow_base_url + "/contacts", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"code": "B00401", "message": "token invalid or expired"}


def test_expired_tokens_get_401(emulator, linkflow):
    assert linkflow.get("/contacts").status_code == 200
    emulator.expire_linkflow_tokens()
    assert linkflow.get("/contacts").status_code == 401
    with running_emulator(people=10, linkflow_token_ttl=0.5) as short, linkflow_client(short) as client:
        assert client.get("/contacts").status_code == 200
        time.sleep(0.6)
        assert client.get("/contacts").status_code == 401


def test_contacts_pages_walk_every_contact_in_id_order(emulator, linkflow):
    found, page = [], 0
    while True:
        batch = linkflow.get("/contacts", params={"page": page, "size": 13}).json()
        found += batch
        if len(batch) < 13:
            break
        page += 1
    assert [c["id"] for c in found] == sorted(stored_contacts(emulator))


def test_bulk_ids_window_is_min_inclusive_max_exclusive(emulator, linkflow):
    contacts = stored_contacts(emulator).values()
    stamps = sorted(c["lastUpdated"] for c in contacts)
    low, high = stamps[len(stamps) // 4], stamps[3 * len(stamps) // 4]
    found, page = [], 0
    while True:
        batch = linkflow.get(
            "/v2/contacts_bulk/ids",
            params={"page": page, "size": 10, "minUpdateTime": low, "maxUpdateTime": high},
        ).json()
        found += batch
        if len(batch) < 10:
            break
        page += 1
    assert found == sorted(c["id"] for c in contacts if low <= c["lastUpdated"] < high)
    by_day = linkflow.get(
        "/v2/contacts_bulk/ids", params={"page": 0, "size": 1000, "minUpdateTime": low[:10]}
    )
    assert by_day.json() == sorted(c["id"] for c in contacts if c["lastUpdated"] >= low[:10] + " 00:00:00")


def test_bulk_ids_refuse_pages_beyond_10000(linkflow):
    assert linkflow.get("/v2/contacts_bulk/ids", params={"page": 1, "size": 10000}).status_code == 200
    response = linkflow.get("/v2/contacts_bulk/ids", params={"page": 2, "size": 5001})
    assert response.status_code == 500
    assert response.json()["code"] == "B00030"


def test_bulk_fetch_keeps_only_the_first_100_ids(emulator, linkflow):
    known = sorted(stored_contacts(emulator))
    assert len(known) > 20
    unknown = list(range(1, 81))  # ids below the first contact's
    wanted = known[:20] + unknown + known[20:]
    response = linkflow.get("/v2/contacts_bulk", params={"ids": ",".join(map(str, wanted))})
    assert [c["id"] for c in response.json()] == known[:20]


def test_event_cursor_reads_every_event_once_in_id_order(emulator, linkflow):
    found, last_max_id = [], 0
    while True:
        batch = linkflow.get("/events/lite", params={"lastMaxId": last_max_id, "size": 25}).json()
        if not batch:
            break
        found += batch
        last_max_id = max(event["id"] for event in batch)
    assert [e["id"] for e in found] == sorted(emulator.dataset.tables["linkflow/event"])


def test_contact_events_and_lookup_by_email(emulator, linkflow):
    events = emulator.dataset.tables["linkflow/event"].values()
    contact_id = next(e["contactId"] for e in events if e["contactId"] in stored_contacts(emulator))
    mine = linkflow.get(f"/contacts/{contact_id}/events").json()
    assert {e["id"] for e in mine} == {e["id"] for e in events if e["contactId"] == contact_id}
    contact = next(c for c in stored_contacts(emulator).values() if c["email"])
    found = linkflow.get("/v2/contacts", params={"email": contact["email"].strip().upper()}).json()
    assert contact["id"] in [c["id"] for c in found]
    assert linkflow.get("/v2/contacts").json()["code"] == "B00030"


def test_update_by_id_and_unknown_ids(emulator, linkflow):
    contact = next(iter(stored_contacts(emulator).values()))
    response = linkflow.put(
        f"/v2/contacts/{contact['id']}",
        json={"id": contact["id"], "company": "Hooli", "props": {"attr9": "x"}},
    )
    assert response.status_code == 200
    assert response.json()["company"] == "Hooli"
    assert response.json()["ver"] == contact["ver"] + 1
    assert response.json()["props"]["attr9"] == "x"
    missing = linkflow.put("/v2/contacts/1", json={"name": "x"})
    assert (missing.status_code, missing.json()["code"]) == (404, "B00008")


def test_identifiers_create_then_update_by_external_id(emulator, linkflow):
    body = {
        "externalId": "golden-1",
        "channel": {"channelId": "udc_contact_sync"},
        "name": "Gold",
        "email": "gold@zylker.com",
    }
    created = linkflow.post("/identifiers", json=body).json()
    updated = linkflow.post("/identifiers", json={**body, "name": "Golden"}).json()
    assert created["id"] == updated["id"]
    assert updated["name"] == "Golden"
    fetched = linkflow.get("/identifiers", params={"externalId": "golden-1", "channelId": "udc_contact_sync"})
    assert fetched.json()["id"] == created["id"]
    identities = linkflow.get(f"/contacts/{created['id']}/identities").json()
    pairs = [(identity["externalId"], identity["channel"]["channelId"]) for identity in identities]
    assert pairs == [("golden-1", "udc_contact_sync")]
    assert ("linkflow", "contact", str(created["id"])) not in emulator.truth(), "nobody owns gold@zylker.com"
    assert linkflow.post("/identifiers", json={"name": "no id"}).status_code == 500


def test_token_requests_are_counted(emulator):
    linkflow_token(emulator)
    assert emulator.request_counts()[("linkflow", "GET /linkflow/token")] == 1


# ------------------------------------------------------------ behaviours (vendors' open questions)


@pytest.mark.parametrize("order", ["ascending", "descending", "newest_tail"])
def test_events_lite_plays_each_order(emulator, linkflow, order):
    emulator.set_behaviours(Behaviours(linkflow_events_order=order))
    ids = sorted(emulator.dataset.tables["linkflow/event"])
    above = ids[2]
    page = [e["id"] for e in linkflow.get("/events/lite", params={"lastMaxId": above, "size": 4}).json()]
    expected = {
        "ascending": ids[3:7],
        "descending": ids[3:7][::-1],
        "newest_tail": ids[-4:][::-1],
    }[order]
    assert page == expected
    # A short answer holds every event above lastMaxId under each order.
    tail = [e["id"] for e in linkflow.get("/events/lite", params={"lastMaxId": ids[-3], "size": 4}).json()]
    assert sorted(tail) == ids[-2:]


def test_zone_renders_times_and_reads_window_bounds(emulator, linkflow):
    contact = next(iter(stored_contacts(emulator).values()))
    event = next(iter(emulator.dataset.tables["linkflow/event"].values()))
    emulator.set_behaviours(Behaviours(linkflow_zone="UTC"))
    moment = parse_shanghai_local(contact["lastUpdated"])
    in_utc = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(moment))
    shown = linkflow.get("/v2/contacts_bulk", params={"ids": contact["id"]}).json()[0]
    assert shown["lastUpdated"] == in_utc != contact["lastUpdated"]
    assert shown["dateCreated"] == time.strftime(
        "%Y-%m-%d %H:%M:%S", time.gmtime(parse_shanghai_local(contact["dateCreated"]))
    )
    window = {"page": 0, "size": 1000, "minUpdateTime": in_utc}
    assert contact["id"] in linkflow.get("/v2/contacts_bulk/ids", params=window).json()
    # One second later excludes it: read as Shanghai time that bound would lie 8 hours earlier.
    later = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(moment + 1))
    assert (
        contact["id"]
        not in linkflow.get("/v2/contacts_bulk/ids", params={**window, "minUpdateTime": later}).json()
    )
    lite = linkflow.get("/events/lite", params={"lastMaxId": event["id"] - 1, "size": 1}).json()[0]
    assert lite["dateCreated"] == time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(event["eventDate"] // 1000))
    url = emulator.linkflow_base_url + "/token"
    keys = {"X-OpenApi-Key": "sandbox-linkflow-key", "X-OpenApi-Secret": "sandbox-linkflow-secret"}
    expiration = httpx.get(url, headers=keys).json()["expiration"]
    assert 7000 < calendar.timegm(time.strptime(expiration, "%Y-%m-%d %H:%M:%S")) - time.time() <= 7201
    with pytest.raises(ValueError, match="unknown time zone"):
        Behaviours(linkflow_zone="Mars/Olympus_Mons")


def test_bulk_answers_leave_one_existing_id_out_at_the_set_share(emulator, linkflow):
    emulator.set_behaviours(Behaviours(linkflow_bulk_omission_rate=0.25))
    known = sorted(stored_contacts(emulator))[:10]
    wanted = ",".join(map(str, [*known, 1, 2]))  # 1 and 2 do not exist and are never "omitted"
    answers = [
        {c["id"] for c in linkflow.get("/v2/contacts_bulk", params={"ids": wanted}).json()} for _ in range(8)
    ]
    short = [n for n, answer in enumerate(answers, start=1) if answer != set(known)]
    assert short == [4, 8]
    assert all(len(set(known) - answers[n - 1]) == 1 and answers[n - 1] <= set(known) for n in short)
