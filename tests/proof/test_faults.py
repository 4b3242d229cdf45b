"""Transient trouble (429, 503, dropped connections, expiring tokens, a shared gateway budget spent by
someone else) slows a sync down but leaves exactly the warehouse a trouble-free run leaves.

Each test runs a clean reference sync and a troubled one from the same emulator state into two
warehouses, with pushes off so neither run changes what the other reads; the push test instead gives
each run its own emulator, generated alike, and compares what the pushes left in them too.
"""

import copy
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from connectors.emulator import Emulator, FaultConfig, running_emulator
from connectors.emulator.dataset import CONTACT_TABLES, Dataset
from connectors.emulator.generate import generate_dataset
from pipelines.runner import SyncReport, run_sync
from tests.pipelines.conftest import settings_for
from tests.pipelines.test_extract import emulator_ids, stored_ids
from tests.proof.snapshot import assert_same_warehouse, snapshot

pytestmark = pytest.mark.slow

MATON_APPS = ("clickfunnels", "clicksend", "zoho_crm", "zoho_bigin")
FIXED_NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def sync(emu: Emulator, url: str, **overrides: object) -> SyncReport:
    report = run_sync(settings_for(emu, url, **{"contact_sync_push": "off", **overrides}))
    assert report.success, report.failures
    return report


def url_in(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / name}.db"


def count(emu: Emulator, app: str, template: str) -> int:
    return emu.request_counts().get((app, template), 0)


@contextmanager
def repeatedly(action: Callable[[], None], every_s: float) -> Iterator[None]:
    """Run ``action`` in a thread every ``every_s`` seconds for the block's duration."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every_s):
            action()

    thread = threading.Thread(target=loop, name="proof-trouble", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def test_429_503_and_dropped_connections_leave_the_clean_runs_warehouse(tmp_path: Path) -> None:
    with running_emulator(seed=21, people=150) as emu:
        clean_url = url_in(tmp_path, "clean")
        sync(emu, clean_url)
        clean_requests = emu.total_requests()

        emu.reset_counters()
        emu.set_faults(
            FaultConfig(
                error_rate_429=0.034, retry_after_s=0.05, error_rate_503=0.034, drop_rate=0.034, seed=4
            )
        )
        faulty_url = url_in(tmp_path, "faulty")
        report = sync(emu, faulty_url)
        # Every faulted answer was counted and retried, so the troubled run needed more requests.
        assert emu.total_requests() > clean_requests
        retries = sum(int(meta.get("retries", 0) or 0) for meta in report.assets.values())
        assert retries == emu.total_requests() - clean_requests
    assert_same_warehouse(snapshot(faulty_url), snapshot(clean_url))


def test_reads_answered_with_challenge_pages_or_cut_bodies_leave_the_clean_runs_warehouse(
    tmp_path: Path,
) -> None:
    """One read in twenty answered 200 with a CDN's "Just a moment..." page or with the API's answer
    cut in half: each is asked again, and the sync succeeds with the clean run's warehouse. The sync
    makes about 45 requests; seed 32 draws both kinds among them (3 pages, 2 cuts)."""
    with running_emulator(seed=23, people=60) as emu:
        clean_url = url_in(tmp_path, "clean")
        sync(emu, clean_url)
        clean_requests = emu.total_requests()

        emu.reset_counters()
        emu.set_faults(FaultConfig(challenge_rate=0.025, truncate_rate=0.025, seed=32))
        garbled_url = url_in(tmp_path, "garbled")
        report = sync(emu, garbled_url)
        injected = emu.injected_faults()
        retries = sum(int(meta.get("retries", 0) or 0) for meta in report.assets.values())
        extra = emu.total_requests() - clean_requests
    assert injected.get("challenge", 0) > 0, injected
    assert injected.get("truncate", 0) > 0, injected
    # Every unreadable answer cost one more request (a truncation drawn for a 204 cut nothing).
    assert 0 < retries == extra <= injected["challenge"] + injected["truncate"]
    assert_same_warehouse(snapshot(garbled_url), snapshot(clean_url))


WRITE_STAMPS = frozenset({"Modified_Time", "Last_Activity_Time", "updated_at", "date_updated", "lastUpdated"})
"""Fields the emulator sets to the time of a write: the only ones two runs' pushes may leave different."""
TEN_PERCENT = FaultConfig(
    error_rate_429=0.034, retry_after_s=0.05, error_rate_503=0.033, drop_rate=0.033, seed=5
)


