"""A Zoho create never goes out without a field the org's layout makes mandatory.

An admin can make any field mandatory on a Zoho layout (Leads' ``Company`` often is), and the API
enforces it: ``MANDATORY_NOT_FOUND``. Reverse sync reads the layouts when a run starts and refuses such
a create up front, with a line naming the field; creates that carry it land. Where the layouts cannot
be read, the creates go out and Zoho's refusal, naming the field, is what the ledger keeps.
"""

import pytest
import sqlalchemy as sa

from connectors.emulator import running_emulator
from connectors.emulator.behaviours import Behaviours, CreateLayout
from models.push.ledger import stored_create_requirements
from models.warehouse.db import open_warehouse
from pipelines.runner import run_sync
from tests.pipelines.conftest import settings_for
from tests.pipelines.test_reverse_sync import ledger

LEADS_NEED_COMPANY = "missing company: zoho_crm/lead requires Company on create (mandatory in its layouts)"


def companies(url: str) -> dict[str, str | None]:
    with open_warehouse(url).connect() as connection:
        return {str(c): v for c, v in connection.execute(sa.text("SELECT contact_id, company FROM contacts"))}


def lead_creates(url: str) -> list[dict[str, object]]:
    return ledger(url, destination="zoho_crm", object="lead", reason="create")


def test_a_lead_create_without_the_company_its_layout_requires_is_refused_up_front(sqlite_url: str) -> None:
    behaviours = Behaviours(zoho_layout_required=("Leads.Company",))
    with running_emulator(seed=11, people=160, behaviours=behaviours) as emu:
        settings = settings_for(emu, sqlite_url, contact_sync_push_create="zoho_crm/lead;zoho_bigin/contact")
        result = run_sync(settings)
        assert result.success, result.failures
        inserted = [w for w in emu.writes() if w.app == "zoho_crm" and w.method == "POST"]

    creates = lead_creates(sqlite_url)
    company = companies(sqlite_url)
    refused = {str(r["contact_id"]) for r in creates if r["error"] == LEADS_NEED_COMPANY}
    landed = {str(r["contact_id"]) for r in creates if r["status"] == "sent"}
    assert refused, "the sandbox has people without a company that Zoho CRM lacks"
    assert landed, "and people with one"
    assert all(company[c] is None for c in refused)
    assert all(company[c] is not None for c in landed)
    assert {r["status"] for r in creates if str(r["contact_id"]) in refused} == {"invalid"}
    # Nothing went out for Zoho to refuse, and Zoho was asked nothing it refused.
    assert not [
        r for r in ledger(sqlite_url, destination="zoho_crm") if r["status"] in ("rejected", "parked")
    ]
    assert inserted
    # Bigin's layout requires nothing beyond Last_Name: its creates are planned as before.
    assert not [r for r in ledger(sqlite_url, destination="zoho_bigin") if "layouts" in str(r["error"] or "")]


def test_where_the_layouts_cannot_be_read_zohos_refusal_names_the_field(sqlite_url: str) -> None:
    behaviours = Behaviours(zoho_layout_required=("Leads.Company",), zoho_layouts_readable=False)
    with running_emulator(seed=11, people=160, behaviours=behaviours) as emu:
        settings = settings_for(emu, sqlite_url, contact_sync_push_create="zoho_crm/lead")
        result = run_sync(settings)
        assert result.success, result.failures

    creates = lead_creates(sqlite_url)
    company = companies(sqlite_url)
    refused = [r for r in creates if r["status"] == "rejected"]
    assert refused, "sent without knowing the layout, the creates without a company are refused"
    assert {str(r["error"]) for r in refused} == {"required field not found (Company)"}
    assert all(company[str(r["contact_id"])] is None for r in refused)
    assert not [r for r in creates if r["error"] == LEADS_NEED_COMPANY]
    assert [r for r in creates if r["status"] == "sent"]


