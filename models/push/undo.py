"""Undoing one reverse-sync run, as plain data: which fields to put back, which created records to
delete, and which writes to leave alone and why. No database and no HTTP.

Undo is itself a write to systems people use, so it is held to the same rule as a push: never
overwrite by surprise. A field goes back to what it held before our write only while it still holds
what we wrote: when the destination has been read since and shows another value, or a later run
wrote the same field, the field is kept and the reason recorded. A record we created is deleted only
while every field we gave it still holds our value; Linkflow has no delete, so its creates are kept.

Where the destination has not been read since our write, we cannot see an outside edit; Zoho writes
then carry `If-Unmodified-Since` (the record's last known modification, else the time of our write),
so Zoho refuses to undo over an edit made after ours. The other APIs take no such condition.
"""

import math
from datetime import datetime

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.mappings.values import at_path
from models.normalise.compare import holds_value
from models.normalise.field_values import clean_text
from models.normalise.fields import frame_from_payloads
from models.push.consent import CONSENT_REASON
from models.push.field_map import Compare, destination_map

#: Destinations whose API can delete a record (api-notes: Zoho `DELETE /{module}?ids=`, ClickFunnels
#: `DELETE /contacts/{id}`, ClickSend `DELETE /lists/{list_id}/contacts/{id}`; Linkflow has none).
DELETABLE = frozenset({"clickfunnels", "clicksend", "zoho_crm", "zoho_bigin"})

WRITTEN_COLUMNS = (
    "ledger_id",
    "run_id",
    "destination",
    "object",
    "record_id",
    "parent_id",
    "contact_id",
    "field",
    "before_value",
    "after_value",
    "reason",
    "sent_at",
)
"""The run's sent ledger rows (`sent_at` is when each was marked sent)."""

CURRENT_COLUMNS = ("destination", "object", "record_id", "payload", "last_seen_at", "modified_at", "deleted")
"""The warehouse's latest copy of each record written (absent when never read)."""

UNDO_COLUMNS = (
    *WRITTEN_COLUMNS,
    "modified_at",
    "action",
    "restore_value",
    "keep_reason",
    "if_unmodified_since",
)
"""`action`: `restore` (write `restore_value` back), `delete` (a record we created), or `keep`."""


