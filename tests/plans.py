"""The PostgreSQL plans of the statements a call sends, read in the call's own transactions.

A plan read afterwards, in another transaction, would miss what the call set for itself (``SET LOCAL``)
and see other statistics: the ``EXPLAIN`` runs on the same DBAPI connection, just before the statement.
"""

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

#: What a statement that reads by key holds.
_BY_KEY = (" IN (", "ANY (", "unnest(", "raw_record_id >=", "raw_record_id <")


def keyed_plans(engine: Engine, call: Callable[[], Any], tables: Sequence[str]) -> list[str]:
    """The plan (one line) of every SELECT ``call`` sends to one of ``tables`` by key: with an ``IN``
    list or array, a list of values unnested, or a range of raw record ids."""
    plans: list[str] = []

    def explain(_conn: Any, cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        select = statement.lstrip().upper().startswith("SELECT")
        mine = select and any(f"FROM {table} " in f"{statement} " for table in tables)
        by_key = any(mark in statement for mark in _BY_KEY)
        if mine and by_key:
            with cursor.connection.cursor() as probe:
                probe.execute(f"EXPLAIN {statement}", parameters)
                plans.append(" / ".join(str(row[0]) for row in probe.fetchall()))

    sa.event.listen(engine, "before_cursor_execute", explain)
    try:
        call()
    finally:
        sa.event.remove(engine, "before_cursor_execute", explain)
    return plans