def test_when_the_layout_lets_the_field_go_the_refused_creates_go_out_whole(warehouse_url: str) -> None:
    behaviours = Behaviours(zoho_layout_required=("Leads.Company",))
    with running_emulator(seed=11, people=160, behaviours=behaviours) as emu:
        settings = settings_for(emu, warehouse_url, contact_sync_push_create="zoho_crm/lead")
        assert run_sync(settings).success
        refused = {
            str(r["contact_id"]) for r in lead_creates(warehouse_url) if r["error"] == LEADS_NEED_COMPANY
        }
        assert refused
        emu.set_behaviours(Behaviours())  # an admin makes Company optional again
        emu.clear_writes()
        assert run_sync(settings).success
        created = {
            str(w.record_id): w.body
            for w in emu.writes()
            if w.app == "zoho_crm" and w.method == "POST" and w.record_id is not None
        }

    sent = [
        r for r in lead_creates(warehouse_url) if r["status"] == "sent" and str(r["contact_id"]) in refused
    ]
    assert {str(r["contact_id"]) for r in sent} == refused, "every create refused for the company went out"
    # Each went whole: the record holds the contact's email and last name, not only what changed.
    by_record: dict[str, set[str]] = {}
    for row in sent:
        by_record.setdefault(str(row["record_id"]), set()).add(str(row["field"]))
    assert all({"Last_Name", "Email"} <= fields for fields in by_record.values())
    assert set(by_record) <= set(created)


def test_a_run_that_cannot_read_the_layouts_plans_with_what_they_said_last(warehouse_url: str) -> None:
    """One failed read of the layouts changes nothing: the run keeps refusing what the layouts required
    when last read, so the plan's settings stay the same and nothing goes out for Zoho to refuse."""
    behaviours = Behaviours(zoho_layout_required=("Leads.Company",))
    with running_emulator(seed=11, people=160, behaviours=behaviours) as emu:
        settings = settings_for(emu, warehouse_url, contact_sync_push_create="zoho_crm/lead")
        assert run_sync(settings).success
        before = len(ledger(warehouse_url, destination="zoho_crm", object="lead"))
        emu.set_behaviours(Behaviours(zoho_layout_required=("Leads.Company",), zoho_layouts_readable=False))
        emu.clear_writes()
        assert run_sync(settings).success
        inserted = [w for w in emu.writes() if w.app == "zoho_crm" and w.method == "POST"]

    assert len(ledger(warehouse_url, destination="zoho_crm", object="lead")) == before, "nothing planned anew"
    assert not inserted
    assert stored_create_requirements(open_warehouse(warehouse_url), "zoho_crm", "lead") == {"Company"}


@pytest.mark.parametrize("lands_in", ["standard", "partner"])
def test_a_field_only_one_of_two_layouts_requires_is_left_to_zohos_answer(
    sqlite_url: str, lands_in: CreateLayout
) -> None:
    """Which layout an API create lands in, Zoho does not say: with Company mandatory in a second
    layout alone, creates are not refused up front; whichever layout the emulator plays, a create
    without a company either lands or is refused by Zoho naming the field, and none carrying one is."""
    behaviours = Behaviours(zoho_partner_layout_required=("Leads.Company",), zoho_api_create_layout=lands_in)
    with running_emulator(seed=11, people=160, behaviours=behaviours) as emu:
        settings = settings_for(emu, sqlite_url, contact_sync_push_create="zoho_crm/lead")
        assert run_sync(settings).success

    creates = lead_creates(sqlite_url)
    company = companies(sqlite_url)
    assert not [r for r in creates if "mandatory in its layouts" in str(r["error"] or "")]
    without = {str(r["contact_id"]) for r in creates if company[str(r["contact_id"])] is None}
    assert without, "the sandbox has people without a company that Zoho CRM lacks"
    refused = {str(r["contact_id"]) for r in creates if r["status"] == "rejected"}
    assert {str(r["error"]) for r in creates if r["status"] == "rejected"} <= {
        "required field not found (Company)"
    }
    assert refused == (without if lands_in == "partner" else set())
    assert {str(r["contact_id"]) for r in creates if r["status"] == "sent"} == {
        str(r["contact_id"]) for r in creates
    } - refused
