"""Zoho reads where the vendor's documents are clear and we were not, or silent: expired tokens, chain
limits, the If-Modified-Since boundary, Bigin's missing ``/deleted`` and records awaiting approval."""

import copy
import logging
from datetime import UTC, datetime, timedelta

import pytest

from connectors.emulator import Dataset, generate_dataset
from connectors.emulator.behaviours import Behaviours
from connectors.errors import FatalError
from connectors.http import HttpClient, RetryPolicy
from connectors.times import parse_instant
from connectors.zoho import CRM, ZohoClient, ZohoCursor
from tests.connectors.conftest import drain
from tests.connectors.scripted_server import Answer, ScriptedServer

LEADS = "GET /zoho-crm/crm/v8/{module}"
FIXED_NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def with_bulk_leads(
    count: int, per_second: int, *, people: int = 40, table: str = "zoho_crm/lead"
) -> Dataset:
    """A small dataset plus ``count`` leads (or records of ``table``) copied from a generated one,
    ``per_second`` of them sharing each ``Modified_Time`` second, so a chain limit falls inside a second."""
    dataset = generate_dataset(seed=31, people=people, now=FIXED_NOW)
    leads = dataset.tables[table]
    template = next(iter(leads.values()))
    start = datetime.fromisoformat(template["Modified_Time"]) - timedelta(days=20)
    for number in range(count):
        record_id = dataset.zoho_id(table.partition("/")[0])
        stamp = (start + timedelta(seconds=number // per_second)).isoformat()
        leads[record_id] = {
            **copy.deepcopy(template),
            "id": record_id,
            "Email": f"bulk.lead.{number}@reads.example.org",
            "Phone": None,
            "Mobile": None,
            "Last_Name": f"Bulk{number}",
            "Created_Time": stamp,
            "Modified_Time": stamp,
        }
    return dataset


# ------------------------------------------------------------------------------- expired tokens


def listing(records, token=None):
    info = {"more_records": token is not None, "next_page_token": token}
    return Answer(200, {"data": records, "info": info})


def lead(number, second):
    return {"id": str(number), "Modified_Time": f"2026-03-01T10:00:{second:02d}+00:00"}


@pytest.fixture
def scripted():
    with ScriptedServer() as server:
        client = HttpClient("zoho_crm", server.url, retry=RetryPolicy(max_attempts=1))
        yield server, ZohoClient(client, CRM)
        client.close()


def test_an_expired_page_token_is_known_by_its_code_not_its_words(scripted, caplog):
    server, crm = scripted
    caplog.set_level(logging.WARNING, logger="connectors.zoho_crm")
    server.answer(
        listing([lead(1, 1), lead(2, 5)], token="t1"),
        Answer(
            400, {"code": "EXPIRED_VALUE", "details": {}, "message": "no longer usable", "status": "error"}
        ),
        listing([lead(2, 5), lead(3, 7)]),
    )
    records, cursor, _, _ = drain(crm.read_leads())
    assert [r["id"] for r in records] == ["1", "2", "3"]  # the repeated lead 2 is not yielded twice
    restart = server.seen[2]
    # The new chain starts a second before the newest time read, whichever way the boundary falls.
    assert restart.headers["If-Modified-Since"] == "2026-03-01T10:00:04+00:00"
    assert "page_token" not in restart.path
    assert parse_instant(cursor.modified_since) == parse_instant("2026-03-01T10:00:07+00:00")
    assert "page token expired; restarting" in caplog.text


def test_a_refused_page_token_that_did_not_expire_fails_at_once(scripted):
    server, crm = scripted
    pages = [listing([lead(n * 200 + i, n) for i in range(200)], token=f"t{n}") for n in range(10)]
    refused = {"code": "INVALID_DATA", "details": {"param_name": "page_token"}, "message": "invalid data"}
    server.answer(*pages, Answer(400, {**refused, "status": "error"}))
    with pytest.raises(FatalError) as failure:
        list(crm.read_leads())
    assert failure.value.code == "INVALID_DATA"
    assert len(server.seen) == 11  # no new chain: only an expired token is worth one


# --------------------------------------------------------------------------------- chain limit


@pytest.mark.parametrize("boundary", ["inclusive", "exclusive"])
def test_a_module_larger_than_a_token_chain_is_read_in_modified_time_slices(
    start_emulator, connect, boundary, caplog
):
    behaviours = Behaviours(zoho_token_chain_limit=450, zoho_if_modified_since=boundary)
    emu = start_emulator(dataset=with_bulk_leads(1_000, per_second=3), behaviours=behaviours)
    caplog.set_level(logging.INFO, logger="connectors.zoho_crm")
    records, cursor, _, _ = drain(connect(emu).zoho_crm.read_leads())
    stored = emu.dataset.tables["zoho_crm/lead"]
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == len(stored)
    assert set(ids) == set(stored)
    newest = max(parse_instant(r["Modified_Time"]) for r in stored.values())
    assert parse_instant(cursor.modified_since) == newest
    # 400 records a chain (two pages of 200 under the limit of 450): at least three chains.
    assert emu.request_counts()[("zoho_crm", LEADS)] >= 6
    assert "went past the records one page-token chain may list" in caplog.text


@pytest.mark.parametrize("boundary", ["inclusive", "exclusive"])
def test_more_records_in_one_second_than_a_chain_holds_are_reported_not_looped_over(
    start_emulator, connect, boundary, caplog
):
    behaviours = Behaviours(zoho_token_chain_limit=250, zoho_if_modified_since=boundary)
    # Two seconds of 450 records each, among the generated leads.
    emu = start_emulator(dataset=with_bulk_leads(900, per_second=450), behaviours=behaviours)
    caplog.set_level(logging.INFO, logger="connectors.zoho_crm")
    records, _, _, _ = drain(connect(emu).zoho_crm.read_leads())
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids))
    stored = emu.dataset.tables["zoho_crm/lead"]
    crowded = {r["Modified_Time"] for r in stored.values() if str(r["Last_Name"]).startswith("Bulk")}
    outside = {rid for rid, r in stored.items() if r["Modified_Time"] not in crowded}
    assert outside <= set(ids)  # every record of an ordinary second is read
    assert emu.request_counts()[("zoho_crm", LEADS)] < 20
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors, "the skipped records must be reported"
    assert all("share Modified_Time" in r.getMessage() for r in errors)


