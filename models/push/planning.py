"""One slice of one destination's plan, read from the warehouse and made: the unit reverse sync plans in.

A slice is self-contained: its inputs are plain data (`SliceTask`) and it only reads, so it knows
nothing of Dagster, of the sends that follow it or of the thread it runs in, and a test or a
benchmark can plan a slice on its own.
"""

import time
from dataclasses import dataclass, replace

import pandas as pd
from sqlalchemy.engine import Engine

from models.push import ledger as push_ledger
from models.push.consent import guard_creates, plan_consent
from models.push.field_map import PushConfig, destination_map
from models.push.plan import PLAN_COLUMNS, drop_settled, plan_creates, plan_updates
from models.push.shared_identifiers import (
    holders,
    refuse_shared_creates,
    refuse_shared_updates,
    sent_creates,
    suppressed_values,
    without_junk,
)


@dataclass(frozen=True)
class SliceTask:
    """What one slice of a plan covers: a destination, the settings it is planned under and its
    golden contacts (``scope``); for an incremental plan, the destination records whose plan can have
    changed (``records``) and the contacts it may have to create (``candidates``)."""

    source: str
    object: str
    config: PushConfig
    scope: push_ledger.ContactScope
    records: frozenset[str] | None = None
    candidates: frozenset[str] | None = None


@dataclass(frozen=True)
class SlicePlan:
    """A slice's plan rows (``record_modified_at`` included) and what making it loaded and took."""

    plan: pd.DataFrame
    targets_loaded: int
    contacts_loaded: int
    seconds: float


def plan_slice(engine: Engine, task: SliceTask) -> SlicePlan:
    """The plan of one slice of contacts: of all their records, or, for an incremental plan, of
    ``task.records`` and of creates for ``task.candidates`` only. Every read is scoped to them."""
    started = time.perf_counter()
    source, obj, config, scope = task.source, task.object, task.config, task.scope
    targets = push_ledger.load_targets(engine, source, obj, scope, task.records)
    # A junk identifier (shared by strangers) is no one's: never filled, overwritten or created with.
    golden = without_junk(push_ledger.load_golden(engine, scope), suppressed_values(engine))
    plan = plan_updates(targets.drop(columns="last_seen_at"), golden, config)
    if config.consent_push:
        consent = plan_consent(targets.drop(columns="last_seen_at"), golden, PLAN_COLUMNS)
        plan = pd.concat([df for df in (plan, consent) if len(df)] or [plan], ignore_index=True)
    plan = _refuse_shared_updates(engine, task, plan, golden)
    # The ledger is read only for a plan with rows: most slices of a scheduled run plan none.
    if len(plan):
        plan = _without_in_flight(plan, push_ledger.in_flight(engine, targets, source, obj, narrow=True))
    if (source, obj) in config.create_missing:
        creates = _plan_creates(engine, task, golden)
        plan = pd.concat([plan, creates], ignore_index=True)
    if len(plan):
        plan = drop_settled(plan, push_ledger.settled(engine, source, obj, scope))
    # Each write remembers when its record was last modified before it, so survivorship can tell the
    # modification our write makes from a person's edit.
    modified = targets.assign(record_id=targets["record_id"].astype(str)).drop_duplicates("record_id")
    by_id = modified.set_index("record_id")["modified_at"]
    # pandas cannot map through an empty series of times (it casts it to float first): a destination
    # that holds no records yet (an empty Zoho module) has no time to look up.
    plan["record_modified_at"] = plan["record_id"].astype(str).map(by_id) if len(by_id) else pd.NaT
    return SlicePlan(plan, len(targets), len(golden), round(time.perf_counter() - started, 3))


def _without_in_flight(plan: pd.DataFrame, pending: pd.DataFrame) -> pd.DataFrame:
    """``plan`` without the fields of ``pending`` (record_id, field): a write sent whose outcome is not
    read back yet is not planned again."""
    if not len(pending):
        return plan
    flight = plan[["record_id", "field"]].astype(str).merge(pending.astype(str), how="left", indicator=True)
    return plan[~flight["_merge"].eq("both").to_numpy()].reset_index(drop=True)


def _plan_creates(engine: Engine, task: SliceTask, golden: pd.DataFrame) -> pd.DataFrame:
    """Creates for the slice's contacts the destination system does not hold, leaving out those whose
    create may already be there but has not been read back yet; only among ``task.candidates`` when
    given (an incremental plan's)."""
    source, obj, scope = task.source, task.object, task.scope
    waiting = push_ledger.creates_in_flight(engine, source, obj, scope)
    ids = golden["contact_id"].astype(str)
    keep = ~ids.isin(waiting)
    if task.candidates is not None:
        keep &= ids.isin(task.candidates)
    candidates = golden[keep.to_numpy()]
    only_here = replace(task.config, create_missing=frozenset({(source, obj)}))
    held = push_ledger.held_contacts(
        engine,
        source,
        scope
        if task.candidates is None
        else push_ledger.ContactScope(ids=frozenset(candidates["contact_id"].astype(str))),
    )
    creates = guard_creates(
        plan_creates(candidates, held, only_here), candidates, consent_push=task.config.consent_push
    )
    return _refuse_shared_creates(engine, task, creates, candidates)


def _refuse_shared_updates(
    engine: Engine, task: SliceTask, plan: pd.DataFrame, golden: pd.DataFrame
) -> pd.DataFrame:
    """``plan`` without the writes of an email or mobile another person's record there holds, where
    the destination would refuse or merge them (`models.push.shared_identifiers`)."""
    mapping = destination_map(task.source, task.object)
    if not mapping.identity_fields or plan.empty:
        return plan
    writing = (plan["canonical_field"].isin(mapping.identity_fields) & plan["record_id"].notna()).to_numpy()
    if not writing.any():
        return plan
    contacts = plan.loc[writing, "contact_id"].astype(str)
    mine = golden[golden["contact_id"].astype(str).isin(contacts).to_numpy()]
    held = holders(engine, task.source, task.object, mine, mapping.identity_fields)
    return refuse_shared_updates(plan, mine, held, mapping.identity_fields, mapping.shared_value)


def _refuse_shared_creates(
    engine: Engine, task: SliceTask, creates: pd.DataFrame, golden: pd.DataFrame
) -> pd.DataFrame:
    """``creates`` without those that would be matched to a record someone else holds
    (`models.push.shared_identifiers`)."""
    matches = destination_map(task.source, task.object).create_matches
    going = creates[(creates["record_id"].isna() & creates["invalid_reason"].isna()).to_numpy()]
    if going.empty or not matches:
        return creates
    mine = golden[golden["contact_id"].astype(str).isin(going["contact_id"].astype(str)).to_numpy()]
    keyed = going[going["canonical_field"].isin(matches).to_numpy()]
    sent = push_ledger.creates_sent(
        engine,
        task.source,
        task.object,
        set(keyed["field"].astype(str)),
        sorted(set(keyed["after_value"].dropna().astype(str))),
    )
    held = holders(engine, task.source, task.object, mine, matches)
    return refuse_shared_creates(creates, mine, held, sent_creates(sent), matches)
