"""A DAGSTER_HOME that does not exist is made, or refused in one line; never a Dagster traceback."""

import json
from pathlib import Path
from typing import NoReturn

import pytest

from pipelines.cli import main

ROOT = Path(__file__).resolve().parents[2]


class ReplacedError(Exception):
    """Stands for the moment ``contact-sync ui`` becomes ``dagster dev`` (measured by hand: the
    real UI takes half a minute to start here, too slow for every test run)."""


@pytest.mark.parametrize("command", ["sync", "ui"])
@pytest.mark.parametrize(
    ("home", "line"),
    [
        ("relative/home", "contact-sync: DAGSTER_HOME must be an absolute path; got 'relative/home'"),
        (
            "{tmp}/a-file/home",
            "contact-sync: DAGSTER_HOME {tmp}/a-file/home does not exist and cannot be "
            "created (Not a directory)",
        ),
        ("{tmp}/a-file", "contact-sync: DAGSTER_HOME {tmp}/a-file is a file, not a folder"),
    ],
    ids=["relative", "under-a-file", "a-file"],
)
def test_an_unusable_dagster_home_is_refused_in_one_line(
    command: str,
    home: str,
    line: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("DAGSTER_HOME", home.format(tmp=tmp_path))
    assert main([command]) == 2
    assert capsys.readouterr().err == line.format(tmp=tmp_path) + "\n"


def test_ui_makes_a_missing_dagster_home_then_becomes_dagster_dev_on_the_code_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "new" / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    argv: list[str] = []

    def execv(path: str, args: list[str]) -> NoReturn:
        argv.extend(args)
        raise ReplacedError

    monkeypatch.setattr("os.execv", execv)
    with pytest.raises(ReplacedError):
        main(["ui", "--port", "3456"])
    assert (
        capsys.readouterr().err
        == f"contact-sync: created DAGSTER_HOME {home} (with this project's dagster.yaml)\n"
    )
    assert (home / "dagster.yaml").read_text() == (ROOT / ".dagster_home" / "dagster.yaml").read_text()
    assert argv[1:4] == ["-m", "dagster", "dev"]
    assert argv[-4:] == ["--host", "127.0.0.1", "--port", "3456"]
    workspace = json.loads(Path(argv[argv.index("-w") + 1]).read_text())
    assert workspace == {
        "load_from": [
            {
                "python_module": {
                    "module_name": "pipelines.definitions",
                    "attribute": "defs",
                    "location_name": "contact_sync",
                    "working_directory": str(tmp_path),
                }
            }
        ]
    }
