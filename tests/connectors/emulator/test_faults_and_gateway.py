"""Injected faults and the Maton gateway: its key check and the request budget shared by four apps."""

import time

import httpx
import pytest

from connectors.emulator import FaultConfig, running_emulator
from tests.connectors.emulator.conftest import linkflow_client, maton_client

TEAMS = "/clickfunnels/api/v2/teams"
LEADS = "/zoho-crm/crm/v8/Leads"


def test_missing_or_wrong_maton_key_gets_the_gateway_401(emulator):
    for headers in ({}, {"Authorization": "Bearer not-the-key"}):
        response = httpx.get(emulator.base_url + LEADS, params={"fields": "Email"}, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == 401
        assert "not-the-key" not in response.text


def test_maton_connection_header_is_accepted(maton):
    response = maton.get(TEAMS, headers={"Maton-Connection": "21fd90f9-5935-43cd-b6c8-bde9d915ca80"})
    assert response.status_code == 200


def test_injected_429_with_and_without_retry_after(emulator, maton):
    emulator.set_faults(FaultConfig(error_rate_429=1.0))
    plain = maton.get(TEAMS)
    assert plain.status_code == 429
    assert "Retry-After" not in plain.headers
    emulator.set_faults(FaultConfig(error_rate_429=1.0, retry_after_s=2))
    assert maton.get(TEAMS).headers["Retry-After"] == "2"
    emulator.set_faults(FaultConfig(error_rate_429=1.0, retry_after_s=0.25))
    assert maton.get(TEAMS).headers["Retry-After"] == "0.25"


def test_injected_503_keeps_each_apis_error_shape(emulator, maton, linkflow):
    emulator.set_faults(FaultConfig(error_rate_503=1.0))
    zoho = maton.get(LEADS, params={"fields": "Email"})
    assert (zoho.status_code, zoho.json()["status"]) == (503, "error")
    clicksend = maton.get("/clicksend/v3/account")
    assert (clicksend.status_code, clicksend.json()["http_code"]) == (503, 503)
    assert linkflow.get("/contacts").status_code == 503


def test_dropped_connections_get_no_answer(emulator, maton):
    emulator.set_faults(FaultConfig(drop_rate=1.0))
    with pytest.raises(httpx.RemoteProtocolError):
        maton.get(TEAMS)
    emulator.set_faults(FaultConfig())
    assert maton.get(TEAMS).status_code == 200


def test_faults_can_target_some_apps_and_still_count_requests(emulator, maton):
    emulator.set_faults(FaultConfig(error_rate_503=1.0, apps=frozenset({"zoho_crm"})))
    assert maton.get(LEADS, params={"fields": "Email"}).status_code == 503
    assert maton.get(TEAMS).status_code == 200
    assert emulator.request_counts()[("zoho_crm", "GET /zoho-crm/crm/v8/{module}")] == 1
    assert emulator.total_requests() == 2


def test_faults_can_target_some_methods_and_round_trip_through_the_admin_endpoint(emulator, maton):
    """A create's answer lost while the reads before it go through (reverse sync's look at a list)."""
    shown = httpx.post(emulator.base_url + "/_admin/faults", json={"drop_rate": 1.0, "methods": ["post"]})
    assert shown.json()["faults"]["methods"] == ["POST"]
    assert emulator.faults == FaultConfig(drop_rate=1.0, methods=frozenset({"POST"}))
    assert maton.get(TEAMS).status_code == 200
    with pytest.raises(httpx.RemoteProtocolError):
        maton.post(LEADS, json={"data": [{"Last_Name": "Lost"}]})
    emulator.set_faults(FaultConfig())


def test_fault_draws_repeat_for_a_seed():
    def statuses(seed: int) -> list[int]:
        faults = FaultConfig(error_rate_429=0.3, error_rate_503=0.3, seed=seed)
        with running_emulator(people=5, faults=faults) as emu, maton_client(emu) as client:
            return [client.get(TEAMS).status_code for _ in range(20)]

    assert statuses(1) == statuses(1)
    assert {200, 429, 503} <= set(statuses(1))
    assert statuses(1) != statuses(2)


def test_injected_challenge_page_answers_reads_with_200_html_before_the_api(emulator, maton, linkflow):
    emulator.set_faults(FaultConfig(challenge_rate=1.0))
    for answer in (maton.get(LEADS, params={"fields": "Email"}), linkflow.get("/contacts")):
        assert answer.status_code == 200
        assert answer.headers["Content-Type"].startswith("text/html")
        assert "<title>Just a moment...</title>" in answer.text
    # A bad key gets the same page: the CDN answers before the gateway looks at the request.
    assert "Just a moment" in httpx.get(emulator.base_url + LEADS).text
    # Writes are served as usual unless garbage_methods names them.
    list_id = next(iter(emulator.dataset.tables["clicksend/list_contact"].values()))["list_id"]
    contacts = f"/clicksend/v3/lists/{list_id}/contacts"
    created = maton.post(contacts, json={"email": "fault.test@example.org", "phone_number": "+14155550123"})
    assert created.json()["http_code"] == 200
    emulator.set_faults(FaultConfig(challenge_rate=1.0, garbage_methods=frozenset({"post"})))
    assert "Just a moment" in maton.post(contacts, json={"email": "again@example.org"}).text
    assert maton.get(TEAMS).json()[0]["id"]


def test_injected_truncation_serves_the_apis_own_answer_cut_in_half(emulator, maton):
    whole = maton.get(LEADS, params={"fields": "Email,Last_Name", "per_page": 5})
    emulator.set_faults(FaultConfig(truncate_rate=1.0))
    cut = maton.get(LEADS, params={"fields": "Email,Last_Name", "per_page": 5})
    assert cut.status_code == 200
    assert cut.headers["Content-Type"] == whole.headers["Content-Type"]
    assert cut.content == whole.content[: len(whole.content) // 2]
    with pytest.raises(ValueError, match=r"Unterminated|Expecting|unexpected end"):
        cut.json()
    # An error answer is served whole.
    assert maton.get("/zoho-crm/crm/v8/Nope", params={"fields": "Email"}).json()["code"] == "INVALID_MODULE"


def test_unreadable_answers_are_drawn_with_the_other_faults_for_a_seed(emulator, maton):
    whole = maton.get(TEAMS).content

    def kind(answer: httpx.Response) -> str:
        if answer.status_code == 503:
            return "503"
        if answer.headers["Content-Type"].startswith("text/html"):
            return "html"
        return "ok" if answer.content == whole else "cut"

    def kinds(seed: int) -> list[str]:
        emulator.set_faults(FaultConfig(error_rate_503=0.2, challenge_rate=0.2, truncate_rate=0.2, seed=seed))
        return [kind(maton.get(TEAMS)) for _ in range(30)]

    drawn = kinds(3)
    assert emulator.injected_faults() == {
        "unavailable": drawn.count("503"),
        "challenge": drawn.count("html"),
        "truncate": drawn.count("cut"),
    }
    assert kinds(3) == drawn
    assert set(drawn) == {"503", "html", "cut", "ok"}
    assert kinds(4) != drawn


def test_unreadable_answer_settings_round_trip_through_the_admin_endpoint(emulator):
    admin = emulator.base_url + "/_admin/faults"
    sent = {"challenge_rate": 0.05, "truncate_rate": 0.05, "garbage_methods": ["GET", "put"]}
    shown = httpx.post(admin, json=sent).json()["faults"]
    assert (shown["challenge_rate"], shown["truncate_rate"], shown["garbage_methods"]) == (
        0.05,
        0.05,
        ["GET", "PUT"],
    )
    assert emulator.faults == FaultConfig(
        challenge_rate=0.05, truncate_rate=0.05, garbage_methods=frozenset({"GET", "PUT"})
    )


def test_latency_delays_answers(emulator, maton):
    emulator.set_faults(FaultConfig(latency_ms=150))
    started = time.monotonic()
    assert maton.get(TEAMS).status_code == 200
    assert time.monotonic() - started >= 0.15


def test_bad_fault_settings_are_refused():
    with pytest.raises(ValueError, match="add up"):
        FaultConfig(error_rate_429=0.7, error_rate_503=0.7)
    with pytest.raises(ValueError, match="unknown apps"):
        FaultConfig(apps=frozenset({"hubspot"}))
    with pytest.raises(ValueError, match="add up"):
        FaultConfig(error_rate_503=0.5, challenge_rate=0.3, truncate_rate=0.3)
    with pytest.raises(ValueError, match="unknown garbage_methods"):
        FaultConfig(challenge_rate=0.1, garbage_methods=frozenset({"FETCH"}))
    with pytest.raises(ValueError, match="unknown methods"):
        FaultConfig(drop_rate=0.1, methods=frozenset({"FETCH"}))


def test_the_gateway_budget_is_shared_by_the_four_apps_but_not_linkflow():
    with (
        running_emulator(people=20, maton_rps=4) as emu,
        maton_client(emu) as maton,
        linkflow_client(emu) as lf,
    ):
        paths = [TEAMS, "/clicksend/v3/account", "/zoho-crm/crm/v8/org", "/zoho-bigin/bigin/v2/org"]
        assert [maton.get(path).status_code for path in paths] == [200, 200, 200, 200]
        refused = maton.get(TEAMS)
        assert refused.status_code == 429
        assert refused.json() == {
            "error": {"message": "Rate limited (10 requests/second per account)", "code": 429}
        }
        assert "Retry-After" not in refused.headers
        assert lf.get("/contacts").status_code == 200
        time.sleep(1.05)
        assert maton.get(TEAMS).status_code == 200
        emu.maton_rps = None
        assert all(maton.get(TEAMS).status_code == 200 for _ in range(10))
