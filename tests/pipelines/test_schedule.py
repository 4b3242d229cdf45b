"""The schedule skips a tick while a full_sync has not finished, and says so in the tick's reason."""

import dagster as dg
from dagster._core.definitions.schedule_definition import ScheduleExecutionData
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.utils import make_new_run_id

from pipelines.definitions import build_definitions
from pipelines.settings import load_settings

LOCATION = InProcessCodeLocationOrigin(
    LoadableTargetOrigin(module_name="pipelines.definitions", attribute="defs"), location_name="contact_sync"
)


def _run(instance: dg.DagsterInstance, job_name: str, status: dg.DagsterRunStatus) -> dg.DagsterRun:
    """A run of ``job_name`` as the daemon's queue stores one (a queued run names its code location)."""
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(LOCATION, "__repository__"), job_name)
    run = dg.DagsterRun(job_name=job_name, run_id=make_new_run_id(), status=status, remote_job_origin=origin)
    return instance.add_run(run)


def _tick(schedule: dg.ScheduleDefinition, instance: dg.DagsterInstance) -> ScheduleExecutionData:
    return schedule.evaluate_tick(dg.build_schedule_context(instance=instance))


def test_a_tick_is_skipped_while_a_full_sync_is_queued_or_running() -> None:
    schedule = build_definitions(load_settings()).resolve_schedule_def("full_sync_schedule")
    with dg.instance_for_test() as instance:
        for status in (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTED):
            other = _run(instance, "undo_push", status)
            assert _tick(schedule, instance).run_requests  # another job's run does not hold the schedule
            instance.report_run_failed(other)

            run = _run(instance, "full_sync", status)
            skipped = _tick(schedule, instance)
            assert not skipped.run_requests
            assert skipped.skip_message is not None
            assert skipped.skip_message.startswith(
                f"full_sync run {run.run_id} is still {status.value.lower()} (since "
            )

            instance.report_run_failed(run)  # finished: the next tick runs
            again = _tick(schedule, instance)
            assert again.run_requests is not None
            assert len(again.run_requests) == 1
