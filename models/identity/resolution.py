"""Resolve records into contacts: everything at once, or only what a set of changed records can touch.

An incremental run re-resolves the neighbourhood of the changes and nothing else, so its cost follows the
change, and it gives exactly what a full run would (property tests hold it to that). The neighbourhood is
found from the last run's state, read through `IdentityStore`, whose five lookups are each one indexed
query in the warehouse:

1. T: the identifiers the changed records held before or hold now, keeping those that could link on
   either side (not blocklisted, and held by no more than the record limit before or after the change).
   Only these can gain or lose links; an identifier suppressed before and after changes nothing.
2. The previous contacts of the changed records and of every record holding an identifier in T.
3. The neighbourhood: all records of those contacts, plus new records, minus deleted ones.

With household splitting (`models.identity.households`), a link is judged by the names of every record
that shares the identifiers around it, so the neighbourhood grows to whole linked groups: step 3 repeats,
adding every record that shares a usable identifier with one inside and the records of its previous
contact, until nothing is added. The outcome inside then depends only on records inside, as a full run's.

Why that is enough: a link between a record inside and one outside the neighbourhood would run through
an identifier outside T, whose usability did not change and whose holders all kept their identifiers, so
the two records were linked last time too and share a previous contact, which puts both inside. The
contacts outside are therefore exactly last run's, with the same ids, and new ids are only ever minted
inside, in the same order a full run would mint them.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.identity.contact_ids import IdFactory, assign_contact_ids
from models.identity.linking import (
    IDENTIFIER_COLUMNS,
    NAME_COLUMNS,
    IdentityConfig,
    link,
    record_key_array,
)


@dataclass(frozen=True, slots=True)
class Resolution:
    """The outcome for the records in scope (all of them, or an incremental neighbourhood).

    assignment: record_key, contact_id for every record in scope; write these over the previous ones.
    merges, new_contact_ids: as in `models.identity.contact_ids.ContactIds`.
    retired_contact_ids: previous ids in scope left with no record at all (their records were deleted).
    suppressed, refused: as in `models.identity.linking.Linkage`.
    """

    assignment: pd.DataFrame
    merges: pd.DataFrame
    new_contact_ids: list[str]
    retired_contact_ids: list[str]
    suppressed: pd.DataFrame
    refused: pd.DataFrame


def resolve(
    record_keys: Iterable[int] | npt.NDArray[np.int64],
    identifiers: pd.DataFrame,
    previous: pd.DataFrame,
    *,
    config: IdentityConfig,
    id_factory: IdFactory,
    identifier_counts: pd.DataFrame | None = None,
    names: pd.DataFrame | None = None,
) -> Resolution:
    """Cluster `record_keys` (see `models.identity.linking.link`) and give the clusters stable ids against
    `previous` (record_key, contact_id; rows of records no longer present are allowed)."""
    linkage = link(record_keys, identifiers, config, identifier_counts, names)
    ids = assign_contact_ids(linkage.components, previous, id_factory)
    known = pd.Series(pd.unique(previous["contact_id"].to_numpy(dtype=object)), dtype=object)
    merged_away = ids.merges.loc[ids.merges["kind"] == "merge", "old_contact_id"]
    retired = known[~known.isin(ids.assignment["contact_id"]) & ~known.isin(merged_away)]
    return Resolution(
        assignment=ids.assignment,
        merges=ids.merges,
        new_contact_ids=ids.new_contact_ids,
        retired_contact_ids=sorted(retired),
        suppressed=linkage.suppressed,
        refused=linkage.refused,
    )


class IdentityStore(Protocol):
    """The last run's state, as `resolve_incremental` reads it; record keys are int64 arrays, identifier
    lists are frames with columns kind, value.

    The identifiers are exactly those the last run resolved with (every usable normalised value of every
    record, suppressed ones included: whether they link depends on counts that changes can move), and
    the assignment is what it wrote. In the warehouse: a table (record_key, kind, value) indexed both
    ways, and contact_sources indexed on contact_id.
    """

    def identifiers_of(self, record_keys: npt.NDArray[np.int64]) -> pd.DataFrame:
        """record_key, kind, value of the usable identifiers these records held."""
        ...

    def holders_of(self, identifiers: pd.DataFrame) -> pd.DataFrame:
        """record_key, kind, value of every record holding one of these identifiers."""
        ...

    def record_counts(self, identifiers: pd.DataFrame) -> pd.DataFrame:
        """kind, value, record_count: how many records held each (0 when none)."""
        ...

    def contacts_of(self, record_keys: npt.NDArray[np.int64]) -> pd.DataFrame:
        """record_key, contact_id of these records (records without one are left out)."""
        ...

    def records_of_contacts(self, contact_ids: npt.NDArray[np.object_]) -> pd.DataFrame:
        """record_key, contact_id of every record of these contacts."""
        ...

    def names_of(self, record_keys: npt.NDArray[np.int64]) -> pd.DataFrame:
        """record_key, first_name of these records as the last run read them."""
        ...


def resolve_incremental(
    changed: pd.DataFrame,
    changed_record_keys: Iterable[int] | npt.NDArray[np.int64],
    deleted_record_keys: Iterable[int] | npt.NDArray[np.int64],
    *,
    store: IdentityStore,
    config: IdentityConfig,
    id_factory: IdFactory,
    changed_names: pd.DataFrame | None = None,
) -> Resolution:
    """Re-resolve only what the changes can reach.

    changed: record_key, kind, value: the usable identifiers the changed records hold now.
    changed_record_keys: records added or updated since the last run (with or without identifiers).
    deleted_record_keys: records gone since the last run.
    store: the state as the last run left it (identifiers and assignment before these changes).
    changed_names: record_key, first_name of the changed records; given (with the config's
        household_split on), links are judged by names, as `resolve` does with `names`.
    Blocklist, limit or household changes in `config` need a full `resolve`; this only follows record
    changes.
    """
    updated = record_key_array(changed_record_keys)
    deleted = record_key_array(deleted_record_keys)
    touched = np.union1d(updated, deleted)
    store = store if isinstance(store, ReadOnceStore) else ReadOnceStore(store)
    now = changed.loc[:, list(IDENTIFIER_COLUMNS)].drop_duplicates()
    if not now["record_key"].isin(updated).all():
        raise ValueError("changed identifiers name records missing from changed_record_keys")
    before = store.identifiers_of(touched).loc[:, list(IDENTIFIER_COLUMNS)]

    delta = _count_delta(before, now)
    counts = _with_delta(store.record_counts(delta.loc[:, ["kind", "value"]]), delta)
    kinds, values = counts["kind"].to_numpy(dtype=object), counts["value"].to_numpy(dtype=object)
    static_ok = config.static_rules(kinds, values).isna().to_numpy()
    limit = config.max_records_per_identifier
    could_link = static_ok & (
        (counts["before"].to_numpy() <= limit) | (counts["record_count"].to_numpy() <= limit)
    )
    reach = store.holders_of(counts.loc[could_link, ["kind", "value"]])
    seeds = np.union1d(touched, reach["record_key"].to_numpy(dtype=np.int64))
    contacts = store.contacts_of(seeds)["contact_id"].unique()
    previous = store.records_of_contacts(np.asarray(contacts, dtype=object))
    scope = np.setdiff1d(np.union1d(previous["record_key"].to_numpy(dtype=np.int64), updated), deleted)
    households = changed_names is not None and config.household_split
    if households:
        scope, previous = _linked_groups(
            scope,
            previous,
            now=now,
            updated=updated,
            deleted=deleted,
            delta=delta,
            store=store,
            config=config,
        )

    kept = store.identifiers_of(np.setdiff1d(scope, updated)).loc[:, list(IDENTIFIER_COLUMNS)]
    identifiers = pd.concat([kept, now], ignore_index=True)
    held = identifiers.loc[:, ["kind", "value"]].drop_duplicates()
    global_counts = _with_delta(store.record_counts(held), delta)
    names = None
    if households and changed_names is not None:
        names = pd.concat(
            [store.names_of(np.setdiff1d(scope, updated)), changed_names.loc[:, list(NAME_COLUMNS)]],
            ignore_index=True,
        )
    return resolve(
        scope,
        identifiers,
        previous,
        config=config,
        id_factory=id_factory,
        identifier_counts=global_counts,
        names=names,
    )


def _linked_groups(
    scope: npt.NDArray[np.int64],
    previous: pd.DataFrame,
    *,
    now: pd.DataFrame,
    updated: npt.NDArray[np.int64],
    deleted: npt.NDArray[np.int64],
    delta: pd.DataFrame,
    store: IdentityStore,
    config: IdentityConfig,
) -> tuple[npt.NDArray[np.int64], pd.DataFrame]:
    """`scope` grown to whole groups of records linked by usable identifiers (after the changes), with
    the previous contacts of every record added: the unit household splitting decides on."""
    while True:
        held = (
            pd.concat([store.identifiers_of(np.setdiff1d(scope, updated)), now], ignore_index=True)
            .loc[:, ["kind", "value"]]
            .drop_duplicates()
        )
        counts = _with_delta(store.record_counts(held), delta)
        static_ok = (
            config.static_rules(counts["kind"].to_numpy(dtype=object), counts["value"].to_numpy(dtype=object))
            .isna()
            .to_numpy()
        )
        usable = counts.loc[
            static_ok & (counts["record_count"].to_numpy() <= config.max_records_per_identifier),
            ["kind", "value"],
        ]
        holders = store.holders_of(usable)["record_key"].to_numpy(dtype=np.int64)
        reached = np.setdiff1d(np.setdiff1d(holders, deleted), scope)
        if not len(reached):
            return scope, previous
        contacts = store.contacts_of(reached)["contact_id"].unique()
        more = store.records_of_contacts(np.asarray(contacts, dtype=object))
        previous = pd.concat([previous, more], ignore_index=True).drop_duplicates("record_key")
        grown = np.union1d(reached, more["record_key"].to_numpy(dtype=np.int64))
        scope = np.union1d(scope, np.setdiff1d(grown, deleted))


class ReadOnceStore:
    """An `IdentityStore` that asks the one it wraps for each record's identifiers, each identifier's
    count and each identifier's holders once, however often they are asked for.

    `resolve_incremental` asks for the same records and identifiers many times over: the identifiers
    the changed records held, then those of the scope at every step of `_linked_groups` and once more
    for linking, the counts of the identifiers held at every step and once more. The state it reads
    does not change while it runs, so the answers can be kept; wrap a store only for as long as
    nothing writes to it. Identifiers come back ordered by record (each record's as the wrapped store
    gave them), as one query over the records in key order gives them.
    """

    def __init__(self, store: IdentityStore) -> None:
        self._store = store
        self._records_asked: npt.NDArray[np.int64] = np.array([], dtype=np.int64)
        self._identifiers = _no_identifiers()
        self._counted = pd.DataFrame(
            {
                "kind": pd.Series(dtype=object),
                "value": pd.Series(dtype=object),
                "record_count": pd.Series(dtype=np.int64),
            }
        )
        self._holders_asked: set[str] = set()
        self._holders = _no_identifiers()

    def identifiers_of(self, record_keys: npt.NDArray[np.int64]) -> pd.DataFrame:
        keys = record_key_array(record_keys)
        new = np.setdiff1d(keys, self._records_asked)
        if len(new):
            found = self._store.identifiers_of(new).loc[:, list(IDENTIFIER_COLUMNS)]
            self._identifiers = pd.concat([self._identifiers, found], ignore_index=True)
            self._records_asked = np.union1d(self._records_asked, new)
        mine = self._identifiers[self._identifiers["record_key"].isin(keys).to_numpy()]
        return mine.sort_values("record_key", kind="stable", ignore_index=True)

    def holders_of(self, identifiers: pd.DataFrame) -> pd.DataFrame:
        wanted = _identifier_keys(identifiers)
        new = ~wanted.isin(self._holders_asked).to_numpy()
        if new.any():
            asked = identifiers.loc[new, ["kind", "value"]].drop_duplicates()
            found = self._store.holders_of(asked).loc[:, list(IDENTIFIER_COLUMNS)]
            self._holders = pd.concat([self._holders, found], ignore_index=True)
            self._holders_asked.update(wanted[new])
        mine = _identifier_keys(self._holders).isin(set(wanted)).to_numpy()
        return self._holders[mine].reset_index(drop=True)

    def record_counts(self, identifiers: pd.DataFrame) -> pd.DataFrame:
        wanted = pd.DataFrame(
            {
                "kind": identifiers["kind"].to_numpy(dtype=object),
                "value": identifiers["value"].to_numpy(dtype=object),
            }
        )
        new = ~_identifier_keys(wanted).isin(set(_identifier_keys(self._counted))).to_numpy()
        if new.any():
            found = self._store.record_counts(wanted.loc[new].drop_duplicates())
            counted = found.loc[:, ["kind", "value", "record_count"]].astype({"record_count": np.int64})
            self._counted = pd.concat([self._counted, counted], ignore_index=True)
        return wanted.merge(self._counted, on=["kind", "value"], how="left")

    def contacts_of(self, record_keys: npt.NDArray[np.int64]) -> pd.DataFrame:
        return self._store.contacts_of(record_keys)

    def records_of_contacts(self, contact_ids: npt.NDArray[np.object_]) -> pd.DataFrame:
        return self._store.records_of_contacts(contact_ids)

    def names_of(self, record_keys: npt.NDArray[np.int64]) -> pd.DataFrame:
        return self._store.names_of(record_keys)


def _no_identifiers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "record_key": pd.Series(dtype=np.int64),
            "kind": pd.Series(dtype=object),
            "value": pd.Series(dtype=object),
        }
    )


def _count_delta(before: pd.DataFrame, now: pd.DataFrame) -> pd.DataFrame:
    """kind, value, delta: how the changes move each touched identifier's record count."""
    moves = pd.concat([before.assign(delta=-1), now.assign(delta=1)], ignore_index=True)
    delta = moves.groupby(["kind", "value"], sort=False)["delta"].sum().reset_index()
    return delta.astype({"kind": object, "value": object})


