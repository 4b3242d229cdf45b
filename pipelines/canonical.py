"""Canonical assets, group ``canonical``: golden contacts and unified activity from the raw records."""

import dagster as dg
import sqlalchemy as sa

from models.tables import Contact
from pipelines.resources import WarehouseResource
from pipelines.streams import STREAMS


@dg.asset(
    key=dg.AssetKey(["canonical", "contacts"]),
    group_name="canonical",
    deps=[dg.AssetKey([stream.source, stream.object]) for stream in STREAMS],
    kinds={"python", "sql"},
    description="Golden contacts resolved from every source's records on shared emails and phones.",
)
def canonical_contacts(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    with warehouse.engine().connect() as connection:
        contacts = connection.execute(sa.select(sa.func.count()).select_from(Contact)).scalar_one()
    context.log.info(f"canonical: {contacts} golden contacts")
    return dg.MaterializeResult(metadata={"contacts": contacts})


canonical_assets: list[dg.AssetsDefinition] = [canonical_contacts]
