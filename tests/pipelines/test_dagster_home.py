"""A DAGSTER_HOME that does not exist is made, or refused in one line; never a Dagster traceback."""

from pathlib import Path

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


def test_ui_makes_a_missing_dagster_home_before_starting_the_ui(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The folder is made (with the project's dagster.yaml) before the UI starts; starting the real
    webserver and daemon is tests/pipelines/test_ui_stop.py's work, so here it is only recorded."""
    home = tmp_path / "new" / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    started: list[dict[str, object]] = []

    def run_ui(**kwargs: object) -> int:
        started.append({**kwargs, "home_exists": (home / "dagster.yaml").exists()})
        return 0

    monkeypatch.setattr("pipelines.ui.run_ui", run_ui)
    assert main(["ui", "--port", "3456"]) == 0
    assert (
        capsys.readouterr().err
        == f"contact-sync: created DAGSTER_HOME {home} (with this project's dagster.yaml)\n"
    )
    assert (home / "dagster.yaml").read_text() == (ROOT / ".dagster_home" / "dagster.yaml").read_text()
    assert [(s["host"], s["port"], s["daemon"], s["home_exists"]) for s in started] == [
        ("127.0.0.1", 3456, True, True)
    ]
