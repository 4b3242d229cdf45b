"""A full plan goes in slices of contacts (planned, recorded and sent one slice at a time, so memory is
that of one slice): in many slices it writes exactly what one slice writes, and a run killed between
slices converges on the next without writing anything twice.

Two emulators generated alike serve the runs compared, each with its own warehouse.
"""

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.emulator import Emulator, running_emulator
from models.identity.canonical_incremental import build_canonical_incremental
from models.push import ledger as push_ledger
from models.push.field_map import PushConfig
from models.warehouse.db import open_warehouse
from pipelines.clients import clients_for
from pipelines.reverse_sync import WRITABLE_STREAMS, PushReport, opt_out_lists, push_destination
from pipelines.settings import SOURCES
from pipelines.streams import Stream
from tests.pipelines.conftest import settings_for
from tests.pipelines.test_canonical import REGIONS
from tests.pipelines.test_incremental_push import CANONICAL, SETTINGS, extract_recorded

LEAD = Stream("zoho_crm", "lead", writable=True)


class KilledError(Exception):
    """Stands for the process dying where it is raised."""


@pytest.fixture
def twins() -> Iterator[tuple[Emulator, Emulator]]:
    with running_emulator(seed=7, people=90) as one, running_emulator(seed=7, people=90) as other:
        yield one, other


def cycle(emu: Emulator, url: str, run_id: str, *, slice_contacts: int) -> dict[Stream, PushReport]:
    """One sync: extract, resolve, then every destination's push with full plans in ``slice_contacts``.
    A destination killed part-way (`KilledError`) has no report."""
    engine = open_warehouse(url)
    extract_recorded(emu, url, run_id)
    build_canonical_incremental(engine, CANONICAL)
    reports: dict[Stream, PushReport] = {}
    with clients_for(settings_for(emu, url), SOURCES) as clients:
        config = PushConfig(regions=REGIONS, opt_out_lists=opt_out_lists(clients), **SETTINGS)
        for stream in WRITABLE_STREAMS:
            try:
                reports[stream] = push_destination(
                    stream,
                    engine,
                    clients,
                    config,
                    run_id=run_id,
                    dry_run=False,
                    slice_contacts=slice_contacts,
                )
            except KilledError:
                continue
    return reports


def writes(emu: Emulator) -> Counter[tuple[str, str, str, str]]:
    """Every change the emulator was sent: app, method, record and body (a create's id left out, as
    ids are handed out in the order calls arrive)."""
    return Counter(
        (
            w.app,
            w.method,
            "" if w.method == "POST" else str(w.record_id),
            json.dumps(w.body, sort_keys=True, default=str),
        )
        for w in emu.writes()
    )


def test_a_full_plan_in_many_slices_writes_what_one_slice_writes(
    twins: tuple[Emulator, Emulator], tmp_path: Path
) -> None:
    whole, sliced = twins
    one = cycle(whole, f"sqlite:///{tmp_path / 'one.db'}", "whole", slice_contacts=1_000_000)
    many = cycle(sliced, f"sqlite:///{tmp_path / 'many.db'}", "sliced", slice_contacts=7)
    assert {r.plan for r in many.values()} == {"full"}
    assert sum(r.sent for r in one.values()) > 50
    assert sum(r.created for r in one.values()) > 0
    assert {s.name: (r.planned, r.sent, r.created, r.invalid) for s, r in many.items()} == {
        s.name: (r.planned, r.sent, r.created, r.invalid) for s, r in one.items()
    }
    assert writes(sliced) == writes(whole)
    # The next plan follows the change: the watermark was stored once the last slice was planned.
    again = cycle(sliced, f"sqlite:///{tmp_path / 'many.db'}", "again", slice_contacts=7)
    assert {r.plan for r in again.values()} == {"incremental"}


def test_a_run_killed_between_slices_plans_in_full_again_and_converges_without_double_writes(
    twins: tuple[Emulator, Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, killed = twins
    cycle(reference, f"sqlite:///{tmp_path / 'reference.db'}", "reference", slice_contacts=1_000_000)
    url = f"sqlite:///{tmp_path / 'killed.db'}"
    record_plan = push_ledger.record_plan
    calls: Counter[str] = Counter()

    def dies_at_the_third_slice(engine: Any, plan: Any, **kwargs: Any) -> list[int]:
        if len(plan) and plan["destination"].iloc[0] == LEAD.source and plan["object"].iloc[0] == LEAD.object:
            calls["lead"] += 1
            if calls["lead"] == 3:
                raise KilledError
        return record_plan(engine, plan, **kwargs)

    monkeypatch.setattr(push_ledger, "record_plan", dies_at_the_third_slice)
    first = cycle(killed, url, "killed", slice_contacts=7)
    monkeypatch.setattr(push_ledger, "record_plan", record_plan)
    assert LEAD not in first
    assert calls["lead"] == 3
    sent_before = sum(1 for w in killed.writes() if "/Leads" in w.path)
    assert sent_before > 0, "the killed run sent its first slices"
    assert push_ledger.stored_watermark(open_warehouse(url), LEAD.source, LEAD.object) is None
    second = cycle(killed, url, "after-kill", slice_contacts=7)
    assert second[LEAD].plan == "full"
    assert second[LEAD].sent > 0
    # Together the two runs sent what the reference's one run did: nothing twice, nothing missed.
    assert writes(killed) == writes(reference)
    third = cycle(killed, url, "settled", slice_contacts=7)
    assert sum(r.sent + r.created for r in third.values()) == 0
    assert writes(killed) == writes(reference)
