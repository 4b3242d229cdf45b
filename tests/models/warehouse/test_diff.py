"""Rows that differ: what `keyed_changes` and `unkeyed_changes` find against the stored rows."""

from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa

from models.warehouse.db import open_warehouse
from models.warehouse.diff import keyed_changes
from models.warehouse.tables import Contact

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
