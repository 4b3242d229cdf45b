"""Reverse sync marks the rows of a window of calls ``sending`` in one ledger transaction, with the
outcomes of the calls before them, rather than one transaction a call: a push commits about once a
window. A stop inside a window puts the rows it never sent back (they end ``unchanged``, planned again);
a process killed inside one leaves them ``sending``, and the next complete extract lets them be
planned and sent again, each once.

Two emulators generated alike serve the runs compared, each with its own warehouse.
"""

import math
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import pipelines.reverse_sync as reverse_sync
from connectors.emulator import Emulator, running_emulator
from connectors.stop import STOP
from models.identity.canonical_incremental import build_canonical_incremental
from models.push.field_map import PushConfig
from models.warehouse.db import open_warehouse
from models.warehouse.tables import PushLedger
from pipelines.clients import clients_for
from pipelines.reverse_sync import (
    LEDGER_WINDOW_CALLS,
    PushReport,
    opt_out_lists,
    push_destination,
    send_batch,
)
from pipelines.streams import Stream
from tests.pipelines.conftest import settings_for
from tests.pipelines.test_canonical import REGIONS
from tests.pipelines.test_incremental_push import CANONICAL, extract_recorded
from tests.pipelines.test_push_slices import KilledError, writes

ONE_A_CALL = Stream("clickfunnels", "contact", writable=True)
"""A destination written one record a call, so a push of it makes many calls."""
WINDOW = 5
"""Calls a window holds here (`LEDGER_WINDOW_CALLS` in a real run), so a small push makes several."""
CALL_AT = WINDOW + 2
"""The call a run is stopped or killed after: inside the second window."""


@pytest.fixture
def twins(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Emulator, Emulator]]:
    assert WINDOW < LEDGER_WINDOW_CALLS
    monkeypatch.setattr(reverse_sync, "LEDGER_WINDOW_CALLS", WINDOW)
    with running_emulator(seed=11, people=150) as one, running_emulator(seed=11, people=150) as other:
        yield one, other


def resolved(emu: Emulator, url: str, run_id: str) -> None:
    """Every stream extracted (the run recorded) and the golden contacts brought up to date."""
    extract_recorded(emu, url, run_id)
    build_canonical_incremental(open_warehouse(url), CANONICAL)


def push(emu: Emulator, url: str, run_id: str) -> PushReport:
    """Push ``ONE_A_CALL`` its fills (nothing is created)."""
    with clients_for(settings_for(emu, url), (ONE_A_CALL.source,)) as clients:
        config = PushConfig(regions=REGIONS, opt_out_lists=opt_out_lists(clients))
        engine = open_warehouse(url)
        return push_destination(ONE_A_CALL, engine, clients, config, run_id=run_id, dry_run=False)


def states(url: str, run_id: str) -> Counter[str]:
    """The run's ledger rows by state; rows a stop left unsent as ``unchanged: not sent``."""
    with open_warehouse(url).connect() as connection:
        rows = connection.execute(
            sa.select(PushLedger.status, PushLedger.error).where(PushLedger.run_id == run_id)
        ).all()
    return Counter(
        f"{status}: not sent" if (error or "").startswith("not sent") else status for status, error in rows
    )


def after_call(monkeypatch: pytest.MonkeyPatch, at: int, then: Callable[[], None]) -> Counter[str]:
    """Count the push's calls (its ``send_batch``es); once call number ``at`` has been answered, run
    ``then()`` before the next one."""
    made: Counter[str] = Counter()

    def counted(*args: Any, **kwargs: Any) -> Any:
        if made["calls"] == at:
            then()
        made["calls"] += 1
        return send_batch(*args, **kwargs)

    monkeypatch.setattr(reverse_sync, "send_batch", counted)
    return made


def after_a_reference(twins: tuple[Emulator, Emulator], tmp_path: Path, run_id: str) -> str:
    """The first twin synced and pushed whole (the reference), the second extracted and resolved into a
    warehouse of its own, whose URL this returns, for a push that is cut short."""
    reference, other = twins
    whole = f"sqlite:///{tmp_path / 'reference.db'}"
    resolved(reference, whole, "reference")
    assert push(reference, whole, "reference").requests > CALL_AT + 1
    url = f"sqlite:///{tmp_path / f'{run_id}.db'}"
    resolved(other, url, run_id)
    return url


