"""The gateway's rate limiter against the real Redis: exact near the limit, few round trips far from it."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import redis

from gateway.ratelimit import FixedWindowLimiter
from tests.support import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def make(redis_url):
    prefix = f"test-limiter-{uuid.uuid4().hex}"
    made: list[FixedWindowLimiter] = []

    def factory(**options) -> FixedWindowLimiter:
        limiter = FixedWindowLimiter(redis_url, prefix, **options)
        made.append(limiter)
        return limiter

    yield factory
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()
    for limiter in made:
        limiter.close()


def stored_count(limiter: FixedWindowLimiter, client_key: str, limit: int) -> int:
    return int(limiter.redis.get(f"{limiter.prefix}:{limit}/{limiter.window_seconds}s:{client_key}") or 0)


def test_a_small_budget_is_counted_in_redis_on_every_request(make):
    limiter = make()
    windows = [limiter.hit("ip:10.0.0.1", 3) for _ in range(5)]
    assert [w.count for w in windows] == [1, 2, 3, 4, 5]
    assert [w.exceeded for w in windows] == [False, False, False, True, True]
    assert [w.remaining for w in windows] == [2, 1, 0, 0, 0]
    assert limiter.exchanges == 5 and stored_count(limiter, "ip:10.0.0.1", 3) == 5
    assert all(0 < w.reset_in_ms <= 60_000 for w in windows)
    assert not limiter.hit("ip:10.0.0.2", 3).exceeded  # every client its own budget


def test_far_from_the_limit_hits_are_sent_in_batches_and_none_is_lost(make):
    limiter = make(sync_seconds=3600)  # no time-based exchange during the test
    windows = [limiter.hit("key:k1", 1000) for _ in range(200)]
    assert [w.count for w in windows] == list(range(1, 201))
    assert limiter.exchanges == 1, "only the first request (no local state yet) needs Redis"
    assert stored_count(limiter, "key:k1", 1000) == 1
    # Close to the limit (its last tenth), each request goes to Redis with the hits counted meanwhile.
    for _ in range(700):
        limiter.hit("key:k1", 1000)
    assert stored_count(limiter, "key:k1", 1000) == 1 and limiter.exchanges == 1  # 900 counted here so far
    last = [limiter.hit("key:k1", 1000) for _ in range(105)]
    assert stored_count(limiter, "key:k1", 1000) == 1005
    assert [w.count for w in last][-6:] == [1000, 1001, 1002, 1003, 1004, 1005]
    assert [w.exceeded for w in last].index(True) == 100  # the 1001st request of the window


def test_local_hits_reach_redis_with_the_next_exchange(make):
    limiter = make(sync_seconds=0.05)
    for _ in range(50):
        limiter.hit("key:k2", 10_000)
    time.sleep(0.06)
    window = limiter.hit("key:k2", 10_000)
    assert window.count == 51 and stored_count(limiter, "key:k2", 10_000) == 51


@pytest.mark.parametrize("limit", [20, 999])
def test_two_processes_share_a_small_budget_exactly(make, limit):
    a, b = make(), make()
    outcomes = [(a if n % 2 else b).hit("ip:192.0.2.7", limit).exceeded for n in range(limit + 10)]
    assert not any(outcomes[:limit]) and all(outcomes[limit:])


def test_hits_counted_locally_by_two_processes_count_against_the_shared_budget(make):
    a, b = make(sync_seconds=3600), make(sync_seconds=3600)
    # Far from the limit each counts locally: b sees a's first hit, which went to Redis, not the 49 after it.
    assert [a.hit("ip:192.0.2.8", 1000).count for _ in range(50)][-1] == 50
    assert [b.hit("ip:192.0.2.8", 1000).count for _ in range(2)] == [2, 3]
    # Once their next exchanges are due, every hit sent so far is in the shared count: 52 of the 1000 are spent.
    a.sync_seconds = b.sync_seconds = 0
    outcomes = [(a if n % 2 else b).hit("ip:192.0.2.8", 1000).exceeded for n in range(1000)]
    assert outcomes.index(True) == 1000 - 52 and all(outcomes[1000 - 52:])


def test_threads_lose_no_hit(make):
    limiter = make(sync_seconds=0.001)

    def work() -> None:
        for _ in range(250):
            limiter.hit("key:k3", 1_000_000)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(0.01)
    assert limiter.hit("key:k3", 1_000_000).count == 2001
    assert stored_count(limiter, "key:k3", 1_000_000) == 2001


def test_an_unreachable_redis_raises_at_once(make):
    limiter = FixedWindowLimiter(f"redis://127.0.0.1:{free_port()}/0", "x")
    started = time.monotonic()
    with pytest.raises(redis.RedisError):
        limiter.hit("ip:10.0.0.1", 5)
    assert time.monotonic() - started < 2
    limiter.close()
