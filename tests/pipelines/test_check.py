"""`contact-sync check` against the emulator over real HTTP: the table, one line per problem, the exit
status, `--json`, never a write; and the same check at the start of a sync, cached for a day."""

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.emulator import Emulator, FaultConfig, running_emulator
from connectors.emulator.behaviours import Behaviours
from models.warehouse.db import open_warehouse
from models.warehouse.tables import SourceCheckResult, utcnow
from pipelines.check import CheckReport, SourceCheck, run_check
from pipelines.runner import run_sync
from pipelines.settings import SOURCES, Settings, load_settings
from tests.connectors.scripted_server import Answer, ScriptedServer
from tests.pipelines.conftest import free_port, sandbox_process, settings_for
from tests.pipelines.test_cli import run_cli

LABELS = {"ok": "ok", "info": "-", "warning": "warn", "failure": "FAIL"}
"""How the table shows each status of the JSON document."""


def rows_of(report: CheckReport, source: str) -> dict[str, tuple[str, str]]:
    """check -> (status, result) for one source."""
    checked = next(c for c in report.sources if c.source == source)
    return {row.check: (row.level, row.result) for row in checked.rows}


def problem_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if re.match(r"(warn|FAIL) {2}\w+: ", line)]


def secrets_of(emu: Emulator) -> list[str]:
    env = emu.env()
    return [env["MATON_API_KEY"], env["LINKFLOW_APP_KEY"], env["LINKFLOW_APP_SECRET"]]


def settings_for_url(gateway: str, database_url: str) -> Settings:
    """Settings for a Maton gateway at ``gateway`` (a scripted one) and no Linkflow."""
    return load_settings(
        maton_api_key="scripted-key",
        maton_gateway_url=gateway,
        contact_sync_database_url=database_url,
        contact_sync_maton_rps=200.0,
    )


def test_check_against_the_sandbox_prints_the_table_reads_only_and_exits_0(
    emulator: Emulator, tmp_path: Path
) -> None:
    result = run_cli("check", env=emulator.env(), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["SOURCE", "CHECK", "STATUS", "RESULT"]
    for source in SOURCES:
        assert any(line.startswith(f"{source} ") for line in lines), source
    for check in ("credentials", "connection", "country", "time zone", "lead", "list_contact", "event"):
        assert any(re.match(rf"\S*\s+{check}\s{{2}}", line) for line in lines), check
    assert lines[-1] == "a sync would work, with 1 warning"
    # Read-only: nothing changed at any source, every request was a GET, and no warehouse appeared.
    assert emulator.writes() == []
    assert all(endpoint.startswith("GET ") for _, endpoint in emulator.request_counts())
    assert not (tmp_path / "contact_sync.db").exists()
    for secret in secrets_of(emulator):
        assert secret not in result.stdout


def test_json_parses_and_matches_the_table(emulator: Emulator, tmp_path: Path) -> None:
    table = run_cli("check", env=emulator.env(), cwd=tmp_path)
    document = json.loads(run_cli("check", "--json", env=emulator.env(), cwd=tmp_path).stdout)

    assert document["would_sync"] is True
    assert document["failed"] == []
    assert [s["source"] for s in document["sources"]] == list(SOURCES)
    cells = [re.split(r"\s{2,}", line.strip()) for line in table.stdout.splitlines()[1:] if line.strip()]
    expected = []
    for checked in document["sources"]:
        for index, row in enumerate(checked["rows"]):
            line = [row["check"], LABELS[row["status"]], row["result"]]
            expected.append([checked["source"], *line] if index == 0 else line)
    assert cells[: len(expected)] == expected
    problems = [
        f"{s['source']}: {r['advice']}" for s in document["sources"] for r in s["rows"] if r["advice"]
    ]
    assert [line.split("  ", 1)[1] for line in problem_lines(table.stdout)] == problems


def test_a_wrong_maton_key_names_the_sources_and_the_problem_in_one_line(
    emulator: Emulator, tmp_path: Path
) -> None:
    result = run_cli("check", env={**emulator.env(), "MATON_API_KEY": "wrong-maton-key-4711"}, cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        "contact-sync: check: a sync would fail for clickfunnels, clicksend, zoho_crm, zoho_bigin: "
        "MATON_API_KEY rejected (401"
    )
    assert "https://maton.ai/settings" in result.stderr
    assert "linkflow" not in result.stderr  # its own credentials work
    for source in ("clickfunnels", "clicksend", "zoho_crm", "zoho_bigin"):
        [line] = [p for p in problem_lines(result.stdout) if p.startswith(f"FAIL  {source}: ")]
        assert "MATON_API_KEY rejected (401" in line
    assert "wrong-maton-key-4711" not in result.stdout + result.stderr
    assert emulator.writes() == []


def test_a_wrong_linkflow_secret_names_linkflow_and_the_problem_in_one_line(
    emulator: Emulator, tmp_path: Path
) -> None:
    result = run_cli(
        "check", env={**emulator.env(), "LINKFLOW_APP_SECRET": "wrong-secret-0815"}, cwd=tmp_path
    )

    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        "contact-sync: check: a sync would fail for linkflow: LINKFLOW_APP_KEY and LINKFLOW_APP_SECRET "
        "rejected (401"
    )
    assert problem_lines(result.stdout)[0].startswith(
        "FAIL  linkflow: LINKFLOW_APP_KEY and LINKFLOW_APP_SECRET"
    )
    assert "wrong-secret-0815" not in result.stdout + result.stderr


