"""Bad whole answers from one Maton app: that app's streams fail with one readable line each, naming
the source, method, endpoint and what was wrong, without a traceback or a secret; the other apps
behind the same gateway URL, and Linkflow, land their data.

A pass-through proxy in front of the emulator's gateway corrupts the answers under one app's path
prefix. Each run corrupts ClickFunnels, ClickSend and one of the two Zoho apps with the same kind of
bad answer (the Zoho app alternates between kinds), so five small runs cover every kind on every
app while one Zoho app and Linkflow show that the rest still flows.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from connectors.emulator import Emulator, running_emulator
from connectors.emulator.dataset import ZOHO_TABLES
from models.warehouse.db import open_warehouse
from models.warehouse.tables import ContactSource, RawRecord, StreamState
from pipelines.runner import SyncReport, run_sync
from pipelines.streams import STREAMS
from tests.pipelines.conftest import settings_for
from tests.pipelines.test_extract import emulator_ids, stored_ids
from tests.proof.garbage_server import ECHO, BadAnswer, corrupting_proxy

pytestmark = pytest.mark.slow

GATEWAY_PREFIX = {
    "clickfunnels": "/clickfunnels/",
    "clicksend": "/clicksend/",
    "zoho_crm": "/zoho-crm/",
    "zoho_bigin": "/zoho-bigin/",
}
NGINX_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class Kind:
    answer: BadAnswer
    said: str
    """What the failure line must say after ``-> ``: the status and what was wrong."""


# A read answered 200 with something that is not JSON, like a 502, is transient, so each request is
# tried 8 times; Retry-After: 0 keeps those attempts from waiting (the backoff itself is proven in
# tests/connectors/test_http.py and test_unreadable_answers.py).
NO_WAIT = {"Retry-After": "0"}
KINDS = {
    "not_json": Kind(
        BadAnswer(200, "application/json", b"Service restarting, try again later", NO_WAIT),
        "200 INVALID_JSON: application/json body: 'Service restarting, try again later' (after 8 attempts)",
    ),
    "truncated_json": Kind(
        BadAnswer(
            200, "application/json", b'{"data": [{"id": "4970762000000335415", "Email": "ann@exa', NO_WAIT
        ),
        "200 INVALID_JSON: JSON cut short after 57 bytes (after 8 attempts)",
    ),
    # Zoho's older APIs answered XML; a misrouted request can still get one.
    "wrong_content_type": Kind(
        BadAnswer(
            200,
            "application/xml",
            b'<?xml version="1.0" encoding="UTF-8"?><response><error><code>4834</code>'
            b"<message>Invalid Ticket Id</message></error></response>",
            NO_WAIT,
        ),
        "200 INVALID_JSON: application/xml body: 4834 Invalid Ticket Id (after 8 attempts)",
    ),
    "proxy_html_502": Kind(
        BadAnswer(502, "text/html", NGINX_502, NO_WAIT),
        "502 text/html page: 502 Bad Gateway (after 8 attempts)",
    ),
    # The gateway's own envelope, echoing the key it was sent.
    "error_envelope_in_200": Kind(
        BadAnswer(
            200,
            "application/json",
            b'{"error": {"code": "UPSTREAM_ERROR", "message": "upstream refused ' + ECHO + b'"}}',
        ),
        "200 UPSTREAM_ERROR: upstream refused",
    ),
}


def corrupted_apps(kind: str) -> tuple[str, ...]:
    zoho = ("zoho_crm", "zoho_bigin")[sorted(KINDS).index(kind) % 2]
    return ("clickfunnels", "clicksend", zoho)


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    """Read-only here (pushes are off), so one small emulator serves every run."""
    with running_emulator(seed=41, people=40) as emu:
        yield emu


def sync_behind(
    emu: Emulator, url: str, corrupted: dict[str, BadAnswer]
) -> tuple[SyncReport, dict[str, int]]:
    answers = {GATEWAY_PREFIX[app]: answer for app, answer in corrupted.items()}
    with corrupting_proxy(emu.maton_gateway_url, answers) as (gateway, log):
        report = run_sync(settings_for(emu, url, contact_sync_push="off", maton_gateway_url=gateway))
    return report, dict(log.served)


def secrets_of(emu: Emulator) -> list[str]:
    env = emu.env()
    return [env["MATON_API_KEY"], env["LINKFLOW_APP_KEY"], env["LINKFLOW_APP_SECRET"]]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_maton_app_answering_badly_fails_alone_with_one_line_per_stream(
    emulator: Emulator, sqlite_url: str, capfd: pytest.CaptureFixture[str], kind: str
) -> None:
    bad = corrupted_apps(kind)
    report, served = sync_behind(emulator, sqlite_url, dict.fromkeys(bad, KINDS[kind].answer))

    assert not report.success
    assert set(served) == {GATEWAY_PREFIX[app] for app in bad}, "every corrupted app was asked"
    failed = [s for s in STREAMS if s.source in bad]
    assert len(report.failures) == len(failed), report.failures
    for stream, line in zip(failed, report.failures, strict=True):
        # "<stream>: <source> <METHOD> <endpoint> -> <status> <what was wrong>"
        pattern = rf"{re.escape(stream.name)}: {stream.source} GET /\S+ -> {re.escape(KINDS[kind].said)}"
        assert re.match(pattern, line), line
        assert "\n" not in line
        assert len(line) < 300, line
        assert "Traceback" not in line
        assert "unexpected" not in line, line  # a crash in a connector, not a reading of the answer

    stored = stored_ids(sqlite_url)
    for (source, obj), ids in emulator_ids(emulator).items():
        if source in bad:
            assert (source, obj) not in stored, (source, obj)
        else:
            assert stored.get((source, obj)) == ids, (source, obj)

    with open_warehouse(sqlite_url).connect() as connection:
        errors = dict(
            connection.execute(
                sa.select(StreamState.source + "/" + StreamState.object, StreamState.last_error).where(
                    StreamState.last_status == "failed"
                )
            ).all()
        )
    assert set(errors) == {s.name for s in failed}  # `contact-sync status` shows each one's line
    printed = capfd.readouterr()
    everything = "\n".join([*report.failures, *errors.values(), printed.out, printed.err])
    for secret in secrets_of(emulator):
        assert secret not in everything


def test_canonical_builds_from_what_landed_when_one_app_answers_badly(
    emulator: Emulator, sqlite_url: str
) -> None:
    report, _ = sync_behind(emulator, sqlite_url, {"clicksend": KINDS["not_json"].answer})

    assert [line.split(":")[0] for line in report.failures] == ["clicksend/list_contact", "clicksend/sms"]
    assert "canonical/contacts" in report.assets
    with open_warehouse(sqlite_url).connect() as connection:
        landed = connection.execute(sa.select(sa.func.count()).select_from(RawRecord)).scalar_one()
        linked = connection.execute(
            sa.select(sa.func.count()).select_from(ContactSource).where(ContactSource.contact_id.is_not(None))
        ).scalar_one()
    # Every record of the other apps landed, and every contact record among them has its contact.
    expected = {key: ids for key, ids in emulator_ids(emulator).items() if key[0] != "clicksend"}
    assert stored_ids(sqlite_url) == expected
    assert landed == sum(len(ids) for ids in expected.values())
    assert linked == sum(len(ids) for (_, obj), ids in expected.items() if obj in ("contact", "lead"))


def test_bad_timestamps_inside_good_answers_do_not_stop_a_stream(emulator: Emulator, sqlite_url: str) -> None:
    """A record's own time steers paging; one unreadable value must cost that value, not the stream."""
    tables = emulator.dataset.tables
    changed = {}
    for table, field, value in (
        ("clickfunnels/contact", "updated_at", "yesterday"),
        (ZOHO_TABLES[0], "Modified_Time", "not a time"),
        (ZOHO_TABLES[2], "Modified_Time", "2026-13-45T99:00:00+00:00"),
    ):
        record = next(iter(tables[table].values()))
        changed[table] = (record, field, record[field])
        record[field] = value
    try:
        report = run_sync(settings_for(emulator, sqlite_url, contact_sync_push="off"))
    finally:
        for record, field, original in changed.values():
            record[field] = original  # the module's emulator serves the other tests too

    assert report.success, report.failures
    assert stored_ids(sqlite_url) == emulator_ids(emulator)
