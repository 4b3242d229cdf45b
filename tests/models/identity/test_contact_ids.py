"""Stable contact ids: merges keep the oldest id, splits keep it with the larger part, rebuilds reuse ids
by overlap, and new ids come out in a fixed order."""

import numpy as np
import pandas as pd
import pytest

from models.identity.contact_ids import ContactIdFactory, assign_contact_ids


def components(groups: list[list[int]]) -> pd.DataFrame:
    rows = [(key, min(group)) for group in groups for key in group]
    return pd.DataFrame(rows, columns=["record_key", "component"]).astype(np.int64)


def previous(ids: dict[int, str]) -> pd.DataFrame:
    return pd.DataFrame({"record_key": list(ids), "contact_id": pd.Series(list(ids.values()), dtype=object)})


def test_factory_mints_fixed_width_ids_in_order() -> None:
    factory = ContactIdFactory()
    assert factory(2) == ["c_000000000001", "c_000000000002"]
    assert factory(1) == ["c_000000000003"]
    assert factory(0) == []
    assert sorted(["c_000000000010", "c_000000000009"]) == ["c_000000000009", "c_000000000010"]


def test_factory_resumes_after_the_latest_id() -> None:
    assert ContactIdFactory.after(None)(1) == ["c_000000000001"]
    assert ContactIdFactory.after("c_000000000041")(1) == ["c_000000000042"]
    with pytest.raises(ValueError, match="not an id this factory mints"):
        ContactIdFactory.after("contact-7")
    with pytest.raises(ValueError, match="start at 1"):
        ContactIdFactory(0)


def test_first_run_mints_in_cluster_order() -> None:
    result = assign_contact_ids(components([[5, 9], [1], [3, 4]]), previous({}), ContactIdFactory())
    assert result.assignment.to_dict("list") == {
        "record_key": [1, 3, 4, 5, 9],
        "contact_id": [
            "c_000000000001",
            "c_000000000002",
            "c_000000000002",
            "c_000000000003",
            "c_000000000003",
        ],
    }
    assert result.new_contact_ids == ["c_000000000001", "c_000000000002", "c_000000000003"]
    assert result.merges.empty


def test_merge_keeps_the_oldest_id() -> None:
    before = previous({1: "c_000000000007", 2: "c_000000000007", 3: "c_000000000002", 4: "c_000000000009"})
    result = assign_contact_ids(components([[1, 2, 3, 4]]), before, ContactIdFactory(100))
    assert set(result.assignment["contact_id"]) == {"c_000000000002"}
    assert result.merges.to_dict("records") == [
        {
            "old_contact_id": "c_000000000007",
            "new_contact_id": "c_000000000002",
            "kind": "merge",
            "record_count": 2,
        },
        {
            "old_contact_id": "c_000000000009",
            "new_contact_id": "c_000000000002",
            "kind": "merge",
            "record_count": 1,
        },
    ]
    assert result.new_contact_ids == []


def test_split_keeps_the_id_with_the_larger_part() -> None:
    before = previous({1: "c_000000000005", 2: "c_000000000005", 3: "c_000000000005", 4: "c_000000000005"})
    result = assign_contact_ids(components([[1], [2, 3, 4]]), before, ContactIdFactory(100))
    assert result.assignment.set_index("record_key")["contact_id"].to_dict() == {
        1: "c_000000000100",
        2: "c_000000000005",
        3: "c_000000000005",
        4: "c_000000000005",
    }
    assert result.merges.to_dict("records") == [
        {
            "old_contact_id": "c_000000000005",
            "new_contact_id": "c_000000000100",
            "kind": "split",
            "record_count": 1,
        }
    ]
    assert result.new_contact_ids == ["c_000000000100"]


def test_even_split_goes_to_the_cluster_with_the_smaller_label() -> None:
    before = previous({3: "c_000000000005", 4: "c_000000000005", 1: "c_000000000005", 2: "c_000000000005"})
    result = assign_contact_ids(components([[3, 4], [1, 2]]), before, ContactIdFactory(100))
    assert result.assignment.set_index("record_key")["contact_id"].to_dict() == {
        1: "c_000000000005",
        2: "c_000000000005",
        3: "c_000000000100",
        4: "c_000000000100",
    }


def test_split_part_joining_another_contact_is_reported_as_split() -> None:
    before = previous({1: "c_000000000001", 2: "c_000000000001", 3: "c_000000000001", 4: "c_000000000002"})
    result = assign_contact_ids(components([[1, 2], [3, 4]]), before, ContactIdFactory(100))
    assert result.assignment.set_index("record_key")["contact_id"].to_dict() == {
        1: "c_000000000001",
        2: "c_000000000001",
        3: "c_000000000002",
        4: "c_000000000002",
    }
    assert result.merges.to_dict("records") == [
        {
            "old_contact_id": "c_000000000001",
            "new_contact_id": "c_000000000002",
            "kind": "split",
            "record_count": 1,
        }
    ]


def test_rebuild_reuses_ids_by_greatest_overlap() -> None:
    """Clusters reshuffled across the board: each old id lands where most of its records went."""
    before = previous(
        {
            1: "c_000000000001",
            2: "c_000000000001",
            3: "c_000000000001",
            4: "c_000000000002",
            5: "c_000000000002",
        }
    )
    result = assign_contact_ids(components([[1, 4, 5], [2, 3], [6]]), before, ContactIdFactory(100))
    contact = result.assignment.set_index("record_key")["contact_id"]
    assert contact[[2, 3]].tolist() == ["c_000000000001", "c_000000000001"]
    assert contact[[1, 4, 5]].tolist() == ["c_000000000002"] * 3
    assert contact[6] == "c_000000000100"


def test_previous_rows_of_vanished_records_are_ignored() -> None:
    before = previous({1: "c_000000000003", 99: "c_000000000004"})
    result = assign_contact_ids(components([[1]]), before, ContactIdFactory(100))
    assert result.assignment["contact_id"].tolist() == ["c_000000000003"]
    assert result.merges.empty


def test_row_order_does_not_matter() -> None:
    before = previous({1: "c_000000000001", 2: "c_000000000002", 3: "c_000000000002", 4: "c_000000000001"})
    groups = components([[1, 2], [3, 4], [5]])
    first = assign_contact_ids(groups, before, ContactIdFactory(100))
    second = assign_contact_ids(groups.iloc[::-1], before.iloc[::-1], ContactIdFactory(100))
    assert first.assignment.equals(second.assignment)
    assert first.merges.equals(second.merges)
    assert first.new_contact_ids == second.new_contact_ids


def test_duplicate_previous_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="lists a record twice"):
        assign_contact_ids(
            components([[1]]),
            pd.DataFrame({"record_key": [1, 1], "contact_id": ["c_000000000001", "c_000000000002"]}),
            ContactIdFactory(),
        )


def test_a_factory_that_returns_too_few_ids_is_refused() -> None:
    with pytest.raises(ValueError, match="returned 0 ids, 1 were asked for"):
        assign_contact_ids(components([[1]]), previous({}), lambda count: [])
