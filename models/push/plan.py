"""Reverse sync as plain data: what each destination record should change, in which calls, and how each
planned field ends. No database and no HTTP: the pipeline reads the inputs from the warehouse, hands the
batches to the clients, and writes the outcome to the ledger.

A plan is a diff against what the destination holds now (its latest extracted payload), so a dry run and a
real run plan the same rows, and a cycle after our own push plans nothing. Values are compared the way
identity resolution reads them back (`models.normalise.fields`, `models.normalise.contact_points`): emails in
normalised form, phones as E.164 read with the record's own country or its source's region, text cleaned but
case-sensitive, countries by ISO code. A destination that stores `+14155550123` as `(415) 555-0123` therefore
holds the same phone.

Records awaiting approval in Zoho (`$approval_state` other than `approved`) are never written.

A name is never sent to a record whose own first name disagrees with the golden contact's (a household
member's record sharing the landline): such rows are planned `invalid` with the two names in the reason.

Safe by default: only empty fields are filled. A non-empty value is replaced only for the fields
`PushConfig.overwrite` names for that destination, and a value the record already holds in another of
its email or phone fields counts as held. Golden values never clear a field.

Plan columns (`PLAN_COLUMNS`), one row per record and destination field:
    destination, object; record_id (None for a create); contact_id; parent_id (ClickSend list id,
    ClickFunnels workspace id, Linkflow channel id for creates); field (destination name);
    canonical_field; before_value (as the destination holds it); after_value (as it will be sent);
    reason (`fill_empty` | `overwrite_opt_in` | `create`); invalid_reason (None, or why the value is
    refused and never sent); if_unmodified_since (the record's modification time, Zoho only).

Final states of a row: `sent`, `rejected` (retried on later runs; `parked` after `max_attempts`),
`conflict` (the record changed since it was read: kept, planned again from the next extract),
`invalid` (refused before sending), `unchanged` (nothing was written: a dry run, or a record the run
never reached), `unconfirmed` (a create whose connection dropped after the request went out, or any
write answered 2xx with a body that is not JSON: the API may hold it; the next extract tells, and until
then it is not sent again). `undo` later moves a sent
row to `undone`.
"""

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import phonenumbers

from models.mappings.values import nested
from models.normalise.arrays import object_array, object_column
from models.normalise.contact_points import normalise_contact_points
from models.normalise.countries import country_code
from models.normalise.field_values import clean_text, parse_time, split_name
from models.normalise.fields import extract_frame, frame_from_payloads
from models.normalise.given_names import NameMatcher, name_tokens
from models.normalise.identifiers import normalise_emails, normalise_phone, normalise_phones
from models.normalise.layouts import layout
from models.push.custom_plan import custom_rows
from models.push.field_map import (
    CANONICAL_FIELDS,
    FIELD_MAPS,
    FULL_NAME,
    DestinationMap,
    FieldSpec,
    PushConfig,
    destination_map,
)
from models.push.required_fields import written_fields

PLAN_COLUMNS = (
    "destination",
    "object",
    "record_id",
    "contact_id",
    "parent_id",
    "field",
    "canonical_field",
    "before_value",
    "after_value",
    "reason",
    "invalid_reason",
    "if_unmodified_since",
)
OUTCOME_COLUMNS = (
    *PLAN_COLUMNS,
    "state",
    "code",
    "message",
    "retriable",
    "new_id",
    "result_modified_at",
    "result_version",
    "written_by",
)
STATES = ("sent", "rejected", "invalid", "conflict", "unchanged", "parked", "unconfirmed", "undone")

# ClickSend's default opt-out list (api-notes §3.4); its contacts are never written.
_OPT_OUT_LIST_NAME = "opt-out list"
_RECORD_KEY = ["destination", "object", "record_key", "contact_id"]
_PLANNED_COLUMNS = ("field", "canonical_field", "before_value", "after_value", "reason", "invalid_reason")
_TIME = pd.DatetimeTZDtype("us", "UTC")


# ------------------------------------------------------------------------------------------ planning


def plan_updates(targets: pd.DataFrame, golden: pd.DataFrame, config: PushConfig) -> pd.DataFrame:
    """The fields to push to existing destination records (`PLAN_COLUMNS`).

    targets: destination, object, record_id, contact_id, payload (the latest raw payload, a dict),
        modified_at (the record's own modification time, UTC, may be NaT).
    golden: contact_id plus CANONICAL_FIELDS, one row per contact.
    """
    gold = _golden(golden, config)
    parts = [
        _plan_records(str(dest), str(obj), group, gold, config)
        for (dest, obj), group in targets.groupby(["destination", "object"], sort=True)
    ]
    return _concat(parts)


def plan_creates(golden: pd.DataFrame, present: pd.DataFrame, config: PushConfig) -> pd.DataFrame:
    """Create plans for golden contacts a destination system does not hold, where
    `config.create_missing` opts in (`PLAN_COLUMNS`, reason `create`). A contact without a mandatory
    field, or a destination without its configured parent, gets rows with `invalid_reason` set, so
    the ledger says why.

    A contact held by any object of the system counts as held: a Zoho CRM contact is not created
    again as a lead, nor a ClickSend contact in a second list, since either would be a duplicate
    person in that system.

    present: contact_id, destination, object of every record linked to a contact.
    """
    gold = _golden(golden, config)
    parts = []
    for dest, obj in sorted(config.create_missing):
        mine = present["destination"] == dest
        missing = gold[~gold.index.isin(present.loc[mine, "contact_id"].astype(str))]
        parts.append(_plan_creates(dest, obj, missing, config))
    return _concat(parts)


