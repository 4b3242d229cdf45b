"""Running the ``full_sync`` job from Python, as the CLI and the demo do, and summarising what it did.

Every command that moves data goes through the same Dagster job the schedule runs; with a shared
``DAGSTER_HOME`` the run is stored in that instance and shows in the UI.
"""

import logging
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from connectors.stop import STOP
from models.warehouse.db import open_warehouse
from models.warehouse.locks import source_lock
from pipelines.dagster_home import ensure_dagster_home
from pipelines.definitions import build_definitions
from pipelines.first_use import build_in_background
from pipelines.heap import freeze_long_lived
from pipelines.logs import LOGGERS, run_loggers
from pipelines.progress import NO_PROGRESS, ProgressObserver
from pipelines.settings import Settings
from pipelines.stopping import TERMINATED, is_interrupt
from pipelines.streams import STREAMS

SYNC_BUSY = "another sync is running on this warehouse; try again when it ends"


@dataclass
class SyncReport:
    """What one run did, per asset, from the metadata its materializations carried."""

    run_id: str
    success: bool
    assets: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    stopped: bool = False
    """The run was asked to stop and ended canceled; ``assets`` holds what it finished or left in part."""
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each asset check's metadata, by check name."""
    expected: list[str] = field(default_factory=list)
    """The assets the run set out to materialize (enabled streams, then pushes): those a stopped run
    did not reach were not started."""

    def saved(self) -> str:
        """What a stopped run saved, by kind: ``streams 3 complete, 1 in part (x), 4 not started; ...``."""
        kinds: dict[str, list[str]] = {}
        for name in self.expected:
            kind = name.partition("/")[0]
            if kind == "reverse_sync":
                kinds.setdefault("pushes", []).append(name)
            elif kind == "backfill":
                kinds.setdefault("backfills", []).append(name)
            else:
                kinds.setdefault("streams", []).append(name)
        return "; ".join(f"{kind} {self._progress(names)}" for kind, names in kinds.items())

    def _progress(self, names: Sequence[str]) -> str:
        by_state: dict[str, list[str]] = {"complete": [], "in part": [], "failed": [], "not started": []}
        for name in names:
            meta = self.assets.get(name)
            status = None if meta is None else meta.get("status")
            if status == "skipped":
                continue
            state = {None: "complete", "stopped": "in part", "failed": "failed"}.get(status, "complete")
            short = name.removeprefix("reverse_sync/").removeprefix("backfill/")
            by_state["not started" if meta is None else state].append(short)
        return ", ".join(
            f"{len(found)} {state}" + (f" ({', '.join(found)})" if state in ("in part", "failed") else "")
            for state, found in by_state.items()
            if found or state in ("complete", "not started")
        )

    def lines(self) -> list[str]:
        """The short human summary the CLI prints."""
        out = [f"run {self.run_id}: {'succeeded' if self.success else 'FAILED'}"]
        for line in self.skipped:
            out.append(f"  {line}")
        for stream in STREAMS:
            meta = self.assets.get(stream.name)
            if meta is None or meta.get("status") == "skipped":
                continue
            out.append(
                f"  {stream.name}: read {meta.get('rows_read', 0)}, new {meta.get('rows_inserted', 0)}, "
                f"changed {meta.get('rows_updated', 0)}, deleted {meta.get('rows_deleted', 0)}, "
                f"requests {meta.get('requests', 0)}"
            )
        canonical = self.assets.get("canonical/contacts")
        if canonical is not None:
            out.append(
                f"  golden contacts {canonical.get('contacts', 0)}, merges {canonical.get('merges', 0)}, "
                f"quarantined {canonical.get('quarantined', 0)}"
            )
        pushes = [meta for name, meta in self.assets.items() if name.startswith("reverse_sync/")]
        if pushes:
            totals = {
                key: sum(int(meta.get(key, 0) or 0) for meta in pushes)
                for key in ("planned", "sent", "failed", "unconfirmed")
            }
            line = f"  pushes planned {totals['planned']}, done {totals['sent']}, failed {totals['failed']}"
            # The rest: a record deleted at the destination since the extract, a create held back, a
            # row parked after its attempts or left by a stop; `push_ledger.error` says which.
            rest = totals["planned"] - totals["sent"] - totals["failed"] - totals["unconfirmed"]
            line += f", unconfirmed {totals['unconfirmed']}" if totals["unconfirmed"] else ""
            out.append(line + (f", not sent {rest}" if rest > 0 else ""))
        out.extend(f"  error: {failure}" for failure in self.failures)
        return out


