"""The consumer builds the next batch while Redis applies the one in flight (services/common/bus.py): the next one
reads the state the one in flight left, so an event that depends on one a batch earlier (a cancellation of an order
created just before) is applied as if the two had come one at a time; a redelivery in flight has the next batch
built on fresh reads; and the offsets are committed in order. Against the real broker and Redis."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime

import pytest
from kafka import KafkaAdminClient, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from services.common import cache, topics
from services.common.bus import EventConsumer, EventPublisher, ensure_topics
from services.common.events import new_event
from services.forecasting.consumer import ForecastProjection
from services.forecasting.store import ForecastKeys as K
from tests.support import wait_for

pytestmark = pytest.mark.integration

DAY = datetime(2026, 11, 2, 12, tzinfo=UTC)


def _orders(first: int, count: int) -> tuple[list, Counter]:
    """Orders created, every other one cancelled right after: the cancellation reads the order its creation wrote."""
    events, units = [], Counter()
    for i in range(first, first + count):
        pid, quantity = f"p{i % 11}", 1 + i % 3
        events.append(new_event("order.created", {"order_id": f"o{i}", "user_id": f"u{i % 17}", "total": 2.0 * quantity,
                                                  "lines": [{"product_id": pid, "quantity": quantity,
                                                             "unit_price": 2.0}]}, occurred_at=DAY))
        if i % 2:
            events.append(new_event("order.cancelled", {"order_id": f"o{i}", "user_id": f"u{i % 17}"}, occurred_at=DAY))
        else:
            units[pid] += quantity
    return events, units


def _units(redis_client) -> Counter:
    out = Counter()
    for i in range(11):
        value = redis_client.hget(K.units("p", f"p{i}"), DAY.date().isoformat())
        if value is not None and float(value):
            out[f"p{i}"] = float(value)
    return out


def _committed(settings, group: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    return sum(o.offset for tp, o in offsets.items() if tp.topic == topics.ORDERS and o.offset and o.offset > 0)


def test_batches_built_while_one_is_in_flight_apply_as_one_after_the_other(settings, redis_client):
    settings = settings.model_copy(update={"kafka_max_batch": 5})  # a batch in flight nearly all the time
    ensure_topics(settings)
    created, units = _orders(0, 240)
    # Then the same events again (a redelivery, every one a duplicate), then cancellations of orders kept so far
    # and a second cancellation of some cancelled ones: both read the state the earlier batches left.
    again = [e for e in created]
    later = []
    for i in range(0, 240, 4):  # kept until now (even), cancelled now
        pid, quantity = f"p{i % 11}", 1 + i % 3
        later.append(new_event("order.cancelled", {"order_id": f"o{i}", "user_id": f"u{i % 17}"}, occurred_at=DAY))
        units[pid] -= quantity
    for i in range(1, 240, 8):  # cancelled before: nothing more leaves the series
        later.append(new_event("order.cancelled", {"order_id": f"o{i}", "user_id": f"u{i % 17}"}, occurred_at=DAY))
    events = created + again + later

    consumer = EventConsumer(settings, ForecastProjection(cache.connect(settings)))
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    publisher = EventPublisher(settings, client_id="overlap-test")
    try:
        publisher.publish([e.to_dict() for e in events])
        thread.start()
        expected = +units
        wait_for(lambda: sum(int(v) for k, v in redis_client.hgetall(K.stats).items() if "." in k)
                 == len(created) + len(later), 120, what="every event applied once")
        assert _units(redis_client) == expected
        wait_for(lambda: _committed(settings, "forecasting") == len(events), 30, what="every offset committed")
    finally:
        stop.set()
        thread.join(30)
        publisher.close()
    assert consumer._batches >= len(events) // 5  # every batch committed on its own


def _records(events, offset: int = 0) -> dict:
    """A polled batch: the records as kafka-python gives them."""
    part = TopicPartition(topics.ORDERS, 0)
    return {part: [ConsumerRecord(topics.ORDERS, 0, -1, offset + i, 0, 0, None, json.dumps(e.to_dict()).encode(),
                                  [], None, -1, -1, -1) for i, e in enumerate(events)]}


def test_the_next_batch_reads_what_the_one_in_flight_wrote_not_redis(settings, redis_client):
    """Without the state of the batch in flight, a cancellation built before its order's creation is stored reads
    no order and cancels nothing: the case the overlap must get right, whatever the timing."""
    created, _ = _orders(0, 1)
    order, cancel = created[0], new_event("order.cancelled", {"order_id": "o0", "user_id": "u0"}, occurred_at=DAY)
    day = DAY.date().isoformat()

    consumer = EventConsumer(settings, ForecastProjection(cache.connect(settings)))
    first = consumer.build(_records([order]))
    second = consumer.build(_records([cancel], offset=1), first.state)  # before the first is stored
    consumer.store(first, dead_letter=False)
    consumer.store(second, dead_letter=False)
    assert float(redis_client.hget(K.units("p", "p0"), day)) == 0.0  # created, then cancelled

    redis_client.flushdb()
    lone = EventConsumer(settings, ForecastProjection(cache.connect(settings)))
    first = lone.build(_records([order]))
    fresh = lone.build(_records([cancel], offset=1))  # fresh reads: the order is not in Redis yet
    lone.store(first, dead_letter=False)
    lone.store(fresh, dead_letter=False)
    assert float(redis_client.hget(K.units("p", "p0"), day)) == 1.0  # the cancellation was lost