def drop_settled(plan: pd.DataFrame, settled: pd.DataFrame) -> pd.DataFrame:
    """The plan without the rows the ledger has settled for the same record, field and value.

    settled: destination, object, record_id (None for a create), contact_id, field, after_value, and
    status (`parked` after its attempts, `invalid`, `undone` on purpose; `parked` when absent). A new
    golden value is a new row and is tried again; values are compared as the field compares them, so
    "United States" after "US" is the same value, not a new one.

    A value refused as `invalid` was refused under that plan's circumstances (a mandatory field the
    contact lacked, another person's record holding the value, the record's own first name
    disagreeing): it settles a row refused again, never one that may now be sent. A create goes whole
    or not at all: while any of its rows is not settled, every row of it is planned, so a create
    refused or parked before goes out with all its fields, not with only those that changed.
    """
    columns = ["destination", "object", "record_key", "contact_id", "field", "value_key"]
    status = settled["status"] if "status" in settled else pd.Series("parked", index=settled.index)
    right = _with_value_key(_with_record_key(settled.assign(status=status)))
    # Per key, whether it is settled whatever the new plan says of it (parked, undone), or only
    # while the new plan refuses it too (invalid).
    settles = right.assign(firm=right["status"].ne("invalid")).groupby(columns, dropna=False)["firm"]
    firm = settles.any().reset_index()
    found = _with_value_key(_with_record_key(plan))[columns].merge(firm, how="left", on=columns)["firm"]
    refused = plan["invalid_reason"].notna().to_numpy()
    hit = found.notna().to_numpy() & (found.eq(True).to_numpy() | refused)
    creates = plan["record_id"].isna().to_numpy()
    if creates.any():
        mine = plan.loc[creates, ["destination", "object", "contact_id"]].astype(str)
        whose = (mine["destination"] + "/" + mine["object"] + "/" + mine["contact_id"]).to_numpy()
        unsettled = pd.Series(~hit[creates]).groupby(whose).transform("any").to_numpy(dtype=bool)
        hit[np.flatnonzero(creates)[unsettled]] = False
    return plan[~hit].reset_index(drop=True)


