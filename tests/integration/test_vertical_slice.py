"""Interaction events -> recommender consumer -> Redis popularity -> gRPC -> REST, on real parts."""

from __future__ import annotations

import json
import uuid

import pytest
from kafka import KafkaConsumer

from gateway.app import close_app, create_app
from services.common import topics
from services.common.bus import EventPublisher
from services.common.events import new_event
from services.recommender.store import RecommenderKeys
from tests.support import staff, wait_for

pytestmark = pytest.mark.integration


def product(pid: str, category: str, price: float = 20.0) -> dict:
    return new_event(
        "product.upserted",
        {"product_id": pid, "title": f"Product {pid}", "title_zh": f"商品 {pid}", "category": category,
         "brand": "Nordwind", "price": price, "currency": "EUR"},
    ).to_dict()


def interaction(kind: str, user: str, pid: str) -> dict:
    return new_event(f"interaction.{kind}", {"user_id": user, "product_id": pid, "quantity": 1, "price": 20.0}).to_dict()


@pytest.fixture
def gateway(settings, start_service):
    recommender = start_service("recommender")
    settings.recommender.grpc_port = recommender.grpc_port
    app = create_app(settings)
    yield staff(app.test_client()), recommender
    close_app(app)


def recommendations(client, user: str = "u1", **params) -> dict:
    query = "&".join(f"{k}={v}" for k, v in {"strategy": "popular", **params}.items())  # params may override
    reply = client.get(f"/v1/users/{user}/recommendations?{query}")
    assert reply.status_code == 200, reply.json
    return reply.json


def read_topic(bootstrap: str, topic: str, expect: int, timeout: float = 20.0) -> list[dict]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                             consumer_timeout_ms=int(timeout * 1000))
    out = []
    for record in consumer:
        out.append(json.loads(record.value))
        if len(out) >= expect:
            break
    consumer.close()
    return out


def test_events_become_popular_recommendations(gateway, settings, redis_client):
    client, recommender = gateway
    catalog = [product("p1", "shoes"), product("p2", "shoes"), product("p3", "bags"), product("p4", "bags")]
    # Weights: purchase 8, add_to_cart 4, view 1 -> p3 16, p2 12, p1 8, p4 1.
    behaviour = [
        interaction("purchase", "u7", "p3"), interaction("purchase", "u8", "p3"),
        interaction("purchase", "u7", "p1"), interaction("add_to_cart", "u9", "p2"),
        interaction("view", "u9", "p4"), interaction("purchase", "u1", "p2"),
    ]
    reply = client.post("/v1/events", json={"events": catalog + behaviour})
    assert reply.status_code == 202, reply.json
    assert reply.json["accepted"] == 10 and reply.json["rejected"] == 0

    def ranked():
        items = recommendations(client, k=10, exclude_purchased="false")["items"]
        return [i["product_id"] for i in items] if len(items) == 4 else None

    assert wait_for(ranked, 30, what="4 popular items") == ["p3", "p2", "p1", "p4"]
    body = recommendations(client, k=10)
    assert [i["product_id"] for i in body["items"]] == ["p3", "p1", "p4"], "u1 bought p2: excluded by default"
    assert body["strategy"] == "popular" and body["model_version"]
    assert body["items"][0]["reason"] == "popular in the shop"
    assert body["items"][0]["title"] == "Product p3" and body["items"][0]["category"] == "bags"
    trending = recommendations(client, k=10, strategy="trending", exclude_purchased="false")["items"]
    assert [i["product_id"] for i in trending] == ["p3", "p2", "p1", "p4"]  # all happened just now
    assert trending[0]["score"] == pytest.approx(16.0, rel=1e-3), "trending answers the weight decayed to now"
    assert trending[0]["reason"] == "trending in the shop this week"
    bags = recommendations(client, k=10, category="bags")["items"]
    assert [i["product_id"] for i in bags] == ["p3", "p4"]
    assert bags[0]["reason"] == "popular in bags"

    # A replayed event (same event_id) is counted once.
    before = redis_client.zscore(RecommenderKeys.popular, "p1")
    assert client.post("/v1/events", json={"events": [behaviour[2]]}).status_code == 202
    marker = interaction("view", "u9", "p4")
    assert client.post("/v1/events", json=marker).status_code == 202  # a later event, to know the replay was read
    wait_for(lambda: redis_client.zscore(RecommenderKeys.popular, "p4") == 2.0, 20, what="the later view")
    assert redis_client.zscore(RecommenderKeys.popular, "p1") == before
    assert recommender.metric("shopai_events_consumed_total", outcome="duplicate") == 1


def test_malformed_events_go_to_the_dead_letter_topic(gateway, settings, redis_client):
    # `gateway` starts the recommender, whose consumer must dead-letter what follows.
    publisher = EventPublisher(settings)
    try:
        publisher.wait([(topics.INTERACTIONS, publisher.send(topics.INTERACTIONS, "u1", b"\xff{not json"))])
        wrong_type = interaction("view", "u1", "p1")
        wrong_type["payload"]["rating"] = "five"  # not an int32
        publisher.wait([(topics.INTERACTIONS, publisher.send(topics.INTERACTIONS, "u1", json.dumps(wrong_type).encode()))])
        good = interaction("view", "u2", "p9")
        publisher.publish([good])
    finally:
        publisher.close()
    letters = read_topic(settings.kafka_bootstrap_servers, topics.dlq(topics.INTERACTIONS), expect=2)
    assert len(letters) == 2
    reasons = sorted(letter["reason"] for letter in letters)
    assert reasons[0].startswith("invalid event: not JSON")
    assert "rating" in reasons[1]
    binary = next(letter for letter in letters if letter["value_is_base64"])
    assert binary["topic"] == topics.INTERACTIONS and binary["consumer_group"] == "recommender"
    # The good event after them was applied: the bad ones did not block the partition.
    wait_for(lambda: redis_client.zscore(RecommenderKeys.popular, "p9") == 1.0, 20, what="the good event")


def test_gateway_rejects_bad_events_with_reasons(gateway):
    client, _ = gateway
    good = interaction("view", "u1", "p1")
    bad_rating = new_event("interaction.view", {"user_id": "u1", "product_id": "p1"}).to_dict()
    bad_rating["type"] = "interaction.rating"
    no_id = dict(good, event_id="not-a-uuid")
    reply = client.post("/v1/events", json={"events": [good, bad_rating, no_id]})
    assert reply.status_code == 202
    assert [r["status"] for r in reply.json["results"]] == ["accepted", "rejected", "rejected"]
    assert "rating" in reply.json["results"][1]["reason"]
    assert "UUID" in reply.json["results"][2]["reason"]
    reply = client.post("/v1/events", json={"events": [no_id]})
    assert reply.status_code == 400 and reply.content_type == "application/problem+json"
    reply = client.post("/v1/events", data=b"\x00\x01garbage", content_type="application/json")
    assert reply.status_code == 400


def test_unknown_user_gets_popular_items_not_an_error(gateway):
    client, _ = gateway
    client.post("/v1/events", json={"events": [product("p1", "shoes"), interaction("view", "u5", "p1")]})
    body = wait_for(lambda: recommendations(client, user=f"new-{uuid.uuid4().hex[:6]}")["items"] or None, 30,
                    what="a cold-start answer")
    assert body[0]["product_id"] == "p1"
    assert client.get("/v1/users/u1/recommendations?k=0").status_code == 400
    assert client.get("/v1/users/u1/recommendations?k=101").status_code == 400
    reply = client.get("/v1/users/u1/recommendations?strategy=magic")
    assert reply.status_code == 400 and "strategy" in reply.json["detail"]