def _with_delta(counts: pd.DataFrame, delta: pd.DataFrame) -> pd.DataFrame:
    """kind, value, before, record_count (after the changes)."""
    merged = counts.loc[:, ["kind", "value", "record_count"]].merge(delta, on=["kind", "value"], how="left")
    change = merged["delta"].fillna(0).to_numpy(dtype=np.int64)
    before = merged["record_count"].to_numpy(dtype=np.int64)
    return pd.DataFrame(
        {"kind": merged["kind"], "value": merged["value"], "before": before, "record_count": before + change}
    )


class FrameIdentityStore:
    """`IdentityStore` over in-memory frames: for tests, benchmarks, and as the model of the SQL.

    identifiers: record_key, kind, value; assignment: record_key, contact_id.
    """

    def __init__(
        self, identifiers: pd.DataFrame, assignment: pd.DataFrame, names: pd.DataFrame | None = None
    ) -> None:
        self.names = (
            pd.DataFrame({"record_key": pd.Series(dtype=np.int64), "first_name": pd.Series(dtype=object)})
            if names is None
            else names.loc[:, list(NAME_COLUMNS)].drop_duplicates("record_key", keep="last")
        )
        self.identifiers = (
            identifiers.loc[:, list(IDENTIFIER_COLUMNS)].drop_duplicates().reset_index(drop=True)
        )
        self.assignment = assignment.loc[:, ["record_key", "contact_id"]].reset_index(drop=True)
        self._keys = _identifier_keys(self.identifiers)
        self._counts = self._keys.value_counts()
        self._by_record = self.assignment.set_index("record_key")["contact_id"]

    def identifiers_of(self, record_keys: npt.NDArray[np.int64]) -> pd.DataFrame:
        return self.identifiers[self.identifiers["record_key"].isin(record_keys)].reset_index(drop=True)

    def holders_of(self, identifiers: pd.DataFrame) -> pd.DataFrame:
        wanted = _identifier_keys(identifiers)
        return self.identifiers[self._keys.isin(wanted).to_numpy()].reset_index(drop=True)

    def record_counts(self, identifiers: pd.DataFrame) -> pd.DataFrame:
        wanted = _identifier_keys(identifiers)
        found = self._counts.reindex(wanted.to_numpy()).fillna(0).to_numpy(dtype=np.int64)
        return pd.DataFrame(
            {
                "kind": identifiers["kind"].to_numpy(dtype=object),
                "value": identifiers["value"].to_numpy(dtype=object),
                "record_count": found,
            }
        )

    def contacts_of(self, record_keys: npt.NDArray[np.int64]) -> pd.DataFrame:
        found = self._by_record.reindex(record_keys).dropna()
        return pd.DataFrame(
            {"record_key": found.index.to_numpy(dtype=np.int64), "contact_id": found.to_numpy(dtype=object)}
        )

    def records_of_contacts(self, contact_ids: npt.NDArray[np.object_]) -> pd.DataFrame:
        return self.assignment[self.assignment["contact_id"].isin(contact_ids)].reset_index(drop=True)

    def names_of(self, record_keys: npt.NDArray[np.int64]) -> pd.DataFrame:
        return self.names[self.names["record_key"].isin(record_keys)].reset_index(drop=True)

    def after(
        self,
        resolution: Resolution,
        changed: pd.DataFrame,
        changed_record_keys: npt.NDArray[np.int64],
        deleted_record_keys: npt.NDArray[np.int64],
        changed_names: pd.DataFrame | None = None,
    ) -> "FrameIdentityStore":
        """The state once `resolution` (and the changes it was computed from) is written back."""
        touched = np.union1d(changed_record_keys, deleted_record_keys)
        identifiers = pd.concat(
            [
                self.identifiers[~self.identifiers["record_key"].isin(touched)],
                changed.loc[:, list(IDENTIFIER_COLUMNS)],
            ],
            ignore_index=True,
        )
        scope = np.union1d(resolution.assignment["record_key"].to_numpy(dtype=np.int64), deleted_record_keys)
        assignment = pd.concat(
            [self.assignment[~self.assignment["record_key"].isin(scope)], resolution.assignment],
            ignore_index=True,
        ).sort_values("record_key", ignore_index=True)
        names = self.names[~self.names["record_key"].isin(touched)]
        if changed_names is not None:
            names = pd.concat([names, changed_names.loc[:, list(NAME_COLUMNS)]], ignore_index=True)
        return FrameIdentityStore(identifiers, assignment, names)


def _identifier_keys(identifiers: pd.DataFrame) -> pd.Series:
    """One text key per (kind, value), for hash lookups."""
    return identifiers["kind"].astype(object) + "\x1f" + identifiers["value"].astype(object)
