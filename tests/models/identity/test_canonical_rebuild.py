"""The full rebuild writes only the rows that differ: over any stored state it leaves what a rebuild
from empty leaves, and over its own result it rewrites nothing."""

import re
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connectors.emulator import running_emulator
from models.identity import canonical, rebuild_write
from models.identity.canonical import _RangeReader, build_canonical, record_ranges, slice_query
from models.warehouse.db import open_warehouse
from models.warehouse.tables import (
    Contact,
    ContactFieldLineage,
    ContactIdentifier,
    ContactSource,
    RawRecord,
    utcnow,
)
from models.warehouse.worker_processes import map_in_processes
from tests.models.identity.test_canonical_incremental import DEFAULT, DERIVED, comparable, snapshot
from tests.pipelines.test_extract import extract_all
from tests.plans import keyed_plans


@pytest.fixture
def built(warehouse_url: str) -> Iterator[Engine]:
    """A warehouse extracted from the emulator and resolved once (from empty)."""
    with running_emulator(seed=11, people=120) as emulator:
        extract_all(emulator, warehouse_url)
        engine = open_warehouse(warehouse_url)
        build_canonical(engine, DEFAULT)
        yield engine


def _written_table(statement: str) -> str | None:
    """The table an UPDATE, DELETE or INSERT statement writes (None for any other statement)."""
    found = re.match(r'\s*(?:UPDATE|DELETE FROM|INSERT INTO)\s+"?(\w+)', statement, re.IGNORECASE)
    return found.group(1) if found else None


def _ids(engine: Engine, column: Any) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(sa.select(column).order_by(column)).scalars())


def _scramble(engine: Engine, most: bool) -> None:
    """Stored rows a rebuild must put right: changed, missing, extra and repeated, in every table
    (``most``: past half of each table, so the whole-table replacement runs). The assignment
    (contact_sources.contact_id) is left alone: it is an input of the rebuild, which keeps ids."""
    contacts = _ids(engine, Contact.contact_id)
    sources = _ids(engine, ContactSource.id)
    identifiers = _ids(engine, ContactIdentifier.id)
    every = 1 if most else 7
    now = utcnow()
    with engine.begin() as connection:
        stray = {"contact_id": "C-stray", "created_at": now, "updated_at": now, "source_count": 1}
        connection.execute(sa.insert(Contact), [stray])
        connection.execute(
            sa.update(Contact).where(Contact.contact_id.in_(contacts[::5])).values(first_name="Changed")
        )
        connection.execute(
            sa.update(ContactSource).where(ContactSource.id.in_(sources[1::every])).values(email="x@y.z")
        )
        # A source row of a record that is no contact record (the assignment, contact_id, is an input).
        activity = connection.execute(
            sa.select(RawRecord.id, RawRecord.source, RawRecord.object, RawRecord.source_id)
            .where(RawRecord.id.not_in(sa.select(ContactSource.raw_record_id)))
            .limit(1)
        ).one()
        stray_source = {
            "raw_record_id": activity.id,
            "source": activity.source,
            "object": activity.object,
            "source_id": activity.source_id,
            "updated_at": now,
        }
        connection.execute(sa.insert(ContactSource), [stray_source])
        connection.execute(
            sa.update(ContactIdentifier)
            .where(ContactIdentifier.id.in_(identifiers[::every]))
            .values(value="changed")
        )
        connection.execute(sa.delete(ContactIdentifier).where(ContactIdentifier.id.in_(identifiers[1::9])))
        repeated = connection.execute(
            sa.select(ContactIdentifier.__table__).where(ContactIdentifier.id.in_(identifiers[2::13]))
        ).mappings()
        connection.execute(
            sa.insert(ContactIdentifier), [{k: v for k, v in row.items() if k != "id"} for row in repeated]
        )
        connection.execute(
            sa.update(ContactFieldLineage)
            .where(ContactFieldLineage.contact_id.in_(contacts[::every]))
            .values(value="changed")
        )
        connection.execute(
            sa.delete(ContactFieldLineage).where(ContactFieldLineage.contact_id.in_(contacts[1::6]))
        )
        stray_lineage = {
            "contact_id": "C-stray",
            "field": "email",
            "value": "a@b.c",
            "source": "linkflow",
            "object": "contact",
            "source_id": "1",
            "rule": "most_recent",
        }
        connection.execute(sa.insert(ContactFieldLineage), [stray_lineage])


