"""Linkflow's published examples (seed 002) through the product's Linkflow client.

The client runs on a fixed clock, 2017-09-04 09:20 Shanghai time: the token example expires at
``2017-09-04 09:30:23`` (Shanghai, no zone written), so it is valid then, as the example meant.

``LinkflowWorld`` plays the API around the examples where a read depends on what was asked: which
contacts ``ids=`` names, which events lie above ``lastMaxId``. Wherever a request is the one an
example answers, the answer is that example, verbatim.
"""

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.factory import Clients
from tests.vendor_examples.catalogue import load
from tests.vendor_examples.conftest import Harness
from tests.vendor_examples.server import ExampleServer, Reply, Request

API = "/linkflow"
NOW = datetime(2017, 9, 4, 1, 20, tzinfo=UTC)
"""09:20 in Shanghai, ten minutes before the token example expires."""


class LinkflowWorld:
    """Contacts and events behind the examples.

    - ``/v2/contacts_bulk/ids`` answers ``ids``; ``/contacts`` lists the contacts by ``page``/``size``.
    - ``/v2/contacts_bulk`` answers its example (ids 1, 3, 5 of ``1,3,5,7,8``) the first time it is
      asked exactly those ids while ``example_first`` is set; otherwise the contacts asked for.
    - ``/contacts/{id}/identities`` answers its example for a known contact, else 404 ``B00008``
      (the seed names that code for an unknown contact; the body's shape is not published).
    - ``/events/lite`` plays the order the only example shows: the ``size`` newest events above
      ``lastMaxId``, newest first (api-notes §4.2, behaviour (c)). ``/contacts/{id}/events`` lists a
      contact's events newest first, by ``page`` and ``size``, as its example does.
    """

    def __init__(
        self,
        contacts: list[dict[str, Any]],
        *,
        ids: list[int],
        events: Sequence[dict[str, Any]] = (),
        example_first: bool = False,
    ) -> None:
        self.contacts = {int(c["id"]): c for c in contacts}
        self.ids = ids
        self.events = sorted(events, key=lambda e: -int(e["id"]))
        self.example_first = example_first

    def serve(self, server: ExampleServer) -> None:
        server.route("GET", f"{API}/token", Reply(200, load("lf_token")))
        server.route("GET", f"{API}/v2/contacts_bulk/ids", Reply(200, self.ids))
        server.route("GET", f"{API}/contacts", self._contacts)
        server.route("GET", f"{API}/v2/contacts_bulk", self._bulk)
        server.route("GET", f"{API}/contacts/{{id}}/identities", self._identities)
        server.route("GET", f"{API}/events/lite", self._events_lite)
        server.route("GET", f"{API}/contacts/{{id}}/events", self._contact_events)

    def _bulk(self, request: Request) -> Reply:
        asked = [int(i) for i in request.query["ids"].split(",")][:100]
        if self.example_first and asked == [1, 3, 5, 7, 8]:
            self.example_first = False
            return Reply(200, load("lf_bulk"))
        return Reply(200, [self.contacts[i] for i in asked if i in self.contacts])

    def _contacts(self, request: Request) -> Reply:
        page, size = _paging(request)
        return Reply(200, [self.contacts[i] for i in sorted(self.contacts)][page * size : (page + 1) * size])

    def _identities(self, request: Request) -> Reply:
        if int(request.params["id"]) in self.contacts:
            return Reply(200, load("lf_identities"))
        return Reply(404, {"code": "B00008", "message": "没有找到此ID的联系人"})

    def _events_lite(self, request: Request) -> Reply:
        above = [e for e in self.events if int(e["id"]) > int(request.query["lastMaxId"])]
        return Reply(200, above[: int(request.query.get("size", 200))])

    def _contact_events(self, request: Request) -> Reply:
        mine = [e for e in self.events if str(e.get("contactId")) == request.params["id"]]
        page, size = _paging(request)
        return Reply(200, mine[page * size : (page + 1) * size])


def _paging(request: Request) -> tuple[int, int]:
    """Linkflow's 0-based ``page`` and its ``size`` (default 200, seed 002)."""
    return int(request.query.get("page", 0)), int(request.query.get("size", 200))


def shanghai(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC) - timedelta(hours=8)


@pytest.fixture
def linkflow(harness: Harness) -> Iterator[Clients]:
    with harness.linkflow_clients(lambda: NOW) as clients:
        yield clients


