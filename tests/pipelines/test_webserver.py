"""The Dagster webserver, started on the code location as `dagster dev` does: the contract's graph in
its GraphQL API, and a partitioned backfill launched there the way the UI launches one.

One webserver serves the module, on the instance of `.dagster_home` (SQLite, as `dagster dev` uses),
with the emulator in place of the five APIs. The backfill test adds the daemon that runs backfills.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from connectors.emulator import Emulator, running_emulator
from models.warehouse.db import open_warehouse
from models.warehouse.tables import RawRecord, StreamState
from pipelines.runner import run_sync
from tests.pipelines.conftest import free_port, settings_for

ROOT = Path(__file__).resolve().parents[2]
WORKSPACE = ROOT / "workspace.yaml"
# From the daemon's start: its code server, the backfill's first look, the queue (every 5 s), the run
# worker and the step's process; about 20 s here, generous for a busy CI.
BACKFILL_DEADLINE_S = 120
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
LEADS_ENDPOINT = ("zoho_crm", "GET /zoho-crm/crm/v8/{module}")

QUERY = """
{
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes {
        location { name }
        jobs { name }
        schedules { name cronSchedule }
        assetGroups { groupName }
        assetNodes { assetKey { path } groupName }
      }
    }
  }
}
"""

SCHEDULE_STATE = """
{
  repositoriesOrError {
    ... on RepositoryConnection { nodes { schedules { name scheduleState { id } } } }
  }
}
"""

STOP_SCHEDULE = """
mutation ($id: String!) {
  stopRunningSchedule(id: $id) {
    __typename
    ... on ScheduleStateResult { scheduleState { status } }
    ... on PythonError { message }
  }
}
"""

# What the UI's "Materialize" dialog sends for a range of days of a partitioned asset.
LAUNCH_BACKFILL = """
mutation ($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId launchedRunIds }
    ... on PythonError { message }
    ... on PartitionKeysNotFoundError { message }
  }
}
"""

BACKFILL = """
query ($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      status
      error { message }
      runs { runId status tags { key value } }
    }
    ... on PythonError { message }
  }
}
"""

RUN_FAILURE = """
query ($id: ID!) {
  logsForRun(runId: $id) {
    ... on EventConnection {
      events {
        __typename
        ... on ExecutionStepFailureEvent { error { message causes { message } } }
        ... on RunFailureEvent { message }
      }
    }
  }
}
"""

PARTITIONS = """
query ($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      assetPartitionStatuses { ... on TimePartitionStatuses { ranges { startKey endKey status } } }
    }
  }
}
"""


@dataclass
class Ui:
    url: str
    home: Path
    env: dict[str, str]
    emulator: Emulator
    warehouse_url: str

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        answer = httpx.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=60
        ).json()
        assert "errors" not in answer, answer
        return dict(answer["data"])


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group (the server, its code server, run workers), SIGKILL what lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ui]:
    base = tmp_path_factory.mktemp("ui")
    home = base / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    warehouse_url = f"sqlite:///{base / 'warehouse.db'}"
    port = free_port()
    with running_emulator(seed=23, people=20) as emu:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("CONTACT_SYNC_", "MATON_", "LINKFLOW_", "DAGSTER_"))
        }
        env.update(emu.env())
        env.update(
            DAGSTER_HOME=str(home),
            CONTACT_SYNC_DATABASE_URL=warehouse_url,
            # The emulator has no rate budget here; the client-side budgets would only slow it.
            CONTACT_SYNC_MATON_RPS="200",
            CONTACT_SYNC_LINKFLOW_RPS="200",
        )
        log = home / "webserver.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [_bin("dagster-webserver"), "-w", str(WORKSPACE), "-h", "127.0.0.1", "-p", str(port)],
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise AssertionError(f"webserver exited: {log.read_text(errors='replace')[-2000:]}")
                try:
                    if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.5)
            else:
                raise AssertionError("webserver did not answer within 90 s")
            yield Ui(url=url, home=home, env=env, emulator=emu, warehouse_url=warehouse_url)
        finally:
            _stop(process)


@pytest.mark.slow
def test_ui_graphql_shows_groups_job_and_schedule(ui: Ui) -> None:
    (repository,) = ui.graphql(QUERY)["repositoriesOrError"]["nodes"]
    assert repository["location"]["name"] == "contact_sync"
    assert "full_sync" in {job["name"] for job in repository["jobs"]}
    assert {"name": "full_sync_schedule", "cronSchedule": "*/15 * * * *"} in repository["schedules"]
    assert {g["groupName"] for g in repository["assetGroups"]} == {
        "extract",
        "canonical",
        "reverse_sync",
        "backfill",
    }
    keys = {tuple(node["assetKey"]["path"]): node["groupName"] for node in repository["assetNodes"]}
    assert keys[("zoho_crm", "lead")] == "extract"
    assert keys[("linkflow", "event")] == "extract"
    assert keys[("canonical", "contacts")] == "canonical"
    assert keys[("reverse_sync", "zoho_bigin", "contact")] == "reverse_sync"


def _cursors(url: str) -> dict[tuple[str, str, str], tuple[Any, Any]]:
    """Every stream's cursor and when it was stored: a backfill that stored any cursor, even an equal
    one, changes this."""
    with open_warehouse(url).connect() as connection:
        rows = connection.execute(
            sa.select(
                StreamState.source,
                StreamState.object,
                StreamState.stream,
                StreamState.cursor,
                StreamState.cursor_updated_at,
            )
        )
        return {(source, obj, stream): (cursor, at) for source, obj, stream, cursor, at in rows}


def _seen_since(url: str, moment: datetime) -> set[tuple[str, str, str]]:
    """The raw rows some read wrote or confirmed after ``moment``."""
    with open_warehouse(url).connect() as connection:
        rows = connection.execute(
            sa.select(RawRecord.source, RawRecord.object, RawRecord.source_id).where(
                RawRecord.last_seen_at > moment
            )
        )
        return {(source, obj, source_id) for source, obj, source_id in rows}


def _wait_for_runs(ui: Ui, backfill_id: str, daemon_log: Path) -> list[dict[str, Any]]:
    """The backfill's runs once the daemon has launched them and they have all finished."""
    deadline = time.monotonic() + BACKFILL_DEADLINE_S
    while True:
        backfill = ui.graphql(BACKFILL, id=backfill_id)["partitionBackfillOrError"]
        assert backfill["__typename"] == "PartitionBackfill", backfill
        assert backfill["error"] is None, backfill["error"]
        runs: list[dict[str, Any]] = backfill["runs"]
        if runs and all(run["status"] in FINISHED for run in runs):
            return runs
        if time.monotonic() > deadline:
            raise AssertionError(
                f"backfill {backfill_id} not done in {BACKFILL_DEADLINE_S} s: {backfill['status']}, "
                f"runs {runs}\n{daemon_log.read_text(errors='replace')[-3000:]}"
            )
        time.sleep(1)


