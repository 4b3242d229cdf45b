"""The generator's households option makes the shapes household-aware linking is measured on, and keeps a
truth that agrees with them.

Identifiers are read here as in ``test_dataset`` (written from the README, not from the emulator's own
rules); first names as each system holds them (Linkflow's one ``name`` split on its last space, a Han
name read surname first).
"""

from collections import defaultdict
from datetime import UTC, datetime

import pytest

from connectors.emulator import Dataset, Emulator, generate_dataset
from connectors.emulator.households import NICKNAMES
from tests.connectors.emulator.test_dataset import contact_records, usable

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# Mandarin readings of the characters the generator uses, written out here rather than taken from it.
PINYIN = dict(
    zip(
        "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林伟芳娜敏静丽强磊军洋勇艳杰涛明超秀霞平刚",
        [
            *("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun"),
            *("Ma", "Zhu", "Hu", "Guo", "He", "Lin", "Wei", "Fang", "Na", "Min", "Jing", "Li", "Qiang"),
            *(
                "Lei",
                "Jun",
                "Yang",
                "Yong",
                "Yan",
                "Jie",
                "Tao",
                "Ming",
                "Chao",
                "Xiu",
                "Xia",
                "Ping",
                "Gang",
            ),
        ],
        strict=True,
    )
)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate_dataset(seed=5, people=800, now=NOW, households=True, household_share=0.25)


def first_name(table: str, record: dict) -> str | None:
    """The first name a record holds, as a reader of that system sees it."""
    if table == "linkflow/contact":
        name = record.get("name")
        if not name:
            return None
        if " " in name:
            return name.rsplit(" ", 1)[0]
        return name[1:] if all("\u4e00" <= ch <= "\u9fff" for ch in name) else name
    value = record.get("first_name") if table.startswith("click") else record.get("First_Name")
    return value or None


def by_person(dataset: Dataset) -> dict[int, list[tuple[str, dict]]]:
    people: dict[int, list[tuple[str, dict]]] = defaultdict(list)
    for key, (table, record) in contact_records(dataset).items():
        people[dataset.truth[key]].append((table, record))
    return people


def test_off_by_default_and_the_option_reaches_the_emulator():
    assert generate_dataset(seed=5, people=60, now=NOW).households == {}
    assert Emulator(seed=5, people=200, now=NOW, households=True).dataset.households


def test_same_seed_gives_the_same_households(dataset):
    again = generate_dataset(seed=5, people=800, now=NOW, households=True, household_share=0.25)
    assert again.tables == dataset.tables
    assert again.truth == dataset.truth
    assert again.households == dataset.households


def test_only_household_identifiers_are_shared_between_people(dataset):
    holders: dict[str, set[int]] = defaultdict(set)
    for key, (table, record) in contact_records(dataset).items():
        for identifier in usable(table, record):
            holders[identifier].add(dataset.truth[key])
    shared = {identifier: people for identifier, people in holders.items() if len(people) > 1}
    declared = {house.shared: set(house.members) for house in dataset.households.values()}
    assert shared, "no identifier is shared between people"
    # Every identifier two people hold is a household's, held only by its members.
    for identifier, people in shared.items():
        assert identifier in declared, identifier
        assert people <= declared[identifier]
    # Households whose shared value made it into records of two members are most of them.
    assert len(shared) >= 0.8 * len(declared)


def test_households_have_the_advertised_shapes(dataset):
    people = by_person(dataset)
    kinds = defaultdict(list)
    for house in dataset.households.values():
        kinds[house.kind].append(house)
        assert len(set(house.members)) == len(house.members)
        assert all(pid in people for pid in house.members), "a member without records"
    assert {len(h.members) for h in kinds["landline"]} == {2, 3}
    assert {len(h.members) for h in kinds["shared_email"]} == {2}
    assert all(h.shared.startswith("phone:+") for h in kinds["landline"])
    assert all(h.shared.startswith("email:") for h in kinds["shared_email"])

    def own(pid: int, kind: str, shared: str) -> set[str]:
        held = set().union(*(usable(table, record) for table, record in people[pid]))
        return {i for i in held if i.startswith(kind) and i != shared}

    for house in kinds["landline"]:  # each member keeps their own email
        emails = [own(pid, "email:", house.shared) for pid in house.members]
        assert all(emails)
        assert not set.intersection(*emails)
    for house in kinds["shared_email"]:  # each partner keeps their own phone
        phones = [own(pid, "phone:", house.shared) for pid in house.members]
        assert all(phones)
        assert not set.intersection(*phones)
        # ClickFunnels holds one contact per email: only the first partner is there.
        assert all(table != "clickfunnels/contact" for table, _ in people[house.members[1]])

    same_last = sum(
        len(
            {record.get("last_name") or record.get("Last_Name") for table, record in people[h.members[0]]}
            & {record.get("last_name") or record.get("Last_Name") for table, record in people[h.members[1]]}
        )
        > 0
        for h in kinds["landline"]
    )
    assert same_last >= 0.6 * len(kinds["landline"])
    # Chinese households share a fixed line, which Linkflow writes with its trunk 0 (021-...).
    assert any(h.shared.startswith("phone:+86") for h in kinds["landline"])
    linkflow_lines = [
        r["mobilePhone"]
        for h in kinds["landline"]
        if h.shared.startswith("phone:+86")
        for pid in h.members
        for t, r in people[pid]
        if t == "linkflow/contact" and r["mobilePhone"]
    ]
    assert any(line.startswith("0") for line in linkflow_lines)


def test_members_first_names_tell_them_apart(dataset):
    people = by_person(dataset)
    for house in dataset.households.values():
        initials = []
        for pid in house.members:
            names = {first_name(t, r) for t, r in people[pid]} - {None}
            assert names, f"person {pid} has no first name anywhere"
            initials.append({name[0].upper() for name in names if name.isascii()})
        for one in range(len(initials)):
            for two in range(one + 1, len(initials)):
                assert not initials[one] & initials[two], (house, initials)


def test_nicknames_initials_and_missing_first_names(dataset):
    people = by_person(dataset)
    nick_and_full = missing_beside_named = initials = 0
    for records in people.values():
        names = [first_name(table, record) for table, record in records]
        present = {name for name in names if name}
        if any(full in present and set(short) & present for full, short in NICKNAMES.items()):
            nick_and_full += 1
        if None in names and present:
            missing_beside_named += 1
        initials += sum(1 for name in present if len(name) == 2 and name.endswith("."))
    assert nick_and_full >= 10
    assert missing_beside_named >= 20
    assert initials >= 3
    # Every person's first record carries a first name: missing ones are never all a person has.
    assert all(any(first_name(t, r) for t, r in records) for records in people.values())


def test_chinese_names_in_linkflow_and_pinyin_in_zoho(dataset):
    pairs = 0
    for records in by_person(dataset).values():
        han = [r["name"] for t, r in records if t == "linkflow/contact" and (r["name"] or " ")[0] in PINYIN]
        zoho = [(r["First_Name"], r["Last_Name"]) for t, r in records if t.startswith("zoho")]
        for name in han:
            if name[1:] in PINYIN and (PINYIN[name[1:]], PINYIN[name[0]]) in zoho:
                pairs += 1
    assert pairs >= 10


def test_records_carry_no_truth(dataset):
    """The person ids stay in the truth: the option adds no field to any record the APIs serve."""
    plain = generate_dataset(seed=5, people=100, now=NOW)
    for table, records in plain.tables.items():
        fields = set().union(*(set(record) for record in records.values())) if records else set()
        for record in dataset.tables[table].values():
            assert set(record) <= fields, (table, set(record) - fields)
