"""Incremental resolution against the warehouse: the same result as a full rebuild, from a fraction of it.

Each comparison starts from one warehouse state, runs the incremental build, puts the state back, runs
the full `build_canonical`, and compares every derived table (surrogate row ids and run times aside).
"""

import gc
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connectors.emulator import Emulator, running_emulator
from models.identity import canonical_incremental, source_counts
from models.identity.canonical import build_canonical
from models.identity.canonical_incremental import WATERMARK, build_canonical_incremental
from models.identity.identity_store import SqlIdentityStore
from models.identity.linking import IdentityConfig
from models.identity.lookup import records_per_source
from models.identity.phases import CanonicalConfig, CanonicalReport
from models.identity.resolution import FrameIdentityStore
from models.warehouse.db import open_warehouse
from models.warehouse.store import RawRow, RawStore, StreamKey
from models.warehouse.tables import (
    Contact,
    ContactFieldLineage,
    ContactIdentifier,
    ContactMerge,
    ContactSource,
    RawRecord,
    StreamState,
    SuppressedIdentifier,
)
from tests.models.push.test_ledger_indexes import query_plans
from tests.pipelines.test_extract import extract_all

REGIONS = {"linkflow": "CN", "clicksend": "US", "clickfunnels": "US", "zoho_crm": "US", "zoho_bigin": "US"}
DEFAULT = CanonicalConfig(regions=REGIONS)
# A record limit of 2 suppresses every identifier a person's third record shares, so changes move
# identifiers across the limit both ways, which is where an incremental run is easiest to get wrong.
TIGHT = CanonicalConfig(regions=REGIONS, identity=IdentityConfig(max_records_per_identifier=2))
# The linking rule as written, any shared identifier links: for tests of merges and splits themselves.
ANY_SHARED = CanonicalConfig(regions=REGIONS, identity=IdentityConfig(household_split=False))
# Insert order; deletes go the other way.
DERIVED = (Contact, ContactSource, ContactIdentifier, ContactFieldLineage, ContactMerge, SuppressedIdentifier)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with running_emulator(seed=11, people=120) as emu:
        yield emu


Snapshot = dict[str, list[dict[str, Any]]]


def snapshot(engine: Engine) -> Snapshot:
    with engine.connect() as connection:
        return {
            table.__tablename__: [
                dict(row) for row in connection.execute(sa.select(table.__table__)).mappings()
            ]
            for table in (*DERIVED, StreamState)
        }


def restore(engine: Engine, state: Snapshot) -> None:
    with engine.begin() as connection:
        for table in reversed(DERIVED):
            connection.execute(sa.delete(table))
        for table in DERIVED:
            rows = state[table.__tablename__]
            if rows:
                connection.execute(sa.insert(table), rows)


def comparable(state: Snapshot, known: set[str]) -> dict[str, Any]:
    """Each derived table as what it means: no surrogate ids, no run times, merges as a multiset.
    created_at of a contact born in the run is that run's clock; of a `known` one it must be kept."""

    def rows(name: str, drop: tuple[str, ...]) -> list[tuple[Any, ...]]:
        return sorted(
            tuple(repr(value) for key, value in row.items() if key not in drop) for row in state[name]
        )

    contacts = [
        {k: v for k, v in row.items() if k != "created_at" or row["contact_id"] in known}
        for row in state["contacts"]
    ]
    return {
        "contacts": sorted(
            tuple(repr(value) for key, value in row.items() if key != "updated_at") for row in contacts
        ),
        "contact_sources": rows("contact_sources", ("id",)),
        "contact_identifiers": rows("contact_identifiers", ("id",)),
        "contact_field_lineage": rows("contact_field_lineage", ()),
        "suppressed_identifiers": rows("suppressed_identifiers", ("id", "detected_at")),
        "contact_merges": Counter(
            (row["old_contact_id"], row["new_contact_id"], row["kind"]) for row in state["contact_merges"]
        ),
    }