def without_stamps(value: object) -> object:
    if isinstance(value, dict):
        return {k: without_stamps(v) for k, v in value.items() if k not in WRITE_STAMPS}
    if isinstance(value, list):
        return [without_stamps(v) for v in value]
    return value


def destination_records(emu: Emulator) -> dict[str, dict[str, object]]:
    """Every contact record the emulator holds, per table, without the write times."""
    return {
        table: {
            str(record_id): without_stamps(record) for record_id, record in emu.dataset.tables[table].items()
        }
        for table in CONTACT_TABLES
    }


def write_log(emu: Emulator) -> Counter[tuple[str, str, str, str | None, str]]:
    """The writes the emulator applied, as a multiset: a repeated write would count twice."""
    return Counter(
        (w.app, w.method, w.path, w.record_id, json.dumps(w.body, sort_keys=True)) for w in emu.writes()
    )


def write_requests(emu: Emulator) -> int:
    """Requests to write endpoints, faulted attempts included (the emulator counts before faulting)."""
    return sum(n for (_, endpoint), n in emu.request_counts().items() if not endpoint.startswith("GET "))


def push_totals(report: SyncReport) -> dict[str, int]:
    pushes = [meta for name, meta in report.assets.items() if name.startswith("reverse_sync/")]
    return {key: sum(int(meta.get(key, 0) or 0) for meta in pushes) for key in ("planned", "sent", "failed")}


