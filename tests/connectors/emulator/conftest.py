"""Fixtures: every test gets its own emulator on a free loopback port, and clients that speak to it."""

from collections.abc import Iterator

import httpx
import pytest

from connectors.emulator import Emulator, running_emulator

PEOPLE = 150


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with running_emulator(seed=7, people=PEOPLE) as emu:
        yield emu


@pytest.fixture
def maton(emulator: Emulator) -> Iterator[httpx.Client]:
    """A client for the four Maton apps, authenticated with the emulator's gateway key."""
    with maton_client(emulator) as client:
        yield client


@pytest.fixture
def linkflow(emulator: Emulator) -> Iterator[httpx.Client]:
    """A Linkflow client holding a fresh token."""
    with linkflow_client(emulator) as client:
        yield client


def maton_client(emu: Emulator) -> httpx.Client:
    env = emu.env()
    headers = {"Authorization": f"Bearer {env['MATON_API_KEY']}", "User-Agent": "contact-sync-tests/1.0"}
    return httpx.Client(base_url=env["MATON_GATEWAY_URL"], headers=headers, timeout=10)


def linkflow_token(emu: Emulator) -> str:
    env = emu.env()
    response = httpx.get(
        env["LINKFLOW_BASE_URL"] + "/token",
        headers={"X-OpenApi-Key": env["LINKFLOW_APP_KEY"], "X-OpenApi-Secret": env["LINKFLOW_APP_SECRET"]},
    )
    response.raise_for_status()
    return str(response.json()["token"])


def linkflow_client(emu: Emulator) -> httpx.Client:
    return httpx.Client(
        base_url=emu.linkflow_base_url, headers={"X-OpenApi-Token": linkflow_token(emu)}, timeout=10
    )