def plan_undo(written: pd.DataFrame, later: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """One row per written field (`UNDO_COLUMNS`), each with its action.

    later: destination, object, record_id, field, run_id of fields other runs sent after these.
    """
    if written.empty:
        return pd.DataFrame(columns=list(UNDO_COLUMNS))
    plan = written.loc[:, list(WRITTEN_COLUMNS)].reset_index(drop=True).astype({"record_id": str})
    key = ["destination", "object", "record_id"]
    plan = plan.merge(
        current.loc[:, list(CURRENT_COLUMNS)].astype({"record_id": str}), on=key, how="left", validate="m:1"
    )
    sent_at = pd.to_datetime(plan["sent_at"], utc=True)
    seen_at = pd.to_datetime(plan["last_seen_at"], utc=True)
    read_since = (seen_at > sent_at).fillna(False).to_numpy(dtype=bool)
    holds = _holds_what_we_wrote(plan)
    gone = plan["deleted"].eq(True).to_numpy(dtype=bool)

    later_runs = (
        later.astype({"record_id": str})
        .groupby([*key, "field"], sort=False)["run_id"]
        .first()
        .rename("later_run")
        .reset_index()
    )
    plan = plan.merge(later_runs, on=[*key, "field"], how="left")
    creates = plan["reason"].eq("create").to_numpy(dtype=bool)

    keep = np.full(len(plan), None, dtype=object)
    changed = read_since & ~holds & ~gone
    keep[changed] = "changed at the destination since it was written"
    keep[read_since & gone] = "the record is gone at the destination"
    rewritten = plan["later_run"].notna().to_numpy(dtype=bool)
    later_text = plan["later_run"].to_numpy(dtype=object)
    keep[rewritten & ~creates] = [
        f"written again by run {run}; undo that run first" for run in later_text[rewritten & ~creates]
    ]
    # A created record goes as a whole or not at all.
    record_keys = pd.Series(
        list(zip(plan["destination"], plan["object"], plan["record_id"], strict=True)), dtype=object
    )
    touched = record_keys[creates & (changed | rewritten)]
    whole = creates & record_keys.isin(set(touched)).to_numpy(dtype=bool)
    keep[whole & pd.isna(keep)] = "another field of the record it created changed since"
    no_delete = creates & ~plan["destination"].isin(DELETABLE).to_numpy(dtype=bool)
    keep[no_delete] = [
        f"{dest} has no delete in its API; remove it by hand" for dest in plan["destination"][no_delete]
    ]
    keep[creates & plan["record_id"].isin(["", "None"]).to_numpy(dtype=bool)] = (
        "the API never said the new record's id"
    )

    # Consent moves one way only: an opt-out we carried, or one a create carried, stays
    # (`models.push.consent`); a create carrying one is still deleted as a whole.
    consent = plan["reason"].eq(CONSENT_REASON).to_numpy(dtype=bool)
    keep[consent] = "an opt-out is never taken back: consent moves in the restrictive direction only"

    action = np.where(creates, "delete", "restore").astype(object)
    action[pd.notna(keep)] = "keep"
    # Object columns throughout: pandas would store a text column's None as NaN.
    plan["action"] = pd.Series(action, index=plan.index, dtype=object)
    plan["keep_reason"] = pd.Series(keep, index=plan.index, dtype=object)
    plan["restore_value"] = pd.Series(
        [
            _empty_form(dest) if _missing(before) else before
            for dest, before in zip(plan["destination"], plan["before_value"], strict=True)
        ],
        index=plan.index,
        dtype=object,
    )
    plan["if_unmodified_since"] = _guard_times(plan, read_since, sent_at)
    plan["parent_id"] = pd.Series(_parents(plan), index=plan.index, dtype=object)
    return plan.loc[:, list(UNDO_COLUMNS)]


def _holds_what_we_wrote(plan: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """Per row, whether the latest payload holds our value (compared as the destination field reads)."""
    holds = np.zeros(len(plan), dtype=bool)
    present = plan["payload"].notna().to_numpy(dtype=bool)
    for (dest, obj), group in plan[present].groupby(["destination", "object"], sort=False):
        values = frame_from_payloads(str(dest), str(obj), group["payload"].reset_index(drop=True))
        compare = {spec.field: spec.compare for spec in destination_map(str(dest), str(obj)).fields}
        for position, (index, field, ours, payload) in enumerate(
            zip(group.index, group["field"], group["after_value"], group["payload"], strict=True)
        ):
            # A mapped field (the mappings file) is read by its own path, nested or not.
            now = values[field].iloc[position] if field in values.columns else at_path(payload, field)
            holds[index] = _same(compare.get(str(field), "text"), now, ours)
    return holds


def _same(compare: Compare, held: object, ours: object) -> bool:
    """Whether the destination still holds our value, read the way the field is compared on push."""
    return holds_value(compare, held, ours)


def _guard_times(
    plan: pd.DataFrame, read_since: npt.NDArray[np.bool_], sent_at: pd.Series
) -> list[datetime | None]:
    """Zoho's If-Unmodified-Since per row: the modification we last saw if read since, else our write."""
    modified = pd.to_datetime(plan["modified_at"], utc=True)
    times: list[datetime | None] = []
    for dest, obj, seen, mod, sent in zip(
        plan["destination"], plan["object"], read_since, modified, sent_at, strict=True
    ):
        chosen = mod if seen and not pd.isna(mod) else sent
        guarded = destination_map(str(dest), str(obj)).guards_concurrency
        times.append(chosen.to_pydatetime() if guarded and not pd.isna(chosen) else None)
    return times


def _parents(plan: pd.DataFrame) -> list[object]:
    """The ledger's parent, else the one the record's payload names (rows written before the ledger
    kept it): a ClickSend update is addressed inside its list."""
    parents: list[object] = []
    for dest, obj, parent, payload in zip(
        plan["destination"], plan["object"], plan["parent_id"], plan["payload"], strict=True
    ):
        path = destination_map(str(dest), str(obj)).parent_path
        named = payload.get(path) if path and isinstance(payload, dict) else None
        chosen = parent if not _missing(parent) else named
        parents.append(None if _missing(chosen) else str(chosen))
    return parents


def _empty_form(destination: str) -> str | None:
    """How a field is emptied: ClickSend's records hold empty fields as "" (every sample in its spec),
    so that is what goes back; the others take null."""
    return "" if destination == "clicksend" else None


def _missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and clean_text(value)[0] is None
