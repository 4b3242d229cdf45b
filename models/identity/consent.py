"""Golden consent: whether a person opted out of email and of SMS, when, and which record says so.

Each source record makes at most one **statement** per channel (`statements`):

- ClickFunnels contact, email: ``unsubscribed_at`` set is an opt-out at that time; the key present and
  null says "not opted out" (api-notes §2.4).
- ClickSend list contact, SMS: a contact on the account's "Opt-Out List" is an opt-out at its
  ``date_added`` (the STOP reply put it there, api-notes §3.4). A contact on any other list says
  nothing about consent: being on a list is not a consent.
- Zoho CRM lead and contact, email: ``Email_Opt_Out`` true is an opt-out at ``Unsubscribed_Time``
  (else the record's ``Modified_Time``); false says "not opted out" (api-notes §5.5).
- Zoho Bigin contact, email: ``Email_Opt_Out`` as in CRM; Bigin keeps no unsubscribe time, so the
  record's ``Modified_Time`` stands in (api-notes §6.3).
- Linkflow keeps no consent.

An **opt-in** is a statement "not opted out" that carries its own time. The rule (`decide`), per
contact and channel:

1. the contact is opted out when it has an opt-out whose time is not before the latest opt-in (an
   opt-out with no time always stands): an opt-out anywhere wins unless the same channel shows a
   strictly later opt-in. ``*_at`` and ``*_source`` then name the earliest such opt-out (ties by
   source/object, then record), so a later copy of the same opt-out, such as the one our own
   reverse sync writes to Zoho, changes nothing;
2. else it is not opted out (false) when any record says anything for the channel; ``*_at`` and
   ``*_source`` name the latest opt-in when there is one, else stay empty;
3. else the value is null: no source says.

A record merely lacking a flag is not an opt-in, and none of the five APIs reports an opt-in with a
time today (ClickFunnels clears ``unsubscribed_at``, ClickSend drops the number from its opt-out list,
Zoho unticks ``Email_Opt_Out``): an opt-out then lasts until every record holding it is cleared.

Everything here depends only on the records of one contact, so an incremental resolution that
recomputes the contacts it touches gives what a full rebuild gives, and the order of the records
never matters (every choice is a sort with a total order).
"""

from collections.abc import Callable, Mapping
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

CHANNELS = ("email", "sms")
#: The contacts columns this module fills, per channel: the flag, when, and which source/object said so.
CONSENT_COLUMNS = tuple(
    f"{channel}_opt_out{suffix}" for channel in CHANNELS for suffix in ("", "_at", "_source")
)
STATEMENT_COLUMNS = ("record_key", "channel", "opted_out", "at")

_OPT_OUT_LIST_NAME = "opt-out list"
_TIME = pd.DatetimeTZDtype("us", "UTC")
_NAT = np.iinfo(np.int64).min


class _Said:
    """What the records of one source object state: per record whether it speaks, whether it opted out,
    and when (NaT when unsaid). Fields are pulled from the payloads once, the rest is column work."""

    def __init__(self, channel: str, speaks: Any, opted_out: Any, at: pd.Series) -> None:
        self.channel = channel
        self.speaks = np.asarray(speaks, dtype=bool)
        self.opted_out = np.asarray(opted_out, dtype=bool)
        self.at = at


def _field(payloads: list[Any], name: str, rows: npt.NDArray[np.bool_] | None = None) -> pd.Series:
    """One payload key of every record (None where absent), or only of ``rows`` (None elsewhere):
    most records state no opt-out, so their times are never read."""
    if rows is None:
        return pd.Series([p.get(name) for p in payloads], dtype=object)
    values = np.full(len(payloads), None, dtype=object)
    chosen = np.flatnonzero(rows)
    values[chosen] = [payloads[i].get(name) for i in chosen]
    return pd.Series(values, dtype=object)