def test_pushes_under_10_percent_faults_leave_the_clean_runs_warehouse_and_destinations(
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with Emulator(seed=25, people=80, now=now) as clean:
        clean_url = url_in(tmp_path, "clean")
        clean_report = sync(clean, clean_url, contact_sync_push="on")
        clean_requests = clean.total_requests()
        clean_write_requests = write_requests(clean)
        clean_records = destination_records(clean)
        clean_writes = write_log(clean)
    totals = push_totals(clean_report)
    assert totals["planned"] > 0, "the emulator's people have fields to fill in the other systems"
    assert totals["sent"] == totals["planned"]
    assert totals["failed"] == 0

    with Emulator(seed=25, people=80, now=now, faults=TEN_PERCENT) as faulty:
        faulty_url = url_in(tmp_path, "faulty")
        faulty_report = sync(faulty, faulty_url, contact_sync_push="on")
        faulty_requests = faulty.total_requests()
        faulty_write_requests = write_requests(faulty)
        faulty_records = destination_records(faulty)
        faulty_writes = write_log(faulty)
    # About one request in ten was refused or dropped and then repeated, writes among them.
    assert faulty_requests > clean_requests
    assert faulty_write_requests > clean_write_requests, "no write met a fault"
    assert push_totals(faulty_report) == totals
    assert_same_warehouse(snapshot(faulty_url), snapshot(clean_url))
    assert faulty_writes == clean_writes, "a write was lost or applied twice"
    assert faulty_records == clean_records


def linkflow_calls(emu: Emulator) -> tuple[int, int]:
    """(token requests, other requests) Linkflow has served so far."""
    counts = [(template, n) for (app, template), n in emu.request_counts().items() if app == "linkflow"]
    tokens = sum(n for template, n in counts if template == "GET /linkflow/token")
    return tokens, sum(n for _, n in counts) - tokens


def test_linkflow_tokens_expiring_mid_stream_are_refreshed(tmp_path: Path) -> None:
    with running_emulator(seed=22, people=150) as emu:
        clean_url = url_in(tmp_path, "clean")
        sync(emu, clean_url)
        clean_tokens, clean_calls = linkflow_calls(emu)

        emu.reset_counters()
        # Every token dies on its third call: the streams meet expiries mid-stream, and each fresh
        # token serves its retry and one more call before the next expiry.
        emu.expire_linkflow_tokens_after(2)
        expiring_url = url_in(tmp_path, "expiring")
        sync(emu, expiring_url)
        tokens, calls = linkflow_calls(emu)
        refreshed = tokens - clean_tokens
        assert refreshed >= 3, (tokens, clean_tokens)
        # Each expiry cost exactly the one call that met it: no call failed twice, nothing was re-read.
        assert calls == clean_calls + refreshed, (calls, clean_calls, refreshed)
    assert_same_warehouse(snapshot(expiring_url), snapshot(clean_url))


def leads_past_the_page_limit(extra: int) -> Dataset:
    """An emulator whose Zoho CRM holds more than 2,000 leads, so listing them needs page tokens.

    The extra leads are copies of a generated one with their own id, email and one-second-apart
    ``Modified_Time``, so a listing restarted from its watermark makes progress.
    """
    dataset = generate_dataset(seed=23, people=60, now=FIXED_NOW)
    leads = dataset.tables["zoho_crm/lead"]
    template = next(iter(leads.values()))
    start = datetime.fromisoformat(template["Modified_Time"]) - timedelta(days=30)
    for number in range(extra):
        record_id = dataset.zoho_id("zoho_crm")
        stamp = (start + timedelta(seconds=number)).isoformat()
        leads[record_id] = {
            **copy.deepcopy(template),
            "id": record_id,
            "Email": f"bulk.lead.{number}@proof.example.org",
            "Phone": None,
            "Mobile": None,
            "Last_Name": f"Bulk{number}",
            "Created_Time": stamp,
            "Modified_Time": stamp,
        }
    return dataset


def test_zoho_page_tokens_expiring_mid_listing_restart_and_converge(tmp_path: Path) -> None:
    extra = 2_300
    with Emulator(dataset=leads_past_the_page_limit(extra)) as reference:
        clean_url = url_in(tmp_path, "clean")
        sync(reference, clean_url, contact_sync_sources="zoho_crm")
        clean_lists = count(reference, "zoho_crm", "GET /zoho-crm/crm/v8/{module}")

    with Emulator(dataset=leads_past_the_page_limit(extra), zoho_page_token_ttl=0.0) as expiring:
        expiring_url = url_in(tmp_path, "expiring")
        sync(expiring, expiring_url, contact_sync_sources="zoho_crm")
        # The first token died at once, so the listing restarted from its watermark with pages again.
        assert count(expiring, "zoho_crm", "GET /zoho-crm/crm/v8/{module}") > clean_lists
        expected = emulator_ids(expiring)[("zoho_crm", "lead")]
    assert len(expected) > 2_000
    assert stored_ids(expiring_url)[("zoho_crm", "lead")] == expected
    assert_same_warehouse(snapshot(expiring_url), snapshot(clean_url))


def test_gateway_budget_spent_by_another_client_still_completes(tmp_path: Path) -> None:
    with running_emulator(seed=24, people=120) as emu:
        clean_url = url_in(tmp_path, "clean")
        sync(emu, clean_url)
        clean_maton = sum(emu.total_requests(app) for app in MATON_APPS)

        emu.reset_counters()
        emu.maton_rps = 10
        answers: list[int] = []
        with httpx.Client(
            base_url=emu.maton_gateway_url, headers={"Authorization": f"Bearer {emu.env()['MATON_API_KEY']}"}
        ) as other:

            def hammer() -> None:
                answers.append(other.get("/clicksend/v3/proof-other-client").status_code)

            busy_url = url_in(tmp_path, "busy")
            with repeatedly(hammer, every_s=0.125):
                sync(emu, busy_url, contact_sync_maton_rps=9.5)
        hammer_requests = count(emu, "clicksend", "GET /clicksend/v3/<unknown>")
        sync_requests = sum(emu.total_requests(app) for app in MATON_APPS) - hammer_requests
    admitted = [status for status in answers if status != 429]
    assert len(admitted) > 10, "the other client never got its share of the budget"
    assert sync_requests > clean_maton, "the sync never met the exhausted budget"
    assert_same_warehouse(snapshot(busy_url), snapshot(clean_url))
