"""The warehouse side of identity resolution: raw records in, golden contacts and their history out.

The logic lives in ``fields``, ``contact_points``, ``resolution`` and ``survivorship``; this module
reads what they need from the warehouse in bulk, calls them, and writes the results back in one
transaction, so a reader sees either the previous run's contacts or this run's, never a mixture.

Each run re-resolves every live contact record (a full rebuild that reuses the previous ids by
greatest overlap). Ids therefore stay stable, merges and splits are recorded, and a killed run leaves
the previous state untouched.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from models.identity.contact_ids import ContactIdFactory
from models.identity.linking import IdentityConfig
from models.identity.own_writes import discount_own_writes, own_writes
from models.identity.resolution import resolve
from models.identity.survivorship import SURVIVING_FIELDS, SurvivorshipConfig, survive
from models.normalise.contact_points import identifiers_of, normalise_contact_points, primaries
from models.normalise.fields import extract_frame, frame_from_payloads
from models.normalise.layouts import layout
from models.warehouse.tables import (
    Contact,
    ContactFieldLineage,
    ContactIdentifier,
    ContactMerge,
    ContactSource,
    RawRecord,
    SuppressedIdentifier,
    utcnow,
)

#: The source objects that describe people (the others, events and SMS, are activity).
CONTACT_OBJECTS: tuple[tuple[str, str], ...] = (
    ("clickfunnels", "contact"),
    ("clicksend", "list_contact"),
    ("linkflow", "contact"),
    ("zoho_crm", "lead"),
    ("zoho_crm", "contact"),
    ("zoho_bigin", "contact"),
)
_CHUNK = 900


@dataclass(frozen=True)
class CanonicalConfig:
    """How records are read and linked: phone regions per source, linking guards, survivorship."""

    regions: Mapping[str, str]
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    survivorship: SurvivorshipConfig = field(default_factory=SurvivorshipConfig)


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
    unusable_values: int = 0
    field_issues: int = 0

    def as_metadata(self) -> dict[str, int]:
        return dict(self.__dict__)


def _load_records(connection: Connection) -> pd.DataFrame:
    """record_key, source, object, source_id, payload of every live contact record."""
    condition = sa.or_(*(sa.and_(RawRecord.source == s, RawRecord.object == o) for s, o in CONTACT_OBJECTS))
    rows = connection.execute(
        sa.select(RawRecord.id, RawRecord.source, RawRecord.object, RawRecord.source_id, RawRecord.payload)
        .where(condition, RawRecord.deleted_at.is_(None))
        .order_by(RawRecord.id)
    ).all()
    return pd.DataFrame(rows, columns=["record_key", "source", "object", "source_id", "payload"])


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


def extract_contact_records(
    raw: pd.DataFrame, regions: Mapping[str, str]
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Per source object: the records' text fields and times, and their contact points with regions."""
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


def _previous(connection: Connection) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """The last run's assignment, its contacts (for created_at and change detection) and largest id."""
    assignment = pd.DataFrame(
        connection.execute(
            sa.select(ContactSource.raw_record_id, ContactSource.contact_id).where(
                ContactSource.contact_id.is_not(None)
            )
        ).all(),
        columns=["record_key", "contact_id"],
    ).astype({"record_key": np.int64, "contact_id": object})
    contacts = pd.DataFrame(
        connection.execute(sa.select(Contact.__table__)).mappings().all(),
        columns=[c.name for c in Contact.__table__.columns],
    )
    latest = connection.execute(
        sa.select(sa.func.max(sa.literal_column("id"))).select_from(
            sa.union_all(
                sa.select(Contact.contact_id.label("id")),
                sa.select(ContactMerge.old_contact_id.label("id")),
                sa.select(ContactMerge.new_contact_id.label("id")),
            ).subquery()
        )
    ).scalar_one_or_none()
    return assignment, contacts, latest


