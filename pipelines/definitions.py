"""The one Dagster code location: assets, the ``full_sync`` job, its schedule and the resources.

``workspace.yaml`` loads ``defs`` from here; the CLI builds the same object, so a run started from
the command line is the run the schedule would have made.
"""

from datetime import UTC, datetime
from typing import Any

import dagster as dg

from pipelines.alerts import build_alert_sensor
from pipelines.canonical import canonical_assets, canonical_checks_defs
from pipelines.extract import backfill_assets, extract_assets
from pipelines.logs import LOGGERS
from pipelines.overlap import one_writer_on_sqlite
from pipelines.progress import NO_PROGRESS, ProgressObserver
from pipelines.resources import RunOptionsResource, WarehouseResource, settings_resource
from pipelines.reverse_sync import reverse_sync_assets
from pipelines.settings import Settings, load_settings
from pipelines.undo import undo_push_job

STEP_SERVER_PRELOAD = "pipelines.step_server"
"""The module the step processes' server imports before it forks them: this one, out of the cycle
collector's way."""


def _forked(config: dict[str, Any]) -> dict[str, Any]:
    """The run's executor settings, with step processes forked from a server preloading this module
    (through `STEP_SERVER_PRELOAD`), and on SQLite activity and reverse sync one at a time
    (`pipelines.overlap`) unless the run's own tag limits name that tag."""
    limits = list(config.get("tag_concurrency_limits") or [])
    named = {limit.get("key") for limit in limits}
    limits += [
        ours for ours in one_writer_on_sqlite(load_settings().database_url) if ours["key"] not in named
    ]
    return {
        **config,
        "tag_concurrency_limits": limits,
        "start_method": {"forkserver": {"preload_modules": [STEP_SERVER_PRELOAD]}},
    }


def _settings_but_start() -> dict[str, Any]:
    """Every run-config setting of Dagster's multiprocess executor (``max_concurrent``, ``retries``,
    ...) but how its processes start, which ``_forked`` sets."""
    shape: Any = dg.multiprocess_executor.config_schema.as_field().config_type
    return {name: field for name, field in shape.fields.items() if name != "start_method"}


STEP_PROCESSES = dg.multiprocess_executor.configured(
    _forked, name="step_processes", config_schema=_settings_but_start()
)
"""Each step of a run launched through an instance (schedule, UI, `dagster job launch`) in a process of
its own, forked from a server process that imported this code location once for the run.

Started the default way (``spawn``), every step process was a new interpreter importing Dagster,
pandas and the project again, about 2 s each before its first line of work, for seven steps
(extract, canonical, three checks, activity, reverse sync). After a 1% change of 2,000 people a run
took 23.4 and 25.1 s, 15.7 and 16.2 s of it steps starting; forked from the preloaded server, 13.8
and 14.3 s, 5.5 and 6.2 s starting (the first step waits for the server's imports, 2.3 to 2.5 s,
the others about 0.5 s each; `bench/scheduled_run.py`). Most of a later step's 0.5 s was opening the
instance, which the server now does ahead (`pipelines.instance_warmup`): 0.22 to 0.34 s a step on a
machine state where it had been 0.48 to 0.83 s. The CLI's `execute_in_process` swaps in the
in-process executor and stays one process."""

full_sync_job = dg.define_asset_job(
    name="full_sync",
    selection=dg.AssetSelection.groups("extract", "canonical", "reverse_sync"),
    description="One cycle: incremental extract of the enabled sources, identity resolution, reverse sync.",
    executor_def=STEP_PROCESSES,
)


#: Statuses of a run that has not finished: while a ``full_sync`` is in one, a tick starts nothing.
UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def build_schedule(cron: str) -> dg.ScheduleDefinition:
    """``full_sync`` on ``cron``, skipping a tick while an earlier ``full_sync`` has not finished.

    Without the skip, ticks of a run longer than the interval (a first sync of a big account takes
    hours) pile up in the queue and then run back to back, each finding almost nothing new, and a
    run started meanwhile from the CLI would have the scheduled one refused stream by stream.
    """

    @dg.schedule(
        name="full_sync_schedule",
        job=full_sync_job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="The full sync on CONTACT_SYNC_CRON; a tick is skipped while a full_sync is queued "
        "or running.",
    )
    def full_sync_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        records = context.instance.get_run_records(
            dg.RunsFilter(job_name=full_sync_job.name, statuses=UNFINISHED), limit=1
        )
        if not records:
            return dg.RunRequest()
        record = records[0]
        since = datetime.fromtimestamp(record.start_time or record.create_timestamp.timestamp(), UTC)
        return dg.SkipReason(
            f"full_sync run {record.dagster_run.run_id} is still "
            f"{record.dagster_run.status.value.lower()} (since {since:%Y-%m-%d %H:%M} UTC); this tick "
            "starts nothing. If that run is dead, terminate it in the UI and the next tick runs."
        )

    return full_sync_schedule


def build_definitions(
    settings: Settings,
    *,
    full_refresh_sources: tuple[str, ...] = (),
    progress: ProgressObserver = NO_PROGRESS,
) -> dg.Definitions:
    """The definitions for ``settings``: the schedule's cron and the resources come from them.

    ``progress`` hears each stream's pages; only the CLI's terminal display passes one (a run in
    the code location reports to nothing, its log lines and the UI say the rest).
    """
    schedule = build_schedule(settings.contact_sync_cron)
    # Dagster's own freshness policy is red when no run has materialized the asset for the window: the
    # schedule stopped, the daemon is down, a run hangs. A stream that runs but fails is still
    # materialized (status "failed", so the run goes on), which the extract step's own freshness
    # check, read from the stream's last success, covers.
    policy = dg.FreshnessPolicy.time_window(fail_window=settings.freshness_window())
    extract_fresh = [
        asset.map_asset_specs(lambda spec: spec.replace_attributes(freshness_policy=policy))
        for asset in extract_assets
    ]
    alert_sensor = build_alert_sensor(settings)  # None when CONTACT_SYNC_ALERT_WEBHOOK is unset
    return dg.Definitions(
        assets=[*extract_fresh, *backfill_assets, *canonical_assets, *reverse_sync_assets],
        asset_checks=canonical_checks_defs,
        jobs=[full_sync_job, undo_push_job],
        schedules=[schedule],
        sensors=[alert_sensor] if alert_sensor is not None else [],
        resources={
            "sync_settings": settings_resource(settings),
            "run_options": RunOptionsResource(full_refresh_sources=list(full_refresh_sources)),
            "warehouse": WarehouseResource(database_url=settings.database_url),
            "progress": progress,
        },
        # Dagster's console logger (minus the stack traces it prints when a run is stopped on purpose)
        # and the file logger the CLI's live display sends the log lines to.
        loggers=LOGGERS,
    )


defs = build_definitions(load_settings())
