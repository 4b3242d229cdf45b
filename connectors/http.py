"""The HTTP layer every source client sends through: retries, rate limit, counts, redaction.

httpx retries nothing but connection set-up, and none of these APIs retries for us, so this module
decides, per attempt, whether a failure is worth repeating:

- connection errors (refused, reset, a server closing the connection without answering), timeouts,
  429 and 502/503/504 are transient; so is 500 on a read, unless its body carries a business error
  code (Linkflow answers validation errors such as ``B00030`` with HTTP 500);
- a write is repeated only when the caller declares it safe (``idempotent=True``: PUT, upsert). A
  create that failed after the request may have left is never repeated: it raises
  ``AmbiguousWriteError`` so the caller looks the record up first; a repeated write whose earlier
  attempt may have landed says so (``repeated_after_lost_answer``), so a refusal of the repeat can be
  told from an outside edit;
- a 2xx answer whose body is not JSON (a CDN's "Just a moment..." page, a body cut short, a
  misrouted XML answer) is parsed here, once: on a read it is retried like a 503, since the next
  answer is expected to be the API's; on a write it raises ``AmbiguousWriteError`` without repeating
  the write, since the write may or may not have been applied (the same unknown outcome as a
  connection that dropped after the request went out). The parsed body is kept on the response, so
  ``decode_json`` does not parse it again;
- waits are exponential with full jitter, or what ``Retry-After`` says (seconds or an HTTP date;
  Zoho and Maton send none), all inside a total time budget per request.

Every attempt takes a token from the source's bucket first and is counted in ``RequestStats`` under
its endpoint template. Logs carry the method, the path template's concrete path without the query,
the status and the API's error code; never headers, never query strings, never a secret value.
"""

import email.utils
import functools
import html
import json
import logging
import random
import re
import ssl
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

import httpx
import orjson

from connectors.errors import (
    AmbiguousWriteError,
    AuthError,
    ConnectorError,
    FatalError,
    NotFoundError,
    RateLimitedError,
    RetriableError,
)
from connectors.ratelimit import TokenBucket
from connectors.stats import RequestStats
from connectors.stop import STOP, StopFlag

USER_AGENT = "contact-sync/0.1 (+Maton/1.0)"
"""ClickFunnels rejects requests without a User-Agent; Maton's own examples send ``Maton/1.0``."""

_TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
_GENERIC_SERVER_CODES = frozenset({"INTERNAL_ERROR", "INTERNAL_SERVER_ERROR", "SERVER_ERROR", "500"})
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Failures that prove the request never reached the server: safe to repeat even for a create."""
_REPEATED_AFTER_LOST_ANSWER = "contact_sync.repeated_after_lost_answer"
_PARSED_BODY = "contact_sync.parsed_body"
"""``response.extensions`` key of the JSON body ``HttpClient.request`` parsed on arrival."""
_READS = frozenset({"GET", "HEAD"})
"""Methods that change nothing: an unreadable answer to one of them is asked for again. No client
reads with another method (there is no search-style POST among the endpoints used)."""


def repeated_after_lost_answer(response: httpx.Response) -> bool:
    """Whether ``HttpClient.request`` got ``response`` by repeating a request whose earlier attempt
    may have reached the API (the connection dropped after sending, or a 5xx): that attempt may have
    been applied, so a write refused now can have been refused because of our own earlier write."""
    return bool(response.extensions.get(_REPEATED_AFTER_LOST_ANSWER))


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before giving up on one request."""

    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 30.0
    budget: float = 120.0
    """Seconds from the first attempt after which no further attempt starts."""

    def backoff(self, retry: int, rand: Callable[[], float]) -> float:
        """Full jitter: uniform in [0, min(max_delay, base * 2**(retry-1))] (AWS architecture blog)."""
        return float(rand() * min(self.max_delay, self.base_delay * 2.0 ** (retry - 1)))


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    read: float = 60.0
    write: float = 60.0
    pool: float = 30.0

    def to_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


class Auth(Protocol):
    """Supplies credentials per attempt, so a refreshed token is used by the next attempt."""

    def headers(self) -> Mapping[str, str]: ...

    def refresh(self) -> bool:
        """Called once per request on a 401; True when new credentials make another try worthwhile."""
        ...

    def secrets(self) -> Sequence[str]:
        """Values that must never appear in a log line or an error message."""
        ...


