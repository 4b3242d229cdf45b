"""The warehouse opens migrated, matches the models exactly, and is configured per dialect."""

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from models.warehouse.db import (
    WarehouseError,
    alembic_config,
    create_warehouse_engine,
    dispose_all,
    open_warehouse,
    redacted_url,
)
from models.warehouse.locks import migration_lock
from models.warehouse.tables import Base

CONTRACT_COLUMNS = {
    "contacts": {
        "contact_id",
        "email",
        "phone",
        "first_name",
        "last_name",
        "company",
        "title",
        "city",
        "country",
        "created_at",
        "updated_at",
        "source_count",
    },
    "contact_sources": {"contact_id", "source", "object", "source_id", "email", "phone", "updated_at"},
    "contact_merges": {"old_contact_id", "new_contact_id", "merged_at"},
    "contact_activity": {
        "activity_id",
        "contact_id",
        "source",
        "kind",
        "occurred_at",
        "summary",
        "details",
    },
}


def test_migrated_schema_equals_models(warehouse_url: str) -> None:
    engine = open_warehouse(warehouse_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_contract_tables_have_their_columns(warehouse_url: str) -> None:
    inspector = sa.inspect(open_warehouse(warehouse_url))
    for table, columns in CONTRACT_COLUMNS.items():
        present = {column["name"] for column in inspector.get_columns(table)}
        assert columns <= present, f"{table} lacks {columns - present}"


def test_contact_sources_is_unique_on_source_object_id(warehouse_url: str) -> None:
    inspector = sa.inspect(open_warehouse(warehouse_url))
    unique = [set(c["column_names"]) for c in inspector.get_unique_constraints("contact_sources")]
    assert {"source", "object", "source_id"} in unique


def test_opening_twice_is_a_no_op_upgrade(warehouse_url: str) -> None:
    first = open_warehouse(warehouse_url)
    with first.connect() as connection:
        version = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    from models.warehouse.db import dispose_all, migrate

    dispose_all()
    second = open_warehouse(warehouse_url)
    migrate(second)
    with second.connect() as connection:
        versions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    assert versions == [version]


def test_a_current_warehouse_opens_without_taking_the_migration_lock(warehouse_url: str) -> None:
    """Nearly every opening finds the schema current (each step process of a scheduled run, each
    command): it reads the version and goes on, not waiting on a process that holds the migration
    lock (one migrating another warehouse's tables, or stuck)."""
    engine = open_warehouse(warehouse_url)
    dispose_all()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        other = create_warehouse_engine(warehouse_url)
        with migration_lock(other):
            held.set()
            release.wait(10)
        other.dispose()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        started = time.monotonic()
        engine = open_warehouse(warehouse_url)
        assert time.monotonic() - started < 1.0
    finally:
        release.set()
        holder.join()
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar_one() == 1


OPEN_AT = """
import sys, time
from models.warehouse.db import open_warehouse
url, start = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
open_warehouse(url)
"""


def test_processes_opening_a_fresh_warehouse_together_migrate_it_once(warehouse_url: str) -> None:
    """Commands started together on an empty database each migrate it on open; they take turns, so
    none meets tables another is creating (a traceback, or "table alembic_version already exists")."""
    start = time.time() + 3  # after every process has imported the project
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AT, warehouse_url, str(start)],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
        )
        for _ in range(3)
    ]
    errors = [process.communicate(timeout=60)[1] for process in processes]
    assert errors == ["", "", ""]
    with open_warehouse(warehouse_url).connect() as connection:
        assert len(connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()) == 1


def test_sqlite_runs_with_wal_and_foreign_keys(sqlite_url: str) -> None:
    with open_warehouse(sqlite_url).connect() as connection:
        assert connection.execute(sa.text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert connection.execute(sa.text("PRAGMA foreign_keys")).scalar_one() == 1


def test_foreign_keys_are_enforced(warehouse_url: str) -> None:
    engine = open_warehouse(warehouse_url)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO contact_sources (raw_record_id, source, object, source_id) "
                "VALUES (424242, 'zoho_crm', 'lead', '1')"
            )
        )


def test_times_come_back_as_utc_aware(warehouse_url: str) -> None:
    from datetime import datetime, timedelta, timezone

    from models.warehouse.tables import Contact

    engine = open_warehouse(warehouse_url)
    shanghai = datetime(2026, 1, 2, 8, 0, tzinfo=timezone(timedelta(hours=8)))
    with engine.begin() as connection:
        connection.execute(
            sa.insert(Contact).values(
                contact_id="c1", created_at=shanghai, updated_at=shanghai, source_count=1
            )
        )
    with engine.connect() as connection:
        created = connection.execute(sa.select(Contact.created_at)).scalar_one()
    assert created == shanghai
    assert created.utcoffset() == timedelta(0)


def test_unreachable_database_is_one_line_without_password() -> None:
    with pytest.raises(WarehouseError) as error:
        open_warehouse("postgresql://someone:hunter2@127.0.0.1:1/nowhere")
    message = str(error.value)
    assert "hunter2" not in message
    assert "\n" not in message
    assert "127.0.0.1:1" in message


def test_redacted_url_hides_password() -> None:
    assert "hunter2" not in redacted_url("postgresql://u:hunter2@h/db")


@pytest.mark.usefixtures("short_busy_timeout")
def test_an_upgrade_waits_for_another_writer_instead_of_failing_after_the_busy_timeout(
    sqlite_url: str,
) -> None:
    """A warehouse one migration behind (a new release opening it) while another process's write
    transaction runs longer than SQLite's busy timeout (a sync of the release before): the upgrade
    waits for it, as the steps' writes do, where it used to fail with "database is locked". A
    current warehouse opens without waiting for any writer."""
    engine = create_warehouse_engine(sqlite_url)
    config = alembic_config(engine)
    scripts = ScriptDirectory.from_config(config)
    head = scripts.get_current_head()
    assert head is not None
    behind = scripts.get_revision(head).down_revision
    assert isinstance(behind, str)
    command.upgrade(config, behind)
    engine.dispose()
    path = sa.make_url(sqlite_url).database
    assert path is not None

    def hold(seconds: float, held: threading.Event) -> None:
        connection = sqlite3.connect(path)
        connection.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(seconds)
        connection.rollback()
        connection.close()

    held = threading.Event()
    holder = threading.Thread(target=hold, args=(1.5, held))
    holder.start()
    held.wait(5)
    started = time.monotonic()
    with open_warehouse(sqlite_url).connect() as connection:
        version = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    holder.join()
    assert version == head
    assert time.monotonic() - started >= 1.0  # it waited for the holder
    dispose_all()

    held = threading.Event()
    holder = threading.Thread(target=hold, args=(1.5, held))
    holder.start()
    held.wait(5)
    started = time.monotonic()
    open_warehouse(sqlite_url)
    assert time.monotonic() - started < 1.0  # current: nothing to take the lock for
    holder.join()
