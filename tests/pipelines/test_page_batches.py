"""Pages stored together: fewer transactions, the same rows, cursors and deletions as page by page."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.errors import ConnectorError
from connectors.paging import Page
from models.warehouse.db import open_warehouse
from models.warehouse.store import RawStore, StreamKey
from models.warehouse.tables import RawRecord
from pipelines.batches import BATCH_RECORDS
from pipelines.extract import load_pages
from pipelines.streams import Stream

STREAM = Stream("zoho_crm", "lead", writable=True)
KEY = StreamKey("zoho_crm", "lead")


@dataclass(frozen=True)
class Mark:
    """A cursor: how far the read got."""

    at: int

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at}


def lead(record_id: str, email: str) -> dict[str, Any]:
    return {"id": record_id, "Email": email, "Modified_Time": "2026-03-01T12:00:00-05:00"}


def page(at: int, *records: dict[str, Any], deleted: tuple[str, ...] = ()) -> Page[Mark]:
    return Page(records=list(records), cursor=Mark(at), deleted_ids=list(deleted))


@pytest.fixture
def store(warehouse_url: str) -> RawStore:
    return RawStore(open_warehouse(warehouse_url))


def stored(store: RawStore) -> dict[str, tuple[str, bool]]:
    """source_id -> (email, deleted)."""
    with store.engine.connect() as connection:
        rows = connection.execute(sa.select(RawRecord.source_id, RawRecord.payload, RawRecord.deleted_at))
        return {source_id: (payload["Email"], deleted is not None) for source_id, payload, deleted in rows}


def cursor_writes(store: RawStore, pages: list[Page[Mark]]) -> int:
    """Load ``pages``; how many times the stream's cursor was written (one per transaction)."""
    written: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("UPDATE stream_state SET cursor"):
            written.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        load_pages(STREAM, store, pages, run_id=None)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)
    return len(written)


def test_small_pages_are_stored_in_one_transaction_with_the_last_cursor(store: RawStore) -> None:
    pages = [page(n, lead(f"{n}a", f"{n}a@x.com"), lead(f"{n}b", f"{n}b@x.com")) for n in range(1, 6)]
    assert cursor_writes(store, pages) <= 1  # the first write inserts the stream's row instead
    assert store.cursor(KEY) == {"at": 5}
    assert len(stored(store)) == 10


def test_a_batch_is_written_once_it_holds_enough_records(store: RawStore) -> None:
    size = 100
    pages = [
        page(n, *(lead(f"{n}-{i}", f"{n}-{i}@x.com") for i in range(size)))
        for n in range(1, 3 * BATCH_RECORDS // size + 1)
    ]
    counts, number, cursor = load_pages(STREAM, store, pages, run_id=None)
    assert (counts.read, counts.inserted, number, cursor) == (
        3 * BATCH_RECORDS,
        3 * BATCH_RECORDS,
        15,
        {"at": 15},
    )
    again = [page(n, *p.records) for n, p in enumerate(pages, start=1)]
    assert cursor_writes(store, again) == 3


def test_deletions_land_in_read_order_between_gathered_pages(store: RawStore) -> None:
    pages = [
        page(1, lead("x", "x1@x.com"), lead("y", "y@x.com")),
        page(2, deleted=("x", "y")),
        page(3, lead("x", "x2@x.com")),
    ]
    counts, _, _ = load_pages(STREAM, store, pages, run_id=None)
    assert stored(store) == {"x": ("x2@x.com", False), "y": ("y@x.com", True)}
    assert counts.deleted == 2
    assert store.cursor(KEY) == {"at": 3}


def test_a_read_that_fails_stores_the_pages_read_before_it(store: RawStore) -> None:
    def pages() -> Iterator[Page[Mark]]:
        yield page(1, lead("a", "a@x.com"))
        yield page(2, lead("b", "b@x.com"))
        raise ConnectorError("zoho_crm", "GET", "/crm/v8/Leads", status=503)

    with pytest.raises(ConnectorError):
        load_pages(STREAM, store, pages(), run_id=None)
    assert set(stored(store)) == {"a", "b"}
    assert store.cursor(KEY) == {"at": 2}
