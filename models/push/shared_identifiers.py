"""Emails and phones more than one person holds: reverse sync never writes them over another person.

Identity resolution keeps such values from gluing strangers together (`suppressed_identifiers`: junk
like ``test@test.com``; household splitting: two people sharing an email or a landline stay two golden
contacts). Reverse sync must keep them apart too, and two of its writes could bring them together:

- **a junk value sent as a person's own**: a golden contact whose only email is ``noreply@example.com``
  would have it filled into every system that lacks an email, spreading a value we know to be no one's.
  `without_junk` drops suppressed values from the golden contacts before anything is planned, so they
  are neither filled, nor overwritten, nor carried by a create;
- **a create that lands on someone else's record**: Zoho's and ClickFunnels' creates are upserts on the
  email, and Linkflow may join a new identity to the contact already holding its email or mobile
  (api-notes §4.4, open). A create whose value a record of that destination object already holds, for
  another golden contact, would update that person's record with ours. `refuse_shared_creates` refuses
  such a create before it is sent, with the reason in the ledger, as it does a create sharing its value
  with another create of the same plan or with one sent earlier and not read back yet (the first in
  contact id order goes, so the rest are refused on the next plan by the record it made).

The values are compared in their normal forms (emails as identity matches them, phones as E.164), a
superset of what each API matches on (Zoho: case-insensitive email), so a refusal can be too cautious,
never too lax. A refused create is settled in the ledger like any invalid row: planned again when the
contact's value changes, or when the record or golden contact its reason names moves (`Refuser`):
that record may have let the value go.
"""

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.push.field_map import destination_map
from models.warehouse.bulk import rows_frame
from models.warehouse.key_lists import key_in
from models.warehouse.tables import ContactIdentifier, ContactSource, RawRecord, SuppressedIdentifier

#: Golden fields that are identifiers, with the kind `contact_identifiers` and `suppressed_identifiers` use.
IDENTIFIER_KINDS = {"email": "email", "phone": "phone"}

_NAMED_CONTACT = re.compile(r"golden contact ([^\s:(]+)")
_NAMED_RECORD = re.compile(r"is held by record (\S+) of ")


@dataclass(frozen=True, slots=True)
class Refuser:
    """What a create refusal's reason names as standing in its way, as this module words them: the
    destination record holding the value (``record``) and its golden contact, or the contact whose
    create carried the value (``contact``). Either moving may free the value."""

    record: str | None
    contact: str | None

    @classmethod
    def of(cls, reason: str) -> "Refuser | None":
        """None for a reason that is not one of this module's create refusals."""
        if not reason.startswith("its "):
            return None
        record, contact = _NAMED_RECORD.search(reason), _NAMED_CONTACT.search(reason)
        if record is None and contact is None:
            return None
        return cls(record.group(1) if record else None, contact.group(1) if contact else None)


HOLDER_COLUMNS = ["canonical_field", "value", "record_id", "holder_id"]
"""`holders`: the golden field and its normal form, the destination record holding it and that record's
golden contact (None while quarantined)."""


def suppressed_values(engine: Engine) -> pd.DataFrame:
    """kind, value of every suppressed identifier (a short table: one row per junk value)."""
    with engine.connect() as connection:
        rows = connection.execute(sa.select(SuppressedIdentifier.kind, SuppressedIdentifier.value)).all()
    return rows_frame(rows, ["kind", "value"])


def without_junk(golden: pd.DataFrame, suppressed: pd.DataFrame) -> pd.DataFrame:
    """``golden`` with every email or phone that is a suppressed identifier set to None: reverse sync
    never writes a value identity resolution judged to be no one's."""
    if suppressed.empty:
        return golden
    golden = golden.copy()
    for column, kind in IDENTIFIER_KINDS.items():
        if column in golden:
            junk = suppressed.loc[suppressed["kind"].eq(kind).to_numpy(), "value"]
            values = golden[column].to_numpy(dtype=object).copy()
            values[golden[column].isin(junk).to_numpy()] = None
            golden[column] = pd.Series(values, index=golden.index, dtype=object)
    return golden


