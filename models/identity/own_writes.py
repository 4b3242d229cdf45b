"""Our own reverse-sync writes, seen from survivorship: a modification we made is not a person's edit.

Survivorship prefers the most recently modified record, and every write we push bumps the destination
record's modification time. Taken at face value, the record we filled in last would become "newest"
and win fields it never changed, so the golden record would depend on the order of our own writes
(and a push interrupted and resumed would settle on different values than one that ran through).

The ledger keeps, per write, the record's modification time when the write was planned (`p`) and when
the write was done (`t`). A record whose current modification time `m` satisfies `p < m <= t + slack`
was last modified by that write (or within its window), so its recency is `p`, as if the write had not
happened; repeated for chains of our writes. A create has no `p`: a record we created and nobody has
edited since ranks below every record a person modified. An edit made after `t + slack` counts in full.
`slack` absorbs the destination's clock running ahead of ours and second-precision timestamps; an
outside edit landing inside it is taken for ours, and counts once the record is edited again.
"""

from collections.abc import Sequence
from datetime import timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from models.warehouse.store import chunks
from models.warehouse.tables import IN_FLIGHT, PushLedger

DEFAULT_SLACK = timedelta(seconds=60)
_MAX_CHAIN = 10

WRITE_COLUMNS = ("source", "object", "source_id", "planned_modified_at", "written_at")
"""One row per write of a record: destination, object, record id, `p` (NaT for a create) and `t`."""


def discount_own_writes(
    records: pd.DataFrame, writes: pd.DataFrame, *, slack: timedelta = DEFAULT_SLACK
) -> pd.Series:
    """The records' modification times with our own writes taken out (NaT: only we ever touched it).

    records: source, object, source_id, modified_at (UTC); the result is aligned with its index.
    """
    modified = pd.to_datetime(records["modified_at"], utc=True)
    if writes.empty or records.empty:
        return modified
    key = ["source", "object", "source_id"]
    frame = records.loc[:, key].astype(str).assign(row=np.arange(len(records)), eff=modified.to_numpy())
    ours = writes.loc[:, list(WRITE_COLUMNS)].astype({"source": str, "object": str, "source_id": str})
    ours["planned_modified_at"] = pd.to_datetime(ours["planned_modified_at"], utc=True)
    ours["until"] = pd.to_datetime(ours["written_at"], utc=True) + slack
    pairs = frame.merge(ours, on=key, how="inner")
    if pairs.empty:
        return modified
    effective = frame["eff"].copy()
    for _ in range(_MAX_CHAIN):
        current = effective.to_numpy()[pairs["row"].to_numpy()]
        live = pd.notna(current)
        planned = pairs["planned_modified_at"].to_numpy()
        made_by_write = (
            live & (current <= pairs["until"].to_numpy()) & (pd.isna(planned) | (planned < current))
        )
        if not made_by_write.any():
            break
        hits = pairs.loc[made_by_write, ["row", "planned_modified_at"]]
        # The earliest time before any of the writes that explain the current one (NaT: a create).
        by_row = hits.groupby("row")["planned_modified_at"]
        earliest = by_row.min().where(~hits["planned_modified_at"].isna().groupby(hits["row"]).any())
        effective.iloc[earliest.index.to_numpy()] = earliest.to_numpy()
    return pd.Series(effective.to_numpy(), index=records.index, name="modified_at").dt.tz_convert("UTC")


def own_writes(connection: Connection, record_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Every write we made or may have made, one row per record and run (the input of `discount_own_writes`).

    ``record_ids`` narrows it to those records (an incremental resolution touches few; the ledger
    only grows), else every record we ever wrote.
    """
    query = (
        sa.select(
            PushLedger.destination,
            PushLedger.object,
            PushLedger.record_id,
            sa.func.min(PushLedger.record_modified_at),
            sa.func.max(PushLedger.updated_at),
        )
        .where(
            PushLedger.status.in_((*IN_FLIGHT, "undone")),
            PushLedger.dry_run.is_(False),
            PushLedger.record_id != "",
        )
        .group_by(PushLedger.destination, PushLedger.object, PushLedger.record_id, PushLedger.run_id)
    )
    columns = ["source", "object", "source_id", "planned_modified_at", "written_at"]
    if record_ids is None:
        return pd.DataFrame(connection.execute(query).all(), columns=columns)
    ids = sorted(set(record_ids))
    rows = [
        row
        for chunk in chunks(ids)
        for row in connection.execute(query.where(PushLedger.record_id.in_(list(chunk)))).all()
    ]
    return pd.DataFrame(rows, columns=columns)
