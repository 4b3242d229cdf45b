"""The canonical checks, scoped to one run's changes and over the whole warehouse.

A scoped check must see what the run can have broken; the whole check, which runs on a cadence, after a
full rebuild and after a failure, must see the rest.
"""

import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.identity.canonical_incremental import build_canonical_incremental
from models.identity.checks import (
    identifiers_belong_to_one_contact,
    merges_have_no_cycles,
    records_link_to_one_contact,
    run_check,
)
from models.identity.linking import IdentityConfig
from models.identity.phases import CanonicalConfig
from models.warehouse.db import open_warehouse
from models.warehouse.store import RawRow, RawStore, StreamKey, read_cursor
from models.warehouse.tables import Contact, ContactMerge, ContactSource, utcnow
from tests.models.warehouse.test_waits import StoppedError, lock_held, stop_after

REGIONS = {"linkflow": "CN", "clicksend": "US", "clickfunnels": "US", "zoho_crm": "US", "zoho_bigin": "US"}
CONFIG = CanonicalConfig(regions=REGIONS, identity=IdentityConfig(household_split=False))
LEADS = StreamKey("zoho_crm", "lead")
DAY = timedelta(hours=24)


def lead(source_id: str, email: str) -> RawRow:
    return RawRow(source_id, {"id": source_id, "Email": email, "Last_Name": source_id})


def warehouse(url: str) -> Engine:
    """Four leads, two people each holding an email, resolved; then run "r2" changes lead 3 only."""
    engine = open_warehouse(url)
    store = RawStore(engine)
    store.write_page(LEADS, [lead("1", "a@example.com"), lead("2", "a@example.com")])
    store.write_page(LEADS, [lead("3", "b@example.com"), lead("4", "b@example.com")])
    build_canonical_incremental(engine, CONFIG, run_id="r1")
    store.write_page(LEADS, [RawRow("3", {"id": "3", "Email": "b@example.com", "Last_Name": "Changed"})])
    build_canonical_incremental(engine, CONFIG, run_id="r2")
    return engine


def unlink(engine: Engine, source_id: str, contact: str = "c_broken") -> None:
    """Break an invariant by hand: the record's link moves to ``contact``, made if new."""
    with engine.begin() as connection:
        if (
            connection.execute(sa.select(Contact.contact_id).where(Contact.contact_id == contact)).first()
            is None
        ):
            now = utcnow()
            connection.execute(
                sa.insert(Contact),
                {"contact_id": contact, "created_at": now, "updated_at": now, "source_count": 1},
            )
        connection.execute(
            sa.update(ContactSource).where(ContactSource.source_id == source_id).values(contact_id=contact)
        )


def test_a_run_changes_only_its_records_and_the_checks_pass_both_ways(sqlite_url: str) -> None:
    engine = warehouse(sqlite_url)
    for check in (identifiers_belong_to_one_contact, records_link_to_one_contact, merges_have_no_cycles):
        assert check(engine, "r2").passed
        assert check(engine, None).passed
        assert not check(engine, "r2").full


def test_a_violation_inside_the_runs_changes_is_caught_by_the_scoped_check(warehouse_url: str) -> None:
    engine = warehouse(warehouse_url)
    unlink(engine, "4")  # b@example.com: held by lead 3, which run r2 changed
    scoped = identifiers_belong_to_one_contact(engine, "r2")
    assert (scoped.passed, scoped.examples) == (False, ["email b@example.com"])


def test_a_violation_outside_the_runs_changes_waits_for_the_whole_check(warehouse_url: str) -> None:
    engine = warehouse(warehouse_url)
    unlink(engine, "2")  # a@example.com: nothing of run r2's
    assert identifiers_belong_to_one_contact(engine, "r2").passed
    assert not identifiers_belong_to_one_contact(engine, None).passed
    # run_check: the first check is whole (none passed yet), and it fails, so the next is whole too;
    # once whole checks pass, runs are checked by their changes until the cadence comes round.
    name = "identifiers_belong_to_one_contact"
    first = run_check(name, engine, "r2", DAY)
    assert (first.full, first.passed) == (True, False)
    assert run_check(name, engine, "r2", DAY).full
    unlink(engine, "1")  # lead 1 follows lead 2: the warehouse is consistent again
    assert run_check(name, engine, "r2", DAY).full
    assert not run_check(name, engine, "r2", DAY).full
    unlink(engine, "2", "c_other")
    assert run_check(name, engine, "r2", DAY).passed
    overdue = run_check(name, engine, "r2", timedelta(0))
    assert (overdue.full, overdue.passed) == (True, False)


