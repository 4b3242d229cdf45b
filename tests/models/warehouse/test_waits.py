"""A transaction about to write on SQLite waits for another writer as long as `WRITE_LOCK_WAIT_S` says,
and no longer than a stop."""

import threading
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from models.warehouse import waits
from models.warehouse.db import open_warehouse


class StoppedError(Exception):
    pass


def stop_after(seconds: float) -> Callable[[], None]:
    """A checkpoint that raises `StoppedError` once ``seconds`` have passed (a stop asked then)."""
    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()

    def checkpoint() -> None:
        if stop.is_set():
            raise StoppedError

    return checkpoint


def hold_write_lock(url: str, seconds: float, held: threading.Event) -> threading.Thread:
    """Another connection's write transaction, open for ``seconds``."""

    def hold() -> None:
        with open_warehouse(url).begin() as connection:
            connection.exec_driver_sql("DELETE FROM alembic_version WHERE 0")
            held.set()
            time.sleep(seconds)

    thread = threading.Thread(target=hold)
    thread.start()
    return thread


def lock_held(url: str, seconds: float) -> threading.Thread:
    """`hold_write_lock`, returned once the lock is held."""
    held = threading.Event()
    thread = hold_write_lock(url, seconds, held)
    held.wait(5)
    return thread


def test_a_writer_waits_until_the_other_writer_commits(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(waits, "WRITE_LOCK_WAIT_S", 10.0)
    held = threading.Event()
    holder = hold_write_lock(sqlite_url, 1.0, held)
    held.wait(5)
    started = time.monotonic()
    with waits.writing(open_warehouse(sqlite_url), lambda: None) as connection:
        connection.execute(sa.text("SELECT 1"))
    holder.join()
    assert time.monotonic() - started >= 0.8


def test_a_writer_gives_up_once_the_wait_has_passed(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waits, "WRITE_LOCK_WAIT_S", 0.3)
    held = threading.Event()
    holder = hold_write_lock(sqlite_url, 2.0, held)
    held.wait(5)
    started = time.monotonic()
    with (
        pytest.raises(sa.exc.OperationalError, match="locked"),
        waits.writing(open_warehouse(sqlite_url), lambda: None),
    ):
        pass
    assert time.monotonic() - started < 1.5
    holder.join()


def test_a_stop_ends_the_wait(sqlite_url: str) -> None:
    """With the default wait (minutes), a stop still ends it within a try or two."""
    held = threading.Event()
    holder = hold_write_lock(sqlite_url, 2.0, held)
    held.wait(5)
    checkpoint = stop_after(0.3)
    started = time.monotonic()
    with pytest.raises(StoppedError), waits.writing(open_warehouse(sqlite_url), checkpoint):
        pass
    assert time.monotonic() - started < 1.0
    holder.join()


def test_watching_a_threads_statements_leaves_the_engines_listeners_alone(sqlite_url: str) -> None:
    """SQLAlchemy walks an engine's listeners on every checkout, and a thread whose walk sees them
    change fails ("deque mutated during iteration", seen in a sync's extract threads when each added
    and removed its own). A warehouse's engine gets them when it is made; a watch never changes them."""
    engine = open_warehouse(sqlite_url)

    def listeners() -> list[int]:
        pool = engine.pool.dispatch
        return [len(pool.checkout), len(pool.checkin), len(engine.dialect.dispatch.handle_error)]

    before = listeners()
    with waits.cancel_on_stop(engine, threading.Event(), lambda: None):
        assert listeners() == before
    assert listeners() == before


def test_a_stopped_threads_statement_error_is_the_stop_and_other_threads_go_on(sqlite_url: str) -> None:
    """Once its stop is set, a database error in a watched thread is raised as the stop, where the
    statement was; a thread not watched, or watched by a stop not set, keeps its error."""
    engine = open_warehouse(sqlite_url)
    stop = threading.Event()
    stop.set()

    def stopped() -> None:
        raise StoppedError

    with waits.cancel_on_stop(engine, stop, stopped), engine.connect() as connection:
        with pytest.raises(StoppedError):
            connection.execute(sa.text("SELECT * FROM no_such_table"))
        # The same thread's other statements still run, and a caller may go on after a stop.
        assert connection.execute(sa.text("SELECT 1")).scalar_one() == 1
    found: list[BaseException] = []

    def elsewhere() -> None:
        try:
            with engine.connect() as other:
                other.execute(sa.text("SELECT * FROM no_such_table"))
        except BaseException as exc:
            found.append(exc)

    with waits.cancel_on_stop(engine, stop, stopped):
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
    assert len(found) == 1, found
    assert isinstance(found[0], sa.exc.OperationalError), found


def test_leaving_the_watch_does_not_wait_for_its_next_look_at_the_stop(sqlite_url: str) -> None:
    """The watcher looks at the stop every tenth of a second; the block's end wakes it at once instead
    of waiting out that look. A sync opens one for every step, check and extract or push thread: each
    blocking check of a small run took 0.11 to 0.12 s where its work took 0.02."""
    engine = open_warehouse(sqlite_url)
    started = time.perf_counter()
    for _ in range(20):
        with waits.cancel_on_stop(engine, threading.Event(), lambda: None):
            pass
    assert time.perf_counter() - started < 1.0
