"""SIGINT and SIGTERM to a real `contact-sync sync`: out within seconds, with the right status, one line
saying what was saved and no traceback; the run canceled in Dagster; and the syncs after it end where
uninterrupted ones end, with no field written twice.

Two emulators generated alike serve the reference and the stopped runs, since pushes change what the
next read sees (as in test_kills). The emulator answers each request 60 ms late while a phase is to be
interrupted, so that it lasts long enough; the rest goes at full speed.
"""

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from connectors.emulator import Emulator, FaultConfig
from models.warehouse.db import dispose_all, open_warehouse
from models.warehouse.tables import ContactActivity, PushLedger, StreamState
from pipelines.runner import run_sync
from tests.pipelines.conftest import CLI, hearing_ctrl_c, settings_for
from tests.proof.snapshot import snapshot
from tests.proof.test_faults import destination_records, write_log
from tests.proof.test_kills import Progress, progress

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SEED, PEOPLE = 43, 100
SLOW = FaultConfig(latency_ms=60)
EXIT_WITHIN_S = 5.0


def start_cli(emu: Emulator, database: Path | str, home: Path) -> subprocess.Popen[str]:
    """`contact-sync sync` on ``database`` (a SQLite file, or a warehouse URL)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DAGSTER_")}
    env.update(
        {
            **emu.env(),
            "DAGSTER_HOME": str(home),  # so the test can read the run's status as the UI shows it
            "CONTACT_SYNC_DATABASE_URL": database if isinstance(database, str) else f"sqlite:///{database}",
            "CONTACT_SYNC_MATON_RPS": "200",
            "CONTACT_SYNC_LINKFLOW_RPS": "200",
        }
    )
    return subprocess.Popen(
        hearing_ctrl_c(CLI, "sync"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_stderr(process: subprocess.Popen[str]) -> tuple[list[str], Callable[[], str]]:
    """Read ``process``'s stderr in a thread, so it never blocks on a full pipe: the lines so far, and
    a call that waits for the rest once the process has ended and gives it all."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr or ()), daemon=True)
    reader.start()

    def ended() -> str:
        reader.join(timeout=5)
        if process.stderr is not None:
            process.stderr.close()
        return "".join(lines)

    return lines, ended


def signal_and_wait(process: subprocess.Popen[str], signum: int) -> tuple[int, float]:
    """Send ``signum``; the exit status and the seconds from the signal to the exit."""
    sent_at = time.monotonic()
    process.send_signal(signum)
    code = process.wait(timeout=60)
    return code, time.monotonic() - sent_at


def stop_when(
    process: subprocess.Popen[str], database: Path, trigger: Callable[[Progress], bool], signum: int
) -> tuple[int, float, str]:
    """Send ``signum`` once ``trigger`` holds of the warehouse; the exit status, the seconds from the
    signal to the exit, and stderr."""
    lines, ended = read_stderr(process)
    started = datetime.now(UTC)
    deadline = time.monotonic() + 120
    while process.poll() is None and not trigger(progress(database, started)):
        assert time.monotonic() < deadline, "the phase to interrupt never came"
        time.sleep(0.02)
    assert process.poll() is None, "the sync ended before the signal:\n" + "".join(lines)
    code, took = signal_and_wait(process, signum)
    return code, took, ended()


def the_line(stderr: str, signame: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith(f"contact-sync: stopped by {signame}")]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def stopped_line(
    instance: dg.DagsterInstance, ended: Callable[[], str], code: int, took: float, signum: int
) -> str:
    """After ``signum``: the command exited with 128 plus it, within `EXIT_WITHIN_S` and without a
    traceback; the one line that says what was saved."""
    instance.dispose()
    stderr = ended()
    assert (code, "Traceback" in stderr) == (128 + signum, False), stderr[-3000:]
    assert took < EXIT_WITHIN_S, took
    return the_line(stderr, signal.Signals(signum).name)


