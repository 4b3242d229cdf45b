"""The step processes' server opens the run's Dagster instance once, with the migration scripts of
Dagster's storages read once, so that a step forked from it opens the instance without importing the
storages or executing their revision files again (`pipelines.instance_warmup`).

Each case runs in a fresh interpreter: the server's preload changes its process for good."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from pipelines.instance_warmup import open_instance_once

ROOT = Path(__file__).resolve().parents[2]

_OPEN_AS_A_STEP = """
import json, os, sys, threading
{preload}
import dagster as dg
from alembic.script import ScriptDirectory

read = []
load_revisions = ScriptDirectory._load_revisions
def counted(self):
    read.append(self.dir)
    return load_revisions(self)
ScriptDirectory._load_revisions = counted
threads = threading.active_count()
modules = set(sys.modules)
# What a step process does first: open the run's instance and its event log for the run.
with dg.DagsterInstance.get() as instance:
    with instance.event_log_storage.run_connection("a-run"):
        pass
print(json.dumps({{"revisions_read": len(read), "threads_before": threads,
                  "storage_imported": sorted(m for m in set(sys.modules) - modules if "storage" in m)}}))
"""


def _open_as_a_step(preload: str, home: Path) -> dict[str, object]:
    code = _OPEN_AS_A_STEP.format(preload=preload)
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An instance's home as a run's would be: its storages made by an earlier process."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with (
        dg.DagsterInstance.from_config(str(home)) as instance,
        instance.event_log_storage.run_connection("a-run"),
    ):
        pass
    return home


def test_after_the_server_preload_the_instance_opens_without_reading_migrations_or_importing(
    home: Path,
) -> None:
    warmed = _open_as_a_step("import pipelines.step_server", home)
    assert warmed["revisions_read"] == 0
    assert warmed["storage_imported"] == []
    assert warmed["threads_before"] == 1  # nothing left running in the server that forks the steps
    # The same opening after importing only the code location, as the server did before.
    cold = _open_as_a_step("import pipelines.definitions", home)
    assert cold["revisions_read"] >= 3  # run, event-log index, the run's shard, schedules
    assert cold["storage_imported"] != []


_SCRIPTS = """
import json
from pathlib import Path
from alembic.script import ScriptDirectory
from dagster._core.storage.sql import get_alembic_config
import dagster._core.storage.runs.sqlite.sqlite_run_storage as runs
from models.warehouse.db import alembic_config, create_warehouse_engine
from pipelines.instance_warmup import remember_dagster_scripts

remember_dagster_scripts()
remember_dagster_scripts()  # a second call changes nothing
dagster = get_alembic_config(runs.__file__)
ours = alembic_config(create_warehouse_engine("sqlite://"))
print(json.dumps({
    "dagster_kept": ScriptDirectory.from_config(dagster) is ScriptDirectory.from_config(dagster),
    "ours_kept": ScriptDirectory.from_config(ours) is ScriptDirectory.from_config(ours),
    "ours_head": ScriptDirectory.from_config(ours).get_current_head(),
}))
"""


def test_only_dagsters_own_migration_scripts_are_kept() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPTS], cwd=ROOT, capture_output=True, text=True, check=True
    )
    kept = json.loads(out.stdout.strip().splitlines()[-1])
    assert kept["dagster_kept"] is True
    assert kept["ours_kept"] is False  # the warehouse's migrations are read afresh, as Alembic does
    assert kept["ours_head"]


def test_without_a_home_there_is_nothing_to_open_ahead(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert open_instance_once() is False
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "missing"))
    assert open_instance_once() is False
    assert not (tmp_path / "missing").exists()


def test_an_instance_that_cannot_open_is_left_to_the_steps_to_report(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "dagster.yaml").write_text("run_storage: [not, a, mapping\n")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert open_instance_once() is False
