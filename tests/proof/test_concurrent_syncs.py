"""Two real `contact-sync sync` processes started together on one warehouse (SQLite, and PostgreSQL
when configured): one runs, the other refuses in one line and starts no run, so no identity
resolution or reverse sync of one interleaves with the other's, and the warehouse and the five
systems end exactly as one sync leaves them.

The reference sync runs in-process against a second emulator generated alike, since pushes change
what the next read sees.
"""

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from connectors.emulator import Emulator, FaultConfig
from pipelines.runner import run_sync
from tests.pipelines.conftest import settings_for
from tests.proof.snapshot import assert_same_warehouse, snapshot
from tests.proof.test_faults import destination_records, write_log

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).with_name("contact-sync"))
ROOT = Path(__file__).parents[2]
SEED, PEOPLE = 43, 120
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
BUSY = "contact-sync: another sync is running on this warehouse; try again when it ends\n"
LATENCY = FaultConfig(latency_ms=10)
"""Keeps the winner's run a few seconds long, so the other process surely starts while it runs."""


def start_sync(emu: Emulator, url: str, home: Path) -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONTACT_SYNC_")}
    env.update(
        {
            **emu.env(),
            "CONTACT_SYNC_DATABASE_URL": url,
            "CONTACT_SYNC_MATON_RPS": "200",
            "CONTACT_SYNC_LINKFLOW_RPS": "200",
            "DAGSTER_HOME": str(home),
        }
    )
    return subprocess.Popen([CLI, "sync"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_syncs_started_together_end_as_one_sync(
    warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference_url = f"sqlite:///{tmp_path / 'reference.db'}"
    with Emulator(seed=SEED, people=PEOPLE, now=NOW) as reference:
        assert run_sync(settings_for(reference, reference_url)).success
        expected_records = destination_records(reference)
        expected_writes = write_log(reference)
    assert expected_writes, "the reference pushed nothing; the comparison would prove little"

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    with Emulator(seed=SEED, people=PEOPLE, now=NOW, faults=LATENCY) as emu:
        processes = [start_sync(emu, warehouse_url, home) for _ in range(2)]
        outputs = [process.communicate(timeout=120) for process in processes]
        records = destination_records(emu)
        writes = write_log(emu)

    codes = [process.returncode for process in processes]
    assert sorted(codes) == [0, 1], outputs
    (won_out, won_err), lost = outputs[codes.index(0)], outputs[codes.index(1)]
    assert won_out.startswith("run "), won_err[-2000:]
    assert lost == ("", BUSY)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
    assert [run.status for run in runs] == [dg.DagsterRunStatus.SUCCESS], "the refused sync started a run"
    assert_same_warehouse(snapshot(warehouse_url), snapshot(reference_url))
    assert writes == expected_writes, "a field was written twice, or one was missed"
    assert records == expected_records
