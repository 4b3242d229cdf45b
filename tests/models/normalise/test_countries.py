"""Country names read from phonenumbers' display names alone, without its geocoding tables."""

import subprocess
import sys
import types
from pathlib import Path

import pytest
from phonenumbers.geodata.locale import LOCALE_DATA

from models.normalise import countries
from models.normalise.countries import _locale_data, country_code

ROOT = Path(__file__).parents[3]


def test_the_names_read_alone_are_the_librarys_own() -> None:
    assert _locale_data() == LOCALE_DATA


@pytest.mark.parametrize("layout", ["missing", "broken"])
def test_another_layout_falls_back_to_the_usual_import(
    layout: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A phonenumbers without that file, or whose file needs more of its package, still gives names."""
    package = tmp_path / "phonenumbers"
    (package / "geodata").mkdir(parents=True)
    if layout == "broken":
        (package / "geodata" / "locale.py").write_text("from .no_such_table import data\n")
    fake = types.SimpleNamespace(__file__=str(package / "__init__.py"))
    monkeypatch.setattr(countries, "phonenumbers", fake)
    assert countries._locale_data() == LOCALE_DATA


def test_names_in_many_languages_and_aliases_give_one_code() -> None:
    assert [country_code(name) for name in ("Deutschland", "中国", " united  STATES ", "uk", "us")] == [
        "DE",
        "CN",
        "US",
        "GB",
        "US",
    ]
    assert country_code("Atlantis") is None
    assert country_code(None) is None


def test_reading_a_country_leaves_the_geocoding_tables_unloaded() -> None:
    """Loaded with the names, those tables cost every process about 100 MiB and 0.3 s."""
    probe = (
        "import sys\n"
        "import pipelines.definitions\n"
        "from models.normalise.countries import country_code\n"
        "assert country_code('Deutschland') == 'DE'\n"
        "print(sorted(name for name in sys.modules if name.startswith('phonenumbers.geodata')))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"
