"""Reverse-sync assets, group ``reverse_sync``: golden fields pushed back to each destination.

``push_destination`` is the plain function: plan against what the destination holds (its latest
extract), record the plan in the ledger, and, unless it is a dry run, send it in the batch sizes the
API allows, recording each field's final state. The assets wrap it, one per writable destination,
downstream of the canonical checks (which block them when they fail).
"""

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial

import dagster as dg
import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy.engine import Engine

from connectors.clicksend import is_opt_out_list
from connectors.errors import AmbiguousWriteError, ConnectorError, RetriableError
from connectors.factory import Clients
from connectors.stop import STOP, StopRequested
from connectors.writes import WriteResult
from models.push import ledger as push_ledger
from models.push.field_map import PushConfig
from models.push.plan import (
    Batch,
    RecordChange,
    RecordResult,
    SendableRows,
    WriteStamp,
    batches,
    next_attempt_state,
    record_changes,
    split_batch,
    write_stamp,
)
from models.push.planning import SliceTask, plan_slice
from models.push.required_fields import create_requirements
from models.push.whole_objects import completed_from_warehouse
from models.warehouse.locks import SourceBusyError, source_lock
from models.warehouse.store import RawStore, StreamKey
from models.warehouse.tables import utcnow
from pipelines.canonical import phone_regions
from pipelines.clients import clients_for, zoho_module
from pipelines.late_arrivals import LateArrivals
from pipelines.overlap import WAREHOUSE_WRITER_TAG
from pipelines.progress import NO_PROGRESS, ProgressObserver, StreamProgress
from pipelines.resources import RunOptionsResource, SyncSettingsResource, WarehouseResource
from pipelines.settings import Settings
from pipelines.stopping import end_run_stopped, run_in_threads, stops_cleanly, with_statements_stopped
from pipelines.streams import STREAMS, Stream

ZOHO_MODULES = {
    ("zoho_crm", "lead"): "Leads",
    ("zoho_crm", "contact"): "Contacts",
    ("zoho_bigin", "contact"): "Contacts",
}


@dataclass
class PushReport:
    planned: int
    sent: int
    rejected: int
    invalid: int
    conflict: int
    unchanged: int
    requests: int
    created: int = 0
    """Records created (each carries several sent fields)."""
    unconfirmed: int = 0
    """Fields whose write's outcome is unknown (a create's answer lost, any write's answer unreadable);
    the next extract tells whether they landed."""
    not_sent: int = 0
    """Fields left unsent because the run was asked to stop (ledger ``unchanged``, planned again)."""
    stopped: bool = False
    """The run was asked to stop before this destination's last write."""
    plan: str = "full"
    """``full``: every record and contact was planned (first plan, settings changed, --full-refresh);
    ``incremental``: only those whose plan can have changed since the last (`PlanWatermark`)."""
    targets_loaded: int = 0
    """Destination records the plan loaded and compared."""
    contacts_loaded: int = 0
    """Golden contacts the plan loaded (those of the records, and the create candidates)."""
    plan_seconds: float = 0.0
    """Time spent loading and planning, before the ledger write and any request."""

    def as_metadata(self) -> dict[str, int | float | str]:
        metadata: dict[str, int | float | str] = {
            key: value for key, value in self.__dict__.items() if key != "stopped"
        }
        metadata.update(done=self.sent, failed=self.rejected + self.invalid + self.conflict)
        if self.stopped:
            metadata["status"] = "stopped"
        return metadata


UNCONFIRMED = "UNCONFIRMED"
"""Our code for a write whose outcome is unknown (``AmbiguousWriteError``): a create whose answer was
lost, or any write answered 2xx with a body that is not JSON. It may have been applied."""
RECORD_GONE = "RECORD_GONE"
"""Our code for an update answered 404: the record was deleted at the source."""


def _result(change: RecordChange, written: WriteResult, own_user: str | None = None) -> RecordResult:
    return RecordResult.of(
        change,
        ok=written.ok,
        code=RECORD_GONE if written.gone else written.code,
        message=written.message,
        retriable=written.retriable,
        conflict=written.conflict,
        new_id=written.record_id,
        stamp=write_stamp(change.destination, change.object, written.record, own_user)
        if written.ok
        else None,
    )


def _failed(change: RecordChange, error: ConnectorError) -> RecordResult:
    code = UNCONFIRMED if isinstance(error, AmbiguousWriteError) else error.code
    return RecordResult.of(
        change, ok=False, code=code, message=str(error), retriable=isinstance(error, RetriableError)
    )


