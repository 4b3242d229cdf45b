"""Canonical assets, group ``canonical``: golden contacts and unified activity from the raw records.

The work is in ``models.identity.canonical`` and ``models.identity.activity``; these assets read the settings,
call them, and report. The checks are blocking, so reverse sync never pushes from a warehouse that breaks an
invariant.
"""

from datetime import timedelta

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connectors.stop import STOP
from models.identity import checks as canonical_checks
from models.identity import source_counts
from models.identity.activity import build_activity
from models.identity.canonical_incremental import build_canonical_incremental
from models.identity.linking import DEFAULT_BLOCKED_EMAIL_PATTERNS, DEFAULT_BLOCKED_EMAILS, IdentityConfig
from models.identity.lookup import GOLDEN_COLUMNS, golden_sample, records_per_source
from models.identity.phases import CanonicalConfig
from models.identity.survivorship import SurvivorshipConfig
from models.warehouse.tables import Quarantine, SourceAccount
from models.warehouse.waits import cancel_on_stop
from pipelines.overlap import WAREHOUSE_WRITER_TAG
from pipelines.progress import ProgressObserver
from pipelines.resources import RunOptionsResource, SyncSettingsResource, WarehouseResource
from pipelines.settings import SOURCES, Settings
from pipelines.stopping import stops_cleanly
from pipelines.streams import STREAMS

CONTACTS_KEY = dg.AssetKey(["canonical", "contacts"])
ACTIVITY_KEY = dg.AssetKey(["canonical", "activity"])


def phone_regions(settings: Settings, warehouse: WarehouseResource) -> dict[str, str]:
    """Each source's phone region by the contract's precedence, using the account countries extract stored."""
    with warehouse.engine().connect() as connection:
        countries = dict(connection.execute(sa.select(SourceAccount.source, SourceAccount.country)).all())
    return {source: settings.phone_region(source, countries.get(source)) for source in SOURCES}


def canonical_config(settings: Settings, regions: dict[str, str]) -> CanonicalConfig:
    """The user's linking guards and survivorship priorities on top of the built-in defaults."""
    emails, patterns, phones = settings.blocked_identifiers()
    identity = IdentityConfig(
        blocklist_emails=DEFAULT_BLOCKED_EMAILS | emails,
        blocklist_email_patterns=DEFAULT_BLOCKED_EMAIL_PATTERNS + patterns,
        blocklist_phones=phones,
        max_records_per_identifier=settings.contact_sync_max_records_per_identifier,
        household_split=settings.contact_sync_household_split == "on",
        nickname_pairs=settings.nickname_pairs(),
    )
    survivorship = SurvivorshipConfig(source_priority=settings.source_priority())
    return CanonicalConfig(
        regions=regions, identity=identity, survivorship=survivorship, mappings=settings.mappings()
    )


@dg.asset(
    key=CONTACTS_KEY,
    group_name="canonical",
    deps=[dg.AssetKey([stream.source, stream.object]) for stream in STREAMS],
    kinds={"python", "sql"},
    description="Golden contacts resolved from every source's records on shared emails and phones, "
    "with stable ids, merge history, suppressed junk identifiers and field lineage.",
)
def canonical_contacts(
    context: dg.AssetExecutionContext,
    sync_settings: SyncSettingsResource,
    run_options: RunOptionsResource,
    warehouse: WarehouseResource,
    progress: dg.ResourceParam[ProgressObserver],
) -> dg.MaterializeResult:
    with stops_cleanly(context):
        return _resolve(context, sync_settings, run_options, warehouse, progress)


def _resolve(
    context: dg.AssetExecutionContext,
    sync_settings: SyncSettingsResource,
    run_options: RunOptionsResource,
    warehouse: WarehouseResource,
    progress: ProgressObserver,
) -> dg.MaterializeResult:
    settings = sync_settings.settings()
    shown = progress.stream("canonical/contacts", unit="contacts", step=None)
    regions = phone_regions(settings, warehouse)
    engine = warehouse.engine()
    # Incremental by default (only what the changed records can reach); a full refresh re-resolves all.
    # Asked to stop, it gives up between phases or slices; each slice's results and watermark are one
    # transaction, so nothing half-done is left and the next sync resolves from the last slice kept.
    # A wait on the database (another process's lock) ends on a stop too, not when the lock frees.
    full = bool(run_options.full_refresh_sources)
    # Statistics are refreshed before (what extract wrote) and after (what the checks and the steps
    # after read), inside the stop's reach: a refresh may wait on a lock too.
    with cancel_on_stop(engine, STOP, STOP.check):
        warehouse.refresh_statistics(context.log.info)
        report = build_canonical_incremental(
            engine,
            canonical_config(settings, regions),
            run_id=context.run.run_id,
            full=full,
            checkpoint=STOP.check,
        )
        warehouse.refresh_statistics(context.log.info)
    for line in report.unreadable_custom:
        context.log.warning(f"canonical: mapped value skipped: {line}")
    shown.page(records=report.contacts, expected=None, requests=0)
    shown.finished()
    with engine.connect() as connection:
        quarantined = connection.execute(sa.select(sa.func.count()).select_from(Quarantine)).scalar_one()
    context.log.info(
        f"canonical: {report.records} records -> {report.contacts} golden contacts "
        f"({report.new_contacts} new, {report.merges} merges, {report.splits} splits), "
        f"{report.suppressed_identifiers} identifiers suppressed, {report.unusable_values} unusable values"
    )
    return dg.MaterializeResult(
        metadata={
            **report.as_metadata(),
            "full_rebuild": full,
            "clusters": report.contacts,
            "quarantined": quarantined,
            "phone_regions": dg.MetadataValue.json(regions),
            **source_count_metadata(engine),
            "sample": sample_table(engine),
        }
    )


