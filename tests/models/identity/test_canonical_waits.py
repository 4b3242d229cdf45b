"""Every write of the canonical step gives way to a stop while another process holds the warehouse.

The step's first write (pruning the changes the activity step has applied) once went straight to the
database and sat out SQLite's 30 s busy timeout; a signal during it took as long to be heard.
"""

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.stop import StopRequested
from models.identity.canonical_incremental import build_canonical_incremental
from models.identity.phases import CanonicalConfig
from models.warehouse.db import open_warehouse


def _stop_after(seconds: float) -> tuple[list[int], Callable[[], None]]:
    calls: list[int] = []
    deadline = time.monotonic() + seconds

    def checkpoint() -> None:
        calls.append(1)
        if time.monotonic() >= deadline:
            raise StopRequested("test")

    return calls, checkpoint


@pytest.mark.parametrize("full", [False, True], ids=["incremental", "full"])
def test_a_stop_ends_canonical_while_another_process_holds_the_sqlite_warehouse(
    tmp_path: Path, full: bool
) -> None:
    path = tmp_path / "warehouse.db"
    engine = open_warehouse(f"sqlite:///{path}")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    calls, checkpoint = _stop_after(0.5)
    started = time.monotonic()
    try:
        with pytest.raises(StopRequested):
            build_canonical_incremental(engine, CanonicalConfig(regions={}), full=full, checkpoint=checkpoint)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert time.monotonic() - started < 5.0
    assert len(calls) > 1, "the lock was waited for in tries that each asked whether to stop"