def send_batch(clients: Clients, batch: Batch, own_user: str | None = None) -> list[RecordResult]:
    """One call per batch (Zoho) or per record (the others); a Zoho batch refused as a whole is split
    in halves until the bad record is alone (the client sorts out a refusal by If-Unmodified-Since
    itself, and fails when it cannot, e.g. a product that ignores ``ids``: halves then find it). A
    batch whose outcome is unknown (``AmbiguousWriteError``: an answer that could not be read) is not
    split: every record in it is ``unconfirmed`` until the next extract reads it back.
    ``own_user``: the Zoho user the connection acts as, kept with each write (`own_zoho_users`)."""
    key = (batch.destination, batch.object)
    if key in ZOHO_MODULES:
        client = getattr(clients, batch.destination)
        records = [c.payload for c in batch.changes]
        try:
            if batch.is_create:
                # An upsert on Email: a create repeated after a lost answer updates, not duplicates.
                written = client.upsert(ZOHO_MODULES[key], records, duplicate_check_fields=("Email",))
            else:
                written = client.update(
                    ZOHO_MODULES[key], records, if_unmodified_since=batch.if_unmodified_since
                )
        except ConnectorError as error:
            # Halving re-sends the records: never after a failure that may have applied them.
            if len(batch.changes) == 1 or isinstance(error, (RetriableError, AmbiguousWriteError)):
                return [_failed(change, error) for change in batch.changes]
            left, right = split_batch(batch)
            return send_batch(clients, left, own_user) + send_batch(clients, right, own_user)
        return [
            _result(change, result, own_user) for change, result in zip(batch.changes, written, strict=True)
        ]
    results = []
    for change in batch.changes:
        try:
            results.append(_result(change, _write_one(clients, change)))
        except ConnectorError as error:
            results.append(_failed(change, error))
    return results


def _write_one(clients: Clients, change: RecordChange) -> WriteResult:
    if change.is_create:
        return _create_one(clients, change)
    record_id = str(change.record_id)
    if change.destination == "clickfunnels" and clients.clickfunnels is not None:
        return clients.clickfunnels.update_contact(record_id, change.payload)
    if change.destination == "clicksend" and clients.clicksend is not None:
        return clients.clicksend.update_contact(str(change.parent_id), record_id, change.payload)
    if change.destination == "linkflow" and clients.linkflow is not None:
        return clients.linkflow.update_contact(record_id, change.payload)
    raise RuntimeError(f"{change.destination}: no client to write with")


def _create_one(clients: Clients, change: RecordChange) -> WriteResult:
    """ClickFunnels upserts on email and Linkflow on the external id (our contact id), so repeating
    them is harmless; ClickSend's create is not repeatable, so the HTTP layer never retries it."""
    parent = str(change.parent_id)
    if change.destination == "clickfunnels" and clients.clickfunnels is not None:
        return clients.clickfunnels.upsert_contact(parent, change.payload)
    if change.destination == "clicksend" and clients.clicksend is not None:
        return clients.clicksend.create_contact(parent, change.payload)
    if change.destination == "linkflow" and clients.linkflow is not None:
        return clients.linkflow.identify(change.contact_id, parent, change.payload)
    raise RuntimeError(f"{change.destination}: no client to create with")


PLAN_SLICE_CONTACTS = 10_000
"""Golden contacts a plan takes at a time: their destination records and contacts are loaded,
planned, recorded in the ledger and sent before the next slice is read, so a first sync's memory
(and that of a large change) is one slice per destination thread, whatever the warehouse holds:
about 60 MiB per thread at 10,000 contacts, measured on the 100k-record scale bench."""


