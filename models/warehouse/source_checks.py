"""The sync-start check's cache in the warehouse: one passing result per source and when it was made.

A sync runs ``contact-sync check``'s questions for a source only when no passing result made under
the same settings is younger than the allowed age, which keeps the check to a few requests per source
per day however often the schedule runs.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.warehouse.tables import SourceCheckResult, utcnow
from models.warehouse.waits import never_stopped, writing


def cached_check(
    engine: Engine, source: str, fingerprint: str, max_age: timedelta
) -> tuple[dict[str, Any], datetime] | None:
    """The stored result and when it was made, if made under ``fingerprint`` within ``max_age``."""
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(SourceCheckResult.result, SourceCheckResult.checked_at).where(
                SourceCheckResult.source == source, SourceCheckResult.fingerprint == fingerprint
            )
        ).first()
    if row is None or utcnow() - row.checked_at >= max_age:
        return None
    return dict(row.result), row.checked_at


def store_check(
    engine: Engine,
    source: str,
    fingerprint: str,
    result: dict[str, Any],
    *,
    checkpoint: Callable[[], None] = never_stopped,
) -> None:
    """Keep a passing result, replacing the source's previous one (SQLite's write lock waited for as
    `models.warehouse.waits` says, ``checkpoint`` ending only that wait)."""
    with writing(engine, checkpoint, must_land=True) as connection:
        connection.execute(sa.delete(SourceCheckResult).where(SourceCheckResult.source == source))
        connection.execute(
            sa.insert(SourceCheckResult).values(
                source=source, fingerprint=fingerprint, checked_at=utcnow(), result=result
            )
        )


def forget_check(engine: Engine, source: str, *, checkpoint: Callable[[], None] = never_stopped) -> None:
    """Drop a source's result (one of its streams failed), so the next sync checks it again."""
    with writing(engine, checkpoint, must_land=True) as connection:
        connection.execute(sa.delete(SourceCheckResult).where(SourceCheckResult.source == source))
