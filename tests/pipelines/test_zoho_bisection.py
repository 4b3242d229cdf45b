"""A Zoho batch refused as a whole, end to end: reverse sync halves it until the bad record is alone,
sends every good record once, and records the bad one's refusal."""

import math

import sqlalchemy as sa

from connectors.emulator import running_emulator
from models.warehouse.db import open_warehouse
from models.warehouse.tables import PushLedger
from pipelines.runner import run_sync
from tests.pipelines.conftest import settings_for

PUT = ("zoho_crm", "PUT /zoho-crm/crm/v8/{module}")


def zoho_rows(url: str, obj: str, *, dry_run: bool) -> dict[str, set[str]]:
    """record id -> statuses of its Zoho CRM rows of ``obj`` in the ledger."""
    query = sa.select(PushLedger.record_id, PushLedger.status).where(
        PushLedger.destination == "zoho_crm", PushLedger.object == obj, PushLedger.dry_run.is_(dry_run)
    )
    rows: dict[str, set[str]] = {}
    with open_warehouse(url).connect() as connection:
        for record_id, status in connection.execute(query):
            rows.setdefault(str(record_id), set()).add(str(status))
    return rows


def test_a_batch_refused_as_a_whole_is_halved_until_the_bad_record_is_alone(sqlite_url: str) -> None:
    with running_emulator(seed=5, people=150) as emu:
        settings = settings_for(emu, sqlite_url, contact_sync_push="dry-run")
        assert run_sync(settings).success
        planned = zoho_rows(sqlite_url, "lead", dry_run=True)
        contact_calls = math.ceil(len(zoho_rows(sqlite_url, "contact", dry_run=True)) / 100)
        records = sorted(planned)
        assert 8 <= len(records) <= 100, "one batch of several records, so the halving shows"
        bad = records[len(records) // 3]
        emu.reject_writes("zoho_crm", bad, "INVALID_DATA", "the value of Company is refused", whole_call=True)
        emu.reset_counters()
        writes_before = {w.record_id for w in emu.writes()}

        report = run_sync(settings.model_copy(update={"contact_sync_push": "on"}))

        puts = emu.request_counts().get(PUT, 0)
        written = [
            w.record_id for w in emu.writes() if w.app == "zoho_crm" and w.record_id not in writes_before
        ]

    assert report.success, report.failures
    outcome = zoho_rows(sqlite_url, "lead", dry_run=False)
    assert outcome[bad] == {"rejected"}
    assert {record: statuses for record, statuses in outcome.items() if record != bad} == {
        record: {"sent"} for record in records if record != bad
    }
    # Every good lead written exactly once, the bad one never.
    lead_writes = [record for record in written if record in planned]
    assert sorted(lead_writes) == [record for record in records if record != bad]
    # The first call is refused; each halving then sends the clean half once and the bad half again,
    # so the calls are 1 + 2 per halving, and a batch of m needs floor or ceil of log2(m) halvings.
    halvings = {math.floor(math.log2(len(records))), math.ceil(math.log2(len(records)))}
    assert puts - contact_calls in {1 + 2 * k for k in halvings}
