"""Dagster resources: the settings of a run and the warehouse it writes to.

Secrets enter through ``EnvVar`` so the UI and the run's stored config show the variable's name,
never its value. Run-level switches (``--dry-run``, ``--full-refresh``, a narrowed source list) are
resource config, so a run launched from the UI can set them the same way the CLI does.
"""

import os
from collections.abc import Callable
from typing import Any

import dagster as dg
from pydantic import PrivateAttr
from sqlalchemy.engine import Engine

from connectors.config import DEFAULT_MATON_GATEWAY
from models.warehouse.checkpoints import RunCheckpoints
from models.warehouse.db import open_warehouse
from models.warehouse.statistics import refresh_stale
from pipelines.settings import Settings, load_settings

#: Settings fields that hold credentials: passed to Dagster as EnvVar, never as values.
SECRET_FIELDS: tuple[str, ...] = (
    "maton_api_key",
    "maton_connection_clickfunnels",
    "maton_connection_clicksend",
    "maton_connection_zoho_crm",
    "maton_connection_zoho_bigin",
    "linkflow_app_key",
    "linkflow_app_secret",
)


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse database; opening it applies any pending migration. During a run, a SQLite
    warehouse's log is checkpointed by a thread rather than inside the steps' commits
    (`models.warehouse.checkpoints`)."""

    database_url: str
    _checkpoints: RunCheckpoints | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._checkpoints = RunCheckpoints()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._checkpoints is not None:
            self._checkpoints.close()

    def engine(self) -> Engine:
        engine = open_warehouse(self.database_url)
        if self._checkpoints is not None:
            self._checkpoints.cover(engine)
        return engine

    def refresh_statistics(self, log: Callable[[str], None]) -> None:
        """Fresh planner statistics for the tables the steps before this one grew by a tenth or more
        (`models.warehouse.statistics.refresh_stale`; PostgreSQL only), said in one line: a step that
        reads what a first sync just wrote would otherwise plan as if the tables were empty."""
        line = refresh_stale(self.engine()).summary()
        if line:
            log(line)


class SyncSettingsResource(dg.ConfigurableResource):
    """The contract's settings as Dagster config, plus the switches of one run."""

    maton_api_key: str | None = None
    maton_gateway_url: str = DEFAULT_MATON_GATEWAY
    maton_connection_clickfunnels: str | None = None
    maton_connection_clicksend: str | None = None
    maton_connection_zoho_crm: str | None = None
    maton_connection_zoho_bigin: str | None = None
    linkflow_app_key: str | None = None
    linkflow_app_secret: str | None = None
    linkflow_base_url: str = "https://open.linkflowtech.com"
    sources: str | None = None
    default_phone_region: str = "US"
    phone_region_clickfunnels: str | None = None
    phone_region_clicksend: str | None = None
    phone_region_linkflow: str | None = None
    phone_region_zoho_crm: str | None = None
    phone_region_zoho_bigin: str | None = None
    push: str = "on"
    maton_rps: float = 9.5
    linkflow_rps: float = 5.0
    push_overwrite: str | None = None
    push_create: str | None = None
    full_scan_hours: float = 24.0
    lookback_minutes: float | None = None
    full_check_hours: float = 24.0
    blocked_identifiers: str | None = None
    max_records_per_identifier: int = 25
    source_priority: str | None = None
    household_split: str = "on"
    consent_push: str = "on"
    nicknames: str | None = None
    mappings: str | None = None
    cron: str = "*/15 * * * *"
    freshness_minutes: int | None = None

    def settings(self) -> Settings:
        """The validated settings object the plain functions in ``models``/``connectors`` are given."""
        values = {
            "contact_sync_sources": self.sources,
            "contact_sync_default_phone_region": self.default_phone_region,
            "contact_sync_push": self.push,
            "contact_sync_maton_rps": self.maton_rps,
            "contact_sync_linkflow_rps": self.linkflow_rps,
            "contact_sync_push_overwrite": self.push_overwrite,
            "contact_sync_push_create": self.push_create,
            "contact_sync_full_scan_hours": self.full_scan_hours,
            "contact_sync_lookback_minutes": self.lookback_minutes,
            "contact_sync_full_check_hours": self.full_check_hours,
            "contact_sync_blocked_identifiers": self.blocked_identifiers,
            "contact_sync_max_records_per_identifier": self.max_records_per_identifier,
            "contact_sync_source_priority": self.source_priority,
            "contact_sync_household_split": self.household_split,
            "contact_sync_consent_push": self.consent_push,
            "contact_sync_nicknames": self.nicknames,
            "contact_sync_mappings": self.mappings,
            "contact_sync_cron": self.cron,
            "contact_sync_freshness_minutes": self.freshness_minutes,
            "maton_gateway_url": self.maton_gateway_url,
            "linkflow_base_url": self.linkflow_base_url,
        }
        for source in ("clickfunnels", "clicksend", "linkflow", "zoho_crm", "zoho_bigin"):
            values[f"contact_sync_phone_region_{source}"] = getattr(self, f"phone_region_{source}")
        for field in SECRET_FIELDS:
            values[field] = getattr(self, field)
        return load_settings(**values)