def push_destination(
    stream: Stream,
    engine: Engine,
    clients: Clients | None,
    config: PushConfig,
    *,
    run_id: str,
    dry_run: bool,
    log: Callable[[str], None] = lambda _line: None,
    own_user: str | None = None,
    shown: StreamProgress | None = None,
    full_plan: bool = False,
    slice_contacts: int | None = None,
    moved: push_ledger.MovedContactsRecords | None = None,
) -> PushReport:
    """Plan, record and (unless ``dry_run``) send one destination's changes; every row ends in one state.

    The plan covers only the records and contacts whose plan can have changed since the last one
    (`models.push.ledger.PlanWatermark`); everything on the first plan, when the push settings
    changed, or with ``full_plan`` (``--full-refresh``). Either goes in slices of ``slice_contacts``
    golden contacts (`PLAN_SLICE_CONTACTS`), each planned, recorded and sent before the next is read;
    the watermark is stored with the last slice's rows, so a run killed or stopped between slices
    plans again from the previous watermark next time (what it sent is in flight, not sent twice).

    ``moved``: the records of the contacts that moved, shared with the run's other destinations
    (`models.push.ledger.MovedContactsRecords`); without it they are read for this one alone.

    ``own_user`` is the Zoho user the connection acts as (`own_zoho_users`); without it a Zoho write
    keeps the ``Modified_By`` its answer names, which is the same user. ``shown`` hears the fields
    written so far after each call, against the fields planned so far.

    Asked to stop, it sends no further batch: the call in flight is answered and recorded, and the
    rows it never sent end ``unchanged`` with the reason (``PushReport.not_sent``), to be planned again
    by the next run. A batch whose call went out but was cut short (a retry refused by the stop) stays
    ``sending``: it may have landed, so it is settled as a lost answer is, by reading the record back.
    """
    mark, since = _plan_start(stream, engine, config, full_plan=full_plan)
    marked = time.monotonic()  # after the watermark's reads: what is read after this is newer
    key = push_ledger.plan_key(stream.source, stream.object)
    total = PushReport(0, 0, 0, 0, 0, 0, 0, plan="full" if since is None else "incremental")
    sender = (
        None
        if dry_run or clients is None
        else _Sender(engine, clients, stream, config=config, own_user=own_user, log=log)
    )
    parts = _plan_parts(
        stream, engine, config, since, slice_contacts or PLAN_SLICE_CONTACTS, moved=moved, marked=marked
    )
    for part in parts:
        plan, last = part.plan, part.last
        ledger_ids = push_ledger.record_plan(
            engine,
            plan,
            run_id=run_id,
            dry_run=dry_run,
            watermark=(key, mark) if last else None,
            # Nothing is sent: the rows end unchanged as they are stored.
            planned_as="planned" if sender else "unchanged",
            checkpoint=STOP.check,
        )
        invalid = int(plan["invalid_reason"].notna().sum()) if len(plan) else 0
        total = _added(total, part.report, planned=len(plan), invalid=invalid)
        if sender is None:
            total = replace(total, unchanged=total.unchanged + len(plan) - invalid)
        elif sender.send(
            plan.assign(ledger_id=ledger_ids), expected=total.planned - total.invalid, shown=shown
        ) or (not last and STOP.is_set()):
            total = replace(total, stopped=True)
            break
    if sender is None:
        log(
            f"reverse sync {stream.name}: planned {total.planned} fields, {total.invalid} invalid"
            + f" ({total.plan} plan of {total.targets_loaded} records)"
            + (" (dry run)" if dry_run else "")
        )
        return total
    counts = sender.counts
    not_sent = 0
    if total.stopped:
        not_sent = push_ledger.abandon_planned(
            engine,
            run_id,
            stream.source,
            stream.object,
            f"not sent: {STOP.reason}; planned again next run",
            checkpoint=STOP.check,
        )
        log(
            f"reverse sync {stream.name}: stopped ({STOP.reason}) after {counts['sent']} fields sent; "
            f"{not_sent} fields not sent, planned again by the next sync"
        )
    return replace(
        total,
        sent=counts["sent"],
        rejected=counts["rejected"] + counts["parked"],
        conflict=counts["conflict"],
        unchanged=counts["unchanged"],
        requests=sender.requests(),
        created=sender.created,
        unconfirmed=counts["unconfirmed"],
        not_sent=not_sent,
    )


class _Sender:
    """Sends a destination's recorded plan part after part, keeping the run's counts: each row's
    final state, the records created, the calls made."""

    def __init__(
        self,
        engine: Engine,
        clients: Clients,
        stream: Stream,
        *,
        config: PushConfig,
        own_user: str | None,
        log: Callable[[str], None],
    ) -> None:
        self.engine, self.clients, self.stream, self.config = engine, clients, stream, config
        self.own_user, self.log = own_user, log
        self.counts = {"sent": 0, "rejected": 0, "conflict": 0, "unchanged": 0, "parked": 0, "unconfirmed": 0}
        self.created = 0
        self.calls = 0
        self.before = clients.stats.snapshot()
        self.late = LateArrivals(
            engine, clients, stream.source, stream.object, region=config.regions.get(stream.source)
        )

    def requests(self) -> int:
        """Requests made to the destination's source since the first part."""
        return self.clients.stats.snapshot().diff(self.before).total_requests(self.stream.source)

    def send(self, plan: pd.DataFrame, *, expected: int, shown: StreamProgress | None) -> bool:
        """Send one recorded part, batch by batch; True when the stop flag cut it short. ``expected``:
        the sendable fields planned so far, for ``shown``. The rows of up to `LEDGER_WINDOW_CALLS`
        calls are marked ``sending`` together, with the outcomes of the calls before them; the last
        outcomes are committed before this returns, whatever ends the part."""
        stream = self.stream
        records = {str(r) for r in plan["record_id"].dropna()}
        attempts = push_ledger.previous_attempts(self.engine, stream.source, stream.object, records)
        rows = SendableRows.of(plan)
        call = _Call(
            self.engine, self.clients, stream, rows, attempts, config=self.config, counts=self.counts
        )
        # Linkflow's props go whole, as last read, with the planned keys changed (`whole_objects`).
        changes = completed_from_warehouse(self.engine, record_changes(plan))
        try:
            changes, held = self.late.without_held(changes, rows, log=self.log)
        except StopRequested:  # nothing is sending yet: the part's rows are abandoned as planned
            return True
        for state, count in held.items():
            self.counts[state] += count
        calls = batches(changes, stream.source, stream.object)
        try:
            for start in range(0, len(calls), LEDGER_WINDOW_CALLS):
                window = calls[start : start + LEDGER_WINDOW_CALLS]
                call.open(window)
                for batch in window:
                    made = None if STOP.is_set() else call.send(batch, own_user=self.own_user)
                    if made is None:
                        return True
                    self._count_call(made, expected=expected, shown=shown)
        finally:
            call.close()
        return False

    def _count_call(self, created: int, *, expected: int, shown: StreamProgress | None) -> None:
        self.created += created
        self.calls += 1
        if self.calls % 50 == 0:
            self.log(
                f"reverse sync {self.stream.name}: {self.calls} calls made, "
                f"{self.counts['sent']} fields sent so far"
            )
        if shown is not None:
            shown.page(records=sum(self.counts.values()), expected=expected, requests=self.requests())


