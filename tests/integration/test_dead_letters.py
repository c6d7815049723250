"""Dead letters seen and replayed (issue #20 item 3), on the real broker, Redis and consumers: listed through
REST and `shopai dlq`, replayed after a fix exactly once, and dead-lettered again while still invalid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
from prometheus_client import REGISTRY

from gateway.app import close_app, create_app
from services.common import cache, topics
from services.common.bus import EventConsumer, EventPublisher
from services.common.events import Event, new_event
from services.common.projection import Ops, Projection
from services.recommender.store import RecommenderKeys
from tests.support import assert_problem, staff, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway(settings, start_service):
    """The recommender (a real consumer of interactions and orders) and a gateway in front of it."""
    recommender = start_service("recommender")
    settings.recommender.grpc_port = recommender.grpc_port
    app = create_app(settings)
    yield staff(app.test_client()), recommender
    close_app(app)


def shopai(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SHOPAI_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "SHOPAI_REDIS_URL": settings.redis_url, "SHOPAI_DATA_DIR": str(settings.data_dir)}
    return subprocess.run([sys.executable, "-m", "shopai.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def send_raw(settings, topic: str, key: str, value: bytes) -> None:
    publisher = EventPublisher(settings, client_id="test-raw")
    try:
        publisher.wait([(topic, publisher.send(topic, key, value))])
    finally:
        publisher.close()


def letters(client, **query) -> dict:
    reply = client.get("/v1/admin/dead-letters", query_string=query)
    assert reply.status_code == 200, reply.get_data(as_text=True)
    return reply.json


def until(client, total: int, what: str, **query) -> dict:
    """The list once it holds ``total`` letters."""
    def page() -> dict | None:
        body = letters(client, **query)
        return body if body["total"] == total else None

    return wait_for(page, 30, what=what)


def test_an_invalid_event_is_listed_and_a_replay_dead_letters_it_again(gateway, settings, redis_client):
    client, recommender = gateway
    bad = new_event("interaction.view", {"user_id": "u1", "product_id": "p1"}).to_dict()
    bad["payload"]["rating"] = "five"  # not an int32: the recommender's consumer dead-letters it
    send_raw(settings, topics.INTERACTIONS, "u1", json.dumps(bad).encode())
    send_raw(settings, topics.INTERACTIONS, "u2", b"\xff{not json")

    page = until(client, 2, "two dead letters through REST", topic=topics.INTERACTIONS)
    by_kind = {("json" if x["event"] else "binary"): x for x in page["dead_letters"]}
    letter = by_kind["json"]
    assert letter["topic"] == topics.INTERACTIONS and letter["dead_letter_topic"] == topics.dlq(topics.INTERACTIONS)
    assert letter["consumer_group"] == "recommender" and letter["error_type"] == "InvalidEvent"
    assert "rating" in letter["reason"] and letter["key"] == "u1"
    assert letter["event"] == bad and letter["event_id"] == bad["event_id"] and letter["replayed"] is None
    binary = by_kind["binary"]
    assert binary["event"] is None and binary["event_base64"] == "/3tub3QganNvbg=="  # b"\xff{not json"
    assert binary["reason"].startswith("invalid event: not JSON")
    assert letters(client)["total"] == 2  # every topic: the same two
    assert letters(client, topic=topics.dlq(topics.ORDERS))["total"] == 0
    assert len(letters(client, topic=topics.INTERACTIONS, limit=1)["dead_letters"]) == 1

    # One by id; bad ids and topics are 400s, an id with nothing behind it a 404.
    one = client.get(f"/v1/admin/dead-letters/{letter['id']}")
    assert one.status_code == 200 and one.json == letter
    assert "not a dead letter id" in assert_problem(client.get("/v1/admin/dead-letters/orders.v1:0:1"), 400)["detail"]
    assert_problem(client.get("/v1/admin/dead-letters/nonsense"), 400)
    assert_problem(client.get(f"/v1/admin/dead-letters/{topics.dlq(topics.ORDERS)}:0:99"), 404)
    assert_problem(client.get("/v1/admin/dead-letters/models.v1.dlq:0:0"), 404)
    assert "has no dead-letter topic" in assert_problem(
        client.get("/v1/admin/dead-letters", query_string={"topic": "nope.v1"}), 400)["detail"]
    assert_problem(client.get("/v1/admin/dead-letters", query_string={"limit": 0}), 400)

    # The CLI lists the same letters, with the reason.
    listed = shopai(settings, "dlq", "list", "--topic", topics.INTERACTIONS, "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == page
    text = shopai(settings, "dlq", "list")
    assert text.returncode == 0, text.stderr
    assert letter["id"] in text.stdout and letter["reason"] in text.stdout and "2 of 2 dead letters" in text.stdout
    shown = shopai(settings, "dlq", "show", letter["id"])
    assert shown.returncode == 0 and json.loads(shown.stdout) == letter
    assert shopai(settings, "dlq", "show", "orders.v1.dlq:x").returncode == 2

    # Replayed while still invalid: the consumer dead-letters the new copy again, with the new attempt's reason.
    reply = client.post("/v1/admin/dead-letters/replay", json={"ids": [letter["id"]]})
    assert reply.status_code == 200, reply.get_data(as_text=True)
    (done,) = reply.json["replayed"]
    assert done["id"] == letter["id"] and done["topic"] == topics.INTERACTIONS and done["event_id"] == bad["event_id"]
    page = until(client, 3, "the replay dead-lettered")
    again = page["dead_letters"][0]  # newest first
    assert (again["partition"], again["offset"]) == (done["partition"], done["offset"])
    assert again["event"] == bad and "rating" in again["reason"] and again["replayed"] is None
    first = next(x for x in page["dead_letters"] if x["id"] == letter["id"])
    assert first["replayed"]["offset"] == done["offset"] and first["replayed"]["by"].startswith("key-")
    assert first["replayed"]["forced"] is False

    # A second replay is refused (REST 409, CLI exit 1) unless forced; unknown and malformed ids are refused.
    refused = assert_problem(client.post("/v1/admin/dead-letters/replay", json={"ids": [letter["id"]]}), 409)
    assert "already replayed" in refused["detail"]
    cli = shopai(settings, "dlq", "replay", letter["id"])
    assert cli.returncode == 1 and "already replayed" in cli.stderr
    assert_problem(client.post("/v1/admin/dead-letters/replay", json={"ids": ["bad id"]}), 400)
    assert_problem(client.post("/v1/admin/dead-letters/replay",
                               json={"ids": [f"{topics.dlq(topics.INTERACTIONS)}:0:999"]}), 404)
    assert_problem(client.post("/v1/admin/dead-letters/replay", json={"ids": []}), 400)
    assert_problem(client.post("/v1/admin/dead-letters/replay", data="[]", content_type="application/json"), 400)
    forced = shopai(settings, "dlq", "replay", letter["id"], "--force")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["replayed"][0]["id"] == letter["id"]
    until(client, 4, "the forced replay dead-lettered too")
    assert recommender.metric("shopai_events_consumed_total", outcome="applied") == 0


class OrdersOfKnownProducts(Projection):
    """A consumer that cannot process an order for a product it has not seen (the fix: the product arrives)."""

    group = "known-products"
    topics = (topics.CATALOG, topics.ORDERS)

    def apply(self, event: Event, ops: Ops) -> None:
        if event.family == "product":
            ops("SADD", "test:known", str(event.payload["product_id"]))
            return
        for line in event.payload.get("lines", []):
            if not self.redis.sismember("test:known", str(line["product_id"])):
                raise LookupError(f"unknown product {line['product_id']}")
        ops("HINCRBY", "test:orders", str(event.payload["order_id"]), 1)


def consumed(group: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("shopai_events_consumed_total",
                                     {"group": group, "topic": topics.ORDERS, "outcome": outcome}) or 0.0


@pytest.fixture
def known_products(settings, redis_client):
    consumer = EventConsumer(settings, OrdersOfKnownProducts(cache.connect(settings)))
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    wait_for(consumer.ready.is_set, 60, what="the consumer to start")
    yield consumer
    stop.set()
    thread.join(30)


def test_after_the_fix_a_replay_is_applied_exactly_once(gateway, known_products, settings, redis_client):
    client, recommender = gateway
    order = new_event("order.created", {"order_id": "o1", "user_id": "u1", "total": 30.0, "currency": "EUR",
                                        "lines": [{"product_id": "p9", "quantity": 1, "unit_price": 30.0}]})
    publisher = EventPublisher(settings, client_id="test")
    try:
        publisher.publish([order])
        # The recommender applies the order; the other consumer does not know p9 yet and dead-letters it.
        page = until(client, 1, "the order dead-lettered", topic=topics.ORDERS)
        (letter,) = page["dead_letters"]
        assert letter["consumer_group"] == "known-products" and letter["error_type"] == "LookupError"
        assert letter["reason"] == "processing failed: unknown product p9" and letter["event_id"] == order.event_id
        orders_of_u1 = RecommenderKeys.user_orders("u1")
        wait_for(lambda: redis_client.hget(orders_of_u1, "orders") == "1", 30, what="the recommender's order")
        assert redis_client.hget("test:orders", "o1") is None

        # The fix: the product arrives. Then the letter is replayed from the CLI.
        publisher.publish([new_event("product.upserted", {"product_id": "p9", "title": "Boot", "category": "shoes",
                                                          "price": 30.0, "currency": "EUR"})])
        wait_for(lambda: redis_client.sismember("test:known", "p9"), 30, what="the product")
    finally:
        publisher.close()
    replay = shopai(settings, "dlq", "replay", letter["id"])
    assert replay.returncode == 0, replay.stderr
    wait_for(lambda: redis_client.hget("test:orders", "o1") == "1", 30, what="the replayed order applied")
    # The recommender had applied it already: the copy is a duplicate there, not a second order.
    wait_for(lambda: recommender.metric("shopai_events_consumed_total", topic=topics.ORDERS, outcome="duplicate")
             == 1, 30, what="the recommender to skip the copy")
    assert redis_client.hget(orders_of_u1, "orders") == "1"
    listed = letters(client, topic=topics.ORDERS)
    assert listed["total"] == 1 and listed["dead_letters"][0]["replayed"]["by"].startswith("cli:")

    # Forced once more: every consumer has applied it now, so nothing changes anywhere.
    reply = client.post("/v1/admin/dead-letters/replay", json={"ids": [letter["id"]], "force": True})
    assert reply.status_code == 200, reply.get_data(as_text=True)
    wait_for(lambda: consumed("known-products", "duplicate") == 1, 30, what="the second copy skipped")
    wait_for(lambda: recommender.metric("shopai_events_consumed_total", topic=topics.ORDERS, outcome="duplicate")
             == 2, 30, what="the recommender to skip the second copy")
    assert redis_client.hget("test:orders", "o1") == "1" and redis_client.hget(orders_of_u1, "orders") == "1"
    assert consumed("known-products", "applied") == 1
    assert letters(client, topic=topics.ORDERS)["total"] == 1  # nothing dead-lettered again
