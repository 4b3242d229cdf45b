"""Reverse sync against the emulator: fill-empty pushes, batch limits, rejections, dry runs, no echo."""

import math

import sqlalchemy as sa

from connectors.emulator import Emulator
from models.db import open_warehouse
from models.tables import PushLedger
from pipelines.runner import run_sync
from tests.pipelines.conftest import settings_for

PUSH_KEYS = (
    "reverse_sync/clickfunnels/contact",
    "reverse_sync/clicksend/list_contact",
    "reverse_sync/linkflow/contact",
    "reverse_sync/zoho_crm/lead",
    "reverse_sync/zoho_crm/contact",
    "reverse_sync/zoho_bigin/contact",
)


def ledger(url: str, **where: object) -> list[dict[str, object]]:
    query = sa.select(PushLedger.__table__)
    for column, value in where.items():
        query = query.where(getattr(PushLedger, column) == value)
    with open_warehouse(url).connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]


def planned(report_assets: dict[str, dict[str, object]]) -> int:
    return sum(int(report_assets[key]["planned"]) for key in PUSH_KEYS)


def test_fill_empty_lands_and_the_second_cycle_writes_nothing(emulator: Emulator, warehouse_url: str) -> None:
    settings = settings_for(emulator, warehouse_url)
    first = run_sync(settings)
    assert first.success, first.failures
    sent = ledger(warehouse_url, status="sent")
    assert sent, "the emulator's people have fields one system lacks and another has"
    assert {row["reason"] for row in sent} == {"fill_empty"}
    assert all(row["before_value"] in (None, "") for row in sent)
    assert len(emulator.writes()) > 0

    emulator.reset_counters()
    writes_before = len(emulator.writes())
    second = run_sync(settings)
    assert second.success, second.failures
    assert planned(second.assets) == 0
    assert len(emulator.writes()) == writes_before  # no echo: our own writes plan nothing


def test_zoho_batches_respect_the_100_record_limit(emulator: Emulator, sqlite_url: str) -> None:
    report = run_sync(settings_for(emulator, sqlite_url))
    assert report.success, report.failures
    for key, module in (
        ("reverse_sync/zoho_crm/lead", "Leads"),
        ("reverse_sync/zoho_crm/contact", "Contacts"),
    ):
        records = len(
            {
                row["record_id"]
                for row in ledger(sqlite_url, status="sent", object=key.split("/")[-1])
                if row["destination"] == "zoho_crm"
            }
        )
        puts = emulator.request_counts().get(("zoho_crm", "PUT /zoho-crm/crm/v8/{module}"), 0)
        assert puts <= math.ceil(records / 100) * 2, (module, puts, records)
        assert report.assets[key]["sent"] == report.assets[key]["planned"]


def test_dry_run_writes_nothing_and_predicts_the_real_run(emulator: Emulator, sqlite_url: str) -> None:
    settings = settings_for(emulator, sqlite_url)
    dry = run_sync(settings.model_copy(update={"contact_sync_push": "dry-run"}))
    assert dry.success, dry.failures
    assert emulator.writes() == []
    predicted = {
        (r["destination"], r["record_id"], r["field"], r["after_value"])
        for r in ledger(sqlite_url, dry_run=True)
    }
    real = run_sync(settings)
    assert real.success, real.failures
    done = {
        (r["destination"], r["record_id"], r["field"], r["after_value"])
        for r in ledger(sqlite_url, status="sent")
    }
    assert predicted == done
    assert planned(dry.assets) == planned(real.assets)


def test_a_rejected_record_is_recorded_and_retried_next_run(emulator: Emulator, sqlite_url: str) -> None:
    settings = settings_for(emulator, sqlite_url, contact_sync_push="dry-run")
    run_sync(settings)
    victim = next(r for r in ledger(sqlite_url, dry_run=True) if r["destination"] == "linkflow")
    emulator.reject_writes("linkflow", victim["record_id"])
    first = run_sync(settings.model_copy(update={"contact_sync_push": "on"}))
    assert not first.success or first.assets["reverse_sync/linkflow/contact"]["rejected"] >= 1
    rejected = ledger(sqlite_url, status="rejected", record_id=victim["record_id"])
    assert rejected
    assert rejected[0]["error"]
    others = [r for r in ledger(sqlite_url, status="sent") if r["destination"] == "linkflow"]
    assert others, "one rejected record does not block the others"
    emulator.allow_writes("linkflow", victim["record_id"])
    run_sync(settings.model_copy(update={"contact_sync_push": "on"}))
    assert ledger(sqlite_url, status="sent", record_id=victim["record_id"])