def _with_value_key(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with value_key: after_value as its field compares it (countries by ISO code, text
    cleaned, emails in normal form, phones as written: they are E.164 or fixed national digits)."""
    compare = {
        (dest, obj, spec.field): spec.compare
        for (dest, obj), mapping in FIELD_MAPS.items()
        for spec in mapping.fields
    }
    kinds = np.fromiter(
        (
            compare.get((d, o, f), "text")
            for d, o, f in zip(frame["destination"], frame["object"], frame["field"], strict=True)
        ),
        dtype=object,
        count=len(frame),
    )
    values = frame["after_value"].to_numpy(dtype=object)
    keys = _map_distinct(values, lambda v: clean_text(v)[0] if isinstance(v, str) else v)
    countries = kinds == "country"
    keys[countries] = _map_distinct(keys[countries], lambda v: country_code(v) or v)
    emails = kinds == "email"
    keys[emails] = normalise_emails(pd.Series(values[emails], dtype=object))["email"].to_numpy(dtype=object)
    return frame.assign(value_key=_column(keys).fillna("").astype(str).to_numpy())


def _plan_records(
    dest: str, obj: str, group: pd.DataFrame, gold: pd.DataFrame, config: PushConfig
) -> pd.DataFrame:
    mapping = destination_map(dest, obj)
    keep = (
        group["contact_id"].astype(str).isin(gold.index)
        & ~_opted_out(dest, group["payload"], config)
        & ~_awaiting_approval(group["payload"])
    )
    group = group[keep.to_numpy()].reset_index(drop=True)
    if group.empty:
        return _empty_plan()
    values = frame_from_payloads(dest, obj, group["payload"])
    extracted = extract_frame(dest, obj, values)
    hint = extracted.records["country_hint"].to_numpy(dtype=object)
    region = np.where(pd.notna(hint), hint, config.region(dest)).astype(object)
    contact = gold.loc[pd.Index(group["contact_id"].astype(str))].reset_index(drop=True)
    long = _spec_rows(mapping.fields, values, extracted.records, contact)
    _golden_values(long)
    written = _map_distinct(long["before_value"], clean_text)
    cleaned = object_array([w[0] for w in written])
    long["empty"] = pd.isna(cleaned) & pd.isna(object_array([w[1] for w in written]))
    # Linkflow's one name is both what is written and what identity reads (split in two).
    names = long["canonical_field"].eq(FULL_NAME).to_numpy()
    long.loc[names, "visible"] = cleaned[names]

    # Phones come second: which phone a record holds depends on the country it is read with, and
    # this plan may change that country.
    overwrite = config.overwrite.get((dest, obj), frozenset())
    points = extracted.contact_points
    phones = long["compare"].eq("phone").to_numpy()
    emails = points["kind"].eq("email").to_numpy()
    first = _decide(long[~phones], _held(points[emails], region, config), overwrite)
    _format(first)
    region_after = _region_after(first, region, config.region(dest))
    second = _decide(long[phones], _held(points[~emails], region_after, config), overwrite)
    _format_phones(second, region_after)
    planned = pd.concat([first, second]).sort_index()
    if config.name_guard:
        _guard_names(planned, extracted.records["first_name"], contact["first_name"], config)

    custom = custom_rows(dest, obj, group["payload"], contact["custom"], config.mappings)
    planned = pd.concat([planned, custom], ignore_index=True) if len(custom) else planned
    rows = planned["row"].to_numpy()
    guarded = pd.to_datetime(group["modified_at"], utc=True) if mapping.guards_concurrency else None
    return _assemble(
        dest,
        obj,
        planned,
        record_id=_text(group["record_id"].to_numpy(dtype=object)[rows]),
        contact_id=_text(group["contact_id"].to_numpy(dtype=object)[rows]),
        parent_id=_parents(mapping, group["payload"].to_numpy(dtype=object)[rows]),
        if_unmodified_since=None if guarded is None else guarded.iloc[rows].reset_index(drop=True),
    )


def _plan_creates(dest: str, obj: str, missing: pd.DataFrame, config: PushConfig) -> pd.DataFrame:
    mapping = destination_map(dest, obj)
    if missing.empty:
        return _empty_plan()
    contact = missing.reset_index()
    no_values = pd.DataFrame(index=contact.index)
    long = _spec_rows(mapping.fields, no_values, no_values, contact)
    _golden_values(long)
    planned = long[pd.notna(long["golden_key"]).to_numpy()].copy()
    planned["reason"] = "create"
    phones = planned["compare"].eq("phone").to_numpy()
    first, second = planned[~phones].copy(), planned[phones].copy()
    _format(first)
    region = np.full(len(contact), config.region(dest), dtype=object)
    _format_phones(second, _region_after(first, region, config.region(dest)))
    planned = pd.concat([first, second]).sort_index()
    parent = config.create_parents.get((dest, obj))
    custom = custom_rows(dest, obj, [{}] * len(contact), contact["custom"], config.mappings, create=True)
    planned = pd.concat([planned, custom], ignore_index=True) if len(custom) else planned
    required = config.create_fields_required.get((dest, obj), frozenset())
    written = written_fields(dest, obj, config.mappings)
    refusal = _create_refusal(
        mapping, planned, parent, required=required, written=written, where=f"{dest}/{obj}"
    )
    planned["invalid_reason"] = planned["invalid_reason"].where(
        planned["invalid_reason"].notna(), refusal.reindex(planned["row"]).to_numpy()
    )
    rows = planned["row"].to_numpy()
    return _assemble(
        dest,
        obj,
        planned,
        record_id=np.full(len(planned), None, dtype=object),
        contact_id=_text(contact["contact_id"].to_numpy(dtype=object)[rows]),
        parent_id=np.full(len(planned), parent, dtype=object),
        if_unmodified_since=None,
    )


def _create_refusal(
    mapping: DestinationMap,
    planned: pd.DataFrame,
    parent: str | None,
    *,
    required: frozenset[str],
    written: Mapping[str, str],
    where: str,
) -> pd.Series:
    """Per contact row, why its create must not be sent (None when it may). ``required``: the
    destination's field names it refuses a create without (`PushConfig.create_fields_required`);
    ``written``: those a create may carry, each with the golden field it carries; ``where``: the
    destination, as the reasons name it."""
    sendable = planned[planned["invalid_reason"].isna().to_numpy()]
    rows = planned["row"].unique()
    refusal = pd.Series(None, index=rows, dtype=object)
    if mapping.create_needs_parent and parent is None:
        refusal[:] = "no parent configured for creates (PushConfig.create_parents)"
        return refusal
    unwritten = sorted(required - set(written))
    if unwritten:
        refusal[:] = (
            f"{where} requires {', '.join(unwritten)} on create (mandatory in its layouts), which "
            "contact-sync does not write: make it optional there, or map a golden field to it "
            "(CONTACT_SYNC_MAPPINGS)"
        )
        return refusal
    top = sendable["field"].astype(str).str.split(".", n=1).str[0]
    for name in sorted(required, reverse=True):
        covered = sendable.loc[top.eq(name).to_numpy(), "row"].unique()
        refusal[~np.isin(rows, covered)] = (
            f"missing {written[name]}: {where} requires {name} on create (mandatory in its layouts)"
        )
    for group in reversed(mapping.create_requires):
        covered = sendable.loc[sendable["canonical_field"].isin(group).to_numpy(), "row"].unique()
        refusal[~np.isin(rows, covered)] = f"missing mandatory {' or '.join(group)}"
    return refusal


def _spec_rows(
    specs: Sequence[FieldSpec], values: pd.DataFrame, records: pd.DataFrame, contact: pd.DataFrame
) -> pd.DataFrame:
    """One row per destination field and record, field after field: what the record holds, what
    identity reads, the golden value. Built as one frame, since a frame per field costs more than
    the rows of a small slice do.

    `visible` is the value identity resolution reads for this canonical field, which for text falls
    back to alternative paths (Zoho Other_City) when the written field is empty.
    """
    count = len(contact)
    absent = np.full(count, None, dtype=object)

    def stacked(frame: pd.DataFrame, names: Iterable[str]) -> pd.Series:
        parts = [frame[name].to_numpy(dtype=object) if name in frame else absent for name in names]
        return _column(np.concatenate(parts) if parts else np.empty(0, dtype=object))

    def repeated(items: Sequence[Any]) -> npt.NDArray[Any]:
        return np.repeat(np.asarray(items, dtype=object), count)

    return pd.DataFrame(
        {
            "row": np.tile(np.arange(count), len(specs)),
            "field": repeated([spec.field for spec in specs]),
            "canonical_field": repeated([spec.canonical for spec in specs]),
            "compare": repeated([spec.compare for spec in specs]),
            "style": repeated([spec.style for spec in specs]),
            "max_length": np.repeat(np.array([spec.max_length for spec in specs], dtype=np.int64), count),
            "before_value": stacked(values, [spec.field for spec in specs]),
            "visible": stacked(records, [spec.canonical for spec in specs]),
            "golden": stacked(contact, [spec.canonical for spec in specs]),
        }
    )


def _golden_values(long: pd.DataFrame) -> None:
    """Add golden_value (what would be sent, before destination formatting) and golden_key (what it is
    compared by); both None when the golden contact has no usable value."""
    value = np.full(len(long), None, dtype=object)
    compare = long["compare"].to_numpy(dtype=object)
    golden = long["golden"].to_numpy(dtype=object)
    points = np.isin(compare, ["email", "phone"])
    value[points] = golden[points]
    value[~points] = _map_distinct(golden[~points], lambda v: clean_text(v)[0])
    long["golden_value"] = _column(value)
    long["golden_key"] = _column(_compare_keys(value, compare))


def _compare_keys(
    values: npt.NDArray[np.object_], compare: npt.NDArray[np.object_]
) -> npt.NDArray[np.object_]:
    keys = values.copy()
    countries = compare == "country"
    keys[countries] = _map_distinct(values[countries], lambda v: country_code(v) or v)
    return keys


def _decide(long: pd.DataFrame, held: pd.DataFrame, overwrite: frozenset[str]) -> pd.DataFrame:
    """The rows to push, with their reason: fill what is empty, replace what is opted in, and leave
    alone whatever already holds the golden value."""
    compare = long["compare"].to_numpy(dtype=object)
    golden_key = long["golden_key"].to_numpy(dtype=object)
    has = pd.notna(golden_key)
    visible = _compare_keys(long["visible"].to_numpy(dtype=object), compare)
    same = has & (visible == golden_key)
    # Emails and phones count as held in any of the record's email or phone fields.
    points = np.isin(compare, ["email", "phone"])
    probe = pd.DataFrame(
        {"row": long["row"].to_numpy()[points], "kind": compare[points], "value": golden_key[points]}
    )
    hit = probe.merge(held, how="left", on=["row", "kind", "value"], indicator=True)["_merge"].eq("both")
    same[points] = hit.to_numpy() & has[points]
    empty = long["empty"].to_numpy(dtype=bool)
    fill = has & empty & ~same
    replace = has & ~empty & ~same & long["canonical_field"].isin(overwrite).to_numpy()
    chosen = fill | replace
    planned: pd.DataFrame = long.loc[chosen].copy()
    planned["reason"] = np.where(fill, "fill_empty", "overwrite_opt_in")[chosen]
    return planned


_NAME_FIELDS = ("first_name", "last_name", FULL_NAME)


def _guard_names(planned: pd.DataFrame, own: pd.Series, golden: pd.Series, config: PushConfig) -> None:
    """Refuse name rows for records whose own first name disagrees with the golden contact's: whoever
    that record is, it is not the person whose name would be written into it."""
    names = (
        planned["canonical_field"].isin(_NAME_FIELDS).to_numpy() & planned["invalid_reason"].isna().to_numpy()
    )
    if not names.any():
        return
    rows = planned["row"].to_numpy(dtype=np.int64)[names]
    own_names = own.to_numpy(dtype=object)[rows]
    golden_names = golden.to_numpy(dtype=object)[rows]
    agree = _name_matcher(config.nickname_pairs).agree(
        name_tokens(pd.Series(own_names, dtype=object)).to_numpy(dtype=object),
        name_tokens(pd.Series(golden_names, dtype=object)).to_numpy(dtype=object),
    )
    reasons = planned["invalid_reason"].to_numpy(dtype=object).copy()
    reasons[np.flatnonzero(names)[~agree]] = [
        f"the record's first name {mine!r} is not the golden contact's {theirs!r}: names never move "
        "between people"
        for mine, theirs in zip(own_names[~agree], golden_names[~agree], strict=True)
    ]
    planned["invalid_reason"] = reasons


@cache
def _name_matcher(nickname_pairs: tuple[tuple[str, str], ...]) -> NameMatcher:
    return NameMatcher(nickname_pairs)


def _held(points: pd.DataFrame, region: npt.NDArray[np.object_], config: PushConfig) -> pd.DataFrame:
    """row, kind, value: the usable emails or phones records hold, normalised as identity reads them."""
    rows = points["row"].to_numpy(dtype=np.int64)
    frame = points.rename(columns={"row": "record_key"}).assign(region=region[rows])
    normalised = normalise_contact_points(frame, alias_domains=config.alias_domains)
    usable = normalised[normalised["value"].notna().to_numpy()]
    held = pd.DataFrame(
        {
            "row": usable["record_key"].to_numpy(dtype=np.int64),
            "kind": _column(usable["kind"].to_numpy(dtype=object)),
            "value": _column(usable["value"].to_numpy(dtype=object)),
        }
    )
    return held.drop_duplicates()


def _format(planned: pd.DataFrame) -> None:
    """Add after_value and invalid_reason to planned rows other than phones."""
    after = planned["golden_value"].to_numpy(dtype=object).copy()
    invalid = np.full(len(planned), None, dtype=object)
    iso = planned["style"].eq("iso_country").to_numpy()
    after[iso] = _map_distinct(after[iso], country_code)
    invalid[iso & pd.isna(after)] = "no ISO 3166 code for this country"
    _finish(planned, after, invalid)


def _region_after(
    planned: pd.DataFrame, region: npt.NDArray[np.object_], default_region: str
) -> npt.NDArray[np.object_]:
    """Per record, the region its phones will be read in once the planned country is written."""
    after = region.copy()
    countries = planned[planned["canonical_field"].eq("country") & planned["invalid_reason"].isna()]
    codes = _map_distinct(countries["after_value"], country_code)
    after[countries["row"].to_numpy()] = np.where(pd.notna(codes), codes, default_region)
    return after


def _format_phones(planned: pd.DataFrame, region: npt.NDArray[np.object_]) -> None:
    """Add after_value and invalid_reason to planned phone rows, read back in `region` per record."""
    after = [
        _phone_out(e164, str(style), str(r))
        for e164, style, r in zip(
            planned["golden_value"], planned["style"], region[planned["row"].to_numpy()], strict=True
        )
    ]
    _finish(planned, object_array(after), np.full(len(planned), None, dtype=object))


def _finish(planned: pd.DataFrame, after: npt.NDArray[np.object_], invalid: npt.NDArray[np.object_]) -> None:
    limits = planned["max_length"].to_numpy(dtype=np.int64)
    lengths = np.fromiter(
        (len(a) if isinstance(a, str) else 0 for a in after), dtype=np.int64, count=len(after)
    )
    too_long = pd.isna(invalid) & (lengths > limits)
    invalid[too_long] = [f"longer than the destination's {n} characters" for n in limits[too_long]]
    planned["after_value"] = _column(after).to_numpy(dtype=object)
    planned["invalid_reason"] = _column(invalid).to_numpy(dtype=object)


def _phone_out(e164: str, style: str, region: str) -> str:
    """E.164, or for `cn_national` a Chinese number as its national digits when the record's region
    reads them back as the same number (otherwise E.164, which reads the same anywhere)."""
    if style != "cn_national" or not e164.startswith("+86"):
        return e164
    national = phonenumbers.national_significant_number(phonenumbers.parse(e164))
    return national if normalise_phone(national, region).value == e164 else e164


def full_name(first: str | None, last: str | None) -> str | None:
    """First and last name as one name that `split_name` reads back as the same two parts, or None.

    Chinese and Korean names are written surname first without a space; others "first last". A pair
    no single name reproduces (a last name alone, "Jan" + "van Dyke") is not written, because the
    record would then read back as a different person's name parts.
    """
    if not first:
        return None
    if not last:
        return first if split_name(first) == (first, None) else None
    for candidate in (f"{last}{first}", f"{first} {last}"):
        if split_name(candidate) == (first, last):
            return candidate
    return None


# ------------------------------------------------------------------------------------ writes


@dataclass(frozen=True, slots=True)
class RecordChange:
    """One record's write. payload is what the destination's write takes for it: the changed fields,
    plus `id` where the API wants it in the body (Zoho updates). A create has no record_id; its
    contact_id is the natural external id (Linkflow `POST /identifiers`)."""

    destination: str
    object: str
    record_id: str | None
    contact_id: str
    parent_id: str | None
    payload: dict[str, Any]
    if_unmodified_since: datetime | None

    @property
    def is_create(self) -> bool:
        return self.record_id is None


@dataclass(frozen=True, slots=True)
class Batch:
    """One write call. if_unmodified_since is the call's If-Unmodified-Since header (Zoho only)."""

    destination: str
    object: str
    changes: tuple[RecordChange, ...]
    if_unmodified_since: datetime | None

    @property
    def is_create(self) -> bool:
        return self.changes[0].is_create


def record_changes(plan: pd.DataFrame) -> list[RecordChange]:
    """One change per record from the plan's sendable rows (invalid rows are never sent)."""
    sendable = _with_record_key(plan[plan["invalid_reason"].isna().to_numpy()])
    if sendable.empty:
        return []
    codes = sendable.groupby(_RECORD_KEY, sort=True).ngroup().to_numpy()
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, codes[order][1:] != codes[order][:-1]])
    column = {name: sendable[name].to_numpy(dtype=object)[order] for name in sendable.columns}
    times = sendable["if_unmodified_since"].dt.to_pydatetime().to_numpy(dtype=object)[order]
    guarded = {key for key in FIELD_MAPS if FIELD_MAPS[key].guards_concurrency}
    changes = []
    for start, end in zip(starts, [*starts[1:], len(order)], strict=True):
        dest, obj, record_key = (
            column["destination"][start],
            column["object"][start],
            column["record_key"][start],
        )
        record_id = str(record_key) or None
        payload = nested(dict(zip(column["field"][start:end], column["after_value"][start:end], strict=True)))
        if record_id is not None and (dest, obj) in guarded:
            payload = {"id": record_id, **payload}
        since = times[start]
        changes.append(
            RecordChange(
                destination=str(dest),
                object=str(obj),
                record_id=record_id,
                contact_id=str(column["contact_id"][start]),
                parent_id=column["parent_id"][start],
                payload=payload,
                if_unmodified_since=None if pd.isna(since) else since,
            )
        )
    return changes


