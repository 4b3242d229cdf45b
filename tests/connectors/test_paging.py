"""Pagination edge cases a well-behaved emulator never produces, served by a scripted local server."""

import pytest

from connectors.clickfunnels import ClickFunnelsClient
from connectors.clicksend import ClickSendClient, ClickSendSmsCursor
from connectors.errors import FatalError, PaginationLoopError
from connectors.http import HttpClient, RetryPolicy
from connectors.linkflow import LinkflowClient
from connectors.zoho import CRM, ZohoClient
from tests.connectors.scripted_server import Answer, ScriptedServer


@pytest.fixture
def http():
    with ScriptedServer() as server:
        client = HttpClient("test", server.url, retry=RetryPolicy(max_attempts=1))
        client.server = server
        yield client
        client.close()


def contacts(*ids):
    return [{"id": i, "updated_at": "2026-01-01T00:00:00.000Z"} for i in ids]


def test_same_pagination_next_twice_is_a_loop(http):
    http.server.answer(
        Answer(200, contacts(*range(20)), {"Pagination-Next": "19"}),
        Answer(200, contacts(*range(20, 40)), {"Pagination-Next": "19"}),
    )
    with pytest.raises(PaginationLoopError, match="twice"):
        list(ClickFunnelsClient(http, workspace_ids=[1]).read_contacts())


def test_same_zoho_page_token_twice_is_a_loop(http):
    def page(token):
        records = [{"id": str(i), "Modified_Time": "2026-01-01T00:00:00+00:00"} for i in range(200)]
        return Answer(200, {"data": records, "info": {"more_records": True, "next_page_token": token}})

    http.server.answer(*[page("tok-a") for _ in range(10)], page("tok-a"), page("tok-a"))
    with pytest.raises(PaginationLoopError):
        list(ZohoClient(http, CRM).read_leads())
    assert "page_token=tok-a" in http.server.seen[-1].path


def test_zoho_more_records_without_a_token_past_2000_is_fatal(http):
    page = {"data": [{"id": "1"}], "info": {"more_records": True, "next_page_token": None}}
    http.server.answer(*[Answer(200, page) for _ in range(10)])
    with pytest.raises(FatalError, match="no next_page_token"):
        list(ZohoClient(http, CRM).read_contacts())


def test_events_that_do_not_move_the_cursor_are_a_loop(http):
    # A full page, the order probe (size=1: the oldest above 0), then the same page above id 5.
    http.server.answer(Answer(200, [{"id": 5}] * 2), Answer(200, [{"id": 5}]), Answer(200, [{"id": 5}] * 2))
    with pytest.raises(PaginationLoopError):
        list(LinkflowClient(http, event_page_size=2).read_events())
    assert "lastMaxId=5" in http.server.seen[-1].path


def envelope(page, last, stamps):
    records = [{"message_id": f"m{s}", "timestamp": s} for s in stamps]
    return Answer(
        200, {"data": {"current_page": page, "last_page": last, "next_page_url": None, "data": records}}
    )


def test_ascending_inbound_list_is_walked_from_its_last_page(http):
    history_empty = Answer(200, {"data": {"current_page": 1, "last_page": 1, "data": []}})
    http.server.answer(
        history_empty,
        envelope(1, 3, [100, 110]),
        envelope(3, 3, [150, 160]),
        envelope(2, 3, [120, 130]),
        Answer(200, {"data": {"current_page": 1, "last_page": 1, "data": []}}),
    )
    client = ClickSendClient(http)
    pages = list(
        client.read_sms(ClickSendSmsCursor(history_date=1, inbound_timestamp=140, receipt_timestamp=0))
    )
    inbound = [r["timestamp"] for p in pages if p.part == "inbound" for r in p.records]
    # 140 minus the 10-minute lookback reaches back to page 1 (timestamps are seconds since the epoch).
    assert inbound == [150, 160, 120, 130, 100, 110]
    assert [s.path.split("?")[1].split("&")[0] for s in http.server.seen[1:4]] == [
        "page=1",
        "page=3",
        "page=2",
    ]


def test_an_event_arriving_during_the_order_probe_does_not_hide_a_tail(http):
    # A tail page, then the probe (size=1 from the same lastMaxId) meets an event that arrived since.
    # Asking again from the page's smallest id (8) would see that event above the page's largest and
    # take the tail for an oldest-first answer whose backlog goes on; the size=1 probe does not.
    tail = [{"id": i, "contactId": 1} for i in (10, 9, 8)]
    http.server.answer(
        Answer(200, tail),
        Answer(200, [{"id": 11, "contactId": 1}]),
        Answer(200, [1]),  # the contact id listing
        Answer(200, [{"id": i, "contactId": 1} for i in (11, 10, 9)]),  # contact 1's events, newest first
        Answer(200, [{"id": i, "contactId": 1} for i in (8, 5, 2)]),
        Answer(200, [{"id": 1, "contactId": 1}]),
    )
    pages = list(LinkflowClient(http, event_page_size=3).read_events())
    ids = [e["id"] for page in pages for e in page.records]
    assert sorted(ids) == [1, 2, 5, 8, 9, 10, 11]
    assert [page.cursor.last_max_id for page in pages] == [0, 10]
    assert "/contacts/1/events?page=2" in http.server.seen[-1].path
