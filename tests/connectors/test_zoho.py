"""Zoho CRM and Bigin through the emulator: paging, page tokens, If-Modified-Since, deletions, writes."""

import logging
from datetime import UTC, datetime, timedelta

import pytest

from connectors.config import HttpOptions, MatonConfig
from connectors.emulator.behaviours import Behaviours
from connectors.errors import AmbiguousWriteError, ConnectorError, FatalError
from connectors.factory import build_clients
from connectors.times import parse_instant, to_iso
from connectors.zoho import ZohoCursor
from tests.connectors.conftest import FAST_RETRY, MATON_KEY, drain, endpoint_count
from tests.connectors.lossy_proxy import Loss, lossy_proxy
from tests.connectors.scripted_server import Answer, ScriptedServer

LEADS = "GET /zoho-crm/crm/v8/{module}"
BIGIN_LIST = "GET /zoho-bigin/bigin/v2/{module}"


def modified_times(emu, table):
    return {rid: r["Modified_Time"] for rid, r in emu.dataset.tables[table].items()}


def changed_since(before, after):
    return {rid for rid, stamp in after.items() if before.get(rid) != stamp}


def test_full_read_returns_every_lead_including_converted(emu, connect):
    crm = connect(emu).zoho_crm
    records, cursor, deleted, _pages = drain(crm.read_leads())
    stored = emu.dataset.tables["zoho_crm/lead"]
    assert {r["id"] for r in records} == set(stored)
    assert any(r["$converted"] for r in stored.values())
    newest = max(parse_instant(r["Modified_Time"]) for r in stored.values())
    assert cursor.modified_since == to_iso(newest)
    assert cursor.deleted_since is not None
    assert deleted == []
    assert all(set(r) <= {"id", *crm.product.modules["Leads"]} for r in records)
    assert endpoint_count(emu, "zoho_crm", LEADS) == 1


def test_cursor_survives_json():
    cursor = ZohoCursor("2026-01-01T00:00:00+00:00", None, False, True)
    assert ZohoCursor.from_json(cursor.to_json()) == cursor
    assert ZohoCursor.from_json({}) == ZohoCursor()


def test_incremental_read_gets_changes_and_deletions(emu, connect):
    crm = connect(emu).zoho_crm
    _, cursor, _, _ = drain(crm.read_leads())
    before = modified_times(emu, "zoho_crm/lead")
    summary = emu.mutate(seed=3, new=10, updated=60, deleted=8)
    after = modified_times(emu, "zoho_crm/lead")
    changed = changed_since(before, after)
    gone = set(before) - set(after)
    assert changed, summary
    assert gone, summary
    emu.reset_counters()

    records, next_cursor, deleted, _ = drain(crm.read_leads(cursor))
    assert changed <= {r["id"] for r in records}
    assert len(records) < len(after) / 2
    assert gone <= set(deleted)
    assert next_cursor.deleted_feed is True
    assert next_cursor.honours_if_modified_since is True
    assert next_cursor.modified_since > cursor.modified_since
    assert endpoint_count(emu, "zoho_crm", LEADS) == 1
    assert endpoint_count(emu, "zoho_crm", "GET /zoho-crm/crm/v8/{module}/deleted") == 1


def test_modified_since_the_cursor_includes_a_record_upserted_after_it(emu, connect):
    """Reverse sync's look before its creates: what the next extract would read (the watermark less
    the lookback) without the deletion feed, a record someone upserted just now among it."""
    crm = connect(emu).zoho_crm
    _, cursor, _, _ = drain(crm.read_leads())
    assert {r["id"] for r in crm.modified_since("Leads", None)} == set(emu.dataset.tables["zoho_crm/lead"])
    watermark = parse_instant(cursor.modified_since)
    recent = {
        rid
        for rid, stamp in modified_times(emu, "zoho_crm/lead").items()
        if parse_instant(stamp) >= watermark - crm.lookback
    }
    before = datetime.now(UTC) - timedelta(seconds=1)
    (added,) = crm.upsert("Leads", [{"Last_Name": "Rua", "Email": "rua@example.org"}])
    emu.reset_counters()
    assert {r["id"] for r in crm.modified_since("Leads", cursor)} == {*recent, str(added.record_id)}
    assert {r["id"] for r in crm.modified_since("Leads", cursor, after=before)} == {str(added.record_id)}
    assert endpoint_count(emu, "zoho_crm", LEADS) == 2
    assert endpoint_count(emu, "zoho_crm", "GET /zoho-crm/crm/v8/{module}/deleted") == 0