def batches(changes: Iterable[RecordChange], destination: str, obj: str) -> list[Batch]:
    """The calls that carry `changes` for one destination, at most `batch_size` records each.

    Creates and updates never share a call (Zoho upsert vs update). Zoho takes one If-Unmodified-Since
    per call, so a batch carries its latest record time: no record in it was modified after that
    time when it was extracted, and any edit made after that extract is later still, so Zoho refuses
    it with ALREADY_MODIFIED while untouched records go through (or get through on the client's resend
    when Zoho refuses the whole call). Records with no modification time go
    in calls without the header, since any header could refuse them for nothing. Creates the
    destination can find again by a matched value (a Zoho upsert's Email) go apart from those it
    cannot: the client repeats a call after a lost answer only when every record in it is findable.
    """
    mapping = destination_map(destination, obj)
    matched = [spec.field for spec in mapping.fields if spec.canonical in mapping.create_matches]

    def findable(change: RecordChange) -> bool:
        return any(change.payload.get(name) not in (None, "") for name in matched)

    mine = [c for c in changes if c.destination == destination and c.object == obj]
    groups = (
        [c for c in mine if c.is_create and findable(c)],
        [c for c in mine if c.is_create and not findable(c)],
        [c for c in mine if not c.is_create and c.if_unmodified_since is not None],
        [c for c in mine if not c.is_create and c.if_unmodified_since is None],
    )
    size = mapping.batch_size
    return [
        _batch(
            destination, obj, group[start : start + size], guarded=mapping.guards_concurrency and not create
        )
        for create, group in zip((True, True, False, False), groups, strict=True)
        for start in range(0, len(group), size)
    ]


