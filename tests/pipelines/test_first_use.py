"""The tables identity resolution builds on first use (pypinyin's, the country names) are built ahead,
in a thread of their own during a sync in one process (`pipelines.first_use`). The tables' own case
runs in a fresh interpreter: this one may have built them already."""

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.emulator import Emulator
from models.warehouse.db import open_warehouse
from models.warehouse.tables import RawRecord
from pipelines import first_use, runner
from tests.pipelines.conftest import settings_for

ROOT = Path(__file__).resolve().parents[2]

_RACE = """
import json, sys
from models.normalise import countries
from models.normalise.given_names import name_token
from pipelines.first_use import build_in_background

before = "pypinyin" in sys.modules, countries._name_table.cache_info().currsize
thread = build_in_background()
# A step reading names meanwhile: it waits for the import under way, or builds the table itself.
during = name_token("小明"), countries.country_code("Deutschland")
thread.join(60)
print(json.dumps({
    "before": before,
    "during": during,
    "after": ["pypinyin" in sys.modules, countries._name_table.cache_info().currsize],
    "alive": thread.is_alive(),
    "daemon": thread.daemon,
}))
"""


def test_the_tables_are_built_in_a_thread_and_read_alike_meanwhile() -> None:
    out = subprocess.run([sys.executable, "-c", _RACE], cwd=ROOT, capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["before"] == [False, 0]
    assert seen["during"] == ["xiaoming", "DE"]
    assert seen["after"] == [True, 1]
    assert not seen["alive"]
    assert seen["daemon"]  # a command that ends first is not held up by it


def test_a_sync_in_one_process_starts_building_them_before_its_steps(
    emulator: Emulator, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[bool] = []

    def record() -> threading.Thread:
        # Whether any step had run yet: the warehouse holds no record before the extract's first page.
        with open_warehouse(sqlite_url).connect() as connection:
            started.append(
                connection.execute(sa.select(sa.func.count()).select_from(RawRecord)).scalar_one() == 0
            )
        return first_use.build_in_background()

    monkeypatch.setattr(runner, "build_in_background", record)
    assert runner.run_sync(settings_for(emulator, sqlite_url, contact_sync_push="off")).success
    assert started == [True]