def test_token_example_expires_in_shanghai_time(harness):
    """``expiration`` is written without a zone; read as Shanghai time the token is refreshed within
    five minutes of 01:30:23 UTC. At 01:20 UTC one token serves two calls; at 01:26 UTC (09:26 in
    Shanghai) it is refreshed. Read as UTC it would still look good for eight hours."""
    LinkflowWorld([], ids=[], events=load("lf_events_lite")).serve(harness.server)
    clock = [NOW]
    with harness.linkflow_clients(lambda: clock[0]) as clients:
        lf = clients.linkflow
        assert lf is not None
        list(lf.read_events())
        list(lf.read_events())
        fetched_first = len(harness.server.requests("GET", f"{API}/token"))
        clock[0] = datetime(2017, 9, 4, 1, 26, tzinfo=UTC)
        list(lf.read_events())
    tokens = harness.server.requests("GET", f"{API}/token")
    assert (fetched_first, len(tokens)) == (1, 2)
    assert (tokens[0].headers["x-openapi-key"], tokens[0].headers["x-openapi-secret"]) == (
        "example-app-key",
        "example-app-secret",
    )
    events = harness.server.requests("GET", f"{API}/events/lite")
    assert {r.headers["x-openapi-token"] for r in events} == {load("lf_token")["token"]}


def test_contacts_examples_land_with_shanghai_times_and_cn_phones(harness, linkflow):
    """The ids example lists 1, 3, 5, 7, 8 and the bulk example answers 1, 3, 5 (7 and 8 were never
    stored here, so nothing is retired). ``lastUpdated`` is Shanghai time without a zone; national
    mobile numbers read with Linkflow's region, CN. The window's upper bound is ahead of the API's clock in
    any zone (now in UTC+14, plus one second: the bound is exclusive), and the watermark is the latest
    ``lastUpdated`` read, in Linkflow's own time format, so a wrong guess of its zone opens no gap."""
    LinkflowWorld(load("lf_bulk"), ids=load("lf_bulk_ids"), example_first=True).serve(harness.server)
    harness.extract("linkflow/contact", linkflow)
    harness.resolve()

    assert harness.server.requests("GET", f"{API}/v2/contacts_bulk/ids")[0].query == {
        "page": "0",
        "size": "1000",
        "minUpdateTime": "2000-01-01 00:00:00",
        "maxUpdateTime": "2017-09-04 15:20:01",
    }
    assert harness.server.requests("GET", f"{API}/v2/contacts_bulk")[0].query == {
        "ids": "1,3,5,7,8",
        "needOpenId": "1",
    }
    raw = harness.raw("linkflow/contact")
    assert {k for k, r in raw.items() if r.deleted_at is None} == {"1", "3", "5"}
    assert raw["1"].payload == load("lf_bulk")[0]
    assert raw["1"].modified_at == shanghai("2017-08-04 12:00:00")
    assert raw["3"].modified_at == shanghai("2017-03-29 16:16:57")
    assert harness.cursor("linkflow/contact").get("updated_until") == "2017-08-04 12:00:00"
    assert harness.identifiers("linkflow", "1") == {
        "email": ("test@nazaio.com", "test@nazaio.com", None),
        "mobilePhone": ("13888888888", "+8613888888888", None),
        "homePhone": ("025-83729999", "+862583729999", None),
    }
    golden = harness.golden("linkflow", "1")
    assert {k: golden[k] for k in ("email", "first_name", "last_name", "company", "title", "city")} == {
        "email": "test@nazaio.com",
        "first_name": "熙",
        "last_name": "康",
        "company": "上海源犀信息科技有限公司",
        "title": "java",
        "city": "南京",
    }
    kyle = harness.golden("linkflow", "3")
    assert (kyle["email"], kyle["first_name"], kyle["last_name"], kyle["city"]) == (
        "bb@nazaio.com",
        "Kyle",
        "Lee",
        "广州",
    )


def test_contacts_left_out_of_one_bulk_answer_are_not_retired(harness, linkflow):
    """Issue 18, Linkflow bulk row. A first sync stored contacts 1, 3, 5, 7 and 8 (7 and 8 are made
    for this test: only their ids are published). On the next sync the bulk answer is the vendor's
    example, which asks ``ids=1,3,5,7,8`` and answers 1, 3 and 5 without a word. Nothing says 7 and 8
    are gone: asked again, the API has them, and their identities answer. They must stay live. Today
    both are marked deleted on that one answer."""
    earlier = [
        {"id": i, "dateCreated": "2017-06-01 10:00:00", "lastUpdated": "2017-06-01 10:00:00"} for i in (7, 8)
    ]
    world = LinkflowWorld([*load("lf_bulk"), *earlier], ids=load("lf_bulk_ids"))
    world.serve(harness.server)
    harness.extract("linkflow/contact", linkflow)
    assert {k for k, r in harness.raw("linkflow/contact").items() if r.deleted_at is None} == {
        "1",
        "3",
        "5",
        "7",
        "8",
    }

    world.example_first = True
    harness.extract("linkflow/contact", linkflow)

    raw = harness.raw("linkflow/contact")
    assert {k: raw[k].deleted_at for k in ("1", "3", "5", "7", "8")} == dict.fromkeys(
        ("1", "3", "5", "7", "8")
    )


