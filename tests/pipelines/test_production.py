"""The production set-up of deploy/: `full_sync` and its schedule under deploy/dagster.yaml.

Everything runs as it would in production, only smaller: Dagster's storage in a fresh PostgreSQL
database, the warehouse in another, the emulator in place of the five APIs, `dagster-daemon run` on
the workspace, runs launched through the instance's queue. One daemon serves the module, because a
cron tick comes once a minute: while the first test's run goes through the queue, the schedule's
first tick is already on its way.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from dagster._core.scheduler.instigation import TickStatus
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

from connectors.emulator import Emulator, running_emulator
from models.warehouse.db import dispose_all, open_warehouse
from tests.conftest import POSTGRES_URL_VARIABLE, postgres_url
from tests.pipelines.test_canonical import assert_clusters_match_truth

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
WORKSPACE = ROOT / "workspace.yaml"
SCHEDULE_TAG = "dagster/schedule_name"
# From the daemon's start: up to a minute for the first tick, which is skipped while the manual run
# is queued or running (runs take 25-35 s here: every step is a fresh process), a minute more for
# the next tick, then its own run; generous for a busy CI.
SCHEDULED_RUN_DEADLINE_S = 240
MANUAL_RUN_DEADLINE_S = 120
FINISHED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _stop_group(process: subprocess.Popen[bytes], grace_s: float = 30) -> int:
    """SIGTERM the process group (the daemon, its code server, run workers and their steps), then
    SIGKILL whatever is left; returns the leader's exit status."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        status = process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        status = process.wait()
    deadline = time.monotonic() + grace_s
    while _group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    return status


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class Production:
    instance: dg.DagsterInstance
    emulator: Emulator
    dagster_url: str
    warehouse_url: str
    daemon: subprocess.Popen[bytes]
    daemon_log: Path
    manual_run: str
    started: float

    def log_tail(self) -> str:
        return self.daemon_log.read_text(errors="replace")[-3000:]

    def wait_for(self, run_id: str, deadline: float) -> dg.DagsterRun:
        while True:
            run = self.instance.get_run_by_id(run_id)
            if run is not None and run.status in FINISHED:
                return run
            if time.monotonic() > deadline:
                state = run.status if run else None
                raise AssertionError(f"run {run_id} not finished in time ({state})\n{self.log_tail()}")
            time.sleep(1)

    def failure(self, run_id: str) -> str:
        """Why a run failed, for the assertion message."""
        kinds = {dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
        lines = [
            str(entry.dagster_event.message if entry.dagster_event else entry.user_message)
            for entry in self.instance.all_logs(run_id)
            if entry.dagster_event is not None and entry.dagster_event.event_type in kinds
        ]
        return "\n".join(lines) + "\n" + self.log_tail()


def _launch(env: dict[str, str], cwd: Path, run_id: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [_bin("dagster"), "job", "launch", "-w", str(WORKSPACE), "-j", "full_sync", "--run-id", run_id],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Production]:
    base = postgres_url()
    if base is None:
        pytest.skip(f"the production set-up needs PostgreSQL: set {POSTGRES_URL_VARIABLE}")
    suffix = uuid.uuid4().hex[:10]
    names = {"dagster": f"dagster_test_{suffix}", "warehouse": f"warehouse_test_{suffix}"}
    server = sa.make_url(base)
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())
    connection_env = {
        "DAGSTER_PG_HOST": server.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(server.port or 5432),
        "DAGSTER_PG_USERNAME": server.username or "postgres",
        "DAGSTER_PG_PASSWORD": server.password or "",
        "DAGSTER_PG_DB": names["dagster"],
    }
    warehouse_url = server.set(database=names["warehouse"]).render_as_string(hide_password=False)
    processes: list[subprocess.Popen[bytes]] = []
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            for name in names.values():
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        with running_emulator(seed=23, people=40) as emu:
            env = {
                name: value
                for name, value in os.environ.items()
                if not name.startswith(("CONTACT_SYNC_", "MATON_", "LINKFLOW_", "DAGSTER_"))
            }
            env.update(emu.env())
            env.update(connection_env)
            env.update(
                DAGSTER_HOME=str(home),
                CONTACT_SYNC_DATABASE_URL=warehouse_url,
                CONTACT_SYNC_CRON="* * * * *",
                # The emulator has no rate budget here; the client-side budgets would only slow it.
                CONTACT_SYNC_MATON_RPS="200",
                CONTACT_SYNC_LINKFLOW_RPS="200",
            )
            # Creating the instance here makes Dagster's tables before any other process races to.
            with pytest.MonkeyPatch.context() as patch:
                for name, value in connection_env.items():
                    patch.setenv(name, value)
                instance = dg.DagsterInstance.from_config(str(home))
            try:
                started = time.monotonic()
                daemon_log = home / "daemon.log"
                with daemon_log.open("wb") as log:
                    daemon = subprocess.Popen(
                        [_bin("dagster-daemon"), "run", "-w", str(WORKSPACE)],
                        env=env,
                        cwd=home,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                processes.append(daemon)
                manual_run = str(uuid.uuid4())
                launch = _launch(env, home, manual_run)
                processes.append(launch)
                output, _ = launch.communicate(timeout=120)
                assert launch.returncode == 0, output.decode(errors="replace")[-3000:]
                yield Production(
                    instance=instance,
                    emulator=emu,
                    dagster_url=server.set(database=names["dagster"]).render_as_string(hide_password=False),
                    warehouse_url=warehouse_url,
                    daemon=daemon,
                    daemon_log=daemon_log,
                    manual_run=manual_run,
                    started=started,
                )
            finally:
                for process in processes:
                    _stop_group(process)
                instance.dispose()
    finally:
        dispose_all()
        with admin.connect() as connection:
            for name in names.values():
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_full_sync_runs_through_the_queue_with_each_step_in_its_own_process(production: Production) -> None:
    run_id = production.manual_run
    run = production.wait_for(run_id, production.started + MANUAL_RUN_DEADLINE_S)
    assert run.status == dg.DagsterRunStatus.SUCCESS, production.failure(run_id)

    # The instance is deploy/dagster.yaml's: runs and their events are in PostgreSQL, not in files
    # under DAGSTER_HOME, and the run went through the queue, which the daemon empties one at a time.
    instance = production.instance
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
    assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 1
    dagster_db = sa.create_engine(production.dagster_url)
    try:
        with dagster_db.connect() as connection:
            status = connection.execute(
                sa.text("SELECT status FROM runs WHERE run_id = :id"), {"id": run_id}
            ).scalar_one()
            events = connection.execute(
                sa.text("SELECT count(*) FROM event_logs WHERE run_id = :id"), {"id": run_id}
            ).scalar_one()
    finally:
        dagster_db.dispose()
    assert status == "SUCCESS"
    assert events > 10
    (enqueued,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_ENQUEUED)
    (starting,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_STARTING)
    assert enqueued.timestamp <= starting.timestamp

    # The run worker started each step (extract, canonical, each blocking check, reverse sync) in a
    # process of its own.
    (run_start,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_START)
    step_pids = {
        entry.step_key: entry.dagster_event.pid
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
        if entry.dagster_event is not None
    }
    assert {"extract", "canonical__contacts", "reverse_sync"} <= set(step_pids)
    assert len(set(step_pids.values())) == len(step_pids), step_pids
    assert run_start.dagster_event is not None
    outsiders = {run_start.dagster_event.pid, production.daemon.pid, os.getpid()}
    assert not outsiders & set(step_pids.values()), (outsiders, step_pids)

    # The warehouse holds the golden contacts of the emulator's people and what was pushed to them.
    assert_clusters_match_truth(production.emulator, production.warehouse_url)
    with open_warehouse(production.warehouse_url).connect() as connection:
        contacts = connection.execute(sa.text("SELECT count(*) FROM contacts")).scalar_one()
        sent = connection.execute(
            sa.text(
                "SELECT run_id, destination, record_id FROM push_ledger WHERE status = 'sent' AND NOT dry_run"
            )
        ).all()
    assert contacts == production.emulator.dataset.people
    assert run_id in {row.run_id for row in sent}
    # One write per record the ledger sent to (this run's, and a scheduled run's if one came), no more.
    writes = sorted((write.app, str(write.record_id)) for write in production.emulator.writes())
    assert writes == sorted({(row.destination, str(row.record_id)) for row in sent})


@pytest.mark.slow
@pytest.mark.postgres
def test_daemon_launches_the_schedule_and_stops_cleanly(production: Production) -> None:
    instance = production.instance
    deadline = production.started + SCHEDULED_RUN_DEADLINE_S
    scheduled = dg.RunsFilter(tags={SCHEDULE_TAG: "full_sync_schedule"})
    while True:
        runs = instance.get_runs(filters=scheduled)
        done = [run for run in runs if run.status in FINISHED]
        if done:
            break
        assert time.monotonic() < deadline, f"no scheduled run finished: {runs}\n{production.log_tail()}"
        time.sleep(1)
    for run in done:
        assert run.status == dg.DagsterRunStatus.SUCCESS, production.failure(run.run_id)
        assert run.job_name == "full_sync"
    # A tick that came while a full_sync (the manual run, or an earlier tick's) was queued or running
    # was skipped, and names that run.
    (state,) = [s for s in instance.all_instigator_state() if s.instigator_name == "full_sync_schedule"]
    run_ids = {run.run_id for run in instance.get_runs()}
    for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id):
        if tick.status == TickStatus.SKIPPED:
            named = (tick.skip_reason or "").removeprefix("full_sync run ").split(" is still ")[0]
            assert named in run_ids, tick.skip_reason

    # Manual and scheduled runs never overlapped (the tick often comes while the manual run is going).
    production.wait_for(production.manual_run, deadline)
    spans = sorted(
        (record.start_time, record.end_time)
        for record in instance.get_run_records()
        if record.start_time is not None and record.end_time is not None
    )
    assert len(spans) >= 2
    for (_, end), (start, _) in pairwise(spans):
        assert end <= start, spans

    # SIGTERM stops the daemon with status 0, and nothing it started is left running.
    status = _stop_group(production.daemon)
    assert status == 0, production.log_tail()
    assert not _group_alive(production.daemon.pid)


