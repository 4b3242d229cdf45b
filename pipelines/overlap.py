"""Which steps of one run may work on the warehouse at the same time.

After the blocking checks, activity linking and reverse sync do not wait for each other, so a run
launched through an instance executes them together, in step processes two at a time. Both write to
the warehouse in long transactions. (The command line runs one step after another.)
"""

from typing import Any

WAREHOUSE_WRITER_TAG = "contact_sync/warehouse_writer"
"""The op tag of the steps that write to the warehouse in long transactions beside another step."""


def one_writer_on_sqlite(database_url: str) -> list[dict[str, Any]]:
    """Dagster's tag concurrency limits that keep those steps apart on SQLite, none elsewhere.

    SQLite has one writer at a time. At a million records a settling sync's activity held the write
    lock past the 30 s busy timeout, and reverse sync's write beside it failed with "database is
    locked". On PostgreSQL they write different rows and overlap."""
    if database_url.startswith("sqlite"):
        return [{"key": WAREHOUSE_WRITER_TAG, "limit": 1}]
    return []
