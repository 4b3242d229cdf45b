"""Each extract asset's freshness: the check goes red when its stream has gone too long without a
successful extract (a run that goes on with the stream failed still materializes it), green again
once it succeeds; Dagster's freshness policy on the asset covers runs that never come."""

from datetime import timedelta

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from connectors.emulator import Emulator
from models.warehouse.db import open_warehouse
from models.warehouse.tables import StreamState, utcnow
from pipelines.definitions import build_definitions
from pipelines.extract import FRESHNESS_CHECK
from pipelines.runner import SyncReport, run_sync
from pipelines.settings import load_settings
from tests.pipelines.conftest import settings_for

BIGIN = dg.AssetCheckKey(dg.AssetKey(["zoho_bigin", "contact"]), FRESHNESS_CHECK)


def _latest(instance: dg.DagsterInstance, check: dg.AssetCheckKey = BIGIN) -> tuple[bool, str]:
    """The check's latest evaluation as stored in the instance: passed, and its description."""
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key([check])[check]
    assert record.event is not None
    assert record.event.dagster_event is not None
    evaluation = record.event.dagster_event.event_specific_data
    assert isinstance(evaluation, dg.AssetCheckEvaluation)
    passed = record.status == AssetCheckExecutionRecordStatus.SUCCEEDED
    assert passed is evaluation.passed
    return passed, evaluation.description or ""


def test_the_check_goes_red_when_a_stream_has_not_succeeded_within_the_limit(
    emulator: Emulator, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(emulator, sqlite_url, contact_sync_sources="zoho_bigin")

    def sync(key_works: bool) -> SyncReport:
        # Runs read their credentials from the environment, as a scheduled run does: a rotated key
        # fails the stream (at the sync's start check) while the run goes on.
        monkeypatch.setenv("MATON_API_KEY", emulator.env()["MATON_API_KEY"] if key_works else "rotated")
        return run_sync(settings, instance=instance)

    with dg.DagsterInstance.ephemeral() as instance:
        assert not sync(key_works=False).success
        assert _latest(instance) == (False, "zoho_bigin/contact has never extracted successfully")
        leads = dg.AssetCheckKey(dg.AssetKey(["zoho_crm", "lead"]), FRESHNESS_CHECK)
        assert _latest(instance, leads) == (True, "not synced: zoho_crm: not in CONTACT_SYNC_SOURCES")

        report = sync(key_works=True)
        assert report.success, report.failures
        passed, description = _latest(instance)
        assert passed, description
        assert "0 min ago; within the limit of 60 min" in description

        assert not sync(key_works=False).success  # one failure, within the limit: still green
        assert _latest(instance)[0]

        with open_warehouse(sqlite_url).begin() as connection:  # the last success, 61 minutes ago
            connection.execute(
                sa.update(StreamState)
                .where(StreamState.source == "zoho_bigin", StreamState.stream == "incremental")
                .values(last_success_at=utcnow() - timedelta(minutes=61))
            )
        assert not sync(key_works=False).success
        passed, description = _latest(instance)
        assert not passed
        assert "61 min ago; over the limit of 60 min" in description


def test_the_extract_assets_carry_dagsters_freshness_policy_over_the_same_window() -> None:
    for settings, window in [
        (load_settings(), timedelta(hours=1)),  # four intervals of */15
        (load_settings(contact_sync_cron="0 * * * *"), timedelta(hours=4)),
        (load_settings(contact_sync_freshness_minutes=30), timedelta(minutes=30)),
    ]:
        graph = build_definitions(settings).resolve_asset_graph()
        for key in graph.get_all_asset_keys():
            policy = graph.get(key).freshness_policy
            if graph.get(key).group_name == "extract":
                assert policy == dg.FreshnessPolicy.time_window(fail_window=window), key
            else:
                assert policy is None, key
