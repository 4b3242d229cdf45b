"""`contact-sync ui` with a run in progress: "Terminate" (the UI's own `terminateRun` mutation) stops the
run within seconds and Dagster shows it canceled, not failed; then one Ctrl-C stops the UI and its
daemon within seconds, leaving no process behind.

One process start serves both, since starting the webserver is the expensive part. The run goes
through the instance as a run from the UI does, each step in a process of its own, so the terminate
travels Dagster's whole way (the run worker, then the step's process) before it reaches the stop
flag. To keep the test cheap the instance launches runs at once rather than through the daemon's
queue, so the UI runs without its daemon (`--no-daemon`); stopping one service or two is the same code.
"""

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from connectors.emulator import FaultConfig, running_emulator
from models.warehouse.db import open_warehouse
from models.warehouse.tables import StreamState
from pipelines.streams import STREAMS
from tests.pipelines.conftest import CLI, free_port, hearing_ctrl_c

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

LAUNCH = """
mutation ($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""
TERMINATE = """
mutation ($id: String!) {
  terminateRun(runId: $id) { __typename ... on PythonError { message } }
}
"""
RUN = """
query ($id: ID!) {
  runOrError(runId: $id) { ... on Run { status stepStats { stepKey status } } }
}
"""


def graphql(url: str, query: str, **variables: Any) -> dict[str, Any]:
    answer = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables}, timeout=60).json()
    assert "errors" not in answer, answer
    return dict(answer["data"])


def run_of(url: str, run_id: str) -> dict[str, Any]:
    return dict(graphql(url, RUN, id=run_id)["runOrError"])


def wait_for(what: str, condition: Any, seconds: float) -> float:
    """Poll ``condition`` until it holds; the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"{what}: not within {seconds} s"
        time.sleep(0.2)
    return time.monotonic() - started


def stream_statuses(url: str) -> list[str | None]:
    with open_warehouse(url).connect() as connection:
        return list(
            connection.execute(
                sa.select(StreamState.last_status).where(StreamState.stream == "incremental")
            ).scalars()
        )


def processes_of(home: Path) -> list[int]:
    """Processes started with this test's DAGSTER_HOME: the services, their code servers, run workers."""
    marker = f"DAGSTER_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:  # ended meanwhile, or not ours to read
                continue
    return found


def test_terminate_cancels_the_run_and_one_ctrl_c_stops_the_ui(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    launch_at_once = (
        "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: DefaultRunCoordinator\n"
    )
    (home / "dagster.yaml").write_text((ROOT / ".dagster_home" / "dagster.yaml").read_text() + launch_at_once)
    warehouse = f"sqlite:///{tmp_path / 'warehouse.db'}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running_emulator(seed=29, people=150) as emu:
        emu.set_faults(FaultConfig(latency_ms=60))  # an extract that lasts long enough to terminate
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTACT_SYNC_", "DAGSTER_"))}
        env.update(
            {
                **emu.env(),
                "DAGSTER_HOME": str(home),
                "CONTACT_SYNC_DATABASE_URL": warehouse,
                "CONTACT_SYNC_MATON_RPS": "200",
                "CONTACT_SYNC_LINKFLOW_RPS": "200",
            }
        )
        log = (tmp_path / "ui.log").open("w")
        ui = subprocess.Popen(
            hearing_ctrl_c(CLI, "ui", "--no-daemon", "--port", str(port)),
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
        try:

            def answers() -> bool:
                assert ui.poll() is None, (tmp_path / "ui.log").read_text()[-3000:]
                try:
                    return httpx.get(f"{url}/server_info", timeout=2).status_code == 200
                except httpx.TransportError:
                    return False

            wait_for("the UI answering", answers, 120)
            params = {
                "selector": {
                    "repositoryLocationName": "contact_sync",
                    "repositoryName": "__repository__",
                    "jobName": "full_sync",
                }
            }
            launched = graphql(url, LAUNCH, params=params)["launchRun"]
            assert launched["__typename"] == "LaunchRunSuccess", launched
            run_id = launched["run"]["runId"]
            wait_for("the run's extract under way", lambda: bool(stream_statuses(warehouse)), 90)

            assert graphql(url, TERMINATE, id=run_id)["terminateRun"]["__typename"] == "TerminateRunSuccess"
            took = wait_for(
                "the run canceled", lambda: run_of(url, run_id)["status"] in ("CANCELED", "FAILURE"), 30
            )
            run = run_of(url, run_id)
            assert run["status"] == "CANCELED", run
            assert took < 10, took
            # Extract stopped part-way: nothing after it ran, no stream was left "running", and not every
            # stream got read. (Whether one ends "stopped" depends on where the stop lands: between two
            # streams, or during a source's check, none does; the CLI stop tests pin the "stopped" row.)
            assert {s["stepKey"]: s["status"] for s in run["stepStats"]} == {"extract": "FAILURE"}, run
            statuses = stream_statuses(warehouse)
            assert "running" not in statuses, statuses
            assert statuses.count("succeeded") < len(STREAMS), statuses

            ui.send_signal(signal.SIGINT)
            stopped_at = time.monotonic()
            assert ui.wait(timeout=30) == 130
            assert time.monotonic() - stopped_at < 8
        finally:
            if ui.poll() is None:
                ui.kill()
                ui.wait()
            log.close()
        output = (tmp_path / "ui.log").read_text()
        # "stopped" when it ended within the grace period, "killed" when what was left was killed after it.
        said = re.search(r"^contact-sync ui: (stopped|killed) by SIGINT$", output, re.MULTILINE)
        assert said is not None, output[-3000:]
        assert processes_of(home) == [], "a service or one of its processes outlived the UI"