def watermark(engine: Engine) -> dict[str, Any] | None:
    with engine.connect() as connection:
        return connection.execute(
            sa.select(StreamState.cursor).where(
                StreamState.source == WATERMARK.source,
                StreamState.object == WATERMARK.object,
                StreamState.stream == WATERMARK.stream,
            )
        ).scalar_one_or_none()


def assert_incremental_equals_full(engine: Engine, config: CanonicalConfig) -> CanonicalReport:
    """Run both from the current state and keep the incremental result; returns its report."""
    before = snapshot(engine)
    report = build_canonical_incremental(engine, config, run_id="inc")
    incremental = snapshot(engine)
    with engine.connect() as connection:
        # The per-source counts the run kept (it moved them by its own records) are the counts.
        assert source_counts.stored(connection) == records_per_source(engine)
    restore(engine, before)
    build_canonical(engine, config, run_id="inc")
    full = snapshot(engine)
    known = {row["contact_id"] for row in before["contacts"]}
    got, want = comparable(incremental, known), comparable(full, known)
    for name in want:
        assert got[name] == want[name], name
    assert report.contacts == len(full["contacts"])
    assert report.suppressed_identifiers == len(full["suppressed_identifiers"])
    restore(engine, incremental)
    return report


@pytest.mark.parametrize("config", [DEFAULT, TIGHT], ids=["default", "tight"])
def test_incremental_runs_equal_full_rebuilds(
    emulator: Emulator, warehouse_url: str, config: CanonicalConfig
) -> None:
    extract_all(emulator, warehouse_url)
    engine = open_warehouse(warehouse_url)
    first = build_canonical_incremental(engine, config)
    assert first.contacts > 0
    assert watermark(engine) is not None
    for seed in (31, 32):
        emulator.mutate(seed=seed, new=4, updated=8, deleted=3)
        extract_all(emulator, warehouse_url)
        loaded = assert_incremental_equals_full(engine, config).records
        assert 0 < loaded < first.records / 2


def test_a_run_with_no_changes_reads_and_writes_nothing(emulator: Emulator, warehouse_url: str) -> None:
    extract_all(emulator, warehouse_url)
    engine = open_warehouse(warehouse_url)
    build_canonical_incremental(engine, DEFAULT)
    before, mark = snapshot(engine), watermark(engine)
    report = build_canonical_incremental(engine, DEFAULT)
    assert (report.records, report.new_contacts, report.merges, report.splits) == (0, 0, 0, 0)
    assert report.contacts == len(before["contacts"])
    assert snapshot(engine) == before
    assert watermark(engine) == mark


def test_a_bridging_record_merges_two_contacts_and_its_deletion_splits_them(warehouse_url: str) -> None:
    with running_emulator(seed=5, people=60) as emu:
        extract_all(emu, warehouse_url)
    engine = open_warehouse(warehouse_url)
    build_canonical_incremental(engine, ANY_SHARED)
    with engine.connect() as connection:
        (a_id, a_email, _), (b_id, _, b_phone) = connection.execute(
            sa.select(Contact.contact_id, Contact.email, Contact.phone)
            .where(Contact.email.is_not(None), Contact.phone.is_not(None))
            .order_by(Contact.contact_id)
            .limit(2)
        ).all()
        holders = connection.execute(
            sa.select(sa.func.count()).where(ContactSource.contact_id.in_([a_id, b_id]))
        ).scalar_one()
    lead = {"id": "4970762000099999999", "Email": a_email, "Phone": b_phone, "Last_Name": "Bridge"}
    RawStore(engine).write_page(StreamKey("zoho_crm", "lead"), [RawRow(lead["id"], lead)])
    report = build_canonical_incremental(engine, ANY_SHARED)
    assert report.records == holders + 1
    assert (report.merges, report.new_contacts, report.splits) == (1, 0, 0)
    with engine.connect() as connection:
        merge = connection.execute(sa.select(ContactMerge.old_contact_id, ContactMerge.new_contact_id)).one()
        linked = connection.execute(
            sa.select(ContactSource.contact_id).where(ContactSource.source_id == lead["id"])
        ).scalar_one()
        remaining = connection.execute(sa.select(Contact.contact_id).where(Contact.contact_id == b_id)).all()
    assert tuple(merge) == (b_id, a_id)
    assert linked == a_id
    assert remaining == []

    RawStore(engine).write_page(StreamKey("zoho_crm", "lead"), [], deleted_ids=[lead["id"]])
    split = assert_incremental_equals_full(engine, ANY_SHARED)
    assert (split.records, split.splits, split.new_contacts, split.merges) == (holders + 1, 1, 1, 0)


