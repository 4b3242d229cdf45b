"""Give clusters contact ids that survive from run to run, and say which ids merged or split.

Rules, applied in one pass over (previous id, cluster, records in common):
- each previous id belongs to the cluster holding most of its records (ties: the cluster with the smaller
  label), so a full rebuild reuses every id where its records went;
- a cluster that several ids belong to keeps the oldest (smallest) one; the others are merged into it;
- a previous id's records outside its own cluster are split off: they take that cluster's id, new if it
  has none;
- a cluster no id belongs to gets a new id; new ids are handed out in order of cluster label.

Everything is decided by sorting on ids, labels and counts, so the result never depends on row order.
"""

import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

IdFactory = Callable[[int], Sequence[str]]

MERGE_COLUMNS = ("old_contact_id", "new_contact_id", "kind", "record_count")


class ContactIdFactory:
    """Mints `c_000000000001`, `c_000000000002`, ...: fixed width, so comparing ids as text compares
    them by creation, which is what "the oldest id survives" needs; and deterministic, so a re-run
    mints the same ids. Resume with `ContactIdFactory.after(latest id ever minted)`."""

    PREFIX = "c_"
    WIDTH = 12
    _PARSE = re.compile(rf"{PREFIX}(\d{{{WIDTH}}})")

    def __init__(self, next_sequence: int = 1) -> None:
        if next_sequence < 1:
            raise ValueError("sequences start at 1")
        self.next_sequence = next_sequence

    @classmethod
    def after(cls, latest: str | None) -> "ContactIdFactory":
        """A factory continuing after `latest` (None: nothing minted yet). Pass the largest id in
        contacts and contact_merges together, so a merged-away id is never minted again."""
        if latest is None:
            return cls()
        match = cls._PARSE.fullmatch(latest)
        if match is None:
            raise ValueError(f"{latest!r} is not an id this factory mints")
        return cls(int(match.group(1)) + 1)

    def __call__(self, count: int) -> list[str]:
        start = self.next_sequence
        self.next_sequence += count
        return [f"{self.PREFIX}{n:0{self.WIDTH}d}" for n in range(start, start + count)]


class ContactIds(NamedTuple):
    """assignment: record_key, contact_id; one row per clustered record, sorted by record_key.
    merges: old_contact_id, new_contact_id, kind, record_count. kind 'merge': old id is gone, its
        records now carry new id (record in contact_merges). kind 'split': old id lives on, but
        record_count of its records left it for new id.
    new_contact_ids: ids minted by this call, in minting order.
    """

    assignment: pd.DataFrame
    merges: pd.DataFrame
    new_contact_ids: list[str]


def assign_contact_ids(components: pd.DataFrame, previous: pd.DataFrame, id_factory: IdFactory) -> ContactIds:
    """Contact ids for `components` (record_key, component) given `previous` (record_key, contact_id).

    Previous rows for records not in `components` are ignored (deleted records, or records outside an
    incremental neighbourhood).
    """
    current = components.loc[:, ["record_key", "component"]]
    if previous["record_key"].duplicated().any():
        raise ValueError("previous assignment lists a record twice")
    known = current.merge(previous.loc[:, ["record_key", "contact_id"]], on="record_key", how="inner")
    overlap = known.groupby(["contact_id", "component"], sort=False).size().rename("n").reset_index()
    overlap = overlap.sort_values(["contact_id", "n", "component"], ascending=[True, False, True])
    at_home = ~overlap["contact_id"].duplicated().to_numpy()
    homes = overlap[at_home]
    survivors = homes.sort_values(["component", "contact_id"]).drop_duplicates("component")

    labels = np.unique(current["component"].to_numpy(dtype=np.int64))
    kept = pd.Series(survivors["contact_id"].to_numpy(dtype=object), index=survivors["component"].to_numpy())
    unnamed = labels[~np.isin(labels, kept.index.to_numpy())]
    minted = list(id_factory(len(unnamed)))
    if len(minted) != len(unnamed):
        raise ValueError(f"id factory returned {len(minted)} ids, {len(unnamed)} were asked for")
    names = pd.concat([kept, pd.Series(minted, index=unnamed, dtype=object)])

    merged = homes[~homes["contact_id"].isin(survivors["contact_id"])]
    split = overlap[~at_home]
    merges = pd.concat(
        [
            pd.DataFrame(
                {
                    "old_contact_id": merged["contact_id"],
                    "new_contact_id": names[merged["component"]].to_numpy(),
                    "kind": "merge",
                    "record_count": merged["n"],
                }
            ),
            pd.DataFrame(
                {
                    "old_contact_id": split["contact_id"],
                    "new_contact_id": names[split["component"]].to_numpy(),
                    "kind": "split",
                    "record_count": split["n"],
                }
            ),
        ],
        ignore_index=True,
    ).astype({"old_contact_id": object, "new_contact_id": object, "kind": object, "record_count": np.int64})
    merges = merges.sort_values(["kind", "old_contact_id", "new_contact_id"], ignore_index=True)

    assignment = pd.DataFrame(
        {
            "record_key": current["record_key"].to_numpy(dtype=np.int64),
            "contact_id": pd.Series(names[current["component"].to_numpy()].to_numpy(), dtype=object),
        }
    ).sort_values("record_key", ignore_index=True)
    return ContactIds(assignment=assignment, merges=merges, new_contact_ids=minted)
