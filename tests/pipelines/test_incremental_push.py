"""Reverse sync plans only what can have changed, and that plan is the full plan.

Cycles run in-process (extract, incremental identity resolution, reverse sync per destination) so
that before each push the incremental plan can be compared with a full plan of the same warehouse.
"""

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from sqlalchemy.engine import Engine

from connectors.emulator import Emulator, FaultConfig, running_emulator
from models.identity.canonical_incremental import build_canonical_incremental
from models.identity.phases import CanonicalConfig
from models.push import ledger as push_ledger
from models.push.field_map import PushConfig
from models.warehouse.db import open_warehouse
from models.warehouse.store import RawStore, StreamKey
from pipelines.clients import clients_for
from pipelines.extract import run_extract
from pipelines.reverse_sync import WRITABLE_STREAMS, PushReport, _plan, opt_out_lists, push_destination
from pipelines.settings import SOURCES
from pipelines.streams import STREAMS, Stream
from tests.pipelines.conftest import settings_for
from tests.pipelines.test_canonical import REGIONS

CANONICAL = CanonicalConfig(regions=REGIONS)
SETTINGS: dict[str, Any] = {
    "overwrite": {("zoho_crm", "lead"): frozenset({"title"})},
    "create_missing": frozenset({("zoho_bigin", "contact")}),
}


def plan_rows(plan: pd.DataFrame) -> list[tuple[str, ...]]:
    """A plan as sorted rows of text, so two plans compare whatever their row order."""
    return sorted(tuple(str(value) for value in row) for row in plan.astype(object).itertuples(index=False))


def cycle(
    emu: Emulator,
    url: str,
    run_id: str,
    *,
    check: bool = True,
    extract: bool = True,
    kill: Stream | None = None,
    **config: Any,
) -> dict[Stream, PushReport]:
    """One sync: extract, resolve, then each destination's push. With ``check``, each destination's
    incremental plan is first compared with a full plan of the same warehouse. ``kill``: that
    destination's plan is recorded (with its watermark) and nothing is sent, as a run killed right
    after planning leaves it. Without ``extract``, only the pushes run (no read, no resolution)."""
    engine = open_warehouse(url)
    if extract:
        extract_recorded(emu, url, run_id)
        build_canonical_incremental(engine, CANONICAL)
    reports: dict[Stream, PushReport] = {}
    with clients_for(settings_for(emu, url), SOURCES) as clients:
        push = PushConfig(regions=REGIONS, opt_out_lists=opt_out_lists(clients), **{**SETTINGS, **config})
        for stream in WRITABLE_STREAMS:
            if check:
                incremental, report, _ = _plan(stream, engine, push, full_plan=False)
                full, _, _ = _plan(stream, engine, push, full_plan=True)
                assert plan_rows(incremental) == plan_rows(full), f"{run_id} {stream.name}"
                # In slices of a few contacts (several slices even for a small change), either plan is
                # the same rows.
                for whole in (False, True):
                    sliced, _, _ = _plan(stream, engine, push, full_plan=whole, slice_contacts=7)
                    assert plan_rows(sliced) == plan_rows(full), f"{run_id} {stream.name} sliced"
                reports[stream] = report
            if stream == kill:
                _record_unsent(engine, stream, push, run_id)
                continue
            reports[stream] = push_destination(stream, engine, clients, push, run_id=run_id, dry_run=False)
    return reports


def extract_recorded(emu: Emulator, url: str, run_id: str) -> None:
    """Every stream extracted once with its run recorded as the pipeline records it: a push trusts a
    read back only after a complete read that started after the write."""
    store = RawStore(open_warehouse(url))
    with clients_for(settings_for(emu, url), SOURCES) as clients:
        for stream in STREAMS:
            key = StreamKey(stream.source, stream.object)
            store.start_run(key, run_id)
            run_extract(stream, clients, store)
            store.finish_run(key, counts={})


def _record_unsent(engine: Engine, stream: Stream, config: PushConfig, run_id: str) -> None:
    plan, _, mark = _plan(stream, engine, config, full_plan=False)
    assert len(plan), "the killed destination had something to send"
    key = push_ledger.plan_key(stream.source, stream.object)
    push_ledger.record_plan(engine, plan, run_id=run_id, dry_run=False, watermark=(key, mark))


@pytest.fixture
def small() -> Iterator[Emulator]:
    with running_emulator(seed=7, people=90) as emu:
        yield emu


def test_incremental_plans_equal_full_plans_through_changes_rejections_kills_and_settings(
    small: Emulator, sqlite_url: str
) -> None:
    lead = Stream("zoho_crm", "lead", writable=True)
    linkflow = Stream("linkflow", "contact", writable=True)
    first = cycle(small, sqlite_url, "c0", check=False)
    assert {report.plan for report in first.values()} == {"full"}
    # A record that refuses writes keeps rejected rows open; one destination is "killed" after planning;
    # some writes are answered with a CDN's page (nothing applied: unconfirmed until read back).
    victim = next(
        r for r in push_ledger.load_targets(open_warehouse(sqlite_url), "linkflow", "contact")["record_id"]
    )
    small.reject_writes("linkflow", victim)
    small.mutate(seed=21, new=4, updated=8, deleted=3)
    small.set_faults(FaultConfig(challenge_rate=0.4, garbage_methods=frozenset({"PUT", "POST", "PATCH"})))
    second = cycle(small, sqlite_url, "c1", kill=lead)
    assert {report.plan for report in second.values()} == {"incremental"}
    assert sum(report.unconfirmed for report in second.values()) > 0
    small.set_faults(FaultConfig())
    # A push without a read first: the unconfirmed writes are still in flight, planned after a read.
    cycle(small, sqlite_url, "c1-push-only", extract=False)
    small.mutate(seed=22, new=3, updated=6, deleted=2)
    small.allow_writes("linkflow", victim)
    third = cycle(small, sqlite_url, "c2")
    assert third[lead].plan == "incremental"
    # A new overwrite setting plans that destination whole, the others still follow the change.
    small.mutate(seed=23, updated=5)
    fourth = cycle(small, sqlite_url, "c3", overwrite={("zoho_crm", "lead"): frozenset({"title", "city"})})
    assert fourth[lead].plan == "full"
    assert fourth[linkflow].plan == "incremental"


def test_a_one_percent_change_loads_only_the_records_it_can_reach(sqlite_url: str) -> None:
    with running_emulator(seed=3, people=300) as emu:
        first = cycle(emu, sqlite_url, "first", check=False)
        cycle(emu, sqlite_url, "read-back", check=False)  # reads back the first push's writes
        emu.mutate(seed=4, updated=3)
        changed = cycle(emu, sqlite_url, "changed", check=False)
    everything = sum(report.targets_loaded for report in first.values())
    loaded = sum(report.targets_loaded for report in changed.values())
    contacts = sum(report.contacts_loaded for report in changed.values())
    assert {report.plan for report in changed.values()} == {"incremental"}
    assert everything > 300
    assert 0 < loaded <= 30, (loaded, everything, {s.name: r.targets_loaded for s, r in changed.items()})
    assert contacts <= 30
