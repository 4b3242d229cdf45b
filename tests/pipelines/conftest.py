"""Fixtures for pipeline tests: a running emulator and settings that point the project at it."""

from collections.abc import Iterator
from typing import Any

import pytest

from connectors.emulator import Emulator, running_emulator
from pipelines.settings import Settings, load_settings


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
