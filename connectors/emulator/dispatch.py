"""One request's way through the emulator: admin or API, count, faults, auth, gateway budget, handler.

The order mirrors where each thing happens in reality: a request reaches the server (so it is
counted), the network or upstream may misbehave (faults, a CDN's challenge page among them), then the
gateway checks the key and its budget, and only then does the API see it; its answer may still be cut
short on the way back (the truncation fault).
"""

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from connectors.emulator.faults import (
    CHALLENGE_HEADERS,
    CHALLENGE_PAGE,
    FaultInjector,
    GatewayBudget,
    Outcome,
)
from connectors.emulator.gateway import RATE_LIMIT_MESSAGE, maton_error
from connectors.emulator.routing import (
    DROPPED,
    Api,
    ApiError,
    MalformedRequestError,
    Request,
    Response,
    Route,
    match,
)
from connectors.emulator.state import EmulatorState

LOG = logging.getLogger(__name__)
ADMIN_PREFIX = "/_admin"
_FAULT_MESSAGES = {
    Outcome.TOO_MANY_REQUESTS: "Too many requests (injected by the emulator)",
    Outcome.UNAVAILABLE: "Service temporarily unavailable (injected by the emulator)",
}


class RequestCounter:
    """Requests per (app, "METHOD /template"), the numbers tests and the demo assert on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, app: str, endpoint: str) -> None:
        with self._lock:
            self._counts[(app, endpoint)] += 1

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)

    def total(self, app: str | None = None) -> int:
        with self._lock:
            return sum(count for (name, _), count in self._counts.items() if app is None or name == app)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


class Dispatcher:
    def __init__(
        self,
        apis: list[Api],
        *,
        admin: Callable[[Request], Response],
        state: EmulatorState,
        faults: FaultInjector,
        budget: GatewayBudget,
        counter: RequestCounter,
    ) -> None:
        # Longest prefix first, so a prefix never shadows a longer one.
        self._mounts: list[tuple[Api, list[Route]]] = sorted(
            ((api, api.routes()) for api in apis), key=lambda mount: -len(mount[0].prefix)
        )
        self._admin = admin
        self._state = state
        self._faults = faults
        self._budget = budget
        self._counter = counter

    def handle(self, request: Request) -> Response:
        if request.path == ADMIN_PREFIX or request.path.startswith(ADMIN_PREFIX + "/"):
            return self._admin(request)
        for api, routes in self._mounts:
            if request.path == api.prefix or request.path.startswith(api.prefix + "/"):
                return self._serve(api, routes, request)
        return maton_error(404, "Unknown app. Paths start with the app name, e.g. /zoho-crm/crm/v8/...")

    def _serve(self, api: Api, routes: list[Route], request: Request) -> Response:
        found = match(routes, request.method, request.path[len(api.prefix) :] or "/")
        template = found.route.template if found else "/<unknown>"
        self._counter.add(api.name, f"{request.method} {api.prefix}{template}")
        delay, outcome = self._faults.draw(api.name, request.method)
        stopped = self._stopped_before_handler(api, request, delay, outcome)
        if stopped is not None:
            return stopped
        if found is None or not found.method_allowed:
            return api.unknown(request)
        response = self._handled(api, found.route, found.params, request)
        return cut_short(response) if outcome is Outcome.TRUNCATE else response

    def _handled(self, api: Api, handler: Route, params: dict[str, str], request: Request) -> Response:
        try:
            with self._state.lock:
                return handler.handler(request, params)
        except ApiError as refusal:
            return refusal.response
        except MalformedRequestError as malformed:
            return api.error(400, str(malformed))
        except Exception:
            LOG.exception("emulator failed on %s %s", request.method, request.path)
            return api.error(500, "internal error in the emulator")

    def _stopped_before_handler(
        self, api: Api, request: Request, delay: float, outcome: Outcome | None
    ) -> Response | None:
        """An injected fault, a refused key or an exhausted gateway budget; None lets the request on."""
        if delay:
            time.sleep(delay)
        if outcome is Outcome.DROP:
            return DROPPED
        if outcome is Outcome.CHALLENGE:
            return Response(200, CHALLENGE_PAGE, CHALLENGE_HEADERS)
        if outcome in (Outcome.TOO_MANY_REQUESTS, Outcome.UNAVAILABLE):
            retry_after = self._faults.retry_after() if outcome is Outcome.TOO_MANY_REQUESTS else None
            return api.error(outcome.value, _FAULT_MESSAGES[outcome], retry_after)
        refused = api.authorize(request)
        if refused is None and api.via_gateway and not self._budget.admit():
            return maton_error(429, RATE_LIMIT_MESSAGE)
        return refused


def cut_short(response: Response) -> Response:
    """The answer with its body cut to half its bytes, its headers kept: what a proxy that gave up
    mid-body, or a buffer limit, passes on. Only a 2xx answer with a body is cut (an error or a 204
    is served whole), and the cut may fall inside a multi-byte character."""
    if not 200 <= response.status < 300 or len(response.body) < 2:
        return response
    return replace(response, body=response.body[: len(response.body) // 2])
