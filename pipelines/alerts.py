"""Alerts: a post to ``CONTACT_SYNC_ALERT_WEBHOOK`` when a sync or an undo fails, through Dagster's own
run-failure sensor, so it works for scheduled runs, runs launched from the UI and CLI runs stored in a
shared ``DAGSTER_HOME`` alike, whenever a daemon is running.

A stream that fails does not stop a sync: the others land, resolution and reverse sync go on, and the
run ends failed naming it. Announcing that every 15 minutes while a source is down would bury the
alerts that matter, so a run whose only failures are streams is announced when one of them starts
failing, and again when one has failed in ``CONTACT_SYNC_ALERT_AFTER_FAILURES`` runs in a row; runs in
between that only repeat a known failure post nothing. Any other failure (a step that broke, a
blocking check, an undo) is announced every time.

The body is Slack's ``{"text": ...}``, which most chat webhooks accept. Its lines come from the run's
own failure lines, which the project keeps free of secrets; every configured credential is scrubbed
from it once more before it leaves.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg
import httpx

from pipelines.settings import Settings

MONITORED_JOBS: tuple[str, ...] = ("full_sync", "undo_push")
SENSOR_NAME = "alert_on_failure"
HISTORY = 100
"""How many of a stream's latest materializations are read to count its failures in a row."""


class AlertDeliveryError(RuntimeError):
    """The webhook did not take the alert; the message names neither its URL nor the body."""


@dataclass(frozen=True)
class StreamFailure:
    """A stream this run failed: its line (``source/object: reason``) and its failures in a row."""

    stream: str
    line: str
    streak: int
    since: datetime | None


@dataclass
class Alert:
    """What one failed run has to say, and whether it is worth a post."""

    job: str
    run_id: str
    streams: list[StreamFailure] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    """Failure lines that are not a stream's: a broken step, a blocking check, the undo's failure."""

    def worth_posting(self, after_failures: int) -> bool:
        """Other failures always; streams only when one starts failing or reaches the threshold."""
        if self.other or not self.streams:
            return True
        return any(failure.streak in (1, after_failures) for failure in self.streams)

    def text(self, settings: Settings) -> str:
        threshold = settings.contact_sync_alert_after_failures
        went_on = bool(self.streams) and not self.other
        header = f"contact-sync: {self.job} run {self.run_id} failed"
        lines = [header + (" (the run went on without the streams below)" if went_on else "")]
        for failure in self.streams:
            note = ""
            if failure.streak >= threshold and failure.streak > 1:
                since = f", since {failure.since:%Y-%m-%d %H:%M} UTC" if failure.since else ""
                note = f" (failed in {failure.streak} consecutive runs{since})"
            lines.append(f"• {failure.line}{note}")
        lines.extend(f"• {line}" for line in self.other)
        if settings.contact_sync_ui_url:
            lines.append(f"{settings.contact_sync_ui_url}/runs/{self.run_id}")
        return scrub("\n".join(lines), settings.secret_values())


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced by stars, longest first (one may contain another)."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, "**********")
    return text


def _status(entry: dg.EventLogEntry) -> str | None:
    materialization = entry.asset_materialization
    if materialization is None:
        return None
    status = materialization.metadata.get("status")
    return str(getattr(status, "value", status)) if status is not None else "succeeded"


def _error(entry: dg.EventLogEntry) -> str:
    materialization = entry.asset_materialization
    error = materialization.metadata.get("error") if materialization is not None else None
    return str(getattr(error, "value", error))


def _streak(instance: dg.DagsterInstance, key: dg.AssetKey, run_id: str) -> tuple[int, datetime | None]:
    """How many runs in a row, ending with ``run_id``, failed this stream, and when the first did.

    Read from the asset's materializations: a failed stream is materialized with ``status = failed``
    so that the run goes on; a run that skipped the source (no credentials) neither breaks nor counts.
    """
    records = instance.fetch_materializations(key, limit=HISTORY).records
    streak, since, reached = 0, None, False
    for record in records:  # newest first
        entry = record.event_log_entry
        reached = reached or entry.run_id == run_id
        if not reached:
            continue
        status = _status(entry)
        if status == "skipped":
            continue
        if status != "failed":
            break
        streak += 1
        since = datetime.fromtimestamp(entry.timestamp, UTC)
    return streak, since