def split_batch(batch: Batch) -> tuple[Batch, Batch]:
    """Halves of a batch the API refused as a whole, to send again and isolate the bad record.

    A refused batch of one is that record's own result; it cannot be split.
    """
    if len(batch.changes) < 2:
        raise ValueError("a batch of one record cannot be split: record its refusal as its result")
    middle = len(batch.changes) // 2
    guarded = batch.if_unmodified_since is not None
    return (
        _batch(batch.destination, batch.object, batch.changes[:middle], guarded=guarded),
        _batch(batch.destination, batch.object, batch.changes[middle:], guarded=guarded),
    )


def _batch(destination: str, obj: str, changes: Sequence[RecordChange], *, guarded: bool) -> Batch:
    times = [c.if_unmodified_since for c in changes if c.if_unmodified_since is not None]
    since = max(times) if guarded and times and len(times) == len(changes) else None
    return Batch(destination, obj, tuple(changes), since)


# ------------------------------------------------------------------------------------ ledger


@dataclass(frozen=True, slots=True)
class RecordResult:
    """How the destination answered for one record; conflict is Zoho's 412 ALREADY_MODIFIED."""

    destination: str
    object: str
    record_id: str | None
    contact_id: str
    ok: bool
    code: str | None = None
    message: str = ""
    retriable: bool = False
    conflict: bool = False
    new_id: str | None = None
    """The id a create was given at the destination, when the API told it."""
    stamp: "WriteStamp | None" = None
    """What the answer said of the record after our write (`write_stamp`), for the ledger."""

    @classmethod
    def of(
        cls,
        change: RecordChange,
        *,
        ok: bool,
        code: str | None = None,
        message: str = "",
        retriable: bool = False,
        conflict: bool = False,
        new_id: str | None = None,
        stamp: "WriteStamp | None" = None,
    ) -> "RecordResult":
        """The result for a change, keyed as its plan rows are."""
        return cls(
            change.destination,
            change.object,
            change.record_id,
            change.contact_id,
            ok,
            code,
            message,
            retriable,
            conflict,
            new_id if change.is_create else None,
            stamp if ok else None,
        )


