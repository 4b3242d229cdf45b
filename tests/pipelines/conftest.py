"""Fixtures for pipeline tests: a running emulator and settings that point the project at it."""

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from connectors.emulator import Emulator, running_emulator
from pipelines.settings import Settings, load_settings

CLI = str(Path(sys.executable).with_name("contact-sync"))
"""The installed command, as a user runs it."""


_DEFAULT_SIGINT_EXEC = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def hearing_ctrl_c(*argv: str) -> list[str]:
    """``argv`` started with SIGINT as a terminal's command gets it, for a test that interrupts it:
    tests started in the background (``pytest &``, some CI steps) have SIGINT ignored, children inherit
    that, and the CLI rightly leaves an ignored SIGINT ignored. (A ``preexec_fn`` would do the same but
    is unsafe in a process with threads, such as the test's emulator.)"""
    return [sys.executable, "-c", _DEFAULT_SIGINT_EXEC, *argv]


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with running_emulator(seed=11, people=120) as emu:
        yield emu


def settings_for(emu: Emulator, database_url: str, **overrides: Any) -> Settings:
    """Settings as a user would set them for ``emu``: its variables plus a warehouse URL."""
    values: dict[str, Any] = {name.lower(): value for name, value in emu.env().items()}
    values["contact_sync_database_url"] = database_url
    # The test emulator has no rate budget; the client-side budgets would only slow the tests down.
    values["contact_sync_maton_rps"] = 200.0
    values["contact_sync_linkflow_rps"] = 200.0
    values.update(overrides)
    return load_settings(**values)


def free_port() -> int:
    """A port nothing listens on right now, for a process the test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def sandbox_process(cwd: Path, *args: str) -> Iterator[dict[str, str]]:
    """`contact-sync sandbox` as a user starts it, in its own process: yields the variables it prints
    (`export NAME=value`), then stops it with SIGTERM and expects a clean exit."""
    process = subprocess.Popen(
        [CLI, "sandbox", "--port", str(free_port()), *args],
        cwd=cwd,
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
        yield variables
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        process.stdout.close()
