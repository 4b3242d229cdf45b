"""The reverse-sync ledger in the warehouse: what a push reads, what it plans, and how each row ends.

Every planned field is written to ``push_ledger`` before any request, marked ``sending`` (committed)
just before its call and given its final state right after. A field that was sent, or may have been
sent by a run that died mid-call, is not planned again until the destination has been re-read since:
so a killed push, run again, sends no field twice, and a dry run records the same plan a real run
would make.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.field_map import CANONICAL_FIELDS
from models.tables import Contact, ContactSource, PushLedger, RawRecord, utcnow

#: Ledger states after which a field may already be at the destination.
IN_FLIGHT = ("sending", "sent")


def load_targets(engine: Engine, destination: str, obj: str) -> pd.DataFrame:
    """Every live record of the destination linked to a golden contact, with its latest payload."""
    query = (
        sa.select(
            ContactSource.source.label("destination"),
            ContactSource.object,
            ContactSource.source_id.label("record_id"),
            ContactSource.contact_id,
            RawRecord.payload,
            RawRecord.source_modified_at.label("modified_at"),
            RawRecord.last_seen_at,
        )
        .join(RawRecord, RawRecord.id == ContactSource.raw_record_id)
        .where(
            ContactSource.source == destination,
            ContactSource.object == obj,
            ContactSource.contact_id.is_not(None),
            RawRecord.deleted_at.is_(None),
        )
    )
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    columns = ["destination", "object", "record_id", "contact_id", "payload", "modified_at", "last_seen_at"]
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("modified_at", "last_seen_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def load_golden(engine: Engine) -> pd.DataFrame:
    """contact_id and the canonical fields of every golden contact."""
    columns = [Contact.contact_id, *(getattr(Contact, name) for name in CANONICAL_FIELDS)]
    with engine.connect() as connection:
        rows = connection.execute(sa.select(*columns)).all()
    return pd.DataFrame(rows, columns=["contact_id", *CANONICAL_FIELDS])


def in_flight(engine: Engine, targets: pd.DataFrame, destination: str, obj: str) -> pd.DataFrame:
    """record_id, field of rows sent (or being sent) after the record was last read from the destination."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(PushLedger.record_id, PushLedger.field, sa.func.max(PushLedger.updated_at))
            .where(
                PushLedger.destination == destination,
                PushLedger.object == obj,
                PushLedger.status.in_(IN_FLIGHT),
                PushLedger.dry_run.is_(False),
            )
            .group_by(PushLedger.record_id, PushLedger.field)
        ).all()
    sent = pd.DataFrame(rows, columns=["record_id", "field", "sent_at"])
    sent["sent_at"] = pd.to_datetime(sent["sent_at"], utc=True)
    seen = targets.loc[:, ["record_id", "last_seen_at"]]
    merged = sent.merge(seen, on="record_id", how="left")
    pending = merged["last_seen_at"].isna() | (merged["sent_at"] >= merged["last_seen_at"])
    return merged.loc[pending, ["record_id", "field"]]


def parked(engine: Engine, destination: str, obj: str) -> pd.DataFrame:
    """Rows given up on after their attempts ran out (not planned again for the same value)."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(
                PushLedger.destination,
                PushLedger.object,
                PushLedger.record_id,
                PushLedger.contact_id,
                PushLedger.field,
                PushLedger.after_value,
            ).where(
                PushLedger.destination == destination, PushLedger.object == obj, PushLedger.status == "parked"
            )
        ).all()
    return pd.DataFrame(
        rows, columns=["destination", "object", "record_id", "contact_id", "field", "after_value"]
    )


def previous_attempts(engine: Engine, destination: str, obj: str) -> dict[tuple[str, str, str], int]:
    """(record_id, field, after_value) → how many real runs were rejected writing that value."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(PushLedger.record_id, PushLedger.field, PushLedger.after_value, sa.func.count())
            .where(
                PushLedger.destination == destination,
                PushLedger.object == obj,
                PushLedger.status == "rejected",
                PushLedger.dry_run.is_(False),
            )
            .group_by(PushLedger.record_id, PushLedger.field, PushLedger.after_value)
        ).all()
    return {(str(r), str(f), str(v)): int(n) for r, f, v, n in rows}


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return str(value)


def record_plan(engine: Engine, plan: pd.DataFrame, *, run_id: str, dry_run: bool) -> list[int]:
    """Store the plan (``planned``, or ``invalid`` for refused rows); returns the ledger ids in order."""
    now = utcnow()
    rows = [
        {
            "run_id": run_id,
            "destination": row["destination"],
            "object": row["object"],
            "record_id": _text(row["record_id"]) or "",
            "contact_id": _text(row["contact_id"]),
            "field": row["field"],
            "before_value": _text(row["before_value"]),
            "after_value": _text(row["after_value"]),
            "reason": row["reason"],
            "status": "invalid" if _text(row["invalid_reason"]) else "planned",
            "error": _text(row["invalid_reason"]),
            "attempts": 0,
            "dry_run": dry_run,
            "created_at": now,
            "updated_at": now,
        }
        for row in plan.to_dict("records")
    ]
    if not rows:
        return []
    with engine.begin() as connection:
        result = connection.execute(
            sa.insert(PushLedger).returning(PushLedger.id, sort_by_parameter_order=True), rows
        )
        return [int(ledger_id) for ledger_id in result.scalars()]


def mark(
    engine: Engine,
    ledger_ids: Sequence[int],
    status: str,
    *,
    error: str | None = None,
    attempts: int | None = None,
    at: datetime | None = None,
) -> None:
    """Move rows to ``status`` in their own transaction (committed before the next call goes out)."""
    if not ledger_ids:
        return
    values: dict[str, Any] = {"status": status, "updated_at": at or utcnow()}
    if error is not None:
        values["error"] = error
    if attempts is not None:
        values["attempts"] = attempts
    with engine.begin() as connection:
        for start in range(0, len(ledger_ids), 900):
            chunk = list(ledger_ids[start : start + 900])
            connection.execute(sa.update(PushLedger).where(PushLedger.id.in_(chunk)).values(**values))
