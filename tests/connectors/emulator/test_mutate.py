"""``mutate``: changes between two syncs show through each API's incremental filters; the truth follows."""

from datetime import UTC, datetime

from connectors.emulator import running_emulator
from connectors.emulator.timefmt import shanghai_local
from tests.connectors.emulator.test_dataset import contact_records, usable

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_changes_are_visible_to_the_time_filters(emulator, maton, linkflow):
    since = datetime.now(UTC).replace(microsecond=0)
    newest_event = max(emulator.dataset.tables["linkflow/event"])
    summary = emulator.mutate(seed=1, new=6, updated=30, deleted=4, events=5, messages=4)
    assert summary.new_people == 6
    assert sum(summary.updated.values()) == 30
    assert sum(summary.deleted.values()) == 4

    changed_zoho = summary.updated.get("zoho_crm/contact", 0) + summary.created.get("zoho_crm/contact", 0)
    response = maton.get(
        "/zoho-crm/crm/v8/Contacts",
        params={"fields": "Email"},
        headers={"If-Modified-Since": since.isoformat()},
    )
    assert len(response.json()["data"] if response.status_code == 200 else []) == changed_zoho

    changed_linkflow = summary.updated.get("linkflow/contact", 0) + summary.created.get("linkflow/contact", 0)
    window = {"page": 0, "size": 1000, "minUpdateTime": shanghai_local(since.timestamp())}
    assert len(linkflow.get("/v2/contacts_bulk/ids", params=window).json()) == changed_linkflow

    fresh = linkflow.get("/events/lite", params={"lastMaxId": newest_event, "size": 200}).json()
    assert len(fresh) == summary.events

    changed_lists = summary.updated.get("clicksend/list_contact", 0) + summary.created.get(
        "clicksend/list_contact", 0
    )
    total = 0
    for list_id in (3555278, 3555279, 3555270):
        page = maton.get(
            f"/clicksend/v3/lists/{list_id}/contacts",
            params={"updated_after": int(since.timestamp()) - 1, "limit": 100},
        )
        total += page.json()["data"]["total"]
    assert total == changed_lists

    changed_funnels = summary.updated.get("clickfunnels/contact", 0) + summary.created.get(
        "clickfunnels/contact", 0
    )
    newest = maton.get(
        "/clickfunnels/api/v2/workspaces/435231/contacts",
        params={"sort_property": "updated_at", "sort_order": "desc"},
    ).json()
    assert sum(contact["updated_at"] >= since.isoformat()[:19] for contact in newest) == min(
        20, changed_funnels
    )


def test_zoho_deletions_reach_the_deleted_feed(emulator, maton):
    since = datetime.now(UTC).replace(microsecond=0).isoformat()
    summary = emulator.mutate(seed=5, deleted=40)
    deleted_leads = summary.deleted.get("zoho_crm/lead", 0)
    assert deleted_leads
    feed = maton.get("/zoho-crm/crm/v8/Leads/deleted", headers={"If-Modified-Since": since}).json()["data"]
    assert len(feed) == deleted_leads
    truth = emulator.truth()
    assert all(("zoho_crm", "lead", entry["id"]) not in truth for entry in feed)


def test_truth_follows_the_changes():
    with running_emulator(seed=3, people=200, now=NOW) as emu:
        before = emu.dataset.people
        emu.mutate(seed=9, new=20, updated=20, deleted=25, messages=10)
        assert emu.dataset.people == before + 20
        records = contact_records(emu.dataset)
        truth = emu.truth()
        assert set(records) <= set(truth)
        assert {person for key, person in truth.items() if key[1] != "sms" and key[1] != "event"} == {
            truth[key] for key in records
        }
        # Deletions never split a person: every remaining record still shares an identifier with
        # another of the same person's records, or is that person's only record.
        by_person: dict[int, list[set[str]]] = {}
        for key, (table, record) in records.items():
            by_person.setdefault(truth[key], []).append(usable(table, record))
        for identifiers in by_person.values():
            if len(identifiers) > 1:
                assert all(
                    any(ids & other for other in identifiers if other is not ids) for ids in identifiers
                )


def test_the_same_seed_changes_the_same_way():
    def run() -> dict:
        with running_emulator(seed=3, people=100, now=NOW) as emu:
            return emu.mutate(seed=4, new=5, updated=10, deleted=5, events=3, messages=3).to_json()

    assert run() == run()


def test_mutated_messages_are_stored_and_served(emulator, maton) -> None:
    before = {t: len(emulator.dataset.tables[t]) for t in ("clicksend/sms_history", "clicksend/sms_receipt")}
    emulator.mutate(seed=21, messages=6)
    assert len(emulator.dataset.tables["clicksend/sms_history"]) > before["clicksend/sms_history"]
    total = maton.get("/clicksend/v3/sms/history", params={"limit": 15}).json()["data"]["total"]
    assert total == len(emulator.dataset.tables["clicksend/sms_history"])