def test_a_full_rebuild_and_a_check_run_alone_are_checked_whole(sqlite_url: str) -> None:
    engine = warehouse(sqlite_url)
    assert run_check("records_link_to_one_contact", engine, "r2", DAY).full
    assert not run_check("records_link_to_one_contact", engine, "r2", DAY).full
    build_canonical_incremental(engine, CONFIG, run_id="r3", full=True)
    assert run_check("records_link_to_one_contact", engine, "r3", DAY).full
    assert run_check("records_link_to_one_contact", engine, "elsewhere", DAY).full


def test_a_record_without_a_link_is_caught_in_scope_only_if_the_run_touched_it(sqlite_url: str) -> None:
    engine = warehouse(sqlite_url)
    with engine.begin() as connection:
        connection.execute(
            sa.update(ContactSource).where(ContactSource.source_id.in_(["1", "4"])).values(contact_id=None)
        )
    scoped = records_link_to_one_contact(engine, "r2")
    assert (scoped.failures, scoped.examples) == (1, ["zoho_crm/lead/4"])
    assert records_link_to_one_contact(engine, None).failures == 2


def test_a_merge_cycle_is_caught_in_scope_when_the_run_closed_it(sqlite_url: str) -> None:
    engine = warehouse(sqlite_url)
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(
            sa.insert(ContactMerge),
            [
                {"old_contact_id": "x1", "new_contact_id": "x2", "merged_at": now, "run_id": "r1"},
                {"old_contact_id": "x2", "new_contact_id": "x3", "merged_at": now, "run_id": "r1"},
            ],
        )
    assert merges_have_no_cycles(engine, "r2").passed
    with engine.begin() as connection:
        connection.execute(
            sa.insert(ContactMerge),
            {"old_contact_id": "x3", "new_contact_id": "x1", "merged_at": now, "run_id": "r2"},
        )
    scoped = merges_have_no_cycles(engine, "r2")
    assert (scoped.passed, scoped.examples) == (False, ["x3"])
    assert merges_have_no_cycles(engine, None).failures == 3


def test_a_run_that_re_resolved_more_records_than_the_limit_is_checked_whole(warehouse_url: str) -> None:
    """Run r2 re-resolved leads 3 and 4: scoped under a limit of two records, whole over one."""
    engine = warehouse(warehouse_url)
    name = "identifiers_belong_to_one_contact"
    assert run_check(name, engine, "r2", DAY).full  # the first check: none whole has passed yet
    assert not run_check(name, engine, "r2", DAY, scope_limit=2).full
    unlink(engine, "2")  # outside r2's changes: only a whole check sees it
    large = run_check(name, engine, "r2", DAY, scope_limit=1)
    assert (large.full, large.passed) == (True, False)


@pytest.mark.usefixtures("short_busy_timeout")
def test_a_whole_check_is_recorded_after_another_writer_commits(sqlite_url: str) -> None:
    # The record of a passing whole check went through a plain transaction and failed the step once
    # another writer held the lock past the busy timeout.
    engine = open_warehouse(sqlite_url)
    holder = lock_held(sqlite_url, 1.0)
    result = run_check("merges_have_no_cycles", engine, None, timedelta(hours=1))
    holder.join()
    assert result.passed
    assert result.full
    with engine.connect() as connection:
        assert read_cursor(connection, StreamKey("canonical", "checks", "merges_have_no_cycles"))


def test_a_stop_ends_the_wait_for_the_whole_checks_record(sqlite_url: str) -> None:
    # With another writer holding the lock, the record used to wait out its holder (up to ten
    # minutes), whatever the sync's stop said.
    engine = open_warehouse(sqlite_url)
    holder = lock_held(sqlite_url, 3.0)
    started = time.monotonic()
    with pytest.raises(StoppedError):
        run_check("merges_have_no_cycles", engine, None, timedelta(hours=1), checkpoint=stop_after(0.3))
    assert time.monotonic() - started < 1.5
    holder.join()
    with engine.connect() as connection:
        assert read_cursor(connection, StreamKey("canonical", "checks", "merges_have_no_cycles")) is None
