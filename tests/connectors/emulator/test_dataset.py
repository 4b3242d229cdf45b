"""The generator's promises: deterministic, messy like real data, with a truth usable identifiers reproduce.

The identifier rules here are written independently of the emulator's own (``identifiers.py``), from
the README's definition: emails trimmed and lower-cased, phones valid under the source's default
region (Linkflow CN, the rest US), junk values excluded.
"""

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import phonenumbers
import pytest

from connectors.emulator import JUNK_EMAILS, JUNK_PHONES, Dataset, generate_dataset

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CONTACT_FIELDS = {
    "clickfunnels/contact": (("email_address",), ("phone_number",), "US"),
    "clicksend/list_contact": (("email",), ("phone_number",), "US"),
    "linkflow/contact": (("email",), ("mobilePhone", "homePhone"), "CN"),
    "zoho_crm/lead": (("Email", "Secondary_Email"), ("Phone", "Mobile"), "US"),
    "zoho_crm/contact": (
        ("Email", "Secondary_Email"),
        ("Phone", "Mobile", "Home_Phone", "Other_Phone"),
        "US",
    ),
    "zoho_bigin/contact": (("Email",), ("Phone", "Mobile", "Home_Phone"), "US"),
}


def usable(table: str, record: dict) -> set[str]:
    email_fields, phone_fields, region = CONTACT_FIELDS[table]
    found = set()
    for name in email_fields:
        value = record.get(name)
        if isinstance(value, str) and value.strip() and value.strip().lower() not in JUNK_EMAILS:
            found.add("email:" + value.strip().lower())
    for name in phone_fields:
        value = record.get(name)
        if not isinstance(value, str) or not value.strip() or value.strip() in JUNK_PHONES:
            continue
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            found.add("phone:" + phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return found


def contact_records(dataset: Dataset) -> dict[tuple[str, str, str], tuple[str, dict]]:
    """Every contact record a client can list (ClickFunnels hides anonymous visitors, who are nobody)."""
    found = {}
    for table in CONTACT_FIELDS:
        source, _, obj = table.partition("/")
        for record_id, record in dataset.tables[table].items():
            if record.get("anonymous") is None:
                found[(source, obj, str(record_id))] = (table, record)
    return found


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate_dataset(seed=11, people=400, now=NOW)


def test_same_seed_and_now_give_the_same_data():
    first = generate_dataset(seed=3, people=120, now=NOW)
    second = generate_dataset(seed=3, people=120, now=NOW)
    assert first.tables == second.tables
    assert first.truth == second.truth
    assert generate_dataset(seed=4, people=120, now=NOW).tables != first.tables


def test_truth_equals_linking_by_shared_usable_identifiers(dataset):
    records = contact_records(dataset)
    assert set(records) <= set(dataset.truth)
    holders: dict[str, set[tuple]] = defaultdict(set)
    for key, (table, record) in records.items():
        for identifier in usable(table, record):
            holders[identifier].add(key)
    # Two people never share a usable identifier...
    for identifier, keys in holders.items():
        assert len({dataset.truth[key] for key in keys}) == 1, identifier
    # ...and a person's records are one connected group through them.
    parent = {key: key for key in records}

    def root(key):
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for keys in holders.values():
        first, *rest = keys
        for other in rest:
            parent[root(other)] = root(first)
    groups_per_person: dict[int, set] = defaultdict(set)
    for key in records:
        groups_per_person[dataset.truth[key]].add(root(key))
    assert all(len(groups) == 1 for groups in groups_per_person.values())
    assert len(groups_per_person) == len({dataset.truth[key] for key in records})


def test_every_record_holds_a_usable_identifier(dataset):
    for key, (table, record) in contact_records(dataset).items():
        assert usable(table, record), key


def test_people_spread_over_one_to_five_systems(dataset):
    systems: dict[int, set[str]] = defaultdict(set)
    for key in contact_records(dataset):
        systems[dataset.truth[key]].add(key[0])
    counts = {len(names) for names in systems.values()}
    assert min(counts) == 1
    assert max(counts) == 5
    assert len(systems) == 400


def test_duplicates_inside_one_system(dataset):
    per_person_zoho: dict[int, list[str]] = defaultdict(list)
    per_person_list: dict[tuple[int, int], int] = defaultdict(int)
    for key, (table, record) in contact_records(dataset).items():
        if key[0] == "zoho_crm":
            per_person_zoho[dataset.truth[key]].append(key[1])
        if table == "clicksend/list_contact":
            per_person_list[(dataset.truth[key], record["list_id"])] += 1
    assert any({"lead", "contact"} <= set(objects) for objects in per_person_zoho.values())
    assert any(n >= 2 for n in per_person_list.values())


def test_converted_leads_name_the_contact_they_became(dataset):
    converted = [r for r in dataset.tables["zoho_crm/lead"].values() if r["$converted"]]
    assert converted
    for lead in converted:
        contact_id = lead["$converted_detail"]["contact"]["id"]
        assert contact_id in dataset.tables["zoho_crm/contact"]
        same_person = dataset.truth[("zoho_crm", "contact", contact_id)]
        assert dataset.truth[("zoho_crm", "lead", lead["id"])] == same_person


def test_junk_identifiers_are_shared_by_unrelated_people(dataset):
    owners: dict[str, set[int]] = defaultdict(set)
    for key, (table, record) in contact_records(dataset).items():
        email_fields, phone_fields, _ = CONTACT_FIELDS[table]
        for name in (*email_fields, *phone_fields):
            value = record.get(name)
            if isinstance(value, str) and value.strip().lower() in JUNK_EMAILS | JUNK_PHONES:
                owners[value.strip().lower()].add(dataset.truth[key])
    assert len(owners["test@test.com"]) >= 2
    assert len(owners["555-555-5555"]) >= 2


def test_phones_come_in_each_systems_habits(dataset):
    linkflow = [r["mobilePhone"] for r in dataset.tables["linkflow/contact"].values() if r["mobilePhone"]]
    national = [phone for phone in linkflow if re.fullmatch(r"1[3-9]\d{9}", phone)]
    assert national, "Chinese mobiles in Linkflow carry no +86"
    assert any(phone.startswith("+1") for phone in linkflow), "US people in Linkflow carry +1"
    clicksend = [r["phone_number"] for r in dataset.tables["clicksend/list_contact"].values()]
    assert all(re.fullmatch(r"\+\d{10,13}", phone) for phone in clicksend)
    zoho = [r["Phone"] for r in dataset.tables["zoho_crm/contact"].values() if r["Phone"]]
    assert any(phone.startswith("(") for phone in zoho)
    funnels = [
        r["phone_number"] for r in dataset.tables["clickfunnels/contact"].values() if r["phone_number"]
    ]
    assert any(" x" in phone for phone in funnels)


def test_emails_vary_in_case_and_whitespace_across_systems(dataset):
    by_person: dict[int, set[str]] = defaultdict(set)
    for key, (table, record) in contact_records(dataset).items():
        for name in CONTACT_FIELDS[table][0]:
            if isinstance(record.get(name), str):
                by_person[dataset.truth[key]].add(record[name])
    variants = [
        emails for emails in by_person.values() if len({e.strip().lower() for e in emails}) < len(emails)
    ]
    assert variants
    assert any(email != email.strip() for emails in by_person.values() for email in emails)


def test_fields_one_system_has_another_lacks(dataset):
    contacts = dataset.tables["zoho_crm/contact"].values()
    assert any(r["Title"] for r in contacts)
    assert any(not r["Title"] for r in contacts)
    lists = dataset.tables["clicksend/list_contact"].values()
    assert any(r["organization_name"] for r in lists)
    assert any(not r["organization_name"] for r in lists)


def test_times_lie_in_the_two_years_before_now(dataset):
    earliest = NOW - timedelta(days=731)
    for record in dataset.tables["zoho_crm/lead"].values():
        created = datetime.fromisoformat(record["Created_Time"])
        modified = datetime.fromisoformat(record["Modified_Time"])
        assert earliest <= created <= modified <= NOW
    for record in dataset.tables["clicksend/sms_history"].values():
        assert earliest.timestamp() <= record["date"] <= NOW.timestamp()


def test_activity_belongs_to_the_person_of_its_contact(dataset):
    events = dataset.tables["linkflow/event"]
    for event_id, event in events.items():
        owner = dataset.truth.get(("linkflow", "contact", str(event["contactId"])))
        assert dataset.truth.get(("linkflow", "event", str(event_id))) == owner
    assert any(("linkflow", "event", str(i)) not in dataset.truth for i in events), (
        "some visitors are unknown"
    )
    phones = {}
    for key, (table, record) in contact_records(dataset).items():
        if table == "clicksend/list_contact":
            phones[record["phone_number"]] = dataset.truth[key]
    unknown = 0
    for message_id, message in dataset.tables["clicksend/sms_history"].items():
        person = dataset.truth.get(("clicksend", "sms", message_id))
        assert person == phones.get(message["to"])
        unknown += person is None
    assert unknown > 0, "some messages go to numbers nobody owns"
    ordered = sorted(events)
    assert [events[i]["eventDate"] for i in ordered] == sorted(events[i]["eventDate"] for i in ordered)
