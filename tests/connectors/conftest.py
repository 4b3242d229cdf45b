"""Fixtures for the connector tests: emulators on loopback ports and clients pointed at them."""

from collections.abc import Iterable
from typing import Any

import pytest

from connectors.config import HttpOptions, LinkflowConfig, MatonConfig
from connectors.emulator import Emulator
from connectors.factory import Clients, build_clients
from connectors.http import RetryPolicy
from connectors.paging import Page

MATON_KEY = "sandbox-maton-key"
LINKFLOW_KEY = "sandbox-linkflow-key"
LINKFLOW_SECRET = "sandbox-linkflow-secret"
SECRETS = (MATON_KEY, LINKFLOW_KEY, LINKFLOW_SECRET)

FAST_RETRY = RetryPolicy(max_attempts=8, base_delay=0.01, max_delay=0.2, budget=20)
"""Real backoff, small numbers: the tests wait for real but only milliseconds."""


@pytest.fixture
def start_emulator():
    started: list[Emulator] = []

    def start(**options: Any) -> Emulator:
        emu = Emulator(**options).start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


@pytest.fixture
def emu(start_emulator) -> Emulator:
    return start_emulator(seed=7, people=200)


@pytest.fixture
def connect():
    opened: list[Clients] = []

    def build(
        emu: Emulator,
        *,
        maton_rate: float = 1000.0,
        retry: RetryPolicy = FAST_RETRY,
        connections: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Clients:
        clients = build_clients(
            MatonConfig(MATON_KEY, emu.maton_gateway_url, connections or {}, rate=maton_rate),
            LinkflowConfig(LINKFLOW_KEY, LINKFLOW_SECRET, emu.linkflow_base_url, rate=1000.0),
            options=HttpOptions(retry=retry),
            **kwargs,
        )
        opened.append(clients)
        return clients

    yield build
    for clients in opened:
        clients.close()


def drain(pages: Iterable[Page[Any]]) -> tuple[list[dict[str, Any]], Any, list[str], list[Page[Any]]]:
    """All records, the last cursor, all deleted ids and the pages of a read."""
    seen = list(pages)
    records = [r for page in seen for r in page.records]
    deleted = [d for page in seen for d in page.deleted_ids]
    return records, seen[-1].cursor if seen else None, deleted, seen


def endpoint_count(emu: Emulator, app: str, endpoint: str) -> int:
    return emu.request_counts().get((app, endpoint), 0)