BIGIN_CONTACTS = "GET /zoho-bigin/bigin/v2/{module}"


def test_a_bigin_module_past_a_chain_is_read_whole_when_bigin_ignores_if_modified_since(
    start_emulator, connect, caplog
):
    """Slices need If-Modified-Since; where Bigin ignores it, the records the chains could not reach
    are read newest first down to where they stopped, in the same run."""
    behaviours = Behaviours(zoho_token_chain_limit=450, bigin_honours_if_modified_since=False)
    dataset = with_bulk_leads(700, per_second=3, table="zoho_bigin/contact")
    emu = start_emulator(dataset=dataset, behaviours=behaviours)
    caplog.set_level(logging.INFO, logger="connectors.zoho_bigin")
    records, cursor, _, _ = drain(connect(emu).zoho_bigin.read_contacts())
    stored = emu.dataset.tables["zoho_bigin/contact"]
    assert len(stored) > 450 + 200
    assert {r["id"] for r in records} == set(stored)
    newest = max(parse_instant(r["Modified_Time"]) for r in stored.values())
    assert parse_instant(cursor.modified_since) == newest
    assert cursor.honours_if_modified_since is False  # the next run goes newest first at once
    assert "reading the rest newest first" in caplog.text
    # Two pages, the chain limit, one page showing the header ignored, two pages newest first, and
    # the deletions probe: no chain listing the oldest records again.
    assert emu.request_counts()[("zoho_bigin", BIGIN_CONTACTS)] <= 7


