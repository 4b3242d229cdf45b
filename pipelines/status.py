"""The status view: each stream's cursor, last run, stored counts and last error, as a text table."""

import json
from datetime import datetime

from models.warehouse.store import RawStore
from pipelines.streams import STREAMS


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def _cursor(value: dict[str, object] | None) -> str:
    if not value:
        return "-"
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def status_lines(store: RawStore) -> list[str]:
    """One line per stream that has run, plus one per contract object that never has."""
    counts = store.record_counts()
    statuses = store.statuses()
    header = f"{'stream':<34} {'records':>8} {'deleted':>7}  {'last success':<20} {'status':<9} cursor"
    lines = [header]
    seen: set[tuple[str, str]] = set()
    for status in statuses:
        key = status.key
        seen.add((key.source, key.object))
        total, deleted = counts.get((key.source, key.object), (0, 0))
        name = f"{key.source}/{key.object}" + ("" if key.stream == "incremental" else f" [{key.stream}]")
        lines.append(
            f"{name:<34} {total:>8} {deleted:>7}  {_when(status.last_success_at):<20} "
            f"{status.last_status or '-':<9} {_cursor(status.cursor)}"
        )
        if status.last_error:
            lines.append(f"{'':<34} last error: {status.last_error}")
    for stream in STREAMS:
        if (stream.source, stream.object) not in seen:
            total, deleted = counts.get((stream.source, stream.object), (0, 0))
            lines.append(f"{stream.name:<34} {total:>8} {deleted:>7}  {'never':<20} {'-':<9} -")
    return lines