@contextmanager
def cli_instance(instance: dg.DagsterInstance | None = None) -> Iterator[dg.DagsterInstance]:
    """``instance`` if given; else the one ``DAGSTER_HOME`` names (so the UI sees the run), else a
    throwaway one that is cleaned up afterwards. A ``DAGSTER_HOME`` folder that does not exist yet is
    made (:func:`ensure_dagster_home`), where Dagster would stop with a traceback."""
    if instance is not None:
        yield instance
    elif ensure_dagster_home()[0] is not None:
        with dg.DagsterInstance.get() as shared:
            yield shared
    else:
        with dg.DagsterInstance.ephemeral() as throwaway:
            yield throwaway


TERMINATE_POLL_S = 0.5
"""How often a run executing in this process looks for a Terminate from the UI (or the API)."""


@contextmanager
def heeding_terminate(instance: dg.DagsterInstance, run_id: str) -> Iterator[None]:
    """While run ``run_id`` executes in this process: a Terminate from outside stops it.

    Dagster terminates a run through the process that launched it; a run executing inside our own
    command (`contact-sync sync`, `backfill`) has no such process, so Terminate in the UI only marks
    it canceling (and "force" marks it canceled) while the command would go on to the end. So a thread
    reads the run's status from the instance every `TERMINATE_POLL_S` and, once it is canceling or
    canceled, sets the stop flag: the run then stops as after Ctrl-C and ends canceled. A throwaway
    instance is nobody else's to terminate from.
    """
    if instance.is_ephemeral:
        yield
        return
    done = threading.Event()
    _RUNNING[run_id] = instance

    def watch() -> None:
        while not done.wait(TERMINATE_POLL_S):
            try:
                run = instance.get_run_by_id(run_id)
            except Exception as exc:  # a busy run storage: look again at the next tick
                logging.getLogger(__name__).debug("terminate watch: %s", exc)
                run = None
            if run is not None and run.status in _TERMINATED_STATUSES:
                STOP.request(TERMINATED)
                return

    watcher = threading.Thread(target=watch, name="contact-sync-terminate-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        _RUNNING.pop(run_id, None)
        done.set()
        watcher.join(timeout=5)


_RUNNING: dict[str, dg.DagsterInstance] = {}
"""The runs executing in this process on a lasting instance (one the UI shows), by run id."""


def cancel_running(message: str, within_s: float = 0.5) -> None:
    """Mark the runs executing in this process canceled, for a process about to quit at once (a second
    Ctrl-C): left alone they would show as started for ever. Gives up after ``within_s`` (a run
    storage busy with the run's own events must not hold the quit up)."""

    def mark() -> None:
        for run_id, instance in list(_RUNNING.items()):
            run = instance.get_run_by_id(run_id)
            if run is not None and not run.is_finished:
                instance.report_run_canceled(run, message=message)

    marker = threading.Thread(target=mark, name="contact-sync-cancel-runs", daemon=True)
    marker.start()
    marker.join(within_s)


_TERMINATED_STATUSES = (dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.CANCELED)


def _metadata_values(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {key: getattr(value, "value", value) for key, value in metadata.items()}


def _report(
    result: dg.ExecuteInProcessResult, skipped: Iterable[str], expected: Sequence[str] = ()
) -> SyncReport:
    report = SyncReport(
        run_id=result.run_id,
        success=result.success,
        skipped=list(skipped),
        stopped=result.dagster_run.status == dg.DagsterRunStatus.CANCELED,
        expected=list(expected),
    )
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        name = "/".join(materialization.asset_key.path)
        report.assets[name] = _metadata_values(materialization.metadata)
    # A failed blocking check fails its step with Dagster's own error, which names no check and
    # says nothing of why; the check's evaluation says both.
    for evaluation in result.get_asset_check_evaluations():
        report.checks[evaluation.check_name] = _metadata_values(evaluation.metadata)
        if evaluation.blocking and not evaluation.passed:
            report.failures.append(
                f"blocking check {evaluation.check_name} of {evaluation.asset_key.to_user_string()} "
                f"failed: {evaluation.description}; nothing was pushed"
            )
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        if data.error is not None and data.error.cls_name == "DagsterAssetCheckFailedError":
            continue
        if data.error is not None and is_interrupt(data.error.cls_name):  # a stop, not a failure
            continue
        if data.user_failure_data is not None and data.user_failure_data.description:
            report.failures.extend(data.user_failure_data.description.splitlines())
        elif data.error is not None:
            report.failures.append(data.error.message.strip().splitlines()[0])
        else:
            report.failures.append("unknown error")
    return report


def run_sync(
    settings: Settings,
    *,
    sources: Sequence[str] = (),
    dry_run: bool = False,
    full_refresh: bool = False,
    instance: dg.DagsterInstance | None = None,
    progress: ProgressObserver = NO_PROGRESS,
    loggers: Mapping[str, Any] | None = None,
) -> SyncReport:
    """One full cycle through Dagster; ``sources`` narrows it, as ``--source`` does.

    ``progress`` hears each stream's pages (the CLI's terminal display); ``loggers`` is the run
    config's ``loggers`` section (default: the console at INFO; see ``pipelines.logs.run_loggers``).

    The run holds the warehouse's sync lock throughout, and raises ``SourceBusyError`` (its message
    is the line to show) when another sync holds it. Two syncs started together would otherwise each
    take some streams' locks, refuse the others and stop before identity resolution: neither would
    finish, and their resolutions and pushes could interleave.
    """
    if sources:
        settings = settings.model_copy(update={"contact_sync_sources": ",".join(dict.fromkeys(sources))})
    if dry_run:
        settings = settings.model_copy(update={"contact_sync_push": "dry-run"})
    # The switches go into the resources themselves: run config for a resource would replace every
    # value it was built with (secrets and settings included), not just the keys it names.
    refresh = tuple(sources or settings.requested_sources()) if full_refresh else ()
    job = build_definitions(settings, full_refresh_sources=refresh, progress=progress).resolve_job_def(
        "full_sync"
    )
    run_config: dict[str, Any] = {"loggers": dict(loggers or run_loggers())}
    run_id = str(uuid.uuid4())  # known before the run starts, for the terminate watch
    freeze_long_lived()  # the first run of a process: its collections skip what the imports left
    build_in_background()  # while the extract waits on the APIs, not inside identity resolution
    with (
        source_lock(open_warehouse(settings.database_url), "sync", busy=SYNC_BUSY),
        cli_instance(instance) as chosen,
        heeding_terminate(chosen, run_id),
    ):
        result = job.execute_in_process(
            run_config=run_config,
            instance=chosen,
            raise_on_error=False,
            run_id=run_id,
            tags={"contact_sync/trigger": "cli"},
        )
        return _report(result, settings.skipped_sources().values(), _expected(settings))


def _expected(settings: Settings) -> list[str]:
    """The assets a sync with ``settings`` sets out to materialize: each enabled stream, then each
    writable one's push unless pushes are off."""
    enabled = [stream for stream in STREAMS if stream.source in settings.enabled_sources()]
    pushes = [] if settings.push == "off" else [f"reverse_sync/{s.name}" for s in enabled if s.writable]
    return [stream.name for stream in enabled] + pushes


def run_backfill(
    settings: Settings,
    *,
    source: str,
    objects: Sequence[str],
    first_day: str,
    last_day: str,
    instance: dg.DagsterInstance | None = None,
    progress: ProgressObserver = NO_PROGRESS,
    loggers: Mapping[str, Any] | None = None,
) -> SyncReport:
    """Materialize ``backfill/<source>/<object>`` over the days [first_day, last_day], as one run."""
    from pipelines.extract import backfill_assets

    keys = [dg.AssetKey(["backfill", source, obj]) for obj in objects]
    selected = [asset for asset in backfill_assets if asset.key in keys]
    # As dg.materialize builds its job, with the loggers the CLI may choose from (the console one quiet
    # about a stop asked for).
    job = dg.Definitions(
        assets=selected,
        jobs=[dg.define_asset_job("backfill", selection=keys)],
        resources=build_definitions(settings, progress=progress).resources,
        loggers=LOGGERS,
    ).resolve_job_def("backfill")
    run_id = str(uuid.uuid4())  # known before the run starts, for the terminate watch
    with cli_instance(instance) as chosen, heeding_terminate(chosen, run_id):
        result = job.execute_in_process(
            instance=chosen,
            raise_on_error=False,
            run_id=run_id,
            run_config={"loggers": dict(loggers or run_loggers())},
            tags={
                "dagster/asset_partition_range_start": first_day,
                "dagster/asset_partition_range_end": last_day,
                "contact_sync/trigger": "cli-backfill",
            },
        )
        return _report(result, (), ["/".join(key.path) for key in keys])


def run_undo(
    settings: Settings, run_id: str, *, dry_run: bool = False, instance: dg.DagsterInstance | None = None
) -> SyncReport:
    """Run the ``undo_push`` job for ``run_id``; the report's ``assets["undo"]`` holds its counts."""
    job = build_definitions(settings).resolve_job_def("undo_push")
    run_config: dict[str, Any] = {
        "loggers": {"console": {"config": {"log_level": "INFO"}}},
        "ops": {"undo_writes": {"config": {"run_id": run_id, "dry_run": dry_run}}},
    }
    with cli_instance(instance) as chosen:
        result = job.execute_in_process(
            run_config=run_config,
            instance=chosen,
            raise_on_error=False,
            tags={"contact_sync/trigger": "cli-undo"},
        )
        report = _report(result, ())
        if result.success:  # the counts travel as the op output's metadata
            for event in result.all_node_events:
                if event.is_successful_output and event.step_output_data.metadata:
                    report.assets["undo"] = _metadata_values(event.step_output_data.metadata)
        return report
