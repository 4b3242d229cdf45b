"""Rows that differ: what `keyed_changes` and `unkeyed_changes` find against the stored rows."""

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from models.warehouse.db import open_warehouse
from models.warehouse.diff import keyed_changes, keyed_changes_from, replace_differing, unkeyed_changes_from
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


#: Few distinct values, so that rows often match, a missing value in each of the forms pandas has.
_VALUE = st.sampled_from([None, "a", "b", "A", ""])
_MISSING_FORMS = (None, np.nan, pd.NaT)
_CONTACT_VALUES = ("email", "email_opt_out", "email_opt_out_at")


def _contact_row(key: str, values: tuple[Any, Any, Any]) -> dict[str, Any]:
    text, flag, minutes = values
    when = None if minutes is None else WHEN + timedelta(minutes=minutes)
    return {"contact_id": key, "email": text, "email_opt_out": flag, "email_opt_out_at": when}


_CONTACT = st.tuples(_VALUE, st.sampled_from([None, True, False]), st.sampled_from([None, 0, 1]))


@settings(max_examples=200, deadline=None)
@given(
    stored=st.dictionaries(st.sampled_from([f"c{i}" for i in range(8)]), _CONTACT, max_size=8),
    new=st.dictionaries(st.sampled_from([f"c{i}" for i in range(8)]), _CONTACT, max_size=8),
    missing=st.sampled_from(_MISSING_FORMS),
)
def test_keyed_changes_agree_with_comparing_row_tuples(
    stored: dict[str, tuple[Any, Any, Any]], new: dict[str, tuple[Any, Any, Any]], missing: Any
) -> None:
    """Compared column by column, the rows found gone, changed (with the columns that differ) and
    added are those a dictionary of row tuples finds; a missing value is None, NaN or NaT alike."""
    stored_frame = pd.DataFrame(
        [_contact_row(key, values) for key, values in stored.items()],
        columns=["contact_id", *_CONTACT_VALUES],
        dtype=object,
    )
    rows = [_contact_row(key, values) for key, values in new.items()]
    new_frame = pd.DataFrame(rows, columns=["contact_id", *_CONTACT_VALUES], dtype=object)
    new_frame = new_frame.where(new_frame.notna(), missing)  # the new rows' missing values as pandas has them

    changes = keyed_changes_from(Contact, stored_frame, new_frame, ["contact_id"])

    before = {
        row["contact_id"]: tuple(row[name] for name in _CONTACT_VALUES)
        for row in [_contact_row(key, values) for key, values in stored.items()]
    }
    changed, differing, added = [], [], []
    for row in rows:
        after = tuple(row[name] for name in _CONTACT_VALUES)
        if row["contact_id"] not in before:
            added.append(row["contact_id"])
        elif before[row["contact_id"]] != after:
            changed.append(row["contact_id"])
            pairs = zip(_CONTACT_VALUES, before[row["contact_id"]], after, strict=True)
            differing.append(tuple(name for name, old, now in pairs if old != now))
    assert list(changes.changed["contact_id"]) == changed
    assert changes.differing == differing
    assert list(changes.added["contact_id"]) == added
    assert sorted(changes.gone) == sorted((key,) for key in stored if key not in new)


def _without_twin(rows: list[tuple[str, Any]], others: list[tuple[str, Any]]) -> list[int]:
    """The positions of ``rows`` left without a twin in ``others`` when each row, in order, takes one."""
    left = Counter(others)
    positions = []
    for position, row in enumerate(rows):
        if left[row] > 0:
            left[row] -= 1
        else:
            positions.append(position)
    return positions


_IDENTIFIER = st.tuples(st.sampled_from(["email", "phone"]), _VALUE)


@settings(max_examples=200, deadline=None)
@given(stored=st.lists(_IDENTIFIER, max_size=12), new=st.lists(_IDENTIFIER, max_size=12))
def test_unkeyed_changes_keep_the_first_stored_twins_of_each_new_row(
    stored: list[tuple[str, Any]], new: list[tuple[str, Any]]
) -> None:
    """Rows are a multiset: each new row keeps one stored twin (the first ones, in stored order), the
    stored rows left over go and the new rows left over come, and nothing else is written."""
    columns = ["kind", "value"]
    new_frame = pd.DataFrame(new, columns=columns, dtype=object)

    gone, added = unkeyed_changes_from([(100 + i, *row) for i, row in enumerate(stored)], new_frame)

    assert gone == [100 + i for i in _without_twin(stored, new)]
    came = Counter(map(tuple, added.itertuples(index=False)))
    assert came == Counter(new) - Counter(stored)
    kept = Counter(row for i, row in enumerate(stored) if 100 + i not in gone)
    assert kept + came == Counter(new)
