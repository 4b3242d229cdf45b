"""Choose each golden contact's field values from its source records, and record where each came from.

By default a field takes the value of the most recently modified source record that has one: the record
someone touched last is the likeliest to be right. A per-field source priority can override that (say,
names from Zoho CRM first, whatever changed since). Ties on modification time go to the source, object
and record key that sort first, so the choice never depends on row order. Records with no modification
time rank after every dated one.

A value our own reverse sync wrote into a record (``echoes``, `models.identity.own_writes.echoed_fields`)
is a copy of a golden value, not a source's: it is taken only for a contact none of whose records
holds a value of its own in that field, so the golden value and its lineage stay with the record it
came from, however recently the record holding the copy was edited.

A junk email or phone (``junk``: one the linking rules block by its value alone, such as
``test@test.com``) is likewise taken only for a contact none of whose records holds another: a
person with a real address on one record and a placeholder on a more recent one keeps the real one.

Lineage names, per contact and field, the winning record and the rule that picked it, one row each, so
"where did this value come from" is one join from `contacts` on contact_id.

The work is one sort per distinct ordering (one, plus one per field with a priority) and a first-row
pick per contact; no loops over contacts or records.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

SURVIVING_FIELDS = ("email", "phone", "first_name", "last_name", "company", "title", "city", "country")
RECORD_COLUMNS = ("record_key", "contact_id", "source", "object", "source_id", "modified_at")
LINEAGE_COLUMNS = ("contact_id", "field", "value", "record_key", "source", "object", "source_id", "rule")
# Codes of the lineage `rule` column: False -> most_recent, True -> source_priority.
RULES = ("most_recent", "source_priority")

_NEVER = np.iinfo(np.int64).max


@dataclass(frozen=True, slots=True)
class SurvivorshipConfig:
    """source_priority: field -> source names, best first. For a listed field a record from a listed
    source beats any record from a source further down or unlisted; recency decides within a rank."""

    source_priority: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    fields: tuple[str, ...] = SURVIVING_FIELDS
    """The fields chosen (the mappings file's own fields go through the same rules)."""

    def __post_init__(self) -> None:
        unknown = set(self.source_priority) - set(self.fields)
        if unknown:
            raise ValueError(f"no such surviving field: {', '.join(sorted(unknown))}")


class Golden(NamedTuple):
    """contacts: contact_id, SURVIVING_FIELDS, source_count, source_updated_at (latest modification time
        among its records); one row per contact, sorted by contact_id.
    lineage: LINEAGE_COLUMNS; one row per contact and field that has a value, grouped by field. rule is
        'most_recent' or 'source_priority'; field, source, object and rule are categoricals.
    """

    contacts: pd.DataFrame
    lineage: pd.DataFrame


def survive(
    records: pd.DataFrame,
    config: SurvivorshipConfig | None = None,
    junk: Mapping[str, npt.NDArray[np.bool_]] | None = None,
) -> Golden:
    """Golden rows and lineage from source records.

    records: RECORD_COLUMNS plus SURVIVING_FIELDS, one row per source record. email and phone are that
        record's primary normalised values (None when it has no usable one); text fields None when absent.
        modified_at is a UTC datetime column (NaT allowed). Optionally ``echoes``: per record, the
        fields whose value we wrote there (a collection of field names, or None).
    junk: per field, the records whose value there is junk: chosen last, after our own copies.
    """
    config = config or SurvivorshipConfig()
    contact_codes, contact_ids = pd.factorize(records["contact_id"].to_numpy(dtype=object), sort=True)
    source_codes, sources = pd.factorize(records["source"].to_numpy(dtype=object), sort=True)
    object_codes, objects = pd.factorize(records["object"].to_numpy(dtype=object), sort=True)
    record_keys = records["record_key"].to_numpy(dtype=np.int64)
    ticks = _ticks(records["modified_at"])
    recency = np.where(ticks == np.iinfo(np.int64).min, _NEVER, -ticks)
    tie_breaks = (record_keys, object_codes, source_codes, recency)

    echoed = _echo_masks(records)
    contacts = pd.DataFrame({"contact_id": pd.Series(contact_ids, dtype=object)})
    orders: dict[tuple[str, ...], npt.NDArray[np.intp]] = {}
    picks: list[_Pick] = []
    for name in config.fields:
        values = records[name].to_numpy(dtype=object)
        priority = config.source_priority.get(name, ())
        rank = _ranks(np.asarray(sources, dtype=object), source_codes, priority)
        if priority not in orders:
            orders[priority] = np.lexsort((*tie_breaks, rank, contact_codes))
        tiers = _tiers(len(values), echoed.get(name), (junk or {}).get(name))
        pick = _first_present(orders[priority], values, contact_codes, tiers)
        pick.by_priority = rank[pick.winners] < len(priority)
        column = np.full(len(contact_ids), None, dtype=object)
        column[pick.owners] = values[pick.winners]
        contacts[name] = pd.Series(column, dtype=object)
        picks.append(pick)
    contacts["source_count"] = np.bincount(contact_codes, minlength=len(contact_ids)).astype(np.int64)
    latest = np.full(len(contact_ids), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(latest, contact_codes, ticks)
    contacts["source_updated_at"] = pd.Series(latest.view("datetime64[us]")).dt.tz_localize("UTC")

    winners = np.concatenate([pick.winners for pick in picks])
    field_codes = np.repeat(np.arange(len(config.fields)), [len(pick.winners) for pick in picks])
    lineage = pd.DataFrame(
        {
            "contact_id": pd.Series(
                np.asarray(contact_ids, dtype=object)[contact_codes[winners]], dtype=object
            ),
            "field": _categorical(field_codes, list(config.fields)),
            "value": pd.Series(np.concatenate([pick.values for pick in picks]), dtype=object),
            "record_key": record_keys[winners],
            "source": _categorical(source_codes[winners], list(sources)),
            "object": _categorical(object_codes[winners], list(objects)),
            "source_id": pd.Series(records["source_id"].to_numpy(dtype=object)[winners], dtype=object),
            "rule": _categorical(
                np.concatenate([pick.by_priority for pick in picks]).astype(np.int8), list(RULES)
            ),
        }
    )
    return Golden(contacts=contacts, lineage=lineage)


def _categorical(codes: npt.NDArray[np.integer[Any]], categories: list[str]) -> "pd.Categorical[Any]":
    return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(categories))


@dataclass(slots=True)
class _Pick:
    """For one field: the winning record row of each contact that has a value, and that value."""

    owners: npt.NDArray[np.intp]
    winners: npt.NDArray[np.intp]
    values: npt.NDArray[np.object_]
    by_priority: npt.NDArray[np.bool_]


def _tiers(
    size: int, echoed: npt.NDArray[np.bool_] | None, junk: npt.NDArray[np.bool_] | None
) -> npt.NDArray[np.int64] | None:
    """Per record, how far back its value ranks: 0 its own, 1 our copy, 2 junk; None when all are 0."""
    if echoed is None and junk is None:
        return None
    tiers = np.zeros(size, dtype=np.int64)
    if echoed is not None:
        tiers[echoed] = 1
    if junk is not None:
        tiers[np.asarray(junk, dtype=bool)] = 2
    return tiers


def _first_present(
    order: npt.NDArray[np.intp],
    values: npt.NDArray[np.object_],
    contact_codes: npt.NDArray[np.intp],
    tiers: npt.NDArray[np.int64] | None = None,
) -> _Pick:
    """In `order` (grouped by contact, best first), the first row of each contact with a value, from
    the lowest tier (`_tiers`) that has one: our own copy only where the contact has no value of its
    own, junk only where it has nothing else."""
    present = pd.notna(values[order])
    if tiers is not None:
        # Stable: every contact's own values first, in order, then its copies, then its junk.
        key = contact_codes[order].astype(np.int64) * 3 + np.where(present, tiers[order], 0)
        order = order[np.argsort(key, kind="stable")]
        present = pd.notna(values[order])
    chosen = order[present]
    owners = contact_codes[chosen]
    first = np.ones(len(chosen), dtype=bool)
    first[1:] = owners[1:] != owners[:-1]
    winners = chosen[first]
    return _Pick(owners=owners[first], winners=winners, values=values[winners], by_priority=np.zeros(0, bool))


def _echo_masks(records: pd.DataFrame) -> dict[str, npt.NDArray[np.bool_]]:
    """Per surviving field with any, which records hold our own copy of the golden value there."""
    if "echoes" not in records:
        return {}
    echoes = records["echoes"].to_numpy(dtype=object)
    rows = [row for row, names in enumerate(echoes) if names]
    masks: dict[str, npt.NDArray[np.bool_]] = {}
    for row in rows:
        for name in echoes[row]:
            if name in SURVIVING_FIELDS:
                # Not ``setdefault(name, np.zeros(...))``: that makes a whole mask per echo, used or
                # not (19 s of a rebuild at a million records we had written to, quadratic in them).
                mask = masks.get(name)
                if mask is None:
                    mask = masks[name] = np.zeros(len(echoes), dtype=bool)
                mask[row] = True
    return masks


def _ticks(modified: pd.Series) -> npt.NDArray[np.int64]:
    """Microseconds since the epoch, NaT as the smallest int64."""
    as_utc = pd.to_datetime(modified, utc=True).dt.as_unit("us")
    return as_utc.to_numpy(dtype="datetime64[us]").view(np.int64)


def _ranks(
    sources: npt.NDArray[np.object_], source_codes: npt.NDArray[np.intp], priority: tuple[str, ...]
) -> npt.NDArray[np.int64]:
    """Per record, the rank of its source in `priority` (unlisted sources share the rank after the last)."""
    if not priority:
        return np.zeros(len(source_codes), dtype=np.int64)
    position = {source: rank for rank, source in enumerate(priority)}
    by_code = np.array([position.get(source, len(priority)) for source in sources], dtype=np.int64)
    return by_code[source_codes]
