"""Ten SIGKILLs of a real `contact-sync sync` process, aimed at extract, canonical and reverse sync: every
re-run converges to the state an uninterrupted pair of syncs leaves, and no field is written twice.

Two emulators generated alike serve the reference (run in-process) and the killed runs, since pushes
change what the next read sees. Each kill waits for its phase to show in the warehouse (raw rows
growing, the extract finished, pushes being marked sent) and then strikes after a random delay.
"""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.emulator import Emulator, FaultConfig
from pipelines.runner import run_sync
from tests.pipelines.conftest import settings_for
from tests.proof.snapshot import snapshot
from tests.proof.test_faults import destination_records, write_log

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).with_name("contact-sync"))
SEED, PEOPLE = 41, 150


@dataclass(frozen=True)
class Progress:
    """What the warehouse shows of a running sync, read without taking its locks."""

    raw: int = 0
    extract_done: int = 0
    sent: int = 0


def progress(database: Path, started: datetime) -> Progress:
    if not database.exists():
        return Progress()
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as connection:
            raw = connection.execute("SELECT count(*) FROM raw_records").fetchone()[0]
            done = connection.execute(
                "SELECT count(*) FROM stream_state WHERE stream = 'incremental' "
                "AND last_status = 'succeeded' AND last_run_started_at >= ?",
                (started.strftime("%Y-%m-%d %H:%M:%S.%f"),),
            ).fetchone()[0]
            sent = connection.execute("SELECT count(*) FROM push_ledger WHERE status = 'sent'").fetchone()[0]
            return Progress(int(raw), int(done), int(sent))
    except sqlite3.Error:
        return Progress()


def start_sync(emu: Emulator, database: Path) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if key != "DAGSTER_HOME"}
    env.update(
        {
            **emu.env(),
            "CONTACT_SYNC_DATABASE_URL": f"sqlite:///{database}",
            "CONTACT_SYNC_MATON_RPS": "200",
            "CONTACT_SYNC_LINKFLOW_RPS": "200",
        }
    )
    return subprocess.Popen([CLI, "sync"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


Trigger = Callable[[Progress, Progress], bool]
"""(at start, now) -> strike now."""


EXTRACT_STREAMS = 8
"""Incremental streams of the five sources; when all have succeeded in a run, its extract is over."""


def kill_plan(rng: random.Random) -> list[tuple[str, Trigger]]:
    """Three kills in extract, three around canonical (extract just finished), four during pushes.

    An extract kill waits for some new rows, or at the latest for the end of the extract, so that no
    run meant to die in extract lives on to finish the pushes the later kills are aimed at.
    """
    extract = [rng.randint(5, 150) for _ in range(3)]
    pushes = [rng.randint(1, 30) for _ in range(4)]
    plan: list[tuple[str, Trigger]] = [
        ("extract", lambda start, now, n=n: now.raw - start.raw >= n or now.extract_done >= EXTRACT_STREAMS)
        for n in extract
    ]
    plan += [("canonical", lambda start, now: now.extract_done >= EXTRACT_STREAMS) for _ in range(3)]
    plan += [("push", lambda start, now, n=n: now.sent - start.sent >= n) for n in pushes]
    return plan


def run_and_kill(emu: Emulator, database: Path, trigger: Trigger, rng: random.Random) -> bool:
    """Start a sync, strike when ``trigger`` fires (after a random 0-150 ms), say whether it was killed."""
    started = datetime.now(UTC)
    before = progress(database, started)
    process = start_sync(emu, database)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        if trigger(before, progress(database, started)):
            time.sleep(rng.uniform(0, 0.15))
            break
        time.sleep(0.02)
    if process.poll() is not None:
        return False
    process.send_signal(signal.SIGKILL)
    process.wait()
    return True


def test_ten_kills_across_extract_canonical_and_push_converge_without_double_writes(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    latency = FaultConfig(latency_ms=8)
    with Emulator(seed=SEED, people=PEOPLE, now=now, faults=latency) as clean:
        reference = tmp_path / "reference.db"
        # The reference is never killed, so it runs in-process (as the CLI's `sync` does: run_sync).
        for _ in range(2):
            assert run_sync(settings_for(clean, f"sqlite:///{reference}")).success
        clean_records = destination_records(clean)
        clean_writes = write_log(clean)
    assert clean_writes, "the reference pushed nothing; the push kills would prove nothing"

    rng = random.Random(SEED)
    crashed = tmp_path / "crashed.db"
    with Emulator(seed=SEED, people=PEOPLE, now=now, faults=latency) as emu:
        struck = Counter(
            phase for phase, trigger in kill_plan(rng) if run_and_kill(emu, crashed, trigger, rng)
        )
        # Then let it finish: a sync that completes, and one more, as the reference ran two.
        assert start_sync(emu, crashed).wait(timeout=300) == 0
        assert start_sync(emu, crashed).wait(timeout=300) == 0
        records = destination_records(emu)
        writes = write_log(emu)
    print(f"kills that struck a running sync, by phase: {dict(struck)}")
    assert sum(struck.values()) >= 8, struck
    assert struck["push"] >= 2, struck
    # Raw payloads carry the times our pushes were applied, which differ between the two emulators;
    # which records exist, how they group into people and the golden fields must not.
    actual, expected = snapshot(f"sqlite:///{crashed}"), snapshot(f"sqlite:///{reference}")
    assert {(s, o, i, live) for s, o, i, _, live in actual.raw} == {
        (s, o, i, live) for s, o, i, _, live in expected.raw
    }
    assert actual.clusters == expected.clusters
    assert actual.golden == expected.golden
    repeated = {write: n for write, n in writes.items() if n > 1}
    assert repeated == {}, "a field was written twice"
    assert writes == clean_writes
    assert records == clean_records
