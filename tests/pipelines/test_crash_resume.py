"""A sync killed with SIGKILL mid-stream, then run again, ends with the rows of an uninterrupted one."""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.emulator import Emulator, FaultConfig, running_emulator
from models.warehouse.db import open_warehouse
from models.warehouse.tables import RawRecord
from pipelines.runner import run_sync
from tests.pipelines.conftest import settings_for

CLI = str(Path(sys.executable).with_name("contact-sync"))


def sync_process(emu: Emulator, database: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **emu.env(),
        "CONTACT_SYNC_DATABASE_URL": f"sqlite:///{database}",
        "CONTACT_SYNC_PUSH": "off",
    }
    return subprocess.Popen([CLI, "sync"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stored_rows(database: Path) -> set[tuple[str, str, str, str, bool]]:
    with open_warehouse(f"sqlite:///{database}").connect() as connection:
        rows = connection.execute(
            sa.select(
                RawRecord.source,
                RawRecord.object,
                RawRecord.source_id,
                RawRecord.content_hash,
                RawRecord.deleted_at,
            )
        )
        return {(s, o, i, h, d is None) for s, o, i, h, d in rows}


def raw_count(database: Path) -> int:
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as connection:
            return int(connection.execute("SELECT count(*) FROM raw_records").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3])
def test_killed_sync_resumes_to_the_uninterrupted_state(tmp_path: Path, seed: int) -> None:
    """With the push off, payloads must match the reference's exactly (content hashes included),
    which `tests/proof/test_kills.py` cannot ask once pushes stamp the records. One seed: that test
    kills the extract three more times at random points (a second seed here cost 18 s a CI run)."""
    with running_emulator(seed=seed, people=300, faults=FaultConfig(latency_ms=10)) as emu:
        reference = tmp_path / "reference.db"
        # The uninterrupted reference runs in-process (as the CLI's `sync` does: run_sync).
        assert run_sync(settings_for(emu, f"sqlite:///{reference}", contact_sync_push="off")).success

        crashed = tmp_path / "crashed.db"
        process = sync_process(emu, crashed)
        threshold = random.Random(seed).randint(20, 600)
        deadline = time.monotonic() + 120
        while raw_count(crashed) < threshold and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "the sync finished before it could be killed; raise the latency"
        process.send_signal(signal.SIGKILL)
        process.wait()
        partial = raw_count(crashed)
        assert 0 < partial < len(stored_rows(reference))

        assert sync_process(emu, crashed).wait(timeout=240) == 0
    assert stored_rows(crashed) == stored_rows(reference)