def counts(line: str, kind: str) -> dict[str, int]:
    """``{"complete": 3, "in part": 1, ...}`` of one kind (streams, pushes) in the stop line."""
    part = re.search(rf"{kind} ([^;]*)", line)
    assert part is not None, line
    return {state: int(n) for n, state in re.findall(r"(\d+) (complete|in part|failed|not started)", part[1])}


def dagster_home(tmp_path: Path) -> Path:
    """A DAGSTER_HOME with the project's dagster.yaml, shared by the command and the test."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / ".dagster_home" / "dagster.yaml", home)
    return home


def run_statuses(home: Path) -> list[dg.DagsterRunStatus]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return [run.status for run in instance.get_runs()]


@dataclass(frozen=True)
class Uninterrupted:
    """What a sync nobody stopped left: its warehouse, and the destinations' records and writes."""

    url: str
    records: Any
    writes: Counter[Any]


def uninterrupted(tmp_path: Path, now: datetime) -> Uninterrupted:
    """A sync of an emulator made as the stopped run's is, left to finish, into a SQLite warehouse."""
    with Emulator(seed=SEED, people=PEOPLE, now=now) as clean:
        url = f"sqlite:///{tmp_path / 'reference.db'}"
        assert run_sync(settings_for(clean, url)).success
        return Uninterrupted(url, destination_records(clean), write_log(clean))


def resumes_like(clean: Uninterrupted, emu: Emulator, url: str) -> None:
    """The sync after a stopped one ends where the uninterrupted one did: the same writes, none twice,
    the same destination records, and the same people with the same golden fields."""
    assert run_sync(settings_for(emu, url)).success
    writes = write_log(emu)
    assert {write: n for write, n in writes.items() if n > 1} == {}, "a field was written twice"
    assert writes == clean.writes
    assert destination_records(emu) == clean.records
    actual, expected = snapshot(url), snapshot(clean.url)
    assert actual.clusters == expected.clusters
    assert actual.golden == expected.golden