def test_a_push_commits_its_ledger_once_a_window_of_calls(
    twins: tuple[Emulator, Emulator], tmp_path: Path
) -> None:
    emu, _ = twins
    url = f"sqlite:///{tmp_path / 'windows.db'}"
    resolved(emu, url, "first")
    commits: Counter[str] = Counter()
    engine = open_warehouse(url)
    sa.event.listen(engine, "commit", lambda _connection: commits.update(["commit"]))

    def updates(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("UPDATE push_ledger"):
            commits.update(["ledger update"])

    sa.event.listen(engine, "before_cursor_execute", updates)
    report = push(emu, url, "first")
    calls = report.requests - 1  # the look at what changed since the extract, before the first write
    assert calls >= 4 * WINDOW, "too few calls to show the windows"
    assert report.sent == report.planned - report.invalid > 0
    assert +states(url, "first") == +Counter(sent=report.sent, invalid=report.invalid)
    windows = math.ceil(calls / WINDOW)
    # The plan's rows, one transaction a window (with the outcomes before it), the last outcomes.
    assert commits["commit"] <= windows + 2, (commits, calls)
    # In each: the window's rows marked sending and the outcomes before it in one statement per kind
    # (sent with a stamp, ended without one), not one per call.
    assert commits["ledger update"] <= 3 * (windows + 1), (commits, calls)


def test_a_stop_inside_a_window_puts_back_the_rows_it_never_sent(
    twins: tuple[Emulator, Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, stopped = twins
    url = after_a_reference(twins, tmp_path, "stopped")
    made = after_call(monkeypatch, CALL_AT, lambda: STOP.request("a stop for the test"))
    try:
        report = push(stopped, url, "stopped")
    finally:
        STOP.end_run()
    assert report.stopped
    assert made["calls"] == CALL_AT + 1, "the call after the stop was asked for but refused"
    assert report.requests == CALL_AT + 1, "the calls answered, after one look at the workspace"
    left = states(url, "stopped")
    # Every row ends: those of the calls answered with their outcome, the rest unsent, none in flight.
    assert set(left) <= {"sent", "invalid", "unchanged: not sent"}, left
    assert left["sent"] == report.sent > 0
    assert left["unchanged: not sent"] == report.not_sent > 0
    monkeypatch.setattr(reverse_sync, "send_batch", send_batch)

    # The next sync sends the rest, once each: together the two did what the reference's one did.
    resolved(stopped, url, "after")
    push(stopped, url, "after")
    assert writes(stopped) == writes(reference)


def test_a_process_killed_inside_a_window_leaves_its_rows_in_flight_until_read_back(
    twins: tuple[Emulator, Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, killed = twins
    url = after_a_reference(twins, tmp_path, "killed")

    def dies() -> None:
        raise KilledError

    after_call(monkeypatch, CALL_AT, dies)
    # A dead process runs no clean-up: the window's rows are not put back.
    close = reverse_sync._Call.close
    monkeypatch.setattr(reverse_sync._Call, "close", lambda _self: None)
    with pytest.raises(KilledError):
        push(killed, url, "killed")
    monkeypatch.setattr(reverse_sync._Call, "close", close)
    monkeypatch.setattr(reverse_sync, "send_batch", send_batch)
    left = states(url, "killed")
    assert set(left) <= {"sent", "invalid", "sending", "planned"}, left
    # The first window's outcomes were committed when the second opened; the second window's rows are
    # all in flight, the sent and the unsent alike; the later windows' rows are planned, never marked.
    assert left["sent"] > 0
    assert left["sending"] > 0
    assert left["planned"] > 0

    # Not read back yet: the rows never marked are sent, nothing in flight is planned again.
    soon = push(killed, url, "too-soon")
    assert soon.sent == soon.planned == left["planned"]
    # After a complete extract, the rows whose call never went out are sent, and no field twice.
    resolved(killed, url, "after")
    again = push(killed, url, "after")
    assert again.sent > 0
    # Counters equal: every write the reference made, none made twice.
    assert writes(killed) == writes(reference)
