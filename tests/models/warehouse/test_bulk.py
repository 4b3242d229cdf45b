"""Bulk writes: what `bulk_insert` stores reads back as SQLAlchemy's own insert stores it."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from models.warehouse import bulk
from models.warehouse.bulk import bulk_insert, read_frame
from models.warehouse.db import open_warehouse
from models.warehouse.tables import Contact

WHEN = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


def contact(i: int) -> dict[str, object]:
    """Every kind of value a contacts row holds: text with quotes and tabs (and one that reads as an
    array literal), None, bools, aware times (one in another zone), JSON with quotes and a backslash,
    and integers."""
    return {
        "contact_id": f"c{i:04d}",
        "email": None if i % 3 == 0 else f"p{i}@example.com",
        "phone": "+14155552671" if i % 2 else None,
        "first_name": 'Zoë "Z"\tO\'Neil\\' if i == 1 else f"Name{i}",
        "last_name": '{NULL,"x"}' if i == 2 else None,
        "email_opt_out": [None, True, False][i % 3],
        "email_opt_out_at": None if i % 2 else WHEN.astimezone(timezone(timedelta(hours=8))),
        "custom": None if i % 2 else {"tier": "gold", "n": i, "tags": ["a", "b"], "note": 'say "hi" \\ ü'},
        "created_at": WHEN,
        "updated_at": WHEN + timedelta(seconds=i),
        "source_count": i,
    }


def read_back(url: str) -> list[tuple[object, ...]]:
    with open_warehouse(url).connect() as connection:
        return [tuple(row) for row in connection.execute(sa.select(Contact).order_by(Contact.contact_id))]


def test_bulk_insert_stores_what_sqlalchemy_insert_stores_in_several_slices(
    warehouse_url: str, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "BULK_ROWS", 4)  # 11 rows: three slices
    rows = [contact(i) for i in range(11)]
    with open_warehouse(warehouse_url).begin() as connection:
        bulk_insert(connection, Contact, pd.DataFrame(rows))
    reference = sqlite_url.replace("warehouse.db", "reference.db")
    with open_warehouse(reference).begin() as connection:
        connection.execute(sa.insert(Contact), rows)
    assert read_back(warehouse_url) == read_back(reference)
    assert len(read_back(warehouse_url)) == 11


def test_read_frame_builds_columns_and_an_empty_frame_with_its_columns(warehouse_url: str) -> None:
    engine = open_warehouse(warehouse_url)
    with engine.begin() as connection:
        bulk_insert(connection, Contact, pd.DataFrame([contact(1), contact(2)]))
        query = sa.select(Contact.contact_id, Contact.source_count).order_by(Contact.contact_id)
        frame = read_frame(connection, query, ["id", "n"])
        empty = read_frame(connection, query.where(Contact.source_count > 5), ["id", "n"])
    assert frame.to_dict("list") == {"id": ["c0001", "c0002"], "n": [1, 2]}
    assert list(empty.columns) == ["id", "n"]
    assert empty.empty


def test_rows_frame_equals_a_frame_of_the_rows_values_and_keeps_an_empty_frames_columns(
    warehouse_url: str,
) -> None:
    """The same frame pandas builds from the rows (types inferred the same way), only built from tuples."""
    engine = open_warehouse(warehouse_url)
    with engine.begin() as connection:
        bulk_insert(connection, Contact, pd.DataFrame([contact(i) for i in range(1, 6)]))
        query = sa.select(Contact.contact_id, Contact.email, Contact.source_count, Contact.updated_at)
        rows = connection.execute(query.order_by(Contact.contact_id)).all()
        none = connection.execute(query.where(Contact.source_count > 99)).all()
    names = ["id", "email", "n", "at"]
    frame = bulk.rows_frame(rows, names)
    pd.testing.assert_frame_equal(frame, pd.DataFrame(rows, columns=names))
    assert frame["n"].dtype == "int64"
    assert frame["email"].isna().tolist() == [i % 3 == 0 for i in range(1, 6)]
    empty = bulk.rows_frame(none, names)
    assert list(empty.columns) == names
    assert empty.empty


@pytest.mark.parametrize("rows_per_statement", [bulk.BULK_ROWS, 2])
def test_bulk_update_sets_what_sqlalchemy_update_sets(
    warehouse_url: str, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, rows_per_statement: int
) -> None:
    """Every kind of value (text with quotes, None over a value, booleans, times in another zone, JSON)
    set by key reads back as SQLAlchemy's own UPDATE leaves it: on PostgreSQL the values go as text
    arrays cast there, so their text form must read back as the value."""
    columns = ["first_name", "last_name", "email_opt_out", "email_opt_out_at", "custom", "source_count"]
    changed = [contact(i + 1) | {"contact_id": f"c{i:04d}"} for i in range(5)]
    rows = [(row["contact_id"], *(row[name] for name in columns)) for row in changed]
    reference = sqlite_url.replace("warehouse.db", "reference.db")
    for url in (warehouse_url, reference):
        with open_warehouse(url).begin() as connection:
            connection.execute(sa.insert(Contact), [contact(i) for i in range(7)])
    monkeypatch.setattr(bulk, "BULK_ROWS", rows_per_statement)
    with open_warehouse(warehouse_url).begin() as connection:
        bulk.bulk_update(connection, Contact, ["contact_id"], columns, rows)
    with open_warehouse(reference).begin() as connection:
        for row in changed:
            connection.execute(
                sa.update(Contact)
                .where(Contact.contact_id == row["contact_id"])
                .values({name: row[name] for name in columns})
            )
    assert read_back(warehouse_url) == read_back(reference)
    assert read_back(warehouse_url) != [tuple(contact(i).values()) for i in range(7)]


def test_bulk_update_only_where_different_leaves_rows_holding_the_value(warehouse_url: str) -> None:
    """The activity step's relink: rows already pointing at the contact are not written again, and a
    key's every row moves (the key is not unique in the table, only among the rows given)."""
    engine = open_warehouse(warehouse_url)
    with engine.begin() as connection:
        connection.execute(sa.insert(Contact), [contact(i) for i in range(4)])
    moved = [("c0000", "Ann"), ("c0001", "Name1b"), ("c0002", None), ("c0003", "Name3")]
    statements: list[tuple[str, object]] = []
    sa.event.listen(engine, "after_cursor_execute", lambda *a: statements.append((a[2], a[1].rowcount)))
    with engine.begin() as connection:
        bulk.bulk_update(
            connection, Contact, ["contact_id"], ["first_name"], moved, only_where_different=True
        )
    names = [(row[0], row[3]) for row in read_back(warehouse_url)]
    assert names == [("c0000", "Ann"), ("c0001", "Name1b"), ("c0002", None), ("c0003", "Name3")]
    updates = [count for text, count in statements if text.startswith("UPDATE")]
    assert sum(updates) == 3  # rows counted by the database: the three that differed


