"""The warehouse side of identity resolution: raw records in, golden contacts and their history out.

The phases every build shares (read, join and survive, write rows) are in ``phases``; this module
reads every live contact record from the warehouse in bulk, runs them, and writes the results back in
one transaction, so a reader sees either the previous run's contacts or this run's, never a mixture.

Each run re-resolves every live contact record (a full rebuild that reuses the previous ids by
greatest overlap). Ids therefore stay stable, merges and splits are recorded, and a killed run leaves
the previous state untouched.
"""

from collections.abc import Callable

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from models.identity.contact_ids import ContactIdFactory
from models.identity.own_writes import own_writes
from models.identity.phases import (
    CONTACT_OBJECTS,
    SOURCE_COLUMNS,
    CanonicalConfig,
    CanonicalReport,
    aware_utc,
    decision_rows,
    extract_contact_records,
    frame_records,
    golden_rows,
    insert_rows,
    join_people,
    lineage_rows,
    merge_rows,
    none_for_missing,
    normalise_points,
    suppressed_rows,
    survive_people,
)
from models.identity.resolution import resolve
from models.normalise.contact_points import identifiers_of, primaries
from models.warehouse.tables import (
    Contact,
    ContactFieldLineage,
    ContactIdentifier,
    ContactLinkDecision,
    ContactMerge,
    ContactSource,
    RawRecord,
    SuppressedIdentifier,
    utcnow,
)
from models.warehouse.waits import wait_for_write_lock


def _load_records(connection: Connection) -> pd.DataFrame:
    """record_key, source, object, source_id, payload of every live contact record."""
    condition = sa.or_(*(sa.and_(RawRecord.source == s, RawRecord.object == o) for s, o in CONTACT_OBJECTS))
    rows = connection.execute(
        sa.select(RawRecord.id, RawRecord.source, RawRecord.object, RawRecord.source_id, RawRecord.payload)
        .where(condition, RawRecord.deleted_at.is_(None))
        .order_by(RawRecord.id)
    ).all()
    return pd.DataFrame(rows, columns=["record_key", "source", "object", "source_id", "payload"])


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


def build_canonical(
    engine: Engine,
    config: CanonicalConfig,
    *,
    run_id: str | None = None,
    checkpoint: Callable[[], None] = lambda: None,
) -> CanonicalReport:
    """Resolve every live contact record into golden contacts and write the results in one transaction.

    ``checkpoint`` is called between phases and may raise to abandon the build (a sync asked to stop):
    nothing is written before the last phase, and that one is a single transaction.
    """
    now = utcnow()
    with engine.connect() as connection:
        raw = _load_records(connection)
        previous, old_contacts, latest = _previous(connection)
        writes = own_writes(connection)
    checkpoint()
    report = CanonicalReport(records=len(raw))
    if raw.empty:
        with engine.begin() as connection:
            for table in (
                ContactLinkDecision,
                ContactFieldLineage,
                ContactSource,
                ContactIdentifier,
                Contact,
            ):
                connection.execute(sa.delete(table))
            connection.execute(sa.delete(SuppressedIdentifier))
        return report
    records, points, report.field_issues = extract_contact_records(
        raw, config.regions, config.mappings, report.unreadable_custom
    )
    normalised = normalise_points(points)
    report.unusable_values = int(normalised["value"].isna().sum())
    checkpoint()
    resolution = resolve(
        raw["record_key"].to_numpy(dtype=np.int64),
        identifiers_of(normalised),
        previous,
        config=config.identity,
        id_factory=ContactIdFactory.after(latest),
        names=records.loc[:, ["record_key", "first_name"]],
    )
    people = join_people(records, primaries(normalised), resolution.assignment)
    golden = survive_people(people, writes, config, raw)
    merges = resolution.merges
    report.contacts = len(golden.contacts)
    report.new_contacts = len(resolution.new_contact_ids)
    report.merges = int((merges["kind"] == "merge").sum())
    report.splits = int((merges["kind"] == "split").sum())
    report.retired = len(resolution.retired_contact_ids)
    report.suppressed_identifiers = len(resolution.suppressed)
    report.links_refused = len(resolution.refused)

    contact_rows = golden_rows(golden.contacts, old_contacts, now)
    source_rows = none_for_missing(people.loc[:, list(SOURCE_COLUMNS)]).rename(
        columns={"record_key": "raw_record_id", "modified_at": "updated_at"}
    )
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
    with engine.begin() as connection:
        wait_for_write_lock(connection, checkpoint)
        # Links first move to their new ids; then old contacts go, then the new set goes in whole.
        connection.execute(sa.delete(ContactFieldLineage))
        connection.execute(sa.update(ContactSource).values(contact_id=None))
        connection.execute(sa.delete(Contact))
        insert_rows(connection, Contact, contact_rows)
        connection.execute(sa.delete(ContactSource))
        insert_rows(connection, ContactSource, frame_records(source_rows))
        connection.execute(sa.delete(ContactIdentifier))
        insert_rows(connection, ContactIdentifier, frame_records(identifier_rows))
        insert_rows(connection, ContactFieldLineage, lineage_rows(golden.lineage))
        insert_rows(connection, ContactMerge, merge_rows(merges, now, run_id))
        connection.execute(sa.delete(SuppressedIdentifier))
        insert_rows(connection, SuppressedIdentifier, suppressed_rows(resolution.suppressed, now))
        connection.execute(sa.delete(ContactLinkDecision))
        insert_rows(connection, ContactLinkDecision, decision_rows(resolution.refused, now))
    return report
