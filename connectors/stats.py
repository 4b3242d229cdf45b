"""Request and retry counts per source and endpoint template.

The pipeline reports "requests made" and "retries" per asset. One ``RequestStats`` can be shared by
every client; an asset takes a snapshot before and after its work and reports the difference.
Endpoints are counted by template (``GET /api/v2/workspaces/{id}/contacts``), never by concrete
path, so the numbers stay readable and carry no ids.
"""

import threading
from collections import Counter
from dataclasses import dataclass, field

Key = tuple[str, str]
"""(source, "METHOD /path/{template}")"""


@dataclass(frozen=True)
class StatsSnapshot:
    """Counts at one moment (or, from ``diff``, between two moments)."""

    requests: dict[Key, int] = field(default_factory=dict)
    retries: dict[Key, int] = field(default_factory=dict)

    def total_requests(self, source: str | None = None) -> int:
        return sum(n for (src, _), n in self.requests.items() if source in (None, src))

    def total_retries(self, source: str | None = None) -> int:
        return sum(n for (src, _), n in self.retries.items() if source in (None, src))

    def diff(self, before: "StatsSnapshot") -> "StatsSnapshot":
        """What happened since ``before`` (zero entries dropped)."""

        def minus(now: dict[Key, int], then: dict[Key, int]) -> dict[Key, int]:
            return {k: v - then.get(k, 0) for k, v in now.items() if v - then.get(k, 0)}

        return StatsSnapshot(minus(self.requests, before.requests), minus(self.retries, before.retries))

    def as_metadata(self, source: str | None = None) -> dict[str, int]:
        """Flat ``{"GET /path": n}`` for one source (or ``source GET /path`` for all)."""
        return {
            (endpoint if source else f"{src} {endpoint}"): n
            for (src, endpoint), n in sorted(self.requests.items())
            if source in (None, src)
        }


class RequestStats:
    """Thread-safe counters; ``record`` is called once per attempt by the HTTP layer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[Key] = Counter()
        self._retries: Counter[Key] = Counter()

    def record(self, source: str, endpoint: str, *, retry: bool) -> None:
        with self._lock:
            self._requests[(source, endpoint)] += 1
            if retry:
                self._retries[(source, endpoint)] += 1

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            return StatsSnapshot(dict(self._requests), dict(self._retries))

    def __repr__(self) -> str:
        snap = self.snapshot()
        return f"RequestStats(requests={snap.total_requests()}, retries={snap.total_retries()})"