@dataclass(frozen=True)
class StaticAuth:
    """Fixed headers (Maton's bearer key and connection id)."""

    values: Mapping[str, str] = field(repr=False)

    def headers(self) -> Mapping[str, str]:
        return self.values

    def refresh(self) -> bool:
        return False

    def secrets(self) -> Sequence[str]:
        # The bare key too, not only "Bearer <key>": an API may echo it back on its own.
        return [part for v in self.values.values() for part in {v, v.split()[-1] if v else v} if part]


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date, RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def describe_error(
    response: httpx.Response, redact: Callable[[str], str] | None = None
) -> tuple[str | None, str]:
    """The API's own error code and message from whichever envelope it uses.

    Zoho ``{code, message}`` (also per element of ``data``), Maton ``{error: {code, message}}``,
    ClickFunnels ``{error: "..."}``, ClickSend ``{response_code, response_msg}``, Linkflow
    ``{code|errorCode, message|msg}``. A body that is not JSON (a proxy's HTML error page) is
    summarised by ``body_summary``. ``redact`` is applied to the message before anything is cut off,
    so no part of a secret survives the cut.
    """
    try:
        body = json_body(response)
    except (ValueError, UnicodeDecodeError):
        return None, body_summary(response, redact)
    if isinstance(body, dict) and isinstance(body.get("data"), list) and body["data"]:
        first = body["data"][0]
        if isinstance(first, dict) and "code" in first:
            body = first
    if not isinstance(body, dict):
        return None, ""
    error = body.get("error")
    if isinstance(error, dict):
        body = error
    elif isinstance(error, str) and not any(k in body for k in ("code", "message")):
        return None, error
    code = next((body[k] for k in ("code", "errorCode", "error_code", "response_code") if body.get(k)), None)
    message = next(
        (
            body[k]
            for k in ("message", "msg", "errorMessage", "response_msg", "error_description", "error")
            if isinstance(body.get(k), str)
        ),
        "",
    )
    code_text = None if code is None or str(code) == str(response.status_code) else str(code)
    return code_text, redact(message) if redact else message


_MARKUP_DROPPED = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->", re.IGNORECASE | re.DOTALL)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_SUMMARY_LENGTH = 160


def body_summary(response: httpx.Response, redact: Callable[[str], str] | None = None) -> str:
    """A short, one-line, human reading of a body that is not JSON, naming its content type.

    An HTML or XML page (a proxy's error page, a login page, Zoho's old XML errors) is reduced to
    its title, or to its text without tags when it has none: ``text/html page: 502 Bad Gateway``
    reads better in a log than the markup. Other text is quoted, shortened.
    """
    kind = response.headers.get("Content-Type", "").split(";")[0].strip() or "no content type"
    try:
        text = response.text
    except (LookupError, ValueError):  # an unknown or lying charset
        text = response.content.decode("utf-8", errors="replace")
    if redact is not None:
        text = redact(text)
    if not text.strip():
        return f"empty {kind} body"
    stripped = text.lstrip()
    if "html" in kind or "xml" in kind or stripped.startswith("<"):
        title = _TITLE.search(text)
        words = (title.group(1) if title else _TAG.sub(" ", _MARKUP_DROPPED.sub(" ", text))).split()
        readable = " ".join(html.unescape(" ".join(words)).split())
        noun = (
            "page"
            if "html" in kind or stripped[:14].lower().startswith(("<!doctype html", "<html"))
            else "body"
        )
        return f"{kind} {noun}: {_shorten(readable)}" if readable else f"{kind} {noun} without text"
    return f"{kind} body: {_shorten(' '.join(text.split()))!r}"


def _shorten(text: str) -> str:
    return text if len(text) <= _SUMMARY_LENGTH else text[: _SUMMARY_LENGTH - 3] + "..."


def json_body(response: httpx.Response) -> Any:
    """The body as JSON: the value ``HttpClient.request`` parsed on arrival, else parsed now.

    Raises ``ValueError`` (``UnicodeDecodeError`` included) when the body is not JSON.
    """
    if _PARSED_BODY in response.extensions:
        return response.extensions[_PARSED_BODY]
    return _parse_json(response)


