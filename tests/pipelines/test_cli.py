"""The `contact-sync` entry point as a user runs it: a real process, real exit codes, one-line errors."""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from connectors.emulator import Emulator
from models.warehouse.db import open_warehouse
from models.warehouse.store import RawStore, StreamKey
from models.warehouse.tables import Contact, ContactActivity
from pipelines.cli import build_parser, main
from pipelines.runner import run_sync
from pipelines.streams import STREAMS
from tests.pipelines.conftest import free_port, hearing_ctrl_c, settings_for
from tests.pipelines.test_extract import emulator_ids

CLI = str(Path(sys.executable).with_name("contact-sync"))
ROOT = Path(__file__).parents[2]
COMMANDS = ("sync", "backfill", "check", "status", "show", "export", "sandbox", "demo", "ui")


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=120,
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_of_the_contract_has_useful_help(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    assert f"contact-sync {command}" in capsys.readouterr().out


def test_sync_without_credentials_runs_the_job_and_says_so(tmp_path: Path) -> None:
    """Also with a DAGSTER_HOME that does not exist yet: it is made, and the run is stored there."""
    home = tmp_path / "not" / "yet" / "dagster_home"
    result = run_cli("sync", env={"DAGSTER_HOME": str(home)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "succeeded" in result.stdout
    assert "zoho_crm: skipped, no credentials (set MATON_API_KEY to enable it)" in result.stdout
    assert (tmp_path / "contact_sync.db").exists()
    # The run's end emptied SQLite's log file: the process exits with its connections open, which
    # would leave the file at its largest size (models.warehouse.checkpoints).
    log = tmp_path / "contact_sync.db-wal"
    assert not log.exists() or log.stat().st_size == 0
    # Not a terminal: Dagster's log lines on stderr as ever, no progress display, no log file.
    assert " - dagster - INFO - full_sync - " in result.stderr
    assert not (tmp_path / "contact-sync.log").exists()
    assert result.stderr.startswith(
        f"contact-sync: created DAGSTER_HOME {home} (with this project's dagster.yaml)\n"
    )
    assert (home / "history" / "runs.db").exists()


def test_bad_setting_fails_with_one_line(tmp_path: Path) -> None:
    result = run_cli("sync", env={"CONTACT_SYNC_PUSH": "yes"}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "contact-sync: CONTACT_SYNC_PUSH must be one of on, dry-run, off; got 'yes'\n"


def test_unreachable_warehouse_fails_with_one_line(tmp_path: Path) -> None:
    result = run_cli(
        "sync", env={"CONTACT_SYNC_DATABASE_URL": "postgresql://u:pw-secret@127.0.0.1:1/x"}, cwd=tmp_path
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "pw-secret" not in result.stderr + result.stdout
    assert result.stderr.strip().splitlines()[-1].startswith("contact-sync:")


def test_unknown_source_is_refused_by_the_parser(tmp_path: Path) -> None:
    result = run_cli("sync", "--source", "hubspot", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown source 'hubspot'" in result.stderr


def test_a_backfill_before_the_first_backfillable_day_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["backfill", "--source", "zoho_crm", "--since", "2014-12-31", "--until", "2015-01-02"]) == 2
    assert capsys.readouterr().err == (
        "contact-sync: --since 2014-12-31 is before 2015-01-01, the first day a backfill can cover\n"
    )


STATUS_COLUMNS = re.compile(r"stream +records deleted  last success +status +cursor")
ZOHO_CRM = {"contact": "zoho_crm/contact", "lead": "zoho_crm/lead"}


def modified_between(emu: Emulator, table: str, start: datetime, end: datetime) -> int:
    """Records of an emulator table whose Modified_Time falls in [start, end)."""
    return sum(
        start <= datetime.fromisoformat(record["Modified_Time"]) < end
        for record in emu.dataset.tables[table].values()
    )


def cursor_text(cursor: dict[str, object] | None) -> str:
    """How the status view prints a cursor: compact JSON with sorted keys, cut at 60 characters."""
    text = json.dumps(cursor, separators=(",", ":"), sort_keys=True) if cursor else "-"
    return text if len(text) <= 60 else text[:57] + "..."


def names(states: Iterable[tuple[str, str, str]]) -> set[str]:
    """The status view's first column: source/object, with the state's name unless incremental."""
    return {f"{s}/{o}" + ("" if k == "incremental" else f" [{k}]") for s, o, k in states}


def cell(value: object) -> str:
    return "" if value is None else str(value)


@pytest.mark.slow
def test_backfill_status_and_export_print_and_write_what_the_warehouse_holds(
    emulator: Emulator, tmp_path: Path
) -> None:
    """`backfill`, `status` and `export` as a person runs them after a sync: real processes with the
    sandbox's variables, a SQLite warehouse and a Dagster home, their output read line by line."""
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    assert run_sync(settings_for(emulator, url, contact_sync_push="off")).success
    store = RawStore(open_warehouse(url))
    cursors = {stream.name: store.cursor(StreamKey(stream.source, stream.object)) for stream in STREAMS}
    changed = emulator.mutate(seed=4, updated=12).updated
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {**emulator.env(), "CONTACT_SYNC_DATABASE_URL": url, "DAGSTER_HOME": str(home)}

    # backfill: yesterday and today (UTC) of Zoho CRM, read again without moving a cursor.
    today = datetime.now(UTC).date()
    since = today - timedelta(days=1)
    start = datetime.combine(since, datetime.min.time(), UTC)
    end = datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC)
    requests_before = emulator.total_requests("zoho_crm")
    backfill = run_cli(
        "backfill", "--source", "zoho_crm", "--since", since.isoformat(), env=env, cwd=tmp_path
    )
    assert backfill.returncode == 0, backfill.stderr
    printed = re.findall(r"requests (\d+) ", backfill.stdout)
    assert sum(map(int, printed)) == emulator.total_requests("zoho_crm") - requests_before
    assert backfill.stdout.splitlines() == [
        f"backfill/{table}: read {modified_between(emulator, table, start, end)}, new 0, "
        f"changed {changed.get(table, 0)}, requests {requests} ({since} to {today}; cursors unchanged)"
        for table, requests in zip(sorted(ZOHO_CRM.values()), printed, strict=True)
    ]
    assert sum(changed.get(table, 0) for table in ZOHO_CRM.values()) > 0, "the window held no change"
    assert {s.name: store.cursor(StreamKey(s.source, s.object)) for s in STREAMS} == cursors

    # status: one line per stream, with the records the emulator holds and the stored cursor.
    status = run_cli("status", env=env, cwd=tmp_path)
    assert (status.returncode, status.stderr) == (0, "")
    lines = status.stdout.splitlines()
    assert STATUS_COLUMNS.fullmatch(lines[0]), lines[0]
    states = {(s.key.source, s.key.object, s.key.stream): s for s in store.statuses()}
    assert len(lines) == 1 + len(states)
    # The counts line up under their headings, the longest names (a check's state) included.
    width = lines[0].index("records") - 2
    for line in lines[1:]:
        assert line[width] == " ", line
        assert line[:width].rstrip() in names(states), line
        # A source's records and deletions; the pipeline's own states hold none: "-".
        counted = line.split("/")[0] not in ("canonical", "reverse_sync")
        for cell_text in (line[width + 1 : width + 9], line[width + 10 : width + 17]):
            assert cell_text.strip().isdigit() if counted else cell_text.strip() == "-", line
    held = emulator_ids(emulator)
    for stream in STREAMS:
        state = states[(stream.source, stream.object, "incremental")]
        assert state.last_success_at is not None
        expected = (
            f"{stream.name:<{width}} {len(held[(stream.source, stream.object)]):>8} {0:>7}  "
            f"{state.last_success_at.strftime('%Y-%m-%d %H:%M:%SZ'):<20} {'succeeded':<9} "
            f"{cursor_text(cursors[stream.name])}"
        )
        assert [line for line in lines if line.startswith(f"{stream.name:<{width}} ")] == [expected]

    # export: the file holds the warehouse's golden contacts; stdout the activity, as JSON lines.
    export = run_cli("export", "contacts", "--output", "contacts.csv", env=env, cwd=tmp_path)
    with open_warehouse(url).connect() as connection:
        contacts = (
            connection.execute(sa.select(Contact.__table__).order_by(Contact.contact_id)).mappings().all()
        )
        activity = connection.execute(
            sa.select(ContactActivity.activity_id, ContactActivity.contact_id)
        ).all()
    assert (export.returncode, export.stdout) == (0, "")
    assert export.stderr == f"wrote {len(contacts)} contacts rows to contacts.csv\n"
    assert len(contacts) == emulator.dataset.people
    with (tmp_path / "contacts.csv").open(encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file)
        assert reader.fieldnames == [column.name for column in Contact.__table__.columns]
        rows = list(reader)
    text_columns = [c.name for c in Contact.__table__.columns if not c.name.endswith("_at")]
    assert [{c: row[c] for c in text_columns} for row in rows] == [
        {c: cell(contact[c]) for c in text_columns} for contact in contacts
    ]
    jsonl = run_cli("export", "activity", "--format", "jsonl", env=env, cwd=tmp_path)
    assert (jsonl.returncode, jsonl.stderr) == (0, "")
    exported = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert sorted((row["activity_id"], row["contact_id"]) for row in exported) == sorted(
        (aid, cid) for aid, cid in activity
    )
    assert len(exported) == len(activity) > 0


def test_the_sandbox_injects_the_faults_it_is_started_with(capsys: pytest.CaptureFixture[str]) -> None:
    """`--fault` sets any FaultConfig field from the start, like `POST /_admin/faults` later. In this
    process (a new one would spend seconds importing): the sandbox serves in the main thread, as the
    command does, while a helper thread asks it and then stops it with SIGTERM, as a user would."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    key = {"Authorization": "Bearer sandbox-maton-key", "User-Agent": "contact-sync-tests"}
    answers: dict[str, httpx.Response] = {}

    def ask_then_stop() -> None:
        try:
            for _ in range(200):
                try:
                    httpx.get(f"{base}/_admin/health", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            params = {"fields": "Email"}
            answers["leads"] = httpx.get(f"{base}/zoho-crm/crm/v8/Leads", params=params, headers=key)
            answers["teams"] = httpx.get(f"{base}/clickfunnels/api/v2/teams", headers=key)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    faults = ["--fault", "challenge_rate=1", "--fault", 'apps=["zoho_crm"]']
    previous = signal.getsignal(signal.SIGTERM)
    helper = threading.Thread(target=ask_then_stop, daemon=True)
    helper.start()
    try:
        assert main(["sandbox", "--port", str(port), "--people", "5", *faults]) == 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        helper.join(timeout=10)

    leads, teams = answers["leads"], answers["teams"]
    assert (leads.status_code, leads.headers["Content-Type"]) == (200, "text/html; charset=UTF-8")
    assert "<title>Just a moment...</title>" in leads.text
    assert teams.json()[0]["id"]
    assert "# injecting apps=zoho_crm, challenge_rate=1\n" in capsys.readouterr().out


def test_an_unknown_sandbox_fault_is_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "--fault", "html_rate=0.05"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("contact-sync: sandbox: unknown fault settings ['html_rate']")
    assert err.count("\n") == 1


# A run that hears the stop and then takes long to wind down (a request that hangs until its timeout).
SLOW_TO_STOP = """
import time
from connectors.stop import STOP
from pipelines.cli import StopSignals

def work():
    print("running", flush=True)
    STOP.wait(60)
    time.sleep(60)

with StopSignals() as stop:
    stop.run(work)
"""


def test_a_second_signal_while_stopping_quits_at_once() -> None:
    """The first SIGINT asks the run to stop and says how to quit at once; the second quits at once."""
    with subprocess.Popen(
        hearing_ctrl_c(sys.executable, "-c", SLOW_TO_STOP),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        assert process.stdout.readline() == "running\n"
        process.send_signal(signal.SIGINT)
        first = process.stderr.readline()
        assert first.startswith("contact-sync: SIGINT: stopping once the requests in flight are answered")
        assert first.endswith("; Ctrl-C again quits at once\n")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=5) == 130
        second = process.stderr.read()
    assert second.startswith("contact-sync: quit at once on a second SIGINT;"), second
    assert "Traceback" not in second
