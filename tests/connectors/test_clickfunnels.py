"""ClickFunnels through the emulator: discovery, keyset pages, updated_at scans, id scans, writes."""

from datetime import UTC, datetime, timedelta

import pytest

from connectors.clickfunnels import ClickFunnelsClient, ClickFunnelsContactCursor
from connectors.emulator.behaviours import Behaviours
from connectors.times import parse_instant
from tests.connectors.conftest import drain, endpoint_count

LIST = "GET /clickfunnels/api/v2/workspaces/{workspace_id}/contacts"


def listed(emu):
    return {rid: r for rid, r in emu.dataset.tables["clickfunnels/contact"].items() if r["anonymous"] is None}


def test_full_read_discovers_the_workspace_and_hides_anonymous_contacts(emu, connect):
    clickfunnels = connect(emu).clickfunnels
    records, cursor, _, _ = drain(clickfunnels.read_contacts())
    visible = listed(emu)
    assert len(visible) < len(emu.dataset.tables["clickfunnels/contact"])
    assert [r["id"] for r in records] == list(dict.fromkeys(r["id"] for r in records))
    assert {r["id"] for r in records} == set(visible)
    newest = max(parse_instant(r["updated_at"]) for r in visible.values())
    [(_workspace, mark)] = cursor.updated_at.items()
    assert parse_instant(mark) == newest.replace(microsecond=0)
    assert endpoint_count(emu, "clickfunnels", "GET /clickfunnels/api/v2/teams") == 1
    assert endpoint_count(emu, "clickfunnels", LIST) == -(-len(visible) // 20)
    assert ClickFunnelsContactCursor.from_json(cursor.to_json()) == cursor


def test_incremental_scan_stops_at_the_watermark(emu, connect):
    clickfunnels = connect(emu).clickfunnels
    _, cursor, _, _ = drain(clickfunnels.read_contacts())
    before = {rid: r["updated_at"] for rid, r in listed(emu).items()}
    emu.mutate(seed=8, updated=40, new=5)
    changed = {rid for rid, r in listed(emu).items() if before.get(rid) != r["updated_at"]}
    assert changed
    emu.reset_counters()
    records, cursor2, _, pages = drain(clickfunnels.read_contacts(cursor))
    assert changed <= {r["id"] for r in records}
    assert endpoint_count(emu, "clickfunnels", LIST) <= -(-len(changed) // 20) + 1
    assert all(page.cursor == cursor for page in pages[:-1])
    assert cursor2 != cursor


def test_a_newest_first_scan_records_what_topped_the_workspace_as_it_began(emu, connect):
    """Reverse sync's look after the extract can start there, with no allowance for the clocks: a
    contact changed after the scan read it carries that time or a later one. An id-order scan, whose
    newest record may have changed while it ran, records none of its own."""
    clickfunnels = connect(emu).clickfunnels
    _, cursor, _, _ = drain(clickfunnels.read_contacts())
    emu.mutate(seed=8, updated=45, new=5)
    top = max(parse_instant(r["updated_at"]) for r in listed(emu).values())
    scan = clickfunnels.read_contacts(cursor)
    first = next(scan)
    _, after, _, _ = drain(scan)
    [(workspace, start)] = after.newest_at_start.items()
    assert parse_instant(start) == top.replace(microsecond=0)
    assert parse_instant(after.updated_at[workspace]) == parse_instant(start)
    edited = emu.edit("clickfunnels/contact", first.records[0]["id"], {"first_name": "Rua"})
    assert parse_instant(edited["updated_at"]) >= parse_instant(start)
    assert ClickFunnelsContactCursor.from_json(after.to_json()) == after
    # The id-order scan keeps the earlier scan's (no later than its own start), adds none of its own.
    _, by_id, _, _ = drain(clickfunnels.read_contacts_full(after))
    assert by_id.newest_at_start == after.newest_at_start
    _, fresh, _, _ = drain(clickfunnels.read_contacts_full())
    assert "newest_at_start" not in fresh.to_json()


def test_contacts_since_the_mark_include_one_upserted_after_it(emu, connect):
    """Reverse sync's look before its creates: a workspace's contacts updated since the extract's mark
    less the lookback, a contact someone upserted just now among them; everyone without a mark."""
    clickfunnels = connect(emu).clickfunnels
    _, cursor, _, _ = drain(clickfunnels.read_contacts())
    [(workspace, mark)] = cursor.updated_at.items()
    assert {r["id"] for r in clickfunnels.contacts_since(workspace, None)} == set(listed(emu))
    stop = parse_instant(mark) - clickfunnels.lookback
    recent = {rid for rid, r in listed(emu).items() if parse_instant(r["updated_at"]) >= stop}
    before = datetime.now(UTC) - timedelta(seconds=1)
    added = clickfunnels.upsert_contact(workspace, {"email_address": "rua@example.org", "first_name": "Rua"})
    emu.reset_counters()
    assert {r["id"] for r in clickfunnels.contacts_since(workspace, mark)} == {
        *recent,
        int(str(added.record_id)),
    }
    assert endpoint_count(emu, "clickfunnels", LIST) <= -(-(len(recent) + 1) // 20) + 1
    # From an instant instead (the extract's start, less a margin): what changed after it alone.
    after = clickfunnels.contacts_since(workspace, mark, after=before)
    assert {r["id"] for r in after} == {int(str(added.record_id))}


def test_configured_workspace_skips_discovery(emu, connect):
    http = connect(emu).clickfunnels.http
    client = ClickFunnelsClient(http, workspace_ids=[435231])
    drain(client.read_contacts(lookback=timedelta(0)))
    assert endpoint_count(emu, "clickfunnels", "GET /clickfunnels/api/v2/teams") == 0


def test_full_id_scan_finds_deletions(emu, connect):
    clickfunnels = connect(emu).clickfunnels
    ids = clickfunnels.contact_ids()
    assert ids == {str(i) for i in listed(emu)}
    emu.mutate(seed=12, deleted=40)
    gone = ids - {str(i) for i in listed(emu)}
    assert gone
    assert clickfunnels.contact_ids() == ids - gone


def test_window_read(emu, connect):
    clickfunnels = connect(emu).clickfunnels
    visible = listed(emu)
    times = sorted(parse_instant(r["updated_at"]) for r in visible.values())
    start, end = times[len(times) // 2], times[3 * len(times) // 4]
    records, _, _, _ = drain(clickfunnels.read_contacts_window(start, end))
    expected = {rid for rid, r in visible.items() if start <= parse_instant(r["updated_at"]) <= end}
    assert {r["id"] for r in records} == expected


def test_a_workspace_listed_twice_is_read_once(start_emulator, connect):
    emu = start_emulator(seed=7, people=200, behaviours=Behaviours(clickfunnels_repeat_workspace=True))
    clickfunnels = connect(emu).clickfunnels
    assert clickfunnels.workspace_ids() == ["435231"]
    records, _, _, _ = drain(clickfunnels.read_contacts())
    assert sorted(r["id"] for r in records) == sorted(listed(emu))
    assert endpoint_count(emu, "clickfunnels", LIST) == -(-len(listed(emu)) // 20)
    configured = ClickFunnelsClient(clickfunnels.http, workspace_ids=[435231, "435231"])
    emu.reset_counters()
    drain(configured.read_contacts_full())
    assert endpoint_count(emu, "clickfunnels", LIST) == -(-len(listed(emu)) // 20)


def test_after_as_an_id_filter_is_detected_and_read_by_id_instead(start_emulator, connect, caplog):
    emu = start_emulator(seed=7, people=200, behaviours=Behaviours(clickfunnels_after="id_filter"))
    clickfunnels = connect(emu).clickfunnels
    with caplog.at_level("WARNING", logger="connectors.clickfunnels"):
        records, cursor, _, _ = drain(clickfunnels.read_contacts())
        times = sorted(parse_instant(r["updated_at"]) for r in listed(emu).values())
        start, end = times[len(times) // 3], times[2 * len(times) // 3]
        window, _, _, _ = drain(clickfunnels.read_contacts_window(start, end))
    assert sorted(r["id"] for r in records) == sorted(listed(emu))
    newest = max(parse_instant(r["updated_at"]) for r in listed(emu).values())
    assert parse_instant(cursor.updated_at["435231"]) == newest.replace(microsecond=0)
    expected = {rid for rid, r in listed(emu).items() if start <= parse_instant(r["updated_at"]) <= end}
    assert {r["id"] for r in window} == expected
    [line] = [r.getMessage() for r in caplog.records]
    assert "filters ids" in line
    assert "435231" in line


def test_upsert_update_and_find(emu, connect):
    clickfunnels = connect(emu).clickfunnels
    created = clickfunnels.upsert_contact(435231, {"email_address": "mere@example.org", "first_name": "Mere"})
    assert created.ok
    assert created.action == "insert"
    again = clickfunnels.upsert_contact(435231, {"email_address": "mere@example.org", "first_name": None})
    assert again.ok
    assert again.record_id == created.record_id
    stored = emu.dataset.tables["clickfunnels/contact"][int(created.record_id)]
    assert stored["first_name"] == "Mere", "an upsert cannot clear a field"
    cleared = clickfunnels.update_contact(created.record_id, {"first_name": None})
    assert cleared.ok
    assert emu.dataset.tables["clickfunnels/contact"][int(created.record_id)]["first_name"] is None
    [found] = clickfunnels.find_by_email(435231, ["MERE@example.org", "nobody@example.org"])
    assert str(found["id"]) == created.record_id


def test_tags_are_only_replaced_on_purpose(emu, connect):
    clickfunnels = connect(emu).clickfunnels
    with pytest.raises(ValueError, match="tag_ids"):
        clickfunnels.upsert_contact(435231, {"email_address": "a@example.org", "tag_ids": []})
    with pytest.raises(ValueError, match="tag_ids"):
        clickfunnels.update_contact(1, {"tag_ids": []})
    with pytest.raises(ValueError, match="email_address"):
        clickfunnels.upsert_contact(435231, {"first_name": "x"})
    assert emu.total_requests() == 0
    contact_id = next(iter(listed(emu)))
    tag_id = next(iter(emu.dataset.clickfunnels_tags))
    assert clickfunnels.update_contact(contact_id, {}, tag_ids=[tag_id]).ok
    assert [t["id"] for t in emu.dataset.tables["clickfunnels/contact"][contact_id]["tags"]] == [tag_id]
    assert emu.writes()[-1].body == {"tag_ids": [tag_id]}
    assert clickfunnels.update_contact(contact_id, {"first_name": "Aroha"}).ok
    assert emu.writes()[-1].body == {"first_name": "Aroha"}
    assert len(emu.dataset.tables["clickfunnels/contact"][contact_id]["tags"]) == 1


def test_refusal_is_a_record_result(emu, connect):
    clickfunnels = connect(emu).clickfunnels
    contact_id = next(iter(listed(emu)))
    emu.reject_writes("clickfunnels", contact_id, message="Phone number is invalid")
    result = clickfunnels.update_contact(contact_id, {"phone_number": "12"})
    assert (result.ok, result.code, result.message) == (False, "HTTP_422", "Phone number is invalid")
    missing = clickfunnels.update_contact(1, {"first_name": "x"})
    assert (missing.ok, missing.code) == (False, "HTTP_404")