class RunOptionsResource(dg.ConfigurableResource):
    """The switches of one run, apart from the settings so that the launchpad can set them.

    Dagster takes run config given for a resource as its whole config; were these switches part of
    ``sync_settings``, a launch that set one would drop every setting and credential. Here a launch
    sets ``resources: {run_options: {config: {dry_run: true}}}`` and nothing else changes.
    """

    full_refresh_sources: list[str] = []  # noqa: RUF012 - pydantic copies field defaults per instance
    """Sources whose stored cursors this run ignores (and then stores fresh ones), as --full-refresh."""
    dry_run: bool = False
    """Plan and record pushes, write nothing, as --dry-run (whatever CONTACT_SYNC_PUSH says, unless off)."""


def settings_resource(settings: Settings) -> SyncSettingsResource:
    """The resource for ``settings``, with each present secret bound to its environment variable.

    Dagster resolves ``EnvVar`` from the process environment, so a secret that came from ``.env`` is
    exported there first; both ways of configuring then behave alike.
    """
    secrets: dict[str, Any] = {}
    for field in SECRET_FIELDS:
        value = getattr(settings, field)
        if value is None or value.get_secret_value() == "":
            continue
        variable = field.upper()
        os.environ.setdefault(variable, value.get_secret_value())
        secrets[field] = dg.EnvVar(variable)
    return SyncSettingsResource(
        maton_gateway_url=settings.maton_gateway_url,
        linkflow_base_url=settings.linkflow_base_url,
        sources=settings.contact_sync_sources,
        default_phone_region=settings.contact_sync_default_phone_region,
        phone_region_clickfunnels=settings.contact_sync_phone_region_clickfunnels,
        phone_region_clicksend=settings.contact_sync_phone_region_clicksend,
        phone_region_linkflow=settings.contact_sync_phone_region_linkflow,
        phone_region_zoho_crm=settings.contact_sync_phone_region_zoho_crm,
        phone_region_zoho_bigin=settings.contact_sync_phone_region_zoho_bigin,
        push=settings.contact_sync_push,
        maton_rps=settings.contact_sync_maton_rps,
        linkflow_rps=settings.contact_sync_linkflow_rps,
        push_overwrite=settings.contact_sync_push_overwrite,
        push_create=settings.contact_sync_push_create,
        full_scan_hours=settings.contact_sync_full_scan_hours,
        lookback_minutes=settings.contact_sync_lookback_minutes,
        full_check_hours=settings.contact_sync_full_check_hours,
        blocked_identifiers=settings.contact_sync_blocked_identifiers,
        max_records_per_identifier=settings.contact_sync_max_records_per_identifier,
        source_priority=settings.contact_sync_source_priority,
        household_split=settings.contact_sync_household_split,
        consent_push=settings.contact_sync_consent_push,
        nicknames=None if settings.contact_sync_nicknames is None else str(settings.contact_sync_nicknames),
        mappings=None if settings.contact_sync_mappings is None else str(settings.contact_sync_mappings),
        cron=settings.contact_sync_cron,
        freshness_minutes=settings.contact_sync_freshness_minutes,
        **secrets,
    )
