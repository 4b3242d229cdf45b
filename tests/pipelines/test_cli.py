"""The `contact-sync` entry point as a user runs it: a real process, real exit codes, one-line errors."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli import build_parser, main

CLI = str(Path(sys.executable).with_name("contact-sync"))
COMMANDS = ("sync", "backfill", "status", "export", "sandbox", "demo")


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
    result = run_cli("sync", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "succeeded" in result.stdout
    assert "zoho_crm: skipped, no credentials (set MATON_API_KEY to enable it)" in result.stdout
    assert (tmp_path / "contact_sync.db").exists()


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
