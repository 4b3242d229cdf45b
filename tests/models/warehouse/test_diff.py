"""Rows that differ: what `keyed_changes` and `unkeyed_changes` find against the stored rows."""

import re
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa

from models.warehouse.db import open_warehouse
from models.warehouse.diff import keyed_changes, replace_differing
from models.warehouse.tables import Contact, ContactFieldLineage

WHEN = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


def test_json_values_equal_in_python_but_not_in_json_count_as_changed(warehouse_url: str) -> None:
    """1, 1.0 and true are one value to Python's ``==`` and three to JSON: a stored document holding
    another of them must be rewritten; the same document in another key order is unchanged."""
    engine = open_warehouse(warehouse_url)
    stored = {"n": 1, "tier": "gold"}
    rows = [
        {"contact_id": f"c{i}", "custom": stored, "created_at": WHEN, "updated_at": WHEN, "source_count": 1}
        for i in range(4)
    ]
    with engine.begin() as connection:
        connection.execute(sa.insert(Contact), rows)
    new = pd.DataFrame(
        {
            "contact_id": ["c0", "c1", "c2", "c3", "c4"],
            "custom": [
                {"tier": "gold", "n": 1},
                {"n": 1.0, "tier": "gold"},
                {"n": True, "tier": "gold"},
                None,
                {"n": 1},
            ],
            "updated_at": [WHEN] * 5,
        }
    )
    with engine.connect() as connection:
        changes = keyed_changes(connection, Contact, new, ["contact_id"])
    assert list(changes.changed["contact_id"]) == ["c1", "c2", "c3"]
    assert list(changes.added["contact_id"]) == ["c4"]
    assert changes.gone == []
    assert changes.differing == [("custom",)] * 3


def test_changed_rows_are_updated_in_place_setting_only_what_differs(warehouse_url: str) -> None:
    """A changed lineage row keeps its place (updated, not deleted and inserted again), and each
    UPDATE sets only the columns that differ: a column in the SET list has its indexes rewritten even
    when its value stays."""
    engine = open_warehouse(warehouse_url)
    contacts = [
        {"contact_id": f"c{i}", "created_at": WHEN, "updated_at": WHEN, "source_count": 1} for i in range(3)
    ]
    lineage = [
        {"contact_id": f"c{i}", "field": field, "value": f"{field}{i}", "source": "zoho_crm"}
        | {"object": "contact", "source_id": f"z{i}", "rule": "most_recent"}
        for i in range(3)
        for field in ("email", "phone")
    ]
    with engine.begin() as connection:
        connection.execute(sa.insert(Contact), contacts)
        connection.execute(sa.insert(ContactFieldLineage), lineage)
    new = pd.DataFrame(lineage)
    new.loc[0, "value"] = "moved@example.com"  # c0 email: the value alone
    new.loc[3, ["source", "source_id"]] = ["linkflow", "l1"]  # c1 phone: where it came from
    new = new.drop(index=[5])  # c2 phone: gone
    new.loc[6] = {"contact_id": "c2", "field": "city", "value": "Oslo", "source": "zoho_crm"} | {
        "object": "contact",
        "source_id": "z2",
        "rule": "most_recent",
    }
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(" ".join(statement.split()))

    sa.event.listen(engine, "before_cursor_execute", seen)
    within = [ContactFieldLineage.contact_id.in_(["c0", "c1", "c2"])]
    with engine.begin() as connection:
        replace_differing(connection, ContactFieldLineage, ["contact_id", "field"], new, within)
    sa.event.remove(engine, "before_cursor_execute", seen)

    set_lists = sorted(
        re.findall(r"(\w+) ?=", s.split(" SET ")[1].split(" WHERE ")[0])
        for s in statements
        if s.startswith("UPDATE")
    )
    assert set_lists == [["source", "source_id"], ["value"]]
    deletes = [s for s in statements if s.startswith("DELETE")]
    assert len(deletes) == 1  # the gone row's; the changed ones stay where they are
    columns = ["contact_id", "field", "value", "source", "object", "source_id", "rule"]
    with engine.connect() as connection:
        stored = pd.DataFrame(connection.execute(sa.select(ContactFieldLineage)).all(), columns=columns)
    expected = new.sort_values(["contact_id", "field"]).reset_index(drop=True)
    assert stored.sort_values(["contact_id", "field"]).reset_index(drop=True).equals(expected)
