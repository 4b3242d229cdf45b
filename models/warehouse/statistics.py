"""Planner statistics kept fresh on PostgreSQL between the steps of a sync.

PostgreSQL plans from statistics that ``ANALYZE`` gathers, and autovacuum runs it only after its nap
(a minute by default) and not at all where it is switched off. A first sync fills every table within
one run, so the step after the one that filled a table plans as if it were empty: at a million records
that chose a ledger index that walks every written row for each lookup (single queries of 2 to 34 s,
a 2,174 s canonical step). `refresh_stale` analyses the warehouse's tables that grew by more than
autovacuum's own measure (`STALE_FRACTION`) since their last ``ANALYZE``, so each step plans from what
the steps before it wrote. It costs one catalogue query when nothing is stale; ``ANALYZE`` itself
reads a sample of 30,000 rows whatever the table's size.

Growth is read from the table's size on disk against the size its last ``ANALYZE`` saw, which is
always current. The count of rows changed since (``n_mod_since_analyze``) is not used: a session
reports it up to a second after it commits, so a step's last writes were missing from it, and counted
after the ``ANALYZE`` that already saw them they had the same table analysed again at the next step.
On PostgreSQL an update or delete leaves the old row version in place until a vacuum, so a table
whose rows change grows too; where autovacuum runs, it analyses such tables itself.

Best effort: a table whose lock another session holds (a running autovacuum, a ``VACUUM``, another
process's ``LOCK TABLE``) is left for the next step after a short ``lock_timeout``, not waited on.
SQLite is left alone: its planner is steered by the statements themselves (see
`models.warehouse.db.by_key_only` and the ``|| ''`` guards), and ``sqlite_stat1`` would change plans
the tests pin.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.warehouse.tables import Base

#: A table is stale once it has grown by this share of its size at its last ``ANALYZE`` (never
#: analysed: from nothing): autovacuum's default ``autovacuum_analyze_scale_factor``.
STALE_FRACTION = 0.1
#: ... and is at least this many pages (8 KiB each, so 1 MiB): below it any plan reads the table in
#: a millisecond or two.
STALE_MINIMUM_PAGES = 128
#: How long a refresh waits for a lock another session holds before it leaves the rest for later.
LOCK_TIMEOUT_MS = 2_000
_LOCK_NOT_AVAILABLE = "55P03"

_STALE = sa.text(
    """
    SELECT relname, rows_before FROM (
        SELECT c.relname, GREATEST(c.reltuples, 0) AS rows_before, c.relpages,
               pg_relation_size(c.oid) / current_setting('block_size')::int AS pages
        FROM pg_class AS c
        WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'
    ) AS t
    WHERE pages >= :minimum_pages AND pages > (1 + :fraction) * GREATEST(relpages, 0)
    ORDER BY relname
    """
)


@dataclass
class Refresh:
    """What one `refresh_stale` did: the tables analysed, with the rows the planner believed each held
    before and believes now; the tables left because another session held them; the seconds it took."""

    analysed: dict[str, tuple[int, int]] = field(default_factory=dict)
    left: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str | None:
        """One readable line, or None when there was nothing to do."""
        if not self.analysed and not self.left:
            return None
        parts = [f"{name} ({before:,} -> {now:,} rows)" for name, (before, now) in self.analysed.items()]
        line = f"planner statistics refreshed in {self.seconds:.1f} s: {', '.join(parts) or 'none'}"
        if self.left:
            line += f"; left for the next step (another session holds a lock): {', '.join(self.left)}"
        return line


def refresh_stale(engine: Engine, *, lock_timeout_ms: int = LOCK_TIMEOUT_MS) -> Refresh:
    """``ANALYZE`` the warehouse tables grown by more than `STALE_FRACTION` since their last one
    (PostgreSQL; a no-op elsewhere). Each table is its own transaction. Reading a table's size takes
    a lock too, so the catalogue read and each ``ANALYZE`` wait at most ``lock_timeout_ms`` for one
    another session holds, and after one such wait the rest is left for the next refresh: a step
    never waits longer than that on its statistics."""
    refresh = Refresh()
    if engine.dialect.name != "postgresql":
        return refresh
    started = time.perf_counter()
    ours = set(Base.metadata.tables)
    limits = {"minimum_pages": STALE_MINIMUM_PAGES, "fraction": STALE_FRACTION}
    stale = _without_waiting(engine, lock_timeout_ms, [(_STALE, limits)])
    if stale is None:
        refresh.left.append("every table (reading their sizes waited on a lock)")
    for row in stale or ():
        name, before = str(row[0]), int(row[1])
        if name not in ours:
            continue
        analysed = None if refresh.left else _without_waiting(engine, lock_timeout_ms, _analyse(name))
        if analysed is None:
            refresh.left.append(name)
        else:
            refresh.analysed[name] = (before, int(analysed[0][0]))
    refresh.seconds = time.perf_counter() - started
    return refresh


def _analyse(table: str) -> list[tuple[sa.TextClause, dict[str, Any]]]:
    """``ANALYZE`` of ``table``, then the rows it now believes the table holds."""
    return [
        (sa.text(f'ANALYZE "{table}"'), {}),
        (sa.text("SELECT GREATEST(reltuples, 0) FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}),
    ]


def _without_waiting(
    engine: Engine, lock_timeout_ms: int, statements: Sequence[tuple[sa.TextClause, dict[str, Any]]]
) -> Sequence[Sequence[Any]] | None:
    """The last of ``statements``' rows, all run in a transaction of their own that waits at most
    ``lock_timeout_ms`` for a lock; None when it timed out waiting."""
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}"))
            rows: Sequence[Sequence[Any]] = []
            for statement, parameters in statements:
                result = connection.execute(statement, parameters)
                rows = result.all() if result.returns_rows else []
            return rows
    except sa.exc.OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
            raise
        return None