@dataclass(frozen=True, slots=True)
class WriteStamp:
    """What a destination's answer to our write says of the record it left (all None when unsaid).

    modified_at: the record's own modification time after the write, read as identity reads it.
    version: Linkflow's ``ver`` after the write.
    written_by: Zoho's user the write was made as (the connection's own user when known, else the
        answer's ``Modified_By``).
    """

    modified_at: datetime | None = None
    version: int | None = None
    written_by: str | None = None


def write_stamp(
    destination: str, obj: str, record: Mapping[str, Any], own_user: str | None = None
) -> WriteStamp:
    """The stamp of one write from the record its answer shows (`connectors.writes.WriteResult.record`).

    The modification time goes through the same reading as the extract's (`models.normalise.layouts`),
    so the record read back later shows the very same instant when nobody touched it since.
    """
    spec = layout(destination, obj)
    modified_at, _ = parse_time(record.get(spec.modified_at), spec.time_format)
    version = record.get("ver") if destination == "linkflow" else None
    by = record.get("Modified_By") if destination in _ZOHO else None
    answered_by = by.get("id") if isinstance(by, Mapping) else None
    return WriteStamp(
        modified_at=modified_at,
        version=int(version) if isinstance(version, int) and not isinstance(version, bool) else None,
        written_by=own_user if destination in _ZOHO and own_user else _text_or_none(answered_by),
    )


_ZOHO = frozenset({"zoho_crm", "zoho_bigin"})


