"""The code location loads, exposes the contract's names, and its job runs end to end."""

import dagster as dg
import pytest

from pipelines.definitions import build_definitions
from pipelines.runner import run_sync
from pipelines.settings import load_settings
from pipelines.streams import STREAMS

EXTRACT_KEYS = {dg.AssetKey([s.source, s.object]) for s in STREAMS}


def test_definitions_module_loads() -> None:
    from pipelines import definitions

    dg.Definitions.validate_loadable(definitions.defs)


def test_groups_job_and_schedule_follow_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTACT_SYNC_CRON", "0 * * * *")
    defs = build_definitions(load_settings())
    graph = defs.resolve_asset_graph()
    groups = {key: graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert {key for key, group in groups.items() if group == "extract"} == EXTRACT_KEYS
    assert set(groups.values()) == {"extract", "canonical", "reverse_sync", "backfill"}
    schedule = defs.resolve_schedule_def("full_sync_schedule")
    assert schedule.cron_schedule == "0 * * * *"
    assert schedule.job_name == "full_sync"
    job = defs.resolve_job_def("full_sync")
    assert set(job.asset_layer.executable_asset_keys) == {k for k, g in groups.items() if g != "backfill"}


def test_reverse_sync_waits_for_canonical_which_waits_for_extract() -> None:
    graph = build_definitions(load_settings()).resolve_asset_graph()
    canonical = dg.AssetKey(["canonical", "contacts"])
    assert graph.get(canonical).parent_keys >= EXTRACT_KEYS
    for key in graph.get_all_asset_keys():
        if key.path[0] == "reverse_sync":
            assert canonical in graph.get(key).parent_keys


def test_secrets_reach_dagster_only_as_environment_variable_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATON_API_KEY", "maton-secret-xyz")
    defs = build_definitions(load_settings())
    resource = defs.resources["sync_settings"]
    assert "maton-secret-xyz" not in repr(resource)
    resolved = resource.process_config_and_initialize()
    assert resolved.settings().maton_api_key.get_secret_value() == "maton-secret-xyz"


def test_full_sync_without_credentials_runs_and_says_no_source_is_configured(sqlite_url: str) -> None:
    settings = load_settings(contact_sync_database_url=sqlite_url)
    report = run_sync(settings)
    assert report.success
    lines = report.lines()
    assert any("clickfunnels: skipped, no credentials (set MATON_API_KEY" in line for line in lines)
    assert any("linkflow: skipped, no credentials (set LINKFLOW_APP_KEY" in line for line in lines)
    assert report.assets["canonical/contacts"]["contacts"] == 0
