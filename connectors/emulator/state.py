"""The live state every emulated API shares: indexed tables, the write log, test hooks, the clock.

One re-entrant lock guards it all. Handlers are short (bisections and small pages), so serialising
them costs little, and it makes every request see a consistent snapshot.
"""

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.emulator.behaviours import Behaviours
from connectors.emulator.dataset import (
    CLICKFUNNELS_CONTACTS,
    CLICKSEND_CONTACTS,
    CLICKSEND_HISTORY,
    CLICKSEND_INBOUND,
    CLICKSEND_RECEIPTS,
    LINKFLOW_CONTACTS,
    LINKFLOW_EVENTS,
    ZOHO_TABLES,
    Dataset,
    deleted_table,
    truth_key,
)
from connectors.emulator.store import Record, Table, collector_paused


@dataclass(frozen=True)
class WriteRecord:
    """One change a client made: when, to which app, through which call, to which record, with what."""

    time: datetime
    app: str
    method: str
    path: str
    record_id: str | None
    body: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat(),
            "app": self.app,
            "method": self.method,
            "path": self.path,
            "record_id": self.record_id,
            "body": self.body,
        }


@dataclass(frozen=True)
class Rejection:
    """A test hook: writes to this record fail with this code and message (code None: the API's default)."""

    code: str | None
    message: str
    whole_call: bool = False
    """Zoho only: refuse the whole call the record is in, writing nothing (the case reverse sync
    bisects a batch for), rather than that record alone."""


def _text(value: Any) -> str:
    return value.strip().lower() if isinstance(value, str) else ""


def _one(value: Any) -> Iterable[Any]:
    return (value,) if value else ()


def build_tables(dataset: Dataset) -> dict[str, Table]:
    """Wrap the dataset's dicts with the indexes each list endpoint pages through."""
    tables = {
        CLICKFUNNELS_CONTACTS: Table(
            dataset.tables[CLICKFUNNELS_CONTACTS],
            {"id": lambda r: r["id"], "updated_at": lambda r: r["updated_at"]},
            groups={"email": lambda r: _one(_text(r["email_address"]))},
            listed=lambda r: r["anonymous"] is None,
        ),
        CLICKSEND_CONTACTS: Table(
            dataset.tables[CLICKSEND_CONTACTS],
            {"id": lambda r: r["contact_id"], "date_updated": lambda r: r["date_updated"]},
            groups={"list": lambda r: (r["list_id"],)},
        ),
        CLICKSEND_HISTORY: Table(dataset.tables[CLICKSEND_HISTORY], {"date": lambda r: r["date"]}),
        CLICKSEND_INBOUND: Table(dataset.tables[CLICKSEND_INBOUND], {"timestamp": lambda r: r["timestamp"]}),
        CLICKSEND_RECEIPTS: Table(
            dataset.tables[CLICKSEND_RECEIPTS], {"timestamp": lambda r: r["timestamp"]}
        ),
        LINKFLOW_CONTACTS: Table(
            dataset.tables[LINKFLOW_CONTACTS],
            {"id": lambda r: r["id"], "lastUpdated": lambda r: r["lastUpdated"]},
            groups={
                "email": lambda r: _one(_text(r["email"])),
                "mobile": lambda r: _one((r["mobilePhone"] or "").strip()),
            },
        ),
        LINKFLOW_EVENTS: Table(
            dataset.tables[LINKFLOW_EVENTS],
            {"id": lambda r: r["id"]},
            groups={"contact": lambda r: (r["contactId"],)},
        ),
    }
    for table in ZOHO_TABLES:
        tables[table] = Table(
            dataset.tables[table],
            {
                "id": lambda r: r["id"],
                "Created_Time": lambda r: r["Created_Time"],
                "Modified_Time": lambda r: r["Modified_Time"],
            },
            groups={"email": lambda r: _one(_text(r.get("Email")))},
        )
        tables[deleted_table(table)] = Table(
            dataset.tables[deleted_table(table)], {"deleted_time": lambda r: r["deleted_time"]}
        )
    return tables


class EmulatorState:
    """Tables, truth, write log and test hooks behind one lock."""

    def __init__(
        self,
        dataset: Dataset,
        *,
        linkflow_token_ttl: float,
        zoho_page_token_ttl: float,
        behaviours: Behaviours,
    ) -> None:
        self.lock = threading.RLock()
        self.dataset = dataset
        with collector_paused():
            self.tables = build_tables(dataset)
        self.linkflow_token_ttl = linkflow_token_ttl
        self.zoho_page_token_ttl = zoho_page_token_ttl
        self.behaviours = behaviours
        self._writes: list[WriteRecord] = []
        self._rejections: dict[tuple[str, str], Rejection] = {}
        self._floor = dataset.now.timestamp()

    def now(self) -> float:
        """Epoch seconds of a change made now: never before the dataset's own ``now``."""
        return max(time.time(), self._floor)

    def put(self, table: str, record_id: Any, record: Record) -> None:
        self.tables[table].put(record_id, record)

    def log_write(self, app: str, method: str, path: str, record_id: Any, body: Any) -> None:
        with self.lock:
            moment = datetime.fromtimestamp(time.time(), UTC)
            key = None if record_id is None else str(record_id)
            self._writes.append(WriteRecord(moment, app, method, path, key, body))

    def writes(self) -> list[WriteRecord]:
        with self.lock:
            return list(self._writes)

    def clear_writes(self) -> None:
        with self.lock:
            self._writes.clear()

    def reject(self, app: str, record_id: object, rejection: Rejection | None) -> None:
        with self.lock:
            if rejection is None:
                self._rejections.pop((app, str(record_id)), None)
            else:
                self._rejections[(app, str(record_id))] = rejection

    def rejection(self, app: str, record_id: object) -> Rejection | None:
        return self._rejections.get((app, str(record_id)))

    def attribute(self, table: str, record_id: Any, identifiers: Iterable[str]) -> None:
        """Give a record a client created the person owning one of its identifiers, if any does."""
        person = self.dataset.person_of(identifiers)
        if person is not None:
            self.dataset.truth[truth_key(table, record_id)] = person

    def forget(self, table: str, record_id: Any) -> None:
        """A deleted record leaves the truth."""
        self.dataset.truth.pop(truth_key(table, record_id), None)
