"""Waiting on the warehouse without outliving a stop.

A step that waits on the database (a lock another process holds, a long statement) sits inside the
driver, where no stop flag is looked at: asked to stop, it would go on waiting until the wait ends,
30 s for SQLite's busy timeout, indefinitely for a PostgreSQL lock. Two tools end such a wait:

- `cancel_on_stop`: while it is open, a stop cancels the statement the calling thread has in flight
  (PostgreSQL: the server cancels it, a lock wait included; SQLite: ``interrupt``), and the error
  that follows becomes the stop itself (``checkpoint`` raises it where the statement was, so the
  code around it handles a stop as it handles one found between requests). The transaction rolls
  back, so nothing half-written is left. With a grace, a statement gets that long after the stop
  before it is cancelled: the extract's pages and reverse sync's ledger writes record what happened
  and land when nothing holds them up, and only a statement still waiting after the grace (a lock
  another session holds, a long read) is cancelled, leaving what a kill would.
- `wait_for_write_lock`: SQLite's busy handler ignores ``interrupt``, so a transaction about to write
  takes the database's write lock in short tries instead, looking at the stop between them, for up
  to `WRITE_LOCK_WAIT_S`. A write that must land even once the stop is asked (``must_land``: the
  record of a write call that went out) looks at the stop only while another holds the lock.

Only the calling thread's connections are cancelled: the engine is shared by the process, and another
thread's work (another run, the progress display) is none of this step's business.
"""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from models.warehouse import statement_watch
from models.warehouse.db import SQLITE_BUSY_TIMEOUT_MS

_TRY_MS = 100
"""SQLite: how long one try for the write lock waits before the stop is looked at again."""
_SQLITE_BUSY = 5

WRITE_LOCK_WAIT_S = 600.0
"""SQLite: how long a transaction about to write waits for the write lock before it fails.

Longer than the busy timeout (30 s) because the holder may be a long transaction of our own: a
settling sync's activity at a million records held the lock past the busy timeout while reverse sync
beside it recorded its plan (now kept apart on SQLite, `pipelines.overlap`), and a second sync or a
BI tool can hold it as long. The wait looks at the stop every try, so it never outlives a stop."""


class StopSignal(Protocol):
    """What the waits need of a stop flag (``connectors.stop.StopFlag`` is one)."""

    def is_set(self) -> bool: ...

    def wait(self, seconds: float) -> bool: ...


@contextmanager
def cancel_on_stop(
    engine: Engine, stop: StopSignal, checkpoint: Callable[[], None], *, grace_s: float = 0.0
) -> Iterator[None]:
    """Within: once ``stop`` is set (and ``grace_s`` more seconds have passed), the calling thread's
    statements in flight on ``engine`` are cancelled, and the database error that ends any of its
    statements after the stop is replaced by ``checkpoint()`` (which raises), where it was raised."""
    watch = statement_watch.Watch(stopped=stop.is_set, checkpoint=checkpoint)
    done = threading.Event()

    def cancel_when_stopped() -> None:
        # Sleeps on ``done``, not on the stop: the block's end wakes it at once, so the join below does
        # not wait out a poll (up to 0.1 s after every step, check and thread that opens one).
        while not stop.is_set():
            if done.wait(0.1):
                return
        if grace_s > 0:
            done.wait(grace_s)
        # Again and again until the step is out: a cancel between two statements ends nothing, and
        # the step may start another wait before it next looks at the flag.
        while not done.is_set():
            for connection in statement_watch.connections(watch):
                _cancel(connection)
            done.wait(0.5)

    statement_watch.attach(engine)  # a no-op for a warehouse's engine, which has them from the start
    statement_watch.start(watch)
    watcher = threading.Thread(target=cancel_when_stopped, name="warehouse-stop-watch", daemon=True)
    watcher.start()
    try:
        yield
    except sa.exc.DBAPIError:
        if stop.is_set():
            checkpoint()
        raise
    finally:
        done.set()
        watcher.join(timeout=5)
        statement_watch.end(watch)


def _cancel(dbapi_connection: Any) -> None:
    """Ask the driver to end this connection's statement in flight (a no-op when there is none)."""
    try:
        if hasattr(dbapi_connection, "cancel_safe"):  # psycopg 3
            dbapi_connection.cancel_safe(timeout=5)
        elif hasattr(dbapi_connection, "interrupt"):  # sqlite3
            dbapi_connection.interrupt()
    except Exception:  # a connection closing under us: nothing left to cancel
        return


def never_stopped() -> None:
    """The checkpoint of work no stop ends (a command run to its end, a test): the waits still end at
    `WRITE_LOCK_WAIT_S`."""


def wait_for_write_lock(
    connection: Connection, checkpoint: Callable[[], None], *, must_land: bool = False
) -> None:
    """Before the first write of a transaction: ``checkpoint()``, and on SQLite take the database's
    write lock now, in short tries with ``checkpoint()`` between them, failing as the busy timeout
    would once `WRITE_LOCK_WAIT_S` has passed. PostgreSQL takes row and table locks as it goes
    (`cancel_on_stop`).

    ``must_land``: the write records something that happened (a call's outcome, rows about to be
    sent) and should land after a stop as well, so the first try goes ahead whatever the stop says;
    only a wait for another holder gives up on a stop (what is left is what a kill would leave, and
    the next sync settles it)."""
    if not must_land:
        checkpoint()
    if connection.dialect.name != "sqlite":
        return
    deadline = time.monotonic() + WRITE_LOCK_WAIT_S
    connection.exec_driver_sql(f"PRAGMA busy_timeout={_TRY_MS}")
    try:
        while True:
            try:
                # A write that changes nothing: it takes the write lock for this transaction.
                connection.exec_driver_sql("DELETE FROM alembic_version WHERE 0")
                return
            except sa.exc.OperationalError as exc:
                # Plain SQLITE_BUSY only: a stale snapshot (SQLITE_BUSY_SNAPSHOT) never clears.
                busy = getattr(exc.orig, "sqlite_errorcode", None) == _SQLITE_BUSY
                if not busy or time.monotonic() >= deadline:
                    raise
            checkpoint()
    finally:
        connection.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


@contextmanager
def writing(
    engine: Engine, checkpoint: Callable[[], None], *, must_land: bool = False
) -> Iterator[Connection]:
    """A transaction that writes, its write lock taken first by `wait_for_write_lock`: every write of
    a step a stop must be able to interrupt goes through one of these, or the first plain write waits
    out the busy timeout while another process holds the database, and fails after it.

    A database error inside it after a stop is the stop (``checkpoint()`` raises): a statement
    `cancel_on_stop` cancelled, a bulk ``COPY`` among them, whose driver error SQLAlchemy never sees."""
    with engine.begin() as connection:
        wait_for_write_lock(connection, checkpoint, must_land=must_land)
        try:
            yield connection
        except (sa.exc.DBAPIError, engine.dialect.loaded_dbapi.Error):
            checkpoint()
            raise