def test_deploy_files_agree_with_each_other_and_the_workspace() -> None:
    """deploy/dagster.yaml runs locally, deploy/helm/values.yaml renders Dagster's chart: the chart
    writes its own instance file, so the two must ask for the same policy."""
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    workspace = yaml.safe_load(WORKSPACE.read_text())

    queue = values["dagsterDaemon"]["runCoordinator"]
    assert queue["enabled"] is True
    assert queue["type"] == "QueuedRunCoordinator"
    assert instance["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert queue["config"]["queuedRunCoordinator"]["maxConcurrentRuns"] == 1
    assert instance["run_coordinator"]["config"]["max_concurrent_runs"] == 1
    assert (
        values["dagsterDaemon"]["runMonitoring"]["enabled"] is instance["run_monitoring"]["enabled"] is True
    )
    assert values["telemetry"]["enabled"] is instance["telemetry"]["enabled"] is False
    assert (
        values["postgresql"]["postgresqlScheme"] == instance["storage"]["postgres"]["postgres_db"]["scheme"]
    )
    assert values["postgresql"]["enabled"] is False  # an external, backed-up PostgreSQL, not the chart's own

    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    (location,) = workspace["load_from"]
    module = location["python_module"]
    args = deployment["dagsterApiGrpcArgs"]
    assert args[args.index("--module-name") + 1] == module["module_name"]
    assert args[args.index("--attribute") + 1] == module["attribute"]

    # The image holds what the user code deployment runs: every path the Dockerfile copies exists.
    dockerfile = (DEPLOY / "Dockerfile").read_text().splitlines()
    copied = [line.split()[1:-1] for line in dockerfile if line.startswith("COPY ")]
    assert copied
    allowed = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    for sources in copied:
        for source in sources:
            assert (ROOT / source).exists(), source
            assert f"!{source}" in allowed, f"{source} is left out of the build context"
