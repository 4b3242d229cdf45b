"""What a Zoho create must carry, read from the module's layouts (v8 layouts metadata shape): the fields
every active layout makes mandatory, less those no create sets or Zoho fills itself; and a create
refused up front, naming the field, when the contact has no value for it or nothing writes it."""

from typing import Any

import pandas as pd

from models.mappings import parse_mappings
from models.push.field_map import PushConfig, destination_map
from models.push.plan import plan_creates, record_changes
from models.push.required_fields import beyond_map, required_on_create


def field(name: str, **traits: Any) -> dict[str, Any]:
    return {"api_name": name, "required": False, "system_mandatory": False, "data_type": "text", **traits}


def layout(*fields: dict[str, Any], status: str = "active") -> dict[str, Any]:
    return {"name": "Standard", "status": status, "sections": [{"api_name": "Info", "fields": list(fields)}]}


STANDARD = layout(
    field("Last_Name", system_mandatory=True, required=True),
    field("Company", required=True),
    field("Owner", required=True, data_type="ownerlookup"),
    field("Lead_Status", required=True, default_value="New"),
    field("Created_Time", required=True, read_only=True),
    field("Lead_Number", required=True, operation_type={"api_create": False, "api_update": False}),
    field("Email"),
)


def test_a_field_is_required_when_a_create_must_carry_it() -> None:
    # The owner, a defaulted value, a read-only or API-uncreatable field: Zoho fills them, or no create
    # could set them.
    assert required_on_create([STANDARD]) == {"Last_Name", "Company"}


def test_with_several_layouts_only_what_every_active_one_requires_counts() -> None:
    partner = layout(
        field("Last_Name", system_mandatory=True), field("Company"), field("Region", required=True)
    )
    retired = layout(field("Last_Name", required=True), field("Fax", required=True), status="inactive")
    assert required_on_create([STANDARD, partner, retired]) == {"Last_Name"}
    assert required_on_create([retired]) == frozenset()
    assert required_on_create([]) == frozenset()


def test_odd_answers_are_read_as_far_as_they_go() -> None:
    odd = {"sections": [None, {"fields": [None, {"required": True}, field("Company", required=True)]}]}
    assert required_on_create([odd]) == {"Company"}


def test_what_the_field_map_requires_already_is_left_out() -> None:
    leads = destination_map("zoho_crm", "lead")
    assert beyond_map(leads, frozenset({"Last_Name", "Company"})) == {"Company"}
    assert beyond_map(leads, frozenset({"Last_Name"})) == frozenset()


ANN = {"contact_id": "c1", "email": "ann@example.org", "last_name": "Lee", "company": "Acme"}
BO = {"contact_id": "c2", "email": "bo@example.org", "last_name": "Ray", "company": None}
NONE_HELD = pd.DataFrame(columns=["contact_id", "destination", "object"])
COLUMNS = ("contact_id", "email", "phone", "first_name", "last_name", "company", "title", "city", "country")


def golden(*contacts: dict[str, Any], custom: list[Any] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame([{name: c.get(name) for name in COLUMNS} for c in contacts], dtype=object)
    if custom is not None:
        frame["custom"] = custom
    return frame


def refusals(plan: pd.DataFrame) -> dict[str, set[str | None]]:
    found: dict[str, set[str | None]] = {}
    for row in plan.itertuples(index=False):
        found.setdefault(str(row.contact_id), set()).add(row.invalid_reason)
    return found


def leads_config(required: frozenset[str], **more: Any) -> PushConfig:
    key = ("zoho_crm", "lead")
    return PushConfig(create_missing=frozenset({key}), create_fields_required={key: required}, **more)


def test_a_create_without_a_value_its_layout_requires_is_refused_naming_the_field() -> None:
    plan = plan_creates(golden(ANN, BO), NONE_HELD, leads_config(frozenset({"Company"})))
    assert refusals(plan) == {
        "c1": {None},
        "c2": {"missing company: zoho_crm/lead requires Company on create (mandatory in its layouts)"},
    }
    (sent,) = record_changes(plan)
    assert sent.payload["Company"] == "Acme"
    # The map's own rule still speaks first for what it requires.
    nameless = {**BO, "last_name": None}
    plan = plan_creates(golden(nameless), NONE_HELD, leads_config(frozenset({"Company"})))
    assert refusals(plan) == {"c2": {"missing mandatory last_name"}}


def test_a_required_field_nothing_writes_refuses_every_create_and_says_what_to_do() -> None:
    plan = plan_creates(golden(ANN, BO), NONE_HELD, leads_config(frozenset({"Customer_Plan", "Rating"})))
    (reason,) = set(plan["invalid_reason"])
    assert reason == (
        "zoho_crm/lead requires Customer_Plan, Rating on create (mandatory in its layouts), which "
        "contact-sync does not write: make it optional there, or map a golden field to it "
        "(CONTACT_SYNC_MAPPINGS)"
    )
    assert record_changes(plan) == []


def test_a_required_field_the_mappings_file_writes_is_carried_by_the_contacts_that_hold_it() -> None:
    mappings = parse_mappings(
        "fields:\n  - name: plan\n    type: text\n    sources:\n      zoho_crm/lead: Customer_Plan\n"
    )
    config = leads_config(frozenset({"Customer_Plan"}), mappings=mappings)
    plan = plan_creates(golden(ANN, BO, custom=[{"plan": "Pro"}, None]), NONE_HELD, config)
    assert refusals(plan) == {
        "c1": {None},
        "c2": {"missing plan: zoho_crm/lead requires Customer_Plan on create (mandatory in its layouts)"},
    }
    (sent,) = record_changes(plan)
    assert sent.payload["Customer_Plan"] == "Pro"


def test_what_a_layout_requires_is_part_of_the_plans_settings() -> None:
    key = ("zoho_crm", "lead")
    plain = PushConfig(create_missing=frozenset({key}))
    assert leads_config(frozenset()).fingerprint(*key) == plain.fingerprint(*key)
    company = leads_config(frozenset({"Company"})).fingerprint(*key)
    assert company != plain.fingerprint(*key)
    assert company != leads_config(frozenset({"Company", "Rating"})).fingerprint(*key)
    # Without creates there, what creates need changes nothing.
    updates_only = PushConfig(create_fields_required={key: frozenset({"Company"})})
    assert updates_only.fingerprint(*key) == PushConfig().fingerprint(*key)
