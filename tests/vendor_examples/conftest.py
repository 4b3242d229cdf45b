"""The product as a user runs it, pointed at a server of vendor examples, with a real SQLite warehouse.

``Harness`` builds the clients from settings (``pipelines.clients.clients_for``, the four Maton apps
under the gateway URL) or, for Linkflow, with ``connectors.factory.build_clients`` and a fixed clock
(the example token expires in 2017). It runs extract (``run_extract`` plus the account-country
refresh, as the extract asset does), then identity resolution and activity as the canonical assets
do, and reads back what landed.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connectors.config import LinkflowConfig
from connectors.factory import Clients, build_clients
from models.identity.activity import build_activity
from models.identity.canonical_incremental import build_canonical_incremental
from models.warehouse.db import open_warehouse
from models.warehouse.store import RawStore, StreamKey
from models.warehouse.tables import Contact, ContactActivity, ContactIdentifier, ContactSource, RawRecord
from pipelines.canonical import canonical_config, phone_regions
from pipelines.clients import clients_for
from pipelines.extract import ExtractReport, refresh_account_country, run_extract
from pipelines.resources import WarehouseResource
from pipelines.settings import SOURCES, Settings, load_settings
from pipelines.streams import STREAMS
from tests.vendor_examples.server import ExampleServer


@dataclass(frozen=True)
class Raw:
    """One stored raw record."""

    payload: dict[str, Any]
    modified_at: datetime | None
    deleted_at: datetime | None


@dataclass
class Harness:
    server: ExampleServer
    url: str
    settings: Settings

    @property
    def engine(self) -> Engine:
        return open_warehouse(self.url)

    def clients(self, *sources: str) -> Clients:
        return clients_for(self.settings, sources or SOURCES)

    def linkflow_clients(self, now: Callable[[], datetime]) -> Clients:
        """Linkflow's client as the factory builds it, on a fixed clock (token expiry and time windows)."""
        config = LinkflowConfig(
            app_key="example-app-key",
            app_secret="example-app-secret",
            base_url=f"{self.server.url}/linkflow",
            rate=200.0,
        )
        return build_clients(None, config, now=now)

    def extract(self, name: str, clients: Clients, *, full_refresh: bool = False) -> ExtractReport:
        """One stream's extract, then the account's country, as the extract asset runs them."""
        stream = next(s for s in STREAMS if s.name == name)
        report = run_extract(stream, clients, RawStore(self.engine), full_refresh=full_refresh)
        refresh_account_country(self.engine, clients, stream.source, lambda _line: None)
        return report

    def resolve(self) -> dict[str, int]:
        """Golden contacts, then activity, with the phone regions the canonical assets would use."""
        regions = phone_regions(self.settings, WarehouseResource(database_url=self.url))
        build_canonical_incremental(self.engine, canonical_config(self.settings, regions), run_id="examples")
        return build_activity(self.engine, regions)

    def cursor(self, name: str) -> dict[str, Any]:
        """The stream's stored cursor (empty when none is stored)."""
        source, obj = name.split("/")
        return RawStore(self.engine).cursor(StreamKey(source, obj)) or {}

    def raw(self, name: str) -> dict[str, Raw]:
        source, obj = name.split("/")
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(
                    RawRecord.source_id, RawRecord.payload, RawRecord.source_modified_at, RawRecord.deleted_at
                ).where(RawRecord.source == source, RawRecord.object == obj)
            ).all()
        return {source_id: Raw(payload, modified, deleted) for source_id, payload, modified, deleted in rows}

    def golden(self, source: str, source_id: str) -> dict[str, Any]:
        """The golden contact a record links to, with that record's own chosen email and phone."""
        with self.engine.connect() as connection:
            link = (
                connection.execute(
                    sa.select(ContactSource.contact_id, ContactSource.email, ContactSource.phone).where(
                        ContactSource.source == source, ContactSource.source_id == source_id
                    )
                )
                .mappings()
                .one()
            )
            contact = (
                connection.execute(
                    sa.select(Contact.__table__).where(Contact.contact_id == link["contact_id"])
                )
                .mappings()
                .one()
            )
        return {**contact, "record_email": link["email"], "record_phone": link["phone"]}

    def identifiers(self, source: str, source_id: str) -> dict[str, tuple[str, str | None, str | None]]:
        """Per payload field: (raw value, normalised value, reason it was refused)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(
                    ContactIdentifier.field,
                    ContactIdentifier.raw_value,
                    ContactIdentifier.value,
                    ContactIdentifier.reason,
                )
                .join(RawRecord, RawRecord.id == ContactIdentifier.raw_record_id)
                .where(RawRecord.source == source, RawRecord.source_id == source_id)
            ).all()
        return {name: (raw, value, reason) for name, raw, value, reason in rows}

    def activity(self) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(ContactActivity.__table__)).mappings().all()
        return {row["activity_id"]: dict(row) for row in rows}


@pytest.fixture
def harness(tmp_path: Any) -> Iterator[Harness]:
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    with ExampleServer() as server:
        settings = load_settings(
            maton_api_key="example-maton-key",
            maton_gateway_url=server.url,
            linkflow_app_key="example-app-key",
            linkflow_app_secret="example-app-secret",
            linkflow_base_url=f"{server.url}/linkflow",
            contact_sync_database_url=url,
            contact_sync_maton_rps=200.0,
            contact_sync_linkflow_rps=200.0,
        )
        yield Harness(server, url, settings)
