"""Planner statistics kept fresh on PostgreSQL between the steps of a sync.

PostgreSQL plans from statistics that ``ANALYZE`` gathers, and autovacuum runs it only after its nap
(a minute by default) and not at all where it is switched off. A first sync fills every table within
one run, so the step after the one that filled a table plans as if it were empty: at a million records
that chose a ledger index that walks every written row for each lookup (single queries of 2 to 34 s,
a 2,174 s canonical step). `refresh_stale` analyses the warehouse's tables that changed by more than
autovacuum's own measure since their last ``ANALYZE`` (`STALE_FRACTION` of their rows), so each step
plans from what the steps before it wrote. It costs one catalogue query when nothing is stale;
``ANALYZE`` itself reads a sample of 30,000 rows whatever the table's size.

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

#: A table is stale once the rows changed since its last ``ANALYZE`` exceed this share of its rows
#: then: autovacuum's default ``autovacuum_analyze_scale_factor``.
STALE_FRACTION = 0.1
#: ... and at least this many rows: below it any plan reads a table in well under a millisecond.
STALE_MINIMUM = 1_000
#: A table grown past its size at the last ``ANALYZE`` by `STALE_FRACTION` is stale too, from this
#: many pages (8 KiB each) on.
STALE_MINIMUM_PAGES = 16
#: How long a refresh waits for a lock another session holds before it leaves the rest for later.
LOCK_TIMEOUT_MS = 2_000
_LOCK_NOT_AVAILABLE = "55P03"

_STALE = sa.text(
    """
    SELECT relname, changed FROM (
        SELECT s.relname, s.n_mod_since_analyze AS changed, c.reltuples, c.relpages,
               pg_relation_size(c.oid) / current_setting('block_size')::int AS pages
        FROM pg_stat_user_tables AS s JOIN pg_class AS c ON c.oid = s.relid
        WHERE s.schemaname = current_schema()
    ) AS t
    WHERE (changed >= :minimum AND changed > :fraction * GREATEST(reltuples, 0))
       OR (pages >= :minimum_pages AND pages > (1 + :fraction) * GREATEST(relpages, 0))
    ORDER BY relname
    """
)


@dataclass
class Refresh:
    """What one `refresh_stale` did: the tables analysed, with the rows changed since their last
    ``ANALYZE``; the tables left because another session held them; and the seconds it took."""

    analysed: dict[str, int] = field(default_factory=dict)
    left: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str | None:
        """One readable line, or None when there was nothing to do."""
        if not self.analysed and not self.left:
            return None
        parts = [f"{name} ({changed:,} rows changed)" for name, changed in self.analysed.items()]
        line = f"planner statistics refreshed in {self.seconds:.1f} s: {', '.join(parts) or 'none'}"
        if self.left:
            line += f"; left for the next step (another session holds a lock): {', '.join(self.left)}"
        return line


def refresh_stale(engine: Engine, *, lock_timeout_ms: int = LOCK_TIMEOUT_MS) -> Refresh:
    """``ANALYZE`` the warehouse tables changed by more than `STALE_FRACTION` since their last one
    (PostgreSQL; a no-op elsewhere). Each table is its own transaction. Reading a table's size takes
    a lock too, so the catalogue read and each ``ANALYZE`` wait at most ``lock_timeout_ms`` for one
    another session holds, and after one such wait the rest is left for the next refresh: a step
    never waits longer than that on its statistics."""
    refresh = Refresh()
    if engine.dialect.name != "postgresql":
        return refresh
    started = time.perf_counter()
    ours = set(Base.metadata.tables)
    limits = {"minimum": STALE_MINIMUM, "minimum_pages": STALE_MINIMUM_PAGES, "fraction": STALE_FRACTION}
    stale = _without_waiting(engine, lock_timeout_ms, _STALE, limits)
    if stale is None:
        refresh.left.append("every table (reading their sizes waited on a lock)")
    for row in stale or ():
        name, changed = str(row[0]), int(row[1])
        if name not in ours:
            continue
        if refresh.left or _without_waiting(engine, lock_timeout_ms, sa.text(f'ANALYZE "{name}"')) is None:
            refresh.left.append(name)
        else:
            refresh.analysed[name] = changed
    refresh.seconds = time.perf_counter() - started
    return refresh


def _without_waiting(
    engine: Engine, lock_timeout_ms: int, statement: sa.TextClause, parameters: dict[str, Any] | None = None
) -> Sequence[Sequence[Any]] | None:
    """``statement``'s rows (none for one that returns none), in a transaction of its own that waits
    at most ``lock_timeout_ms`` for a lock; None when it timed out waiting."""
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}"))
            result = connection.execute(statement, parameters or {})
            return result.all() if result.returns_rows else []
    except sa.exc.OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
            raise
        return None
