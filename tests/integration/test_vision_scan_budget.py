"""The per-client scan budget against the real Redis: scans of one client sent at the same moment, from
several processes (as several gRPC workers or replicas would), cannot all take its last place
(services/vision/store.py, ``weigh_scan`` under WATCH; a plain read-then-add lets several through)."""

from __future__ import annotations

import multiprocessing

import pytest
import redis

from services.vision.core.scans import Scanner
from services.vision.store import VisionKeys as K
from services.vision.store import VisionStore

pytestmark = pytest.mark.integration
SCANS_AT_ONCE = 12
ROUNDS = 3
VISITOR = Scanner("addr-0123456789abcdef", trusted=False)


def _scan(url: str, serial: str, scanner: Scanner, place: str, budget: int, barrier, results) -> None:
    client = redis.Redis.from_url(url, decode_responses=True)
    client.ping()  # connected before the start line, so the scans really meet
    barrier.wait()
    results.put(VisionStore(client).weigh_scan(serial, scanner, place, budget).counted)


def scan_at_once(url: str, serial: str, scanner: Scanner, places: list[str], budget: int) -> list[bool]:
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(len(places)), context.Queue()
    workers = [context.Process(target=_scan, args=(url, serial, scanner, place, budget, barrier, results))
               for place in places]
    for worker in workers:
        worker.start()
    counted = [results.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(10)
    return counted


def test_one_client_at_once_in_many_places_counts_once(redis_url, redis_client):
    for round_ in range(ROUNDS):
        serial = f"S{round_}"
        counted = scan_at_once(redis_url, serial, VISITOR, [f"gh:p{i:03d}" for i in range(SCANS_AT_ONCE)], 1)
        assert counted.count(True) == 1, (round_, counted)
        assert redis_client.scard(K.client_places(serial, VISITOR.client_id)) == 1
    # The next scan at the place that counted is a repeat, anywhere else over budget: neither counts.
    store = VisionStore(redis_client)
    place = next(iter(redis_client.smembers(K.client_places("S0", VISITOR.client_id))))
    assert "already counts" in store.weigh_scan("S0", VISITOR, place, 1).reason
    assert "as many as one client's may" in store.weigh_scan("S0", VISITOR, "gh:elsewhere", 1).reason


def test_a_larger_budget_is_kept_exactly_and_trusted_scanners_take_none(redis_url, redis_client):
    counted = scan_at_once(redis_url, "S1", VISITOR, [f"gh:q{i:03d}" for i in range(SCANS_AT_ONCE)], 3)
    assert counted.count(True) == 3
    inspector = Scanner("key-5678ef90", trusted=True)
    assert all(scan_at_once(redis_url, "S1", inspector, [f"gh:r{i:03d}" for i in range(4)], 1))
    assert not redis_client.exists(K.client_places("S1", inspector.client_id))
