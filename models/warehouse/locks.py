"""Warehouse locks: per source, so two syncs of one source never read or write its API at the same
time, and one for migrations, so processes opening a fresh warehouse together take turns.

The lock lives with the warehouse and dies with its holder: a PostgreSQL session advisory lock is
released when the session ends, and an ``fcntl`` lock on a file beside a SQLite warehouse is released
by the kernel when the process exits, even after SIGKILL. So a crashed run never leaves a source
locked, which a lock row in a table could.

A SQLite warehouse ``x.db`` keeps its lock files in one folder, ``x.db.locks/``, rather than a dozen
files beside the database. Versions before that kept ``x.db.<name>.lock`` there; where such a file
exists it is locked too, so a process of the old version still running on the same warehouse and a
new one exclude each other. It is never created, so a new installation never has them.
"""

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine


class SourceBusyError(RuntimeError):
    """Another process holds the lock of this source; the message is the line to show."""


def _advisory_key(connection: Connection, name: str) -> int:
    """The advisory lock key of ``name`` in the warehouse this session works in.

    PostgreSQL advisory locks are per database, while a warehouse is a schema (the URL's
    ``options=-csearch_path=...``, or the role's default): so the key hashes the session's current
    schema with the name, and two warehouses in one database do not refuse each other. A stable hash
    gives the signed 64-bit key the functions take."""
    schema = connection.execute(sa.text("SELECT current_schema()")).scalar_one_or_none() or ""
    key = f"contact-sync:{schema}:{name}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


def _sqlite_database(engine: Engine) -> Path:
    database = engine.url.database
    if not database or database == ":memory:":
        raise SourceBusyError("an in-memory SQLite warehouse cannot be shared between processes")
    return Path(database).expanduser().resolve()


def sqlite_lock_folder(engine: Engine) -> Path:
    """The folder holding a SQLite warehouse's lock files: ``<database>.locks`` beside it."""
    database = _sqlite_database(engine)
    return database.with_name(f"{database.name}.locks")


def _sqlite_lock_path(engine: Engine, name: str) -> Path:
    folder = sqlite_lock_folder(engine)
    folder.mkdir(exist_ok=True)
    return folder / f"{name}.lock"


def _legacy_lock_path(engine: Engine, name: str) -> Path:
    """Where versions before the lock folder kept the lock ``name``: beside the database."""
    database = _sqlite_database(engine)
    return database.with_name(f"{database.name}.{name}.lock")


@contextmanager
def _file_lock(engine: Engine, name: str, *, wait: bool, busy: str = "") -> Iterator[None]:
    """``flock`` the lock file of ``name`` and, where an older version left one, its old file too.

    ``wait`` blocks until the lock is free; otherwise a taken lock raises :class:`SourceBusyError`
    with ``busy`` at once. The old file is opened without ``O_CREAT``: only an existing one matters.
    """
    descriptors = [os.open(_sqlite_lock_path(engine, name), os.O_RDWR | os.O_CREAT, 0o644)]
    try:
        with suppress(FileNotFoundError):
            descriptors.append(os.open(_legacy_lock_path(engine, name), os.O_RDWR))
        for descriptor in descriptors:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SourceBusyError(busy) from None
        yield
    finally:
        for descriptor in descriptors:
            os.close(descriptor)


@contextmanager
def source_lock(
    engine: Engine, name: str, label: str | None = None, *, busy: str | None = None
) -> Iterator[None]:
    """Hold the lock ``name`` for the block, or raise :class:`SourceBusyError` at once if it is taken.

    ``label`` names the work for the user ("zoho_crm/lead") in the refusal line; ``busy`` replaces
    that line whole.
    """
    busy = busy or f"{label or name}: another sync is running it on this warehouse; try again when it ends"
    if engine.dialect.name == "sqlite":
        with _file_lock(engine, name, wait=False, busy=busy):
            yield
        return
    with engine.connect() as connection:
        key = _advisory_key(connection, name)
        taken = connection.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar_one()
        connection.commit()
        if not taken:
            raise SourceBusyError(busy)
        try:
            yield
        finally:
            connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Hold the warehouse's migration lock for the block, waiting while another process holds it.

    Every command migrates the warehouse when it opens it, so two started together on an empty
    database would both create its tables: SQLite runs DDL outside the transaction and PostgreSQL
    refuses the second creation. Taking turns, the second finds the schema current and does nothing.
    An in-memory SQLite warehouse belongs to one process and needs no lock.
    """
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            yield
            return
        with _file_lock(engine, "migrate", wait=True):
            yield
        return
    with engine.connect() as connection:
        key = _advisory_key(connection, "migrate")
        connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": key})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()
