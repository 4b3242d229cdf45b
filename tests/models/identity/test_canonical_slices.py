"""Incremental resolution in slices: many changes resolved a slice at a time, each slice committed with
its watermark, end where one run over all of them ends.

Each comparison starts from one warehouse state (derived tables and stream_state, the watermark
included), runs the sliced build, puts the state back, runs the unsliced build, puts it back again and
runs the full `build_canonical`, and compares every derived table as `comparable` reads it.
"""

from collections.abc import Iterator
from datetime import datetime

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connectors.emulator import Emulator, running_emulator
from models.identity import source_counts
from models.identity.activity import build_activity
from models.identity.canonical import build_canonical
from models.identity.canonical_incremental import build_canonical_incremental, slice_ends
from models.identity.checks import CHECKS
from models.identity.lookup import records_per_source
from models.identity.phases import CONTACT_OBJECTS, CanonicalConfig, CanonicalReport, aware_utc
from models.warehouse.db import open_warehouse
from models.warehouse.store import ChangedKeys, RawRow, RawStore, StreamKey, keys_changed_since
from models.warehouse.tables import CanonicalChange, Contact, ContactIdentifier, ContactSource, StreamState
from tests.models.identity.test_activity_incremental import activity
from tests.models.identity.test_canonical_incremental import (
    ANY_SHARED,
    DEFAULT,
    REGIONS,
    Snapshot,
    comparable,
    restore,
    snapshot,
    watermark,
)
from tests.pipelines.test_extract import extract_all

LEADS = StreamKey("zoho_crm", "lead")
#: Small enough that the change sets below take many slices.
TINY = 3
#: Larger than any change set here: one slice, as before slicing.
WHOLE = 1_000_000


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with running_emulator(seed=11, people=120) as emu:
        yield emu


def restore_all(engine: Engine, state: Snapshot) -> None:
    """The derived tables and stream_state (the watermark, the per-source counts) as in ``state``."""
    restore(engine, state)
    with engine.begin() as connection:
        connection.execute(sa.delete(StreamState))
        connection.execute(sa.insert(StreamState), state["stream_state"])


def pending_changes(engine: Engine) -> ChangedKeys:
    with engine.connect() as connection:
        stored = watermark(engine)
        assert stored is not None
        return keys_changed_since(connection, datetime.fromisoformat(stored["changed_at"]), CONTACT_OBJECTS)


def slices_of(engine: Engine, run_id: str) -> int:
    """How many slices the run committed: each records its own ``run`` row in canonical_changes."""
    with engine.connect() as connection:
        return int(
            connection.execute(
                sa.select(sa.func.count()).where(
                    CanonicalChange.run_id == run_id, CanonicalChange.kind == "run"
                )
            ).scalar_one()
        )


def bridge(engine: Engine, source_id: str, offset: int) -> None:
    """A lead holding one contact's email and another's phone: it merges the two contacts."""
    with engine.connect() as connection:
        (_, email, _), (_, _, phone) = connection.execute(
            sa.select(Contact.contact_id, Contact.email, Contact.phone)
            .where(Contact.email.is_not(None), Contact.phone.is_not(None))
            .order_by(Contact.contact_id)
            .offset(offset)
            .limit(2)
        ).all()
    write_bridge(engine, source_id, str(email), str(phone))


def write_bridge(engine: Engine, source_id: str, email: str, phone: str) -> None:
    """The bridging lead, written as a page of its own (its own changed_at)."""
    RawStore(engine).write_page(
        LEADS, [RawRow(source_id, {"id": source_id, "Email": email, "Phone": phone, "Last_Name": "Bridge"})]
    )