SAMPLE_SIZE = 10


def sample_table(engine: Engine) -> dg.TableMetadataValue:
    """The most recently updated golden contacts, so the UI shows what a run produced, not only counts."""
    columns = [*GOLDEN_COLUMNS, "source_count", "updated_at"]
    schema = dg.TableSchema(
        columns=[dg.TableColumn(name, "int" if name == "source_count" else "string") for name in columns]
    )
    records = [
        dg.TableRecord(
            {
                name: row[name] if name == "source_count" else "" if row[name] is None else str(row[name])
                for name in columns
            }
        )
        for row in golden_sample(engine, SAMPLE_SIZE)
    ]
    return dg.MetadataValue.table(records, schema=schema)


def source_count_metadata(engine: Engine) -> dict[str, dg.IntMetadataValue]:
    """Live records linked to a golden contact, one number per source: the UI plots each across runs,
    so a source whose share drops (a broken extract, a mass deletion) shows at a glance."""
    with engine.connect() as connection:
        kept = source_counts.stored(connection)
    # Kept current by each canonical run; counted here (every record, joined) only before one kept it.
    counts = (
        records_per_source(engine, SOURCES)
        if kept is None
        else dict(sorted({**dict.fromkeys(SOURCES, 0), **kept}.items()))
    )
    return {f"records_{source}": dg.MetadataValue.int(count) for source, count in counts.items()}


def _check(
    name: str,
    context: dg.AssetCheckExecutionContext,
    sync_settings: SyncSettingsResource,
    warehouse: WarehouseResource,
) -> dg.AssetCheckResult:
    """Run one check over this run's changes, or over everything when that is due (see ``run_check``).

    A stop ends it at once, as it ends the steps around it: a whole check at a million records reads
    for up to half a minute, and its record may wait on another process's write lock."""
    every = timedelta(hours=sync_settings.settings().contact_sync_full_check_hours)
    engine = warehouse.engine()
    with stops_cleanly(context.op_execution_context), cancel_on_stop(engine, STOP, STOP.check):
        result = canonical_checks.run_check(name, engine, context.run.run_id, every, checkpoint=STOP.check)
    return dg.AssetCheckResult(
        passed=result.passed,
        metadata={
            "failures": result.failures,
            "examples": dg.MetadataValue.json(result.examples),
            "scope": "whole warehouse" if result.full else "this run's changes",
        },
        description=result.description,
    )


@dg.asset_check(
    asset=CONTACTS_KEY, blocking=True, description="No usable identifier belongs to two contacts."
)
def identifiers_belong_to_one_contact(
    context: dg.AssetCheckExecutionContext, sync_settings: SyncSettingsResource, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    return _check("identifiers_belong_to_one_contact", context, sync_settings, warehouse)


@dg.asset_check(asset=CONTACTS_KEY, blocking=True, description="Every live record links to one contact.")
def records_link_to_one_contact(
    context: dg.AssetCheckExecutionContext, sync_settings: SyncSettingsResource, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    return _check("records_link_to_one_contact", context, sync_settings, warehouse)


@dg.asset_check(asset=CONTACTS_KEY, blocking=True, description="Merged ids never lead into a cycle.")
def merges_have_no_cycles(
    context: dg.AssetCheckExecutionContext, sync_settings: SyncSettingsResource, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    return _check("merges_have_no_cycles", context, sync_settings, warehouse)


@dg.asset(
    key=ACTIVITY_KEY,
    group_name="canonical",
    deps=[CONTACTS_KEY],
    op_tags={WAREHOUSE_WRITER_TAG: "activity"},
    kinds={"python", "sql"},
    description="Linkflow events and ClickSend messages, linked to golden contacts where one matches.",
)
def canonical_activity(
    context: dg.AssetExecutionContext,
    sync_settings: SyncSettingsResource,
    run_options: RunOptionsResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    # Incremental by default (new and changed activity, and the keys of the contacts canonical touched);
    # a full refresh rebuilds it, as does a full canonical rebuild.
    # A wait on the database ends on a stop too (see _resolve), its one transaction rolled back.
    regions = phone_regions(sync_settings.settings(), warehouse)
    engine = warehouse.engine()
    with stops_cleanly(context), cancel_on_stop(engine, STOP, STOP.check):
        warehouse.refresh_statistics(context.log.info)
        report = build_activity(
            engine, regions, full=bool(run_options.full_refresh_sources), checkpoint=STOP.check
        )
        # What it wrote, for whoever reads it next: reverse sync may run beside this step (step
        # processes, on PostgreSQL) and have refreshed before it, so that refresh cannot cover it.
        warehouse.refresh_statistics(context.log.info)
    context.log.info(
        f"activity: {report.activity} rows, {report.activity_linked} linked to a contact, "
        f"{report.activity_unmatched} unmatched; "
        + (
            "rebuilt in full"
            if report.full_rebuild
            else f"{report.rows_written} written, "
            f"{report.rows_removed} removed, {report.keys_relinked} keys re-linked"
        )
    )
    return dg.MaterializeResult(metadata=report.as_metadata())


canonical_assets: list[dg.AssetsDefinition] = [canonical_contacts, canonical_activity]
canonical_checks_defs = [
    identifiers_belong_to_one_contact,
    records_link_to_one_contact,
    merges_have_no_cycles,
]
