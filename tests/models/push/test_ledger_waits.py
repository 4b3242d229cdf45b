"""Reverse sync's ledger writes wait out another writer on SQLite as identity resolution's do: past the
busy timeout, for up to `WRITE_LOCK_WAIT_S`, and a stop ends only the wait, never a write that can land.

The busy timeout is cut to 0.2 s here so that the old way (a plain transaction) fails within the test:
at its real 30 s a long transaction of another process (a settling sync's activity step at a million
records, a BI tool) failed the ledger's writes the same way.
"""

import time

import pytest
import sqlalchemy as sa

from models.push import ledger
from models.warehouse.db import open_warehouse
from models.warehouse.tables import PushLedger
from tests.models.push.test_ledger_record_plan import plan
from tests.models.warehouse.test_waits import StoppedError, lock_held, stop_after


def _statuses(url: str) -> list[str]:
    with open_warehouse(url).connect() as connection:
        return list(connection.execute(sa.select(PushLedger.status).order_by(PushLedger.id)).scalars())


@pytest.mark.usefixtures("short_busy_timeout")
def test_a_plain_write_fails_where_the_ledger_waits(sqlite_url: str) -> None:
    engine = open_warehouse(sqlite_url)
    ids = ledger.record_plan(engine, plan(3, "r"), run_id="r1", dry_run=False)
    holder = lock_held(sqlite_url, 1.0)
    with pytest.raises(sa.exc.OperationalError, match="locked"), engine.begin() as connection:
        connection.execute(sa.update(PushLedger).values(status="sending"))
    started = time.monotonic()
    ledger.record_call(engine, sending=ids[:2])
    ledger.mark(engine, ids[2:], "unchanged", error="why")
    waited = time.monotonic() - started
    holder.join()
    assert waited >= 0.5
    assert _statuses(sqlite_url) == ["sending", "sending", "unchanged"]


@pytest.mark.usefixtures("short_busy_timeout")
def test_a_plan_is_recorded_after_another_writer_commits(sqlite_url: str) -> None:
    engine = open_warehouse(sqlite_url)
    holder = lock_held(sqlite_url, 1.0)
    ids = ledger.record_plan(engine, plan(4, "r"), run_id="r1", dry_run=False)
    holder.join()
    assert len(ids) == 4
    assert ledger.abandon_planned(engine, "r1", "zoho_crm", "lead", "not sent") == 3  # one is invalid


def test_after_a_stop_the_outcome_still_lands_when_the_lock_is_free(sqlite_url: str) -> None:
    engine = open_warehouse(sqlite_url)
    ids = ledger.record_plan(engine, plan(2, "r"), run_id="r1", dry_run=False)

    def stopped() -> None:
        raise StoppedError

    ledger.record_call(engine, sending=ids, checkpoint=stopped)
    assert _statuses(sqlite_url) == ["sending", "sending"]


@pytest.mark.usefixtures("short_busy_timeout")
def test_a_stop_ends_the_wait_and_writes_nothing(sqlite_url: str) -> None:
    engine = open_warehouse(sqlite_url)
    ids = ledger.record_plan(engine, plan(2, "r"), run_id="r1", dry_run=False)
    holder = lock_held(sqlite_url, 2.0)
    started = time.monotonic()
    with pytest.raises(StoppedError):
        ledger.record_call(engine, sending=ids, checkpoint=stop_after(0.3))
    assert time.monotonic() - started < 1.5
    holder.join()
    assert _statuses(sqlite_url) == ["planned", "planned"]
