"""A first sync on PostgreSQL: each step after the one that filled a table plans from its statistics."""

import pytest
import sqlalchemy as sa

from connectors.emulator import Emulator
from models.warehouse import statistics
from models.warehouse.db import open_warehouse
from pipelines.runner import run_sync
from tests.pipelines.conftest import settings_for

#: Written by extract, canonical and activity, each read by a later step or the next run.
READ_LATER = ("raw_records", "contacts", "contact_sources", "contact_identifiers", "contact_activity")


@pytest.mark.postgres
def test_a_first_sync_analyses_what_each_step_wrote_before_the_next_reads_it(
    emulator: Emulator, postgres_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The emulator's warehouse is small: every table it fills counts as stale.
    monkeypatch.setattr(statistics, "STALE_MINIMUM_PAGES", 1)
    report = run_sync(settings_for(emulator, postgres_schema_url))
    assert report.success, report.failures

    with open_warehouse(postgres_schema_url).connect() as connection:
        analysed = dict(
            connection.execute(
                sa.text(
                    "SELECT s.relname, c.reltuples FROM pg_stat_user_tables s"
                    " JOIN pg_class c ON c.oid = s.relid"
                    " WHERE s.schemaname = current_schema() AND s.last_analyze IS NOT NULL"
                )
            ).all()
        )
        counts = {
            table: connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in READ_LATER
        }
    assert set(READ_LATER) <= set(analysed), analysed
    # Analysed once filled, not while empty.
    assert all(analysed[table] == counts[table] > 0 for table in READ_LATER), (analysed, counts)
