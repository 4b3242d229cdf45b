"""The live progress display of `contact-sync sync` on a terminal, and the totals it estimates from.

The terminal is a real pseudo-terminal: the command cannot tell it from a person's, so it draws the
display and sends Dagster's log lines to a file. The command runs in this process (``main``), which
spares a second Dagster import. Without a terminal nothing changes: test_cli.py runs the same command
through pipes.
"""

import fcntl
import os
import pty
import re
import struct
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from connectors.emulator import running_emulator
from pipelines.cli import _watched, main
from pipelines.clients import clients_for
from pipelines.streams import STREAMS
from tests.pipelines.conftest import settings_for

ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


class Terminal:
    """A 40x140 pseudo-terminal and everything drawn on it, read by a thread as it comes."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
        self._drawn = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every copy of the terminal's other end is closed
                return
            if not chunk:
                return
            self._drawn.extend(chunk)

    def screen(self) -> str:
        """What was drawn, escape sequences removed; call once the other end is closed."""
        self._reader.join(timeout=10)
        os.close(self.master)
        return ESCAPES.sub("", self._drawn.decode("utf-8", "replace"))


def on_terminal(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """``contact-sync ARGV`` with a pseudo-terminal as its stdout and stderr: its exit status and
    everything it drew."""
    terminal = Terminal()
    with os.fdopen(terminal.slave, "w", encoding="utf-8", buffering=1) as tty:
        monkeypatch.setattr(sys, "stdout", tty)
        monkeypatch.setattr(sys, "stderr", tty)
        monkeypatch.setenv("TERM", "xterm-256color")
        monkeypatch.setenv("COLUMNS", "140")
        code = main(argv)
        monkeypatch.undo()
    return code, terminal.screen()


@pytest.mark.slow
def test_sync_on_a_terminal_draws_each_streams_progress_and_logs_to_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_emulator(seed=11, people=30) as emu:
        for name, value in {
            **emu.env(),
            "CONTACT_SYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}",
            "CONTACT_SYNC_MATON_RPS": "200",
            "CONTACT_SYNC_LINKFLOW_RPS": "200",
        }.items():
            monkeypatch.setenv(name, value)
        code, screen = on_terminal(["sync"], monkeypatch)
    assert code == 0, screen
    assert "Traceback" not in screen
    # Drawn live, four times a second while the run goes, not once when it ends.
    assert screen.count("clickfunnels/contact ") >= 3
    # The summary, as without a terminal; the display's last state stays above it.
    read = {name: int(n) for name, n in re.findall(r"^  (\S+): read (\d+),", screen, re.MULTILINE)}
    assert set(read) == {stream.name for stream in STREAMS}
    for stream in STREAMS:
        done = re.findall(
            rf"✓ {re.escape(stream.name)} +━+ ([\d,]+) records? +(\d+) pages? +(\d+) requests? +done in ",
            screen,
        )
        assert done, f"no finished line for {stream.name}"
        records, pages, requests = done[-1]
        assert int(records.replace(",", "")) == read[stream.name]
        assert int(pages) >= 1
        assert int(requests) >= 1
    assert re.search(r"✓ canonical/contacts +━+ 30 contacts +done in ", screen)
    assert re.search(
        r"✓ reverse_sync/zoho_crm/lead +━+ \d+ fields? +\d+ calls? +\d+ requests? +done in ", screen
    )
    # Dagster's log lines went to the file the command named, not onto the display.
    log = tmp_path / "contact-sync.log"
    assert f"log lines of the run: {log}" in screen
    assert " - dagster - " not in screen
    lines = log.read_text().splitlines()
    assert any(
        " - dagster - INFO - full_sync - " in line
        and re.search(r"zoho_crm/lead: pages? 1(-\d+)?: read", line)
        for line in lines
    )


def test_clicksend_and_linkflow_pages_say_how_many_records_to_expect(sqlite_url: str) -> None:
    """The totals the display's estimates come from: ClickSend's listings and Linkflow's id windows."""
    with running_emulator(seed=11, people=40) as emu:
        settings = settings_for(emu, sqlite_url)
        with clients_for(settings, ("clicksend", "linkflow")) as clients:
            assert clients.clicksend is not None
            assert clients.linkflow is not None
            for pages in (
                list(clients.clicksend.read_list_contacts()),
                list(clients.linkflow.read_contacts()),
            ):
                read = 0
                for page in pages:
                    read += len(page.records)
                    assert page.expected is not None
                    assert page.expected >= read
                assert pages[-1].expected == read > 0
            history = [p for p in clients.clicksend.read_sms() if p.part == "history"]
            assert {p.expected for p in history} == {len(emu.dataset.tables["clicksend/sms_history"])}


def test_the_display_reaches_the_terminal_while_dagster_captures_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a DAGSTER_HOME, Dagster points the process's stderr at a compute-log file while each step
    runs (``os.dup2``, as done here by hand); the display keeps drawing on the terminal, estimate
    included, and nothing of it lands in the captured file."""
    terminal = Terminal()
    captured = tmp_path / "captured.err"
    with os.fdopen(terminal.slave, "w", encoding="utf-8", buffering=1) as tty:
        monkeypatch.setattr(sys, "stderr", tty)
        monkeypatch.setenv("COLUMNS", "140")
        with _watched(verbose=False) as watch:
            shown = watch["progress"].stream("clicksend/list_contact")
            kept = os.dup(terminal.slave)
            with captured.open("w") as file:
                os.dup2(file.fileno(), terminal.slave)
                try:
                    for page in range(1, 4):
                        shown.page(records=40 * page, expected=120, requests=2 * page)
                        time.sleep(0.3)
                finally:
                    os.dup2(kept, terminal.slave)
                    os.close(kept)
            shown.finished()
        monkeypatch.undo()
    screen = terminal.screen()
    assert captured.read_text() == ""
    live = r"… clicksend/list_contact +[━╺╸]+ 80/120 records +2 pages +[\d.]+ req/s +~0:00:0\d left"
    assert re.search(live, screen)
    assert re.search(r"✓ clicksend/list_contact +━+ 120 records +3 pages +6 requests +done in ", screen)
