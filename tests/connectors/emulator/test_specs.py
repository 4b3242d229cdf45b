"""Emulator answers checked against the vendors' own OpenAPI schemas (../shared/specs).

Where a spec declares a field non-null that the vendor's own documentation or samples show as null,
the emulator follows the documentation and the test names the field it tolerates: ClickSend's
``next_page_url``/``prev_page_url`` ("null if there's no next page"), history ``status_code`` and
``status_text`` before a message has a final status, ``contact_id``/``from_email`` of messages not
sent to a list contact; Zoho's page-token fields (null in Zoho's samples when there is no token).
"""

from connectors.emulator import running_emulator
from connectors.emulator.behaviours import Behaviours
from tests.connectors.emulator.conftest import maton_client
from tests.connectors.emulator.spec_check import mismatches, schema


def beyond(problems: list[str], tolerated: set[str]) -> list[str]:
    """The problems left after dropping nulls in the tolerated fields."""
    return [
        p
        for p in problems
        if not (p.endswith("NoneType is not string") and p.split(":")[0].rsplit(".", 1)[-1] in tolerated)
    ]


CF_SPEC = "clickfunnels-v2-contact.yml"
CS_SPEC = "clicksend-v3-openapi3-contact-sync-subset.yaml"
ZOHO_RECORD = "zoho-crm-v8-record.json"
ZOHO_ORG = "zoho-crm-v8-org.json"
ZOHO_LAYOUTS = "zoho-crm-v8-layouts.json"


def test_clickfunnels_contacts_match_contact_attributes(maton):
    contacts = maton.get("/clickfunnels/api/v2/workspaces/435231/contacts").json()
    assert contacts
    for contact in contacts:
        assert mismatches(CF_SPEC, contact, schema(CF_SPEC, "ContactAttributes")) == []
    created = maton.post(
        "/clickfunnels/api/v2/workspaces/435231/contacts/upsert",
        json={"contact": {"email_address": "s@zylker.com"}},
    ).json()
    assert mismatches(CF_SPEC, created, schema(CF_SPEC, "ContactAttributes")) == []


def test_clickfunnels_workspace_matches_workspace_attributes(maton):
    spec = "clickfunnels-v2-workspace.yml"
    workspace = maton.get("/clickfunnels/api/v2/workspaces/435231").json()
    assert mismatches(spec, workspace, schema(spec, "WorkspaceAttributes")) == []


def test_clicksend_list_contacts_match_view_list_contacts(maton):
    body = maton.get("/clicksend/v3/lists/3555278/contacts", params={"limit": 50}).json()
    assert body["data"]["data"]
    assert mismatches(CS_SPEC, body, schema(CS_SPEC, "view-list-contacts")) == []
    lists = maton.get("/clicksend/v3/lists").json()
    problems = mismatches(CS_SPEC, lists, schema(CS_SPEC, "view-lists"))
    assert beyond(problems, {"next_page_url", "prev_page_url"}) == []


def test_clicksend_messages_match_their_schemas(maton):
    history = maton.get("/clicksend/v3/sms/history", params={"limit": 100}).json()
    tolerated = {"status_code", "status_text", "contact_id", "from_email", "next_page_url", "prev_page_url"}
    assert beyond(mismatches(CS_SPEC, history, schema(CS_SPEC, "view-sms-history")), tolerated) == []
    delivered = [
        row
        for row in history["data"]["data"]
        if row["status"] in ("Completed", "Failed") and row["contact_id"]
    ]
    inner = schema(CS_SPEC, "view_sms_history_data_allOf_data_inner")
    assert all(
        mismatches(CS_SPEC, row, inner) == ["$.from_email: NoneType is not string"] for row in delivered
    )
    for path, name in (
        ("/clicksend/v3/sms/inbound", "view-inbound-sms"),
        ("/clicksend/v3/sms/receipts", "view-sms-receipts"),
    ):
        body = maton.get(path, params={"limit": 100}).json()
        assert body["data"]["data"]
        assert mismatches(CS_SPEC, body, schema(CS_SPEC, name)) == []