def _iso(values: pd.Series) -> pd.Series:
    """ISO 8601 times with or without an offset (naive ones are UTC), unreadable ones NaT."""
    return pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601").astype(_TIME)


def _clickfunnels(payloads: list[Any]) -> _Said:
    value = _field(payloads, "unsubscribed_at")
    present = [("unsubscribed_at" in p) for p in payloads]
    opted = value.notna() & value.ne("")
    at = _iso(value.where(opted.to_numpy(), None))
    return _Said("email", present, opted.to_numpy(), at)


def _clicksend(payloads: list[Any]) -> _Said:
    names = _field(payloads, "list_name").fillna("").astype(str).str.strip().str.casefold()
    listed = names.eq(_OPT_OUT_LIST_NAME).to_numpy()
    added = pd.to_numeric(_field(payloads, "date_added", listed), errors="coerce")
    at = pd.to_datetime(added, unit="s", utc=True, errors="coerce").astype(_TIME)
    return _Said("sms", listed, listed, at)


def _zoho(payloads: list[Any]) -> _Said:
    flags = _field(payloads, "Email_Opt_Out")
    opted = np.fromiter((v is True for v in flags), dtype=bool, count=len(flags))
    spoken = opted | np.fromiter((v is False for v in flags), dtype=bool, count=len(flags))
    unsubscribed = _iso(_field(payloads, "Unsubscribed_Time", opted))
    modified = _iso(_field(payloads, "Modified_Time", opted))
    return _Said("email", spoken, opted, unsubscribed.where(unsubscribed.notna(), modified))


_READERS: Mapping[tuple[str, str], Callable[[list[Any]], _Said]] = {
    ("clickfunnels", "contact"): _clickfunnels,
    ("clicksend", "list_contact"): _clicksend,
    ("zoho_crm", "lead"): _zoho,
    ("zoho_crm", "contact"): _zoho,
    ("zoho_bigin", "contact"): _zoho,
}


#: The payload keys each reader above looks at, for reads that fetch only those
#: (`models.identity.payload_keys`); tests hold the readers to them.
CONSENT_KEYS: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("clickfunnels", "contact"): ("unsubscribed_at",),
    ("clicksend", "list_contact"): ("list_name", "date_added"),
    ("zoho_crm", "lead"): ("Email_Opt_Out", "Unsubscribed_Time", "Modified_Time"),
    ("zoho_crm", "contact"): ("Email_Opt_Out", "Unsubscribed_Time", "Modified_Time"),
    ("zoho_bigin", "contact"): ("Email_Opt_Out", "Unsubscribed_Time", "Modified_Time"),
}
#: Of those, the keys whose presence says something (a null ``unsubscribed_at`` is "not opted out",
#: an absent one says nothing).
PRESENCE_KEYS: Mapping[tuple[str, str], tuple[str, ...]] = {("clickfunnels", "contact"): ("unsubscribed_at",)}


def statements(raw: pd.DataFrame) -> pd.DataFrame:
    """`STATEMENT_COLUMNS`, one row per record and channel it speaks for.

    raw: record_key, source, object, payload (the record as stored). ``at`` is UTC (NaT when unsaid).
    """
    parts = [_no_statements().loc[:, list(STATEMENT_COLUMNS)]]
    for (source, obj), group in raw.groupby(["source", "object"], sort=True):
        reader = _READERS.get((str(source), str(obj)))
        if reader is None:
            continue
        payloads = [p if isinstance(p, dict) else {} for p in group["payload"]]
        said = reader(payloads)
        keys = group["record_key"].to_numpy(dtype=np.int64)[said.speaks]
        parts.append(
            pd.DataFrame(
                {
                    "record_key": keys,
                    "channel": np.full(len(keys), said.channel, dtype=object),
                    "opted_out": said.opted_out[said.speaks],
                    "at": said.at[said.speaks].reset_index(drop=True).astype(_TIME).array,
                }
            )
        )
    return pd.concat([part for part in parts if len(part)] or parts[:1], ignore_index=True)