def holders(
    engine: Engine, source: str, obj: str, golden: pd.DataFrame, canonicals: Sequence[str]
) -> pd.DataFrame:
    """`HOLDER_COLUMNS` of every live record of ``source``/``obj`` whose field mapped from one of
    ``canonicals`` holds one of ``golden``'s values of it."""
    mapping = destination_map(source, obj)
    fields = {spec.canonical: spec.field for spec in mapping.fields}
    parts = []
    with engine.connect() as connection:
        for canonical in canonicals:
            values: list[str] = (
                sorted(set(golden[canonical].dropna().astype(str))) if canonical in golden else []
            )
            if not values:
                continue
            query = (
                sa.select(ContactIdentifier.value, RawRecord.source_id, ContactSource.contact_id)
                .join(RawRecord, RawRecord.id == ContactIdentifier.raw_record_id)
                .outerjoin(ContactSource, ContactSource.raw_record_id == RawRecord.id)
                .where(
                    ContactIdentifier.kind == IDENTIFIER_KINDS[canonical],
                    key_in(connection, ContactIdentifier.value, values),
                    ContactIdentifier.field == fields[canonical],
                    RawRecord.source == source,
                    RawRecord.object == obj,
                    RawRecord.deleted_at.is_(None),
                )
            )
            found = rows_frame(connection.execute(query).all(), HOLDER_COLUMNS[1:])
            parts.append(found.assign(canonical_field=canonical)[HOLDER_COLUMNS])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=HOLDER_COLUMNS)


def refuse_shared_creates(
    plan: pd.DataFrame,
    golden: pd.DataFrame,
    held: pd.DataFrame,
    sent: pd.DataFrame,
    matches: Sequence[str],
) -> pd.DataFrame:
    """``plan`` with every create refused (``invalid_reason`` on all its rows) whose contact's value of
    a ``matches`` field is held by a record of another golden contact (``held``: `HOLDER_COLUMNS`),
    was sent in a create for another contact not read back yet (``sent``: contact_id, field,
    after_value), or is shared with another create of this plan (all but the lowest contact id).
    A contact keeps the first of these reasons that applies."""
    creates = (plan["record_id"].isna() & plan["invalid_reason"].isna()).to_numpy()
    if not creates.any() or not matches:
        return plan
    contact = plan["contact_id"].astype(str)
    reasons = pd.Series(None, index=plan.index, dtype=object)
    by_contact = _by_contact(golden)
    for canonical in matches:
        if canonical in by_contact and len(held):
            going = pd.DataFrame({"contact_id": contact, "value": contact.map(by_contact[canonical])})[
                creates
            ]
            reasons = _first(reasons, _held_elsewhere(going, held, canonical), contact)
    fields = set(plan.loc[creates & plan["canonical_field"].isin(matches).to_numpy(), "field"])
    keyed = plan[creates & plan["field"].isin(fields).to_numpy()]
    keyed = keyed.assign(
        contact_id=keyed["contact_id"].astype(str), after_value=keyed["after_value"].astype(str)
    )
    if len(sent):
        reasons = _first(reasons, _sent_before(keyed, sent), contact)
    # Among the creates still going, one per value.
    reasons = _first(reasons, _sent_alongside(keyed[reasons[keyed.index].isna().to_numpy()]), contact)
    return _refused(plan, reasons.where(creates, None))


def refuse_shared_updates(
    plan: pd.DataFrame, golden: pd.DataFrame, held: pd.DataFrame, fields: Sequence[str], consequence: str
) -> pd.DataFrame:
    """``plan`` with every write of a ``fields`` value to an existing record refused (that row only,
    ``invalid_reason``) where a record of another golden contact, or of none, holds the value there
    (``held``: `HOLDER_COLUMNS`); ``consequence`` says what the destination would do with it."""
    rows = plan["record_id"].notna() & plan["invalid_reason"].isna() & plan["canonical_field"].isin(fields)
    if not rows.any() or held.empty:
        return plan
    by_contact = _by_contact(golden)
    reasons = pd.Series(None, index=plan.index, dtype=object)
    for canonical in fields:
        mine = plan[(rows & plan["canonical_field"].eq(canonical)).to_numpy()]
        if mine.empty or canonical not in by_contact:
            continue
        contact = mine["contact_id"].astype(str)
        going = pd.DataFrame(
            {"row": mine.index, "contact_id": contact, "value": contact.map(by_contact[canonical])}
        )
        found = _held_elsewhere(going, held, canonical, consequence).drop_duplicates("row")
        reasons[found["row"].to_numpy()] = found["reason"].to_numpy()
    return _refused(plan, reasons)


