"""The shared HTTP layer against a real local server: retries, budget, auth refresh, redaction."""

import json
import logging
import pickle
import threading
import time
from datetime import UTC, datetime

import pytest

from connectors.errors import (
    AmbiguousWriteError,
    AuthError,
    ConnectorError,
    FatalError,
    RateLimitedError,
    RetriableError,
)
from connectors.http import (
    HttpClient,
    RetryPolicy,
    StaticAuth,
    Timeouts,
    json_body,
    parse_retry_after,
    repeated_after_lost_answer,
)
from connectors.stats import RequestStats
from connectors.stop import StopFlag, StopRequested
from tests.connectors.scripted_server import DROP, Answer, ScriptedServer

SECRET = "s3cr3t-maton-key-value"


@pytest.fixture
def server():
    with ScriptedServer() as srv:
        yield srv


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(round(seconds, 3))


@pytest.fixture
def make():
    clients = []

    def build(server, *, retry=None, sleep=None, prefix="", auth=None, stats=None, timeouts=None):
        client = HttpClient(
            "zoho_crm",
            server.url + prefix,
            auth=auth or StaticAuth({"Authorization": f"Bearer {SECRET}"}),
            retry=retry or RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, budget=10),
            sleep=sleep if sleep is not None else Sleeps(),
            rand=lambda: 1.0,
            stats=stats,
            timeouts=timeouts,
        )
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


def test_prefixed_base_url_keeps_its_path_and_sends_auth_and_user_agent(make, server):
    client = make(server, prefix="/gw/zoho-crm/")
    client.request("GET", "/crm/v8/{module}", path_params={"module": "Leads"}, params={"fields": "A,B"})
    seen = server.seen[0]
    assert seen.path == "/gw/zoho-crm/crm/v8/Leads?fields=A%2CB"
    assert seen.headers["Authorization"] == f"Bearer {SECRET}"
    assert seen.headers["User-Agent"].startswith("contact-sync/")


def test_path_params_are_quoted(make, server):
    make(server).request("GET", "/contacts/{id}", path_params={"id": "a/b c"})
    assert server.seen[0].path == "/contacts/a%2Fb%20c"


def test_429_honours_retry_after_seconds(make, server):
    sleeps = Sleeps()
    server.answer(Answer(429, {"code": "TOO_MANY_REQUESTS"}, {"Retry-After": "2"}), Answer(200, {"x": 1}))
    response = make(server, sleep=sleeps).request("GET", "/x")
    assert response.json() == {"x": 1}
    assert sleeps == [2.0]


def test_429_without_retry_after_backs_off_exponentially(make, server):
    sleeps = Sleeps()
    server.answer(Answer(429), Answer(429), Answer(503), Answer(200))
    make(server, sleep=sleeps).request("GET", "/x")
    assert sleeps == [0.01, 0.02, 0.04]


def test_retry_after_http_date_and_garbage():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:05 GMT", now) == 5.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_retry_after_beyond_budget_gives_up_at_once(make, server):
    server.answer(Answer(429, None, {"Retry-After": "60"}))
    client = make(server, retry=RetryPolicy(max_attempts=5, budget=5))
    with pytest.raises(RateLimitedError) as info:
        client.request("GET", "/x")
    assert len(server.seen) == 1
    assert "budget" in str(info.value)


def test_attempts_exhausted_raises_retriable_with_count(make, server):
    stats = RequestStats()
    server.answer(*[Answer(503, {"error": {"message": "busy", "code": 503}})] * 4)
    with pytest.raises(RetriableError) as info:
        make(server, stats=stats).request("GET", "/crm/v8/{m}", path_params={"m": "Leads"})
    assert info.value.attempts == 4
    assert info.value.status == 503
    snap = stats.snapshot()
    assert snap.requests == {("zoho_crm", "GET /crm/v8/{m}"): 4}
    assert snap.total_retries("zoho_crm") == 3


def test_dropped_connection_on_read_is_retried(make, server):
    server.answer(DROP, Answer(200, {"ok": 1}))
    assert make(server).request("GET", "/x").json() == {"ok": 1}
    assert len(server.seen) == 2


def test_dropped_connection_on_create_is_ambiguous_and_not_repeated(make, server):
    server.answer(DROP)
    with pytest.raises(AmbiguousWriteError):
        make(server).request("POST", "/lists/{id}/contacts", path_params={"id": 1}, json_body={"a": 1})
    assert len(server.seen) == 1