def decide(said: pd.DataFrame, contact_ids: pd.Series) -> pd.DataFrame:
    """The golden consent of each of ``contact_ids``: contact_id and `CONSENT_COLUMNS`.

    said: `STATEMENT_COLUMNS` plus contact_id, source, object (the stating record's).
    """
    uniques = pd.Index(pd.Series(contact_ids, dtype=object).drop_duplicates().to_numpy(dtype=object))
    out = pd.DataFrame({"contact_id": pd.Series(uniques, dtype=object)})
    codes = uniques.get_indexer(said["contact_id"].astype(object))
    known = codes >= 0
    said = said[known]
    codes = codes[known]
    # Ties go by source/object name, then by the warehouse's record key (stable across runs).
    grouped = said.groupby(["source", "object"], sort=True)
    origin_codes = grouped.ngroup().to_numpy(dtype=np.intp)
    origins = ["/".join(cast(tuple[str, str], key)) for key in grouped.groups]
    id_codes = said["record_key"].to_numpy(dtype=np.int64)
    ticks = pd.to_datetime(said["at"], utc=True).astype(_TIME).to_numpy(dtype="datetime64[us]").view(np.int64)
    channel = said["channel"].to_numpy(dtype=object)
    opted = said["opted_out"].to_numpy(dtype=bool)
    for name in CHANNELS:
        mine = channel == name
        flag, at, source = _decide_channel(
            len(uniques),
            codes=codes[mine],
            opted=opted[mine],
            ticks=ticks[mine],
            origins=origin_codes[mine],
            ids=id_codes[mine],
        )
        values = np.full(len(uniques), None, dtype=object)
        values[flag == 1] = True
        values[flag == 0] = False
        out[f"{name}_opt_out"] = pd.Series(values, dtype=object)
        out[f"{name}_opt_out_at"] = pd.Series(at.view("datetime64[us]")).dt.tz_localize("UTC")
        names = np.asarray([*origins, None], dtype=object)
        out[f"{name}_opt_out_source"] = pd.Series(names[source], dtype=object)
    return out.loc[:, ["contact_id", *CONSENT_COLUMNS]]


def _decide_channel(
    count: int,
    *,
    codes: npt.NDArray[np.intp],
    opted: npt.NDArray[np.bool_],
    ticks: npt.NDArray[np.int64],
    origins: npt.NDArray[np.intp],
    ids: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int64], npt.NDArray[np.intp]]:
    """Per contact code: flag (1 opted out, 0 not, -1 unsaid), the deciding time (NaT as int64 min)
    and the deciding origin's code (``-1``, i.e. the None after the last origin, when none decides)."""
    flag = np.full(count, -1, dtype=np.int8)
    at = np.full(count, _NAT, dtype=np.int64)
    source = np.full(count, -1, dtype=np.intp)
    flag[codes] = 0
    dated = ticks != _NAT
    # The latest explicit opt-in of each contact (NaT where it has none).
    latest_in = np.full(count, _NAT, dtype=np.int64)
    np.maximum.at(latest_in, codes[~opted & dated], ticks[~opted & dated])
    standing = opted & (~dated | (latest_in[codes] == _NAT) | (ticks >= latest_in[codes]))
    # Of the standing opt-outs, the earliest decides (undated ones last), ties by origin and id.
    order = np.lexsort((ids, origins, ticks, ~dated, codes))
    first = _first_of_each(order[standing[order]], codes)
    flag[codes[first]] = 1
    at[codes[first]] = ticks[first]
    source[codes[first]] = origins[first]
    # Contacts with none standing are named by their latest opt-in (ties by origin and id).
    ins = np.flatnonzero(~opted & dated & (flag[codes] == 0))
    last = _first_of_each(ins[np.lexsort((ids[ins], origins[ins], -ticks[ins], codes[ins]))], codes)
    at[codes[last]] = ticks[last]
    source[codes[last]] = origins[last]
    return flag, at, source


