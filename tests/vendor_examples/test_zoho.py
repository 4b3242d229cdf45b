"""Zoho CRM's (seed 003) and Zoho Bigin's (seed 004) published examples through the product's Zoho
client (Maton ``/zoho-crm/crm/v8``, ``/zoho-bigin/bigin/v2``).

crm-oas v8 (``specs/zoho-crm-v8-*.json``) carries no examples at all, and no published example
shows ``/{module}/deleted`` or a Bigin write, so none is served here.
"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from connectors.times import parse_instant
from models.warehouse.tables import SourceAccount
from tests.vendor_examples.catalogue import load
from tests.vendor_examples.conftest import Harness
from tests.vendor_examples.server import Reply

CRM = "/zoho-crm/crm/v8"
BIGIN = "/zoho-bigin/bigin/v2"


def countries(harness: Harness) -> dict[str, str | None]:
    with harness.engine.connect() as connection:
        return dict(connection.execute(sa.select(SourceAccount.source, SourceAccount.country)).all())


def test_crm_leads_and_org_examples_land_as_a_golden_contact(harness):
    """The leads example was fetched with ``fields=First_Name,Last_Name,Email,Phone,Company``, so it
    carries no ``Modified_Time``: the record is stored without a modified time and the watermark
    stays empty (the next run reads from the start again); deletions count from the start of this
    first read, less the five-minute lookback.

    Neither identifier can link: ``Email`` is at ``noemail.invalid`` (``.invalid`` is reserved and
    never delivers, RFC 6761) and ``Phone`` is Zoho's sample ``555-555-5555``, a placeholder. The
    product keeps both raw with the reason it refused them; the contact stands on its name. The org
    example names country US. Contacts answer 204, which the seed documents for an empty data set
    ("空数据集返回HTTP状态码204")."""
    harness.server.route("GET", f"{CRM}/org", Reply(200, load("crm_org")))
    harness.server.route("GET", f"{CRM}/Leads", Reply(200, load("crm_leads")))
    harness.server.route("GET", f"{CRM}/Contacts", Reply(204))
    started = datetime.now(UTC)
    with harness.clients("zoho_crm") as clients:
        leads = harness.extract("zoho_crm/lead", clients)
        contacts = harness.extract("zoho_crm/contact", clients)
    harness.resolve()

    query = harness.server.requests("GET", f"{CRM}/Leads")[0].query
    assert {k: query[k] for k in ("converted", "sort_by", "sort_order", "per_page", "page")} == {
        "converted": "both",
        "sort_by": "Modified_Time",
        "sort_order": "asc",
        "per_page": "200",
        "page": "1",
    }
    assert {"Email", "Phone", "Mobile", "Modified_Time"} <= set(query["fields"].split(","))
    raw = harness.raw("zoho_crm/lead")
    assert list(raw) == ["7243485000000597000"]
    assert (raw["7243485000000597000"].payload, raw["7243485000000597000"].modified_at) == (
        load("crm_leads")["data"][0],
        None,
    )
    cursor = harness.cursor("zoho_crm/lead")
    assert cursor["modified_since"] is None
    deletions_from = parse_instant(cursor["deleted_since"])
    assert (
        started - timedelta(minutes=5, seconds=1)
        <= deletions_from
        <= datetime.now(UTC) - timedelta(minutes=5)
    )
    assert (leads.counts.inserted, contacts.counts.read, harness.raw("zoho_crm/contact")) == (1, 0, {})
    assert countries(harness)["zoho_crm"] == "US"
    assert harness.identifiers("zoho_crm", "7243485000000597000") == {
        "Email": ("christopher-maclead@noemail.invalid", None, "invalid_syntax"),
        "Phone": ("555-555-5555", None, "junk"),
    }
    golden = harness.golden("zoho_crm", "7243485000000597000")
    assert {k: golden[k] for k in ("email", "phone", "first_name", "last_name", "company")} == {
        "email": None,
        "phone": None,
        "first_name": "Christopher",
        "last_name": "Maclead (Sample)",
        "company": "Rangoni Of Florence",
    }


def test_bigin_contacts_example_lands_as_a_golden_contact(harness):
    """Seed 004 lost its quotes, so the example's id prints as a bare 19-digit number; it is stored
    as the same text. Bigin's org is not in any example: the country look-up is refused (404 here),
    which costs only the better phone default."""
    harness.server.route("GET", f"{BIGIN}/Contacts", Reply(200, load("bigin_contacts")))
    with harness.clients("zoho_bigin") as clients:
        harness.extract("zoho_bigin/contact", clients)
    harness.resolve()

    raw = harness.raw("zoho_bigin/contact")
    assert list(raw) == ["7255024000000596045"]
    assert raw["7255024000000596045"].payload == load("bigin_contacts")["data"][0]
    assert "zoho_bigin" not in countries(harness)
    golden = harness.golden("zoho_bigin", "7255024000000596045")
    assert (golden["email"], golden["first_name"], golden["last_name"]) == (
        "support@bigin.com",
        "Ted",
        "Watson",
    )


def test_crm_write_examples_are_read_per_record(harness):
    """The insert answer (``record added``; an upsert answers the same per-record shape, api-notes
    §5.7), the update answer and the delete answer each hold one record's result: success, the
    record's id, Zoho's message; the times in ``details`` carry the org's ``-08:00`` offset."""
    server = harness.server
    server.route("POST", f"{CRM}/Leads/upsert", Reply(201, load("crm_insert")))
    server.route("PUT", f"{CRM}/Leads", Reply(200, load("crm_update")))
    server.route("DELETE", f"{CRM}/Leads", Reply(200, load("crm_delete")))
    lead = {
        "Last_Name": "Smith",
        "First_Name": "John",
        "Email": "john.smith@example.com",
        "Phone": "+1-555-0123",
    }
    with harness.clients("zoho_crm") as clients:
        crm = clients.zoho_crm
        assert crm is not None
        (upserted,) = crm.upsert("Leads", [lead])
        (updated,) = crm.update("Leads", [{"id": "7243485000000619001", "Phone": "+1-555-9999"}])
        (deleted,) = crm.delete("Leads", ["7243485000000619001"])

    assert (upserted.ok, upserted.record_id, upserted.code, upserted.message, upserted.action) == (
        True,
        "7243485000000619001",
        "SUCCESS",
        "record added",
        None,
    )
    assert parse_instant(upserted.details["Modified_Time"]) == datetime(2026, 2, 6, 9, 10, 56, tzinfo=UTC)
    assert (updated.ok, updated.record_id, updated.message) == (True, "7243485000000619001", "记录已更新")
    assert parse_instant(updated.details["Modified_Time"]) == datetime(2026, 2, 6, 9, 11, 1, tzinfo=UTC)
    assert (deleted.ok, deleted.record_id, deleted.message) == (True, "7243485000000619001", "记录已删除")
    assert server.requests("POST", f"{CRM}/Leads/upsert")[0].body == {
        "data": [lead],
        "duplicate_check_fields": ["Email"],
    }
    assert server.requests("DELETE", f"{CRM}/Leads")[0].query == {"ids": "7243485000000619001"}
