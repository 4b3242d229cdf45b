"""Undo one reverse-sync run: the ``undo_push`` job, which ``contact-sync undo RUN_ID`` runs.

The plan comes from `models.push.undo` (restore, delete or keep each written field); this module sends
it with the same clients and batch rules as a push and records every row in the ledger: the undo's own
rows (reason ``undo`` or ``undo_create``) and, for each write put back, the original row moved to
``undone``. An undone value is not pushed again for that record and field until the golden value
changes, so the next sync does not simply redo what was undone.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import dagster as dg
import pandas as pd
from sqlalchemy.engine import Engine

from connectors.errors import ConnectorError
from connectors.factory import Clients
from connectors.writes import WriteResult
from models.mappings.values import nested
from models.push import ledger as push_ledger
from models.push.plan import RecordChange, RecordResult, batches
from models.push.undo import plan_undo
from models.push.whole_objects import completed_from_warehouse
from models.warehouse.locks import source_lock
from models.warehouse.store import RawStore, StreamKey
from pipelines.clients import clients_for
from pipelines.resources import SyncSettingsResource, WarehouseResource
from pipelines.reverse_sync import ZOHO_MODULES, send_batch

#: A delete answered "not found" already has what it asked for (a repeat after a lost answer).
_GONE = frozenset({"HTTP_404", "NOT_FOUND", "INVALID_DATA"})


@dataclass
class UndoReport:
    """What an undo did, in fields and records."""

    restored: int = 0
    deleted: int = 0
    kept: int = 0
    failed: int = 0

    def line(self, run_id: str, *, dry_run: bool) -> str:
        verb = "would restore" if dry_run else "restored"
        return (
            f"undo of run {run_id}: {verb} {self.restored} fields, "
            f"{'would delete' if dry_run else 'deleted'} {self.deleted} created records, "
            f"kept {self.kept} (see push_ledger.error), failed {self.failed}"
        )


def undo_run(
    engine: Engine, clients: Clients | None, run_id: str, *, undo_run_id: str, dry_run: bool
) -> UndoReport:
    """Plan, record and (unless ``dry_run``) send the undo of ``run_id``'s writes."""
    written = push_ledger.load_run_writes(engine, run_id)
    plan = plan_undo(
        written, push_ledger.later_writes(engine, written), push_ledger.load_current(engine, written)
    )
    report = UndoReport()
    for (dest, obj), group in plan.groupby(["destination", "object"], sort=True):
        with source_lock(engine, f"push-{dest}-{obj}", f"undo {dest}/{obj}"):
            part = _undo_destination(
                engine, clients, group, dest=str(dest), obj=str(obj), undo_run_id=undo_run_id, dry_run=dry_run
            )
        for name in ("restored", "deleted", "kept", "failed"):
            setattr(report, name, getattr(report, name) + getattr(part, name))
    return report


def _undo_destination(
    engine: Engine,
    clients: Clients | None,
    plan: pd.DataFrame,
    *,
    dest: str,
    obj: str,
    undo_run_id: str,
    dry_run: bool,
) -> UndoReport:
    rows = plan.assign(
        before_value=plan["after_value"],  # what the field holds now, by our write
        after_value=plan["restore_value"],
        reason=plan["action"].map({"delete": "undo_create"}).fillna("undo"),
        invalid_reason=None,
        record_modified_at=plan["modified_at"],
    )
    rows["original_id"] = plan["ledger_id"].to_numpy()
    rows["ledger_id"] = push_ledger.record_plan(engine, rows, run_id=undo_run_id, dry_run=dry_run)
    kept = rows[rows["action"].eq("keep").to_numpy()]
    for reason, group in kept.groupby("keep_reason"):
        push_ledger.mark(engine, group["ledger_id"].tolist(), "unchanged", error=str(reason))
    restores = rows[rows["action"].eq("restore").to_numpy()]
    deletes = rows[rows["action"].eq("delete").to_numpy()]
    report = UndoReport(
        kept=len(kept), restored=len(restores), deleted=deletes["record_id"].nunique() if dry_run else 0
    )
    if dry_run or clients is None:
        push_ledger.mark(engine, [*restores["ledger_id"], *deletes["ledger_id"]], "unchanged")
        return report
    # Answers by record id (undo restores updates and deletes creates, never both on one record).
    outcome: dict[str, WriteResult | RecordResult] = {}
    for batch in batches(completed_from_warehouse(engine, _restore_changes(restores, dest, obj)), dest, obj):
        for one, sent in zip(batch.changes, send_batch(clients, batch), strict=True):
            outcome[str(one.record_id)] = sent
    outcome.update(_delete(clients, deletes, dest, obj))
    done: list[int] = []
    refused: list[int] = []
    gone_ids: list[str] = []
    states: dict[tuple[str, str | None], list[int]] = {}
    stamps: dict[int, tuple[datetime | None, int | None, str | None]] = {}
    for row in pd.concat([restores, deletes]).to_dict("records"):
        answer = outcome.get(str(row["record_id"]))
        ok = answer is not None and (answer.ok or (row["action"] == "delete" and answer.code in _GONE))
        if ok:
            state: tuple[str, str | None] = ("sent", None)
            done.append(int(row["original_id"]))
            stamp = answer.stamp if isinstance(answer, RecordResult) else None
            if stamp is not None:  # a restore is our write too: survivorship must know it
                stamps[int(row["ledger_id"])] = (stamp.modified_at, stamp.version, stamp.written_by)
            if row["action"] == "delete":
                gone_ids.append(str(row["record_id"]))
        elif answer is not None and answer.conflict:
            # Zoho refused the restore (ALREADY_MODIFIED, per record or with its whole call, sorted
            # out by the client): the record was edited since our write, so it is left alone.
            state = ("conflict", "changed at the destination since it was written; kept")
            refused.append(int(row["ledger_id"]))
        else:
            state = ("rejected", answer.message if answer else "not sent")
        states.setdefault(state, []).append(int(row["ledger_id"]))
    push_ledger.set_write_results(engine, stamps)
    for (status, error), ledger_ids in states.items():
        push_ledger.mark(engine, ledger_ids, status, error=error)
    push_ledger.mark(engine, done, "undone")
    RawStore(engine).mark_deleted(StreamKey(dest, obj), sorted(set(gone_ids)))
    restored_ok = int(restores["original_id"].isin(done).sum())
    left_alone = int(restores["ledger_id"].isin(refused).sum())
    return UndoReport(
        restored=restored_ok,
        deleted=len(set(gone_ids)),
        kept=len(kept) + left_alone,
        failed=len(restores) - restored_ok - left_alone + deletes["record_id"].nunique() - len(set(gone_ids)),
    )


