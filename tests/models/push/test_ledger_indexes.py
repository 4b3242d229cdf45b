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

from models.push.ledger import (
    ContactScope,
    MovedContactsRecords,
    PlanChange,
    PlanWatermark,
    changed_contacts,
    changed_targets,
    changes_since,
    creates_in_flight,
    current_watermark,
    held_contacts,
    in_flight,
    load_golden,
    load_targets,
    previous_attempts,
    settled,
)
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


def table_scans(plans: list[str]) -> list[str]:
    """The plans that scan a table: not a constant row, nor the keys bound as one array (`key_in`'s
    ``json_each``, a virtual table the plan walks to probe an index once per key)."""
    return [
        plan
        for plan in plans
        if any(
            "SCAN " in step and "CONSTANT ROW" not in step and "VIRTUAL TABLE" not in step
            for step in plan.split(" / ")
        )
    ]


def read_an_hour_ago(url: str) -> Engine:
    """A warehouse whose zoho_crm lead stream last read completely an hour ago."""
    engine = open_warehouse(url)
    with engine.begin() as connection:
        store_cursor(connection, StreamKey("zoho_crm", "lead", "incremental"), {}, utcnow())
        connection.execute(
            sa.update(StreamState)
            .where(StreamState.source == "zoho_crm")
            .values(last_status="succeeded", last_run_started_at=utcnow() - timedelta(hours=1))
        )
    return engine


def test_planning_reads_open_rows_and_its_watermark_through_indexes(sqlite_url: str) -> None:
    engine = read_an_hour_ago(sqlite_url)
    targets = pd.DataFrame({"record_id": ["1"], "last_seen_at": [pd.Timestamp.now(tz="UTC")]})
    plans = {
        "in_flight": query_plans(engine, lambda: in_flight(engine, targets, "zoho_crm", "lead")),
        "settled": query_plans(engine, lambda: settled(engine, "zoho_crm", "lead")),
        "current_watermark": query_plans(engine, lambda: current_watermark(engine, "zoho_crm", "lead", "x")),
    }
    scans = {name: table_scans(found) for name, found in plans.items()}
    assert scans == {"in_flight": [], "settled": [], "current_watermark": []}
    ledger = [p for name in ("in_flight", "settled") for p in plans[name] if "push_ledger" in p]
    assert len(ledger) == 2
    assert all("status=?" in p for p in ledger), ledger
    assert any("updated_at>?" in p for p in ledger), ledger


def test_a_slice_or_a_change_is_read_through_the_index_of_its_contacts_and_records(sqlite_url: str) -> None:
    """SQLite has no statistics to plan by: left to itself it reads a destination's records through
    the (source, object) key and its ledger rows through the status index, i.e. all of them, for
    every slice. Each scoped read must go by the contacts, records or ids it is narrowed to."""
    engine = read_an_hour_ago(sqlite_url)
    since = PlanWatermark(utcnow(), utcnow(), utcnow(), 5, utcnow(), "x")
    change = PlanChange(frozenset({1, 2}), frozenset({"c_1"}), frozenset({"r1"}), frozenset({"c_1"}))
    piece = ContactScope(after="c_1", through="c_9")
    some = ContactScope(ids=frozenset({"c_1", "c_2"}))
    targets = pd.DataFrame({"record_id": ["1"], "last_seen_at": [pd.Timestamp.now(tz="UTC")]})
    calls: dict[str, Callable[[], Any]] = {
        "changes_since": lambda: changes_since(engine, "zoho_crm", "lead", since),
        "changed_contacts": lambda: changed_contacts(engine, "zoho_crm", "lead", change),
        "targets of a slice": lambda: load_targets(engine, "zoho_crm", "lead", piece),
        "records of a change": lambda: changed_targets(engine, "zoho_crm", "lead", change),
        "records of moved contacts": lambda: MovedContactsRecords(engine).of(
            "zoho_crm", "lead", frozenset({"c_1"}), 0.0
        ),
        "targets of a change": lambda: load_targets(engine, "zoho_crm", "lead", some, {"1", "2"}),
        "golden of a slice": lambda: load_golden(engine, piece),
        "golden of a change": lambda: load_golden(engine, some),
        "in_flight": lambda: in_flight(engine, targets, "zoho_crm", "lead", narrow=True),
        "settled": lambda: settled(engine, "zoho_crm", "lead", piece),
        "held_contacts": lambda: held_contacts(engine, "zoho_crm", some),
        "creates_in_flight": lambda: creates_in_flight(engine, "zoho_crm", "lead", piece),
        "previous_attempts": lambda: previous_attempts(engine, "zoho_crm", "lead", {"1"}),
    }
    plans = {name: query_plans(engine, call) for name, call in calls.items()}
    scans = {name: table_scans(found) for name, found in plans.items()}
    assert scans == {name: [] for name in calls}, plans
    walked = {
        name: [p for p in found if "(source=? AND object=?)" in p or "status=?" in p]
        for name, found in plans.items()
        if name != "changes_since"
    }
    assert all(not found for found in walked.values()), walked
