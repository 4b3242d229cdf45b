"""Survivorship: the most recent value wins per field unless a source priority says otherwise, ties are
settled the same way whatever the row order, and lineage explains every golden value."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.identity.survivorship import LINEAGE_COLUMNS, SURVIVING_FIELDS, SurvivorshipConfig, survive


def record(key: int, contact: str, source: str, when: str | None, **values: str | None) -> dict[str, object]:
    row: dict[str, object] = {
        "record_key": key,
        "contact_id": contact,
        "source": source,
        "object": "contact",
        "source_id": f"{source}-{key}",
        "modified_at": when,
    }
    return row | {name: values.get(name) for name in SURVIVING_FIELDS}


def frame(*rows: dict[str, object]) -> pd.DataFrame:
    result = pd.DataFrame(list(rows)).astype({name: object for name in SURVIVING_FIELDS})
    result["modified_at"] = pd.to_datetime(result["modified_at"], utc=True, format="ISO8601")
    return result


RECORDS = frame(
    record(
        1,
        "c_1",
        "zoho_crm",
        "2024-01-01",
        first_name="Christopher",
        last_name="Maclead",
        email="c@example.com",
    ),
    record(2, "c_1", "linkflow", "2024-03-01", first_name="Chris", city="上海", phone="+8613774202819"),
    record(3, "c_1", "clickfunnels", None, first_name="Kit", email="kit@example.com", company="Acme"),
    record(4, "c_2", "clicksend", "2023-05-05", phone="+14155552671"),
)


def test_most_recent_record_with_a_value_wins() -> None:
    golden = survive(RECORDS).contacts.set_index("contact_id")
    assert golden.loc["c_1", "first_name"] == "Chris"
    assert golden.loc["c_1", "last_name"] == "Maclead"
    assert golden.loc["c_1", "email"] == "c@example.com"
    assert golden.loc["c_1", "phone"] == "+8613774202819"
    # The only record with a company has no modification time; it still beats having none.
    assert golden.loc["c_1", "company"] == "Acme"
    assert golden.loc["c_1", "title"] is None
    assert golden.loc["c_2", "first_name"] is None
    assert golden["source_count"].to_dict() == {"c_1": 3, "c_2": 1}
    assert golden.loc["c_1", "source_updated_at"] == pd.Timestamp("2024-03-01", tz="UTC")


def test_source_priority_overrides_recency_for_its_field_only() -> None:
    config = SurvivorshipConfig(source_priority={"first_name": ("zoho_crm", "clickfunnels")})
    result = survive(RECORDS, config)
    golden = result.contacts.set_index("contact_id")
    assert golden.loc["c_1", "first_name"] == "Christopher"
    assert golden.loc["c_1", "email"] == "c@example.com"
    rules = result.lineage.set_index(["contact_id", "field"])["rule"]
    assert rules[("c_1", "first_name")] == "source_priority"
    assert rules[("c_1", "email")] == "most_recent"


def test_unlisted_sources_rank_after_listed_ones() -> None:
    config = SurvivorshipConfig(source_priority={"first_name": ("clicksend",)})
    golden = survive(RECORDS, config).contacts.set_index("contact_id")
    # No clicksend record of c_1 has a first name: recency decides among the rest.
    assert golden.loc["c_1", "first_name"] == "Chris"
    lineage = survive(RECORDS, config).lineage.set_index(["contact_id", "field"])
    assert lineage.loc[("c_1", "first_name"), "rule"] == "most_recent"


def test_lineage_explains_every_golden_value_in_one_join() -> None:
    result = survive(RECORDS)
    assert tuple(result.lineage.columns) == LINEAGE_COLUMNS
    joined = result.lineage.merge(result.contacts, on="contact_id")
    for name in SURVIVING_FIELDS:
        rows = joined[joined["field"] == name]
        assert (rows["value"] == rows[name]).all()
    present = result.contacts.set_index("contact_id")[list(SURVIVING_FIELDS)].notna().to_numpy().sum()
    assert len(result.lineage) == present
    row = result.lineage[(result.lineage["contact_id"] == "c_1") & (result.lineage["field"] == "city")].iloc[
        0
    ]
    assert (row["value"], row["record_key"], row["source"], row["object"], row["source_id"]) == (
        "上海",
        2,
        "linkflow",
        "contact",
        "linkflow-2",
    )


def test_unknown_field_in_config_is_refused() -> None:
    with pytest.raises(ValueError, match="no such surviving field: nickname"):
        SurvivorshipConfig(source_priority={"nickname": ("zoho_crm",)})


_TIMES = st.sampled_from([None, "2024-01-01 00:00:00", "2024-06-30 12:00:00"])
_VALUES = st.sampled_from([None, "a", "b", "c"])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["c_1", "c_2", "c_3"]), st.sampled_from(["zoho_crm", "linkflow"]), _TIMES, _VALUES
        ),
        min_size=1,
        max_size=12,
    ),
    st.randoms(use_true_random=False),
    st.booleans(),
)
def test_row_order_never_changes_the_outcome(rows, rng, with_priority: bool) -> None:
    records = frame(
        *[
            record(key, contact, source, when, first_name=value, email=value)
            for key, (contact, source, when, value) in enumerate(rows)
        ]
    )
    config = SurvivorshipConfig(source_priority={"email": ("linkflow",)} if with_priority else {})
    first = survive(records, config)
    order = list(range(len(records)))
    rng.shuffle(order)
    second = survive(records.iloc[order].reset_index(drop=True), config)
    assert first.contacts.equals(second.contacts)
    assert first.lineage.equals(second.lineage)


def test_many_records_many_contacts() -> None:
    rng = np.random.default_rng(3)
    count = 5000
    records = pd.DataFrame(
        {
            "record_key": np.arange(count),
            "contact_id": pd.Series([f"c_{n:04d}" for n in rng.integers(0, 800, count)], dtype=object),
            "source": pd.Series(rng.choice(["zoho_crm", "linkflow", "clicksend"], count), dtype=object),
            "object": "contact",
            "source_id": pd.Series([str(n) for n in range(count)], dtype=object),
            "modified_at": pd.to_datetime(
                rng.integers(1_600_000_000, 1_700_000_000, count), unit="s", utc=True
            ),
        }
    )
    for name in SURVIVING_FIELDS:
        values = rng.choice(np.array(["x", "y", None], dtype=object), count)
        records[name] = pd.Series(values, dtype=object)
    result = survive(records)
    # Check one field against the rule computed the slow way.
    expected = (
        records[records["first_name"].notna()]
        .sort_values(
            ["contact_id", "modified_at", "source", "record_key"], ascending=[True, False, True, True]
        )
        .drop_duplicates("contact_id")
        .set_index("contact_id")["first_name"]
    )
    golden = result.contacts.set_index("contact_id")["first_name"].dropna()
    assert golden.to_dict() == expected.to_dict()


def test_a_value_we_wrote_is_taken_only_where_no_record_has_its_own() -> None:
    """Our copy of a golden value (``echoes``) loses to every record's own value, however recent its
    record and whatever the source priority, and still fills a field nobody else has."""
    rows = frame(
        record(1, "c_1", "zoho_bigin", "2025-01-20", country="China", city="深圳"),
        record(2, "c_1", "clicksend", "2025-09-04", country="CN", city="Shenzhen", company="Huali"),
        record(3, "c_1", "zoho_crm", "2026-09-15", country=None),
    )
    rows["echoes"] = pd.Series([None, frozenset({"country", "company"}), frozenset()], dtype=object)
    by_recency = survive(rows)
    golden = by_recency.contacts.set_index("contact_id")
    assert (golden.loc["c_1", "country"], golden.loc["c_1", "city"]) == ("China", "Shenzhen")
    assert golden.loc["c_1", "company"] == "Huali"  # only our copy has one: it stays
    lineage = by_recency.lineage.set_index("field")
    assert lineage.loc["country", "source"] == "zoho_bigin"
    by_priority = survive(rows, SurvivorshipConfig(source_priority={"country": ("clicksend",)}))
    assert by_priority.contacts.loc[0, "country"] == "China"
    assert survive(rows.drop(columns="echoes")).contacts.loc[0, "country"] == "CN"  # what it was


def test_a_junk_value_is_taken_only_where_the_contact_holds_nothing_else() -> None:
    """A placeholder email on the most recent record loses to a real one on an older record, to our own
    copy, and to any source priority; it is still the golden value of a contact holding nothing else."""
    rows = frame(
        record(1, "c_1", "zoho_crm", "2024-01-01", email="ann@example.org"),
        record(2, "c_1", "clickfunnels", "2026-01-01", email="test@test.com", phone="+15555555555"),
        record(3, "c_2", "clickfunnels", "2026-01-01", email="test@test.com"),
        record(4, "c_3", "clicksend", "2026-02-01", email="test@test.com"),
        record(5, "c_3", "linkflow", "2025-01-01", email="bo@example.org"),
    )
    rows["echoes"] = pd.Series([None, None, None, None, frozenset({"email"})], dtype=object)
    junk = {
        "email": rows["email"].eq("test@test.com").to_numpy(),
        "phone": np.zeros(len(rows), dtype=bool),
    }
    golden = survive(rows, junk=junk)
    emails = golden.contacts.set_index("contact_id")["email"].to_dict()
    assert emails == {"c_1": "ann@example.org", "c_2": "test@test.com", "c_3": "bo@example.org"}
    assert golden.lineage.set_index(["contact_id", "field"]).loc[("c_1", "email"), "record_key"] == 1
    assert golden.contacts.set_index("contact_id").loc["c_1", "phone"] == "+15555555555"
    favoured = SurvivorshipConfig(source_priority={"email": ("clickfunnels",)})
    assert survive(rows, favoured, junk).contacts.loc[0, "email"] == "ann@example.org"
    assert survive(rows).contacts.loc[0, "email"] == "test@test.com"  # what it was
