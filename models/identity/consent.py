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
   source, object and id), so a later copy of the same opt-out, such as the one our own reverse sync
   writes to Zoho, changes nothing;
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
from typing import Any

import numpy as np
import pandas as pd

from models.normalise.field_values import parse_time

CHANNELS = ("email", "sms")
#: The contacts columns this module fills, per channel: the flag, when, and which source/object said so.
CONSENT_COLUMNS = tuple(
    f"{channel}_opt_out{suffix}" for channel in CHANNELS for suffix in ("", "_at", "_source")
)
STATEMENT_COLUMNS = ("record_key", "channel", "opted_out", "at")

_OPT_OUT_LIST_NAME = "opt-out list"
Statement = tuple[str, bool, Any] | None
"""(channel, opted_out, at) said by one record, or None when it says nothing."""


def _clickfunnels(payload: Mapping[str, Any]) -> Statement:
    if "unsubscribed_at" not in payload:
        return None
    value = payload.get("unsubscribed_at")
    if value is None or value == "":
        return ("email", False, None)
    return ("email", True, parse_time(value, "iso")[0])


def _clicksend(payload: Mapping[str, Any]) -> Statement:
    if str(payload.get("list_name") or "").strip().casefold() != _OPT_OUT_LIST_NAME:
        return None
    return ("sms", True, parse_time(payload.get("date_added"), "unix")[0])


def _zoho(payload: Mapping[str, Any]) -> Statement:
    flag = payload.get("Email_Opt_Out")
    if not isinstance(flag, bool):
        return None
    if not flag:
        return ("email", False, None)
    at = parse_time(payload.get("Unsubscribed_Time"), "iso")[0]
    return ("email", True, at or parse_time(payload.get("Modified_Time"), "iso")[0])


_READERS: Mapping[tuple[str, str], Callable[[Mapping[str, Any]], Statement]] = {
    ("clickfunnels", "contact"): _clickfunnels,
    ("clicksend", "list_contact"): _clicksend,
    ("zoho_crm", "lead"): _zoho,
    ("zoho_crm", "contact"): _zoho,
    ("zoho_bigin", "contact"): _zoho,
}


def statements(raw: pd.DataFrame) -> pd.DataFrame:
    """`STATEMENT_COLUMNS`, one row per record and channel it speaks for.

    raw: record_key, source, object, payload (the record as stored). ``at`` is UTC (NaT when unsaid).
    """
    keys: list[int] = []
    said: list[tuple[str, bool, Any]] = []
    for (source, obj), group in raw.groupby(["source", "object"], sort=True):
        reader = _READERS.get((str(source), str(obj)))
        if reader is None:
            continue
        found = [reader(p) if isinstance(p, Mapping) else None for p in group["payload"]]
        mine = [i for i, statement in enumerate(found) if statement is not None]
        record_keys = group["record_key"].to_numpy(dtype=np.int64)
        keys.extend(int(record_keys[i]) for i in mine)
        said.extend(found[i] for i in mine)  # type: ignore[misc]
    frame = pd.DataFrame(
        {
            "record_key": np.asarray(keys, dtype=np.int64),
            "channel": pd.Series([s[0] for s in said], dtype=object),
            "opted_out": np.asarray([s[1] for s in said], dtype=bool),
            "at": pd.to_datetime(pd.Series([s[2] for s in said], dtype=object), utc=True),
        }
    )
    return frame.astype({"at": pd.DatetimeTZDtype("us", "UTC")})


