"""Our own reverse-sync writes, seen from survivorship: a modification we made is not a person's edit.

Survivorship prefers the most recently modified record, and every write we push bumps the destination
record's modification time. Taken at face value, the record we filled in last would become "newest"
and win fields it never changed, so the golden record would depend on the order of our own writes
(and a push interrupted and resumed would settle on different values than one that ran through). The
opposite mistake is worse: a person's edit taken for ours never reaches the golden record.

So a record's modification time `m` is traced back through the writes the ledger holds for it. A write
that made the record's state counts as if it had not happened: the record's recency becomes the
modification time it had when the write was planned (`p`), and that time is traced back in turn
(chains of our writes). A create has no `p`: a record we created and nobody has edited since ranks
below every record a person modified. Whatever is not traced to a write counts in full.

What proves that a write made the state, best first:

- **The answer's own stamp.** Every destination answers a write with the record as it left it (Zoho
  the result's ``details``, the others the record), and the ledger keeps its modification time
  (`result_modified_at`). The record still showing exactly that time was last modified by that write;
  any later modification moves it, whoever made it and whichever field it changed, so it counts in
  full. No clock is compared: both times are the destination's own.
- **Linkflow's ``ver``.** The version our write resulted in (`result_version`): the same version now is
  our write; a higher one is someone else's edit after it, even within the same second.
- **Zoho's ``Modified_By``.** Our writes are made as the connection's own user (`written_by`, learned
  once per run from ``/users?type=CurrentUser``): a record last modified by anyone else was edited by
  someone after us, even within the same second.
- **The values we sent.** The ledger holds each field we wrote and the value sent. A record whose field
  now holds another value (compared as the field reads: `models.normalise.compare`) was edited after
  our write, in any system.

The last three overrule a matching stamp, which has the destination's resolution only (whole seconds
in Zoho, Linkflow and ClickSend). What is left is a same-second edit of a field we did not write, in
ClickSend or ClickFunnels (which tell neither a version nor a user), or in Zoho by the connection's own
user; such an edit counts once the record is edited again.

**The time window, where nothing better exists.** A write whose answer told no modification time (a
create whose answer was lost, rows written before the ledger kept stamps) is traced by the clock: a
record whose `m` satisfies `p < m <= t + slack`, `t` being when we marked the write sent, is taken to
be that write's, unless its values or the evidence above say otherwise. `slack` absorbs the
destination's clock running ahead of ours; an outside edit inside it that leaves the values we sent
alone is taken for ours.

The evidence is read from the record as the warehouse holds it now, so it judges only the write that
made the current state; earlier links of a chain are traced by stamps (or the window) alone.

**Values, not only times.** Taking our modification out of a record's time is not enough: the values
we wrote are still in the record, and they would compete under its remaining (person-made) time. A
country we filled into a ClickSend contact edited by someone last spring would outrank the Zoho
record it was copied from, edited the winter before, and the golden value would move from `China` to
the `CN` we wrote, from the second sync on (or after a stopped sync resumed, with pushes done in
another order). So `echoed_fields` names, per record, the surviving fields whose value one of our
writes put there and nobody has changed since (the field still holds what we sent, compared as it
reads); survivorship takes such a value only when no record holds a value of its own.
"""

from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from models.normalise.compare import field_kind, holds_value
from models.normalise.layouts import layout
from models.warehouse.bulk import rows_frame
from models.warehouse.key_lists import key_in
from models.warehouse.tables import IN_FLIGHT, UNDO_REASONS, PushLedger

DEFAULT_SLACK = timedelta(seconds=60)
_MAX_CHAIN = 10

WRITE_COLUMNS = ("source", "object", "source_id", "planned_modified_at", "written_at")
"""One row per write of a record: destination, object, record id, `p` (NaT for a create) and `t`."""
STAMP_COLUMNS = ("result_modified_at", "result_version", "written_by", "sent", "restores")
"""Optional, per write: the modification time and Linkflow version its answer gave, the Zoho user it
was made as, ``sent``, the fields written as a mapping of field name to the value sent, and
``restores``, whether it was an undo (putting a person's values back, which are theirs, not ours).
Missing columns or values mean the write is traced by the time window alone."""