def test_sigint_in_extract_and_sigterm_in_reverse_sync_stop_at_once_and_converge(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    clean = uninterrupted(tmp_path, now)
    assert clean.writes, "the reference pushed nothing; the push stop would prove nothing"

    home = dagster_home(tmp_path)
    database = tmp_path / "stopped.db"
    with Emulator(seed=SEED, people=PEOPLE, now=now, faults=SLOW) as emu:
        # Ctrl-C as soon as extract has stored its first rows.
        code, took, stderr = stop_when(
            start_cli(emu, database, home), database, lambda now: now.raw > 0, signal.SIGINT
        )
        assert (code, "Traceback" in stderr) == (130, False), stderr[-3000:]
        assert took < EXIT_WITHIN_S
        line = the_line(stderr, "SIGINT")
        assert line.endswith("the next `contact-sync sync` goes on from there"), line
        streams = counts(line, "streams")
        assert (sum(streams.values()), streams["complete"] < 8) == (8, True), line
        assert counts(line, "pushes") == {"complete": 0, "not started": 6}, line
        assert "Ctrl-C again quits at once" in stderr
        with open_warehouse(f"sqlite:///{database}").connect() as connection:
            states = dict(
                connection.execute(
                    sa.select(StreamState.source + "/" + StreamState.object, StreamState.last_status).where(
                        StreamState.stream == "incremental"
                    )
                ).all()
            )
        assert "running" not in states.values(), states  # every stream that started says how it ended
        assert sum(status == "stopped" for status in states.values()) == streams.get("in part", 0), states

        # SIGTERM (a deploy replacing the container) once the pushes are going out.
        emu.set_faults(FaultConfig())

        def pushing(now: Progress) -> bool:
            if now.extract_done == 8:  # slow from here: the pushes last long enough to be stopped in
                emu.set_faults(SLOW)
            return now.sent > 0

        code, took, stderr = stop_when(start_cli(emu, database, home), database, pushing, signal.SIGTERM)
        assert (code, "Traceback" in stderr) == (143, False), stderr[-3000:]
        assert took < EXIT_WITHIN_S
        line = the_line(stderr, "SIGTERM")
        assert counts(line, "streams") == {"complete": 8, "not started": 0}, line
        pushes = counts(line, "pushes")
        assert (sum(pushes.values()), pushes["complete"] < 6) == (6, True), line
        with open_warehouse(f"sqlite:///{database}").connect() as connection:
            left = connection.execute(
                sa.select(PushLedger.status, sa.func.count()).group_by(PushLedger.status)
            ).all()
        assert "planned" not in dict(left), left  # every planned row ended, the unsent ones "unchanged"
        assert run_statuses(home) == [dg.DagsterRunStatus.CANCELED] * 2

        # The next sync ends where the uninterrupted one did.
        emu.set_faults(FaultConfig())
        url = f"sqlite:///{database}"
        resumes_like(clean, emu, url)
    # Raw payloads carry the times our pushes were applied, which differ between the two emulators;
    # which records exist must not.
    actual, expected = snapshot(url), snapshot(clean.url)
    assert {(s, o, i, live) for s, o, i, _, live in actual.raw} == {
        (s, o, i, live) for s, o, i, _, live in expected.raw
    }


def step_started(instance: dg.DagsterInstance, step: str) -> bool:
    """Whether Dagster's event log (as the UI reads it) shows ``step`` started in any run."""
    return any(
        event.step_key == step
        for run in instance.get_runs()
        for event in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
    )


def until(what: str, condition: Callable[[], bool], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.01)


@contextmanager
def warehouse_held(
    url: str, table: str = "contacts", mode: str = "ACCESS EXCLUSIVE"
) -> Iterator[sa.Connection]:
    """Another process's hold on what a step writes: SQLite's write lock for the whole file
    (``BEGIN EXCLUSIVE``, readers still read under WAL), PostgreSQL's lock on ``table`` (by default
    ``contacts``, which nothing before canonical touches) in ``mode`` (``SHARE`` lets reads by)."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("BEGIN EXCLUSIVE" if engine.dialect.name == "sqlite" else "BEGIN")
            if engine.dialect.name == "postgresql":
                connection.exec_driver_sql(f"LOCK TABLE {table} IN {mode} MODE")
            try:
                yield connection
            finally:
                connection.exec_driver_sql("ROLLBACK")
    finally:
        engine.dispose()


def idle(pid: int, seconds: float = 0.5) -> bool:
    """Whether the process used (next to) no CPU for ``seconds``: with its step started and the
    warehouse held, it is waiting for the lock, not still reading and resolving."""

    def ticks() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    before = ticks()
    time.sleep(seconds)
    return ticks() - before <= 2


def lock_waiters(connection: sa.Connection) -> int:
    """PostgreSQL: the other sessions of this database waiting for a lock. The view is read afresh
    each time (within a transaction, as ``connection`` holds its lock, PostgreSQL keeps the first
    reading of the sessions' states until the transaction ends)."""
    connection.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
    return int(
        connection.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        ).scalar_one()
    )


@pytest.mark.parametrize(
    ("backend", "signum"),
    [("sqlite", signal.SIGINT), pytest.param("postgresql", signal.SIGTERM, marks=pytest.mark.postgres)],
)
def test_a_signal_while_identity_resolution_waits_on_the_warehouse_stops_it_at_once(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str, signum: signal.Signals
) -> None:
    """Canonical takes under a second here, so the test holds what it must write (as another process
    could) to keep it inside the step; the stop must end the wait, not sit it out (30 s on SQLite,
    for ever on PostgreSQL)."""
    url = (
        f"sqlite:///{tmp_path / 'stopped.db'}"
        if backend == "sqlite"
        else str(request.getfixturevalue("postgres_schema_url"))
    )
    now = datetime.now(UTC).replace(microsecond=0)
    clean = uninterrupted(tmp_path, now)

    home = dagster_home(tmp_path)
    open_warehouse(url)  # migrated, so the lock has its table before the sync starts
    dispose_all()
    with Emulator(seed=SEED, people=PEOPLE, now=now) as emu:
        process = start_cli(emu, url, home)
        _, ended = read_stderr(process)
        instance = dg.DagsterInstance.from_config(str(home))
        if backend == "postgresql":
            with warehouse_held(url) as held:
                until("canonical started", lambda: step_started(instance, "canonical__contacts"))
                until("canonical waiting on the lock", lambda: lock_waiters(held) > 0)
                code, took = signal_and_wait(process, signum)
        else:
            until("canonical started", lambda: step_started(instance, "canonical__contacts"))
            with warehouse_held(url) as held:
                # Held before canonical wrote anything: it is inside the step, before its one transaction.
                assert held.exec_driver_sql("SELECT count(*) FROM contacts").scalar_one() == 0
                until("canonical waiting on the lock", lambda: idle(process.pid))
                code, took = signal_and_wait(process, signum)
        line = stopped_line(instance, ended, code, took, signum)
        assert counts(line, "streams") == {"complete": 8, "not started": 0}, line
        assert counts(line, "pushes") == {"complete": 0, "not started": 6}, line
        assert run_statuses(home) == [dg.DagsterRunStatus.CANCELED]
        assert write_log(emu) == {}, "nothing may be pushed from a stopped resolution"

        resumes_like(clean, emu, url)


@pytest.mark.postgres
def test_a_signal_while_activity_waits_on_the_warehouse_stops_it_at_once(
    postgres_schema_url: str, tmp_path: Path
) -> None:
    """Another session holds contact_activity against writes from the start (nothing before the
    activity step writes it; reads, the statistics refreshes' among them, go on): the activity step
    waits on it, and a stop ends that wait, where it used to wait until the lock was freed.

    ``SHARE``, not ``ACCESS EXCLUSIVE``: that mode also blocks reading the table's size, so each
    statistics refresh before the step (three) sat out its lock timeout: the step came 4.5 s later;
    `tests/models/warehouse/test_statistics.py` proves they give up."""
    url = postgres_schema_url
    now = datetime.now(UTC).replace(microsecond=0)
    home = dagster_home(tmp_path)
    open_warehouse(url)
    dispose_all()
    with Emulator(seed=SEED, people=PEOPLE, now=now) as emu:
        with warehouse_held(url, "contact_activity", mode="SHARE") as held:
            process = start_cli(emu, url, home)
            _, ended = read_stderr(process)
            instance = dg.DagsterInstance.from_config(str(home))
            until("activity started", lambda: step_started(instance, "canonical__activity"))
            until("activity waiting on the lock", lambda: lock_waiters(held) > 0)
            code, took = signal_and_wait(process, signal.SIGTERM)
        line = stopped_line(instance, ended, code, took, signal.SIGTERM)
        assert counts(line, "pushes") == {"complete": 0, "not started": 6}, line
        assert run_statuses(home) == [dg.DagsterRunStatus.CANCELED]
        assert write_log(emu) == {}, "nothing may be pushed from a stopped run"
        # Nothing of the activity step was kept; the next sync links every event and message.
        with open_warehouse(url).connect() as connection:
            assert connection.execute(sa.select(sa.func.count()).select_from(ContactActivity)).scalar() == 0
        report = run_sync(settings_for(emu, url))
        assert report.success, report.failures
        assert report.assets["canonical/activity"]["activity"] > 0


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("table", "step", "signum"),
    [("raw_records", "extract", signal.SIGTERM), ("push_ledger", "reverse_sync", signal.SIGINT)],
)
def test_a_signal_while_a_threaded_step_waits_on_postgresql_stops_it_at_once(
    postgres_schema_url: str, tmp_path: Path, table: str, step: str, signum: signal.Signals
) -> None:
    """Another session holds ``table`` against writes (reads go on) from the start: the extract's
    first pages, or reverse sync's first plan, wait on it in their sources' threads. A stop used to
    leave those statements waiting until the lock was freed; now each thread's statement still
    waiting a second after the stop is cancelled, the step ends as stopped, and the next sync ends
    where an uninterrupted one does, no field written twice."""
    url = postgres_schema_url
    now = datetime.now(UTC).replace(microsecond=0)
    clean = uninterrupted(tmp_path, now)
    home = dagster_home(tmp_path)
    open_warehouse(url)
    dispose_all()
    with Emulator(seed=SEED, people=PEOPLE, now=now) as emu:
        with warehouse_held(url, table, mode="SHARE") as held:
            process = start_cli(emu, url, home)
            _, ended = read_stderr(process)
            instance = dg.DagsterInstance.from_config(str(home))
            until(f"{step} started", lambda: step_started(instance, step))
            until(f"{step} waiting on the lock", lambda: lock_waiters(held) > 0)
            code, took = signal_and_wait(process, signum)
        line = stopped_line(instance, ended, code, took, signum)
        if step == "extract":
            assert counts(line, "streams")["complete"] < 8, line
        assert counts(line, "pushes")["complete"] == 0, line
        assert run_statuses(home) == [dg.DagsterRunStatus.CANCELED]
        assert write_log(emu) == {}, "nothing may be pushed from a stopped run"
        resumes_like(clean, emu, url)


