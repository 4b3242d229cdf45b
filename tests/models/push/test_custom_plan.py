"""Mapped fields in the reverse-sync plan: empty destination fields filled, a different value replaced
only on `write: overwrite`, `write: never` left alone, a value held already (through the value map)
not planned, and nested paths written as nested objects."""

import pandas as pd

from models.mappings import parse_mappings
from models.push.custom_plan import custom_rows
from models.push.field_map import PushConfig
from models.push.plan import plan_creates, record_changes

FILE = """
fields:
  - name: plan
    type: choice
    choices: [free, pro]
    sources:
      zoho_crm/lead: {path: Customer_Plan, values: {Free: free, Pro: pro}}
      zoho_crm/contact: {path: Customer_Plan, write: never}
      clickfunnels/contact: custom_attributes.plan
      clicksend/list_contact: {path: custom_1, write: overwrite}
"""
MAPPINGS = parse_mappings(FILE)
GOLDEN = [{"plan": "pro"}, {"plan": "pro"}, {"plan": "pro"}, None]


def _rows(dest: str, obj: str, payloads: list[dict[str, object]]) -> pd.DataFrame:
    return custom_rows(dest, obj, payloads, GOLDEN[: len(payloads)], MAPPINGS)


def test_empty_fields_are_filled_and_held_values_left_alone() -> None:
    rows = _rows(
        "zoho_crm", "lead", [{"Customer_Plan": None}, {"Customer_Plan": "Pro"}, {"Customer_Plan": "Free"}]
    )
    assert rows[["row", "field", "after_value", "reason"]].values.tolist() == [
        [0, "Customer_Plan", "Pro", "fill_empty"]
    ]


def test_overwrite_is_opt_in_and_never_is_read_only() -> None:
    overwrite = _rows("clicksend", "list_contact", [{"custom_1": "free"}, {"custom_1": ""}])
    assert overwrite[["row", "reason"]].values.tolist() == [[0, "overwrite_opt_in"], [1, "fill_empty"]]
    assert _rows("zoho_crm", "contact", [{"Customer_Plan": None}]).empty


def test_a_contact_without_the_value_never_clears_it() -> None:
    assert custom_rows("clicksend", "list_contact", [{"custom_1": "x"}], [None], MAPPINGS).empty


def test_nested_paths_go_out_as_nested_objects() -> None:
    rows = _rows("clickfunnels", "contact", [{"custom_attributes": {"other": "x"}}])
    plan = rows.assign(
        destination="clickfunnels",
        object="contact",
        record_id="7",
        contact_id="c1",
        parent_id="w",
        if_unmodified_since=pd.Series([pd.NaT], dtype="datetime64[us, UTC]"),
    )
    (change,) = record_changes(plan)
    assert change.payload == {"custom_attributes": {"plan": "pro"}}


def test_a_create_carries_the_contacts_mapped_values() -> None:
    golden = pd.DataFrame(
        {
            "contact_id": ["c1"],
            "email": ["ann@example.org"],
            "phone": [None],
            "first_name": ["Ann"],
            "last_name": ["Lee"],
            "company": [None],
            "title": [None],
            "city": [None],
            "country": [None],
            "custom": [{"plan": "pro"}],
        }
    )
    present = pd.DataFrame({"contact_id": [], "destination": [], "object": []}, dtype=object)
    config = PushConfig(create_missing=frozenset({("zoho_crm", "lead")}), mappings=MAPPINGS)
    plan = plan_creates(golden, present, config)
    (change,) = record_changes(plan)
    assert change.is_create
    assert change.payload["Customer_Plan"] == "Pro"
    assert change.payload["Last_Name"] == "Lee"