def _step_failure_lines(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The run's own failure lines: each failed step's description (one line per stream or write
    it names), each failed blocking check with why."""
    lines: list[str] = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data if entry.dagster_event else None
        if isinstance(evaluation, dg.AssetCheckEvaluation) and evaluation.blocking and not evaluation.passed:
            lines.append(
                f"blocking check {evaluation.check_name} of {evaluation.asset_key.to_user_string()} "
                f"failed: {evaluation.description}; nothing was pushed"
            )
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        data = entry.dagster_event.step_failure_data if entry.dagster_event else None
        if data is None:
            continue
        if data.error is not None and data.error.cls_name == "DagsterAssetCheckFailedError":
            continue  # said above, with the check's reason
        if data.user_failure_data is not None and data.user_failure_data.description:
            lines.extend(data.user_failure_data.description.splitlines())
        elif data.error is not None:
            message = data.error.message.strip().splitlines()
            lines.append(f"step {entry.step_key}: {message[0] if message else data.error.cls_name}")
    return [line for line in lines if line.strip()]


def describe_failure(instance: dg.DagsterInstance, run: dg.DagsterRun, failure_message: str) -> Alert:
    """What went wrong in ``run``, from its event log: the streams it failed (each with its failures
    in a row) and any other failure line; the run's own failure message when no step says more."""
    alert = Alert(job=run.job_name, run_id=run.run_id)
    stream_lines: set[str] = set()
    for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.asset_materialization
        if materialization is None or _status(entry) != "failed":
            continue
        line = _error(entry)
        streak, since = _streak(instance, materialization.asset_key, run.run_id)
        name = materialization.asset_key.to_user_string()
        alert.streams.append(StreamFailure(stream=name, line=line, streak=streak, since=since))
        stream_lines.add(line)
    alert.other = [line for line in _step_failure_lines(instance, run.run_id) if line not in stream_lines]
    if not alert.streams and not alert.other:
        first = failure_message.strip().splitlines()
        alert.other.append(first[0] if first else "the run failed before any step ran")
    return alert


def post_alert(url: str, text: str) -> None:
    """POST ``{"text": text}`` to ``url``; raise :class:`AlertDeliveryError` when it is not taken."""
    try:
        response = httpx.post(url, json={"text": text}, timeout=10.0)
    except httpx.HTTPError as exc:
        raise AlertDeliveryError(f"the alert webhook did not answer ({type(exc).__name__})") from None
    if response.status_code >= 300:
        raise AlertDeliveryError(f"the alert webhook answered {response.status_code}")


def build_alert_sensor(settings: Settings) -> dg.SensorDefinition | None:
    """The run-failure sensor that posts alerts, or None when ``CONTACT_SYNC_ALERT_WEBHOOK`` is unset.

    It watches every run of the instance (``monitor_all_code_locations``), not only those launched
    from this code location, so that a ``contact-sync sync`` run stored in the shared ``DAGSTER_HOME``
    is announced too; runs of other jobs are passed over.
    """
    url = settings.alert_webhook()
    if url is None:
        return None

    @dg.run_failure_sensor(
        name=SENSOR_NAME,
        monitor_all_code_locations=True,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Posts to CONTACT_SYNC_ALERT_WEBHOOK when a full_sync or undo_push run fails "
        "(a stream that keeps failing: when it starts and after CONTACT_SYNC_ALERT_AFTER_FAILURES runs).",
    )
    def alert_on_failure(context: dg.RunFailureSensorContext) -> None:
        run = context.dagster_run
        if run.job_name not in MONITORED_JOBS:
            return
        alert = describe_failure(context.instance, run, context.failure_event.message or "")
        if not alert.worth_posting(settings.contact_sync_alert_after_failures):
            context.log.info(f"run {run.run_id}: its failed streams were already announced; no alert")
            return
        post_alert(url, alert.text(settings))
        context.log.info(f"run {run.run_id}: alert posted")

    return alert_on_failure