def _why_failed(ui: Ui, run_id: str) -> str:
    """The run's failure as the UI shows it: each failed step's error with its causes, then the run's."""
    lines: list[str] = []
    for event in ui.graphql(RUN_FAILURE, id=run_id)["logsForRun"]["events"]:
        error = event.get("error") or {}
        if event["__typename"] == "ExecutionStepFailureEvent":
            lines += [error.get("message", ""), *(cause["message"] for cause in error.get("causes", []))]
        elif event["__typename"] == "RunFailureEvent":
            lines.append(event["message"])
    return "\n".join(lines)


@pytest.mark.slow
def test_ui_backfill_over_days_rereads_the_window_and_leaves_the_cursors(ui: Ui) -> None:
    # A first sync stores every stream's cursor; its reverse sync changes some leads today.
    report = run_sync(settings_for(ui.emulator, ui.warehouse_url))
    assert report.success, report.failures
    before = _cursors(ui.warehouse_url)
    assert before[("zoho_crm", "lead", "incremental")][0] is not None, before
    today = datetime.now(UTC).date()
    days = [(today - timedelta(days=back)).isoformat() for back in (2, 1, 0)]
    start = datetime.fromisoformat(days[0]).replace(tzinfo=UTC)
    end = start + timedelta(days=len(days))
    leads = ui.emulator.dataset.tables["zoho_crm/lead"]
    in_window = {
        ("zoho_crm", "lead", str(record_id))
        for record_id, record in leads.items()
        if start <= datetime.fromisoformat(record["Modified_Time"]) < end
    }
    assert in_window, "the window must hold leads, or the re-read proves nothing"
    assert len(in_window) < len(leads), "some leads must lie outside the window"
    ui.emulator.reset_counters()
    launched_at = datetime.now(UTC)

    # Nothing but the backfill runs: the schedule is turned off as the UI's toggle does.
    states = ui.graphql(SCHEDULE_STATE)["repositoriesOrError"]["nodes"][0]["schedules"]
    (state_id,) = [s["scheduleState"]["id"] for s in states if s["name"] == "full_sync_schedule"]
    stopped = ui.graphql(STOP_SCHEDULE, id=state_id)["stopRunningSchedule"]
    assert stopped == {"__typename": "ScheduleStateResult", "scheduleState": {"status": "STOPPED"}}, stopped

    params = {
        "assetSelection": [{"path": ["backfill", "zoho_crm", "lead"]}],
        "partitionNames": days,
        "fromFailure": False,
        "tags": [],
    }
    launched = ui.graphql(LAUNCH_BACKFILL, params=params)["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    assert launched["launchedRunIds"] in ([], None), "an asset backfill's runs are the daemon's to launch"

    # The daemon starts after the launch: its backfill loop looks once at start, then every 30 s.
    daemon_log = ui.home / "daemon.log"
    with daemon_log.open("wb") as log:
        daemon = subprocess.Popen(
            [_bin("dagster-daemon"), "run", "-w", str(WORKSPACE)],
            cwd=ui.home,
            env=ui.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            runs = _wait_for_runs(ui, launched["backfillId"], daemon_log)
        finally:
            _stop(daemon)

    # One run for the whole range (BackfillPolicy.single_run), and it succeeded.
    (run,) = runs
    assert run["status"] == "SUCCESS", _why_failed(ui, run["runId"])
    tags = {tag["key"]: tag["value"] for tag in run["tags"]}
    assert tags["dagster/backfill"] == launched["backfillId"]
    assert (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]) == (
        days[0],
        days[-1],
    )

    # It re-read the window through the leads' windowed endpoint, and only the window.
    requests = ui.emulator.request_counts()
    assert requests.get(LEADS_ENDPOINT, 0) > 0, requests
    assert {app for app, _ in requests} == {"zoho_crm"}, requests
    assert _seen_since(ui.warehouse_url, launched_at) == in_window

    # The UI shows the three days materialized, and every cursor is exactly as the sync left it.
    statuses = ui.graphql(PARTITIONS, key={"path": ["backfill", "zoho_crm", "lead"]})
    ranges = statuses["assetNodeOrError"]["assetPartitionStatuses"]["ranges"]
    assert ranges == [{"startKey": days[0], "endKey": days[-1], "status": "MATERIALIZED"}], ranges
    assert _cursors(ui.warehouse_url) == before