def _added(total: PushReport, part: PushReport, *, planned: int, invalid: int) -> PushReport:
    """The running report with one more part's planning figures."""
    return replace(
        total,
        planned=total.planned + planned,
        invalid=total.invalid + invalid,
        targets_loaded=total.targets_loaded + part.targets_loaded,
        contacts_loaded=total.contacts_loaded + part.contacts_loaded,
        plan_seconds=round(total.plan_seconds + part.plan_seconds, 3),
    )


@dataclass(frozen=True)
class PlanPart:
    """One slice of a destination's plan (record_modified_at included) and what planning it loaded."""

    plan: pd.DataFrame
    report: PushReport
    last: bool
    """No part comes after this one: the plan's watermark is stored with its rows."""


def _plan_start(
    stream: Stream, engine: Engine, config: PushConfig, *, full_plan: bool
) -> tuple[push_ledger.PlanWatermark, push_ledger.PlanWatermark | None]:
    """The watermark a plan starting now stores, and the last plan's to plan from (None: plan in
    full, as there is none, the settings changed or ``full_plan``)."""
    settings = config.fingerprint(stream.source, stream.object)
    mark = push_ledger.current_watermark(engine, stream.source, stream.object, settings)
    since = None if full_plan else push_ledger.stored_watermark(engine, stream.source, stream.object)
    if since is not None and since.settings != settings:
        since = None
    return mark, since


def _plan_parts(
    stream: Stream,
    engine: Engine,
    config: PushConfig,
    since: push_ledger.PlanWatermark | None,
    slice_contacts: int,
    *,
    moved: push_ledger.MovedContactsRecords | None = None,
    marked: float = 0.0,
) -> Iterator[PlanPart]:
    """The plan in parts of at most ``slice_contacts`` golden contacts, each read when the one before
    it is done (the caller records and sends each first). A full plan: slices of every contact id.
    An incremental one: slices of the contacts of what can have changed since ``since``
    (`models.push.ledger.PlanChange`: the records in scope found by id, without their payloads),
    so a large change (a dry run's writes, all open again) is held a slice at a time too. ``moved``
    and ``marked``: `push_destination`'s, and when its watermark had been read (`time.monotonic`)."""
    if since is None:
        for scope in push_ledger.contact_slices(engine, slice_contacts):
            yield _plan_part(stream, engine, config, scope, last=scope.through is None)
        return
    change = push_ledger.changes_since(engine, stream.source, stream.object, since)
    shared = (
        moved.of(stream.source, stream.object, change.contact_ids, marked)
        if moved is not None and change.contact_ids
        else None
    )
    keys = push_ledger.changed_targets(engine, stream.source, stream.object, change, moved=shared)
    creating = (stream.source, stream.object) in config.create_missing
    candidates = (
        push_ledger.changed_contacts(engine, stream.source, stream.object, change)
        if creating
        else frozenset()
    )
    contacts = sorted({*keys["contact_id"].astype(str), *candidates})
    owners = keys["contact_id"].astype(str)
    for start in range(0, max(len(contacts), 1), slice_contacts):
        chunk = frozenset(contacts[start : start + slice_contacts])
        yield _plan_part(
            stream,
            engine,
            config,
            push_ledger.ContactScope(ids=chunk),
            last=start + slice_contacts >= len(contacts),
            records=frozenset(keys.loc[owners.isin(chunk).to_numpy(), "record_id"].astype(str)),
            candidates=candidates & chunk,
        )


