"""Faults injected by the emulator: 429 with and without Retry-After, 503, dropped connections, and
the shared Maton rate limit holding across apps read at the same time."""

import threading
import time

import pytest

from connectors.emulator import FaultConfig
from connectors.errors import RateLimitedError
from connectors.http import RetryPolicy
from tests.connectors.conftest import drain


class RealSleep(list):
    """Sleeps for real (the waits are milliseconds) and remembers each wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        time.sleep(seconds)


def test_429_with_retry_after_is_honoured(emu, connect):
    sleeps = RealSleep()
    clients = connect(emu, sleep=sleeps)
    emu.set_faults(FaultConfig(error_rate_429=0.4, retry_after_s=0.05, apps=frozenset({"zoho_crm"}), seed=3))
    records, _, _, _ = drain(clients.zoho_crm.read_leads())
    assert {r["id"] for r in records} == set(emu.dataset.tables["zoho_crm/lead"])
    retries = clients.stats.snapshot().total_retries("zoho_crm")
    assert retries > 0
    assert sleeps.count(0.05) == retries


def test_429_without_retry_after_backs_off_with_jitter(emu, connect):
    sleeps = RealSleep()
    policy = RetryPolicy(max_attempts=8, base_delay=0.02, max_delay=0.1, budget=20)
    clients = connect(emu, sleep=sleeps, retry=policy)
    emu.set_faults(FaultConfig(error_rate_429=0.5, apps=frozenset({"clickfunnels"}), seed=4))
    records, _, _, _ = drain(clients.clickfunnels.read_contacts())
    assert len(records) == sum(
        1 for r in emu.dataset.tables["clickfunnels/contact"].values() if not r["anonymous"]
    )
    assert sleeps
    assert all(0 <= s <= 0.1 for s in sleeps)
    assert len(set(sleeps)) > 1


def test_503_and_dropped_connections_are_retried(emu, connect):
    clients = connect(emu)
    emu.set_faults(FaultConfig(error_rate_503=0.3, drop_rate=0.3, seed=3))
    events, _, _, _ = drain(clients.linkflow.read_events())
    contacts, _, _, _ = drain(clients.clicksend.read_list_contacts())
    assert len(events) == len(emu.dataset.tables["linkflow/event"])
    assert {r["contact_id"] for r in contacts} == set(emu.dataset.tables["clicksend/list_contact"])
    snapshot = clients.stats.snapshot()
    assert snapshot.total_retries("linkflow") + snapshot.total_retries("clicksend") > 0


def test_persistent_429_gives_up_with_a_typed_error(emu, connect):
    clients = connect(emu, retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02, budget=5))
    emu.set_faults(FaultConfig(error_rate_429=1.0, apps=frozenset({"clicksend"})))
    with pytest.raises(RateLimitedError) as info:
        clients.clicksend.account_country()
    assert info.value.attempts == 3
    assert str(info.value).startswith("clicksend GET /v3/account -> 429 TOO_MANY_REQUESTS")
    assert emu.total_requests("clicksend") == 3


def read_apps_at_once(clients):
    """Three Maton apps read in parallel threads; returns (seconds, errors)."""
    errors: list[BaseException] = []

    def run(read):
        try:
            drain(read())
        except RateLimitedError as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(read,))
        for read in (
            clients.clickfunnels.read_contacts,
            clients.zoho_bigin.read_contacts,
            clients.clicksend.read_list_contacts,
        )
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started, errors


def test_shared_bucket_keeps_concurrent_apps_under_the_gateway_limit(start_emulator, connect):
    emu = start_emulator(seed=7, people=500, maton_rps=10)
    clients = connect(emu, maton_rate=9.5)
    elapsed, errors = read_apps_at_once(clients)
    snapshot = clients.stats.snapshot()
    assert not errors
    assert snapshot.total_requests() > 20
    assert snapshot.total_retries() == 0
    assert elapsed >= (snapshot.total_requests() - 1) / 9.5 * 0.95


def test_without_the_shared_bucket_the_gateway_refuses(start_emulator, connect):
    emu = start_emulator(seed=7, people=500, maton_rps=10)
    clients = connect(emu, maton_rate=1000.0)
    _, errors = read_apps_at_once(clients)
    assert errors or clients.stats.snapshot().total_retries() > 0
