"""Reverse-sync planning reads its watermark and its open ledger rows through indexes, not whole tables.

Each function's SELECTs are captured as they run on SQLite and handed to ``EXPLAIN QUERY PLAN``: a plan
that scans a table grows with everything ever written to it.
"""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.push.ledger import current_watermark, in_flight, settled
from models.warehouse.db import open_warehouse
from models.warehouse.store import StreamKey, store_cursor
from models.warehouse.tables import StreamState, utcnow


def query_plans(engine: Engine, call: Callable[[], Any]) -> list[str]:
    """The plan of every SELECT ``call`` runs, one line each."""
    statements: list[tuple[str, Any]] = []

    def capture(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
    ) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    with engine.connect() as connection:
        return [
            " / ".join(
                str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
            )
            for sql, params in statements
        ]


def test_planning_reads_open_rows_and_its_watermark_through_indexes(sqlite_url: str) -> None:
    engine = open_warehouse(sqlite_url)
    with engine.begin() as connection:
        store_cursor(connection, StreamKey("zoho_crm", "lead", "incremental"), {}, utcnow())
        connection.execute(
            sa.update(StreamState)
            .where(StreamState.source == "zoho_crm")
            .values(last_status="succeeded", last_run_started_at=utcnow() - timedelta(hours=1))
        )
    targets = pd.DataFrame({"record_id": ["1"], "last_seen_at": [pd.Timestamp.now(tz="UTC")]})
    plans = {
        "in_flight": query_plans(engine, lambda: in_flight(engine, targets, "zoho_crm", "lead")),
        "settled": query_plans(engine, lambda: settled(engine, "zoho_crm", "lead")),
        "current_watermark": query_plans(engine, lambda: current_watermark(engine, "zoho_crm", "lead", "x")),
    }
    scans = {
        name: [p for p in found if "SCAN " in p and "CONSTANT ROW" not in p] for name, found in plans.items()
    }
    assert scans == {"in_flight": [], "settled": [], "current_watermark": []}
    ledger = [p for name in ("in_flight", "settled") for p in plans[name] if "push_ledger" in p]
    assert len(ledger) == 2
    assert all("status=?" in p for p in ledger), ledger
    assert any("updated_at>?" in p for p in ledger), ledger
