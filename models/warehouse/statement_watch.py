"""Which connections each watched thread holds, and whose database errors are a stop: the listeners
`models.warehouse.waits.cancel_on_stop` needs, attached to an engine once and never removed.

SQLAlchemy walks an engine's listeners on every checkout, and changing them while another thread
walks them fails that thread's checkout ("deque mutated during iteration"). The extract's and
reverse sync's threads each watch their own statements on the one engine they share, starting and
ending at different moments, so a watch comes and goes here, in a registry keyed by thread, while the
listeners stay: `create_warehouse_engine` (which `open_warehouse` calls) attaches them to each engine it
makes.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine


@dataclass
class Watch:
    """One thread's watch: whether its stop is set, what raises the stop, and the connections the
    thread checked out while watched (the ones a stop cancels)."""

    stopped: Callable[[], bool]
    checkpoint: Callable[[], None]
    held: set[Any] = field(default_factory=set)


_watches: dict[int, list[Watch]] = {}
"""Per thread, its watches (innermost last)."""
_guard = threading.Lock()


def attach(engine: Engine) -> None:
    """The listeners, on ``engine`` (once; `create_warehouse_engine` does it as it makes the engine,
    before any thread uses it, which is the only safe moment on an engine threads share)."""
    with _guard:
        if not sa.event.contains(engine, "checkout", _checked_out):
            sa.event.listen(engine, "checkout", _checked_out)
            sa.event.listen(engine, "checkin", _checked_in)
            sa.event.listen(engine, "handle_error", _stopped_statement)


def start(watch: Watch) -> None:
    """The calling thread is watched by ``watch`` until `end`."""
    with _guard:
        _watches.setdefault(threading.get_ident(), []).append(watch)


def end(watch: Watch) -> None:
    with _guard:
        mine = _watches.get(threading.get_ident(), [])
        if watch in mine:
            mine.remove(watch)
        if not mine:
            _watches.pop(threading.get_ident(), None)


def connections(watch: Watch) -> list[Any]:
    """The DBAPI connections ``watch``'s thread holds now."""
    with _guard:
        return list(watch.held)


def _checked_out(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    with _guard:
        mine = _watches.get(threading.get_ident())
        if mine:
            mine[-1].held.add(dbapi_connection)


def _checked_in(dbapi_connection: Any, _record: Any) -> None:
    # From every watch, whichever thread returns it: a connection back in the pool is no longer the
    # watched thread's, and the next thread to take it must not have its statements cancelled.
    with _guard:
        for watches in _watches.values():
            for watch in watches:
                watch.held.discard(dbapi_connection)


def _stopped_statement(_context: sa.engine.ExceptionContext) -> None:
    """A database error in a watched thread after its stop (a statement the stop cancelled, or one
    failing after it) is raised as the stop itself, where the statement was."""
    with _guard:
        stopped = [watch for watch in _watches.get(threading.get_ident(), ()) if watch.stopped()]
    for watch in stopped:
        watch.checkpoint()