def test_bulk_update_on_postgres_joins_through_the_key_without_statistics(postgres_schema_url: str) -> None:
    """Without statistics PostgreSQL hashed the whole table to join the rows given to it (a cost that
    grows with the warehouse): the update must take the key's index, and leave the transaction's own
    planner settings as they were."""
    engine = open_warehouse(postgres_schema_url)
    with engine.begin() as connection:
        connection.execute(sa.insert(Contact), [contact(i) for i in range(2_000)])
    rows = [(f"c{i:04d}", f"N{i}") for i in range(0, 2_000, 7)]
    plans: list[str] = []

    def explain(_conn: object, cursor: Any, statement: str, parameters: Any, *_: object) -> None:
        if statement.startswith("UPDATE"):
            with cursor.connection.cursor() as probe:
                probe.execute(f"EXPLAIN {statement}", parameters)
                plans.append(" / ".join(str(row[0]) for row in probe.fetchall()))

    sa.event.listen(engine, "before_cursor_execute", explain)
    with engine.begin() as connection:
        connection.execute(sa.text("SET LOCAL enable_seqscan = off"))  # the caller's own (by_key_only)
        bulk.bulk_update(connection, Contact, ["contact_id"], ["first_name"], rows)
        settings = connection.exec_driver_sql(
            "SELECT current_setting('enable_seqscan'), current_setting('enable_hashjoin')"
        ).one()
    sa.event.remove(engine, "before_cursor_execute", explain)
    assert len(plans) == 1
    assert "Index Scan using pk_contacts" in plans[0], plans[0]
    assert "Seq Scan on contacts" not in plans[0], plans[0]
    assert "Hash Join" not in plans[0], plans[0]
    assert tuple(settings) == ("off", "on")
    with engine.connect() as connection:
        assert (
            connection.execute(sa.select(Contact.first_name).where(Contact.contact_id == "c0007")).scalar()
            == "N7"
        )


def test_bulk_update_keeps_what_a_column_holds_where_the_new_value_is_none(warehouse_url: str) -> None:
    """The push ledger's outcomes: a row's last error stays when its new outcome carries none."""
    engine = open_warehouse(warehouse_url)
    with engine.begin() as connection:
        connection.execute(sa.insert(Contact), [contact(i) for i in range(3)])
    given = [("c0000", None, 7), ("c0001", "Ann", 8), ("c0002", None, 9)]
    with engine.begin() as connection:
        bulk.bulk_update(
            connection,
            Contact,
            ["contact_id"],
            ["first_name", "source_count"],
            given,
            kept_when_none=["first_name"],
        )
    rows = [(row[0], row[3], row[-1]) for row in read_back(warehouse_url)]
    assert rows == [("c0000", "Name0", 7), ("c0001", "Ann", 8), ("c0002", "Name2", 9)]


def test_a_small_bulk_update_on_postgres_is_one_statement(postgres_schema_url: str) -> None:
    """Up to `UNGUARDED_ROWS` the planner joins through the key by itself, and the settings' three
    round trips would cost more than the update (a reverse-sync window's outcomes)."""
    engine = open_warehouse(postgres_schema_url)
    with engine.begin() as connection:
        connection.execute(sa.insert(Contact), [contact(i) for i in range(bulk.UNGUARDED_ROWS + 1)])
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(args[2])

    sa.event.listen(engine, "before_cursor_execute", seen)
    rows = [(f"c{i:04d}", f"N{i}") for i in range(bulk.UNGUARDED_ROWS)]
    with engine.begin() as connection:
        bulk.bulk_update(connection, Contact, ["contact_id"], ["first_name"], rows)
        bulk.bulk_update(connection, Contact, ["contact_id"], ["first_name"], [*rows, ("c0100", "N100")])
    sa.event.remove(engine, "before_cursor_execute", seen)
    kinds = [statement.split()[0] for statement in statements]
    assert kinds == ["UPDATE", "SELECT", "SELECT", "UPDATE", "SELECT"]