def _plan(
    stream: Stream,
    engine: Engine,
    config: PushConfig,
    *,
    full_plan: bool,
    slice_contacts: int = PLAN_SLICE_CONTACTS,
) -> tuple[pd.DataFrame, PushReport, push_ledger.PlanWatermark]:
    """The destination's whole plan at once (its parts together), a report of what planning loaded
    and took, and the watermark to store with it: for comparing plans and recording one by hand."""
    mark, since = _plan_start(stream, engine, config, full_plan=full_plan)
    total = PushReport(0, 0, 0, 0, 0, 0, 0, plan="full" if since is None else "incremental")
    plans = []
    for part in _plan_parts(stream, engine, config, since, slice_contacts):
        plans.append(part.plan)
        total = _added(total, part.report, planned=0, invalid=0)
    plan = pd.concat([p for p in plans if len(p)] or plans[:1], ignore_index=True)
    return plan, total, mark


def _plan_part(
    stream: Stream,
    engine: Engine,
    config: PushConfig,
    scope: push_ledger.ContactScope,
    *,
    last: bool,
    records: frozenset[str] | None = None,
    candidates: frozenset[str] | None = None,
) -> PlanPart:
    """The plan of one slice of contacts (``scope``): `models.push.planning.plan_slice`, reported."""
    made = plan_slice(engine, SliceTask(stream.source, stream.object, config, scope, records, candidates))
    report = PushReport(
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        targets_loaded=made.targets_loaded,
        contacts_loaded=made.contacts_loaded,
        plan_seconds=made.seconds,
    )
    return PlanPart(made.plan, report, last=last)


LEDGER_WINDOW_CALLS = 25
"""Calls whose rows are marked ``sending`` in one ledger transaction, together with the outcomes of
the calls before them. One transaction a call cost about 12 ms a call with six destinations taking
turns at SQLite's write lock (0.4 ms alone), three times the call itself against the emulator. A run
killed inside a window leaves the window's unsent rows ``sending`` as well as the call in flight:
like it, they are planned again once the next complete extract has read their records."""


class _Call:
    """Sends a part's batches one call at a time, a window of calls (`open`) after another: the
    window's rows are marked ``sending`` (committed) before its first call goes out, and each call's
    outcome is held until the next window opens (one transaction a window), `flush` or `close`."""

    def __init__(
        self,
        engine: Engine,
        clients: Clients,
        stream: Stream,
        rows: SendableRows,
        attempts: dict[tuple[str, str, str], int],
        *,
        config: PushConfig,
        counts: dict[str, int],
    ) -> None:
        self.engine, self.clients, self.stream, self.rows = engine, clients, stream, rows
        self.attempts, self.config, self.counts = attempts, config, counts
        self.pending: list[push_ledger.CallOutcome] = []
        self.unsent: set[int] = set()
        """Ledger ids marked ``sending`` whose call has not gone out."""

    def open(self, window: Sequence[Batch]) -> None:
        """Record the outcomes held so far and mark the rows of the ``window``'s calls ``sending``."""
        changes = [change for batch in window for change in batch.changes]
        sending = self.rows.ledger_id[self.rows.positions(changes)].tolist()
        push_ledger.record_call(self.engine, self.pending, sending=sending, checkpoint=STOP.check)
        self.pending = []
        self.unsent.update(sending)

    def send(self, batch: Batch, *, own_user: str | None) -> int | None:
        """Send one batch of the open window; returns the records it created, or None when the stop
        flag refused its call (rows that never went out are ``planned`` again by `close`; rows of a
        call that went out stay ``sending``, an unknown outcome)."""
        engine, clients, stream = self.engine, self.clients, self.stream
        positions = self.rows.positions(batch.changes)
        ledger_ids = self.rows.ledger_id[positions].tolist()
        calls_before = clients.stats.snapshot().total_requests(stream.source)
        try:
            results = send_batch(clients, batch, own_user)
        except BaseException as error:
            if clients.stats.snapshot().total_requests(stream.source) != calls_before:
                self.unsent.difference_update(ledger_ids)
            if isinstance(error, StopRequested):
                return None
            raise
        self.unsent.difference_update(ledger_ids)
        gone = {str(r.record_id) for r in results if r.code == RECORD_GONE}
        self.pending.append(
            _call_outcome(
                self.rows,
                positions,
                results,
                self.attempts,
                max_attempts=self.config.max_attempts,
                counts=self.counts,
                gone=gone,
            )
        )
        if gone:
            # Deleted at the source since we read it (ClickFunnels and ClickSend have no delete feed):
            # marked now, so it is neither planned again nor kept in a golden contact.
            self.flush()
            RawStore(engine, checkpoint=STOP.check).mark_deleted(
                StreamKey(stream.source, stream.object), sorted(gone)
            )
        return sum(1 for result in results if result.ok and result.record_id is None)

    def flush(self) -> None:
        """Record the outcomes held, if any."""
        if self.pending:
            push_ledger.record_call(self.engine, self.pending, checkpoint=STOP.check)
            self.pending = []

    def close(self) -> None:
        """Record the outcomes held and put the rows whose call never went out back to ``planned``."""
        if self.pending or self.unsent:
            push_ledger.record_call(
                self.engine, self.pending, planned=sorted(self.unsent), checkpoint=STOP.check
            )
        self.pending, self.unsent = [], set()


