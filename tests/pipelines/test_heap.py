"""The imports of the command line and of the step processes' server leave their heap frozen, out of
the cycle collector's reach, with the collector on again after them. Each case runs in a fresh
interpreter: freezing is for the life of a process, and this one's heap is pytest's."""

import json
import subprocess
import sys
from pathlib import Path

from tests.pipelines.conftest import CLI

ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
import gc, json, sys
{setup}
print(json.dumps({{"frozen": gc.get_freeze_count(), "enabled": gc.isenabled(),
                  "tracked": len(gc.get_objects())}}))
"""


def _heap_after(setup: str) -> dict[str, int]:
    code = _PROBE.format(setup=setup)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_importing_the_code_location_plainly_freezes_nothing() -> None:
    heap = _heap_after("import pipelines.definitions")
    assert heap["frozen"] == 0
    assert heap["tracked"] > 100_000  # what every full collection would walk


def test_the_step_server_preload_leaves_the_imports_frozen_and_the_collector_on() -> None:
    heap = _heap_after("import pipelines.step_server")
    assert heap["enabled"]
    assert heap["frozen"] > 100_000
    assert heap["tracked"] < 1_000  # a forked step's collections walk only what the step makes


def test_the_command_entry_imports_out_of_the_collectors_way() -> None:
    setup = (
        "from pipelines import heap\n"
        "import gc\n"
        "seen = []\n"
        "gc.callbacks.append(lambda phase, _info: seen.append(phase))\n"
        "with heap.imports_uncollected():\n"
        "    import pipelines.cli\n"
        "assert seen == [], seen\n"
        "heap.freeze_long_lived()  # once per process: a second call freezes nothing more\n"
    )
    heap = _heap_after(setup)
    assert heap["enabled"]
    assert heap["frozen"] > 100_000


def test_a_collector_turned_off_before_stays_off() -> None:
    setup = "import gc\ngc.disable()\nfrom pipelines import heap\nwith heap.imports_uncollected():\n    pass"
    heap = _heap_after(setup)
    assert not heap["enabled"]


def test_the_installed_script_runs_through_the_entry() -> None:
    assert "pipelines.command" in Path(CLI).read_text()
    out = subprocess.run([CLI, "--help"], capture_output=True, text=True, check=True)
    assert "contact-sync" in out.stdout


def test_the_step_server_builds_the_tables_steps_would_each_build_on_first_use() -> None:
    """pypinyin's dictionaries and the country names: built once in the server, frozen with the
    imports, so a forked step neither builds them again nor has its collections walk them."""
    setup = (
        "import pipelines.step_server\n"
        "from models.normalise import countries\n"
        "assert 'pypinyin' in sys.modules\n"
        "assert countries._name_table.cache_info().currsize == 1\n"
    )
    heap = _heap_after(setup)
    assert heap["tracked"] < 1_000
