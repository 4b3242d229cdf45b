"""A ``full_sync`` launched through an instance: each step in a process of its own, forked from a server
that loaded the code location once for the run (`pipelines.definitions.STEP_PROCESSES`).

``tests/pipelines/test_production.py`` runs the same job through the queue and the daemon on
PostgreSQL; here it runs as ``dagster job execute`` does it, on SQLite, twice.
"""

import itertools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from connectors.emulator import Emulator
from tests.pipelines.test_cli import ROOT

DAGSTER = str(Path(sys.executable).with_name("dagster"))


@pytest.mark.slow
def test_a_run_through_the_instance_loads_the_code_once_and_runs_each_step_in_its_own_process(
    emulator: Emulator, sqlite_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, **emulator.env(), "CONTACT_SYNC_DATABASE_URL": sqlite_url, "DAGSTER_HOME": str(home)}
    command = [DAGSTER, "job", "execute", "-m", "pipelines.definitions", "-a", "defs", "-j", "full_sync"]

    # Python reports every module each process imports: the code location (its reverse-sync module
    # here) is loaded by the run's own process and by the server the steps fork from, not once a
    # step (started the default way, the seven steps and the run imported it eight times).
    profiled = {**env, "PYTHONPROFILEIMPORTTIME": "1"}
    first = subprocess.run(command, check=False, env=profiled, cwd=ROOT, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-3000:]
    assert len(re.findall(r"\|\s+pipelines\.reverse_sync$", first.stderr, re.MULTILINE)) == 2
    # Dagster's instance storages likewise: the server opened the instance before forking the steps
    # (`pipelines.instance_warmup`), so no step imports them again.
    assert (
        len(
            re.findall(
                r"\|\s+dagster\._core\.storage\.runs\.sqlite\.sqlite_run_storage$", first.stderr, re.MULTILINE
            )
        )
        == 2
    )
    written = len(emulator.writes())
    assert written > 0
    # The executor's own settings still come from run config; only how processes start is fixed.
    config = tmp_path / "one_at_a_time.yaml"
    config.write_text("execution:\n  config:\n    max_concurrent: 1\n")
    second = subprocess.run(
        [*command, "-c", str(config)], check=False, env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert second.returncode == 0, second.stderr[-3000:]

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_run_records(dg.RunsFilter(job_name="full_sync"))
        assert len(runs) == 2
        assert runs[0].dagster_run.run_config["execution"] == {"config": {"max_concurrent": 1}}
        spans = sorted(step_spans(instance, runs[0].dagster_run.run_id).values())
        assert all(start >= end for (_, end), (start, _) in itertools.pairwise(spans)), spans
        assert {record.dagster_run.status for record in runs} == {dg.DagsterRunStatus.SUCCESS}
        # Two at a time, but on SQLite never activity beside reverse sync (`pipelines.overlap`).
        both = step_spans(instance, runs[1].dagster_run.run_id)
        activity, push = both["canonical__activity"], both["reverse_sync"]
        assert activity[1] <= push[0] or push[1] <= activity[0], both
        for record in runs:
            starts = instance.all_logs(record.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_START)
            pids = {entry.step_key: entry.dagster_event.pid for entry in starts if entry.dagster_event}
            assert {"extract", "canonical__contacts", "canonical__activity", "reverse_sync"} <= set(pids)
            assert len(set(pids.values())) == len(pids), pids
            assert os.getpid() not in pids.values()
    assert len(emulator.writes()) == written  # the second run found nothing to push: no echo


def step_spans(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    """Each step's start and end in the run's event log."""
    kinds = dg.DagsterEventType
    starts = {e.step_key: e.timestamp for e in instance.all_logs(run_id, of_type=kinds.STEP_START)}
    ends = {e.step_key: e.timestamp for e in instance.all_logs(run_id, of_type=kinds.STEP_SUCCESS)}
    return {str(key): (starts[key], ends[key]) for key in starts}
