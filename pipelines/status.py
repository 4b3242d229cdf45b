"""The status view: each stream's cursor, last run, stored counts and last error, as a text table."""

import json
from datetime import datetime

from models.warehouse.store import RawStore
from pipelines.streams import STREAMS

NAME_WIDTH = 34
"""The first column's least width: every source/object name fits."""


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def _cursor(value: dict[str, object] | None) -> str:
    if not value:
        return "-"
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def status_lines(store: RawStore) -> list[str]:
    """One line per stream that has run, plus one per contract object that never has; the first
    column as wide as its longest name (a check's state is named after the check), so the counts
    line up under their headings. The pipeline's own states (canonical, reverse sync) hold no
    records: their counts are ``-``, not a misleading 0."""
    counts = store.record_counts()
    sources = {stream.source for stream in STREAMS}

    def held(source: str, obj: str) -> tuple[str, str]:
        if source not in sources:
            return "-", "-"
        total, deleted = counts.get((source, obj), (0, 0))
        return str(total), str(deleted)

    rows: list[tuple[str, tuple[str, str], str, str, str, str | None]] = []
    seen: set[tuple[str, str]] = set()
    for status in store.statuses():
        key = status.key
        seen.add((key.source, key.object))
        name = f"{key.source}/{key.object}" + ("" if key.stream == "incremental" else f" [{key.stream}]")
        when = _when(status.last_success_at)
        rows.append(
            (
                name,
                held(key.source, key.object),
                when,
                status.last_status or "-",
                _cursor(status.cursor),
                status.last_error,
            )
        )
    for stream in STREAMS:
        if (stream.source, stream.object) not in seen:
            rows.append((stream.name, held(stream.source, stream.object), "never", "-", "-", None))
    width = max([NAME_WIDTH, *(len(row[0]) for row in rows)])
    lines = [f"{'stream':<{width}} {'records':>8} {'deleted':>7}  {'last success':<20} {'status':<9} cursor"]
    for name, (total, deleted), when, state, cursor, error in rows:
        lines.append(f"{name:<{width}} {total:>8} {deleted:>7}  {when:<20} {state:<9} {cursor}")
        if error:
            lines.append(f"{'':<{width}} last error: {error}")
    return lines