def _parse_json(response: httpx.Response) -> Any:
    """The body as JSON: what ``response.json()`` gives, through orjson where that is the same.

    orjson reads a page of records in about a third of the standard library's time. It refuses some
    bodies httpx reads (another charset, a byte-order mark, ``NaN``, a lone surrogate), and it reads
    an integer outside 64 bits as a float; a body with a run of digits that long (20, or 19 after a
    minus sign) or one orjson refuses is parsed by httpx, as before. The warehouse reads its stored
    payloads back the same way (`models.warehouse.json_text`)."""
    body = response.content
    shape = body.translate(_DIGITS_ALIKE)
    if _LONG_INTEGER not in shape and _LONG_NEGATIVE_INTEGER not in shape:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return response.json()


_DIGITS_ALIKE = bytes.maketrans(b"0123456789", b"9999999999")
_LONG_INTEGER = b"9" * 20
_LONG_NEGATIVE_INTEGER = b"-" + b"9" * 19


def _parse_body(response: httpx.Response) -> Exception | None:
    """Parse a 2xx body once, keeping the value on the response; the error when it is not JSON.

    An empty body (204, or a write answered with nothing) is left alone: the callers that expect one
    say what they make of it.
    """
    if not response.content.strip():
        return None
    try:
        response.extensions[_PARSED_BODY] = _parse_json(response)
    except (ValueError, UnicodeDecodeError) as exc:
        return exc
    return None


def decode_json(
    response: httpx.Response,
    source: str,
    method: str,
    path: str,
    *,
    redact: Callable[[str], str] | None = None,
) -> Any:
    """The body as JSON, or a ``FatalError`` naming the endpoint and what came instead.

    The content type is not checked when the body parses (a gateway may label JSON ``text/plain``);
    when it does not, the error says whether the JSON was cut short (a connection closed mid-body)
    or what the body was instead (``text/html page: 502 Bad Gateway``).
    """
    try:
        return json_body(response)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FatalError(
            source,
            method,
            path,
            status=response.status_code,
            code="INVALID_JSON",
            message=_not_json(response, exc, redact),
        ) from None


def _not_json(response: httpx.Response, exc: Exception, redact: Callable[[str], str] | None) -> str:
    """What was wrong, without quoting a cut-short body (it holds records, so personal data).

    A body cut inside a multi-byte character fails before the JSON parser sees it (UTF-8 "unexpected
    end of data"); it is as cut short as one cut between characters.
    """
    starts_like_json = response.content.lstrip()[:1] in (b"{", b"[")
    if isinstance(exc, json.JSONDecodeError) and starts_like_json:
        ran_out = exc.pos >= len(exc.doc.rstrip()) or exc.msg.startswith("Unterminated string")
        if ran_out:
            return f"JSON cut short after {len(response.content)} bytes"
    if isinstance(exc, UnicodeDecodeError) and starts_like_json and exc.reason == "unexpected end of data":
        return f"JSON cut short after {len(response.content)} bytes"
    return body_summary(response, redact)