def golden_rows(golden: pd.DataFrame, old: pd.DataFrame, now: datetime) -> list[dict[str, Any]]:
    """Contacts to insert: created_at kept for known ids, updated_at moved only when a field changed."""
    fields = list(SURVIVING_FIELDS)
    merged = golden.merge(old, on="contact_id", how="left", suffixes=("", "_old"))
    changed = np.zeros(len(merged), dtype=bool)
    for name in [*fields, "source_count"]:
        new_values = merged[name].astype(object).where(merged[name].notna(), None)
        old_values = merged[f"{name}_old"].astype(object).where(merged[f"{name}_old"].notna(), None)
        changed |= new_values.to_numpy(dtype=object) != old_values.to_numpy(dtype=object)
    known = merged["created_at"].notna().to_numpy()
    created = merged["created_at"].astype(object).where(known, now)
    updated = merged["updated_at"].astype(object).where(known & ~changed, now)
    out = none_for_missing(merged.loc[:, ["contact_id", *fields]])
    out["source_count"] = merged["source_count"].astype(int).to_numpy()
    out["created_at"] = [aware_utc(value) for value in created]
    out["updated_at"] = [aware_utc(value) for value in updated]
    return frame_records(out)


def aware_utc(value: Any) -> datetime:
    """A pandas or Python timestamp as an aware UTC datetime, as the UTC columns require."""
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()


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


def build_canonical(engine: Engine, config: CanonicalConfig, *, run_id: str | None = None) -> CanonicalReport:
    """Resolve every live contact record into golden contacts and write the results in one transaction."""
    now = utcnow()
    with engine.connect() as connection:
        raw = _load_records(connection)
        previous, old_contacts, latest = _previous(connection)
        writes = own_writes(connection)
    report = CanonicalReport(records=len(raw))
    if raw.empty:
        with engine.begin() as connection:
            for table in (ContactFieldLineage, ContactSource, ContactIdentifier, Contact):
                connection.execute(sa.delete(table))
            connection.execute(sa.delete(SuppressedIdentifier))
        return report
    records, points, report.field_issues = extract_contact_records(raw, config.regions)
    normalised = normalise_points(points)
    report.unusable_values = int(normalised["value"].isna().sum())
    resolution = resolve(
        raw["record_key"].to_numpy(dtype=np.int64),
        identifiers_of(normalised),
        previous,
        config=config.identity,
        id_factory=ContactIdFactory.after(latest),
    )
    chosen = primaries(normalised)
    people = (
        records.drop(columns=["email", "phone"], errors="ignore")
        .merge(chosen, on="record_key", how="left")
        .merge(resolution.assignment, on="record_key", how="inner")
    )
    golden = survive(people.assign(modified_at=discount_own_writes(people, writes)), config.survivorship)
    merges = resolution.merges
    report.contacts = len(golden.contacts)
    report.new_contacts = len(resolution.new_contact_ids)
    report.merges = int((merges["kind"] == "merge").sum())
    report.splits = int((merges["kind"] == "split").sum())
    report.retired = len(resolution.retired_contact_ids)
    report.suppressed_identifiers = len(resolution.suppressed)

    contact_rows = golden_rows(golden.contacts, old_contacts, now)
    source_rows = none_for_missing(
        people.loc[
            :, ["record_key", "contact_id", "source", "object", "source_id", "email", "phone", "modified_at"]
        ]
    ).rename(columns={"record_key": "raw_record_id", "modified_at": "updated_at"})
    # An object Series keeps None as None; a plain list would be turned back into NaT here.
    source_rows["updated_at"] = pd.Series(
        [None if v is None else aware_utc(v) for v in source_rows["updated_at"]],
        index=source_rows.index,
        dtype=object,
    )
    identifier_rows = none_for_missing(
        normalised.loc[:, ["record_key", "kind", "field", "raw", "value", "reason"]].rename(
            columns={"record_key": "raw_record_id", "raw": "raw_value"}
        )
    )
    lineage_rows = none_for_missing(
        golden.lineage.loc[:, ["contact_id", "field", "value", "source", "object", "source_id", "rule"]]
    )
    with engine.begin() as connection:
        # Links first move to their new ids; then old contacts go, then the new set goes in whole.
        connection.execute(sa.delete(ContactFieldLineage))
        connection.execute(sa.update(ContactSource).values(contact_id=None))
        connection.execute(sa.delete(Contact))
        insert_rows(connection, Contact, contact_rows)
        connection.execute(sa.delete(ContactSource))
        insert_rows(connection, ContactSource, frame_records(source_rows))
        connection.execute(sa.delete(ContactIdentifier))
        insert_rows(connection, ContactIdentifier, frame_records(identifier_rows))
        insert_rows(connection, ContactFieldLineage, frame_records(lineage_rows))
        insert_rows(connection, ContactMerge, merge_rows(merges, now, run_id))
        connection.execute(sa.delete(SuppressedIdentifier))
        insert_rows(connection, SuppressedIdentifier, suppressed_rows(resolution.suppressed, now))
    return report