def decide(said: pd.DataFrame, contact_ids: pd.Series) -> pd.DataFrame:
    """The golden consent of each of ``contact_ids``: contact_id and `CONSENT_COLUMNS`.

    said: `STATEMENT_COLUMNS` plus contact_id, source, object, source_id (the stating record).
    """
    out = pd.DataFrame({"contact_id": pd.Series(contact_ids, dtype=object).drop_duplicates()})
    out = out.reset_index(drop=True)
    said = said.assign(
        contact_id=said["contact_id"].astype(object),
        origin=said["source"].astype(str) + "/" + said["object"].astype(str),
        source_id=said["source_id"].astype(str),
    )
    for channel in CHANNELS:
        out = out.merge(
            _decide_channel(said[said["channel"] == channel], channel), on="contact_id", how="left"
        )
    for channel in CHANNELS:
        flag = f"{channel}_opt_out"
        out[flag] = out[flag].astype(object).where(out[flag].notna(), None)
        out[f"{channel}_opt_out_source"] = out[f"{channel}_opt_out_source"].astype(object)
        out[f"{channel}_opt_out_source"] = out[f"{channel}_opt_out_source"].where(
            out[f"{channel}_opt_out_source"].notna(), None
        )
        out[f"{channel}_opt_out_at"] = pd.to_datetime(out[f"{channel}_opt_out_at"], utc=True)
    return out.loc[:, ["contact_id", *CONSENT_COLUMNS]]


def _decide_channel(said: pd.DataFrame, channel: str) -> pd.DataFrame:
    """contact_id, <channel>_opt_out, _at, _source for the contacts with a statement on ``channel``."""
    flag, at, source = f"{channel}_opt_out", f"{channel}_opt_out_at", f"{channel}_opt_out_source"
    ins = said[~said["opted_out"] & said["at"].notna()]
    latest_in = ins.groupby("contact_id", sort=False)["at"].max().rename("latest_in")
    outs = said[said["opted_out"]].merge(latest_in, left_on="contact_id", right_index=True, how="left")
    standing = outs[outs["at"].isna() | outs["latest_in"].isna() | (outs["at"] >= outs["latest_in"])]
    # The earliest standing opt-out decides; undated ones come after every dated one.
    first_out = standing.assign(undated=standing["at"].isna()).sort_values(
        ["contact_id", "undated", "at", "origin", "source_id"], kind="stable"
    )
    first_out = first_out.drop_duplicates("contact_id")
    decided_out = pd.DataFrame(
        {"contact_id": first_out["contact_id"], flag: True, at: first_out["at"], source: first_out["origin"]}
    )
    # Contacts with no standing opt-out: false, named by their latest opt-in when there is one.
    rest = said[~said["contact_id"].isin(decided_out["contact_id"])]
    last_in = (
        rest[~rest["opted_out"] & rest["at"].notna()]
        .sort_values(["contact_id", "at", "origin", "source_id"], ascending=[True, False, True, True])
        .drop_duplicates("contact_id")
    )
    spoken = pd.DataFrame({"contact_id": rest["contact_id"].drop_duplicates()})
    decided_in = spoken.merge(
        pd.DataFrame({"contact_id": last_in["contact_id"], at: last_in["at"], source: last_in["origin"]}),
        on="contact_id",
        how="left",
    ).assign(**{flag: False})
    parts = [part for part in (decided_out, decided_in) if len(part)]
    if not parts:
        empty = pd.DataFrame({"contact_id": pd.Series(dtype=object), flag: pd.Series(dtype=object)})
        return empty.assign(**{at: pd.Series(dtype="datetime64[us, UTC]"), source: pd.Series(dtype=object)})
    decided = pd.concat(parts, ignore_index=True)
    decided[flag] = decided[flag].astype(object)
    return decided.loc[:, ["contact_id", flag, at, source]]


def golden_consent(people: pd.DataFrame, raw: pd.DataFrame | None) -> pd.DataFrame:
    """contact_id and `CONSENT_COLUMNS` for every contact of ``people`` (record_key, contact_id,
    source, object, source_id per record), read from the records' payloads in ``raw``."""
    contact_ids = people["contact_id"]
    if raw is None or raw.empty:
        return decide(_no_statements(), contact_ids)
    payloads = raw.loc[:, ["record_key", "payload"]].drop_duplicates("record_key")
    records = people.loc[:, ["record_key", "contact_id", "source", "object", "source_id"]].merge(
        payloads, on="record_key", how="inner"
    )
    said = statements(records).merge(
        records.loc[:, ["record_key", "contact_id", "source", "object", "source_id"]], on="record_key"
    )
    return decide(said, contact_ids)


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