def test_nothing_new_is_one_304_and_an_unchanged_cursor(emu, connect):
    crm = connect(emu).zoho_crm
    _, cursor, _, _ = drain(crm.read_contacts())
    emu.reset_counters()
    records, again, _deleted, _ = drain(crm.read_contacts(cursor, lookback=timedelta(0)))
    # Without a lookback the read still starts a second early (the boundary may be exclusive): only
    # the record(s) of the watermark's second and the one before come back.
    assert 1 <= len(records) <= 2
    assert again.modified_since == cursor.modified_since
    ahead = ZohoCursor(
        to_iso(parse_instant(cursor.modified_since) + timedelta(seconds=2)), cursor.deleted_since
    )
    records, after, _, _pages = drain(crm.read_contacts(ahead, lookback=timedelta(0)))
    assert records == []
    assert after.modified_since == ahead.modified_since


def test_page_tokens_carry_the_listing_past_2000_records(start_emulator, connect):
    emu = start_emulator(seed=7, people=7000)
    crm = connect(emu).zoho_crm
    records, _, _, _pages = drain(crm.read_leads())
    stored = emu.dataset.tables["zoho_crm/lead"]
    assert len(stored) > 2200
    assert [r["id"] for r in records] == list(dict.fromkeys(r["id"] for r in records))
    assert {r["id"] for r in records} == set(stored)
    assert endpoint_count(emu, "zoho_crm", LEADS) == -(-len(stored) // 200)
    times = [r["Modified_Time"] for r in records]
    assert [parse_instant(t) for t in times] == sorted(parse_instant(t) for t in times)


def test_expired_page_token_restarts_from_the_watermark(start_emulator, connect, caplog):
    emu = start_emulator(seed=7, people=7000)
    crm = connect(emu).zoho_crm
    caplog.set_level(logging.WARNING, logger="connectors.zoho_crm")
    reader = crm.read_leads()
    first = [next(reader) for _ in range(11)]
    emu.expire_zoho_page_tokens()
    rest = list(reader)
    records = [r for page in first + rest for r in page.records]
    stored = emu.dataset.tables["zoho_crm/lead"]
    assert {r["id"] for r in records} == set(stored)
    assert len(records) < len(stored) + 200, "restarted from scratch instead of the watermark"
    assert "page token expired; restarting from" in caplog.text


def test_bigin_ignoring_if_modified_since_is_detected_and_read_newest_first(emu, connect):
    bigin = connect(emu).zoho_bigin
    _, cursor, _, _ = drain(bigin.read_contacts())
    before = modified_times(emu, "zoho_bigin/contact")
    emu.mutate(seed=5, updated=60)
    changed = changed_since(before, modified_times(emu, "zoho_bigin/contact"))
    assert changed
    emu.reset_counters()

    records, cursor2, _, pages = drain(bigin.read_contacts(cursor))
    assert changed <= {r["id"] for r in records}
    assert cursor2.honours_if_modified_since is False
    assert cursor2.deleted_feed is False
    assert all(p.cursor.modified_since == cursor.modified_since for p in pages[:-2])
    assert cursor2.modified_since > cursor.modified_since
    # One ascending probe that showed old records, then one page newest first.
    assert endpoint_count(emu, "zoho_bigin", BIGIN_LIST) == 2
    emu.reset_counters()

    drain(bigin.read_contacts(cursor2))
    assert endpoint_count(emu, "zoho_bigin", BIGIN_LIST) == 1
    assert endpoint_count(emu, "zoho_bigin", "GET /zoho-bigin/bigin/v2/{module}/deleted") == 0


def test_bigin_honouring_the_header_is_read_like_crm(start_emulator, connect):
    emu = start_emulator(
        seed=7, people=200, bigin_honours_if_modified_since=True, bigin_deleted_endpoint=True
    )
    bigin = connect(emu).zoho_bigin
    _, cursor, _, _ = drain(bigin.read_contacts())
    before = modified_times(emu, "zoho_bigin/contact")
    emu.mutate(seed=5, updated=30, deleted=6)
    after = modified_times(emu, "zoho_bigin/contact")
    records, cursor2, deleted, _ = drain(bigin.read_contacts(cursor))
    assert changed_since(before, after) <= {r["id"] for r in records}
    assert (set(before) - set(after)) <= set(deleted)
    assert cursor2.honours_if_modified_since is True
    assert cursor2.deleted_feed is True


def test_window_read_stays_inside_the_window(emu, connect):
    crm = connect(emu).zoho_crm
    stored = emu.dataset.tables["zoho_crm/contact"]
    times = sorted(parse_instant(r["Modified_Time"]) for r in stored.values())
    start, end = times[len(times) // 4], times[len(times) // 2]
    records, _, _, _ = drain(crm.read_contacts_window(start, end))
    expected = {rid for rid, r in stored.items() if start <= parse_instant(r["Modified_Time"]) <= end}
    assert {r["id"] for r in records} == expected


def test_org_country(emu, connect):
    clients = connect(emu)
    assert clients.zoho_crm.org_country() == "US"
    assert clients.zoho_bigin.org_country() == "US"


def test_update_reports_each_record_and_207_hides_a_failure(emu, connect):
    crm = connect(emu).zoho_crm
    ids = sorted(emu.dataset.tables["zoho_crm/contact"])[:3]
    emu.reject_writes("zoho_crm", ids[1], "INVALID_DATA", "the value is not allowed")
    results = crm.update("Contacts", [{"id": i, "Title": "Buyer"} for i in ids])
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].code == "INVALID_DATA"
    assert results[1].record_id == ids[1]
    assert not results[1].retriable
    assert emu.dataset.tables["zoho_crm/contact"][ids[0]]["Title"] == "Buyer"


def test_upsert_inserts_then_updates_by_email(emu, connect):
    crm = connect(emu).zoho_crm
    new = {"Last_Name": "Ngata", "Email": "hemi.ngata@example.org"}
    [first] = crm.upsert("Leads", [new], duplicate_check_fields=["Email"])
    assert first.ok
    assert first.action == "insert"
    assert first.record_id
    [second] = crm.upsert("Leads", [{**new, "City": "Napier"}], duplicate_check_fields=["Email"])
    assert second.ok
    assert second.action == "update"
    assert second.record_id == first.record_id
    upserts = [w for w in emu.writes() if w.path.endswith("/upsert")]
    assert len(upserts) == 2


def test_changed_record_is_a_conflict_not_overwritten_and_not_retried(emu, connect):
    crm = connect(emu).zoho_crm
    record_id, record = next(iter(emu.dataset.tables["zoho_crm/lead"].items()))
    read_at = parse_instant(record["Modified_Time"]) - timedelta(seconds=10)
    emu.reset_counters()
    [result] = crm.update("Leads", [{"id": record_id, "City": "Elsewhere"}], if_unmodified_since=read_at)
    assert not result.ok
    assert result.conflict
    assert not result.retriable
    assert emu.dataset.tables["zoho_crm/lead"][record_id]["City"] != "Elsewhere"
    assert endpoint_count(emu, "zoho_crm", "PUT /zoho-crm/crm/v8/{module}") == 1
    [fine] = crm.update(
        "Leads",
        [{"id": record_id, "City": "Elsewhere"}],
        if_unmodified_since=parse_instant(record["Modified_Time"]),
    )
    assert fine.ok


def test_write_batches_are_capped_and_updates_need_ids(emu, connect):
    crm = connect(emu).zoho_crm
    with pytest.raises(ValueError, match="at most 100"):
        crm.upsert("Leads", [{"Last_Name": str(i)} for i in range(101)])
    with pytest.raises(ValueError, match="'id'"):
        crm.update("Leads", [{"Last_Name": "x"}])
    assert emu.total_requests() == 0
    assert crm.update("Leads", []) == []


def test_unknown_stream_is_refused(emu, connect):
    with pytest.raises(ValueError, match="no 'Leads' stream"):
        list(connect(emu).zoho_bigin.read_leads())


def three_records(emu, table):
    """Three records of ``table`` and the If-Unmodified-Since a batch of them carries: the latest of
    their modification times when they were read."""
    records = sorted(emu.dataset.tables[table].values(), key=lambda r: r["id"])[:3]
    return [r["id"] for r in records], max(parse_instant(r["Modified_Time"]) for r in records)


CRM_LIST = "GET /zoho-crm/crm/v8/{module}"
ZOHO_CONTACTS = {
    "zoho_crm": ("zoho_crm/contact", "PUT /zoho-crm/crm/v8/{module}", CRM_LIST),
    "zoho_bigin": ("zoho_bigin/contact", "PUT /zoho-bigin/bigin/v2/{module}", BIGIN_LIST),
}
"""Per product: the contacts table, and the update and list (read back by id) endpoints."""


@pytest.mark.parametrize("shape", ["per_record", "whole_call"])
@pytest.mark.parametrize("source", ["zoho_crm", "zoho_bigin"])
def test_a_conflict_in_a_batch_is_a_conflict_and_the_others_are_written(
    start_emulator, connect, source, shape
):
    emu = start_emulator(seed=7, people=200, behaviours=Behaviours(zoho_conflict=shape))
    client = getattr(connect(emu), source)
    table, put, get = ZOHO_CONTACTS[source]
    ids, read_at = three_records(emu, table)
    # Someone edits the third record after our extract read it.
    assert client.update("Contacts", [{"id": ids[2], "Title": "Set by a person"}])[0].ok
    emu.reset_counters()

    results = client.update(
        "Contacts", [{"id": i, "Title": "Buyer"} for i in ids], if_unmodified_since=read_at
    )
    assert [r.ok for r in results] == [True, True, False]
    assert (results[2].record_id, results[2].code, results[2].conflict) == (ids[2], "ALREADY_MODIFIED", True)
    assert not results[2].retriable
    stored = emu.dataset.tables[table]
    assert [stored[i]["Title"] for i in ids] == ["Buyer", "Buyer", "Set by a person"]
    # Per record: the one call. Whole call: refused, the three read back by id, the two sent again.
    expected = {"per_record": (1, 0), "whole_call": (2, 1)}[shape]
    assert (endpoint_count(emu, source, put), endpoint_count(emu, source, get)) == expected


def test_the_legacy_record_modified_code_is_a_conflict_too(emu, connect):
    crm = connect(emu).zoho_crm
    ids, read_at = three_records(emu, "zoho_crm/contact")
    emu.reject_writes("zoho_crm", ids[1], "RECORD_MODIFIED", "record modified")
    results = crm.update("Contacts", [{"id": i, "Title": "Buyer"} for i in ids], if_unmodified_since=read_at)
    assert [(r.ok, r.conflict) for r in results] == [(True, False), (False, True), (True, False)]


@pytest.mark.parametrize("shape", ["per_record", "whole_call"])
def test_a_repeat_refused_after_a_lost_answer_is_checked_against_what_we_sent(start_emulator, connect, shape):
    """The first attempt lands and its answer is lost; someone then edits one of the records; the
    retry is refused for all three. Two hold what we sent (our own write moved their modification
    time): sent. The third holds the person's edit: a conflict, and not overwritten."""
    emu = start_emulator(seed=7, people=200, behaviours=Behaviours(zoho_conflict=shape))
    ids, read_at = three_records(emu, "zoho_crm/contact")
    direct = connect(emu).zoho_crm

    def person_edits() -> None:
        assert direct.update("Contacts", [{"id": ids[2], "Title": "Set by a person"}])[0].ok

    loss = Loss("PUT", "/zoho-crm/crm/v8/Contacts", meanwhile=person_edits)
    with lossy_proxy(emu.maton_gateway_url, loss) as url:
        clients = build_clients(
            MatonConfig(MATON_KEY, url, {}, rate=1000.0), options=HttpOptions(retry=FAST_RETRY)
        )
        with clients:
            results = clients.zoho_crm.update(
                "Contacts", [{"id": i, "Title": "Buyer"} for i in ids], if_unmodified_since=read_at
            )
    assert loss.lost == 1
    assert [r.ok for r in results] == [True, True, False]
    assert all("earlier attempt" in r.message for r in results[:2])
    assert results[2].conflict
    stored = emu.dataset.tables["zoho_crm/contact"]
    assert [stored[i]["Title"] for i in ids] == ["Buyer", "Buyer", "Set by a person"]
    # Our first attempt, the person's edit, our retry; then one read back, and nothing sent again.
    assert endpoint_count(emu, "zoho_crm", "PUT /zoho-crm/crm/v8/{module}") == 3
    assert endpoint_count(emu, "zoho_crm", CRM_LIST) == 1


def test_a_product_that_ignores_ids_fails_the_read_back_in_one_line():
    """Bigin's support for ``ids`` is not documented: records other than those asked for must not be
    read as "not changed" (the reverse sync then splits the batch and sends the halves instead)."""
    whole = {
        "code": "ALREADY_MODIFIED",
        "details": {},
        "message": "Record updated time...",
        "status": "error",
    }
    stranger = {"id": "3", "Modified_Time": "2026-01-01T00:00:00-08:00", "Title": None}
    with ScriptedServer() as server:
        server.answer(Answer(412, whole), Answer(200, {"data": [stranger], "info": {"more_records": False}}))
        refused = pytest.raises(FatalError, match="IDS_IGNORED: asked for 2 records by id and got 1 others")
        with build_clients(MatonConfig(MATON_KEY, server.url, {}, rate=1000.0)) as clients, refused:
            clients.zoho_bigin.update(
                "Contacts",
                [{"id": "1", "Title": "Buyer"}, {"id": "2", "Title": "Buyer"}],
                if_unmodified_since=parse_instant("2026-01-01T00:00:00Z"),
            )
        read = server.seen[1]
    assert read.method == "GET"
    assert read.path.startswith("/zoho-bigin/bigin/v2/Contacts?")
    assert "ids=1%2C2" in read.path
    assert "fields=Modified_Time%2CModified_By%2CTitle" in read.path


@pytest.mark.parametrize("with_email", [True, False], ids=["every-record-has-an-email", "one-has-none"])
def test_an_upsert_is_repeated_after_a_lost_answer_only_when_every_record_can_be_found_again(emu, with_email):
    """The first attempt lands and its answer is lost. An upsert on Email finds, on the repeat, the
    records the first attempt made, so it may be repeated; a record with no Email would be inserted a
    second time, so the call is not repeated and its outcome stays unknown."""
    people = [
        {"Last_Name": "Once", "Email": "once@example.org"},
        {"Last_Name": "Twice", "Email": "twice@example.org" if with_email else None, "Phone": "+15550101"},
    ]
    loss = Loss("POST", "/zoho-crm/crm/v8/Leads/upsert")
    with lossy_proxy(emu.maton_gateway_url, loss) as url:
        clients = build_clients(
            MatonConfig(MATON_KEY, url, {}, rate=1000.0), options=HttpOptions(retry=FAST_RETRY)
        )
        with clients:
            if with_email:
                results = clients.zoho_crm.upsert("Leads", people)
            else:
                with pytest.raises(AmbiguousWriteError, match="zoho_crm POST"):
                    clients.zoho_crm.upsert("Leads", people)
    assert loss.lost == 1
    leads = emu.dataset.tables["zoho_crm/lead"].values()
    made = sorted(str(r["Last_Name"]) for r in leads if r["Last_Name"] in ("Once", "Twice"))
    assert made == ["Once", "Twice"], "each person made once, whatever the answer"
    calls = endpoint_count(emu, "zoho_crm", "POST /zoho-crm/crm/v8/{module}/upsert")
    if with_email:
        assert calls == 2
        assert [r.ok for r in results] == [True, True]
    else:
        assert calls == 1


LATER = datetime.now(UTC) - timedelta(minutes=5)
EARLIER = LATER - timedelta(hours=1)


@pytest.mark.parametrize("several", ["refuse", "update_oldest", "update_newest"])
def test_an_upsert_whose_email_several_records_hold_is_played_each_way(start_emulator, connect, several):
    """Zoho does not say which record an upsert takes when several hold its duplicate-check value:
    the emulator refuses it (DUPLICATE_DATA), or updates the oldest or the last modified of them."""
    emu = start_emulator(seed=7, people=60, behaviours=Behaviours(zoho_upsert_several=several))
    leads = emu.dataset.tables["zoho_crm/lead"]
    first, second = sorted(leads, key=lambda i: (leads[i]["Created_Time"], i))[:2]
    emu.edit("zoho_crm/lead", second, {"Email": "shared@example.org"}, when=EARLIER)
    emu.edit("zoho_crm/lead", first, {"Email": "Shared@example.org"}, when=LATER)  # edited last
    (result,) = connect(emu).zoho_crm.upsert(
        "Leads", [{"Last_Name": "Upserted", "Email": "shared@example.org"}]
    )
    if several == "refuse":
        assert (result.ok, result.code) == (False, "DUPLICATE_DATA")
        assert {leads[first]["Last_Name"], leads[second]["Last_Name"]} != {"Upserted"}
        return
    assert result.ok
    assert result.record_id == str(first), "the oldest is also the one edited last here"
    assert leads[first]["Last_Name"] == "Upserted"
    assert leads[second]["Last_Name"] != "Upserted"


def test_the_last_modified_of_several_matches_is_the_one_updated(start_emulator, connect):
    emu = start_emulator(seed=7, people=60, behaviours=Behaviours(zoho_upsert_several="update_newest"))
    leads = emu.dataset.tables["zoho_crm/lead"]
    first, second = sorted(leads, key=lambda i: (leads[i]["Created_Time"], i))[:2]
    emu.edit("zoho_crm/lead", first, {"Email": "shared@example.org"}, when=EARLIER)
    emu.edit("zoho_crm/lead", second, {"Email": "shared@example.org"}, when=LATER)  # created later too
    (result,) = connect(emu).zoho_crm.upsert(
        "Leads", [{"Last_Name": "Upserted", "Email": "shared@example.org"}]
    )
    assert result.record_id == str(second)
    oldest = start_emulator(seed=7, people=60, behaviours=Behaviours(zoho_upsert_several="update_oldest"))
    old_leads = oldest.dataset.tables["zoho_crm/lead"]
    oldest.edit("zoho_crm/lead", first, {"Email": "shared@example.org"}, when=EARLIER)
    oldest.edit("zoho_crm/lead", second, {"Email": "shared@example.org"}, when=LATER)
    (taken,) = connect(oldest).zoho_crm.upsert(
        "Leads", [{"Last_Name": "Upserted", "Email": "shared@example.org"}]
    )
    assert taken.record_id == str(first)
    assert old_leads[first]["Last_Name"] == "Upserted"


def test_layouts_say_what_a_create_must_carry_and_the_api_enforces_it(start_emulator, connect):
    """The org's layout makes Company mandatory on Leads: the layouts answer marks it ``required``
    (beside Last_Name and the owner Zoho fills), and an upsert that inserts without it is refused
    with MANDATORY_NOT_FOUND naming it, while one that updates an existing lead is not."""
    emu = start_emulator(seed=7, people=40, behaviours=Behaviours(zoho_layout_required=("Leads.Company",)))
    crm = connect(emu).zoho_crm
    (standard,) = crm.layouts("Leads")
    assert standard["status"] == "active"
    required = {f["api_name"] for s in standard["sections"] for f in s["fields"] if f["required"]}
    assert required == {"Last_Name", "Company", "Owner"}
    (contacts,) = crm.layouts("Contacts")
    assert {f["api_name"] for s in contacts["sections"] for f in s["fields"] if f["required"]} == {
        "Last_Name",
        "Owner",
    }
    (refused,) = crm.upsert("Leads", [{"Last_Name": "New", "Email": "new.person@example.org"}])
    assert (refused.ok, refused.code, refused.details.get("api_name")) == (
        False,
        "MANDATORY_NOT_FOUND",
        "Company",
    )
    leads = emu.dataset.tables["zoho_crm/lead"]
    held = next(i for i in leads if leads[i]["Email"])
    (updated,) = crm.upsert("Leads", [{"Last_Name": "Same", "Email": leads[held]["Email"]}])
    assert (updated.ok, updated.record_id) == (True, str(held))
    (added,) = crm.upsert(
        "Leads", [{"Last_Name": "New", "Company": "Acme", "Email": "new.person@example.org"}]
    )
    assert added.ok


def test_layouts_a_connection_may_not_read_are_refused_in_one_line(start_emulator, connect):
    emu = start_emulator(seed=7, people=20, behaviours=Behaviours(zoho_layouts_readable=False))
    with pytest.raises(ConnectorError) as refused:
        connect(emu).zoho_bigin.layouts("Contacts")
    assert refused.value.status == 401
    assert "OAUTH_SCOPE_MISMATCH" in str(refused.value)
    assert MATON_KEY not in str(refused.value)
