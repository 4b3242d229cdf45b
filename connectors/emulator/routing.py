"""Requests, responses and path templates: the small vocabulary every emulated API is written in.

Route templates (``/contacts/{id}``) double as the endpoint names in the request counters, so a test
can say "two calls of ``GET /zoho-crm/crm/v8/{module}``" without caring about the ids in the paths.
"""

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote


class MalformedRequestError(ValueError):
    """A request the API would refuse as malformed; each API renders it in its own error shape."""


class ApiError(Exception):
    """Ends a handler with a ready answer (a 404, a 422 ...) from however deep it was found."""

    def __init__(self, response: "Response") -> None:
        super().__init__(response.status)
        self.response = response


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    client_host: str

    def arg(self, name: str) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body as JSON; an empty body reads as None."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MalformedRequestError("HTTP body must be valid JSON") from exc

    def int_arg(self, name: str) -> int | None:
        """An integer query parameter; raises MalformedRequestError when present but not an integer."""
        text = self.arg(name)
        if text is None or text == "":
            return None
        try:
            return int(text)
        except ValueError as exc:
            raise MalformedRequestError(f"{name} must be an integer") from exc

    def int_or(self, name: str, default: int) -> int:
        value = self.int_arg(name)
        return default if value is None else value


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    drop: bool = False


def json_response(status: int, payload: Any, headers: Sequence[tuple[str, str]] = ()) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(status, body, (("Content-Type", "application/json; charset=utf-8"), *headers))


def empty_response(status: int) -> Response:
    return Response(status)


DROPPED = Response(0, drop=True)

Handler = Callable[[Request, dict[str, str]], Response]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler
    pattern: re.Pattern[str] = field(compare=False)


def route(method: str, template: str, handler: Handler) -> Route:
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return Route(method, template, handler, re.compile(regex + "/?"))


@dataclass(frozen=True)
class Match:
    route: Route
    params: dict[str, str]
    method_allowed: bool


def match(routes: Sequence[Route], method: str, path: str) -> Match | None:
    """The route whose template fits the path, preferring one with the request's method.

    A path that fits only with another method still names that endpoint, so a wrong method is
    counted against it; the caller answers it as unknown.
    """
    fallback: Match | None = None
    for candidate in routes:
        found = candidate.pattern.fullmatch(path)
        if found is None:
            continue
        params = {name: unquote(value) for name, value in found.groupdict().items()}
        if candidate.method == method:
            return Match(candidate, params, method_allowed=True)
        if fallback is None:
            fallback = Match(candidate, params, method_allowed=False)
    return fallback


class Api(Protocol):
    """One emulated API mounted under a path prefix."""

    name: str
    prefix: str
    via_gateway: bool

    def routes(self) -> list[Route]: ...

    def authorize(self, request: Request) -> Response | None:
        """None when the request may proceed, else the API's refusal."""

    def unknown(self, request: Request) -> Response:
        """The answer to a path or method the API does not have."""

    def error(self, status: int, message: str, retry_after: str | None = None) -> Response:
        """An error in this API's shape: malformed requests (400), injected 429/503, internal errors."""
