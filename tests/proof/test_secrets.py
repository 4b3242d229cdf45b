"""No credential or Linkflow token the sync handled is left anywhere a person or a backup could read:
the CLI's output, the warehouse file and its WAL, the Dagster instance, or the recorded cassettes."""

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from connectors.emulator import Emulator, FaultConfig
from connectors.emulator.emulator import DEFAULT_LINKFLOW_KEY, DEFAULT_LINKFLOW_SECRET, DEFAULT_MATON_KEY

pytestmark = pytest.mark.slow

REPOSITORY = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("contact-sync"))
CASSETTES = REPOSITORY / "tests" / "connectors" / "cassettes"
MATON_KEY = "MATONSECRET-7f3c9e1a5b"
LINKFLOW_KEY = "LINKFLOWKEY-2d8e4a6c0f"
LINKFLOW_SECRET = "LINKFLOWSECRET-9b1d3f5e7a"
WRONG_MATON_KEY = "MATONSECRET-WRONG-4c6e8a0b2d"
#: Linkflow tokens as the emulator issues them (``secrets.token_urlsafe(32)``), in a recorded body.
ISSUED_TOKEN = re.compile(rb'"token"\s*:\s*"([A-Za-z0-9_-]{43})"')


def issued_tokens(emu: Emulator) -> set[str]:
    """Every Linkflow token the emulator handed out; it keeps them, expired or not, to check calls."""
    return set(emu._linkflow._tokens)


def run_cli(emu: Emulator, home: Path, database: Path, out: Path, *args: str, **extra: str) -> int:
    env = {
        **os.environ,
        **emu.env(),
        "DAGSTER_HOME": str(home),
        "CONTACT_SYNC_DATABASE_URL": f"sqlite:///{database}",
        **extra,
    }
    with (out / "stdout.log").open("ab") as stdout, (out / "stderr.log").open("ab") as stderr:
        return subprocess.run(
            [CLI, "sync", *args], env=env, stdout=stdout, stderr=stderr, timeout=240, check=False
        ).returncode


def files_under(*roots: Path) -> Iterable[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from (path for path in root.rglob("*") if path.is_file())


def hits(paths: Iterable[Path], secrets: Iterable[str]) -> list[tuple[str, str]]:
    """(file, secret) for each secret in a file's bytes, as UTF-8 or UTF-16 (SQLite may store either)."""
    needles = [(secret, secret.encode(), secret.encode("utf-16-le")) for secret in secrets]
    found: list[tuple[str, str]] = []
    for path in paths:
        data = path.read_bytes()
        found.extend((str(path), secret) for secret, utf8, utf16 in needles if utf8 in data or utf16 in data)
    return found


def test_no_secret_or_token_lands_in_logs_warehouse_instance_or_cassettes(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPOSITORY / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    database = tmp_path / "warehouse.db"
    # Retries and a token dying mid-run put the auth paths into the logs, where a leak would show.
    faults = FaultConfig(error_rate_429=0.05, retry_after_s=0.05, error_rate_503=0.05, seed=2)
    emu = Emulator(
        seed=41,
        people=100,
        maton_key=MATON_KEY,
        linkflow_key=LINKFLOW_KEY,
        linkflow_secret=LINKFLOW_SECRET,
        faults=faults,
    )
    with emu:
        assert run_cli(emu, home, database, tmp_path) == 0
        emu.expire_linkflow_tokens()
        emu.mutate(seed=3, new=4, updated=6, events=5)
        assert run_cli(emu, home, database, tmp_path) == 0
        # A refused key must not be echoed in the error that reports it.
        assert (
            run_cli(emu, home, database, tmp_path, "--source", "zoho_crm", MATON_API_KEY=WRONG_MATON_KEY) != 0
        )
        tokens = issued_tokens(emu)

    assert len(tokens) >= 2, "the runs did not authenticate against Linkflow"
    stdout = (tmp_path / "stdout.log").read_text()
    stderr = (tmp_path / "stderr.log").read_text()
    assert "golden contacts" in stdout, "the sync printed no summary; nothing was checked"
    assert "401" in stderr or "auth" in stderr.lower(), "the refused key was not reported"
    assert database.stat().st_size > 0, "nothing was stored to search"
    assert any(home.rglob("*.db")), "the Dagster instance stored nothing to search"

    secrets = [MATON_KEY, LINKFLOW_KEY, LINKFLOW_SECRET, WRONG_MATON_KEY, *tokens]
    places = files_under(
        tmp_path / "stdout.log",
        tmp_path / "stderr.log",
        database,
        database.with_name(database.name + "-wal"),
        database.with_name(database.name + "-shm"),
        home,
    )
    assert hits(places, secrets) == []


def test_cassettes_hold_no_credential_and_no_issued_token() -> None:
    cassettes = list(files_under(CASSETTES))
    assert cassettes, "no cassettes found to check"
    # The cassettes were recorded against an emulator with its default credentials.
    assert hits(cassettes, [DEFAULT_MATON_KEY, DEFAULT_LINKFLOW_KEY, DEFAULT_LINKFLOW_SECRET]) == []
    leaked = [(str(path), m.group(1)) for path in cassettes for m in ISSUED_TOKEN.finditer(path.read_bytes())]
    assert leaked == []
