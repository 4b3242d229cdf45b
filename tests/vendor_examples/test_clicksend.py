"""ClickSend's published examples through the product's ClickSend client (Maton ``/clicksend/v3``).

The SMS stream reads three lists in turn (history, inbound, receipts). Each SMS test serves one
list's example and answers the other two with ``EMPTY_PAGE``, so each test shows what one example
does to the stream and fails, if it fails, for that example alone.
"""

from datetime import UTC, datetime

import sqlalchemy as sa

from models.warehouse.tables import SourceAccount
from tests.vendor_examples.catalogue import load
from tests.vendor_examples.conftest import Harness
from tests.vendor_examples.server import Reply

API = "/clicksend/v3"

EMPTY_PAGE = {
    "http_code": 200,
    "response_code": "SUCCESS",
    "response_msg": "Here are your data.",
    "data": {
        "total": 0,
        "per_page": 100,
        "current_page": 1,
        "last_page": 1,
        "next_page_url": None,
        "prev_page_url": None,
        "from": None,
        "to": None,
        "data": [],
    },
}
"""Made for these tests, not published: the ``pagination`` envelope of the 3.0 schema with no records."""


def serve_sms(
    harness: Harness,
    *,
    history: object = EMPTY_PAGE,
    inbound: object = EMPTY_PAGE,
    receipts: object = EMPTY_PAGE,
) -> None:
    harness.server.route("GET", f"{API}/sms/history", Reply(200, history))
    harness.server.route("GET", f"{API}/sms/inbound", Reply(200, inbound))
    harness.server.route("GET", f"{API}/sms/receipts", Reply(200, receipts))


def test_account_lists_and_list_contacts_examples_land_as_a_golden_contact(harness):
    """The account example names country US (the phone region of this source). The lists example
    says page 1 of 2 (``last_page: 2`` and a ``next_page_url``), so the reader asks page 2 as well;
    the server answers every page with the same example. Both lists, 428 and 429, are then read; the
    list contacts example holds contact 552786 twice, stored once, and each list's watermark is the
    largest ``date_updated`` (Unix seconds). The example contacts do not name their list: the reader
    adds ``list_name`` from the list it read them from."""
    harness.server.route("GET", f"{API}/account", Reply(200, load("cs_account")))
    harness.server.route("GET", f"{API}/lists", Reply(200, load("cs_lists")))
    harness.server.route("GET", f"{API}/lists/{{list_id}}/contacts", Reply(200, load("cs_list_contacts")))
    with harness.clients("clicksend") as clients:
        report = harness.extract("clicksend/list_contact", clients)
    harness.resolve()

    pages = [r.query for r in harness.server.requests("GET", f"{API}/lists")]
    assert pages == [{"page": "1", "limit": "100"}, {"page": "2", "limit": "100"}]
    asked = {r.path for r in harness.server.seen if r.path.endswith("/contacts")}
    assert asked == {f"{API}/lists/428/contacts", f"{API}/lists/429/contacts"}
    raw = harness.raw("clicksend/list_contact")
    assert list(raw) == ["552786"]
    # Stored as it came, plus the name of the list it was read from, which ClickSend's Contact model
    # carries and this listing leaves out (consent reads the opt-out list by it).
    assert raw["552786"].payload == {
        **load("cs_list_contacts")["data"]["data"][0],
        "list_name": "ListCT3QrVL4od",
    }
    assert raw["552786"].modified_at == datetime(2026, 7, 14, 2, 52, 22, tzinfo=UTC)
    assert report.counts.inserted == 1
    assert harness.cursor("clicksend/list_contact") == {
        "updated_after": {"428": 1783997542, "429": 1783997542}
    }
    with harness.engine.connect() as connection:
        country = connection.execute(
            sa.select(SourceAccount.country).where(SourceAccount.source == "clicksend")
        ).scalar_one()
    assert country == "US"
    golden = harness.golden("clicksend", "552786")
    assert {k: golden[k] for k in ("email", "phone", "first_name", "last_name", "company", "city")} == {
        "email": "john@doe.com",
        "phone": "+16783270696",
        "first_name": "John",
        "last_name": "Doe",
        "company": "Awesome Company",
        "city": "Nashville",
    }


