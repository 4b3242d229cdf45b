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


def test_fault_draws_repeat_for_a_seed():
    def statuses(seed: int) -> list[int]:
        faults = FaultConfig(error_rate_429=0.3, error_rate_503=0.3, seed=seed)
        with running_emulator(people=5, faults=faults) as emu, maton_client(emu) as client:
            return [client.get(TEAMS).status_code for _ in range(20)]

    assert statuses(1) == statuses(1)
    assert {200, 429, 503} <= set(statuses(1))
    assert statuses(1) != statuses(2)


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