def _text_or_none(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def outcome_states(plan_rows: pd.DataFrame, write_results: Iterable[RecordResult]) -> pd.DataFrame:
    """Every plan row with exactly one state (`OUTCOME_COLUMNS`): invalid rows stay `invalid`; rows of
    a record with no result are `unchanged`; else `sent`, `conflict` or `rejected` per its result."""
    columns = [f.name for f in fields(RecordResult) if f.name != "stamp"]
    rows = []
    for result in write_results:
        row = {name: getattr(result, name) for name in columns}
        stamp = result.stamp or WriteStamp()
        row.update(
            result_modified_at=stamp.modified_at, result_version=stamp.version, written_by=stamp.written_by
        )
        rows.append(row)
    stamp_columns = ["result_modified_at", "result_version", "written_by"]
    results = pd.DataFrame(rows, columns=[*columns, *stamp_columns], dtype=object)
    results = _with_record_key(results).drop(columns="record_id")
    if results.duplicated(_RECORD_KEY).any():
        raise ValueError("more than one result for the same record")
    merged = _with_record_key(plan_rows).merge(results, how="left", on=_RECORD_KEY, indicator=True)
    invalid = merged["invalid_reason"].notna().to_numpy()
    answered = merged["_merge"].eq("both").to_numpy()
    ok = merged["ok"].eq(True).to_numpy()
    conflict = merged["conflict"].eq(True).to_numpy()
    merged["state"] = np.select(
        [invalid, ~answered, ok, conflict], ["invalid", "unchanged", "sent", "conflict"], default="rejected"
    )
    quiet = invalid | ~answered
    merged["code"] = merged["code"].astype(object).where(~quiet, None)
    merged["message"] = merged["message"].astype(object).where(~quiet, None)
    merged["retriable"] = merged["retriable"].eq(True) & ~quiet
    merged["new_id"] = merged["new_id"].astype(object).where(ok & ~invalid, None)
    for name in ("result_modified_at", "result_version", "written_by"):
        merged[name] = merged[name].astype(object).where(ok & ~invalid & merged[name].notna(), None)
    return merged[list(OUTCOME_COLUMNS)]


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """One plan row's state after its record's answer, as `outcome_states` gives it, for a row
    known by its position in `SendableRows`."""

    position: int
    state: str
    result: RecordResult | None
    """Its record's result (None: the record had none, the row is ``unchanged``)."""


@dataclass(frozen=True, slots=True)
class SendableRows:
    """A recorded plan part's sendable rows as plain arrays, with each record's row positions (a
    create's by its contact), so each call finds its rows by lookup and answers them from one result
    per record: a part of N records sent one record per call costs N lookups, where filtering and
    merging the whole part per call cost N times the part."""

    ledger_id: npt.NDArray[np.int64]
    record_id: npt.NDArray[np.object_]
    """As planned: None for a create."""
    record_key: npt.NDArray[np.object_]
    """record_id as text, "" for a create (the key results are matched by, with contact_id)."""
    contact_id: npt.NDArray[np.object_]
    field: npt.NDArray[np.object_]
    after_value: npt.NDArray[np.object_]
    by_record: dict[str, npt.NDArray[np.intp]]
    by_contact: dict[str, npt.NDArray[np.intp]]

    @classmethod
    def of(cls, plan: pd.DataFrame) -> "SendableRows":
        """The rows of ``plan`` (`PLAN_COLUMNS` and ``ledger_id``) that can be sent (no invalid_reason)."""
        sendable = _with_record_key(plan[plan["invalid_reason"].isna().to_numpy()])
        record_key = sendable["record_key"].to_numpy(dtype=object)
        contact_id = sendable["contact_id"].astype(str).to_numpy(dtype=object)
        positions = np.arange(len(sendable), dtype=np.intp)
        creates = record_key == ""
        return cls(
            ledger_id=sendable["ledger_id"].to_numpy(dtype=np.int64),
            record_id=sendable["record_id"].to_numpy(dtype=object),
            record_key=record_key,
            contact_id=contact_id,
            field=sendable["field"].to_numpy(dtype=object),
            after_value=sendable["after_value"].to_numpy(dtype=object),
            by_record=_positions_by(record_key[~creates], positions[~creates]),
            by_contact=_positions_by(contact_id[creates], positions[creates]),
        )

    def positions(self, changes: Sequence[RecordChange]) -> npt.NDArray[np.intp]:
        """The positions of the changes' rows: an update's by its record id, a create's by its contact."""
        found = [
            self.by_contact.get(change.contact_id)
            if change.is_create
            else self.by_record.get(str(change.record_id))
            for change in changes
        ]
        parts = [part for part in found if part is not None]
        return np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.intp)

    def outcomes(self, positions: npt.NDArray[np.intp], results: Iterable[RecordResult]) -> list[RowOutcome]:
        """Each row's state, as `outcome_states` decides it for sendable rows: ``unchanged`` when its
        record has no result, else ``sent``, ``conflict`` or ``rejected`` by the record's result."""
        answers: dict[tuple[str, str], RecordResult] = {}
        for result in results:
            key = (result.record_id or "", result.contact_id)
            if key in answers:
                raise ValueError("more than one result for the same record")
            answers[key] = result
        outcomes = []
        for position in positions.tolist():
            answer = answers.get((self.record_key[position], self.contact_id[position]))
            if answer is None:
                state = "unchanged"
            else:
                state = "sent" if answer.ok else "conflict" if answer.conflict else "rejected"
            outcomes.append(RowOutcome(position, state, answer))
        return outcomes