def _restore_changes(rows: pd.DataFrame, dest: str, obj: str) -> list[RecordChange]:
    """One change per record: its fields put back, addressed the way a push addresses it."""
    changes = []
    for record_id, group in rows.groupby("record_id", sort=True):
        payload = nested(dict(zip(group["field"], group["after_value"], strict=True)))
        if (dest, obj) in ZOHO_MODULES:
            payload = {"id": str(record_id), **payload}
        since = group["if_unmodified_since"].dropna()
        changes.append(
            RecordChange(
                destination=dest,
                object=obj,
                record_id=str(record_id),
                contact_id=str(group["contact_id"].iloc[0]),
                parent_id=_parent(group),
                payload=payload,
                if_unmodified_since=since.max().to_pydatetime() if len(since) else None,
            )
        )
    return changes


def _delete(clients: Clients, rows: pd.DataFrame, dest: str, obj: str) -> dict[str, WriteResult]:
    """Delete the created records, in the batch sizes each API allows."""
    records = rows.drop_duplicates("record_id")
    results: dict[str, WriteResult] = {}
    if records.empty:
        return results
    if (dest, obj) in ZOHO_MODULES:
        client = getattr(clients, dest)
        ids = [str(r) for r in records["record_id"]]
        for start in range(0, len(ids), 100):
            chunk = ids[start : start + 100]
            try:
                answers = client.delete(ZOHO_MODULES[(dest, obj)], chunk)
            except ConnectorError as error:
                answers = [WriteResult(i, False, error.code, str(error)) for i in chunk]
            results.update(zip(chunk, answers, strict=True))
        return results
    for row in records.itertuples(index=False):
        try:
            if dest == "clickfunnels" and clients.clickfunnels is not None:
                answer = clients.clickfunnels.delete_contact(str(row.record_id))
            elif dest == "clicksend" and clients.clicksend is not None:
                answer = clients.clicksend.delete_contact(str(row.parent_id), str(row.record_id))
            else:
                answer = WriteResult(str(row.record_id), False, None, f"{dest}: no client to delete with")
        except ConnectorError as error:
            answer = WriteResult(str(row.record_id), False, error.code, str(error))
        results[str(row.record_id)] = answer
    return results


def _parent(group: pd.DataFrame) -> str | None:
    parents = group["parent_id"].dropna()
    return str(parents.iloc[0]) if len(parents) else None


class UndoConfig(dg.Config):
    """Which run to undo; ``dry_run`` records the undo plan and writes nothing."""

    run_id: str
    dry_run: bool = False


@dg.op(description="Put back the fields a reverse-sync run wrote and delete the records it created.")
def undo_writes(
    context: dg.OpExecutionContext,
    config: UndoConfig,
    sync_settings: SyncSettingsResource,
    warehouse: WarehouseResource,
) -> Iterator[dg.Output[None]]:
    settings = sync_settings.settings()
    engine = warehouse.engine()
    if not push_ledger.run_exists(engine, config.run_id):
        raise dg.Failure(description=f"undo: the ledger has no run {config.run_id}; see push_ledger.run_id")
    written = push_ledger.load_run_writes(engine, config.run_id)
    sources = tuple(sorted(set(written["destination"])))
    with clients_for(settings, sources) as clients:
        report = undo_run(
            engine,
            None if config.dry_run else clients,
            config.run_id,
            undo_run_id=context.run.run_id,
            dry_run=config.dry_run,
        )
    context.log.info(report.line(config.run_id, dry_run=config.dry_run))
    yield dg.Output(
        None, metadata={**report.__dict__, "undone_run": config.run_id, "dry_run": config.dry_run}
    )


@dg.job(name="undo_push", description="Undo one reverse-sync run's writes (contact-sync undo RUN_ID).")
def undo_push_job() -> None:
    undo_writes()
