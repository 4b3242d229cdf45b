"""Wiring and secrecy: the gateway prefix, per-app headers, and no secret in any repr or log line."""

import json
import logging

import pytest

from connectors.clickfunnels import ClickFunnelsContactCursor
from connectors.clicksend import ClickSendListContactCursor, ClickSendSmsCursor
from connectors.config import HttpOptions, LinkflowConfig, MatonConfig
from connectors.factory import build_clients
from connectors.http import RetryPolicy
from connectors.linkflow import LinkflowContactCursor, LinkflowEventCursor
from connectors.zoho import ZohoCursor
from tests.connectors.conftest import LINKFLOW_KEY, LINKFLOW_SECRET, MATON_KEY, SECRETS, drain
from tests.connectors.scripted_server import Answer, ScriptedServer

CONNECTION = "conn-2f9e-zoho"


@pytest.fixture
def server():
    with ScriptedServer() as srv:
        yield srv


def test_gateway_prefix_app_paths_and_connection_header(server):
    server.answer(Answer(200, {"org": [{"country_code": "NZ"}]}), Answer(200, {"data": {"country": "AU"}}))
    maton = MatonConfig(MATON_KEY, server.url + "/gw/", {"zoho_crm": CONNECTION})
    with build_clients(maton) as clients:
        assert clients.zoho_crm.org_country() == "NZ"
        assert clients.clicksend.account_country() == "AU"
        assert clients.linkflow is None
    zoho, clicksend = server.seen
    assert zoho.path == "/gw/zoho-crm/crm/v8/org"
    assert clicksend.path == "/gw/clicksend/v3/account"
    assert zoho.headers["Maton-Connection"] == CONNECTION
    assert "Maton-Connection" not in clicksend.headers
    assert zoho.headers["Authorization"] == f"Bearer {MATON_KEY}"
    assert clicksend.headers["User-Agent"] == "contact-sync/0.1 (+Maton/1.0)"


def test_one_bucket_is_shared_by_the_maton_apps(server):
    with build_clients(MatonConfig(MATON_KEY, server.url), LinkflowConfig("k", "s", server.url)) as clients:
        limiters = {
            id(c.http.limiter)
            for c in (clients.clickfunnels, clients.clicksend, clients.zoho_crm, clients.zoho_bigin)
        }
        assert limiters == {id(clients.maton_limiter)}
        assert clients.linkflow.http.limiter is not clients.maton_limiter
        assert clients.maton_limiter.rate == 9.5


def test_no_secret_in_reprs_or_logs(emu, caplog):
    caplog.set_level(logging.DEBUG)
    maton = MatonConfig(MATON_KEY, emu.maton_gateway_url, {"zoho_crm": CONNECTION})
    linkflow = LinkflowConfig(LINKFLOW_KEY, LINKFLOW_SECRET, emu.linkflow_base_url)
    with build_clients(maton, linkflow, options=HttpOptions(retry=RetryPolicy(base_delay=0.01))) as clients:
        drain(clients.linkflow.read_events())
        drain(clients.zoho_crm.read_leads())
        emu.expire_linkflow_tokens()
        drain(clients.linkflow.read_events())
        token = clients.linkflow.http.auth.headers()["X-OpenApi-Token"]
        shown = " ".join(
            [repr(maton), repr(linkflow), repr(clients), str(clients.stats)]
            + [repr(c) + repr(c.http) + repr(c.http.auth) for c in (clients.zoho_crm, clients.linkflow)]
        )
    for secret in (*SECRETS, CONNECTION, token):
        assert secret not in shown
        assert secret not in caplog.text
    assert "GET /events/lite -> 401" in caplog.text


def test_every_stream_resumes_from_a_cursor_stored_as_json(emu, connect):
    clients = connect(emu)
    streams = [
        (clients.clickfunnels.read_contacts, ClickFunnelsContactCursor),
        (clients.clicksend.read_list_contacts, ClickSendListContactCursor),
        (clients.clicksend.read_sms, ClickSendSmsCursor),
        (clients.linkflow.read_contacts, LinkflowContactCursor),
        (clients.linkflow.read_events, LinkflowEventCursor),
        (clients.zoho_crm.read_leads, ZohoCursor),
        (clients.zoho_crm.read_contacts, ZohoCursor),
        (clients.zoho_bigin.read_contacts, ZohoCursor),
    ]
    for read, cursor_type in streams:
        pages = list(read(None))
        assert sum(len(p.records) for p in pages) > 0, read
        stored = json.loads(json.dumps(pages[-1].cursor.to_json()))
        revived = cursor_type.from_json(stored)
        assert revived == pages[-1].cursor
        again = list(read(revived))
        assert sum(len(p.records) for p in again) < sum(len(p.records) for p in pages), read
