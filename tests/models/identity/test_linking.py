"""Identity resolution: linking, the guards against junk identifiers, an adversarial data set, and the
properties the warehouse relies on (order independence, idempotence, monotonicity, incremental = full)."""

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.identity.contact_ids import ContactIdFactory
from models.identity.linking import IdentityConfig, link
from models.identity.resolution import (
    FrameIdentityStore,
    ReadOnceStore,
    Resolution,
    resolve,
    resolve_incremental,
)
from models.normalise.contact_points import identifiers_of, normalise_contact_points

NO_PREVIOUS = pd.DataFrame({"record_key": pd.Series(dtype=np.int64), "contact_id": pd.Series(dtype=object)})


def identifiers(*rows: tuple[int, str, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["record_key", "kind", "value"]).astype({"record_key": np.int64})


def clusters(components: pd.DataFrame) -> set[frozenset[int]]:
    return {frozenset(group["record_key"]) for _, group in components.groupby("component")}


def test_shared_email_or_phone_links_across_and_within_sources() -> None:
    found = link(
        [1, 2, 3, 4, 5, 6],
        identifiers(
            (1, "email", "a@example.com"),
            (2, "email", "a@example.com"),
            (2, "phone", "+14155552671"),
            (3, "phone", "+14155552671"),
            (4, "email", "b@example.com"),
            (5, "phone", "+8613774202819"),
        ),
        IdentityConfig(),
    )
    assert clusters(found.components) == {
        frozenset({1, 2, 3}),
        frozenset({4}),
        frozenset({5}),
        frozenset({6}),
    }
    # A cluster is labelled by its smallest record key.
    assert found.components.set_index("record_key")["component"].to_dict() == {
        1: 1,
        2: 1,
        3: 1,
        4: 4,
        5: 5,
        6: 6,
    }
    assert found.suppressed.empty


def test_email_and_phone_with_the_same_text_do_not_link() -> None:
    found = link([1, 2], identifiers((1, "email", "x"), (2, "phone", "x")), IdentityConfig())
    assert clusters(found.components) == {frozenset({1}), frozenset({2})}


def test_identifiers_of_unknown_records_are_refused() -> None:
    with pytest.raises(ValueError, match="not in record_keys"):
        link([1], identifiers((2, "email", "a@example.com")), IdentityConfig())


@pytest.mark.parametrize(
    ("config", "shared", "rule"),
    [
        (IdentityConfig(), ("email", "test@test.com"), "blocklist"),
        (IdentityConfig(), ("email", "noreply@shop.example"), "pattern"),
        (IdentityConfig(), ("email", "No-Reply@Shop.example".casefold()), "pattern"),
        (IdentityConfig(blocklist_email_patterns=("*@example.org",)), ("email", "x@example.org"), "pattern"),
        (
            IdentityConfig(blocklist_phones=frozenset({"+14155550100"})),
            ("phone", "+14155550100"),
            "blocklist",
        ),
        (IdentityConfig(), ("phone", "+8613888888888"), "same_digit_run"),
        (IdentityConfig(same_digit_run_min=4), ("phone", "+14155552222"), "same_digit_run"),
        (IdentityConfig(max_records_per_identifier=2), ("phone", "+14155552671"), "too_many_records"),
    ],
)
def test_guards(config: IdentityConfig, shared: tuple[str, str], rule: str) -> None:
    kind, value = shared
    found = link([1, 2, 3], identifiers((1, kind, value), (2, kind, value), (3, kind, value)), config)
    assert clusters(found.components) == {frozenset({1}), frozenset({2}), frozenset({3})}
    assert found.suppressed.to_dict("records") == [
        {"kind": kind, "value": value, "rule": rule, "record_count": 3, "record_keys": [1, 2, 3]}
    ]


def test_identifiers_within_the_limit_and_unblocked_still_link() -> None:
    config = IdentityConfig(
        max_records_per_identifier=3, same_digit_run_min=None, blocklist_email_patterns=()
    )
    found = link(
        [1, 2, 3],
        identifiers(
            (1, "phone", "+8613888888888"), (2, "phone", "+8613888888888"), (3, "email", "noreply@x.io")
        ),
        config,
    )
    assert clusters(found.components) == {frozenset({1, 2}), frozenset({3})}


def test_invalid_config() -> None:
    with pytest.raises(ValueError, match="max_records_per_identifier"):
        IdentityConfig(max_records_per_identifier=0)
    with pytest.raises(ValueError, match="same_digit_run_min"):
        IdentityConfig(same_digit_run_min=1)


def test_global_counts_decide_the_limit_in_a_neighbourhood() -> None:
    """Three records in view share a phone that 30 records hold in all: it must not link them."""
    shared = identifiers(
        (1, "phone", "+14155552671"), (2, "phone", "+14155552671"), (3, "phone", "+14155552671")
    )
    counts = pd.DataFrame({"kind": ["phone"], "value": ["+14155552671"], "record_count": [30]})
    found = link([1, 2, 3], shared, IdentityConfig(), identifier_counts=counts)
    assert clusters(found.components) == {frozenset({1}), frozenset({2}), frozenset({3})}
    assert found.suppressed.loc[0, ["rule", "record_count"]].tolist() == ["too_many_records", 30]
    assert found.suppressed.loc[0, "record_keys"] == [1, 2, 3]


def _adversarial_points() -> tuple[pd.DataFrame, dict[str, list[int]]]:
    """Raw contact points as sources would deliver them, and the record keys of each group."""
    rows: list[tuple[int, str, str, int, str, str]] = []
    groups: dict[str, list[int]] = {}
    key = itertools.count(1)

    def add(group: str, points: list[tuple[str, str]], region: str = "US") -> None:
        record = next(key)
        groups.setdefault(group, []).append(record)
        for position, (kind, raw) in enumerate(points):
            rows.append((record, kind, "Email" if kind == "email" else "Phone", position, raw, region))

    for n in range(500):
        add("test_email", [("email", "TEST@test.com "), ("email", f"person{n}@mail.example")])
    for n in range(500):
        add("zero_phone", [("phone", "0000000000"), ("email", f"zero{n}@mail.example")])
    # A 30-record chain: record i shares an email with record i-1 and a phone with record i+1, written
    # differently each time.
    for n in range(30):
        points = [
            ("email", f"Chain{n // 2}@Example.com" if n % 2 == 0 else f" chain{(n - 1) // 2}@example.com")
        ]
        if n % 2 == 1:
            points.append(("phone", f"(212) 555-{1000 + n:04d}"))
        elif n > 0:
            points.append(("phone", f"+1 212 555 {1000 + n - 1:04d}"))
        add("chain", points)
    # Thirty households members: a landline for all (past the limit), each their own mobile.
    for n in range(30):
        add("household", [("phone", "(718) 555-0142"), ("phone", f"+1 646 555 {2000 + n:04d}")])
    # Two people behind one placeholder mobile ("138 8888 8888" written in China).
    add("lucky", [("phone", "13888888888"), ("email", "lucky1@mail.example")], region="CN")
    add("lucky", [("phone", "+86 138 8888 8888"), ("email", "lucky2@mail.example")], region="CN")
    for n in range(3):
        add(
            "noreply",
            [
                ("email", "NoReply@Shop.example" if n else "noreply@shop.EXAMPLE"),
                ("email", f"buyer{n}@mail.example"),
            ],
        )
    points = pd.DataFrame(rows, columns=["record_key", "kind", "field", "position", "raw", "region"])
    return points, groups


def test_adversarial_data_glues_nobody_and_reports_every_suppression() -> None:
    points, groups = _adversarial_points()
    normalised = normalise_contact_points(points)
    all_keys = sorted(k for keys in groups.values() for k in keys)
    result = resolve(
        all_keys,
        identifiers_of(normalised),
        NO_PREVIOUS,
        config=IdentityConfig(),
        id_factory=ContactIdFactory(),
    )
    contact = result.assignment.set_index("record_key")["contact_id"]

    # The chain is one contact, and nothing else joined it.
    assert contact[groups["chain"]].nunique() == 1
    assert (contact == contact[groups["chain"][0]]).sum() == 30
    # Everyone behind a junk or shared identifier stays their own contact.
    for group in ("test_email", "zero_phone", "household", "lucky", "noreply"):
        assert contact[groups[group]].nunique() == len(groups[group]), group
    assert contact.nunique() == len(all_keys) - 29

    # Every suppression is reported: junk at normalisation, the rest by the guards, with holders.
    junk = normalised[normalised["raw"] == "0000000000"]
    assert len(junk) == 500
    assert set(junk["reason"]) == {"junk"}
    suppressed = result.suppressed.set_index("value")
    assert suppressed.loc["test@test.com", ["rule", "record_count"]].tolist() == ["blocklist", 500]
    assert suppressed.loc["test@test.com", "record_keys"] == groups["test_email"]
    assert suppressed.loc["+17185550142", ["rule", "record_count"]].tolist() == ["too_many_records", 30]
    assert suppressed.loc["+17185550142", "record_keys"] == groups["household"]
    assert suppressed.loc["+8613888888888", ["rule", "record_count"]].tolist() == ["same_digit_run", 2]
    assert suppressed.loc["noreply@shop.example", ["rule", "record_count"]].tolist() == ["pattern", 3]
    assert len(suppressed) == 4


# Random record sets for the properties: identifiers drawn from small pools so that records share them
# often, chains form and a small record limit is crossed in both directions.
_VALUES = [f"v{n}" for n in range(12)]
_RECORD = st.lists(st.tuples(st.sampled_from(["email", "phone"]), st.sampled_from(_VALUES)), max_size=3)
_STATES = st.dictionaries(st.integers(1, 40), _RECORD, max_size=25)
_CONFIG = IdentityConfig(max_records_per_identifier=3, same_digit_run_min=None)


def _frame(state: dict[int, list[tuple[str, str]]]) -> pd.DataFrame:
    return identifiers(*[(key, kind, value) for key, points in state.items() for kind, value in points])


def _resolve(
    state: dict[int, list[tuple[str, str]]],
    previous: pd.DataFrame,
    next_id: int,
    config: IdentityConfig = _CONFIG,
) -> Resolution:
    return resolve(list(state), _frame(state), previous, config=config, id_factory=ContactIdFactory(next_id))


def _same(left: Resolution, right: Resolution) -> bool:
    return (
        left.assignment.reset_index(drop=True).equals(right.assignment.reset_index(drop=True))
        and left.merges.reset_index(drop=True).equals(right.merges.reset_index(drop=True))
        and left.new_contact_ids == right.new_contact_ids
    )


@settings(max_examples=150, deadline=None)
@given(_STATES, _STATES, st.randoms(use_true_random=False))
def test_input_order_changes_nothing(
    before: dict[int, list[tuple[str, str]]], now: dict[int, list[tuple[str, str]]], rng
) -> None:
    previous = _resolve(before, NO_PREVIOUS, 1).assignment
    first = _resolve(now, previous, 1000)
    rows = _frame(now).sample(frac=1, random_state=rng.randint(0, 2**31))
    keys = list(now)
    rng.shuffle(keys)
    shuffled_previous = previous.sample(frac=1, random_state=rng.randint(0, 2**31))
    second = resolve(keys, rows, shuffled_previous, config=_CONFIG, id_factory=ContactIdFactory(1000))
    assert _same(first, second)


@settings(max_examples=150, deadline=None)
@given(_STATES)
def test_rerunning_is_idempotent(state: dict[int, list[tuple[str, str]]]) -> None:
    first = _resolve(state, NO_PREVIOUS, 1)
    again = _resolve(state, first.assignment, 1000)
    assert again.assignment.equals(first.assignment)
    assert again.merges.empty
    assert again.new_contact_ids == []
    assert again.retired_contact_ids == []


@settings(max_examples=150, deadline=None)
@given(_STATES, st.integers(41, 60), _RECORD)
def test_adding_a_record_never_splits_a_cluster(
    state: dict[int, list[tuple[str, str]]], key: int, points: list[tuple[str, str]]
) -> None:
    """Holds while no identifier crosses the record limit; crossing it is the guard at work (see
    models.identity.linking), so this property runs with a limit the pools cannot reach."""
    config = IdentityConfig(max_records_per_identifier=100, same_digit_run_min=None)
    before = _resolve(state, NO_PREVIOUS, 1, config)
    after = _resolve({**state, key: points}, before.assignment, 1000, config)
    old = before.assignment.set_index("record_key")["contact_id"]
    new = after.assignment.set_index("record_key")["contact_id"]
    for _, members in old.groupby(old):
        assert new[members.index].nunique() == 1
    assert (after.merges["kind"] == "split").sum() == 0
    assert after.retired_contact_ids == []


_CHANGES = st.dictionaries(st.integers(1, 50), st.one_of(st.none(), _RECORD), max_size=8)


@settings(max_examples=120, deadline=None)
@given(_STATES, _CHANGES)
def test_incremental_equals_full(
    state: dict[int, list[tuple[str, str]]], changes: dict[int, list[tuple[str, str]] | None]
) -> None:
    """`changes` maps a record to its new identifiers, or to None when it is deleted."""
    first = _resolve(state, NO_PREVIOUS, 1)
    store = FrameIdentityStore(_frame(state), first.assignment)
    updated = {key: points for key, points in changes.items() if points is not None}
    deleted = np.array(
        sorted(key for key, points in changes.items() if points is None and key in state), np.int64
    )
    changed = np.array(sorted(updated), dtype=np.int64)
    now = {key: points for key, points in state.items() if key not in changes} | updated

    incremental = resolve_incremental(
        _frame(updated), changed, deleted, store=store, config=_CONFIG, id_factory=ContactIdFactory(1000)
    )
    full = _resolve(now, first.assignment, 1000)
    written = store.after(incremental, _frame(updated), changed, deleted)
    assert written.assignment.reset_index(drop=True).equals(full.assignment.reset_index(drop=True))
    assert incremental.merges.reset_index(drop=True).equals(full.merges.reset_index(drop=True))
    assert incremental.new_contact_ids == full.new_contact_ids
    assert incremental.retired_contact_ids == full.retired_contact_ids


def test_incremental_touches_only_the_neighbourhood() -> None:
    state = {key: [("email", f"person{key}@mail.example")] for key in range(1, 1001)}
    state[2] = [("email", "person1@mail.example")]
    first = _resolve(state, NO_PREVIOUS, 1)
    store = FrameIdentityStore(_frame(state), first.assignment)
    change = identifiers((3, "email", "person1@mail.example"))
    result = resolve_incremental(
        change, [3], [], store=store, config=_CONFIG, id_factory=ContactIdFactory(5000)
    )
    assert result.assignment["record_key"].tolist() == [1, 2, 3]
    assert result.merges.to_dict("records") == [
        {
            "old_contact_id": first.assignment.loc[2, "contact_id"],
            "new_contact_id": first.assignment.loc[0, "contact_id"],
            "kind": "merge",
            "record_count": 1,
        }
    ]


def test_incremental_refuses_identifiers_of_unlisted_records() -> None:
    store = FrameIdentityStore(identifiers(), NO_PREVIOUS)
    with pytest.raises(ValueError, match="changed_record_keys"):
        resolve_incremental(
            identifiers((1, "email", "a@example.com")),
            [],
            [],
            store=store,
            config=_CONFIG,
            id_factory=ContactIdFactory(),
        )


class _Counting(FrameIdentityStore):
    """A frame store that remembers every record and identifier it was asked about."""

    def __init__(self, identifiers: pd.DataFrame, assignment: pd.DataFrame) -> None:
        super().__init__(identifiers, assignment)
        self.records: list[int] = []
        self.counted: list[tuple[str, str]] = []
        self.held: list[tuple[str, str]] = []

    def identifiers_of(self, record_keys: np.ndarray) -> pd.DataFrame:
        self.records.extend(int(key) for key in record_keys)
        return super().identifiers_of(record_keys)

    def record_counts(self, identifiers: pd.DataFrame) -> pd.DataFrame:
        self.counted.extend(zip(identifiers["kind"], identifiers["value"], strict=True))
        return super().record_counts(identifiers)

    def holders_of(self, identifiers: pd.DataFrame) -> pd.DataFrame:
        self.held.extend(zip(identifiers["kind"], identifiers["value"], strict=True))
        return super().holders_of(identifiers)


def test_read_once_store_answers_as_its_store_and_asks_each_thing_once() -> None:
    rows = identifiers(
        (3, "email", "b@example.com"),
        (1, "email", "a@example.com"),
        (1, "phone", "+15550000001"),
        (2, "email", "a@example.com"),
        (4, "phone", "+15550000001"),
    )
    assignment = pd.DataFrame({"record_key": [1, 2, 3, 4], "contact_id": ["c1", "c1", "c3", "c1"]})
    plain = FrameIdentityStore(rows, assignment)
    counting = _Counting(rows, assignment)
    once = ReadOnceStore(counting)
    asked = identifiers((0, "email", "a@example.com"), (0, "phone", "+15550000001"), (0, "email", "z@x.io"))
    wanted = asked.loc[:, ["kind", "value"]]
    for keys in ([1, 3], [2, 1, 3], [4, 9]):
        found = once.identifiers_of(np.array(keys, dtype=np.int64))
        expected = plain.identifiers_of(np.array(keys, dtype=np.int64)).sort_values(
            "record_key", kind="stable"
        )
        assert _listed(found) == _listed(expected)
    for subset in (wanted.iloc[:1], wanted, wanted.iloc[::-1]):
        counts = once.record_counts(subset)
        assert _listed(counts) == _listed(plain.record_counts(subset))
        holders = once.holders_of(subset).sort_values(["kind", "value", "record_key"], ignore_index=True)
        expected = plain.holders_of(subset).sort_values(["kind", "value", "record_key"], ignore_index=True)
        assert _listed(holders) == _listed(expected)
    assert sorted(counting.records) == [1, 2, 3, 4, 9]
    assert len(counting.counted) == len(set(counting.counted)) == 3
    assert len(counting.held) == len(set(counting.held)) == 3


def _listed(frame: pd.DataFrame) -> list[list[object]]:
    return frame.astype(object).to_numpy().tolist()
