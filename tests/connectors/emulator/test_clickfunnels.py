"""ClickFunnels v2 through the emulated gateway: keyset pages, filters, and the contact write paths."""

import http.client
from urllib.parse import urlsplit

import pytest

from connectors.emulator.behaviours import Behaviours

WORKSPACE = 435231
CONTACTS = f"/clickfunnels/api/v2/workspaces/{WORKSPACE}/contacts"


def listed(emulator) -> dict[int, dict]:
    return {
        i: r for i, r in emulator.dataset.tables["clickfunnels/contact"].items() if r["anonymous"] is None
    }


def walk(maton, **params) -> tuple[list[dict], int]:
    """Follow Pagination-Next to the end; returns the contacts and the number of pages."""
    found, pages, after = [], 0, None
    while True:
        query = dict(params, **({"after": after} if after else {}))
        response = maton.get(CONTACTS, params=query)
        assert response.status_code == 200
        page = response.json()
        pages += 1
        found += page
        after = response.headers.get("Pagination-Next")
        if after is None:
            assert "Link" not in response.headers
            return found, pages
        assert len(page) == 20
        assert str(page[-1]["id"]) == after
        assert f"after={after}" in response.headers["Link"]
        assert 'rel="next"' in response.headers["Link"]


def test_discovery_finds_the_workspace(maton):
    teams = maton.get("/clickfunnels/api/v2/teams").json()
    workspaces = maton.get(f"/clickfunnels/api/v2/teams/{teams[0]['id']}/workspaces").json()
    assert workspaces[0]["id"] == WORKSPACE
    assert maton.get(f"/clickfunnels/api/v2/workspaces/{WORKSPACE}").json()["subdomain"] == "sandbox"
    assert maton.get("/clickfunnels/api/v2/workspaces/1/contacts").status_code == 404


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_keyset_by_id_walks_every_identified_contact_once(emulator, maton, order):
    found, pages = walk(maton, sort_order=order)
    expected = sorted(listed(emulator), reverse=order == "desc")
    assert [contact["id"] for contact in found] == expected
    assert pages == -(-len(expected) // 20)


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_keyset_by_updated_at_follows_the_implicit_id_tiebreak(emulator, maton, order):
    found, _ = walk(maton, sort_property="updated_at", sort_order=order)
    expected = sorted(
        listed(emulator).values(), key=lambda r: (r["updated_at"], r["id"]), reverse=order == "desc"
    )
    assert [c["id"] for c in found] == [r["id"] for r in expected]


def test_after_as_an_id_filter_keeps_larger_ids_in_the_requested_order(emulator, maton):
    emulator.set_behaviours(Behaviours(clickfunnels_after="id_filter"))
    pivot = sorted(listed(emulator))[len(listed(emulator)) // 2]
    query = {"sort_property": "updated_at", "sort_order": "desc", "after": pivot}
    page = maton.get(CONTACTS, params=query).json()
    expected = sorted(
        (r for i, r in listed(emulator).items() if i > pivot),
        key=lambda r: (r["updated_at"], r["id"]),
        reverse=True,
    )
    assert [c["id"] for c in page] == [r["id"] for r in expected][:20]
    found, _ = walk(maton, sort_order="asc")  # with sort_property=id both readings agree
    assert [c["id"] for c in found] == sorted(listed(emulator))


def test_workspaces_can_repeat_an_id_as_the_vendors_example(emulator, maton):
    emulator.set_behaviours(Behaviours(clickfunnels_repeat_workspace=True))
    team = maton.get("/clickfunnels/api/v2/teams").json()[0]["id"]
    workspaces = maton.get(f"/clickfunnels/api/v2/teams/{team}/workspaces").json()
    assert [w["id"] for w in workspaces] == [WORKSPACE, WORKSPACE]
    assert workspaces[0]["public_id"] != workspaces[1]["public_id"]


def test_anonymous_contacts_are_hidden_from_lists_but_readable_by_id(emulator, maton):
    hidden = [
        i for i, r in emulator.dataset.tables["clickfunnels/contact"].items() if r["anonymous"] is not None
    ]
    assert hidden
    found, _ = walk(maton)
    assert not set(hidden) & {c["id"] for c in found}
    assert maton.get(f"/clickfunnels/api/v2/contacts/{hidden[0]}").status_code == 200


def test_email_filter_is_an_or_list_and_ignores_case(emulator, maton):
    first, second = list(listed(emulator).values())[:2]
    wanted = f"{first['email_address'].upper()},{second['email_address']}"
    response = maton.get(CONTACTS, params={"filter[email_address]": wanted})
    assert sorted(c["id"] for c in response.json()) == sorted([first["id"], second["id"]])
    by_id = maton.get(CONTACTS, params={"filter[id]": f"{first['id']},999"}).json()
    assert [c["id"] for c in by_id] == [first["id"]]


def test_a_request_without_user_agent_is_refused(emulator):
    url = urlsplit(emulator.base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
    connection.request(
        "GET", "/clickfunnels/api/v2/teams", headers={"Authorization": "Bearer sandbox-maton-key"}
    )
    response = connection.getresponse()
    assert response.status == 403
    assert b'"error"' in response.read()
    connection.close()


def test_upsert_creates_then_updates_without_clearing(emulator, maton):
    url = f"/clickfunnels/api/v2/workspaces/{WORKSPACE}/contacts/upsert"
    body = {
        "contact": {
            "email_address": "New.Person@Example.org",
            "first_name": "New",
            "phone_number": "+14155550199",
        }
    }
    created = maton.post(url, json=body)
    assert created.status_code == 201
    contact_id = created.json()["id"]
    again = maton.post(
        url,
        json={"contact": {"email_address": "new.person@example.org", "first_name": None, "last_name": "P"}},
    )
    assert again.status_code == 200
    assert again.json()["id"] == contact_id
    assert again.json()["first_name"] == "New"
    assert again.json()["last_name"] == "P"
    assert [w.record_id for w in emulator.writes()] == [str(contact_id), str(contact_id)]


def test_create_refuses_a_taken_email(emulator, maton):
    taken = next(iter(listed(emulator).values()))["email_address"]
    response = maton.post(CONTACTS, json={"contact": {"email_address": taken.upper()}})
    assert response.status_code == 422
    assert "error" in response.json()


def test_put_replaces_tags_and_bumps_updated_at(emulator, maton):
    contact = next(iter(listed(emulator).values()))
    url = f"/clickfunnels/api/v2/contacts/{contact['id']}"
    response = maton.put(url, json={"contact": {"tag_ids": [21, 22], "first_name": None}})
    assert response.status_code == 200
    assert [tag["id"] for tag in response.json()["tags"]] == [21, 22]
    assert response.json()["first_name"] is None
    assert response.json()["updated_at"] > contact["updated_at"]
    assert maton.put(url, json={"contact": {"tag_ids": [999]}}).status_code == 422


def test_delete_removes_the_contact_and_its_truth(emulator, maton):
    contact_id = next(iter(listed(emulator)))
    assert maton.delete(f"/clickfunnels/api/v2/contacts/{contact_id}").status_code == 204
    assert maton.get(f"/clickfunnels/api/v2/contacts/{contact_id}").json() == {
        "error": "Not found: Record missing"
    }
    assert ("clickfunnels", "contact", str(contact_id)) not in emulator.truth()


def test_rejected_writes_answer_422(emulator, maton):
    contact_id = next(iter(listed(emulator)))
    emulator.reject_writes("clickfunnels", contact_id, message="locked for the test")
    response = maton.put(f"/clickfunnels/api/v2/contacts/{contact_id}", json={"contact": {"first_name": "X"}})
    assert (response.status_code, response.json()) == (422, {"error": "locked for the test"})
    emulator.allow_writes("clickfunnels", contact_id)
    assert maton.put(
        f"/clickfunnels/api/v2/contacts/{contact_id}", json={"contact": {"first_name": "X"}}
    ).is_success
