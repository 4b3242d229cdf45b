"""Household splitting: shared phones and addresses link one person, not the people who share them."""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from models.identity.contact_ids import ContactIdFactory
from models.identity.linking import IdentityConfig, Linkage, link
from models.identity.resolution import FrameIdentityStore, Resolution, resolve, resolve_incremental
from models.normalise.given_names import NameMatcher, name_token

ON = IdentityConfig()
OFF = IdentityConfig(household_split=False)
NO_PREVIOUS = pd.DataFrame({"record_key": pd.Series(dtype=np.int64), "contact_id": pd.Series(dtype=object)})


def identifiers(*rows: tuple[int, str, str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["record_key", "kind", "value"])
    return frame.astype({"record_key": np.int64, "kind": object, "value": object})


def names(**first_names: str | None) -> pd.DataFrame:
    rows = [(int(key.removeprefix("r")), name) for key, name in first_names.items()]
    return pd.DataFrame(rows, columns=["record_key", "first_name"]).astype({"record_key": np.int64})


def groups(linkage: Linkage) -> list[list[int]]:
    """The clusters as sorted lists of record keys, sorted."""
    by = linkage.components.groupby("component")["record_key"]
    return sorted(sorted(int(k) for k in keys) for _, keys in by)


LANDLINE = identifiers(
    (1, "phone", "+14155550100"),
    (1, "email", "john@home.example"),
    (2, "phone", "+14155550100"),
    (2, "email", "mary@home.example"),
    (3, "phone", "+14155550100"),
    (3, "email", "john@home.example"),
)


def test_a_shared_landline_keeps_different_first_names_apart_and_says_why() -> None:
    linkage = link([1, 2, 3], LANDLINE, ON, names=names(r1="John", r2="Mary", r3="Johnny"))
    assert groups(linkage) == [[1, 3], [2]]
    refused = linkage.refused.loc[:, ["record_key_a", "record_key_b", "kind", "rule"]]
    assert refused.to_dict("records") == [
        {"record_key_a": 1, "record_key_b": 2, "kind": "phone", "rule": "names_differ"},
        {"record_key_a": 2, "record_key_b": 3, "kind": "phone", "rule": "names_differ"},
    ]
    assert linkage.refused.loc[0, ["first_name_a", "first_name_b"]].tolist() == ["John", "Mary"]


def test_switched_off_any_shared_identifier_links_as_before() -> None:
    linkage = link([1, 2, 3], LANDLINE, OFF, names=names(r1="John", r2="Mary", r3="Johnny"))
    assert groups(linkage) == [[1, 2, 3]]
    assert linkage.refused.empty


def test_a_couples_shared_address_is_two_people() -> None:
    shared = identifiers((1, "email", "smiths@mail.example"), (2, "email", "smiths@mail.example"))
    assert groups(link([1, 2], shared, ON, names=names(r1="Anna", r2="Peter"))) == [[1], [2]]


def test_names_that_agree_link_through_a_phone() -> None:
    """Nicknames, initials, short forms, accents, pinyin: one person; and the second email of the same
    person reached only through the phone still links."""
    for left, right in [
        ("Bob", "Robert"),
        ("Liz", "Elizabeth"),
        ("Bill", "William"),
        ("J.", "John"),
        ("Chris", "Christopher"),
        ("ÉLODIE", "elodie"),
        ("伟", "Wei"),
        ("Mary Ann", "Mary"),
        (None, "Mary"),
        (None, None),
    ]:
        shared = identifiers(
            (1, "phone", "+8613912345678"),
            (1, "email", "a@one.example"),
            (2, "phone", "+8613912345678"),
            (2, "email", "b@two.example"),
        )
        assert groups(link([1, 2], shared, ON, names=names(r1=left, r2=right))) == [[1, 2]], (left, right)


def test_a_record_without_a_name_joins_the_person_whose_address_it_shares() -> None:
    shared = identifiers(
        *LANDLINE.itertuples(index=False, name=None),
        (4, "phone", "+14155550100"),
        (4, "email", "mary@home.example"),
    )
    linkage = link([1, 2, 3, 4], shared, ON, names=names(r1="John", r2="Mary", r3="John", r4=None))
    assert groups(linkage) == [[1, 3], [2, 4]]


def test_a_record_with_only_the_shared_phone_and_no_name_belongs_to_nobody() -> None:
    """It could be John or Mary: guessing would pour one person's fields into the other's record."""
    shared = identifiers(*LANDLINE.itertuples(index=False, name=None), (4, "phone", "+14155550100"))
    linkage = link([1, 2, 3, 4], shared, ON, names=names(r1="John", r2="Mary", r3="John", r4=None))
    assert groups(linkage) == [[1, 3], [2], [4]]
    unclear = linkage.refused[linkage.refused["record_key_b"] == 4]
    assert set(unclear["rule"]) == {"unclear_whose"}


def test_a_nameless_record_with_a_couples_address_and_one_partners_mobile_is_that_partner() -> None:
    """The shared address decides nothing; the mobile only one partner holds does."""
    shared = identifiers(
        (1, "email", "smiths@mail.example"),
        (1, "phone", "+14155550101"),
        (2, "email", "smiths@mail.example"),
        (2, "phone", "+14155550102"),
        (3, "email", "smiths@mail.example"),
        (3, "phone", "+14155550102"),
    )
    linkage = link([1, 2, 3], shared, ON, names=names(r1="Anna", r2="Peter", r3=None))
    assert groups(linkage) == [[1], [2, 3]]


def test_an_initial_shared_by_two_people_is_unclear() -> None:
    shared = identifiers(*LANDLINE.itertuples(index=False, name=None), (4, "phone", "+14155550100"))
    linkage = link([1, 2, 3, 4], shared, ON, names=names(r1="John", r2="Jane", r3="John", r4="J"))
    assert groups(linkage) == [[1, 3], [2], [4]]


def test_users_nicknames_extend_the_list() -> None:
    shared = identifiers((1, "phone", "+14155550100"), (2, "phone", "+14155550100"))
    pair = names(r1="Bubba", r2="Carl")
    assert groups(link([1, 2], shared, ON, names=pair)) == [[1], [2]]
    extended = IdentityConfig(nickname_pairs=(("Carl", "Bubba"),))
    assert groups(link([1, 2], shared, extended, names=pair)) == [[1, 2]]
    assert extended.fingerprint() != ON.fingerprint()


def test_name_tokens_fold_what_does_not_tell_people_apart() -> None:
    assert [name_token(v) for v in ["  Zoë ", "J.", "王伟", "Mary-Ann", "42", "", None]] == [
        "zoe",
        "j",
        "wangwei",
        "maryann",
        None,
        None,
        None,
    ]
    agree = NameMatcher().agree(
        np.array(["bob", "mary", "john", None], dtype=object),
        np.array(["robert", "john", "j", "x"], dtype=object),
    )
    assert agree.tolist() == [True, False, True, True]


# Properties over random households: identifiers from small pools, names from a pool in which agreement
# is an equivalence (so a contact holding two disagreeing names is always a fault).
_VALUES = [f"v{n}" for n in range(8)]
_NAMES = ["John", "Johnny", "J", "Mary", "Bob", "Robert", None]
_RECORD = st.tuples(
    st.lists(st.tuples(st.sampled_from(["email", "phone"]), st.sampled_from(_VALUES)), max_size=3),
    st.sampled_from(_NAMES),
)
_STATES = st.dictionaries(st.integers(1, 40), _RECORD, max_size=25)
_CONFIG = IdentityConfig(max_records_per_identifier=4, same_digit_run_min=None)
Record = tuple[list[tuple[str, str]], str | None]


def _identifiers(state: dict[int, Record]) -> pd.DataFrame:
    return identifiers(*[(key, kind, value) for key, (points, _) in state.items() for kind, value in points])


def _names(state: dict[int, Record]) -> pd.DataFrame:
    rows = [(key, name) for key, (_, name) in state.items()]
    return pd.DataFrame(rows, columns=["record_key", "first_name"]).astype({"record_key": np.int64})


def _resolve(state: dict[int, Record], previous: pd.DataFrame, next_id: int) -> Resolution:
    return resolve(
        list(state),
        _identifiers(state),
        previous,
        config=_CONFIG,
        id_factory=ContactIdFactory(next_id),
        names=_names(state),
    )


@settings(max_examples=60, deadline=None)
@given(_STATES)
def test_no_contact_holds_two_names_that_disagree(state: dict[int, Record]) -> None:
    result = _resolve(state, NO_PREVIOUS, 1)
    tokens = _names(state).set_index("record_key")["first_name"].map(name_token)
    people = result.assignment.assign(token=tokens.reindex(result.assignment["record_key"]).to_numpy())
    matcher = NameMatcher()
    for _, members in people.dropna(subset=["token"]).groupby("contact_id"):
        distinct = members["token"].unique()
        left, right = np.meshgrid(distinct, distinct)
        assert matcher.agree(left.ravel().astype(object), right.ravel().astype(object)).all()


@settings(max_examples=50, deadline=None)
@given(_STATES, st.randoms(use_true_random=False))
def test_input_order_changes_nothing(state: dict[int, Record], rng) -> None:
    first = _resolve(state, NO_PREVIOUS, 1)
    keys = list(state)
    rng.shuffle(keys)
    second = resolve(
        keys,
        _identifiers(state).sample(frac=1, random_state=rng.randint(0, 2**31)),
        NO_PREVIOUS,
        config=_CONFIG,
        id_factory=ContactIdFactory(1),
        names=_names(state).sample(frac=1, random_state=rng.randint(0, 2**31)),
    )
    assert first.assignment.reset_index(drop=True).equals(second.assignment.reset_index(drop=True))
    assert first.refused.equals(second.refused)


_CHANGES = st.dictionaries(st.integers(1, 50), st.one_of(st.none(), _RECORD), max_size=8)


@settings(max_examples=80, deadline=None)
@given(_STATES, _CHANGES)
def test_incremental_equals_full_with_households(
    state: dict[int, Record], changes: dict[int, Record | None]
) -> None:
    """A name filled in, changed or cleared re-judges the links around it, as a full run would."""
    first = _resolve(state, NO_PREVIOUS, 1)
    store = FrameIdentityStore(_identifiers(state), first.assignment, _names(state))
    updated = {key: record for key, record in changes.items() if record is not None}
    deleted = np.array(sorted(k for k, r in changes.items() if r is None and k in state), np.int64)
    changed = np.array(sorted(updated), dtype=np.int64)
    now = {key: record for key, record in state.items() if key not in changes} | updated

    incremental = resolve_incremental(
        _identifiers(updated),
        changed,
        deleted,
        store=store,
        config=_CONFIG,
        id_factory=ContactIdFactory(1000),
        changed_names=_names(updated),
    )
    full = _resolve(now, first.assignment, 1000)
    written = store.after(incremental, _identifiers(updated), changed, deleted, _names(updated))
    assert written.assignment.reset_index(drop=True).equals(full.assignment.reset_index(drop=True))
    assert incremental.merges.reset_index(drop=True).equals(full.merges.reset_index(drop=True))
    assert incremental.new_contact_ids == full.new_contact_ids
    assert incremental.retired_contact_ids == full.retired_contact_ids
    in_scope = full.refused["record_key_a"].isin(incremental.assignment["record_key"])
    assert incremental.refused.equals(full.refused[in_scope].reset_index(drop=True))
