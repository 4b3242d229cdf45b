"""Injected trouble (latency, 429, 503, dropped connections, 200 answers that are not the API's JSON)
and Maton's shared request budget.

Faults draw from their own seeded RNG, so a test that sends requests in a fixed order sees the same
faults every run. The gateway budget is a sliding one-second window counted across the four Maton
apps, as Maton documents "10 requests/second per account".
"""

import math
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from enum import Enum
from typing import Any

APP_NAMES = frozenset({"clickfunnels", "clicksend", "linkflow", "zoho_crm", "zoho_bigin"})
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})

CHALLENGE_PAGE = (
    b'<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>'
    b'<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">'
    b'<meta name="robots" content="noindex,nofollow">'
    b'<meta name="viewport" content="width=device-width,initial-scale=1"></head>'
    b'<body><div class="main-wrapper" role="main"><div class="main-content">'
    b'<noscript><div class="h2"><span id="challenge-error-text">Enable JavaScript and cookies to continue'
    b"</span></div></noscript></div></div>"
    b"<script>(function(){window._cf_chl_opt={cvId: '3',cType: 'managed'};}());</script>"
    b"</body></html>"
)
"""The page a CDN's bot check (Cloudflare's managed challenge) serves instead of the API's answer."""
CHALLENGE_HEADERS = (
    ("Content-Type", "text/html; charset=UTF-8"),
    ("Cache-Control", "private, max-age=0, no-store, no-cache, must-revalidate"),
    ("Server", "cloudflare"),
)


