"""Mapped values: read by path and converted to their golden type, a value that cannot convert skipped
with its reason, and written back in the destination's form so it reads back the same."""

from typing import Any

import pytest

from models.mappings import parse_mappings
from models.mappings.values import at_path, nested, outgoing, read, same

FILE = """
fields:
  - {name: plan, type: choice, choices: [free, pro], sources: {
      zoho_crm/lead: {path: Customer_Plan, values: {Free: free, Pro: pro}},
      clicksend/list_contact: custom_1}}
  - {name: seats, type: number, sources: {linkflow/contact: props.attr3, clicksend/list_contact: custom_2}}
  - {name: vip, type: boolean, sources: {clickfunnels/contact: custom_attributes.vip}}
  - {name: renews, type: date, sources: {zoho_crm/lead: Renewal_Date}}
  - {name: seen, type: datetime, sources: {zoho_crm/lead: Last_Seen}}
  - {name: note, type: text, sources: {zoho_crm/lead: Note}}
"""
MAPPINGS = parse_mappings(FILE, "m.yaml")
FIELDS = {f.name: f for f in MAPPINGS.fields}


def _read(name: str, source: str, raw: Any) -> tuple[Any, str | None]:
    field = FIELDS[name]
    mapping = next(m for m in field.sources if m.source == source)
    return read(field, mapping, raw)


@pytest.mark.parametrize(
    ("name", "source", "raw", "golden"),
    [
        ("plan", "zoho_crm", "Pro", "pro"),
        ("plan", "clicksend", "PRO", "pro"),
        ("seats", "linkflow", 10000, 10000),
        ("seats", "clicksend", "1,250.5", 1250.5),
        ("vip", "clickfunnels", "Yes", True),
        ("vip", "clickfunnels", "false", False),
        ("renews", "zoho_crm", "2026-03-01", "2026-03-01"),
        ("seen", "zoho_crm", "2026-03-01T10:00:00+08:00", "2026-03-01T02:00:00Z"),
        ("note", "zoho_crm", "  two   words ", "two words"),
        ("note", "zoho_crm", "", None),
    ],
)
def test_values_convert_to_their_golden_type(name: str, source: str, raw: Any, golden: Any) -> None:
    assert _read(name, source, raw) == (golden, None)


@pytest.mark.parametrize(
    ("name", "source", "raw"),
    [
        ("plan", "zoho_crm", "Gold"),
        ("seats", "linkflow", "many"),
        ("vip", "clickfunnels", "perhaps"),
        ("renews", "zoho_crm", "soon"),
        ("note", "zoho_crm", {"a": 1}),
    ],
)
def test_a_value_that_cannot_convert_is_skipped_with_its_reason(name: str, source: str, raw: Any) -> None:
    value, reason = _read(name, source, raw)
    assert value is None
    assert reason is not None
    assert FIELDS[name].type in reason


def test_values_go_out_in_the_destinations_form_and_read_back_the_same() -> None:
    plan, seats = FIELDS["plan"], FIELDS["seats"]
    zoho, clicksend = plan.sources
    assert outgoing(plan, zoho, "pro") == "Pro"
    assert outgoing(plan, clicksend, "pro") == "pro"
    assert outgoing(seats, seats.sources[1], 10000) == "10000"  # ClickSend custom fields hold text
    assert outgoing(seats, seats.sources[0], 10000) == 10000
    assert same(plan, zoho, "Pro", "pro")
    assert not same(plan, zoho, "Free", "pro")


def test_paths_read_and_write_nested_objects() -> None:
    assert at_path({"props": {"attr3": 5}}, "props.attr3") == 5
    assert at_path({"props": None}, "props.attr3") is None
    assert nested({"custom_attributes.plan": "pro", "custom_attributes.vip": "true", "Email": "a@b"}) == {
        "custom_attributes": {"plan": "pro", "vip": "true"},
        "Email": "a@b",
    }
