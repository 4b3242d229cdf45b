"""Fixtures shared by the models' tests."""

import pytest

from models.warehouse import db, waits


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's busy timeout cut to 0.2 s for warehouses opened after it, so that a write waiting only
    the busy timeout fails within a test where it would fail after 30 s in a run; the stop-aware
    write-lock wait keeps a 10 s deadline."""
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 200)
    monkeypatch.setattr(waits, "SQLITE_BUSY_TIMEOUT_MS", 200)
    monkeypatch.setattr(waits, "WRITE_LOCK_WAIT_S", 10.0)