def test_deleting_the_only_record_of_a_contact_retires_it(emulator: Emulator, warehouse_url: str) -> None:
    extract_all(emulator, warehouse_url)
    engine = open_warehouse(warehouse_url)
    build_canonical_incremental(engine, DEFAULT)
    with engine.connect() as connection:
        contact_id, source, obj, source_id = connection.execute(
            sa.select(Contact.contact_id, ContactSource.source, ContactSource.object, ContactSource.source_id)
            .join(ContactSource, ContactSource.contact_id == Contact.contact_id)
            .where(Contact.source_count == 1)
            .order_by(Contact.contact_id)
            .limit(1)
        ).one()
    RawStore(engine).write_page(StreamKey(source, obj), [], deleted_ids=[source_id])
    report = assert_incremental_equals_full(engine, DEFAULT)
    assert (report.records, report.retired, report.new_contacts) == (1, 1, 0)
    with engine.connect() as connection:
        assert connection.execute(sa.select(Contact).where(Contact.contact_id == contact_id)).all() == []


def test_full_true_rebuilds_and_moves_the_watermark_to_the_latest_change(
    emulator: Emulator, sqlite_url: str
) -> None:
    extract_all(emulator, sqlite_url)
    engine = open_warehouse(sqlite_url)
    build_canonical_incremental(engine, DEFAULT)
    emulator.mutate(seed=40, updated=5)
    extract_all(emulator, sqlite_url)
    report = build_canonical_incremental(engine, DEFAULT, full=True)
    with engine.connect() as connection:
        latest = connection.execute(sa.select(sa.func.max(RawRecord.changed_at))).scalar_one()
        live = connection.execute(
            sa.select(sa.func.count()).where(RawRecord.deleted_at.is_(None), RawRecord.object != "event")
        ).scalar_one()
    assert watermark(engine) == {"changed_at": latest.isoformat(), "rules": DEFAULT.identity.fingerprint()}
    assert 0 < report.records <= live
    assert build_canonical_incremental(engine, DEFAULT).records == 0