def _call_outcome(
    rows: SendableRows,
    positions: npt.NDArray[np.intp],
    results: list[RecordResult],
    attempts: dict[tuple[str, str, str], int],
    *,
    max_attempts: int,
    counts: dict[str, int],
    gone: set[str],
) -> push_ledger.CallOutcome:
    """How one call's rows end: each row takes its record's result (`SendableRows.outcomes`), then an
    unknown outcome is ``unconfirmed``, a refusal of a record deleted since is ``unchanged``, and a
    rejection is ``parked`` after its attempts. Rows that end alike are marked in one statement."""
    at = utcnow()
    marks: dict[tuple[str, str | None, int], list[int]] = {}
    new_ids: dict[int, str] = {}
    stamps: dict[int, tuple[datetime | None, int | None, str | None]] = {}
    for outcome in rows.outcomes(positions, results):
        at_row, result = outcome.position, outcome.result
        ledger_id = int(rows.ledger_id[at_row])
        record_id = str(rows.record_id[at_row])
        previous = attempts.get((record_id, str(rows.field[at_row]), str(rows.after_value[at_row])), 0)
        message = None if result is None else result.message or None
        if result is not None and result.code == UNCONFIRMED:
            state = "unconfirmed"
        elif outcome.state == "rejected" and record_id in gone:
            state, message = "unchanged", "the record no longer exists at the destination"
        else:
            state = next_attempt_state(previous, outcome.state, max_attempts)
        marks.setdefault((state, message, previous + 1), []).append(ledger_id)
        counts[state] = counts.get(state, 0) + 1
        if outcome.state != "sent" or result is None:
            continue
        if result.new_id is not None:
            new_ids[ledger_id] = str(result.new_id)
        stamp = result.stamp or WriteStamp()
        modified = None if stamp.modified_at is None or pd.isna(stamp.modified_at) else stamp.modified_at
        stamps[ledger_id] = (modified, stamp.version, stamp.written_by)
    return push_ledger.CallOutcome(marks=marks, new_ids=new_ids, results=stamps, at=at)


def own_zoho_users(clients: Clients, sources: Sequence[str], log: Callable[[str], None]) -> dict[str, str]:
    """Per Zoho product pushed to, the id of the user the connection acts as, asked once per run
    (``GET /users?type=CurrentUser``): every write we make shows it as the record's ``Modified_By``.
    A product that will not say (a connection without the users scope) is left out; its writes then
    keep the ``Modified_By`` their own answers name."""
    found: dict[str, str] = {}
    for source in ("zoho_crm", "zoho_bigin"):
        client = getattr(clients, source)
        if source not in sources or client is None:
            continue
        try:
            user = client.current_user_id()
        except ConnectorError as exc:
            log(
                f"reverse sync {source}: could not learn the connection's own user ({exc}); "
                "each write keeps the user its answer names"
            )
            continue
        if user is not None:
            found[source] = user
    return found


def zoho_create_requirements(
    engine: Engine, clients: Clients, config: PushConfig, log: Callable[[str], None]
) -> dict[tuple[str, str], frozenset[str]]:
    """Per Zoho destination that gets creates, the fields its layouts make mandatory beyond those the
    field map already requires (`models.push.required_fields`), asked once per run and kept in the
    warehouse. A module whose layouts cannot be read (a connection without the settings scope, an
    error after retries) keeps what they said when last read, and the run says so in one line: the
    plan's settings stay the same, so one failed read does not plan every contact twice. Never read,
    its creates are sent and Zoho's answer decides."""
    found: dict[tuple[str, str], frozenset[str]] = {}
    for source, obj in sorted(config.create_missing):
        client = getattr(clients, source, None) if source in ("zoho_crm", "zoho_bigin") else None
        if client is None:
            continue
        module = zoho_module(obj)
        try:
            layouts = client.layouts(module)
        except ConnectorError as exc:
            kept = push_ledger.stored_create_requirements(engine, source, obj)
            if kept is None:
                said = "creates are sent without knowing which fields they make mandatory"
            else:
                said = "creates are planned with what they made mandatory when last read: " + (
                    ", ".join(sorted(kept)) or "nothing beyond the field map's own"
                )
                if kept:
                    found[(source, obj)] = kept
            log(f"reverse sync {source}/{obj}: could not read the {module} layouts ({exc}); {said}")
            continue
        extra = create_requirements(source, obj, layouts)
        push_ledger.store_create_requirements(engine, source, obj, extra, STOP.check)
        if extra:
            found[(source, obj)] = extra
    return found


