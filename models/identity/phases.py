"""The phases every resolution goes through, shared by the full build and the incremental one.

`models.identity.canonical` re-resolves every record; `models.identity.canonical_incremental` only the
neighbourhood of the changes. Between reading their records and writing their rows they do the same
work, and it lives here so neither reaches into the other:

1. **read**: payloads into each record's fields and its contact points (`extract_contact_records`), the
   points normalised with the reason for every refused value (`normalise_points`);
2. **join and survive**: records with their primary email and phone and their contact
   (`join_people`), then survivorship with our own reverse-sync writes discounted (`survive_people`);
3. **write**: the rows of `contacts`, `contact_field_lineage`, `contact_merges`,
   `suppressed_identifiers` and `contact_link_decisions` (`golden_frame`, `lineage_frame`, `merge_rows`,
   `suppressed_rows`, `decision_rows`), inserted in slices (`insert_rows`).

What differs, how much is read and how the old rows are replaced, stays in the two builds.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from models.identity.consent import CONSENT_COLUMNS, consent_changed, consent_values, golden_consent
from models.identity.custom_fields import custom_columns, survive_custom
from models.identity.linking import IdentityConfig
from models.identity.own_writes import JUDGED_COLUMNS, WRITE_COLUMNS, judge_own_writes
from models.identity.survivorship import SURVIVING_FIELDS, Golden, SurvivorshipConfig, survive
from models.mappings import Mappings
from models.normalise.contact_points import normalise_contact_points, primaries
from models.normalise.fields import extract_frame, frame_from_payloads
from models.normalise.layouts import layout

#: The source objects that describe people (the others, events and SMS, are activity).
CONTACT_OBJECTS: tuple[tuple[str, str], ...] = (
    ("clickfunnels", "contact"),
    ("clicksend", "list_contact"),
    ("linkflow", "contact"),
    ("zoho_crm", "lead"),
    ("zoho_crm", "contact"),
    ("zoho_bigin", "contact"),
)


@dataclass(frozen=True)
class CanonicalConfig:
    """How records are read and linked: phone regions per source, linking guards, survivorship."""

    regions: Mapping[str, str]
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    survivorship: SurvivorshipConfig = field(default_factory=SurvivorshipConfig)
    mappings: Mappings | None = None
    """The mappings file's golden fields (`models.identity.custom_fields`); None: built-in fields only."""

    def fingerprint(self) -> str:
        """The rules a stored resolution was made under: linking, and the mappings file when there is
        one (the watermark of a build without one keeps the fingerprint it always had)."""
        rules = self.identity.fingerprint()
        return rules if self.mappings is None else f"{rules}+{self.mappings.fingerprint()}"


@dataclass
class CanonicalReport:
    """What one resolution did; the asset's metadata and the CLI summary read it."""

    records: int = 0
    contacts: int = 0
    new_contacts: int = 0
    merges: int = 0
    splits: int = 0
    retired: int = 0
    suppressed_identifiers: int = 0
    links_refused: int = 0
    unusable_values: int = 0
    field_issues: int = 0
    unreadable_custom: list[str] = field(default_factory=list)
    """The first few mapped values that could not convert, each with its reason (for the log)."""

    def as_metadata(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if isinstance(v, int)}


#: How many unconvertible mapped values a report names (the count has them all).
UNREADABLE_SAID = 5

#: How much of a refused value (a list, a megabyte of text) ``contact_identifiers`` keeps for people
#: to read; the raw payload keeps all of it.
_REFUSED_RAW_CHARS = 200


def _refused_points(source: str, obj: str, columns: pd.DataFrame, issues: pd.DataFrame) -> pd.DataFrame:
    """Email and phone values ``extract_frame`` refused (wrong type, too long), as contact points with
    their reason, so every value a record carries has a row in ``contact_identifiers``."""
    spec = layout(source, obj)
    kinds = {**dict.fromkeys(spec.emails, "email"), **dict.fromkeys(spec.phones, "phone")}
    mine = issues[issues["field"].isin(list(kinds))]
    raw = [
        str(columns.at[row, path])[:_REFUSED_RAW_CHARS]
        for row, path in zip(mine["row"], mine["field"], strict=True)
    ]
    return pd.DataFrame(
        {
            "row": mine["row"].to_numpy(),
            "kind": [kinds[path] for path in mine["field"]],
            "field": mine["field"].to_numpy(dtype=object),
            "position": np.full(len(mine), np.iinfo(np.int8).max, dtype=np.int8),
            "raw": pd.Series(raw, dtype=object),
            "refused": mine["reason"].to_numpy(dtype=object),
        }
    )