@dataclass(frozen=True)
class FaultConfig:
    """Per request, in this order: sleep ``latency_ms``; then answer 429, 503, drop the connection,
    answer 200 with a CDN's "Just a moment..." HTML page, or answer with the API's own 2xx answer cut
    in half, with the given probabilities (one draw, so the rates add up). ``apps`` limits faults to
    some apps and ``methods`` to some HTTP methods (None: all). ``retry_after_s`` adds a
    ``Retry-After`` header to injected 429s. The two answers that are not the API's JSON
    (``challenge_rate``, ``truncate_rate``) hit only the methods in ``garbage_methods`` (reads by
    default); a draw that lands on them for another method serves the request normally. A request no
    configured fault can hit (another app than ``apps``, another method than ``methods``; another
    method than ``garbage_methods`` when only those two rates are set) draws nothing, so a seed picks
    the faults of the requests that can meet one, whatever else is asked in between."""

    latency_ms: float = 0
    error_rate_429: float = 0
    retry_after_s: float | None = None
    error_rate_503: float = 0
    drop_rate: float = 0
    challenge_rate: float = 0
    """200 ``text/html`` "Just a moment..." page; the API never sees the request."""
    truncate_rate: float = 0
    """The API handles the request (a write is applied), and its 2xx body is cut to half its bytes."""
    garbage_methods: frozenset[str] = frozenset({"GET"})
    apps: frozenset[str] | None = None
    methods: frozenset[str] | None = None
    """The HTTP methods any fault may hit (None: all): ``{"POST"}`` loses a create's answer while the
    reads before it (reverse sync's look at a list just before creating into it) go through."""
    seed: int = 0

    def __post_init__(self) -> None:
        rates = (
            self.error_rate_429,
            self.error_rate_503,
            self.drop_rate,
            self.challenge_rate,
            self.truncate_rate,
        )
        if any(not 0 <= rate <= 1 for rate in rates) or sum(rates) > 1 + 1e-9:
            raise ValueError("fault rates must lie in [0, 1] and add up to at most 1")
        if self.latency_ms < 0 or (self.retry_after_s is not None and self.retry_after_s < 0):
            raise ValueError("latency_ms and retry_after_s must not be negative")
        object.__setattr__(self, "garbage_methods", _http_methods("garbage_methods", self.garbage_methods))
        if self.methods is not None:
            object.__setattr__(self, "methods", _http_methods("methods", self.methods))
        if self.apps is not None:
            if not isinstance(self.apps, frozenset):
                object.__setattr__(self, "apps", frozenset(self.apps))
            unknown = set(self.apps) - APP_NAMES
            if unknown:
                raise ValueError(f"unknown apps {sorted(unknown)}; expected some of {sorted(APP_NAMES)}")

    @property
    def can_stop_any_method(self) -> bool:
        """Whether a fault that hits every method (429, 503, a drop) is configured."""
        return self.error_rate_429 + self.error_rate_503 + self.drop_rate > 0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "FaultConfig":
        """Build from JSON-like data (the admin endpoint); unknown keys are an error."""
        known = {item.name for item in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault settings {sorted(unknown)}")
        values = dict(data)
        if values.get("apps") is not None:
            values["apps"] = frozenset(values["apps"])
        if values.get("methods") is not None:
            values["methods"] = frozenset(values["methods"])
        if "garbage_methods" in values:
            values["garbage_methods"] = frozenset(values["garbage_methods"] or ())
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["apps"] = None if self.apps is None else sorted(self.apps)
        data["methods"] = None if self.methods is None else sorted(self.methods)
        data["garbage_methods"] = sorted(self.garbage_methods)
        return data


def _http_methods(name: str, given: Iterable[str]) -> frozenset[str]:
    """``given`` in upper case, refused with the setting's ``name`` when one is no HTTP method."""
    methods = frozenset(str(m).upper() for m in given)
    if methods - METHODS:
        raise ValueError(f"unknown {name} {sorted(methods - METHODS)}; expected some of {sorted(METHODS)}")
    return methods


class Outcome(Enum):
    TOO_MANY_REQUESTS = 429
    UNAVAILABLE = 503
    DROP = 0
    CHALLENGE = 200
    TRUNCATE = -1


class FaultInjector:
    """Draws each request's fault from the configured rates."""

    def __init__(self, config: FaultConfig) -> None:
        self._lock = threading.Lock()
        self.configure(config)

    @property
    def config(self) -> FaultConfig:
        return self._config

    def configure(self, config: FaultConfig) -> None:
        """Switch to new settings and restart the RNG from their seed (and the count of injections)."""
        with self._lock:
            self._config = config
            self._rng = random.Random(config.seed)  # noqa: S311 - test faults, not secrets
            self._injected: Counter[Outcome] = Counter()

    def injected(self) -> dict[str, int]:
        """Faults drawn since the last ``configure``, by name (``challenge``, ``truncate``, ...): proof
        that a test met the trouble it asked for. A truncation drawn for an answer with nothing to
        cut (an error, a 204) is counted though the answer went out whole."""
        with self._lock:
            return {outcome.name.lower(): n for outcome, n in self._injected.items()}

    def draw(self, app: str, method: str = "GET") -> tuple[float, Outcome | None]:
        """Seconds to sleep and the fault to answer with (None: serve normally)."""
        with self._lock:
            config = self._config
            if config.apps is not None and app not in config.apps:
                return 0.0, None
            if config.methods is not None and method.upper() not in config.methods:
                return config.latency_ms / 1000.0, None
            if method.upper() not in config.garbage_methods and not config.can_stop_any_method:
                return config.latency_ms / 1000.0, None
            roll = self._rng.random()
        outcome = None
        edge = 0.0
        for rate, candidate in (
            (config.error_rate_429, Outcome.TOO_MANY_REQUESTS),
            (config.error_rate_503, Outcome.UNAVAILABLE),
            (config.drop_rate, Outcome.DROP),
            (config.challenge_rate, Outcome.CHALLENGE),
            (config.truncate_rate, Outcome.TRUNCATE),
        ):
            edge += rate
            if roll < edge:
                outcome = candidate
                break
        if outcome in (Outcome.CHALLENGE, Outcome.TRUNCATE) and method.upper() not in config.garbage_methods:
            outcome = None
        if outcome is not None:
            with self._lock:
                self._injected[outcome] += 1
        return config.latency_ms / 1000.0, outcome

    def retry_after(self) -> str | None:
        """The ``Retry-After`` value: whole seconds when whole, else a decimal (fast tests need < 1 s)."""
        seconds = self._config.retry_after_s
        if seconds is None:
            return None
        return str(int(seconds)) if math.isclose(seconds, round(seconds)) else f"{seconds:g}"


class GatewayBudget:
    """Maton's per-account rate limit: at most ``rps`` admitted requests in any one-second window.

    Refused requests do not count against the window (a client that backs off gets through again).
    """

    def __init__(self, rps: float | None) -> None:
        self._lock = threading.Lock()
        self._admitted: deque[float] = deque()
        self.rps = rps

    def admit(self) -> bool:
        rps = self.rps
        if rps is None:
            return True
        now = time.monotonic()
        with self._lock:
            while self._admitted and now - self._admitted[0] >= 1.0:
                self._admitted.popleft()
            if len(self._admitted) >= rps:
                return False
            self._admitted.append(now)
            return True