def test_terminate_from_dagster_stops_a_run_the_command_line_started(tmp_path: Path) -> None:
    """Terminate as the UI does it (the instance's run coordinator, which for a run it did not launch
    can only mark it canceling): the command notices, stops within seconds, and the run ends canceled."""
    home = dagster_home(tmp_path)
    database = tmp_path / "stopped.db"
    now = datetime.now(UTC).replace(microsecond=0)
    with Emulator(seed=SEED, people=PEOPLE, now=now, faults=SLOW) as emu:
        process = start_cli(emu, database, home)
        so_far, ended = read_stderr(process)
        started = datetime.now(UTC)
        until(
            "extract storing rows", lambda: process.poll() is not None or progress(database, started).raw > 0
        )
        assert process.poll() is None, "".join(so_far)[-3000:]
        with dg.DagsterInstance.from_config(str(home)) as instance:
            (run,) = instance.get_runs()
            assert run.status == dg.DagsterRunStatus.STARTED
            sent_at = time.monotonic()
            instance.run_coordinator.cancel_run(run.run_id)
            code = process.wait(timeout=60)
            took = time.monotonic() - sent_at
            stderr = ended()
            assert (code, "Traceback" in stderr) == (1, False), stderr[-3000:]
            assert took < EXIT_WITHIN_S, took
            lines = [line for line in stderr.splitlines() if line.startswith("contact-sync: stopped by ")]
            assert len(lines) == 1, stderr[-3000:]
            assert lines[0].startswith(f"contact-sync: stopped by Terminate in Dagster (run {run.run_id})")
            canceled = instance.get_run_by_id(run.run_id)
            assert canceled is not None
            assert canceled.status == dg.DagsterRunStatus.CANCELED
        assert counts(lines[0], "pushes") == {"complete": 0, "not started": 6}, lines[0]