def normalise_points(points: pd.DataFrame) -> pd.DataFrame:
    """``normalise_contact_points``, keeping the reason of values refused before normalisation."""
    normalised = normalise_contact_points(points)
    if "refused" in points:
        refused = points["refused"].notna().to_numpy()
        normalised.loc[refused, "value"] = None
        normalised.loc[refused, "reason"] = points.loc[refused, "refused"].to_numpy(dtype=object)
    return normalised


def junk_values(kinds: Any, values: Any, identity: IdentityConfig) -> npt.NDArray[np.bool_]:
    """Per value, whether the linking rules block it by its value alone (a blocklisted or
    placeholder email, a phone of one repeated digit): junk, which no person is known by. Values
    blocked only for being shared too widely are not judged here, since that changes with the data."""
    kinds = np.asarray(kinds, dtype=object)
    values = np.asarray(values, dtype=object)
    present = np.flatnonzero(pd.notna(values))
    junk = np.zeros(len(values), dtype=bool)
    if len(present):
        junk[present] = identity.static_rules(kinds[present], values[present]).notna().to_numpy()
    return junk


def chosen_points(normalised: pd.DataFrame, identity: IdentityConfig) -> pd.DataFrame:
    """Each record's primary email and phone (`primaries`), a usable value before a junk one."""
    return primaries(normalised, junk_values(normalised["kind"], normalised["value"], identity))