def test_zoho_list_info_write_results_and_deleted_feed_match_v8(emulator, maton):
    listed = maton.get("/zoho-crm/crm/v8/Leads", params={"fields": "Email", "per_page": 5}).json()
    problems = mismatches(ZOHO_RECORD, listed, schema(ZOHO_RECORD, "Response_Wrapper"))
    assert beyond(problems, {"previous_page_token"}) == []
    assert set(listed["info"]) >= {
        "per_page",
        "count",
        "page",
        "sort_by",
        "sort_order",
        "more_records",
        "next_page_token",
        "previous_page_token",
        "page_token_expiry",
    }
    contact_id = next(iter(emulator.dataset.tables["zoho_crm/contact"]))
    written = maton.put(
        "/zoho-crm/crm/v8/Contacts", json={"data": [{"id": contact_id, "Title": "VP"}]}
    ).json()
    assert mismatches(ZOHO_RECORD, written["data"][0], schema(ZOHO_RECORD, "Success_Response")) == []
    deleted = maton.get("/zoho-crm/crm/v8/Contacts/deleted").json()
    assert mismatches(ZOHO_RECORD, deleted, schema(ZOHO_RECORD, "Deleted_Records_Wrapper")) == []
    failed = maton.post("/zoho-crm/crm/v8/Contacts", json={"data": [{"Email": "x@zylker.com"}]}).json()[
        "data"
    ][0]
    assert mismatches(ZOHO_RECORD, failed, schema(ZOHO_RECORD, "API_Exception")) == []


def test_zoho_org_matches_the_org_schema(maton):
    for path in ("/zoho-crm/crm/v8/org", "/zoho-bigin/bigin/v2/org"):
        org = maton.get(path).json()
        assert mismatches(ZOHO_ORG, org, schema(ZOHO_ORG, "Response_Wrapper")) == []


def test_received_messages_listed_in_history_match_its_item_schema():
    # `clicksend_history_inbound`: /sms/history also lists the inbound messages, as history items.
    with running_emulator(seed=7, people=100, behaviours=Behaviours(clicksend_history_inbound=True)) as emu:
        with maton_client(emu) as maton:
            history = maton.get("/clicksend/v3/sms/history", params={"limit": 100}).json()
        inbound = {m["message_id"] for m in emu.dataset.tables["clicksend/sms_inbound"].values()}
    received = [row for row in history["data"]["data"] if row["direction"] == "in"]
    assert received
    assert {row["message_id"] for row in received} <= inbound
    inner = schema(CS_SPEC, "view_sms_history_data_allOf_data_inner")
    assert all(mismatches(CS_SPEC, row, inner) == [] for row in received)


#: What reverse sync reads of a layout (`models.push.required_fields`): these must be present.
LAYOUT_KEYS_READ = {"status", "sections", "fields", "api_name", "required", "system_mandatory", "read_only"}


def test_zoho_layouts_match_the_layouts_schema(maton):
    """Every value the emulator gives has the schema's type. The schema marks about 75 properties of a
    field required, some of which no example of Zoho's own carries (``file_upolad_optionlist``,
    ``common.picklist``), so only the absence of what reverse sync reads counts."""
    for path in ("/zoho-crm/crm/v8/settings/layouts", "/zoho-bigin/bigin/v2/settings/layouts"):
        body = maton.get(path, params={"module": "Contacts"}).json()
        assert body["layouts"]
        problems = mismatches(ZOHO_LAYOUTS, body, schema(ZOHO_LAYOUTS, "wrapper"))
        absent = {p.split("'")[1] for p in problems if ": missing required '" in p}
        assert [p for p in problems if ": missing required '" not in p] == []
        assert absent & LAYOUT_KEYS_READ == set()