def _by_contact(golden: pd.DataFrame) -> pd.DataFrame:
    """``golden`` indexed by contact id as text, one row per contact."""
    by_contact = golden.assign(contact_id=golden["contact_id"].astype(str)).drop_duplicates("contact_id")
    return by_contact.set_index("contact_id")


def _refused(plan: pd.DataFrame, reasons: pd.Series) -> pd.DataFrame:
    """``plan`` with ``reasons`` (per row, None for the rows that go) as the rows' ``invalid_reason``."""
    refused = reasons.notna().to_numpy()
    if not refused.any():
        return plan
    plan = plan.copy()
    plan.loc[refused, "invalid_reason"] = reasons[refused]
    return plan


def _held_elsewhere(
    going: pd.DataFrame,
    held: pd.DataFrame,
    canonical: str,
    consequence: str = "a create matched on it would update that record",
) -> pd.DataFrame:
    """``going`` (contact_id, value and any other columns) with a reason, for the rows whose
    ``canonical`` value a record of another golden contact, or of none (quarantined), holds."""
    hit = going.merge(held[held["canonical_field"].eq(canonical).to_numpy()], on="value")
    hit = hit[
        hit["holder_id"].isna().to_numpy() | hit["holder_id"].astype(str).ne(hit["contact_id"]).to_numpy()
    ]
    whose = np.where(
        hit["holder_id"].isna(),
        "no golden contact (quarantined)",
        "golden contact " + hit["holder_id"].astype(str),
    )
    reason = (
        f"its {canonical} is held by record "
        + hit["record_id"].astype(str)
        + " of "
        + pd.Series(whose, index=hit.index, dtype=str)
        + ": "
        + consequence
    )
    return hit.assign(reason=reason)


def _sent_before(keyed: pd.DataFrame, sent: pd.DataFrame) -> pd.DataFrame:
    """contact_id, reason of the creates whose matched field went, with the same value, in another
    contact's create that no extract has read back yet."""
    other = sent.assign(other=sent["contact_id"].astype(str), after_value=sent["after_value"].astype(str))
    hit = keyed.merge(other[["field", "after_value", "other"]], on=["field", "after_value"])
    hit = hit[hit["other"].ne(hit["contact_id"]).to_numpy()]
    reason = (
        "its "
        + hit["field"].astype(str)
        + " went in a create for golden contact "
        + hit["other"]
        + " not read back yet: a create matched on it would update that record"
    )
    return pd.DataFrame({"contact_id": hit["contact_id"], "reason": reason})


def _sent_alongside(keyed: pd.DataFrame) -> pd.DataFrame:
    """contact_id, reason of the creates sharing a matched value with a create of a lower contact id
    in the same plan: that one goes, and the next plan finds its record."""
    first = keyed.groupby(["field", "after_value"])["contact_id"].transform("min")
    later = keyed[keyed["contact_id"].ne(first).to_numpy()]
    reason = (
        "its "
        + later["field"].astype(str)
        + " is also in this run's create for golden contact "
        + first[later.index]
    )
    return pd.DataFrame({"contact_id": later["contact_id"], "reason": reason})


def _first(reasons: pd.Series, found: pd.DataFrame, contact: pd.Series) -> pd.Series:
    """``reasons`` (per plan row) with every row of a contact in ``found`` (contact_id, reason) given
    that contact's first reason there, where it has none yet."""
    if found.empty:
        return reasons
    by_contact = found.drop_duplicates("contact_id").set_index("contact_id")["reason"]
    return reasons.where(reasons.notna(), contact.map(by_contact))


def sent_creates(rows: Collection[tuple[object, object, object]]) -> pd.DataFrame:
    """contact_id, field, after_value of ledger create rows, as `refuse_shared_creates` takes them."""
    return pd.DataFrame(list(rows), columns=["contact_id", "field", "after_value"])
