"""Planner statistics refreshed between steps: stale PostgreSQL tables analysed; fresh ones, SQLite left."""

import time

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.warehouse import statistics
from models.warehouse.db import open_warehouse
from models.warehouse.statistics import Refresh, refresh_stale
from models.warehouse.tables import Contact, RawRecord, utcnow


def add_records(engine: Engine, start: int, count: int) -> None:
    now = utcnow()
    rows = [
        {
            "source": "zoho_crm",
            "object": "contacts",
            "source_id": str(n),
            "payload": {"id": str(n), "Email": f"person{n}@example.com"},
            "content_hash": f"{n:064d}",
            "first_seen_at": now,
            "last_seen_at": now,
            "changed_at": now,
        }
        for n in range(start, start + count)
    ]
    with engine.begin() as connection:
        connection.execute(sa.insert(RawRecord), rows)


def analysed_rows(engine: Engine, table: str) -> float:
    """The row count the planner believes ``table`` holds (-1: never analysed)."""
    with engine.connect() as connection:
        return float(
            connection.execute(
                sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}
            ).scalar_one()
        )


@pytest.mark.postgres
def test_a_table_filled_from_empty_is_analysed_then_left_until_it_grows_by_a_tenth(
    postgres_schema_url: str,
) -> None:
    engine = open_warehouse(postgres_schema_url)
    add_records(engine, 0, 10_000)  # about 2 MiB: past the 1 MiB below which nothing is analysed

    first = refresh_stale(engine)
    assert first.analysed["raw_records"] == (0, 10_000)
    assert analysed_rows(engine, "raw_records") == 10_000
    assert "raw_records (0 -> 10,000 rows)" in (first.summary() or "")

    add_records(engine, 10_000, 500)  # a twentieth more: the plans made for 10,000 rows still hold
    assert "raw_records" not in refresh_stale(engine).analysed
    assert analysed_rows(engine, "raw_records") == 10_000

    add_records(engine, 10_500, 2_000)
    assert refresh_stale(engine).analysed["raw_records"] == (10_000, 12_500)


@pytest.mark.postgres
def test_a_small_table_is_left_to_any_plan(postgres_schema_url: str) -> None:
    engine = open_warehouse(postgres_schema_url)
    add_records(engine, 0, 1_000)  # about 200 KiB
    assert refresh_stale(engine).analysed == {}
    assert analysed_rows(engine, "raw_records") == -1


def add_contacts(engine: Engine, count: int) -> None:
    now = utcnow()
    rows = [
        {"contact_id": f"c_{n:012d}", "created_at": now, "updated_at": now, "source_count": 1}
        for n in range(count)
    ]
    with engine.begin() as connection:
        connection.execute(sa.insert(Contact), rows)


WAIT_S = 1.0
"""The lock timeout the tests give a refresh: one wait takes this long, two would take twice it."""


def refresh_while_held(engine: Engine, lock: str) -> tuple[Refresh, float]:
    """What a refresh does while another session holds ``lock`` on contacts, and its seconds."""
    with engine.connect() as holder, holder.begin():
        holder.execute(sa.text(f"LOCK TABLE contacts IN {lock} MODE"))
        started = time.monotonic()
        refresh = refresh_stale(engine, lock_timeout_ms=int(WAIT_S * 1000))
        return refresh, time.monotonic() - started


@pytest.mark.postgres
def test_tables_another_session_holds_are_left_for_later_after_one_wait(
    postgres_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statistics, "STALE_MINIMUM_PAGES", 1)
    engine = open_warehouse(postgres_schema_url)
    add_contacts(engine, 3_000)
    add_records(engine, 0, 3_000)
    # What a running VACUUM or autovacuum holds: ANALYZE waits for it (sizes can still be read).
    refresh, took = refresh_while_held(engine, "SHARE UPDATE EXCLUSIVE")
    # contacts waited its second; raw_records, next in line, was left without a wait of its own.
    assert refresh.left == ["contacts", "raw_records"]
    assert refresh.analysed == {}
    assert WAIT_S <= took < 2 * WAIT_S, took
    assert "left for the next step (another session holds a lock): contacts, raw_records" in (
        refresh.summary() or ""
    )
    assert analysed_rows(engine, "raw_records") == -1
    # Once the lock is gone, the next step's refresh analyses both.
    assert {"contacts", "raw_records"} <= set(refresh_stale(engine).analysed)


@pytest.mark.postgres
def test_a_table_locked_whole_stops_the_refresh_after_one_short_wait(
    postgres_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading a table's size waits on ACCESS EXCLUSIVE (another process's LOCK TABLE, a migration)."""
    monkeypatch.setattr(statistics, "STALE_MINIMUM_PAGES", 1)
    engine = open_warehouse(postgres_schema_url)
    add_records(engine, 0, 3_000)
    refresh, took = refresh_while_held(engine, "ACCESS EXCLUSIVE")
    assert refresh.analysed == {}
    assert refresh.left == ["every table (reading their sizes waited on a lock)"]
    assert WAIT_S <= took < 2 * WAIT_S, took
    assert "raw_records" in refresh_stale(engine).analysed


@pytest.mark.postgres
def test_nothing_stale_costs_one_query_and_says_nothing(postgres_schema_url: str) -> None:
    engine = open_warehouse(postgres_schema_url)
    add_records(engine, 0, 10_000)
    assert "raw_records" in refresh_stale(engine).analysed
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    refresh = refresh_stale(engine)
    assert refresh.analysed == {}
    assert refresh.left == []
    assert refresh.summary() is None
    # The catalogue query and the lock timeout it runs under; no ANALYZE.
    assert [statement.split()[0] for statement in statements] == ["SET", "SELECT"], statements


def test_sqlite_is_left_to_the_plans_its_statements_steer(sqlite_url: str) -> None:
    engine = open_warehouse(sqlite_url)
    add_records(engine, 0, 3_000)
    assert refresh_stale(engine).analysed == {}
    with engine.connect() as connection:
        names = connection.execute(sa.text("SELECT name FROM sqlite_master")).scalars().all()
    assert "sqlite_stat1" not in names