@pytest.fixture(params=["whole tables", "slices of 7", "slices of 7 compared by workers"])
def sliced(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The write compares a table whole (slices larger than it) or in slices of 7 contacts and of 7
    raw records (many ranges, some of them with no new identifier rows), here or in two worker
    processes reading what the writing transaction's predecessors committed."""
    if request.param != "whole tables":
        monkeypatch.setattr(rebuild_write, "WRITE_SLICE_CONTACTS", 7)
        monkeypatch.setattr(rebuild_write, "WRITE_SLICE_RECORDS", 7)
    if request.param == "slices of 7 compared by workers":
        monkeypatch.setattr(rebuild_write, "SLICES_FOR_WORKERS", 1)
        monkeypatch.setattr(rebuild_write, "available_processes", lambda: 2)


@pytest.mark.parametrize("most", [False, True], ids=["some rows", "most rows"])
@pytest.mark.usefixtures("sliced")
def test_a_rebuild_over_changed_tables_equals_a_rebuild_from_empty(built: Engine, most: bool) -> None:
    want = snapshot(built)
    known = {row["contact_id"] for row in want["contacts"]}
    _scramble(built, most)
    build_canonical(built, DEFAULT)
    got = snapshot(built)
    assert comparable(got, known) == comparable(want, known)
    with built.begin() as connection:
        for table in reversed(DERIVED):
            connection.execute(sa.delete(table))
    build_canonical(built, DEFAULT)
    assert comparable(snapshot(built), set()) == comparable(want, set())


@pytest.mark.usefixtures("sliced")
def test_a_rebuild_over_its_own_result_rewrites_no_row(built: Engine) -> None:
    """Row ids (moved out of the range a table would hand out next) and update times stay: not a row
    was deleted and inserted again."""
    with built.begin() as connection:
        for table in (ContactSource, ContactIdentifier):
            connection.execute(sa.update(table).values(id=table.id + 100_000))
    before = snapshot(built)
    statements: list[str] = []
    sa.event.listen(built, "before_cursor_execute", lambda *call: statements.append(call[2]))
    build_canonical(built, DEFAULT)
    after = snapshot(built)
    written = {"contacts", "contact_sources", "contact_identifiers", "contact_field_lineage"}
    assert not [statement for statement in statements if _written_table(statement) in written]
    for table in ("contacts", "contact_sources", "contact_identifiers", "contact_field_lineage"):
        assert after[table] == before[table], table


@pytest.mark.parametrize("last", [None, 1_000], ids=["first slice", "later slice"])
def test_rebuild_slices_read_records_by_the_primary_key(sqlite_url: str, last: int | None) -> None:
    """Each slice of the rebuild's read follows the id range: through the (source, object, source_id)
    index every slice would read all contact records again and sort them (quadratic in the store)."""
    engine = open_warehouse(sqlite_url)
    query = slice_query(last)
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as connection:
        plan = " / ".join(str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
    assert "INTEGER PRIMARY KEY" in plan or plan == "SCAN raw_records", plan
    assert "TEMP B-TREE" not in plan, plan


def test_the_write_reads_stored_rows_by_key_on_postgresql(postgres_schema_url: str) -> None:
    """A planner without statistics (a first sync's tables, autovacuum off) scans a whole table for an
    ``IN`` list of ids: once per slice, quadratic in the warehouse. Every read of the rebuild's write
    goes through an index instead, seen by ``EXPLAIN`` in the write's own transaction."""
    with running_emulator(seed=11, people=40) as emulator:
        extract_all(emulator, postgres_schema_url)
    engine = open_warehouse(postgres_schema_url)
    build_canonical(engine, DEFAULT)
    tables = ("contact_field_lineage", "contact_sources", "contact_identifiers", "contacts")
    plans = keyed_plans(engine, lambda: build_canonical(engine, DEFAULT), tables)
    assert [plan for plan in plans if "contact_field_lineage" in plan or "contact_identifiers" in plan], plans
    assert not [plan for plan in plans if "Seq Scan" in plan], plans


def test_a_worker_reader_says_nothing_of_the_database_password() -> None:
    """The reader a worker process gets holds the warehouse's URL, password and all; its repr, which
    a log or a traceback may show, does not."""
    reader = _RangeReader("postgresql://sync:hunter2@db.internal/warehouse", DEFAULT, None, 7)
    assert "hunter2" not in repr(reader)
    assert "hunter2" not in str(reader)


def test_record_ranges_cover_every_contact_record_once(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ranges the rebuild hands its workers: consecutive, the first from the lowest contact
    record, the last open, about ``LOAD_CHUNK`` contact records in each; none for an empty warehouse."""
    engine = open_warehouse(sqlite_url)
    with engine.connect() as connection:
        assert record_ranges(connection) == []
    with running_emulator(seed=3) as emulator:
        extract_all(emulator, sqlite_url)
    monkeypatch.setattr(canonical, "LOAD_CHUNK", 10)
    with engine.connect() as connection:
        ranges = record_ranges(connection)
        ids = sorted(
            connection.execute(
                sa.select(RawRecord.id).where(
                    sa.tuple_(RawRecord.source, RawRecord.object).in_(list(canonical.CONTACT_OBJECTS))
                )
            ).scalars()
        )
    assert len(ranges) > 2
    assert ranges[0][0] == ids[0]
    assert ranges[-1][1] is None
    assert all(high == low for (_, high), (low, _) in pairwise(ranges))
    counts = [sum(low <= key < (high or ids[-1] + 1) for key in ids) for low, high in ranges]
    assert counts[:-1] == [10] * (len(ranges) - 1)
    assert 1 <= counts[-1] <= 10


def test_workers_compare_only_over_stored_contacts(built: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over a built warehouse the write's comparisons go to workers; a first build, whose tables are
    empty, compares here (workers would only send every row back as added)."""
    monkeypatch.setattr(rebuild_write, "WRITE_SLICE_CONTACTS", 7)
    monkeypatch.setattr(rebuild_write, "WRITE_SLICE_RECORDS", 7)
    monkeypatch.setattr(rebuild_write, "SLICES_FOR_WORKERS", 1)
    monkeypatch.setattr(rebuild_write, "available_processes", lambda: 2)
    asked: list[int] = []

    def counted(work: Any, tasks: Any, *, processes: int) -> Any:
        asked.append(processes)
        return map_in_processes(work, tasks, processes=processes)

    monkeypatch.setattr(rebuild_write, "map_in_processes", counted)
    build_canonical(built, DEFAULT)
    assert asked == [2]
    with built.begin() as connection:
        for table in reversed(DERIVED):
            connection.execute(sa.delete(table))
    build_canonical(built, DEFAULT)
    assert asked == [2]
