"""Opening the warehouse: one engine per URL, configured per dialect and migrated to head on open.

Migrating on every open is what lets a user point ``CONTACT_SYNC_DATABASE_URL`` at an empty database
and run; once the schema is current, opening reads its version and goes on (`migrate`).
"""

import threading
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from models.warehouse.checkpoints import attach as attach_checkpoints
from models.warehouse.json_text import dumps as json_dumps
from models.warehouse.json_text import loads as json_loads
from models.warehouse.locks import migration_lock
from models.warehouse.statement_watch import attach as attach_statement_watch

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

#: SQLite waits this long for a writer's lock before failing, so two processes queue rather than crash.
SQLITE_BUSY_TIMEOUT_MS = 30_000

#: The size SQLite cuts its log file back to whenever it starts the log over. It reuses the file
#: rather than shrinking it, so without a limit one large transaction (a first sync's canonical step
#: writes every golden row in one) leaves a log file of that size for as long as the file is open.
SQLITE_LOG_LIMIT_BYTES = 64 * 1024 * 1024

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


class WarehouseError(RuntimeError):
    """The warehouse cannot be opened or migrated; the message says which URL (password hidden) and why."""


def redacted_url(url: str) -> str:
    """The URL with any password hidden, fit for logs and error messages."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable database URL>"


def _configure_sqlite(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # WAL lets readers (the status command, a BI tool) run while a sync writes; foreign keys are off
    # by default in SQLite and the schema relies on them.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA journal_size_limit={SQLITE_LOG_LIMIT_BYTES}")
    cursor.close()


def by_key_only(connection: Connection) -> None:
    """On PostgreSQL, keep the rest of this transaction's reads and deletes on the tables' indexes.

    For the steps that read and delete by key in slices (``IN`` lists of ids, ranges of raw record
    ids). A planner without statistics for a table (before its first ``ANALYZE``, with autovacuum
    off, or right after a first sync filled it) guesses that 900 ids match a third of it and scans the
    whole table for each list: 0.1 s a list for lineage at 200k records, quadratic in the warehouse.
    Sequential scans are priced out for this transaction only (``SET LOCAL``); a statement with no
    other way (a whole table's ``DELETE`` or count) still scans. SQLite plans by its indexes anyway."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SET LOCAL enable_seqscan = off"))


def create_warehouse_engine(url: str) -> Engine:
    """A new engine for ``url`` with the dialect settings the warehouse needs (not migrated)."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise WarehouseError(f"cannot parse database URL {redacted_url(url)!r}: {exc}") from exc
    # JSON columns go in and come back through orjson (`models.warehouse.json_text`), on both dialects.
    kwargs: dict[str, Any] = {"json_serializer": json_dumps, "json_deserializer": json_loads}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (sa.exc.ArgumentError, ModuleNotFoundError) as exc:
        raise WarehouseError(f"cannot use database URL {redacted_url(url)!r}: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _configure_sqlite)
        attach_checkpoints(engine, SQLITE_BUSY_TIMEOUT_MS / 1000)
    attach_statement_watch(engine)  # before any thread uses it: see models.warehouse.statement_watch
    return engine


def alembic_config(engine: Engine) -> Config:
    """An Alembic config bound to ``engine``, reading the migrations shipped inside this package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


@cache
def newest_revisions() -> frozenset[str]:
    """The head revisions of the migrations shipped in this package, read once a process: Alembic
    finds them by executing every revision file, and the files cannot change under a running
    process."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return frozenset(ScriptDirectory.from_config(config).get_heads())


def _is_current(engine: Engine) -> bool:
    """Whether the warehouse's schema is at the newest migration already (one read of its version)."""
    with engine.connect() as connection:
        return frozenset(MigrationContext.configure(connection).get_current_heads()) == newest_revisions()


def migrate(engine: Engine) -> None:
    """Upgrade the warehouse schema to the newest migration; a no-op when already current.

    Processes take turns (``migration_lock``), so several opening a fresh warehouse at once migrate
    it once. A current warehouse, what nearly every opening finds, is told by reading its version
    alone, without the lock or Alembic's upgrade: that took 45 ms, in every step process of a
    scheduled run and every command. Read outside the lock, the version is head only once the
    migration that wrote it has committed."""
    try:
        if _is_current(engine):
            return
        with migration_lock(engine):
            command.upgrade(alembic_config(engine), "head")
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise WarehouseError(
            f"cannot reach the warehouse at {redacted_url(engine.url.render_as_string())}: {reason}"
        ) from exc


def open_warehouse(url: str) -> Engine:
    """The migrated engine for ``url``, shared within the process so pools and migrations happen once."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = create_warehouse_engine(url)
            migrate(engine)
            _engines[url] = engine
        return engine


def dispose_all() -> None:
    """Close every pooled connection; tests call it before dropping a database or schema."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
