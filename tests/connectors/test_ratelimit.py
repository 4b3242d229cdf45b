"""Token bucket arithmetic (fake clock) and its behaviour under real threads."""

import threading
import time

import pytest

from connectors.ratelimit import TokenBucket


class FakeTime:
    def __init__(self):
        self.now = 0.0

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_reservations_queue_in_order_without_burst():
    t = FakeTime()
    bucket = TokenBucket(10, 1, clock=t.clock, sleep=lambda s: None)
    waits = [round(bucket.acquire(), 3) for _ in range(4)]
    assert waits == [0.0, 0.1, 0.2, 0.3]


def test_burst_is_spent_then_rate_applies():
    t = FakeTime()
    bucket = TokenBucket(5, 3, clock=t.clock, sleep=t.sleep)
    assert [bucket.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert round(bucket.acquire(), 3) == 0.2
    t.now += 10
    assert bucket.acquire() == 0.0
    assert bucket.acquire() == 0.0


def test_refill_never_exceeds_burst():
    t = FakeTime()
    bucket = TokenBucket(2, 2, clock=t.clock, sleep=t.sleep)
    t.now = 100
    [bucket.acquire() for _ in range(2)]
    assert round(bucket.acquire(), 3) == 0.5


def test_rejects_nonsense():
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(1, 0.5)


def test_threads_share_the_rate():
    bucket = TokenBucket(100, 1)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker():
        for _ in range(10):
            bucket.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(stamps) == 40
    assert time.monotonic() - start >= 39 / 100 * 0.95
    stamps.sort()
    window = [b - a for a, b in zip(stamps, stamps[10:], strict=False)]
    assert min(window) >= 10 / 100 * 0.8