def many_changes(emulator: Emulator, engine: Engine, url: str, config: CanonicalConfig) -> None:
    """A resolved warehouse with a bridge in it, then changes that merge, split, retire and edit, each
    kind in pages of their own: the bridge deleted (a split), a new bridge elsewhere (a merge), the
    emulator's new, updated and deleted records, and the only record of a contact deleted."""
    extract_all(emulator, url)
    build_canonical_incremental(engine, config)
    bridge(engine, "4970762000099999001", offset=0)
    build_canonical_incremental(engine, config)
    RawStore(engine).write_page(LEADS, [], deleted_ids=["4970762000099999001"])
    bridge(engine, "4970762000099999002", offset=6)
    emulator.mutate(seed=31, new=6, updated=12, deleted=4)
    extract_all(emulator, url)
    with engine.connect() as connection:
        source, obj, source_id = connection.execute(
            sa.select(ContactSource.source, ContactSource.object, ContactSource.source_id)
            .join(Contact, Contact.contact_id == ContactSource.contact_id)
            .where(Contact.source_count == 1)
            .order_by(Contact.contact_id.desc())
            .limit(1)
        ).one()
    RawStore(engine).write_page(StreamKey(source, obj), [], deleted_ids=[source_id])


def same(left: Snapshot, right: Snapshot, known: set[str]) -> None:
    got, want = comparable(left, known), comparable(right, known)
    for name in want:
        assert got[name] == want[name], name


def counts(report: CanonicalReport) -> tuple[int, ...]:
    return (report.contacts, report.new_contacts, report.merges, report.splits, report.retired)


@pytest.mark.parametrize("config", [DEFAULT, ANY_SHARED], ids=["default", "any-shared"])
def test_a_run_in_many_slices_equals_one_slice_and_a_full_rebuild(
    emulator: Emulator, warehouse_url: str, config: CanonicalConfig
) -> None:
    engine = open_warehouse(warehouse_url)
    many_changes(emulator, engine, warehouse_url, config)
    changed = pending_changes(engine)
    before = snapshot(engine)
    known = {row["contact_id"] for row in before["contacts"]}

    sliced = build_canonical_incremental(engine, config, run_id="sliced", slice_records=TINY)
    sliced_state = snapshot(engine)
    assert slices_of(engine, "sliced") == len(slice_ends(changed.changed_at, TINY)) >= 5
    with engine.connect() as connection:
        assert source_counts.stored(connection) == records_per_source(engine)
    assert watermark(engine) == {
        "changed_at": aware_utc(changed.changed_at[-1]).isoformat(),
        "rules": config.fingerprint(),
    }
    restore_all(engine, before)
    whole = build_canonical_incremental(engine, config, run_id="whole", slice_records=WHOLE)
    assert slices_of(engine, "whole") == 1
    whole_state = snapshot(engine)
    restore_all(engine, before)
    build_canonical(engine, config, run_id="full")
    full_state = snapshot(engine)

    same(sliced_state, whole_state, known)
    same(sliced_state, full_state, known)
    assert counts(sliced) == counts(whole)
    assert sliced.retired >= 1
    if config is ANY_SHARED:
        # Household splitting refuses the bridges (their name differs); without it, they merge and split.
        assert sliced.merges >= 1
        assert sliced.splits >= 1
    assert (sliced.suppressed_identifiers, sliced.unusable_values) == (
        whole.suppressed_identifiers,
        whole.unusable_values,
    )
    # Every slice loads its changes and their neighbourhood: at least what one slice loads.
    assert sliced.records >= whole.records


def test_slices_never_part_records_of_one_changed_at() -> None:
    at = np.array(
        [f"2026-01-01T00:00:0{second}" for second in (1, 1, 1, 1, 2, 3, 3, 4)],
        dtype="datetime64[us]",
    )
    assert slice_ends(at, 3) == [4, 7, 8]
    assert slice_ends(at, 1) == [4, 5, 7, 8]
    assert slice_ends(at, 100) == [8]
    assert slice_ends(at[:0], 3) == []