def test_a_rebuild_that_dies_before_storing_its_counts_leaves_none_to_move(
    emulator: Emulator, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The per-source counts a rebuild replaces are forgotten when it starts: dying after its results
    but before its counts, it leaves none, and the next run counts everything rather than moving
    counts that no longer describe the warehouse."""
    extract_all(emulator, sqlite_url)
    engine = open_warehouse(sqlite_url)
    build_canonical_incremental(engine, DEFAULT)
    emulator.mutate(seed=41, new=3, deleted=4)
    extract_all(emulator, sqlite_url)

    def dies(connection: object) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr(canonical_incremental, "store_counted", dies)
    with pytest.raises(RuntimeError):
        build_canonical_incremental(engine, DEFAULT, full=True)
    monkeypatch.undo()
    with engine.connect() as connection:
        assert source_counts.stored(connection) is None
    emulator.mutate(seed=42, updated=3, deleted=2)
    extract_all(emulator, sqlite_url)
    assert build_canonical_incremental(engine, DEFAULT).records > 0
    with engine.connect() as connection:
        assert source_counts.stored(connection) == records_per_source(engine)


def test_sql_store_answers_as_the_frame_store_does(warehouse_url: str) -> None:
    """Over more keys and identifiers than one IN list holds, duplicates and unusable values included."""
    engine = open_warehouse(warehouse_url)
    rng = np.random.default_rng(3)
    n = 2000
    now = datetime(2024, 1, 1, tzinfo=UTC)
    values = [f"p{i}@example.com" for i in range(1200)]
    identifier_rows: list[dict[str, Any]] = []
    for key in range(1, n + 1):
        for value in rng.choice(values, size=int(rng.integers(0, 3))):
            identifier_rows.append({"raw_record_id": key, "kind": "email", "field": "Email", "value": value})
            identifier_rows.append({"raw_record_id": key, "kind": "email", "field": "Other", "value": value})
        phone = f"+1415555{key % 1500:04d}"
        identifier_rows.append({"raw_record_id": key, "kind": "phone", "field": "Phone", "value": phone})
        identifier_rows.append({"raw_record_id": key, "kind": "phone", "field": "Fax", "value": None})
    contact_of = {key: f"c_{(key + 1) // 2:012d}" for key in range(1, n - 99)}
    with engine.begin() as connection:
        connection.execute(
            sa.insert(RawRecord),
            [
                {
                    "id": key,
                    "source": "zoho_crm",
                    "object": "lead",
                    "source_id": str(key),
                    "payload": {},
                    "content_hash": "",
                    "first_seen_at": now,
                    "last_seen_at": now,
                    "changed_at": now,
                }
                for key in range(1, n + 1)
            ],
        )
        connection.execute(
            sa.insert(ContactIdentifier), [{**row, "raw_value": str(row["value"])} for row in identifier_rows]
        )
        connection.execute(
            sa.insert(Contact),
            [
                {"contact_id": c, "created_at": now, "updated_at": now, "source_count": 2}
                for c in sorted(set(contact_of.values()))
            ],
        )
        connection.execute(
            sa.insert(ContactSource),
            [
                {
                    "raw_record_id": k,
                    "contact_id": c,
                    "source": "zoho_crm",
                    "object": "lead",
                    "source_id": str(k),
                }
                for k, c in contact_of.items()
            ],
        )
    usable = pd.DataFrame([r for r in identifier_rows if r["value"] is not None]).rename(
        columns={"raw_record_id": "record_key"}
    )
    usable = usable.loc[:, ["record_key", "kind", "value"]].astype({"kind": object, "value": object})
    assignment = pd.DataFrame(
        {"record_key": list(contact_of), "contact_id": pd.Series(list(contact_of.values()), dtype=object)}
    )
    frame = FrameIdentityStore(usable, assignment)
    keys = np.arange(1, n + 20, dtype=np.int64)
    wanted = pd.concat(
        [
            frame.identifiers.loc[::2, ["kind", "value"]],
            pd.DataFrame({"kind": ["email"], "value": ["nobody@x.io"]}, dtype=object),
        ],
        ignore_index=True,
    )
    contacts = np.asarray([*sorted(set(contact_of.values())), "c_999999999999"], dtype=object)

    def same(a: pd.DataFrame, b: pd.DataFrame) -> None:
        columns = list(a.columns)
        assert list(b.columns) == columns
        # The frame store lets pandas infer text columns as str; the SQL store gives object, as identity does.
        text = {name: object for name in columns if name != "record_key" and name != "record_count"}
        left = a.astype(text).sort_values(columns, ignore_index=True)
        right = b.astype(text).sort_values(columns, ignore_index=True)
        pd.testing.assert_frame_equal(left, right, check_dtype=True)

    with engine.connect() as connection:
        sql = SqlIdentityStore(connection)
        same(sql.identifiers_of(keys), frame.identifiers_of(keys))
        same(sql.holders_of(wanted), frame.holders_of(wanted))
        same(sql.record_counts(wanted), frame.record_counts(wanted))
        same(sql.contacts_of(keys), frame.contacts_of(keys))
        same(sql.records_of_contacts(contacts), frame.records_of_contacts(contacts))
        assert sql.identifiers_of(np.array([], dtype=np.int64)).empty
    if engine.dialect.name == "sqlite":
        # Holders and counts come from the (kind, value, raw_record_id) index alone, no row visited.
        def ask() -> None:
            with engine.connect() as connection:
                SqlIdentityStore(connection).holders_of(wanted)
                SqlIdentityStore(connection).record_counts(wanted)

        plans = query_plans(engine, ask)
        assert len(plans) == 4, plans  # one query per kind, each
        assert all("COVERING INDEX ix_contact_identifiers_kind_value_record" in plan for plan in plans), plans


def consent_of(engine: Engine) -> dict[str, tuple[Any, ...]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(
                Contact.contact_id, Contact.email_opt_out, Contact.sms_opt_out, Contact.sms_opt_out_source
            )
        ).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def test_opt_outs_made_and_cleared_resolve_incrementally_as_a_full_rebuild_does(
    emulator: Emulator, warehouse_url: str
) -> None:
    extract_all(emulator, warehouse_url)
    engine = open_warehouse(warehouse_url)
    build_canonical_incremental(engine, DEFAULT)
    before = consent_of(engine)
    assert any(flags[0] for flags in before.values()), "the sandbox has email opt-outs"
    funnels = emulator.dataset.tables["clickfunnels/contact"]
    unsubscribed = [key for key, record in funnels.items() if record["unsubscribed_at"]]
    fresh = next(
        key for key, record in funnels.items() if not record["unsubscribed_at"] and record["email_address"]
    )
    emulator.edit("clickfunnels/contact", fresh, {"unsubscribed_at": "2026-03-02T09:30:00.000Z"})
    emulator.edit("clickfunnels/contact", unsubscribed[0], {"unsubscribed_at": None})
    with engine.connect() as connection:
        phone = connection.execute(
            sa.select(Contact.phone).where(Contact.phone.is_not(None), Contact.sms_opt_out.is_(None)).limit(1)
        ).scalar_one()
    emulator.sms_opt_out(phone)
    extract_all(emulator, warehouse_url)
    assert_incremental_equals_full(engine, DEFAULT)
    after = consent_of(engine)
    assert after != before
    assert [flags[1:] for flags in after.values() if flags[1]].count((True, "clicksend/list_contact")) == (
        [flags[1:] for flags in before.values() if flags[1]].count((True, "clicksend/list_contact")) + 1
    )


def test_slices_run_without_the_cycle_collector_and_give_it_back(
    emulator: Emulator, warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collector is off while a slice resolves (its full collections walked every long-lived
    object), on again after it, and left off when it was off; the run still equals a full rebuild."""
    seen: list[bool] = []
    resolve_slice = canonical_incremental._resolve_slice

    def watched(*args: Any, **kwargs: Any) -> None:
        seen.append(gc.isenabled())
        resolve_slice(*args, **kwargs)

    monkeypatch.setattr(canonical_incremental, "_resolve_slice", watched)
    extract_all(emulator, warehouse_url)
    engine = open_warehouse(warehouse_url)
    build_canonical_incremental(engine, DEFAULT)
    emulator.mutate(seed=34, new=4, updated=8, deleted=3)
    extract_all(emulator, warehouse_url)
    assert gc.isenabled()
    assert_incremental_equals_full(engine, DEFAULT)
    assert seen == [False]
    assert gc.isenabled()
    gc.disable()
    try:
        with pytest.raises(RuntimeError), canonical_incremental.cyclic_gc_paused():
            raise RuntimeError
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(RuntimeError), canonical_incremental.cyclic_gc_paused():
        raise RuntimeError
    assert gc.isenabled()