def opt_out_lists(clients: Clients) -> frozenset[str]:
    """ClickSend's opt-out lists, whose contacts are never written (one listing of the lists)."""
    if clients.clicksend is None:
        return frozenset()
    return frozenset(str(item.get("list_id")) for item in clients.clicksend.lists() if is_opt_out_list(item))


def _push_source(
    streams: Sequence[Stream],
    clients: Clients,
    engine: Engine,
    config: PushConfig,
    *,
    run_id: str,
    dry_run: bool,
    log: Callable[[str], None],
    own_user: str | None = None,
    progress: ProgressObserver = NO_PROGRESS,
    full_plan: bool = False,
    moved: push_ledger.MovedContactsRecords | None = None,
) -> dict[Stream, PushReport | str]:
    """One source's destinations, one after another: a report each, or the one line that says why not.

    Once the run is asked to stop, the destination under way ends after its call in flight and the
    following ones do not start (they have no outcome).
    """
    outcome: dict[Stream, PushReport | str] = {}
    for stream in streams:
        if STOP.is_set():
            break
        shown = progress.stream(f"reverse_sync/{stream.name}", unit="fields", step="calls")
        try:
            with source_lock(engine, f"push-{stream.source}-{stream.object}", f"reverse sync {stream.name}"):
                report = push_destination(
                    stream,
                    engine,
                    None if dry_run else clients,
                    config,
                    run_id=run_id,
                    dry_run=dry_run,
                    log=log,
                    own_user=own_user,
                    shown=shown,
                    full_plan=full_plan,
                    moved=moved,
                )
        except SourceBusyError as exc:
            outcome[stream] = str(exc)
            shown.finished(error=str(exc))
            continue
        except ConnectorError as exc:
            outcome[stream] = f"reverse sync {stream.name}: {exc}"
            shown.finished(error=str(exc))
            continue
        except StopRequested:  # refused by a read of the plan's inputs, or a ledger write left waiting
            shown.finished(error="stopped")
            break
        outcome[stream] = report
        if report.stopped:
            shown.finished(error="stopped")
            break
        shown.finished()
        log(
            f"reverse sync {stream.name}: planned {report.planned}, sent {report.sent}"
            + (f" ({report.created} records created)" if report.created else "")
            + f", rejected {report.rejected}, invalid {report.invalid}, conflicts {report.conflict}, "
            + (f"unconfirmed {report.unconfirmed}, " if report.unconfirmed else "")
            + f"{report.requests} requests"
        )
    return outcome


WRITABLE_STREAMS: tuple[Stream, ...] = tuple(s for s in STREAMS if s.writable)


@dg.multi_asset(
    name="reverse_sync",
    op_tags={WAREHOUSE_WRITER_TAG: "reverse_sync"},
    specs=[
        dg.AssetSpec(
            dg.AssetKey(["reverse_sync", stream.source, stream.object]),
            group_name="reverse_sync",
            deps=[dg.AssetKey(["canonical", "contacts"])],
            kinds={"python", stream.source},
            description=f"Golden contact fields pushed back to {stream.source} {stream.object} records: "
            "empty fields filled, planned and recorded in push_ledger before any write.",
            skippable=True,
        )
        for stream in WRITABLE_STREAMS
    ],
    can_subset=True,
)
def reverse_sync(
    context: dg.AssetExecutionContext,
    sync_settings: SyncSettingsResource,
    run_options: RunOptionsResource,
    warehouse: WarehouseResource,
    progress: dg.ResourceParam[ProgressObserver],
) -> Iterator[dg.MaterializeResult]:
    """Every selected destination in one step: sources in parallel threads sharing the Maton bucket,
    a source's destinations in turn. A failing destination fails alone; the step then names it.

    A source whose extract failed earlier in this run is not pushed to: what we hold of it is stale,
    and filling "empty" fields from a stale copy could overwrite a value someone just entered. This
    step is the run's last, so it also fails naming those streams (extract deferred them to here so
    that what did land went through identity resolution). Asked to stop, no further write starts: the
    step reports the destinations it finished and those it stopped part-way, and the run ends canceled.
    """
    with stops_cleanly(context):
        yield from _reverse_sync_step(context, sync_settings, run_options, warehouse, progress)