def test_changed_keys_come_by_changed_at_then_id_and_whole_pages_stay_in_one_slice(sqlite_url: str) -> None:
    """A page of records is written with one changed_at: a slice takes all of it, past its size."""
    engine = open_warehouse(sqlite_url)
    store = RawStore(engine)
    store.write_page(LEADS, [RawRow(str(n), {"id": str(n), "Email": f"{n}@example.com"}) for n in range(5)])
    build_canonical_incremental(engine, DEFAULT)
    store.write_page(LEADS, [RawRow(str(n), {"id": str(n), "Email": f"{n}@x.example"}) for n in (4, 3, 9)])
    store.write_page(LEADS, [RawRow(str(n), {"id": str(n), "Email": f"{n}@y.example"}) for n in (0, 8)])
    store.write_page(LEADS, [RawRow("1", {"id": "1", "Email": "1@z.example"})])
    changed = pending_changes(engine)
    assert len(changed.ids) == 6
    pairs = list(zip(changed.changed_at.tolist(), changed.ids.tolist(), strict=True))
    assert pairs == sorted(pairs)
    assert len(set(changed.changed_at.tolist())) == 3
    assert slice_ends(changed.changed_at, 1) == [3, 5, 6]
    build_canonical_incremental(engine, DEFAULT, run_id="r", slice_records=1)
    assert slices_of(engine, "r") == 3


class StopAskedError(Exception):
    """A sync asked to stop."""


def stop_after_first_slice(engine: Engine, config: CanonicalConfig, run_id: str, size: int) -> None:
    """A run asked to stop as soon as its first slice is committed (its watermark moved)."""
    start = watermark(engine)

    def stop_once_a_slice_is_in() -> None:
        if watermark(engine) != start:
            raise StopAskedError

    with pytest.raises(StopAskedError):
        build_canonical_incremental(
            engine, config, run_id=run_id, checkpoint=stop_once_a_slice_is_in, slice_records=size
        )


def test_a_stop_after_the_first_slice_keeps_it_and_the_next_run_finishes(
    emulator: Emulator, warehouse_url: str
) -> None:
    engine = open_warehouse(warehouse_url)
    many_changes(emulator, engine, warehouse_url, DEFAULT)
    changed = pending_changes(engine)
    first_end = slice_ends(changed.changed_at, TINY)[0]
    before = snapshot(engine)
    known = {row["contact_id"] for row in before["contacts"]}
    build_canonical_incremental(engine, DEFAULT, run_id="whole", slice_records=WHOLE)
    whole_state = snapshot(engine)
    restore_all(engine, before)
    stop_after_first_slice(engine, DEFAULT, "stopped", TINY)
    assert slices_of(engine, "stopped") == 1
    assert watermark(engine) == {
        "changed_at": aware_utc(changed.changed_at[first_end - 1]).isoformat(),
        "rules": DEFAULT.fingerprint(),
    }
    left = pending_changes(engine)
    assert left.ids.tolist() == changed.ids[first_end:].tolist()
    # The first slice's records, deleted ones too, are told to the steps after it.
    assert set(changed.ids[:first_end].tolist()) <= records_of_run(engine, "stopped")

    build_canonical_incremental(engine, DEFAULT, run_id="next", slice_records=TINY)
    same(snapshot(engine), whole_state, known)
    assert build_canonical_incremental(engine, DEFAULT, run_id="after", slice_records=TINY).records == 0


def records_of_run(engine: Engine, run_id: str) -> set[int]:
    """The records a run told canonical_changes it re-resolved (what activity and the checks follow)."""
    with engine.connect() as connection:
        keys = connection.execute(
            sa.select(CanonicalChange.raw_record_id).where(
                CanonicalChange.run_id == run_id, CanonicalChange.kind == "record"
            )
        ).scalars()
        return {int(key) for key in keys if key is not None}