def test_events_lite_example_lands_as_activity(harness, linkflow):
    """The example page holds two events, a short page of the 200 asked for, so it is the end. Each
    event is stored with ``lastUpdated`` (Shanghai) as its modified time; the activity time is
    ``eventDate`` (epoch milliseconds), the same instant as ``dateCreated`` read as Shanghai time. The
    cursor is the largest id. Contact 2995 is not stored, so the events link to no contact."""
    LinkflowWorld([], ids=[], events=load("lf_events_lite")).serve(harness.server)
    harness.extract("linkflow/event", linkflow)
    harness.resolve()

    raw = harness.raw("linkflow/event")
    assert set(raw) == {"1126251", "1066758"}
    assert raw["1126251"].modified_at == shanghai("2019-12-07 17:07:11")
    assert harness.cursor("linkflow/event").get("last_max_id") == 1126251
    activity = harness.activity()
    view = activity["linkflow:event:1126251"]
    assert (view["occurred_at"], view["summary"], view["contact_id"]) == (
        datetime(2019, 12, 7, 9, 7, 11, 193000, tzinfo=UTC),
        "WEBSITE__PAGE_VIEW",
        None,
    )
    assert activity["linkflow:event:1066758"]["occurred_at"] == datetime(
        2019, 12, 7, 8, 46, 48, 183000, tzinfo=UTC
    )


BACKLOG_EVENT = {
    "dateCreated": "2019-12-07 16:30:00",
    "lastUpdated": "2019-12-07 16:30:00",
    "ver": 1,
    "id": 1000001,
    "contactIdentityId": 313113,
    "eventDate": 1575707400000,
    "channelId": "SHORTURL_15",
    "channelName": "短链接",
    "event": "SHORTURL__DWZ_REDIRECT",
    "triggerFlow": True,
    "contactId": 2995,
}
"""Made for this test: an older event of contact 2995, standing for the ``...`` both event examples
end with (the per-contact example lists the same two events, then ``...``)."""

CONTACT_2995 = {
    "id": 2995,
    "name": "张三",
    "mobilePhone": "13645183960",
    "dateCreated": "2018-03-23 11:42:54",
    "lastUpdated": "2020-02-12 12:02:59",
}
"""Made for this test from the identities example (contact 2995's nickname, the UDC identity's
mobile, the first identity's creation and the last update); no contact 2995 record is published."""


def test_events_listed_newest_first_are_all_read(harness, linkflow):
    """Issue 18, Linkflow events row. The only ``/events/lite`` example lists newest first (1126251 at
    17:07:11 before 1066758 at 16:46:48). Played as a tail (the ``size`` newest events above
    ``lastMaxId``) with a page of two, the first answer is exactly the example, a full page; an older
    event of the same contact lies behind it. Every event must be read, whichever way the API
    orders them: the three events, each in the activity of contact 2995. Today the reader takes
    the page's largest id as the cursor, asks above it, gets nothing, and skips the older event for
    good without a word."""
    LinkflowWorld([CONTACT_2995], ids=[2995], events=[*load("lf_contact_events"), BACKLOG_EVENT]).serve(
        harness.server
    )
    harness.extract("linkflow/contact", linkflow)
    assert linkflow.linkflow is not None
    linkflow.linkflow.event_page_size = 2
    harness.extract("linkflow/event", linkflow)
    harness.resolve()

    first, answer = harness.server.replies("GET", f"{API}/events/lite")[0]
    assert (first.query, answer.body) == ({"lastMaxId": "0", "size": "2"}, load("lf_events_lite"))
    assert set(harness.raw("linkflow/event")) == {"1126251", "1066758", "1000001"}
    assert harness.cursor("linkflow/event").get("last_max_id") == 1126251
    contact = harness.golden("linkflow", "2995")["contact_id"]
    activity = harness.activity()
    assert {a: activity[a]["contact_id"] for a in activity} == {
        f"linkflow:event:{i}": contact for i in (1126251, 1066758, 1000001)
    }


def test_write_examples_are_read_as_one_successful_record_each(harness, linkflow):
    """``PUT /v2/contacts/{id}`` and ``POST /identifiers`` each answer the contact (the seed elides
    the rest of both with ``...`` and prints the identify example's ``nickname`` empty)."""
    LinkflowWorld([], ids=[]).serve(harness.server)
    harness.server.route("PUT", f"{API}/v2/contacts/{{id}}", Reply(200, load("lf_update_contact")))
    harness.server.route("POST", f"{API}/identifiers", Reply(200, load("lf_identify")))
    lf = linkflow.linkflow
    assert lf is not None
    updated = lf.update_contact(1, {"name": "康熙", "mobilePhone": "13888888888"})
    identified = lf.identify("u1234567", "example.com", {"name": "张三"}, channel_name="example")

    assert (updated.ok, updated.record_id, updated.details["ver"]) == (True, "1", 2)
    assert (identified.ok, identified.record_id, identified.details["nickname"]) == (True, "83", None)
    assert harness.server.requests("PUT", f"{API}/v2/contacts/1")[0].body == {
        "name": "康熙",
        "mobilePhone": "13888888888",
        "id": 1,
    }
    assert harness.server.requests("POST", f"{API}/identifiers")[0].body == {
        "name": "张三",
        "externalId": "u1234567",
        "channel": {"channelId": "example.com", "name": "example"},
    }
