"""During a run, a SQLite warehouse's log is copied back by a thread, not inside the steps' commits."""

import sqlite3
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from models.warehouse import db
from models.warehouse.checkpoints import (
    DEFAULT_AUTOCHECKPOINT_PAGES,
    TRUNCATE_WAIT_SECONDS,
    RunCheckpoints,
    background_checkpoints,
)
from models.warehouse.db import SQLITE_BUSY_TIMEOUT_MS, open_warehouse
from pipelines.resources import WarehouseResource

#: About 2.5 times the 1,000 pages past which a commit checkpoints by default.
_ROWS, _ROW_BYTES = 2_500, 4_000


def _write_many(engine: sa.Engine) -> None:
    """Many small commits, together past the automatic checkpoint's threshold."""
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS filler (body TEXT)")
    for _commit in range(_ROWS // 100):
        with engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO filler (body) VALUES (?)", [("x" * _ROW_BYTES,)] * 100)


def _rows_in_file(path: Path) -> int:
    """The filler rows the database file holds without its log: what checkpoints have copied."""
    connection = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        if not connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'filler'").fetchall():
            return 0
        return int(connection.execute("SELECT count(*) FROM filler").fetchone()[0])
    finally:
        connection.close()


def _frames_in_log(path: Path) -> int:
    """Frames the log holds now (the checkpoint this asks for copies nothing the test looks at after)."""
    connection = sqlite3.connect(path)
    try:
        return int(connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
    finally:
        connection.close()


def _autocheckpoint(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())


def _path(url: str) -> Path:
    return Path(str(sa.make_url(url).database))


def test_by_default_commits_checkpoint_the_log(sqlite_url: str) -> None:
    engine = open_warehouse(sqlite_url)
    _write_many(engine)
    assert _frames_in_log(_path(sqlite_url)) < 2 * DEFAULT_AUTOCHECKPOINT_PAGES
    assert _rows_in_file(_path(sqlite_url)) > 0


def test_within_the_block_commits_leave_the_log_to_the_thread(sqlite_url: str) -> None:
    engine = open_warehouse(sqlite_url)
    with background_checkpoints(engine, every_seconds=3600):  # the thread never gets its turn
        assert _autocheckpoint(engine) == 0
        _write_many(engine)
        assert _rows_in_file(_path(sqlite_url)) == 0
        assert _frames_in_log(_path(sqlite_url)) > 2 * DEFAULT_AUTOCHECKPOINT_PAGES
    assert _autocheckpoint(engine) == DEFAULT_AUTOCHECKPOINT_PAGES


def test_the_thread_copies_the_log_into_the_file(sqlite_url: str) -> None:
    engine = open_warehouse(sqlite_url)
    with background_checkpoints(engine, every_seconds=0.05):
        _write_many(engine)
        deadline = time.monotonic() + 10
        while _rows_copied(_path(sqlite_url)) < _ROWS and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _rows_copied(_path(sqlite_url)) == _ROWS


def _rows_copied(path: Path) -> int:
    """`_rows_in_file`, or 0 while a checkpoint is writing the file under the reader."""
    try:
        return _rows_in_file(path)
    except sqlite3.DatabaseError:
        return 0


def test_the_blocks_end_copies_what_is_left(sqlite_url: str) -> None:
    engine = open_warehouse(sqlite_url)
    with background_checkpoints(engine, every_seconds=3600):
        _write_many(engine)
    assert _rows_in_file(_path(sqlite_url)) == _ROWS
    assert not [t for t in threading.enumerate() if t.name == "warehouse-wal-checkpoints"]


def _log_bytes(path: Path) -> int:
    log = path.with_name(path.name + "-wal")
    return log.stat().st_size if log.exists() else 0


def test_the_blocks_end_empties_the_log_file(sqlite_url: str) -> None:
    path = _path(sqlite_url)
    engine = open_warehouse(sqlite_url)
    with background_checkpoints(engine, every_seconds=3600):
        _write_many(engine)
        assert _log_bytes(path) > _ROWS * _ROW_BYTES
    assert _log_bytes(path) == 0
    assert _rows_in_file(path) == _ROWS


def test_a_reader_on_the_log_holds_the_blocks_end_briefly_and_loses_nothing(sqlite_url: str) -> None:
    path = _path(sqlite_url)
    engine = open_warehouse(sqlite_url)
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        with background_checkpoints(engine, every_seconds=3600):
            _write_many(engine)
            reader.execute("BEGIN")
            assert reader.execute("SELECT count(*) FROM filler").fetchone()[0] == _ROWS
            started = time.monotonic()
        waited = time.monotonic() - started
        assert _rows_in_file(path) == _ROWS  # copied as far as the reader's snapshot, which is all
        assert _log_bytes(path) > 0  # the file stays while the reader may still read it
        assert waited < SQLITE_BUSY_TIMEOUT_MS / 1000 / 3
        assert waited >= TRUNCATE_WAIT_SECONDS / 2
    finally:
        reader.close()


def test_the_log_file_is_cut_back_when_sqlite_starts_it_over(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 256 * 1024
    monkeypatch.setattr(db, "SQLITE_LOG_LIMIT_BYTES", limit)
    path = _path(sqlite_url)
    engine = open_warehouse(sqlite_url)
    with engine.begin() as connection:  # one transaction of ten megabytes: the log holds all of it
        connection.exec_driver_sql("CREATE TABLE filler (body TEXT)")
        connection.exec_driver_sql("INSERT INTO filler (body) VALUES (?)", [("x" * _ROW_BYTES,)] * _ROWS)
    assert _log_bytes(path) > _ROWS * _ROW_BYTES
    _frames_in_log(path)  # a checkpoint copies it all
    with engine.begin() as connection:  # the next writer starts the log over, and cuts the file
        connection.exec_driver_sql("INSERT INTO filler (body) VALUES ('y')")
    assert 0 < _log_bytes(path) <= limit
    assert _rows_in_file(path) == _ROWS


def test_overlapping_blocks_share_one_thread_until_the_last_ends(sqlite_url: str) -> None:
    engine = open_warehouse(sqlite_url)
    outer = RunCheckpoints()
    outer.cover(engine)
    outer.cover(engine)  # a second ask in the same run changes nothing
    with background_checkpoints(engine):
        assert len([t for t in threading.enumerate() if t.name == "warehouse-wal-checkpoints"]) == 1
    assert _autocheckpoint(engine) == 0  # the run's block is still open
    outer.close()
    assert _autocheckpoint(engine) == DEFAULT_AUTOCHECKPOINT_PAGES


def test_an_in_memory_warehouse_is_left_as_it_is() -> None:
    engine = open_warehouse("sqlite://")
    with background_checkpoints(engine):
        assert not [t for t in threading.enumerate() if t.name == "warehouse-wal-checkpoints"]


def test_a_run_checkpoints_in_the_background_from_its_first_use_of_the_warehouse(sqlite_url: str) -> None:
    seen: dict[str, object] = {}

    @dg.asset
    def uses_the_warehouse(warehouse: WarehouseResource) -> None:
        engine = warehouse.engine()
        seen["autocheckpoint"] = _autocheckpoint(engine)
        seen["threads"] = [t.name for t in threading.enumerate() if t.name == "warehouse-wal-checkpoints"]

    warehouse = WarehouseResource(database_url=sqlite_url)
    result = dg.materialize([uses_the_warehouse], resources={"warehouse": warehouse})
    assert result.success
    assert seen == {"autocheckpoint": 0, "threads": ["warehouse-wal-checkpoints"]}
    assert not [t for t in threading.enumerate() if t.name == "warehouse-wal-checkpoints"]
    assert _log_bytes(_path(sqlite_url)) == 0  # the migrations' writes copied and the file emptied
    assert _autocheckpoint(open_warehouse(sqlite_url)) == DEFAULT_AUTOCHECKPOINT_PAGES
