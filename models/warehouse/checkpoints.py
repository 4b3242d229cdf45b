"""SQLite's write-ahead log copied back into the database file by a thread of its own while a run works.

SQLite checkpoints inside commits by default: the commit that takes the log past 1,000 pages copies
the logged pages into the database file and syncs the file before it returns, so every step that
writes waits for that copy at some of its commits. With the incremental canonical step at 100,000
people (10,000 changed), its two commits took 0.67 s with those checkpoints and 0.10 s without; at a
million records its one commit took 0.9 s of the step's 8.6 in a profiled run.

Within `background_checkpoints`, the engine's connections leave checkpoints to a thread that runs a
``PASSIVE`` one every ``every_seconds``: it copies what no reader still needs, never waits on a
reader or a writer, and runs while the steps go on (the driver lets go of the interpreter lock
during it). Outside such a block, and on PostgreSQL or an in-memory SQLite, nothing changes.

Why not always: a thread and a connection per engine would outlive engines nobody disposes (tests
open hundreds); a run has a beginning and an end, so the run owns the thread. If the thread stops
early, the log only grows until the block ends; then the connections checkpoint at their commits
again, as by default, and the block's end runs one more checkpoint of its own.

That last checkpoint is a ``TRUNCATE`` one, which also empties the log file. SQLite reuses its log
file rather than shrinking it, and a process that exits without closing its connections (a run's
do not close) leaves it behind at the largest size it reached: after a million-record benchmark's
syncs, 4.2 GB of log beside the 4.4 GB database, until some later process happened to close the
last connection. ``TRUNCATE`` waits for readers, so it waits `TRUNCATE_WAIT_SECONDS` at most
(another process reading the file: `contact-sync status`, a BI tool, a concurrent step) and then
does what a ``PASSIVE`` one would; the log file is then capped as SQLite restarts it
(``journal_size_limit``, `models.warehouse.db`).
"""

import logging
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

#: SQLite's own default: the log size, in pages, past which a commit checkpoints.
DEFAULT_AUTOCHECKPOINT_PAGES = 1_000

#: How often the thread checkpoints. A checkpoint with nothing to copy costs microseconds; a longer
#: wait lets the log grow and copies pages rewritten within it once.
CHECKPOINT_EVERY_SECONDS = 0.5

#: How long the block's last checkpoint waits for other readers of the log before it copies what it
#: can and leaves the file as it is: a run's end is not held up by a reader for long.
TRUNCATE_WAIT_SECONDS = 1.0

_log = logging.getLogger(__name__)


@dataclass
class _LogMode:
    """One SQLite file engine's checkpointing: how many blocks are open on it, and its thread."""

    path: str
    timeout_seconds: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    open_blocks: int = 0
    thread: "_Checkpointer | None" = None

    def autocheckpoint_pages(self) -> int:
        return 0 if self.open_blocks else DEFAULT_AUTOCHECKPOINT_PAGES

    def on_checkout(self, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        """Give a connection the mode of the moment as it leaves the pool (set only when it changed:
        connections live in the pool across blocks)."""
        pages = self.autocheckpoint_pages()
        if record.info.get("wal_autocheckpoint") != pages:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA wal_autocheckpoint={pages}")
            cursor.close()
            record.info["wal_autocheckpoint"] = pages


_modes: "weakref.WeakKeyDictionary[Engine, _LogMode]" = weakref.WeakKeyDictionary()


def attach(engine: Engine, timeout_seconds: float) -> None:
    """Let ``engine`` (a SQLite one) take `background_checkpoints`; a no-op for anything but a file."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return
    if database.startswith("file:"):  # a URI, as tests name shared in-memory databases
        return
    mode = _LogMode(str(Path(database).expanduser().resolve()), timeout_seconds)
    _modes[engine] = mode
    sa.event.listen(engine, "checkout", mode.on_checkout)


class _Checkpointer(threading.Thread):
    """Runs a PASSIVE checkpoint on its own connection every ``every`` seconds until stopped."""

    def __init__(self, path: str, timeout_seconds: float, every: float) -> None:
        super().__init__(name="warehouse-wal-checkpoints", daemon=True)
        self._path = path
        self._timeout = timeout_seconds
        self._every = every
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            connection = sqlite3.connect(self._path, timeout=self._timeout, check_same_thread=False)
        except sqlite3.Error as exc:
            _log.warning("warehouse log checkpoints left to the commits: %s", exc)
            return
        try:
            while not self._stopping.wait(self._every):
                _passive_checkpoint(connection)
        finally:
            connection.close()

    def stop(self) -> None:
        self._stopping.set()
        self.join()


@contextmanager
def background_checkpoints(engine: Engine, every_seconds: float = CHECKPOINT_EVERY_SECONDS) -> Iterator[None]:
    """Within: ``engine``'s connections do not checkpoint at their commits; a thread does, every
    ``every_seconds``. Blocks on one engine may overlap (the thread runs while any is open). Ends with
    a checkpoint of what the log holds, so the next reader finds a short log."""
    mode = _modes.get(engine)
    if mode is None:
        yield
        return
    with mode.lock:
        mode.open_blocks += 1
        if mode.thread is None:
            mode.thread = _Checkpointer(mode.path, mode.timeout_seconds, every_seconds)
            mode.thread.start()
    try:
        yield
    finally:
        with mode.lock:
            mode.open_blocks -= 1
            thread = mode.thread if not mode.open_blocks else None
            if thread is not None:
                mode.thread = None
        if thread is not None:
            thread.stop()
            _checkpoint_now(mode)


def _checkpoint_now(mode: _LogMode) -> None:
    """One TRUNCATE checkpoint on a connection of its own: the whole log copied and its file emptied;
    with another reader on the log past `TRUNCATE_WAIT_SECONDS`, what a PASSIVE one copies (the next
    commit's automatic checkpoint takes over the rest)."""
    try:
        connection = sqlite3.connect(mode.path, timeout=TRUNCATE_WAIT_SECONDS)
    except sqlite3.Error:
        return
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.OperationalError:
        return
    finally:
        connection.close()


def _passive_checkpoint(connection: sqlite3.Connection) -> None:
    """Copy what the log holds and no reader still needs; a database busy or locked for a moment is
    left for the next one."""
    try:
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except sqlite3.OperationalError:
        return


class RunCheckpoints:
    """`background_checkpoints` for every engine a run uses, from the first time it asks for it to the
    run's end: opened lazily, so a run that never reaches its warehouse (a bad URL) fails in the step
    that needs it, with that step's message, as before."""

    def __init__(self) -> None:
        self._blocks = ExitStack()
        self._covered: set[Engine] = set()
        self._lock = threading.Lock()

    def cover(self, engine: Engine) -> None:
        with self._lock:
            if engine not in self._covered:
                self._blocks.enter_context(background_checkpoints(engine))
                self._covered.add(engine)

    def close(self) -> None:
        with self._lock:
            self._blocks.close()
            self._covered.clear()
