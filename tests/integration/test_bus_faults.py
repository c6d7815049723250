"""The bus under faults, against the real broker and Redis: crashes, replicas, a flushed Redis."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest
from kafka import KafkaAdminClient

from services.common.bus import KILL_BEFORE_COMMIT_ENV, EventPublisher, ensure_topics
from services.common.events import new_event
from services.common.settings import Settings
from services.recommender.consumer import RecommenderProjection
from services.recommender.core import EVENT_WEIGHTS
from services.recommender.store import RecommenderKeys as K
from tests.support import wait_for

pytestmark = pytest.mark.integration

GROUP = "recommender"


def purchases(n: int, seed: int = 7, users: int = 200, products: int = 50) -> list[dict]:
    rng = random.Random(seed)
    return [
        new_event("interaction.purchase", {"user_id": f"u{rng.randrange(users)}", "product_id": f"p{rng.randrange(products)}",
                                           "quantity": 1, "price": 10.0}).to_dict()
        for _ in range(n)
    ]


def expected_state(events: list[dict]) -> tuple[dict[str, float], dict[str, int]]:
    popularity = Counter()
    per_user = Counter()
    for e in events:
        popularity[e["payload"]["product_id"]] += EVENT_WEIGHTS["purchase"]
        per_user[e["payload"]["user_id"]] += 1
    return dict(popularity), dict(per_user)


def applied_count(redis_client) -> int:
    return int(redis_client.hget(K.stats, "interaction.purchase") or 0)


def assert_exactly_once(redis_client, events: list[dict]) -> None:
    popularity, per_user = expected_state(events)
    assert applied_count(redis_client) == len(events)
    stored = {m: s for m, s in redis_client.zrange(K.popular, 0, -1, withscores=True)}
    assert stored == popularity
    for user, count in per_user.items():
        assert int(redis_client.hget(K.user_counts(user), "purchase")) == count, user


def committed_offsets(settings) -> int:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        offsets = admin.list_group_offsets(GROUP).get(GROUP, {})
    finally:
        admin.close()
    return sum(o.offset for o in offsets.values() if o.offset and o.offset > 0)


def publish(settings, events: list[dict]) -> None:
    publisher = EventPublisher(settings)
    try:
        publisher.publish(events)
    finally:
        publisher.close()


def test_sigkill_between_apply_and_commit_applies_each_event_once(settings, start_service, redis_client):
    ensure_topics(settings)
    events = purchases(3000)
    # The failpoint SIGKILLs the consumer after its 3rd batch is stored in Redis, before the commit.
    first = start_service("recommender", SHOPAI_KAFKA_MAX_BATCH="100", **{KILL_BEFORE_COMMIT_ENV: "3"})
    publish(settings, events)
    wait_for(lambda: first.proc.poll() is not None, 60, what="the failpoint to kill the consumer")
    assert first.proc.returncode == -9, "the consumer was not SIGKILLed"
    applied_at_crash = applied_count(redis_client)
    assert applied_at_crash > committed_offsets(settings), "the crash did not leave applied-but-uncommitted events"
    assert applied_at_crash < len(events)

    second = start_service("recommender", SHOPAI_KAFKA_MAX_BATCH="100")
    wait_for(lambda: applied_count(redis_client) >= len(events), 60, what="all events applied")
    wait_for(lambda: committed_offsets(settings) == len(events), 30, what="all offsets committed")
    assert_exactly_once(redis_client, events)
    assert second.metric("shopai_events_consumed_total", outcome="duplicate") > 0, "redelivered events were not seen"


def test_sigkill_at_random_moments_loses_and_doubles_nothing(settings, start_service, redis_client):
    ensure_topics(settings)
    events = purchases(12000, seed=11)
    publisher_done = threading.Event()

    def publish_slowly() -> None:
        publisher = EventPublisher(settings)
        try:
            for start in range(0, len(events), 1000):
                publisher.publish(events[start:start + 1000])
        finally:
            publisher.close()
            publisher_done.set()

    thread = threading.Thread(target=publish_slowly)
    thread.start()
    kills = 0
    for threshold in (1500, 5000):
        proc = start_service("recommender", SHOPAI_KAFKA_MAX_BATCH="200")
        wait_for(lambda t=threshold: applied_count(redis_client) >= t, 60, interval=0.02, what=f"{threshold} applied")
        proc.kill()
        kills += 1
    thread.join(60)
    assert publisher_done.is_set()
    start_service("recommender")
    wait_for(lambda: applied_count(redis_client) >= len(events), 90, what="all events applied")
    wait_for(lambda: committed_offsets(settings) == len(events), 30, what="all offsets committed")
    assert kills == 2
    assert_exactly_once(redis_client, events)


def test_two_replicas_split_partitions_and_apply_each_event_once(settings, start_service, redis_client):
    ensure_topics(settings)
    a = start_service("recommender")
    b = start_service("recommender")

    def split() -> bool:
        owned = [r.metric("shopai_consumer_assigned_partitions") for r in (a, b)]
        return all(o > 0 for o in owned) and sum(owned) == len(RecommenderProjection.topics) * settings.kafka_topic_partitions

    wait_for(split, 60, what="both replicas to own partitions")
    events = purchases(4000, seed=3, users=400)
    publish(settings, events)
    wait_for(lambda: applied_count(redis_client) >= len(events), 60, what="all events applied")
    applied = [r.metric("shopai_events_consumed_total", outcome="applied") for r in (a, b)]
    assert all(n > 0 for n in applied), f"one replica applied nothing: {applied}"
    assert sum(applied) == len(events)
    assert_exactly_once(redis_client, events)


def test_flushed_redis_is_rebuilt_from_the_events(settings, start_service, redis_client):
    ensure_topics(settings)
    catalog = [new_event("product.upserted", {"product_id": f"p{i}", "title": f"P{i}", "category": "shoes",
                                               "price": 10.0}).to_dict() for i in range(50)]
    events = purchases(2000, seed=5)
    start_service("recommender")
    publish(settings, catalog + events)
    # The catalog and the purchases travel on different topics, so neither waits for the other.
    wait_for(lambda: applied_count(redis_client) >= len(events) and redis_client.scard(K.active) >= 50, 60,
             what="all events applied")
    before = redis_client.zrange(K.popular, 0, -1, withscores=True)
    assert redis_client.scard(K.active) == 50

    redis_client.flushdb()
    wait_for(lambda: applied_count(redis_client) >= len(events), 60, what="the projection to be rebuilt")
    wait_for(lambda: redis_client.exists("shopai:recommender:built"), 30, what="the rebuild to finish")
    assert redis_client.zrange(K.popular, 0, -1, withscores=True) == before
    assert redis_client.scard(K.active) == 50
    assert_exactly_once(redis_client, events)


def test_a_redis_outage_delays_events_but_loses_none(broker, tmp_path, start_service_with):
    """Redis goes away mid-stream: the consumer retries the batch, commits nothing, and applies
    everything exactly once when Redis is back (with its data: an append-only file)."""
    import redis as redis_lib

    from tests.support import PrivateRedis

    private = PrivateRedis(data_dir=tmp_path)
    try:
        settings = Settings(kafka_bootstrap_servers=broker.bootstrap, redis_url=private.url,
                            data_dir=tmp_path / "data", log_json=False)
        client = redis_lib.Redis.from_url(private.url, decode_responses=True)
        ensure_topics(settings)
        proc = start_service_with(settings, "recommender", SHOPAI_KAFKA_MAX_BATCH="100")
        first, second = purchases(1000, seed=21), purchases(1000, seed=22)
        publish(settings, first)
        wait_for(lambda: applied_count(client) >= len(first), 60, what="the first events")
        private.stop()
        publish(settings, second)  # accepted by the broker while Redis is down
        wait_for(lambda: proc.metric("shopai_consumer_retries_total") > 0, 30, what="the consumer to retry")
        assert proc.proc.poll() is None, "the consumer died instead of waiting for Redis"
        private.start()
        wait_for(lambda: applied_count(client) >= 2000, 60, what="the events held back by the outage")
        assert_exactly_once(client, first + second)
    finally:
        private.stop()


def test_a_service_started_before_the_broker_waits_for_it(redis_client, redis_url, tmp_path, start_service_with):
    from tests.support import Broker, free_port, grpc_serving

    port = free_port()
    settings = Settings(kafka_bootstrap_servers=f"127.0.0.1:{port}", redis_url=redis_url,
                        data_dir=tmp_path / "data", log_json=False)
    proc = start_service_with(settings, "recommender", wait=False)
    wait_for(lambda: "ECONNREFUSED" in proc.log(), 60,
             what="the consumer to notice the missing broker")
    assert proc.proc.poll() is None and not grpc_serving(proc.target), "it must wait, not die or claim readiness"
    broker = Broker(port)
    try:
        proc.wait_serving(90)
        publish(settings, purchases(50))
        wait_for(lambda: applied_count(redis_client) == 50, 30, what="events after the broker came up")
    finally:
        broker.stop()