def push_config(settings: Settings, regions: dict[str, str], opt_out: frozenset[str]) -> PushConfig:
    """What reverse sync may do under ``settings``, with the phone regions extract learnt and
    ClickSend's opt-out lists (one place, so a benchmark plans under the very settings a sync did)."""
    creates = settings.push_create()
    return PushConfig(
        regions=regions,
        opt_out_lists=opt_out,
        overwrite=settings.push_overwrite(),
        create_missing=frozenset(creates),
        create_parents={key: parent for key, parent in creates.items() if parent is not None},
        name_guard=settings.contact_sync_household_split == "on",
        nickname_pairs=settings.nickname_pairs(),
        mappings=settings.mappings(),
        consent_push=settings.contact_sync_consent_push == "on",
    )


def _skip_reason(stream: Stream, settings: Settings, stale_sources: set[str]) -> str | None:
    if settings.push == "off":
        return "CONTACT_SYNC_PUSH=off"
    if stream.source not in settings.enabled_sources():
        return f"{stream.source} not enabled"
    if stream.source in stale_sources:
        return f"{stream.source} failed to extract in this run; what we hold of it is stale"
    return None


def _reverse_sync_step(
    context: dg.AssetExecutionContext,
    sync_settings: SyncSettingsResource,
    run_options: RunOptionsResource,
    warehouse: WarehouseResource,
    progress: ProgressObserver,
) -> Iterator[dg.MaterializeResult]:
    settings = sync_settings.settings()
    warehouse.refresh_statistics(context.log.info)
    engine = warehouse.engine()
    extract_failures = RawStore(engine).failures_of_run(context.run.run_id)
    stale_sources = {source for source, _ in extract_failures}
    selected = [
        s
        for s in WRITABLE_STREAMS
        if dg.AssetKey(["reverse_sync", s.source, s.object]) in context.selected_asset_keys
    ]
    runnable: dict[str, list[Stream]] = {}
    for stream in selected:
        reason = _skip_reason(stream, settings, stale_sources)
        if reason is not None:
            context.log.info(f"reverse sync {stream.name}: skipped ({reason})")
            yield dg.MaterializeResult(
                asset_key=dg.AssetKey(["reverse_sync", stream.source, stream.object]),
                metadata={"status": "skipped", "reason": reason},
            )
        else:
            runnable.setdefault(stream.source, []).append(stream)
    dry_run = settings.push == "dry-run" or run_options.dry_run
    outcomes: dict[Stream, PushReport | str] = {}
    with clients_for(settings, tuple(runnable)) as clients:
        try:
            opt_out = opt_out_lists(clients) if "clicksend" in runnable else frozenset()
        except ConnectorError as exc:
            raise dg.Failure(description=f"reverse sync clicksend/list_contact: {exc}") from None
        own_users = {} if dry_run else own_zoho_users(clients, tuple(runnable), context.log.info)
        config = push_config(settings, phone_regions(settings, warehouse), opt_out)
        config = replace(
            config, create_fields_required=zoho_create_requirements(engine, clients, config, context.log.info)
        )
        moved = push_ledger.MovedContactsRecords(engine)
        for found in run_in_threads(
            [
                with_statements_stopped(
                    engine,
                    partial(
                        _push_source,
                        streams,
                        clients,
                        engine,
                        config,
                        run_id=context.run.run_id,
                        dry_run=dry_run,
                        log=context.log.info,
                        own_user=own_users.get(source),
                        progress=progress,
                        full_plan=source in run_options.full_refresh_sources,
                        moved=moved,
                    ),
                )
                for source, streams in runnable.items()
            ]
        ):
            outcomes.update(found)
    failures = [extract_failures[k] for k in ((s.source, s.object) for s in STREAMS) if k in extract_failures]
    for stream in selected:
        outcome = outcomes.get(stream)
        if isinstance(outcome, PushReport):
            yield dg.MaterializeResult(
                asset_key=dg.AssetKey(["reverse_sync", stream.source, stream.object]),
                metadata={**outcome.as_metadata(), "dry_run": dry_run},
            )
        elif isinstance(outcome, str):
            failures.append(outcome)
    if STOP.is_set():
        for line in failures:
            context.log.error(line)
        end_run_stopped(context)
    if failures:
        raise dg.Failure(description="\n".join(failures))


reverse_sync_assets: list[dg.AssetsDefinition] = [reverse_sync]
