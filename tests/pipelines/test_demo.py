"""`contact-sync demo` and `contact-sync sandbox` as a user runs them, with no credentials at all."""

import re
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.pipelines.conftest import CLI, sandbox_process


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
    # What changed between the runs, and where each planned push went, in words.
    assert re.search(
        r"changed at the sources: 5 new people \(\d+ records\), \d+ records edited, \d+ deleted, "
        r"20 events, 10 messages\n",
        first,
    )
    for block in (first, second):
        (pushes,) = re.findall(r"pushes planned .*", block)
        ends = ("done", "failed", "unconfirmed", "not sent")
        assert _total(pushes, "planned") == sum(_total(pushes, word) for word in ends), pushes
    assert (tmp_path / "contact-sync-demo" / "warehouse.db").exists()


@pytest.mark.slow
def test_sandbox_prints_its_variables_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    with sandbox_process(tmp_path, "--people", "50") as variables:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", variables["MATON_GATEWAY_URL"])
        answer = httpx.get(
            f"{variables['MATON_GATEWAY_URL']}/zoho-crm/crm/v8/Leads",
            params={"fields": "Email", "converted": "both"},
            headers={"Authorization": f"Bearer {variables['MATON_API_KEY']}"},
            timeout=10,
        )
        assert answer.status_code == 200
        assert answer.json()["data"]
