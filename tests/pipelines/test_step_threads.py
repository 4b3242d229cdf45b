"""A command-line run's steps in threads: the steps that do not wait for each other overlap, and a step
that fails or stops still ends the run only once every other step has ended."""

import threading
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest

from connectors.emulator import Emulator
from pipelines.overlap import WAREHOUSE_WRITER_TAG, one_writer_on_sqlite
from pipelines.runner import run_sync
from pipelines.step_threads import execute_in_threads
from tests.pipelines.conftest import settings_for
from tests.pipelines.test_step_processes import step_spans


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@pytest.mark.parametrize("warehouse", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_cli_sync_runs_the_checks_together_then_activity_beside_reverse_sync_but_on_sqlite(
    emulator: Emulator, warehouse: str, request: pytest.FixtureRequest
) -> None:
    """The whole job, as `contact-sync sync` runs it: extract, then canonical, each alone; the three
    blocking checks at once; then activity and reverse sync, at once on PostgreSQL and one after the
    other on SQLite, whose one writer at a time they would otherwise queue on (`pipelines.overlap`).
    A second run writes nothing, as one step after another did."""
    url = request.getfixturevalue("sqlite_url" if warehouse == "sqlite" else "postgres_schema_url")
    settings = settings_for(emulator, url)
    with dg.DagsterInstance.ephemeral() as instance:
        report = run_sync(settings, instance=instance)
        assert report.success, report.failures
        spans = step_spans(instance, report.run_id)
    checks = [key for key in spans if key.startswith("canonical__contacts_")]
    assert len(checks) == 3
    assert set(spans) == {"extract", "canonical__contacts", "canonical__activity", "reverse_sync", *checks}
    assert spans["extract"][1] <= spans["canonical__contacts"][0]
    assert all(spans["canonical__contacts"][1] <= spans[check][0] for check in checks)
    assert all(_overlap(spans[checks[0]], spans[other]) for other in checks[1:])
    last_check = max(spans[check][1] for check in checks)
    assert last_check <= spans["canonical__activity"][0]
    assert last_check <= spans["reverse_sync"][0]
    assert _overlap(spans["canonical__activity"], spans["reverse_sync"]) == (warehouse == "postgresql")

    emulator.reset_counters()
    again = run_sync(settings)
    assert again.success, again.failures
    assert not [key for key in emulator.request_counts() if not key[1].startswith("GET ")]


def _two_step_job(marker: Path, release: threading.Event) -> dg.JobDefinition:
    """``fails`` raises once ``slow`` has started; ``slow`` writes ``marker`` when it is released;
    ``after`` needs ``fails`` and must be skipped."""

    @dg.op
    def slow() -> None:
        release.wait(5)
        time.sleep(0.2)
        marker.write_text("finished")

    @dg.op
    def fails() -> int:
        release.set()
        raise RuntimeError("this step fails on purpose")

    @dg.op
    def after(value: int) -> None:
        marker.with_suffix(".after").write_text("ran")

    @dg.job
    def two_steps() -> None:
        slow()
        after(fails())

    return two_steps


def test_a_failing_step_ends_the_run_failed_after_the_step_beside_it_has_finished(tmp_path: Path) -> None:
    marker = tmp_path / "slow"
    job = _two_step_job(marker, threading.Event())
    with dg.DagsterInstance.ephemeral() as instance:
        result = execute_in_threads(job, run_config={}, instance=instance, run_id=str(uuid.uuid4()), tags={})
    assert not result.success
    assert marker.read_text() == "finished"
    assert not marker.with_suffix(".after").exists()
    failed = [event for event in result.all_events if event.is_step_failure]
    assert [event.step_key for event in failed] == ["fails"]
    assert "this step fails on purpose" in str(failed[0].step_failure_data.error)
    started = {event.step_key for event in result.all_events if event.is_step_start}
    assert started == {"slow", "fails"}


@pytest.mark.parametrize("max_concurrent", [1, 2])
def test_max_concurrent_bounds_the_steps_running_at_once(max_concurrent: int) -> None:
    running = 0
    most = 0
    lock = threading.Lock()

    def body() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.15)
        with lock:
            running -= 1

    ops = [dg.op(name=f"step_{n}")(body) for n in range(4)]

    @dg.job
    def four() -> None:
        for op in ops:
            op()

    with dg.DagsterInstance.ephemeral() as instance:
        result = execute_in_threads(
            four,
            run_config={},
            instance=instance,
            run_id=str(uuid.uuid4()),
            tags={},
            max_concurrent=max_concurrent,
        )
    assert result.success
    assert most == max_concurrent


def test_tag_limits_keep_the_tagged_steps_apart_and_leave_the_others_free() -> None:
    spans: dict[str, tuple[float, float]] = {}

    def body(context: dg.OpExecutionContext) -> None:
        started = time.monotonic()
        time.sleep(0.15)
        spans[context.op.name] = (started, time.monotonic())

    writers = [dg.op(name=f"writer_{n}", tags={WAREHOUSE_WRITER_TAG: str(n)})(body) for n in range(2)]
    readers = [dg.op(name=f"reader_{n}")(body) for n in range(2)]

    @dg.job
    def mixed() -> None:
        for op in [*writers, *readers]:
            op()

    with dg.DagsterInstance.ephemeral() as instance:
        result = execute_in_threads(
            mixed,
            run_config={},
            instance=instance,
            run_id=str(uuid.uuid4()),
            tags={},
            tag_concurrency_limits=one_writer_on_sqlite("sqlite:///warehouse.db"),
        )
    assert result.success
    assert not _overlap(spans["writer_0"], spans["writer_1"])
    assert _overlap(spans["reader_0"], spans["reader_1"])