def discount_own_writes(
    records: pd.DataFrame, writes: pd.DataFrame, *, slack: timedelta = DEFAULT_SLACK
) -> pd.Series:
    """The records' modification times with our own writes taken out (NaT: only we ever touched it).

    records: source, object, source_id, modified_at (UTC), and optionally ``payload``, the record as
        the warehouse holds it now (its version, its last modifier and its values are the evidence of
        an edit after our write); the result is aligned with its index.
    writes: `WRITE_COLUMNS`, optionally `STAMP_COLUMNS`.
    """
    modified = pd.to_datetime(records["modified_at"], utc=True)
    if writes.empty or records.empty:
        return modified
    key = ["source", "object", "source_id"]
    frame = records.loc[:, key].astype(str).assign(row=np.arange(len(records)))
    pairs = frame.merge(_writes_frame(writes, slack), on=key, how="inner")
    if pairs.empty:
        return modified
    # Plain UTC datetime64 arrays: tz-aware columns would hand out one Timestamp object per value.
    rows = pairs["row"].to_numpy()
    planned = _utc64(pairs["planned_modified_at"])
    stamped_at = _utc64(pairs["result_modified_at"])
    stamped = ~np.isnat(stamped_at)
    until = _utc64(pairs["until"])
    payloads = records["payload"].to_numpy(dtype=object) if "payload" in records else None
    effective = _utc64(modified).copy()
    active = np.ones(len(pairs), dtype=bool)  # pairs whose record is still being traced back
    for step in range(_MAX_CHAIN):
        current = effective[rows]
        live = active & ~np.isnat(current)
        by_stamp = stamped & (current == stamped_at)
        by_clock = ~stamped & (current <= until) & (np.isnat(planned) | (planned < current))
        made = live & (by_stamp | by_clock)
        if step == 0 and payloads is not None:
            made = _judged(pairs, made, live, payloads[rows])
        if not made.any():
            break
        hit_rows, hit_planned = rows[made], planned[made]
        # The earliest time before any of the writes that explain the current one (NaT: a create,
        # which wins: only we ever touched the record before it).
        order = np.lexsort((hit_planned.view(np.int64), hit_rows))
        first = np.r_[True, hit_rows[order][1:] != hit_rows[order][:-1]]
        traced = hit_rows[order][first]
        earliest = hit_planned[order][first]  # NaT sorts first as the smallest int64
        effective[traced] = earliest
        active = np.isin(rows, traced)
    times: pd.Series = pd.Series(effective, index=records.index, name="modified_at").dt.tz_localize("UTC")
    return times


def echoed_fields(records: pd.DataFrame, writes: pd.DataFrame) -> pd.Series:
    """Per record, the surviving fields (`models.push.field_map.CANONICAL_FIELDS`) whose value is one
    we wrote there and that nobody has changed since: a frozenset each, empty for most.

    records: source, object, source_id and ``payload``, the record as the warehouse holds it now (a
        record without one has no echo); the result is aligned with its index.
    writes: `WRITE_COLUMNS` with ``sent`` (and optionally ``restores``: an undo's values are not ours).

    A field counts whether or not the record was edited since, in other fields: what decides is that
    the value is the one we sent (`models.normalise.compare.holds_value`), so survivorship can tell a
    copy of the golden value from a value a person put there.
    """
    none: frozenset[str] = frozenset()
    echoes: list[frozenset[str]] = [none] * len(records)

    def series() -> pd.Series:
        return pd.Series(echoes, index=records.index, dtype=object)

    if writes.empty or records.empty or "payload" not in records or "sent" not in writes:
        return series()
    key = ["source", "object", "source_id"]
    ours = writes.loc[:, [*key, "sent"]].astype({"source": str, "object": str, "source_id": str})
    if "restores" in writes:
        ours = ours[~writes["restores"].fillna(False).astype(bool).to_numpy()]
    frame = records.loc[:, key].astype(str).assign(row=np.arange(len(records)))
    pairs = frame.merge(ours, on=key, how="inner")
    if pairs.empty:
        return series()
    payloads = records["payload"].to_numpy(dtype=object)
    found: dict[int, set[str]] = {}
    for row, source, obj, sent in zip(
        pairs["row"].to_numpy(),
        pairs["source"].to_numpy(dtype=object),
        pairs["object"].to_numpy(dtype=object),
        pairs["sent"].to_numpy(dtype=object),
        strict=True,
    ):
        payload = payloads[row]
        if type(payload) is not dict or type(sent) is not dict:  # JSON objects; cheaper than an ABC check
            continue
        written = _written_fields(source, obj)
        for field, value in sent.items():
            spec = written.get(field)
            if spec is None or value is None or value == "" or field not in payload:
                continue
            kind, surviving = spec
            held = payload[field]
            if held == value or holds_value(kind, held, value):  # most read back exactly as sent
                found.setdefault(int(row), set()).update(surviving)
    for row, names in found.items():
        echoes[row] = frozenset(names)
    return series()


