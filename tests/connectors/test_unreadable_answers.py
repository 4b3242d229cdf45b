"""2xx answers that are not the API's JSON: a read asks again like after a 503, a write is never sent
again and its outcome is unknown (``AmbiguousWriteError``), the way a connection dropped after a write
is. Against a scripted loopback server for the HTTP layer, and the emulator for whole client calls."""

from collections.abc import Iterator
from contextlib import closing

import pytest

from connectors.emulator import Emulator, FaultConfig
from connectors.emulator.faults import CHALLENGE_PAGE
from connectors.errors import AmbiguousWriteError, RetriableError
from connectors.http import HttpClient, RetryPolicy, StaticAuth
from connectors.stats import RequestStats
from tests.connectors.conftest import endpoint_count
from tests.connectors.scripted_server import Answer, ScriptedServer

CHALLENGE = Answer(200, raw=CHALLENGE_PAGE, content_type="text/html; charset=UTF-8")
# Cut inside "é" (two bytes in UTF-8): the body is not even text before it is not JSON.
CUT_IN_A_CHARACTER = Answer(200, raw='{"data": [{"id": "1", "First_Name": "Zoé'.encode()[:-1])
CUT_BETWEEN_VALUES = Answer(200, raw=b'{"data": [{"id": "1", "Email": "ann@example.org"}, {"id"')
LEADS = {"data": [{"id": "1", "Email": "ann@example.org"}]}


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as srv:
        yield srv


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(round(seconds, 3))


def client_for(server: ScriptedServer, sleeps: Sleeps, stats: RequestStats | None = None) -> HttpClient:
    return HttpClient(
        "zoho_crm",
        server.url,
        auth=StaticAuth({"Authorization": "Bearer s3cr3t-maton-key-value"}),
        retry=RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, budget=10),
        sleep=sleeps,
        rand=lambda: 1.0,
        stats=stats,
    )


@pytest.mark.parametrize("garbage", [CHALLENGE, CUT_IN_A_CHARACTER, CUT_BETWEEN_VALUES])
def test_a_read_answered_twice_with_garbage_then_json_succeeds_with_the_503_backoff(
    server: ScriptedServer, garbage: Answer
) -> None:
    server.answer(garbage, garbage, Answer(200, LEADS))
    sleeps, stats = Sleeps(), RequestStats()
    with closing(client_for(server, sleeps, stats)) as http:
        response = http.request("GET", "/crm/v8/{module}", path_params={"module": "Leads"})
        body = http.decode(response, "GET", "/crm/v8/Leads")

    assert body == LEADS
    assert body is http.decode(response, "GET", "/crm/v8/Leads"), "parsed once, on arrival"
    assert len(server.seen) == 3
    assert stats.snapshot().total_retries("zoho_crm") == 2

    # The same waits as two 503s would have cost.
    server.answer(Answer(503), Answer(503), Answer(200, LEADS))
    like_503 = Sleeps()
    with closing(client_for(server, like_503)) as http:
        http.request("GET", "/crm/v8/Leads")
    assert sleeps == like_503 == [0.01, 0.02]


@pytest.mark.parametrize(
    ("garbage", "said"),
    [
        (CHALLENGE, "text/html page: Just a moment..."),
        (CUT_IN_A_CHARACTER, f"JSON cut short after {len(CUT_IN_A_CHARACTER.raw or b'')} bytes"),
        (CUT_BETWEEN_VALUES, f"JSON cut short after {len(CUT_BETWEEN_VALUES.raw or b'')} bytes"),
    ],
)
def test_a_read_always_answered_with_garbage_fails_after_the_budget_in_one_line(
    server: ScriptedServer, garbage: Answer, said: str
) -> None:
    server.default = garbage
    with closing(client_for(server, Sleeps())) as http, pytest.raises(RetriableError) as info:
        http.request("GET", "/crm/v8/{module}", path_params={"module": "Leads"})

    assert len(server.seen) == 4
    assert str(info.value) == f"zoho_crm GET /crm/v8/Leads -> 200 INVALID_JSON: {said} (after 4 attempts)"
    assert "ann@" not in str(info.value)  # a body cut short holds records: it is never quoted


def test_retry_after_on_an_unreadable_read_is_honoured(server: ScriptedServer) -> None:
    page = Answer(200, headers={"Retry-After": "0"}, raw=CHALLENGE_PAGE, content_type="text/html")
    server.answer(page, Answer(200, LEADS))
    sleeps = Sleeps()
    with closing(client_for(server, sleeps)) as http:
        http.request("GET", "/crm/v8/Leads")
    assert sleeps == [0.0]


@pytest.mark.parametrize(
    ("method", "idempotent"), [("POST", False), ("POST", True), ("PUT", None), ("DELETE", None)]
)
@pytest.mark.parametrize("garbage", [CHALLENGE, CUT_BETWEEN_VALUES])
def test_a_write_answered_with_garbage_is_not_sent_again_and_its_outcome_is_unknown(
    server: ScriptedServer, method: str, idempotent: bool | None, garbage: Answer
) -> None:
    server.answer(garbage, Answer(200, LEADS))
    with closing(client_for(server, Sleeps())) as http, pytest.raises(AmbiguousWriteError) as info:
        http.request(method, "/crm/v8/Leads", json_body={"data": []}, idempotent=idempotent)

    assert len(server.seen) == 1, "a write whose answer could not be read was sent again"
    assert (info.value.status, info.value.code) == (200, "INVALID_JSON")


def test_an_empty_2xx_is_not_an_unreadable_answer(server: ScriptedServer) -> None:
    server.answer(Answer(200), Answer(204))
    with closing(client_for(server, Sleeps())) as http:
        assert http.request("GET", "/x").status_code == 200
        assert http.request("PUT", "/x", json_body={}).status_code == 204
    assert len(server.seen) == 2


def test_a_zoho_batch_answered_cut_short_is_applied_once_and_left_unknown(start_emulator, connect) -> None:
    """The emulator applies the update and cuts its answer: one call, three records written, and the
    client neither sends it again nor reports the records as refused."""
    emu: Emulator = start_emulator(seed=7, people=30)
    crm = connect(emu).zoho_crm
    ids = sorted(emu.dataset.tables["zoho_crm/lead"])[:3]
    emu.set_faults(FaultConfig(truncate_rate=1.0, garbage_methods=frozenset({"PUT"})))
    with pytest.raises(AmbiguousWriteError) as info:
        crm.update("Leads", [{"id": i, "City": "Springfield"} for i in ids])

    assert endpoint_count(emu, "zoho_crm", "PUT /zoho-crm/crm/v8/{module}") == 1
    assert sorted(str(w.record_id) for w in emu.writes()) == sorted(ids)
    assert "JSON cut short" in str(info.value)


def test_a_create_answered_with_a_challenge_page_is_not_sent_again(start_emulator, connect) -> None:
    """The CDN's page came instead of the API's answer: nothing was written, but the client cannot
    know that, so it does not send the create a second time."""
    emu: Emulator = start_emulator(seed=7, people=30)
    clicksend = connect(emu).clicksend
    list_id = str(next(iter(emu.dataset.tables["clicksend/list_contact"].values()))["list_id"])
    emu.set_faults(FaultConfig(challenge_rate=1.0, garbage_methods=frozenset({"POST"})))
    with pytest.raises(AmbiguousWriteError):
        clicksend.create_contact(list_id, {"email": "new.person@example.org"})

    posts = [
        n for (app, ep), n in emu.request_counts().items() if app == "clicksend" and ep.startswith("POST")
    ]
    assert posts == [1]
    assert emu.writes() == []
