"""Consecutive pages of one stream gathered into one write, so a small-page API costs fewer transactions.

ClickFunnels answers 20 records a page, ClickSend 15 to 100: stored one page per transaction, each
page paid its own lookup, cursor update and commit (a disk flush on PostgreSQL), several times what
its 20 rows cost. Pages are now written together once they hold ``BATCH_RECORDS`` records or the
first of them waited ``BATCH_SECONDS``, with the cursor of the last one: that cursor covers every
page before it, so the rows and the cursor that covers them still commit in one transaction.

A page that reports deletions or carries records that cannot be stored is written on its own, after
the pages before it: a deletion must land after the rows read before it and before those read after
it (a record deleted, then read again, is alive), as when every page was written on arrival.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from models.warehouse.store import BadRecord, PageCounts, RawRow

#: Records gathered before a write: a few round trips' worth, far below any statement's size limit.
BATCH_RECORDS = 500
#: A slow API (rate limits, latency) still stores what it read after this long.
BATCH_SECONDS = 2.0

Write = Callable[[list[RawRow], list[BadRecord], list[str], dict[str, Any] | None], PageCounts]
"""Stores rows, bad records and deletions with the cursor that covers them, in one transaction."""


@dataclass
class PageBatch:
    """Pages read and not yet written; ``flush`` writes them with the last page's cursor."""

    write: Write
    rows: list[RawRow] = field(default_factory=list)
    first: int = 0
    last: int = 0
    cursor: dict[str, Any] | None = None
    started: float = 0.0

    def add(
        self,
        number: int,
        rows: list[RawRow],
        bad: list[BadRecord],
        deleted_ids: list[str],
        cursor: dict[str, Any],
    ) -> list[tuple[str, PageCounts]]:
        """Take page ``number``; what was written because of it, as (pages, counts) per write."""
        written: list[tuple[str, PageCounts]] = []
        if deleted_ids or bad:
            written.extend(self.flush())
            written.append((f"page {number}", self.write(rows, bad, list(deleted_ids), cursor)))
            return written
        if not self.first:
            self.first, self.started = number, time.monotonic()
        self.rows.extend(rows)
        self.last, self.cursor = number, cursor
        if len(self.rows) >= BATCH_RECORDS or time.monotonic() - self.started >= BATCH_SECONDS:
            written.extend(self.flush())
        return written

    def flush(self) -> list[tuple[str, PageCounts]]:
        """Write the gathered pages, if any."""
        if not self.first:
            return []
        label = f"page {self.first}" if self.first == self.last else f"pages {self.first}-{self.last}"
        counts = self.write(self.rows, [], [], self.cursor)
        self.rows, self.first, self.last, self.cursor = [], 0, 0, None
        return [(label, counts)]