def test_dropped_connection_on_declared_idempotent_write_is_retried(make, server):
    server.answer(DROP, Answer(200, {"data": []}))
    make(server).request("POST", "/Leads/upsert", json_body={"data": []}, idempotent=True)
    assert [s.method for s in server.seen] == ["POST", "POST"]
    assert server.seen[1].body == b'{"data": []}'


def test_create_is_repeated_after_429_because_nothing_was_done(make, server):
    server.answer(Answer(429), Answer(201, {"id": 5}))
    assert make(server).request("POST", "/contacts", json_body={}).status_code == 201


def test_5xx_on_create_is_ambiguous(make, server):
    server.answer(Answer(503))
    with pytest.raises(AmbiguousWriteError):
        make(server).request("POST", "/contacts", json_body={})
    assert len(server.seen) == 1


def test_500_with_business_code_is_fatal(make, server):
    server.answer(Answer(500, {"code": "B00030", "message": "page*size must be <= 10000"}))
    with pytest.raises(FatalError) as info:
        make(server).request("GET", "/v2/contacts_bulk/ids")
    assert info.value.code == "B00030"
    assert len(server.seen) == 1


def test_500_without_business_code_is_retried_on_reads_only(make, server):
    server.answer(Answer(500, {"code": "INTERNAL_ERROR", "message": "oops"}), Answer(200, {}))
    make(server).request("GET", "/x")
    assert len(server.seen) == 2
    server.answer(Answer(500, {"code": "INTERNAL_ERROR", "message": "oops"}))
    with pytest.raises(FatalError):
        make(server).request("PUT", "/x", json_body={})
    assert len(server.seen) == 3


def test_read_timeout_is_retried(make, server):
    server.answer(Answer(200, {"slow": True}, delay=0.5), Answer(200, {"fast": True}))
    client = make(server, timeouts=Timeouts(read=0.1))
    assert client.request("GET", "/x").json() == {"fast": True}


def test_accepted_statuses_are_returned(make, server):
    server.answer(Answer(404, {"code": "INVALID_URL_PATTERN"}))
    assert make(server).request("GET", "/x", accept=(404,)).status_code == 404


class RefreshingAuth:
    def __init__(self, succeed: bool = True):
        self.token = "tok-1"
        self.refreshes = 0
        self.succeed = succeed

    def headers(self):
        return {"X-OpenApi-Token": self.token}

    def refresh(self):
        self.refreshes += 1
        self.token = f"tok-{self.refreshes + 1}"
        return self.succeed

    def secrets(self):
        return [self.token]


def test_401_refreshes_credentials_once(make, server):
    auth = RefreshingAuth()
    server.answer(Answer(401), Answer(200, {}))
    make(server, auth=auth).request("GET", "/events/lite")
    assert [s.headers["X-OpenApi-Token"] for s in server.seen] == ["tok-1", "tok-2"]
    server.answer(Answer(401), Answer(401, {"code": "TOKEN_INVALID", "message": "bad token tok-3"}))
    with pytest.raises(AuthError) as info:
        make(server, auth=auth).request("GET", "/events/lite")
    assert auth.refreshes == 2
    assert "tok-3" not in str(info.value)


def test_error_line_is_readable_and_secret_free(make, server, caplog):
    caplog.set_level(logging.DEBUG, logger="connectors")
    body = {
        "code": "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
        "details": {"limit": 2000},
        "message": f"You can only get the first 2000 records without using page_token param {SECRET}",
        "status": "error",
    }
    server.answer(Answer(429), Answer(400, body))
    client = make(server, prefix="/zoho-crm")
    with pytest.raises(FatalError) as info:
        client.request("GET", "/crm/v8/Leads", params={"page": 11})
    text = str(info.value)
    assert text.startswith(
        "zoho_crm GET /crm/v8/Leads -> 400 DISCRETE_PAGINATION_LIMIT_EXCEEDED: You can only get"
    )
    assert "page=11" not in text
    everything = text + repr(info.value) + repr(client) + caplog.text
    assert SECRET not in everything
    assert "***" in text
    assert "retry 1 of 3" in caplog.text


def test_errors_survive_pickling():
    err = RateLimitedError(
        "clicksend", "GET", "/v3/sms/history", status=429, code="X", message="m", attempts=3
    )
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is RateLimitedError
    assert str(again) == str(err) == "clicksend GET /v3/sms/history -> 429 X: m (after 3 attempts)"
    assert isinstance(again, ConnectorError)