def test_a_second_ctrl_c_quits_at_once_and_leaves_the_run_canceled_not_started(tmp_path: Path) -> None:
    """The first Ctrl-C waits for the requests in flight (made 5 s slow here); the second quits at once,
    and the run it leaves does not show as started for ever."""
    home = dagster_home(tmp_path)
    database = tmp_path / "stopped.db"
    now = datetime.now(UTC).replace(microsecond=0)
    with Emulator(seed=SEED, people=PEOPLE, now=now, faults=SLOW) as emu:
        process = start_cli(emu, database, home)
        assert process.stderr is not None
        started = datetime.now(UTC)
        until(
            "extract storing rows", lambda: process.poll() is not None or progress(database, started).raw > 0
        )
        emu.set_faults(FaultConfig(latency_ms=5000))  # every request from here on is in flight for 5 s
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        for line in process.stderr:
            if line.startswith("contact-sync: SIGINT: stopping"):
                break
        sent_at = time.monotonic()
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
        took = time.monotonic() - sent_at
        rest = process.stderr.read()
        process.stderr.close()
        emu.set_faults(FaultConfig())
    assert (code, took < 1.5) == (130, True), (took, rest[-3000:])
    assert "contact-sync: quit at once on a second SIGINT" in rest, rest[-3000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
    assert run.status == dg.DagsterRunStatus.CANCELED