@cache
def _written_fields(source: str, obj: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Payload path -> how it compares (`field_kind`) and the surviving fields resolution reads from it.

    The reading layout is the map, not the push field map: a value we wrote competes only through the
    fields read from it, and a path we write but never read cannot echo into a golden value.
    """
    try:
        spec = layout(source, obj)
    except ValueError:  # not a source object we read
        return {}
    read: dict[str, set[str]] = {}
    groups = [
        *((paths, (name,)) for name, paths in spec.text_paths.items()),
        (spec.full_name, ("first_name", "last_name")),
        (spec.emails, ("email",)),
        (spec.phones, ("phone",)),
    ]
    for paths, surviving in groups:
        for path in paths:
            read.setdefault(path, set()).update(surviving)
    return {path: (field_kind(source, obj, path), tuple(sorted(names))) for path, names in read.items()}


def _utc64(times: pd.Series) -> npt.NDArray[np.datetime64]:
    """UTC times as a naive datetime64[us] array (NaT kept)."""
    as_utc = pd.to_datetime(times, utc=True).dt.tz_convert(None).dt.as_unit("us")
    return as_utc.to_numpy(dtype="datetime64[us]")


def _writes_frame(writes: pd.DataFrame, slack: timedelta) -> pd.DataFrame:
    """The writes with every optional column present, times as UTC, and the window's end ``until``."""
    ours = writes.loc[:, list(WRITE_COLUMNS)].astype({"source": str, "object": str, "source_id": str})
    ours["planned_modified_at"] = pd.to_datetime(ours["planned_modified_at"], utc=True)
    ours["until"] = pd.to_datetime(writes["written_at"], utc=True) + slack
    stamp = (
        writes["result_modified_at"]
        if "result_modified_at" in writes
        else pd.Series(pd.NaT, index=writes.index)
    )
    ours["result_modified_at"] = pd.to_datetime(stamp, utc=True)
    for name in ("result_version", "written_by", "sent"):
        ours[name] = writes[name].astype(object) if name in writes else None
    return ours


def _judged(
    pairs: pd.DataFrame,
    made: npt.NDArray[np.bool_],
    live: npt.NDArray[np.bool_],
    payloads: npt.NDArray[np.object_],
) -> npt.NDArray[np.bool_]:
    """``made`` as the records' current payloads judge it: a write whose version is the record's is
    ours whatever the times say; one followed by a higher version, another Zoho user or other values
    in the fields it wrote was followed by someone's edit, whatever the times say."""
    judged = made.copy()
    versions = pairs["result_version"].to_numpy(dtype=object)
    users = pairs["written_by"].to_numpy(dtype=object)
    sent = pairs["sent"].to_numpy(dtype=object)
    sources = pairs["source"].to_numpy(dtype=object)
    objects = pairs["object"].to_numpy(dtype=object)
    has_version = pd.notna(versions)
    for index in np.flatnonzero(live & (made | has_version)):
        payload = payloads[index]
        if not isinstance(payload, Mapping):
            continue
        version, ours = _int(payload.get("ver")), _int(versions[index])
        if version is not None and ours is not None:
            # Linkflow's version says it outright, both ways.
            judged[index] = version == ours
        elif made[index] and (
            _other_user(payload, users[index])
            or _values_changed(str(sources[index]), str(objects[index]), sent[index], payload)
        ):
            judged[index] = False
    return judged


#: The columns `judge_own_writes` gives each record.
JUDGED_COLUMNS = ("person_modified_at", "echoes")


def judge_own_writes(records: pd.DataFrame, writes: pd.DataFrame) -> pd.DataFrame:
    """`JUDGED_COLUMNS` of ``records`` (as `discount_own_writes` and `echoed_fields` read them),
    aligned with its index: the modification time with our writes taken out, and the fields whose
    value is one we wrote. Each record is judged on its own, so a rebuild judges each slice of
    records while it holds their payloads, and keeps these two columns rather than the payloads."""
    return pd.DataFrame(
        {
            "person_modified_at": discount_own_writes(records, writes),
            "echoes": echoed_fields(records, writes),
        },
        index=records.index,
    )


def written_record_count(connection: Connection) -> int:
    """How many records the ledger says we wrote or may have written (whose payloads a rebuild
    reads whole, for `judge_own_writes`)."""
    written = (
        _ledger_query(times_as_text=False)
        .with_only_columns(PushLedger.destination, PushLedger.object, PushLedger.record_id)
        .distinct()
        .subquery()
    )
    return int(connection.execute(sa.select(sa.func.count()).select_from(written)).scalar_one())


def _other_user(payload: Mapping[str, Any], written_by: object) -> bool:
    """Whether a Zoho record was last modified by another user than the one our write was made as."""
    if not isinstance(written_by, str) or not written_by:
        return False
    by = payload.get("Modified_By")
    last = by.get("id") if isinstance(by, Mapping) else None
    return last is not None and str(last) != written_by


def _values_changed(source: str, obj: str, sent: object, payload: Mapping[str, Any]) -> bool:
    """Whether a field the write sent now holds another value (a field the payload lacks says nothing)."""
    if not isinstance(sent, Mapping):
        return False
    return any(
        field in payload and not holds_value(field_kind(source, obj, field), payload[field], value)
        for field, value in sent.items()
    )


def _int(value: object) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    return None


def own_writes_of(connection: Connection, records: pd.DataFrame) -> pd.DataFrame:
    """Every write we made or may have made to the records in ``records`` (source, object,
    source_id), one row per record and run (the input of `discount_own_writes`: `WRITE_COLUMNS` and
    `STAMP_COLUMNS`). Each is read through the ledger's (destination, object, record_id) index, so the
    cost follows the records asked for and not the ledger's size: an incremental resolution asks for
    its scope, a rebuild for each slice of records it reads."""
    if records.empty:
        return _per_write([])
    keys = records.loc[:, ["source", "object", "source_id"]].astype(str).drop_duplicates()
    query = _ledger_query(times_as_text=connection.dialect.name == "sqlite")
    rows: list[Any] = []
    for (source, obj), group in keys.groupby(["source", "object"], sort=True):
        rows.extend(
            connection.execute(
                query.where(
                    PushLedger.destination == source,
                    PushLedger.object == obj,
                    key_in(connection, PushLedger.record_id, sorted(group["source_id"].tolist())),
                )
            ).all()
        )
    return _per_write(rows)


def _ledger_query(*, times_as_text: bool) -> sa.Select[*tuple[Any, ...]]:
    """Ledger rows of writes that went out or may have (undo writes included), as `_per_write` reads
    them; ``times_as_text``: the times as SQLite stores them, for `_per_write` to parse a column at
    once (the driver's converter, called per value, was most of a rebuild's reading of the ledger)."""
    times = [PushLedger.record_modified_at, PushLedger.updated_at, PushLedger.result_modified_at]
    return sa.select(
        PushLedger.destination,
        PushLedger.object,
        PushLedger.record_id,
        PushLedger.run_id,
        *(sa.type_coerce(time, sa.Text) if times_as_text else time for time in times),
        PushLedger.result_version,
        PushLedger.written_by,
        PushLedger.field,
        PushLedger.after_value,
        PushLedger.reason,
    ).where(
        # ``status || ''``: no index serves it, so a planner without statistics for the ledger (before
        # its first ANALYZE, as after a first sync) reads the records asked for through the
        # (destination, object, record_id) index, not every row of the destination in those statuses
        # through the (destination, object, status, updated_at) one: 2 to 34 s a query on
        # PostgreSQL at a million records, in every slice of the sync after a first sync.
        PushLedger.status.concat("").in_((*IN_FLIGHT, "undone")),
        PushLedger.dry_run.is_(False),
        PushLedger.record_id != "",
    )


_LEDGER_COLUMNS = (
    "source",
    "object",
    "source_id",
    "run_id",
    "planned_modified_at",
    "written_at",
    "result_modified_at",
    "result_version",
    "written_by",
    "field",
    "value",
    "reason",
)


def _per_write(rows: Sequence[Any]) -> pd.DataFrame:
    """Ledger rows (one per field) folded into one row per record and run."""
    columns = [*WRITE_COLUMNS, *STAMP_COLUMNS]
    if not len(rows):
        return pd.DataFrame(columns=columns)
    fields = rows_frame(rows, _LEDGER_COLUMNS)
    for name in ("planned_modified_at", "written_at", "result_modified_at"):
        # SQLite's times come as text (`_ledger_query`), the others' as datetimes; ISO 8601 reads both.
        fields[name] = pd.to_datetime(fields[name], utc=True, format="ISO8601")
    fields["result_version"] = pd.to_numeric(fields["result_version"], errors="coerce")
    fields["restores"] = fields["reason"].isin(UNDO_REASONS)
    group = fields.groupby(["source", "object", "source_id", "run_id"], sort=True, dropna=False)
    out = group.agg(
        planned_modified_at=("planned_modified_at", "min"),
        written_at=("written_at", "max"),
        result_modified_at=("result_modified_at", "max"),
        result_version=("result_version", "max"),
        written_by=("written_by", "first"),
        restores=("restores", "max"),
    ).reset_index()
    # The fields each write sent, by the write's group number (``out`` is in group order).
    sent: list[dict[str, Any]] = [{} for _ in range(len(out))]
    # As lists: iterating a pandas string column boxes each value through its array's __getitem__.
    codes, names, values = group.ngroup().tolist(), fields["field"].tolist(), fields["value"].tolist()
    for code, field, value in zip(codes, names, values, strict=True):
        sent[code][field] = value
    out["sent"] = pd.Series(sent, index=out.index, dtype=object)
    out["result_version"] = pd.Series(
        [None if pd.isna(v) else int(v) for v in out["result_version"]], index=out.index, dtype=object
    )
    out["written_by"] = out["written_by"].astype(object).where(out["written_by"].notna(), None)
    return out.loc[:, columns]
