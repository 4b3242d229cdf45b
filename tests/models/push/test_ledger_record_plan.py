"""`record_plan` hands back each row's own ledger id, in plan order, even with other plans stored at once.

A real run marks each row by its id as it sends it, so an id handed to the wrong row would mark the
wrong write sent.
"""

import threading
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from models.push import ledger
from models.push.ledger import record_plan
from models.warehouse.db import open_warehouse
from models.warehouse.tables import PushLedger


def plan(rows: int, prefix: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "destination": "zoho_crm",
            "object": "lead",
            "record_id": [f"{prefix}{n}" for n in range(rows)],
            "contact_id": [f"c{n}" for n in range(rows)],
            "parent_id": None,
            "record_modified_at": pd.Timestamp("2026-01-01", tz="UTC"),
            "field": "Email",
            "before_value": None,
            "after_value": [f"{prefix}{n}@example.com" for n in range(rows)],
            "reason": "fill",
            "invalid_reason": [("bad" if n % 7 == 3 else None) for n in range(rows)],
        }
    )


def stored(url: str, ids: list[int]) -> list[tuple[str, str, str]]:
    engine = open_warehouse(url)
    with engine.connect() as connection:
        found = {
            row.id: (row.record_id, row.after_value, row.status)
            for row in connection.execute(
                sa.select(PushLedger.id, PushLedger.record_id, PushLedger.after_value, PushLedger.status)
            )
        }
    return [found[ledger_id] for ledger_id in ids]


def expected(frame: pd.DataFrame) -> list[tuple[str, str, str]]:
    return [
        (record, after, "invalid" if isinstance(invalid, str) else "planned")
        for record, after, invalid in zip(
            frame["record_id"], frame["after_value"], frame["invalid_reason"], strict=True
        )
    ]


def test_each_id_is_its_own_row_in_plan_order(warehouse_url: str) -> None:
    engine = open_warehouse(warehouse_url)
    record_plan(engine, plan(5, "old"), run_id="r0", dry_run=False)  # ids do not start at 1
    frame = plan(1_200, "r")
    ids = record_plan(engine, frame, run_id="r1", dry_run=False)
    assert len(ids) == len(set(ids)) == len(frame)
    assert stored(warehouse_url, ids) == expected(frame)


def test_plans_stored_at_once_by_several_threads_keep_their_own_ids(warehouse_url: str) -> None:
    # Reverse sync plans its destinations in threads, each recording its slices as it goes.
    engine = open_warehouse(warehouse_url)
    frames = {name: plan(400, name) for name in ("a", "b", "c", "d")}
    ids: dict[str, list[int]] = {}

    def store(name: str) -> None:
        ids[name] = record_plan(engine, frames[name], run_id=name, dry_run=False)

    threads = [threading.Thread(target=store, args=(name,)) for name in frames]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, frame in frames.items():
        assert stored(warehouse_url, ids[name]) == expected(frame)


def test_a_plan_is_stored_in_a_few_statements_not_one_a_row(
    warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLAlchemy, asked for ids in order on SQLite, would send one INSERT a row (no INSERT form there
    # ties new rowids to parameters): 917,000 statements for a first sync at a million records. On
    # PostgreSQL its batches of a thousand rows had psycopg parse 17,000 placeholders each in Python.
    engine = open_warehouse(warehouse_url)
    record_plan(engine, plan(3, "old"), run_id="r0", dry_run=False)
    statements: list[str] = []
    inserted: list[int] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    real = ledger.bulk_insert

    def bulk_insert(connection: Any, model: Any, frame: pd.DataFrame) -> None:
        inserted.append(len(frame))
        real(connection, model, frame)

    monkeypatch.setattr(ledger, "bulk_insert", bulk_insert)
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        frame = plan(2_000, "r")
        ids = record_plan(engine, frame, run_id="r1", dry_run=False)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert stored(warehouse_url, ids) == expected(frame)
    # The rows in one bulk insert (COPY on PostgreSQL, one executemany on SQLite) with their ids read
    # or taken from the sequence in a statement or two; nothing else goes row by row.
    assert inserted == [2_000]
    assert not [s for s in statements if s.lstrip().upper().startswith("INSERT")]
    assert len(statements) <= 8, statements  # the write lock's own statements included