def test_a_gateway_url_where_nothing_listens_names_the_host_and_the_advice(
    emulator: Emulator, tmp_path: Path
) -> None:
    port = free_port()
    env = {**emulator.env(), "MATON_GATEWAY_URL": f"http://127.0.0.1:{port}"}
    result = run_cli("check", "--source", "zoho_crm", env=env, cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr == (
        f"contact-sync: check: a sync would fail for zoho_crm: the configured MATON_GATEWAY_URL "
        f"(127.0.0.1:{port}) does not answer (ConnectError: [Errno 111] Connection refused): "
        "Maton documents https://api.maton.ai today\n"
    )
    assert re.search(rf"zoho_crm\s+gateway\s+FAIL\s+127\.0\.0\.1:{port} does not answer", result.stdout)


@pytest.mark.parametrize("answer", ["missing_404", "record_id_400", "empty_204"])
def test_bigin_without_deleted_is_named_in_one_line_as_a_warning(sqlite_url: str, answer: str) -> None:
    with running_emulator(seed=11, people=60, behaviours=Behaviours(bigin_deleted=answer)) as emu:
        report = run_check(settings_for(emu, sqlite_url), sources=("zoho_bigin",))

    assert report.would_sync
    [bigin] = report.sources
    assert bigin.state == "warning"
    [problem] = bigin.problems()
    assert problem.check == "/deleted feed"
    assert problem.level == "warning"
    assert problem.advice is not None
    assert problem.advice.startswith("Bigin has no /deleted feed (")
    assert "full id scan" in problem.advice
    assert "\n" not in problem.advice
    assert [line for line in report.lines() if "/deleted" in line and line.startswith("warn")] == [
        f"warn  zoho_bigin: {problem.advice}"
    ]


def test_bigin_with_a_deleted_feed_reports_it(sqlite_url: str) -> None:
    with running_emulator(seed=11, people=60, behaviours=Behaviours(bigin_deleted="feed")) as emu:
        report = run_check(settings_for(emu, sqlite_url), sources=("zoho_bigin",))

    assert rows_of(report, "zoho_bigin")["/deleted feed"] == ("ok", "available")
    assert report.sources[0].state == "ok"
    assert report.lines()[-1] == "a sync would work"


@pytest.mark.parametrize(("honours", "said"), [(False, "ignored"), (True, "honoured")])
def test_bigin_if_modified_since_is_detected_either_way(sqlite_url: str, honours: bool, said: str) -> None:
    behaviours = Behaviours(bigin_honours_if_modified_since=honours)
    with running_emulator(seed=11, people=60, behaviours=behaviours) as emu:
        report = run_check(settings_for(emu, sqlite_url), sources=("zoho_bigin",))

    level, result = rows_of(report, "zoho_bigin")["If-Modified-Since"]
    assert (level, result.split(":")[0]) == ("info", said)


def test_account_country_and_time_zone_come_from_each_api(emulator: Emulator, sqlite_url: str) -> None:
    report = run_check(settings_for(emulator, sqlite_url))

    assert rows_of(report, "zoho_crm")["country"] == ("info", "US")
    assert rows_of(report, "zoho_crm")["time zone"] == ("info", "EST")
    assert rows_of(report, "zoho_bigin")["time zone"] == ("info", "PST")
    assert rows_of(report, "clicksend")["time zone"] == ("info", "America/Chicago")
    assert rows_of(report, "clickfunnels")["time zone"] == ("info", "Pacific Time (US & Canada)")
    assert rows_of(report, "clickfunnels")["country"] == ("info", "not given by the API")


@pytest.mark.parametrize(
    ("order", "row"),
    [
        ("ascending", ("info", "ascending")),
        ("descending", ("info", "descending")),
        ("newest_tail", ("warning", "newest first, a tail")),
    ],
)
def test_linkflow_events_order_is_detected_and_a_tail_is_a_warning(
    sqlite_url: str, order: str, row: tuple[str, str]
) -> None:
    with running_emulator(seed=11, people=60, behaviours=Behaviours(linkflow_events_order=order)) as emu:
        report = run_check(settings_for(emu, sqlite_url), sources=("linkflow",))
        assert emu.writes() == []

    assert rows_of(report, "linkflow")["events order"] == row
    assert report.would_sync
    tail_lines = [line for line in report.lines() if "one request per contact" in line]
    assert len(tail_lines) == (order == "newest_tail")


@pytest.mark.parametrize(
    ("zone", "row"), [("Asia/Shanghai", ("info", "UTC+08:00")), ("UTC", ("warning", "UTC+00:00"))]
)
def test_linkflow_zone_is_detected_and_one_other_than_shanghai_is_a_warning(
    sqlite_url: str, zone: str, row: tuple[str, str]
) -> None:
    with running_emulator(seed=11, people=60, behaviours=Behaviours(linkflow_zone=zone)) as emu:
        report = run_check(settings_for(emu, sqlite_url), sources=("linkflow",))

    assert rows_of(report, "linkflow")["time zone"] == row
    assert report.would_sync
    assert len([line for line in report.lines() if line.startswith("warn  linkflow: Linkflow writes")]) == (
        zone != "Asia/Shanghai"
    )


def test_missing_clicksend_poll_rules_are_one_warning_line_each(sqlite_url: str) -> None:
    behaviours = Behaviours(clicksend_inbound_poll=False, clicksend_receipts_poll=False)
    with running_emulator(seed=11, people=60, behaviours=behaviours) as emu:
        report = run_check(settings_for(emu, sqlite_url), sources=("clicksend",))

    rows = rows_of(report, "clicksend")
    assert rows["POLL rule, inbound SMS"] == ("warning", "missing")
    assert rows["POLL rule, delivery receipts"] == ("warning", "missing")
    assert report.would_sync
    assert [line.split(":")[1].strip() for line in problem_lines("\n".join(report.lines()))] == [
        "no POLL rule for inbound SMS",
        "no POLL rule for delivery receipts",
    ]


def test_a_source_without_credentials_is_skipped_with_the_variable(
    emulator: Emulator, tmp_path: Path
) -> None:
    env = {k: v for k, v in emulator.env().items() if not k.startswith("LINKFLOW_APP")}
    result = run_cli("check", env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert re.search(
        r"linkflow\s+skipped\s+-\s+"
        r"no credentials \(set LINKFLOW_APP_KEY and LINKFLOW_APP_SECRET to enable it\)",
        result.stdout,
    )
    assert emulator.total_requests("linkflow") == 0


def test_a_missing_maton_connection_says_how_to_make_one(sqlite_url: str) -> None:
    refusal = {"error": {"message": "No active connection for zoho-crm", "code": 400}}
    with ScriptedServer() as server:
        server.answer(Answer(400, refusal))
        report = run_check(settings_for_url(server.url, sqlite_url), sources=("zoho_crm",))

    [crm] = report.sources
    assert [(row.check, row.level) for row in crm.rows] == [
        ("gateway", "ok"),
        ("credentials", "ok"),
        ("connection", "failure"),
    ]
    assert crm.first_failure() == (
        "Maton has no Zoho CRM connection for this key (400 No active connection for zoho-crm): connect "
        "Zoho CRM at https://api.maton.ai/connections (app zoho-crm), or set MATON_CONNECTION_ZOHO_CRM "
        "to an active one's id"
    )
    assert [seen.path for seen in server.seen] == ["/zoho-crm/crm/v8/org"]


def test_zoho_credits_left_are_read_from_the_answers(sqlite_url: str) -> None:
    org = {"org": [{"country_code": "DE", "time_zone": "Europe/Berlin"}]}
    with ScriptedServer() as server:
        server.answer(
            Answer(200, org, {"X-API-CREDITS-REMAINING": "24000"}),
            Answer(200, {"data": [], "info": {}}, {"X-API-CREDITS-REMAINING": "23999"}),
            Answer(204),
        )
        report = run_check(settings_for_url(server.url, sqlite_url), sources=("zoho_crm",))

    rows = rows_of(report, "zoho_crm")
    assert rows["API credits left"] == ("info", "23999")
    assert rows["country"] == ("info", "DE")
    assert rows["time zone"] == ("info", "Europe/Berlin")
    assert all(seen.method == "GET" for seen in server.seen)


# ------------------------------------------------------------------------------ sync start


def cached_rows(url: str) -> dict[str, sa.Row[Any]]:
    """source -> (fingerprint, result) of the kept checks."""
    with open_warehouse(url).connect() as connection:
        rows = connection.execute(
            sa.select(SourceCheckResult.source, SourceCheckResult.fingerprint, SourceCheckResult.result)
        ).all()
    return {row.source: row for row in rows}


def test_a_sync_with_a_rejected_key_stops_early_with_checks_advice(
    emulator: Emulator, sqlite_url: str
) -> None:
    settings = settings_for(
        emulator, sqlite_url, maton_api_key="wrong-maton-key-4711", contact_sync_push="off"
    )
    report = run_sync(settings, sources=("zoho_crm",))

    assert not report.success
    advice = (
        "MATON_API_KEY rejected (401 Invalid or expired API key): create a new key at "
        "https://maton.ai/settings and set MATON_API_KEY to it"
    )
    assert report.failures == [
        f"zoho_crm/lead: {advice}",
        f"zoho_crm/contact: {advice}",
    ]
    # One request found it; no listing was tried and nothing was kept to skip the next check.
    assert emulator.request_counts() == {("zoho_crm", "GET /zoho-crm/crm/v8/org"): 1}
    assert cached_rows(sqlite_url) == {}


def test_the_sync_start_check_runs_once_a_day_and_again_when_its_settings_change(
    emulator: Emulator, sqlite_url: str
) -> None:
    settings = settings_for(emulator, sqlite_url, contact_sync_push="off")
    org = ("zoho_bigin", "GET /zoho-bigin/bigin/v2/org")

    first = run_sync(settings, sources=("zoho_bigin",))
    assert first.success, first.failures
    assert first.assets["zoho_bigin/contact"]["source_check"] == "would sync, 1 warning"
    assert emulator.request_counts()[org] == 2  # the check, and the daily account-country refresh
    stored = cached_rows(sqlite_url)["zoho_bigin"]
    assert SourceCheck.from_json(stored.result).state == "warning"
    assert "sandbox-maton-key" not in json.dumps(stored.result) + stored.fingerprint

    emulator.reset_counters()
    assert run_sync(settings, sources=("zoho_bigin",)).success
    assert org not in emulator.request_counts()  # kept for a day: no request for it

    with open_warehouse(sqlite_url).begin() as connection:
        connection.execute(sa.update(SourceCheckResult).values(checked_at=utcnow() - timedelta(hours=25)))
    assert run_sync(settings, sources=("zoho_bigin",)).success
    assert emulator.request_counts()[org] == 1  # a day old: checked again

    emulator.reset_counters()
    moved = settings_for(emulator, sqlite_url, contact_sync_push="off", maton_connection_zoho_bigin="conn-2")
    assert run_sync(moved, sources=("zoho_bigin",)).success
    assert emulator.request_counts()[org] == 1  # another connection: checked again


def test_a_stream_failing_after_a_passing_check_makes_the_next_sync_check_again(
    emulator: Emulator, sqlite_url: str
) -> None:
    settings = settings_for(emulator, sqlite_url, contact_sync_push="off")
    assert run_sync(settings, sources=("zoho_crm",)).success
    assert "zoho_crm" in cached_rows(sqlite_url)

    # Zoho keeps answering 429 (a short Retry-After keeps the retries quick): the reads fail.
    emulator.set_faults(FaultConfig(error_rate_429=1.0, retry_after_s=0.01, apps=frozenset({"zoho_crm"})))
    report = run_sync(settings, sources=("zoho_crm",))

    assert not report.success
    assert report.failures[0].startswith("zoho_crm/lead: zoho_crm GET /crm/v8/Leads -> 429")
    assert "zoho_crm" not in cached_rows(sqlite_url)


def test_a_kept_result_this_version_cannot_read_is_checked_again(emulator: Emulator, sqlite_url: str) -> None:
    settings = settings_for(emulator, sqlite_url, contact_sync_push="off")
    assert run_sync(settings, sources=("zoho_crm",)).success
    with open_warehouse(sqlite_url).begin() as connection:
        connection.execute(sa.update(SourceCheckResult).values(result={"rows": "written otherwise"}))
    emulator.reset_counters()

    report = run_sync(settings, sources=("zoho_crm",))

    assert report.success, report.failures
    assert report.assets["zoho_crm/lead"]["source_check"] == "would sync"
    assert emulator.request_counts()[("zoho_crm", "GET /zoho-crm/crm/v8/org")] == 1
    assert SourceCheck.from_json(cached_rows(sqlite_url)["zoho_crm"].result).state == "ok"


@pytest.mark.slow
def test_check_against_a_sandbox_playing_other_behaviours_names_each_problem_in_one_line(
    tmp_path: Path,
) -> None:
    """What a user sees: `contact-sync sandbox --behaviour ...` in one process, `contact-sync check`
    in another, each problem of the account on one line and the exit status saying a sync would work."""
    flags = [
        "clicksend_inbound_poll=false",
        "clicksend_receipts_poll=false",
        "linkflow_events_order=newest_tail",
        "bigin_deleted=record_id_400",
    ]
    args = [arg for flag in flags for arg in ("--behaviour", flag)]
    with sandbox_process(tmp_path, "--people", "60", *args) as variables:
        result = run_cli(
            "check", env={**variables, "CONTACT_SYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}"}
        )

    assert result.returncode == 0, result.stderr
    problems = problem_lines(result.stdout)
    assert [line.split(":")[0] for line in problems] == [
        "warn  clicksend",
        "warn  clicksend",
        "warn  linkflow",
        "warn  zoho_bigin",
    ]
    assert problems[0].startswith("warn  clicksend: no POLL rule for inbound SMS")
    assert problems[1].startswith("warn  clicksend: no POLL rule for delivery receipts")
    assert "one request per contact" in problems[2]
    assert problems[3].startswith("warn  zoho_bigin: Bigin has no /deleted feed (400 INVALID_DATA")
    assert result.stdout.splitlines()[-1] == "a sync would work, with 4 warnings"


def test_what_zoho_creates_need_from_the_layouts_is_named_and_a_field_nothing_writes_warns(
    sqlite_url: str,
) -> None:
    behaviours = Behaviours(zoho_layout_required=("Leads.Company", "Contacts.Lead_Source"))
    with running_emulator(seed=11, people=40, behaviours=behaviours) as emu:
        report = run_check(settings_for(emu, sqlite_url, contact_sync_push_create="zoho_crm/lead"))
        contacts = run_check(settings_for(emu, sqlite_url, contact_sync_push_create="zoho_crm/contact"))
        bigin = run_check(settings_for(emu, sqlite_url, contact_sync_push_create="zoho_bigin/contact"))
        unreadable = Behaviours(zoho_layouts_readable=False)
        emu.set_behaviours(unreadable)
        blind = run_check(settings_for(emu, sqlite_url, contact_sync_push_create="zoho_crm/lead"))
        no_creates = run_check(settings_for(emu, sqlite_url), sources=("zoho_crm",))

    crm = rows_of(report, "zoho_crm")
    assert crm["creates (lead)"] == ("info", "need Company too (a contact without it is not created)")
    assert "creates (contact)" not in crm
    assert rows_of(contacts, "zoho_crm")["creates (contact)"] == (
        "warning",
        "Lead_Source mandatory, not written",
    )
    assert rows_of(bigin, "zoho_bigin")["creates (contact)"] == ("info", "need nothing beyond Last_Name")
    assert contacts.would_sync, "creates refused are not a sync that fails"
    assert (
        "warn  zoho_crm: the Contacts layouts make Lead_Source mandatory and nothing writes it: every "
        "create there would be refused; make it optional in Zoho, or map a golden field to it "
        "(CONTACT_SYNC_MAPPINGS)"
    ) in contacts.lines()
    assert rows_of(blind, "zoho_crm")["creates (lead)"] == ("warning", "layouts not readable")
    assert [
        line for line in blind.lines() if "not readable" in line and "ZohoCRM.settings.layouts.READ" in line
    ]
    assert not [check for check in rows_of(no_creates, "zoho_crm") if check.startswith("creates")]