def _positions_by(
    keys: npt.NDArray[np.object_], positions: npt.NDArray[np.intp]
) -> dict[str, npt.NDArray[np.intp]]:
    """key -> the positions holding it, in order (one sort, no per-key scan)."""
    if not len(keys):
        return {}
    codes, uniques = pd.factorize(keys)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return dict(zip(uniques.tolist(), np.split(positions[order], bounds), strict=True))


def next_attempt_state(previous_attempts: int, state: str, max_attempts: int) -> str:
    """The state to record for a row after this run: a rejection is retried on later runs until it has
    been tried `max_attempts` times, then `parked` with its reason. Other states pass through."""
    if state != "rejected":
        return state
    return "parked" if previous_attempts + 1 >= max_attempts else "rejected"


# ------------------------------------------------------------------------------------ helpers


def _golden(golden: pd.DataFrame, config: PushConfig) -> pd.DataFrame:
    """Golden contacts indexed by contact_id (text), missing values as None, plus full_name.

    Emails and phones are normalised again (in bulk, so it costs little): the warehouse holds them
    normalised already, and anything else would be compared in a form no destination holds.
    """
    frame = pd.DataFrame(
        {name: _column(golden[name].to_numpy(dtype=object)) for name in ("contact_id", *CANONICAL_FIELDS)}
    )
    frame["custom"] = golden["custom"].to_numpy(dtype=object) if "custom" in golden else None
    frame["contact_id"] = frame["contact_id"].astype(str)
    if frame["contact_id"].duplicated().any():
        raise ValueError("golden holds the same contact_id more than once")
    emails = normalise_emails(frame["email"], alias_domains=config.alias_domains)
    frame["email"] = emails["email"].to_numpy(dtype=object)
    phones = normalise_phones(pd.DataFrame({"raw": frame["phone"], "region": None}, dtype=object))
    frame["phone"] = phones["phone"].to_numpy(dtype=object)
    frame[FULL_NAME] = [
        full_name(first, last) for first, last in zip(frame["first_name"], frame["last_name"], strict=True)
    ]
    return frame.set_index("contact_id")


def _opted_out(dest: str, payloads: pd.Series, config: PushConfig) -> pd.Series:
    if dest != "clicksend":
        return pd.Series(False, index=payloads.index)
    return payloads.map(
        lambda p: (
            str(p.get("list_id")) in config.opt_out_lists
            or str(p.get("list_name") or "").strip().casefold() == _OPT_OUT_LIST_NAME
        )
    ).astype(bool)


def _awaiting_approval(payloads: pd.Series) -> pd.Series:
    """Zoho records not approved yet (``$approval_state`` other than ``approved``): an approver has
    still to accept or reject them, and a write would change what they are deciding on."""
    return payloads.map(lambda p: p.get("$approval_state") not in (None, "approved")).astype(bool)


def _parents(mapping: DestinationMap, payloads: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    path = mapping.parent_path
    if path is None:
        return np.full(len(payloads), None, dtype=object)
    return _text(np.fromiter((p.get(path) for p in payloads), dtype=object, count=len(payloads)))


def _assemble(
    dest: str,
    obj: str,
    planned: pd.DataFrame,
    *,
    record_id: npt.NDArray[np.object_],
    contact_id: npt.NDArray[np.object_],
    parent_id: npt.NDArray[np.object_],
    if_unmodified_since: pd.Series | None,
) -> pd.DataFrame:
    count = len(planned)
    since = pd.Series(pd.NaT, index=range(count)) if if_unmodified_since is None else if_unmodified_since
    columns = {
        "destination": np.full(count, dest, dtype=object),
        "object": np.full(count, obj, dtype=object),
        "record_id": record_id,
        "contact_id": contact_id,
        "parent_id": parent_id,
        **{name: planned[name].to_numpy(dtype=object) for name in _PLANNED_COLUMNS},
    }
    frame = pd.DataFrame({name: _column(values) for name, values in columns.items()})
    frame["if_unmodified_since"] = pd.to_datetime(since, utc=True).astype(_TIME).array
    return frame


def _empty_plan() -> pd.DataFrame:
    frame = pd.DataFrame({name: pd.Series(dtype=object) for name in PLAN_COLUMNS})
    return frame.astype({"if_unmodified_since": _TIME})


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [part for part in parts if not part.empty]
    return pd.concat(parts, ignore_index=True) if parts else _empty_plan()


def _with_record_key(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with record_key: record_id as text, "" for a create (merge keys cannot be None)."""
    key = frame["record_id"].astype(object)
    return frame.assign(record_key=key.where(key.notna(), "").astype(str))


def _text(values: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    return object_array([None if _missing(v) else str(v) for v in values])


def _map_distinct(values: Any, fn: Callable[[Any], Any]) -> npt.NDArray[np.object_]:
    """`fn` once per distinct value. Text goes through pandas' hashing; anything else (numbers, where
    1 and True would share a hash, or unhashable lookups) is taken one value at a time."""
    array = np.asarray(values, dtype=object)
    if pd.api.types.infer_dtype(array, skipna=True) in ("string", "empty"):
        codes, uniques = pd.factorize(array)
        return object_array([*(fn(u) for u in uniques), fn(None)])[codes]
    return object_array([fn(None if _missing(v) else v) for v in array])


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _column(values: npt.NDArray[np.object_]) -> pd.Series:
    """An object column with missing values as None: left to itself pandas infers a string column,
    which turns None into NaN."""
    missing = pd.isna(values)
    if missing.any():
        values = values.copy()
        values[missing] = None
    return object_column(values)