def _first_of_each(rows: npt.NDArray[np.intp], codes: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """The first of ``rows`` (grouped by contact code, best first) for each contact."""
    if not len(rows):
        return rows
    grouped = codes[rows]
    return rows[np.r_[True, grouped[1:] != grouped[:-1]]]


def golden_consent(
    people: pd.DataFrame, raw: pd.DataFrame | None, said: pd.DataFrame | None = None
) -> pd.DataFrame:
    """contact_id and `CONSENT_COLUMNS` for every contact of ``people`` (record_key, contact_id,
    source, object, source_id per record), read from the records' payloads in ``raw``, or from
    ``said`` (`statements` taken earlier, as a rebuild does while it still holds each slice's
    payloads)."""
    contact_ids = people["contact_id"]
    keys = people.loc[:, ["record_key", "contact_id", "source", "object", "source_id"]]
    if said is None:
        if raw is None or raw.empty:
            return decide(_no_statements(), contact_ids)
        payloads = raw.loc[:, ["record_key", "payload"]].drop_duplicates("record_key")
        said = statements(keys.merge(payloads, on="record_key", how="inner"))
    return decide(said.merge(keys, on="record_key"), contact_ids)


def _no_statements() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "record_key": pd.Series(dtype=np.int64),
            "channel": pd.Series(dtype=object),
            "opted_out": pd.Series(dtype=bool),
            "at": pd.Series(dtype="datetime64[us, UTC]"),
            "contact_id": pd.Series(dtype=object),
            "source": pd.Series(dtype=object),
            "object": pd.Series(dtype=object),
            "source_id": pd.Series(dtype=object),
        }
    )


def consent_values(frame: pd.DataFrame) -> pd.DataFrame:
    """`CONSENT_COLUMNS` of ``frame`` as the warehouse takes them: None for missing, aware UTC
    datetimes (a frame without them, such as one from before consent existed, gives all None)."""
    out = pd.DataFrame(index=frame.index)
    for name in CONSENT_COLUMNS:
        column = frame[name] if name in frame else pd.Series(None, index=frame.index, dtype=object)
        values: list[Any]
        if name.endswith("_at"):
            stamps = pd.to_datetime(column, utc=True)
            values = [None if pd.isna(v) else pd.Timestamp(v).to_pydatetime() for v in stamps]
        else:
            # Flags as Python bools: a database driver may not take numpy's.
            cast: Callable[[Any], Any] = str if name.endswith("_source") else bool
            values = [
                None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else cast(v)
                for v in column
            ]
        out[name] = pd.Series(values, index=frame.index, dtype=object)
    return out


def consent_changed(new: pd.DataFrame, old: pd.DataFrame) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Per row, whether any consent column of ``new`` differs from the same row of ``old``."""
    left, right = consent_values(new), consent_values(old)
    changed = np.zeros(len(new), dtype=bool)
    for name in CONSENT_COLUMNS:
        changed |= left[name].to_numpy(dtype=object) != right[name].to_numpy(dtype=object)
    return changed


def consent_lines(contact: Mapping[str, Any]) -> list[str]:
    """A contact's consent for people to read (``contact-sync show``): one line per channel."""
    lines = []
    for channel in CHANNELS:
        flag = contact.get(f"{channel}_opt_out")
        at, source = contact.get(f"{channel}_opt_out_at"), contact.get(f"{channel}_opt_out_source")
        when = f" since {at:%Y-%m-%d %H:%M:%SZ}" if at is not None else ""
        said = f" (per {source})" if source else ""
        if flag is None:
            state = "unknown (no source says)"
        elif flag:
            state = f"opted out{when}{said}"
        else:
            state = f"not opted out{' (opted in' + when + ', per ' + source + ')' if source else ''}"
        lines.append(f"  {channel}: {state}")
    return lines
