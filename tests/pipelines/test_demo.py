"""`contact-sync demo` and `contact-sync sandbox` as a user runs them, with no credentials at all."""

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

CLI = str(Path(sys.executable).with_name("contact-sync"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _total(block: str, word: str) -> int:
    return sum(int(n) for n in re.findall(rf"{word} (\d+)", block))


@pytest.mark.slow
def test_demo_syncs_twice_and_the_second_run_reads_only_changes(tmp_path: Path) -> None:
    result = subprocess.run(
        [CLI, "demo", "--people", "150"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    first, _, second = result.stdout.partition("second sync")
    assert first.count("succeeded") == 1
    assert second.count("succeeded") == 1
    assert "zoho_crm/lead: read" in first
    # The second run reads the changes and, once, the records the first run's pushes touched; it
    # pushes only what the changes made fillable, never our own writes back.
    assert 0 < _total(second, "read") < _total(first, "read")
    assert 0 < _total(second, "planned") < _total(first, "planned") / 5
    assert (tmp_path / "contact-sync-demo" / "warehouse.db").exists()


@pytest.mark.slow
def test_sandbox_prints_its_variables_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [CLI, "sandbox", "--port", str(port), "--people", "50"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    variables: dict[str, str] = {}
    try:
        for line in process.stdout:
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").strip().partition("=")
                variables[name] = value
            if "LINKFLOW_BASE_URL" in variables:
                break
        assert variables["MATON_GATEWAY_URL"] == f"http://127.0.0.1:{port}"
        answer = httpx.get(
            f"{variables['MATON_GATEWAY_URL']}/zoho-crm/crm/v8/Leads",
            params={"fields": "Email", "converted": "both"},
            headers={"Authorization": f"Bearer {variables['MATON_API_KEY']}"},
            timeout=10,
        )
        assert answer.status_code == 200
        assert answer.json()["data"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        process.stdout.close()
