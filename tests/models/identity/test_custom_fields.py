"""Mapped fields' survivorship: the built-in rules (recency, or the field's source priority) over the
records' converted values, one JSON object per contact and lineage rows like the built-in fields'."""

import pandas as pd

from models.identity.custom_fields import custom_columns, survive_custom
from models.mappings import parse_mappings

FILE = """
fields:
  - {name: plan, type: text, sources: {clicksend/list_contact: custom_1, linkflow/contact: props.attr2}}
  - name: tier
    type: text
    survivorship: [clicksend]
    sources: {clicksend/list_contact: custom_2, linkflow/contact: props.attr1}
"""
MAPPINGS = parse_mappings(FILE)


def _records() -> pd.DataFrame:
    send, _ = custom_columns(
        "clicksend", "list_contact", pd.Series([{"custom_1": "old", "custom_2": "low"}, {}]), MAPPINGS
    )
    flow, _ = custom_columns(
        "linkflow", "contact", pd.Series([{"props": {"attr2": "new", "attr1": "high"}}]), MAPPINGS
    )
    values = pd.concat([send, flow], ignore_index=True)
    base = pd.DataFrame(
        {
            "record_key": [1, 2, 3],
            "contact_id": ["c1", "c2", "c1"],
            "source": ["clicksend", "clicksend", "linkflow"],
            "object": ["list_contact", "list_contact", "contact"],
            "source_id": ["s1", "s2", "l1"],
            "modified_at": pd.to_datetime(["2026-01-01", "2026-01-01", "2026-02-01"], utc=True),
        }
    )
    return pd.concat([base, values], axis=1)


def test_recency_and_priority_choose_per_field_with_lineage() -> None:
    golden = survive_custom(_records(), MAPPINGS)
    assert golden.contacts.set_index("contact_id")["custom"].to_dict() == {
        "c1": {"plan": "new", "tier": "low"},
        "c2": None,
    }
    lineage = golden.lineage.set_index("field")
    assert lineage.loc["plan", "source"] == "linkflow"
    assert (lineage.loc["tier", "source"], lineage.loc["tier", "rule"]) == ("clicksend", "source_priority")


def test_unconvertible_values_are_counted_not_fatal() -> None:
    strict = parse_mappings("fields: [{name: n, type: number, sources: {clicksend/list_contact: custom_1}}]")
    columns, reasons = custom_columns("clicksend", "list_contact", pd.Series([{"custom_1": "lots"}]), strict)
    assert columns["custom:n"].tolist() == [None]
    assert len(reasons) == 1
    assert "field n:" in reasons[0]
