"""The one Dagster code location: assets, the ``full_sync`` job, its schedule and the resources.

``workspace.yaml`` loads ``defs`` from here; the CLI builds the same object, so a run started from
the command line is the run the schedule would have made.
"""

import dagster as dg

from pipelines.canonical import canonical_assets, canonical_checks_defs
from pipelines.extract import backfill_assets, extract_assets
from pipelines.logs import LOGGERS
from pipelines.progress import NO_PROGRESS, ProgressObserver
from pipelines.resources import RunOptionsResource, WarehouseResource, settings_resource
from pipelines.reverse_sync import reverse_sync_assets
from pipelines.settings import Settings, load_settings
from pipelines.undo import undo_push_job

full_sync_job = dg.define_asset_job(
    name="full_sync",
    selection=dg.AssetSelection.groups("extract", "canonical", "reverse_sync"),
    description="One cycle: incremental extract of the enabled sources, identity resolution, reverse sync.",
    # Launched through an instance (schedule, UI, `dagster job launch`), each step runs in a process of
    # its own; the CLI's `execute_in_process` swaps in the in-process executor and stays one process.
    executor_def=dg.multiprocess_executor,
)


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
    schedule = dg.ScheduleDefinition(
        name="full_sync_schedule",
        job=full_sync_job,
        cron_schedule=settings.contact_sync_cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    return dg.Definitions(
        assets=[*extract_assets, *backfill_assets, *canonical_assets, *reverse_sync_assets],
        asset_checks=canonical_checks_defs,
        jobs=[full_sync_job, undo_push_job],
        schedules=[schedule],
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