def test_contact_write_examples_are_read_as_one_successful_record_each(harness):
    """Create, update and delete each answer the envelope; the contact id is read from ``data``.

    The update example's message names contact #552807 while its ``data`` is contact 552786 (and
    the delete example names #552807 too): the test addresses 552786, the id the data carries, since
    the product reports the id an answer names."""
    server = harness.server
    server.route("GET", f"{API}/lists", Reply(200, load("cs_lists")))
    server.route("POST", f"{API}/lists/{{list_id}}/contacts", Reply(200, load("cs_create_contact")))
    server.route(
        "PUT", f"{API}/lists/{{list_id}}/contacts/{{contact_id}}", Reply(200, load("cs_update_contact"))
    )
    server.route(
        "DELETE", f"{API}/lists/{{list_id}}/contacts/{{contact_id}}", Reply(200, load("cs_delete_contact"))
    )
    with harness.clients("clicksend") as clients:
        cs = clients.clicksend
        assert cs is not None
        created = cs.create_contact(428, {"phone_number": "+16783270696", "first_name": "John"})
        updated = cs.update_contact(428, 552786, {"last_name": "Doe"})
        deleted = cs.delete_contact(428, 552786)

    assert (created.ok, created.record_id, created.details["response_code"]) == (True, "552786", "SUCCESS")
    assert (updated.ok, updated.record_id) == (True, "552786")
    assert (deleted.ok, deleted.record_id, deleted.details["data"]) == (True, "552786", [])
    assert server.requests("POST", f"{API}/lists/428/contacts")[0].body == {
        "phone_number": "+16783270696",
        "first_name": "John",
    }
    assert server.requests("PUT", f"{API}/lists/428/contacts/552786")[0].body == {"last_name": "Doe"}


def test_receipts_example_lands_as_activity_with_its_time(harness):
    """A receipt carries ``timestamp`` (Unix seconds): it is the record's time, the activity's time
    and the receipts watermark. It names no phone, and no stored message has its id, so it links to
    no contact."""
    serve_sms(harness, receipts=load("cs_sms_receipts"))
    with harness.clients("clicksend") as clients:
        harness.extract("clicksend/sms", clients)
    harness.resolve()

    when = datetime(2024, 8, 2, 2, 27, 41, tzinfo=UTC)
    raw = harness.raw("clicksend/sms")
    key = "receipt:D6D16B28-46AC-484A-AB0A-A08CD08EF75C"
    assert list(raw) == [key]
    assert raw[key].modified_at == when
    cursor = harness.cursor("clicksend/sms")
    assert (cursor.get("history_date"), cursor.get("inbound_timestamp"), cursor.get("receipt_timestamp")) == (
        None,
        None,
        1722565661,
    )
    activity = harness.activity()[f"clicksend:sms:{key}"]
    assert (activity["occurred_at"], activity["contact_id"], activity["summary"]) == (
        when,
        None,
        "delivery receipt: Success: Message received on handset.",
    )


def test_inbound_example_with_only_timestamp_send_gets_its_time_and_moves_the_watermark(harness):
    """Issue 18, ClickSend inbound row. The ``view-inbound-sms`` example's item carries
    ``timestamp_send`` (1722997250, 7 Aug 2024, matching its body "reply to msg on 7 aug 2024") and no
    ``timestamp``. That is the message's time: the stored record's modified time, the inbound
    watermark (so the next run does not re-read the whole list) and the activity's ``occurred_at``.
    Today all three stay empty."""
    serve_sms(harness, inbound=load("cs_sms_inbound"))
    with harness.clients("clicksend") as clients:
        harness.extract("clicksend/sms", clients)
    harness.resolve()

    when = datetime(2024, 8, 7, 2, 20, 50, tzinfo=UTC)
    key = "inbound:D2F2BCC3-6558-4DAA-858E-AD7529CC809C"
    raw = harness.raw("clicksend/sms")
    assert list(raw) == [key]
    activity = harness.activity()[f"clicksend:sms:{key}"]
    assert activity["summary"] == "SMS received: reply to msg on 7 aug 2024"
    cursor = harness.cursor("clicksend/sms")
    found = (raw[key].modified_at, cursor.get("inbound_timestamp"), activity["occurred_at"])
    assert found == (when, 1722997250, when), "(modified_at, inbound watermark, occurred_at)"


def test_history_example_without_the_envelope_is_one_last_page(harness):
    """Issue 18, ClickSend history row. The ``view-sms-history`` example is wrong against its own
    schema: it has ``status`` where the schema says ``http_code``, and ``data`` is a bare array of
    messages where the schema says the paginated envelope (``data.data``). Read right, it is one
    page, the last: the message is stored with its ``date`` as its time, the history watermark
    moves, and the stream goes on. Today the whole SMS stream fails with ``no data envelope``."""
    serve_sms(harness, history=load("cs_sms_history"))
    with harness.clients("clicksend") as clients:
        harness.extract("clicksend/sms", clients)
    harness.resolve()

    when = datetime(2024, 5, 14, 4, 20, 41, tzinfo=UTC)
    key = "history:1EF11A95-31A2-6B70-A3E2-750B2DF4583F"
    raw = harness.raw("clicksend/sms")
    assert list(raw) == [key]
    assert raw[key].modified_at == when
    assert harness.cursor("clicksend/sms").get("history_date") == 1715660441
    assert len(harness.server.requests("GET", f"{API}/sms/history")) == 1
    activity = harness.activity()[f"clicksend:sms:{key}"]
    assert (activity["occurred_at"], activity["summary"]) == (
        when,
        "SMS sent (Sent): test message, please ignore",
    )
