"""Issue #22, ingest: a projection reads what a batch needs of Redis once, in ``prepare``, instead of a round trip per
event (a product's details, its category, an order, the stock ledger's count time), and turns every event into the
same commands as when it read them one by one. Against the real Redis, with state applied by the real applier."""

from __future__ import annotations

import pytest

from services.chatbot.consumer import ChatbotProjection
from services.common.events import new_event
from services.common.projection import RedisApplier
from services.forecasting.consumer import ForecastProjection
from services.recommender.consumer import RecommenderProjection
from tests.support import projected_commands

pytestmark = pytest.mark.integration


def _history() -> list:
    events = []
    for i in range(12):
        events.append(new_event("product.upserted", {"product_id": f"p{i}", "title": f"T{i}", "category": f"c{i % 3}",
                                                     "brand": f"b{i % 2}", "price": 10.0 + i}))
        events.append(new_event("inventory.set", {"product_id": f"p{i}", "on_hand": 50}))
    for o in range(6):
        events.append(new_event("order.created", {"order_id": f"o{o}", "user_id": f"u{o}", "total": 30.0, "lines": [
            {"product_id": f"p{o}", "quantity": 2, "unit_price": 10.0},
            {"product_id": f"p{o + 1}", "quantity": 1, "unit_price": 10.0}]}))
    return events


def _batch() -> list:
    """Everything that reads: interactions, stock moves, a count, orders created, cancelled, returned, refunded."""
    events = []
    for i in range(40):
        events.append(new_event("interaction.view", {"user_id": f"u{i % 9}", "product_id": f"p{(i * 5) % 12}"}))
        if i % 4 == 0:
            events.append(new_event("interaction.purchase", {"user_id": f"u{i % 9}", "product_id": f"p{i % 12}",
                                                             "quantity": 1, "price": 12.5}))
    events += [
        new_event("inventory.received", {"product_id": "p3", "delta": 5}),
        new_event("inventory.adjusted", {"product_id": "p11", "delta": -2}),
        new_event("inventory.set", {"product_id": "p4", "on_hand": 7}),
        new_event("inventory.received", {"product_id": "p4", "delta": 1}),
        new_event("order.created", {"order_id": "o9", "user_id": "u9", "total": 10.0,
                                    "lines": [{"product_id": "p7", "quantity": 1, "unit_price": 10.0}]}),
        new_event("order.cancelled", {"order_id": "o1", "user_id": "u1"}),
        new_event("order.cancelled", {"order_id": "o9", "user_id": "u9"}),
        new_event("order.returned", {"order_id": "o2", "user_id": "u2",
                                     "lines": [{"product_id": "p2", "quantity": 1}]}),
        new_event("order.refunded", {"order_id": "o3", "user_id": "u3", "total": 5.0}),
        new_event("order.cancelled", {"order_id": "o-never-seen", "user_id": "u1"}),
        new_event("product.upserted", {"product_id": "p5", "title": "T5", "category": "moved", "price": 1.0}),
        new_event("interaction.view", {"user_id": "u1", "product_id": "p5"}),
    ]
    return events


class _Counting:
    """Counts the commands sent to Redis outside ``prepare`` (a pipeline's execute counts one)."""

    def __init__(self, client) -> None:
        self.client = client
        self.calls = 0

    def __getattr__(self, name):
        attr = getattr(self.client, name)
        if name in ("hget", "hmget", "hgetall", "get", "exists", "smembers", "sismember"):
            def counted(*args, **kwargs):
                self.calls += 1
                return attr(*args, **kwargs)
            return counted
        if name == "pipeline":
            def pipeline(*args, **kwargs):
                self.calls += 1
                return attr(*args, **kwargs)
            return pipeline
        return attr


@pytest.mark.parametrize("cls", [RecommenderProjection, ForecastProjection, ChatbotProjection])
def test_a_prepared_batch_reads_once_and_writes_what_reading_one_by_one_writes(redis_client, cls):
    history = [e for e in _history() if e.topic in cls.topics]
    seeded = cls(redis_client)
    applier = RedisApplier(redis_client, seeded.group, 3600)
    applier.apply([(e.event_id, projected_commands(seeded, [e])[0]) for e in history])

    events = [e for e in _batch() if e.topic in cls.topics]
    lazy = _Counting(redis_client)
    expected = projected_commands(cls(lazy), events)
    assert lazy.calls >= 5, "the batch reads Redis event by event without prepare"

    counting = _Counting(redis_client)
    projection = cls(counting)
    state: dict = {}
    projection.prepare(events, state)
    reads_in_prepare = counting.calls
    assert projected_commands(projection, events, state) == expected
    assert reads_in_prepare <= 3, reads_in_prepare
    # what is left: returns and refunds of products no line of the batch names (none here)
    assert counting.calls - reads_in_prepare == 0
