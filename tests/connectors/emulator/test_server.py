"""The HTTP layer itself: keep-alive, lengths, bodies in chunks, routing by app, and a clean stop."""

import http.client
import threading
from urllib.parse import urlsplit

import httpx
import pytest

from connectors.emulator import Emulator, serve


def connection(emulator) -> http.client.HTTPConnection:
    url = urlsplit(emulator.base_url)
    return http.client.HTTPConnection(url.hostname, url.port, timeout=5)


def test_one_connection_serves_many_requests_each_with_a_length(emulator):
    conn = connection(emulator)
    headers = {"Authorization": "Bearer sandbox-maton-key", "User-Agent": "t"}
    for _ in range(3):
        conn.request("GET", "/zoho-crm/crm/v8/org", headers=headers)
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200
        assert int(response.headers["Content-Length"]) == len(body)
        assert response.headers["Connection"] is None or response.headers["Connection"].lower() != "close"
    conn.request(
        "GET", "/zoho-crm/crm/v8/Leads?fields=Email", headers={**headers, "If-Modified-Since": "2099-01-01"}
    )
    response = conn.getresponse()
    assert (response.status, response.read()) == (304, b"")
    conn.close()


def test_chunked_request_bodies_are_read(emulator, maton):
    contact_id = next(iter(emulator.dataset.tables["zoho_crm/contact"]))
    payload = f'{{"data": [{{"id": "{contact_id}", "Title": "Chunked"}}]}}'.encode()
    response = maton.put("/zoho-crm/crm/v8/Contacts", content=iter([payload[:10], payload[10:]]))
    assert response.status_code == 200
    assert emulator.dataset.tables["zoho_crm/contact"][contact_id]["Title"] == "Chunked"


def test_unknown_apps_paths_and_methods(emulator, maton):
    assert maton.get("/hubspot/v3/contacts").json()["error"]["code"] == 404
    unknown = maton.get("/zoho-crm/crm/v8/Leads/1/2/3")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "INVALID_URL_PATTERN")
    assert maton.patch("/clickfunnels/api/v2/teams").status_code == 404
    assert (
        maton.get("/zoho-crm/crm/v8/Deals", params={"fields": "Deal_Name"}).json()["code"] == "INVALID_MODULE"
    )
    counts = emulator.request_counts()
    assert counts[("clickfunnels", "PATCH /clickfunnels/api/v2/teams")] == 1
    assert counts[("zoho_crm", "GET /zoho-crm/crm/v8/<unknown>")] == 1


def test_malformed_bodies_get_each_apis_400(maton):
    response = maton.post("/zoho-crm/crm/v8/Leads", content=b"{not json")
    assert (response.status_code, response.json()["status"]) == (400, "error")
    response = maton.post("/clickfunnels/api/v2/workspaces/435231/contacts", content=b"[]")
    assert response.status_code == 400
    assert response.json()["error"].startswith("Bad request")


def test_stop_closes_idle_keep_alive_connections():
    emulator = Emulator(people=5).start()
    with httpx.Client(
        base_url=emulator.base_url, headers={"Authorization": "Bearer sandbox-maton-key"}
    ) as client:
        assert client.get("/zoho-crm/crm/v8/org").status_code == 200
        emulator.stop()
        with pytest.raises(httpx.TransportError):
            client.get("/zoho-crm/crm/v8/org")
    emulator.stop()
    with pytest.raises(RuntimeError):
        _ = emulator.base_url


def test_repr_and_env_keep_to_what_they_should(emulator):
    assert "sandbox-maton-key" not in repr(emulator)
    env = emulator.env()
    assert env["MATON_GATEWAY_URL"] == emulator.base_url
    assert env["LINKFLOW_BASE_URL"] == emulator.base_url + "/linkflow"


def test_serve_blocks_until_stopped_and_announces_itself():
    ready: list[dict[str, str]] = []
    stop = threading.Event()

    def announce(emulator: Emulator) -> None:
        ready.append(emulator.env())
        stop.set()

    runner = threading.Thread(
        target=serve, kwargs={"port": 0, "people": 5, "on_ready": announce, "stop": stop}
    )
    runner.start()
    runner.join(timeout=10)
    assert not runner.is_alive()
    assert ready[0]["MATON_API_KEY"] == "sandbox-maton-key"