def extract_contact_records(
    raw: pd.DataFrame,
    regions: Mapping[str, str],
    mappings: Mappings | None = None,
    unreadable: list[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Per source object: the records' text fields and times, and their contact points with regions;
    the mapped fields' values too, the first few that cannot convert said in ``unreadable``."""
    records: list[pd.DataFrame] = []
    points: list[pd.DataFrame] = []
    issues = 0
    for (source, obj), group in raw.groupby(["source", "object"], sort=True):
        columns = frame_from_payloads(str(source), str(obj), group["payload"])
        extracted = extract_frame(str(source), str(obj), columns)
        keys = group["record_key"].to_numpy(dtype=np.int64)
        fields = extracted.records.reset_index(drop=True)
        fields.insert(0, "record_key", keys)
        fields["source"] = str(source)
        fields["object"] = str(obj)
        fields["source_id"] = group["source_id"].to_numpy(dtype=object)
        custom, failed = custom_columns(str(source), str(obj), group["payload"], mappings)
        fields = pd.concat([fields, custom], axis=1)
        issues += len(failed)
        if unreadable is not None:
            unreadable.extend(failed[: UNREADABLE_SAID - len(unreadable)])
        records.append(fields)
        found = pd.concat(
            [extracted.contact_points, _refused_points(str(source), str(obj), columns, extracted.issues)],
            ignore_index=True,
        )
        hint = fields["country_hint"].to_numpy(dtype=object)[found["row"].to_numpy(dtype=np.int64)]
        region = np.where(pd.notna(hint), hint, regions.get(str(source), "US"))
        points.append(
            pd.DataFrame(
                {
                    "record_key": keys[found["row"].to_numpy(dtype=np.int64)],
                    "kind": found["kind"].to_numpy(dtype=object),
                    "field": found["field"].to_numpy(dtype=object),
                    "position": found["position"].to_numpy(),
                    "raw": found["raw"].to_numpy(dtype=object),
                    "region": region.astype(object),
                    "refused": found["refused"].to_numpy(dtype=object),
                }
            )
        )
        issues += len(extracted.issues)
    empty_points = pd.DataFrame(
        columns=["record_key", "kind", "field", "position", "raw", "region", "refused"]
    )
    all_records = pd.concat(records, ignore_index=True) if records else pd.DataFrame()
    return all_records, (pd.concat(points, ignore_index=True) if points else empty_points), issues


def golden_frame(golden: pd.DataFrame, old: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """The rows of ``contacts``: created_at kept for known ids, updated_at moved only when a field
    changed."""
    fields = [*SURVIVING_FIELDS, "custom"]
    merged = golden.merge(old, on="contact_id", how="left", suffixes=("", "_old"))
    changed = np.zeros(len(merged), dtype=bool)
    for name in [*fields, "source_count"]:
        new_values = merged[name].astype(object).where(merged[name].notna(), None)
        old_values = merged[f"{name}_old"].astype(object).where(merged[f"{name}_old"].notna(), None)
        changed |= new_values.to_numpy(dtype=object) != old_values.to_numpy(dtype=object)
    old_consent = merged.reindex(columns=[f"{name}_old" for name in CONSENT_COLUMNS])
    changed |= consent_changed(merged, old_consent.set_axis(list(CONSENT_COLUMNS), axis=1))
    known = merged["created_at"].notna().to_numpy()
    created = merged["created_at"].astype(object).where(known, now)
    updated = merged["updated_at"].astype(object).where(known & ~changed, now)
    out = none_for_missing(merged.loc[:, ["contact_id", *fields]])
    out["source_count"] = merged["source_count"].astype(int).to_numpy()
    out = out.join(consent_values(merged))
    out["created_at"] = aware_utc_values(created)
    out["updated_at"] = aware_utc_values(updated)
    return out


def aware_utc(value: Any) -> datetime:
    """A pandas or Python timestamp as an aware UTC datetime, as the UTC columns require."""
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()


def aware_utc_values(values: Iterable[Any]) -> list[datetime | None]:
    """`aware_utc` of every value (None for a missing one) in one conversion, not a Timestamp each."""
    times = pd.Series(pd.to_datetime(list(values), utc=True)).dt.to_pydatetime()
    return [None if value is pd.NaT else value for value in times]


def insert_rows(connection: Connection, table: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Insert in slices of 10,000 rows, so one statement never holds a whole large table."""
    if not rows:
        return
    for start in range(0, len(rows), 10_000):
        connection.execute(sa.insert(table), list(rows[start : start + 10_000]))


def none_for_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns with None for every missing value, as the database driver wants them."""
    frame = frame.astype(object)
    return frame.where(frame.notna(), None)


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``frame`` as dicts keyed by column name, ready for an executemany insert."""
    return cast(list[dict[str, Any]], frame.to_dict("records"))


def merge_rows(merges: pd.DataFrame, now: datetime, run_id: str | None) -> list[dict[str, Any]]:
    """``contact_merges`` rows for the merges and splits of one resolution."""
    rows = merges.loc[:, ["old_contact_id", "new_contact_id", "kind"]].astype(object)
    return frame_records(rows.assign(merged_at=now, run_id=run_id))


def suppressed_rows(suppressed: pd.DataFrame, now: datetime) -> list[dict[str, Any]]:
    """``suppressed_identifiers`` rows, with the holders' raw record ids as JSON."""
    rows = suppressed.loc[:, ["kind", "value", "rule"]].astype(object)
    rows["record_count"] = suppressed["record_count"].astype(int).to_numpy()
    rows["record_ids"] = pd.Series(
        [{"raw_record_ids": [int(k) for k in keys]} for keys in suppressed["record_keys"]], dtype=object
    ).to_numpy()
    return frame_records(rows.assign(detected_at=now))


def decision_rows(refused: pd.DataFrame, now: datetime) -> list[dict[str, Any]]:
    """``contact_link_decisions`` rows for the links household splitting refused."""
    rows = none_for_missing(
        refused.loc[:, ["kind", "value", "rule", "first_name_a", "first_name_b"]].astype(object)
    )
    rows.insert(0, "raw_record_id_b", [int(key) for key in refused["record_key_b"]])
    rows.insert(0, "raw_record_id_a", [int(key) for key in refused["record_key_a"]])
    return frame_records(rows.assign(decided_at=now))


def join_people(records: pd.DataFrame, chosen: pd.DataFrame, assignment: pd.DataFrame) -> pd.DataFrame:
    """Each record's fields with its primary email and phone (``chosen``) and its contact; records
    without a contact (quarantined) drop out."""
    return (
        records.drop(columns=["email", "phone"], errors="ignore")
        .merge(chosen, on="record_key", how="left")
        .merge(assignment, on="record_key", how="inner")
    )


def survive_people(
    people: pd.DataFrame,
    writes: pd.DataFrame | None,
    config: "CanonicalConfig",
    raw: pd.DataFrame | None = None,
    consent_statements: pd.DataFrame | None = None,
) -> Golden:
    """Survivorship over ``people``, a modification our own reverse sync made counting as the time
    before it (`models.identity.own_writes`); no people give empty frames with the columns the
    writers read.

    ``raw`` (record_key, payload) holds the records' current payloads: what they show (Linkflow's
    version, Zoho's last modifier, the values we sent) tells an edit after our write from our write,
    and a value we wrote from a value of the record's own (`models.identity.own_writes.echoed_fields`).
    People already judged (`models.identity.own_writes.JUDGED_COLUMNS`, as the full rebuild judges each
    slice of records while it holds their payloads) are not judged again, and need no ``writes``.
    Consent is read from the payloads too, or from ``consent_statements`` (the full rebuild's, taken
    from each slice before its payloads were dropped)."""
    if people.empty:
        contacts = pd.DataFrame(
            columns=["contact_id", *SURVIVING_FIELDS, "source_count", "custom", *CONSENT_COLUMNS]
        )
        lineage = pd.DataFrame(columns=list(LINEAGE_COLUMNS))
        return Golden(contacts=contacts, lineage=lineage)
    if not set(JUDGED_COLUMNS) <= set(people.columns):
        writes = _NO_WRITES if writes is None else writes
        people = pd.concat([people, judge_own_writes(_with_payloads(people, writes, raw), writes)], axis=1)
    mine = people.assign(modified_at=people["person_modified_at"])
    junk = {
        name: junk_values(np.full(len(mine), name, dtype=object), mine[name], config.identity)
        for name in ("email", "phone")
    }
    golden = survive(mine, config.survivorship, junk)
    custom = survive_custom(mine, config.mappings)
    consent = golden_consent(people, raw, consent_statements)
    contacts = golden.contacts.assign(custom=custom.contacts["custom"].to_numpy(dtype=object))
    return Golden(
        contacts=contacts.merge(consent, on="contact_id", how="left"),
        lineage=pd.concat([golden.lineage.astype({"field": object}), custom.lineage], ignore_index=True)
        if len(custom.lineage)
        else golden.lineage,
    )


_NO_WRITES = pd.DataFrame(columns=list(WRITE_COLUMNS))


def _with_payloads(people: pd.DataFrame, writes: pd.DataFrame, raw: pd.DataFrame | None) -> pd.DataFrame:
    """The columns `discount_own_writes` reads, with the current payload of every record we wrote."""
    frame = people.loc[:, ["source", "object", "source_id", "modified_at"]]
    if raw is None or writes.empty:
        return frame
    written = frame["source_id"].astype(str).isin(set(writes["source_id"].astype(str))).to_numpy()
    payloads = np.full(len(frame), None, dtype=object)
    if written.any():
        by_key = pd.Series(
            raw["payload"].to_numpy(dtype=object), index=raw["record_key"].to_numpy(dtype=np.int64)
        )
        by_key = by_key[~by_key.index.duplicated()]
        keys = people["record_key"].to_numpy(dtype=np.int64)[written]
        payloads[written] = by_key.reindex(keys).to_numpy(dtype=object)
    return frame.assign(payload=payloads)


#: The columns of a resolved record that become its ``contact_sources`` row (renamed: record_key is
#: raw_record_id, modified_at is updated_at).
SOURCE_COLUMNS = (
    "record_key",
    "contact_id",
    "source",
    "object",
    "source_id",
    "email",
    "phone",
    "modified_at",
    "first_name",
)

LINEAGE_COLUMNS = ("contact_id", "field", "value", "source", "object", "source_id", "rule")


def lineage_frame(lineage: pd.DataFrame) -> pd.DataFrame:
    """``contact_field_lineage`` rows: where each golden field came from."""
    return none_for_missing(lineage.loc[:, list(LINEAGE_COLUMNS)])