def unexpected_shape(
    response: httpx.Response,
    source: str,
    method: str,
    path: str,
    expected: str,
    *,
    redact: Callable[[str], str] | None = None,
) -> FatalError:
    """The error for a successful answer of the wrong shape, in the API's own words when it gave any.

    Some APIs answer 200 with an error envelope (``{"code": "B00500", "message": "system busy"}``);
    saying so, with the status, beats "expected a JSON array".
    """
    code, message = describe_error(response, redact)
    return FatalError(
        source,
        method,
        path,
        status=response.status_code,
        code=code or "UNEXPECTED_RESPONSE",
        message=message or expected,
    )


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The verifying TLS context every client shares, made as httpx makes its default one.

    httpx otherwise builds a fresh context per client, loading the whole CA bundle each time: about
    20 ms of CPU per client, and a sync makes one client per source and per check. A context is safe
    to share between clients and threads; only its CA store is loaded, once per process.
    """
    return httpx.create_ssl_context()


class HttpClient:
    """One source's HTTP session: base URL (which may carry a path prefix), auth, bucket, retries.

    ``client`` or ``transport`` can be injected by tests; otherwise one keep-alive ``httpx.Client``
    is created and closed with ``close()``. ``stop`` is the flag looked at before every attempt (the
    process's own by default): once set, no attempt starts and ``request`` raises ``StopRequested``;
    a backoff wait ends as soon as it is set, unless ``sleep`` replaces the wait (tests).
    """

    def __init__(
        self,
        source: str,
        base_url: str,
        *,
        auth: Auth | None = None,
        limiter: TokenBucket | None = None,
        stats: RequestStats | None = None,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        user_agent: str = USER_AGENT,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        stop: StopFlag | None = None,
    ) -> None:
        self.source = source
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.limiter = limiter
        self.stats = stats if stats is not None else RequestStats()
        self.retry = retry or RetryPolicy()
        self.log = logging.getLogger(f"connectors.{source}")
        self._stop = stop if stop is not None else STOP
        self._sleep: Callable[[float], object] = sleep if sleep is not None else self._stop.wait
        self._clock = clock
        self._rand = rand
        self._owns_client = client is None
        self._client = client or httpx.Client(
            timeout=(timeouts or Timeouts()).to_httpx(),
            transport=transport,
            verify=tls_context(),
            headers={"User-Agent": user_agent, "Accept": "application/json"},
            follow_redirects=False,
        )
        self._user_agent = user_agent

    def __repr__(self) -> str:
        return f"HttpClient(source={self.source!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def redact(self, text: str) -> str:
        """Remove every secret value the auth knows of from ``text``."""
        for secret in self.auth.secrets() if self.auth else ():
            if secret:
                text = text.replace(secret, "***")
        return text

    def decode(self, response: httpx.Response, method: str, path: str) -> Any:
        """``decode_json`` for this source, with its secrets kept out of the error."""
        return decode_json(response, self.source, method, path, redact=self.redact)

    def unexpected(self, response: httpx.Response, method: str, path: str, expected: str) -> FatalError:
        """``unexpected_shape`` for this source, with its secrets kept out of the error."""
        return unexpected_shape(response, self.source, method, path, expected, redact=self.redact)

    def request(
        self,
        method: str,
        template: str,
        *,
        path_params: Mapping[str, str | int] | None = None,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        accept: Collection[int] = (),
        authenticate: bool = True,
    ) -> httpx.Response:
        """Send with retries; return a 2xx/3xx response or one whose status is in ``accept``.

        ``template`` is the vendor path with ``{name}`` placeholders filled from ``path_params``
        (URL-quoted); requests are counted under the template. ``idempotent`` defaults to True for
        GET, HEAD, PUT and DELETE and False for POST. A non-empty 2xx body is parsed as JSON here
        (``json_body`` and ``decode_json`` then reuse the value): a read whose body is not JSON is
        retried like a 503, a write whose body is not JSON raises ``AmbiguousWriteError``. Raises
        ``StopRequested`` instead of starting an attempt once the stop flag is set (its ``sent`` says
        whether an earlier attempt may have been applied); the attempt in flight is never cut short.
        """
        method = method.upper()
        path = template.format(**{k: quote(str(v), safe="") for k, v in (path_params or {}).items()})
        endpoint = f"{method} {template}"
        safe = idempotent if idempotent is not None else method != "POST"
        is_read = method in _READS
        content = None if json_body is None else json.dumps(json_body, ensure_ascii=False).encode()
        started = self._clock()
        refreshed = False
        maybe_applied = False
        attempt = 0
        while True:
            attempt += 1
            self._stop.check(sent=maybe_applied)
            if self.limiter is not None:
                self.limiter.acquire()
                self._stop.check(sent=maybe_applied)  # the wait for a token may have been long
            self.stats.record(self.source, endpoint, retry=attempt > 1)
            sent = self._clock()
            try:
                response = self._send(
                    method, path=path, params=params, content=content, extra=headers, auth=authenticate
                )
            except httpx.TransportError as exc:
                maybe_applied = maybe_applied or not isinstance(exc, _NOT_SENT)
                failure: ConnectorError = self._transport_failure(method, path, exc, safe, attempt)
                wait = self.retry.backoff(attempt, self._rand)
                self._retry_or_raise(failure, wait, started, attempt, kind=type(exc).__name__)
                continue
            elapsed_ms = (self._clock() - sent) * 1000
            status = response.status_code
            self.log.debug("%s %s -> %s in %.0f ms (attempt %d)", method, path, status, elapsed_ms, attempt)
            problem = _parse_body(response) if 200 <= status < 300 else None
            if problem is not None:
                unreadable = self._unreadable(
                    method, path, response, problem, is_read=is_read, attempt=attempt
                )
                wait = self._told_or_backoff(response, attempt)
                self._retry_or_raise(unreadable, wait, started, attempt, kind=str(status))
                continue
            if status < 400 or status in accept:
                if maybe_applied:
                    response.extensions[_REPEATED_AFTER_LOST_ANSWER] = True
                return response
            if status == 401 and authenticate and not refreshed and self.auth and self.auth.refresh():
                refreshed = True
                self.log.info("%s %s -> 401; credentials refreshed, trying again", method, path)
                continue
            failure = self._status_failure(
                method, path, response, safe=safe, is_read=is_read, attempt=attempt
            )
            if not isinstance(failure, RetriableError):
                raise failure
            maybe_applied = maybe_applied or status >= 500
            wait = self._told_or_backoff(response, attempt)
            self._retry_or_raise(failure, wait, started, attempt, kind=str(status))

    def _told_or_backoff(self, response: httpx.Response, attempt: int) -> float:
        """The wait before the next attempt: the server's Retry-After when it gives one, else backoff."""
        told = parse_retry_after(response.headers.get("Retry-After"))
        return told if told is not None else self.retry.backoff(attempt, self._rand)

    def _send(
        self,
        method: str,
        *,
        path: str,
        params: Mapping[str, Any] | None,
        content: bytes | None,
        extra: Mapping[str, str] | None,
        auth: bool,
    ) -> httpx.Response:
        headers: dict[str, str] = {}
        if auth and self.auth is not None:
            headers.update(self.auth.headers())
        if content is not None:
            headers["Content-Type"] = "application/json"
        headers.update(extra or {})
        headers.setdefault("User-Agent", self._user_agent)
        query = {k: v for k, v in (params or {}).items() if v is not None}
        return self._client.request(
            method, self.base_url + path, params=query, content=content, headers=headers
        )

    def _unreadable(
        self,
        method: str,
        path: str,
        response: httpx.Response,
        problem: Exception,
        *,
        is_read: bool,
        attempt: int,
    ) -> ConnectorError:
        """The failure for a 2xx body that is not JSON, in ``decode_json``'s words.

        A read is repeated like a 503: a challenge page or a body cut short says nothing about the
        next answer. A write is not repeated, whatever its ``idempotent`` flag: the API may have
        applied it (a body cut short) or never seen it (a CDN's page), so its outcome is unknown
        and the caller settles it as it settles a connection dropped after sending.
        """
        message = _not_json(response, problem, self.redact)
        kind = RetriableError if is_read else AmbiguousWriteError
        return kind(
            self.source,
            method,
            path,
            status=response.status_code,
            code="INVALID_JSON",
            message=message,
            attempts=attempt,
        )

    def _transport_failure(
        self, method: str, path: str, exc: httpx.TransportError, safe: bool, attempt: int
    ) -> ConnectorError:
        message = self.redact(f"{type(exc).__name__}: {exc}")
        if safe or isinstance(exc, _NOT_SENT):
            return RetriableError(self.source, method, path, message=message, attempts=attempt)
        return AmbiguousWriteError(self.source, method, path, message=message, attempts=attempt)

    def _status_failure(
        self, method: str, path: str, response: httpx.Response, *, safe: bool, is_read: bool, attempt: int
    ) -> ConnectorError:
        status = response.status_code
        code, message = describe_error(response, self.redact)
        args = (self.source, method, path)
        kwargs: dict[str, Any] = {
            "status": status,
            "code": code,
            "message": message,
            "attempts": attempt,
        }
        if status == 429:
            return RateLimitedError(*args, **kwargs)
        business = code is not None and code not in _GENERIC_SERVER_CODES
        if status in _TRANSIENT_STATUSES or (status == 500 and is_read and not business):
            return RetriableError(*args, **kwargs) if safe else AmbiguousWriteError(*args, **kwargs)
        if status in (401, 403):
            return AuthError(*args, **kwargs)
        if status == 404:
            return NotFoundError(*args, **kwargs)
        return FatalError(*args, **kwargs)

    def _retry_or_raise(
        self, failure: ConnectorError, wait: float, started: float, attempt: int, kind: str
    ) -> None:
        if not isinstance(failure, RetriableError):
            raise failure
        if attempt >= self.retry.max_attempts:
            raise failure
        spent = self._clock() - started
        if spent + wait > self.retry.budget:
            failure.message = f"{failure.message} (retry budget of {self.retry.budget:.0f} s spent)".strip()
            failure.args = (str(failure),)
            raise failure
        self.log.warning(
            "%s %s %s -> %s%s; retry %d of %d in %.2f s",
            self.source,
            failure.method,
            failure.path,
            kind,
            f" {failure.code}" if failure.code else "",
            attempt,
            self.retry.max_attempts - 1,
            wait,
        )
        self._sleep(wait)