def test_activity_and_the_scoped_checks_follow_every_slice(emulator: Emulator, warehouse_url: str) -> None:
    """Each slice writes its records to canonical_changes under the run's id: the activity step
    re-links the contacts of all of them, and a check scoped to the run sees all of them."""
    engine = open_warehouse(warehouse_url)
    many_changes(emulator, engine, warehouse_url, ANY_SHARED)
    emulator.mutate(seed=37, events=12, messages=8)
    extract_all(emulator, warehouse_url)
    build_activity(engine, REGIONS)
    changed = pending_changes(engine)
    build_canonical_incremental(engine, ANY_SHARED, run_id="sliced", slice_records=TINY)
    assert slices_of(engine, "sliced") > 1
    assert set(changed.ids.tolist()) <= records_of_run(engine, "sliced")
    for name, check in CHECKS.items():
        assert check(engine, "sliced").passed, name

    report = build_activity(engine, REGIONS)
    assert not report.full_rebuild
    incremental = activity(engine)
    build_activity(engine, REGIONS, full=True)
    full = activity(engine)
    assert incremental == full
    assert any(row[1] is not None for row in full.values())


def test_a_record_deleted_in_a_later_slice_is_still_a_neighbour_of_an_earlier_one(warehouse_url: str) -> None:
    """Slice 1 merges two contacts with a bridge; slice 2 deletes a record of the contact merged away.
    Slice 1 sees that record as it was before its deletion, moves it to the surviving contact with the
    rest, and slice 2 then finds it there: the run ends as one run over both changes."""
    with running_emulator(seed=5, people=60) as emu:
        extract_all(emu, warehouse_url)
    engine = open_warehouse(warehouse_url)
    build_canonical_incremental(engine, ANY_SHARED)
    with engine.connect() as connection:
        # A phone two records of one contact hold: a bridge by it still links once one of them goes.
        phone, merged_away = connection.execute(
            sa.select(ContactIdentifier.value, ContactSource.contact_id)
            .join(ContactSource, ContactSource.raw_record_id == ContactIdentifier.raw_record_id)
            .where(ContactIdentifier.kind == "phone", ContactIdentifier.value.is_not(None))
            .group_by(ContactIdentifier.value, ContactSource.contact_id)
            .having(sa.func.count(sa.distinct(ContactIdentifier.raw_record_id)) >= 2)
            .order_by(ContactSource.contact_id)
            .limit(1)
        ).one()
        email = connection.execute(
            sa.select(Contact.email)
            .where(Contact.email.is_not(None), Contact.contact_id != merged_away)
            .order_by(Contact.contact_id)
            .limit(1)
        ).scalar_one()
        source, obj, source_id = connection.execute(
            sa.select(ContactSource.source, ContactSource.object, ContactSource.source_id)
            .join(ContactIdentifier, ContactIdentifier.raw_record_id == ContactSource.raw_record_id)
            .where(ContactSource.contact_id == merged_away, ContactIdentifier.value == phone)
            .order_by(ContactSource.raw_record_id.desc())
            .limit(1)
        ).one()
    write_bridge(engine, "4970762000099999003", email, phone)
    RawStore(engine).write_page(StreamKey(source, obj), [], deleted_ids=[source_id])
    before = snapshot(engine)
    known = {row["contact_id"] for row in before["contacts"]}
    stop_after_first_slice(engine, ANY_SHARED, "sliced", 1)
    with engine.connect() as connection:
        # Between the slices, the record to delete went with the rest of its contact, not unlinked.
        moved_to = connection.execute(
            sa.select(ContactSource.contact_id).where(
                ContactSource.source == source,
                ContactSource.object == obj,
                ContactSource.source_id == source_id,
            )
        ).scalar_one()
    assert moved_to not in {None, merged_away}
    sliced = build_canonical_incremental(engine, ANY_SHARED, run_id="sliced", slice_records=1)
    assert slices_of(engine, "sliced") == 2
    sliced_state = snapshot(engine)
    restore_all(engine, before)
    whole = build_canonical_incremental(engine, ANY_SHARED, run_id="whole", slice_records=WHOLE)
    same(sliced_state, snapshot(engine), known)
    assert (sliced.contacts, sliced.new_contacts, sliced.splits) == (
        whole.contacts,
        whole.new_contacts,
        whole.splits,
    )
    assert whole.merges == 1