def test_error_without_response():
    err = RetriableError("linkflow", "GET", "/token", message="ConnectError: refused")
    assert str(err) == "linkflow GET /token -> no response ConnectError: refused"


def test_stats_diff():
    stats = RequestStats()
    stats.record("a", "GET /x", retry=False)
    before = stats.snapshot()
    stats.record("a", "GET /x", retry=True)
    stats.record("b", "GET /y", retry=False)
    delta = stats.snapshot().diff(before)
    assert delta.requests == {("a", "GET /x"): 1, ("b", "GET /y"): 1}
    assert delta.total_retries() == 1
    assert delta.as_metadata("b") == {"GET /y": 1}


@pytest.mark.parametrize(
    ("first", "landed"),
    [(DROP, True), (Answer(503, {"code": "INTERNAL_ERROR"}), True), (Answer(429, {}), False), (None, False)],
)
def test_a_repeat_after_an_attempt_that_may_have_landed_says_so(make, server, first, landed):
    """A dropped connection or a 5xx may come after the API applied the write; a 429 comes before."""
    if first is not None:
        server.answer(first)
    server.answer(Answer(200, {"data": []}))
    response = make(server).request("PUT", "/crm/v8/Leads", json_body={"data": []})
    assert repeated_after_lost_answer(response) is landed


def test_a_stop_refuses_the_next_request_and_ends_a_backoff_wait(server):
    """Once the stop flag is set no attempt starts: not a new request, not a retry. A backoff wait
    (here a Retry-After of 30 s) ends the moment the flag is set, and the interrupted request says
    whether an earlier attempt may have been applied."""
    stop = StopFlag()
    client = HttpClient("clicksend", server.url, retry=RetryPolicy(budget=60), stop=stop)
    try:
        server.answer(Answer(429, None, {"Retry-After": "30"}))
        threading.Timer(0.2, stop.request, args=("stopped by SIGINT",)).start()
        started = time.monotonic()
        with pytest.raises(StopRequested) as refused:
            client.request("GET", "/contacts")
        assert time.monotonic() - started < 5  # not the 30 s the server asked for
        assert (refused.value.reason, refused.value.sent) == ("stopped by SIGINT", False)  # 429: not applied
        assert len(server.seen) == 1

        with pytest.raises(StopRequested):
            client.request("PUT", "/contacts/{id}", path_params={"id": "1"}, json_body={"a": 1})
        assert len(server.seen) == 1  # the write never went out
    finally:
        client.close()


def test_a_stop_during_the_retry_of_a_write_that_may_have_landed_says_so(server):
    stop = StopFlag()
    client = HttpClient(
        "clicksend", server.url, retry=RetryPolicy(budget=60), stop=stop, sleep=lambda _s: stop.request("x")
    )
    try:
        server.answer(Answer(503))
        with pytest.raises(StopRequested) as refused:
            client.request("PUT", "/contacts/{id}", path_params={"id": "1"}, json_body={"a": 1})
        assert refused.value.sent  # a 503 may have been applied: the caller must not assume it was not
        assert len(server.seen) == 1
    finally:
        client.close()


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b'{"id": 9223372036854775807, "low": -9223372036854775808, "n": 1.5}', "application/json"),
        (b'{"big": 123456789012345678901234567890, "low": -9223372036854775809}', "application/json"),
        (b'{"id": "5725767000000411001", "n": 18446744073709551616}', "application/json"),
        (b'{"score": NaN, "top": Infinity}', "application/json"),
        ('{"name": "Jos\u00e9"}'.encode("latin-1"), "application/json; charset=latin-1"),
        (b'\xef\xbb\xbf{"a": [1, 2.5, "\\ud83d"]}', "application/json"),
        ('{"name": "Zo\u00eb \u5f20", "ok": true}'.encode(), "application/json"),
    ],
)
def test_a_body_parses_to_what_the_standard_parser_gives(make, server, raw, content_type):
    """orjson parses the usual body; one it refuses (NaN, another charset, a byte-order mark, a lone
    surrogate) or would read otherwise (an integer outside 64 bits, which it makes a float) is parsed
    as before, so no answer reads differently."""
    server.answer(Answer(raw=raw, content_type=content_type))
    response = make(server).request("GET", "/x")
    parsed = json_body(response)
    assert json.dumps(parsed, sort_keys=True) == json.dumps(response.json(), sort_keys=True)
    assert [type(v) for v in parsed.values()] == [type(v) for v in response.json().values()]
