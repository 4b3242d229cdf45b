"""What each canonical run changed, told to the steps after it (``canonical_changes``).

Activity and the blocking checks must follow the contacts a run touched without re-reading every
contact. The canonical step knows exactly which records it re-resolved (the changed ones and their
whole linked neighbourhood: every record whose contact can have moved) and which identifiers the
changed records held before; it writes them here in the same transaction as its results, so a killed
run leaves neither. A full rebuild writes only its ``run`` row, before it starts: a rebuild that dies
half-way still makes the steps after it rebuild in full, which is always safe.

The activity step marks the rows it applied (up to the largest id it read) with its own results, so
changes of runs whose activity step never ran wait for the next one; the next canonical run deletes
the marked rows. The checks read the rows of their own Dagster run, which are kept until then.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from models.warehouse.bulk import bulk_insert
from models.warehouse.store import StreamKey, read_cursor, store_cursor
from models.warehouse.tables import CanonicalChange, utcnow

FULL = "full"
INCREMENTAL = "incremental"


def record_full_rebuild(connection: Connection, run_id: str | None) -> None:
    """Mark a full rebuild: everything after it must be redone in full."""
    _insert_run(connection, run_id, FULL, utcnow())


def record_incremental(
    connection: Connection,
    run_id: str | None,
    records: npt.NDArray[np.int64],
    held_before: pd.DataFrame,
) -> None:
    """Record an incremental run: the records it re-resolved, and the identifiers (kind, value) the
    changed records held before it."""
    now = utcnow()
    _insert_run(connection, run_id, INCREMENTAL, now)
    keys = [int(key) for key in np.unique(np.asarray(records, dtype=np.int64))]
    bulk_insert(connection, CanonicalChange, _rows(run_id, "record", keys, [None] * len(keys), now))
    lost = held_before.loc[:, ["kind", "value"]].drop_duplicates() if len(held_before) else held_before
    for kind, group in lost.groupby("kind", sort=True) if len(lost) else ():
        values = [str(value) for value in group["value"]]
        bulk_insert(connection, CanonicalChange, _rows(run_id, str(kind), [None] * len(values), values, now))


def _rows(
    run_id: str | None,
    kind: str,
    keys: Sequence[int | None],
    values: Sequence[str | None],
    now: datetime,
) -> pd.DataFrame:
    """canonical_changes rows of one kind, as a frame for `models.warehouse.bulk.bulk_insert` (object
    columns, so ids stay ints beside None and times stay as given)."""
    count = len(keys)
    return pd.DataFrame(
        {
            "run_id": pd.Series([run_id] * count, dtype=object),
            "kind": pd.Series([kind] * count, dtype=object),
            "raw_record_id": pd.Series(np.array(keys, dtype=object)),
            "value": pd.Series(np.array(values, dtype=object)),
            "changed_at": pd.Series([now] * count, dtype=object),
        }
    )


def _insert_run(connection: Connection, run_id: str | None, value: str, now: datetime) -> None:
    connection.execute(
        sa.insert(CanonicalChange).values(
            run_id=run_id, kind="run", raw_record_id=None, value=value, changed_at=now
        )
    )


#: How far the activity step has applied the changes: ``{"through": <largest id applied>}``.
CONSUMED = StreamKey("canonical", "changes", "consumed")


@dataclass(frozen=True)
class Pending:
    """Changes the activity step has not applied: ids after ``after_id`` up to ``last_id`` (None: no
    change waits); ``full`` when one of them was a full rebuild."""

    after_id: int
    last_id: int | None
    full: bool


def _consumed(connection: Connection) -> int:
    return int((read_cursor(connection, CONSUMED) or {}).get("through") or 0)


def pending(connection: Connection) -> Pending:
    """The changes waiting for the activity step."""
    after = _consumed(connection)
    last_id, full = connection.execute(
        sa.select(
            sa.func.max(CanonicalChange.id),
            sa.func.max(
                sa.case((sa.and_(CanonicalChange.kind == "run", CanonicalChange.value == FULL), 1), else_=0)
            ),
        ).where(CanonicalChange.id > after)
    ).one()
    return Pending(after, last_id, bool(full))


def _between(todo: Pending) -> sa.ColumnElement[bool]:
    return sa.and_(CanonicalChange.id > todo.after_id, CanonicalChange.id <= (todo.last_id or todo.after_id))


def changed_records(connection: Connection, todo: Pending) -> list[int]:
    """The records re-resolved by the pending changes. Read into a list, then bound as one array
    (`key_in`): with this subquery instead, SQLite walks the whole table it filters."""
    keys = connection.execute(
        sa.select(CanonicalChange.raw_record_id).where(_between(todo), CanonicalChange.kind == "record")
    ).scalars()
    return sorted({int(key) for key in keys if key is not None})


def lost_identifiers(connection: Connection, todo: Pending, kind: str) -> list[str]:
    """Identifiers of ``kind`` that changed records held before the pending changes."""
    values = connection.execute(
        sa.select(CanonicalChange.value)
        .where(_between(todo), CanonicalChange.kind == kind, CanonicalChange.value.is_not(None))
        .distinct()
    ).scalars()
    return [str(value) for value in values]


def consume(connection: Connection, todo: Pending) -> None:
    """Mark the pending changes applied, in the activity step's transaction. They are deleted by the
    next canonical run (`prune`), not here: the checks of this run may still be reading them."""
    if todo.last_id is not None:
        store_cursor(connection, CONSUMED, {"through": todo.last_id}, utcnow())


def prune(connection: Connection) -> None:
    """Delete the changes the activity step has applied; the canonical step calls it before it runs."""
    connection.execute(sa.delete(CanonicalChange).where(CanonicalChange.id <= _consumed(connection)))


def records_in_run(connection: Connection, run_id: str, up_to: int) -> int:
    """How many records the canonical run of ``run_id`` re-resolved, counted up to ``up_to`` (the
    caller only asks whether a run is large: past that, counting costs without telling more)."""
    rows = (
        sa.select(CanonicalChange.id)
        .where(CanonicalChange.run_id == run_id, CanonicalChange.kind == "record")
        .limit(up_to)
        .subquery()
    )
    return int(connection.execute(sa.select(sa.func.count()).select_from(rows)).scalar_one())


def run_kind(connection: Connection, run_id: str) -> str | None:
    """``full`` or ``incremental`` for the canonical run of ``run_id``; None when none is recorded."""
    kinds = set(
        connection.execute(
            sa.select(CanonicalChange.value).where(
                CanonicalChange.run_id == run_id, CanonicalChange.kind == "run"
            )
        ).scalars()
    )
    if not kinds:
        return None
    return FULL if FULL in kinds else INCREMENTAL