def test_a_bigin_module_past_two_chains_fails_in_one_line_keeping_what_it_read(start_emulator, connect):
    behaviours = Behaviours(zoho_token_chain_limit=450, bigin_honours_if_modified_since=False)
    emu = start_emulator(
        dataset=with_bulk_leads(1_000, per_second=3, table="zoho_bigin/contact"), behaviours=behaviours
    )
    pages: list = []
    with pytest.raises(FatalError, match="If-Modified-Since is ignored"):
        pages.extend(connect(emu).zoho_bigin.read_contacts())
    read = {r["id"] for page in pages for r in page.records}
    assert len(read) == 800  # the 400 oldest and the 400 newest: each chain's two pages under 450
    assert all(page.cursor.modified_since is not None for page in pages)


# ---------------------------------------------------------------- If-Modified-Since boundary


@pytest.mark.parametrize("boundary", ["inclusive", "exclusive"])
def test_a_record_changed_in_the_watermarks_second_after_a_read_is_not_lost(
    start_emulator, connect, boundary
):
    # The emulator's clock stays at its dataset's ``now`` (in the future), so every change made
    # through the API lands in the same second, the one the watermark ends up in.
    future = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    behaviours = Behaviours(zoho_if_modified_since=boundary)
    emu = start_emulator(seed=5, people=30, now=future, behaviours=behaviours)
    crm = connect(emu).zoho_crm
    _, cursor, _, _ = drain(crm.read_contacts())
    first, second = sorted(emu.dataset.tables["zoho_crm/contact"])[:2]
    assert crm.update("Contacts", [{"id": first, "Title": "Early"}])[0].ok
    records, cursor, _, _ = drain(crm.read_contacts(cursor, lookback=timedelta(0)))
    assert first in {r["id"] for r in records}
    assert parse_instant(cursor.modified_since) == future
    assert crm.update("Contacts", [{"id": second, "Title": "Same second"}])[0].ok
    records, _, _, _ = drain(crm.read_contacts(cursor, lookback=timedelta(0)))
    assert second in {r["id"] for r in records}


# ------------------------------------------------------------------------------------ Bigin


@pytest.mark.parametrize(
    ("answer", "feed"),
    [("missing_404", False), ("record_id_400", False), ("empty_204", None), ("feed", True)],
)
def test_bigin_reads_any_non_list_deleted_answer_as_no_feed(start_emulator, connect, answer, feed):
    emu = start_emulator(seed=5, people=40, behaviours=Behaviours(bigin_deleted=answer))
    bigin = connect(emu).zoho_bigin
    _, cursor, _, _ = drain(bigin.read_contacts())
    victim = sorted(emu.dataset.tables["zoho_bigin/contact"])[0]
    emu.delete_zoho_record("zoho_bigin/contact", victim)
    _, after, deleted, _ = drain(bigin.read_contacts(cursor))
    assert after.deleted_feed is feed
    assert deleted == ([victim] if feed else [])


def test_bigin_contacts_awaiting_approval_are_read_with_their_state(start_emulator, connect):
    emu = start_emulator(seed=5, people=40, behaviours=Behaviours(bigin_unapproved_share=0.3))
    records, _, _, _ = drain(connect(emu).zoho_bigin.read_contacts())
    stored = emu.dataset.tables["zoho_bigin/contact"]
    assert {r["id"] for r in records} == set(stored)
    states = [r["$approval_state"] for r in records]
    assert "approval_process_pending" in states
    assert "approved" in states


def test_the_deletion_watermark_tells_when_the_feed_no_longer_reaches_back():
    now = datetime(2026, 6, 1, tzinfo=UTC)
    recent = ZohoCursor(deleted_since=(now - timedelta(days=30)).isoformat())
    old = ZohoCursor(deleted_since=(now - timedelta(days=61)).isoformat())
    assert not recent.feed_outlived(now)
    assert old.feed_outlived(now)
    assert not ZohoCursor().feed_outlived(now)
