"""Crypto-shredding end to end: an order with a shopper's name, e-mail, phone and address goes in through
POST /v1/events; the log (the raw Kafka records) and the services' Redis hold none of it readable; the export
gives it back, with the shopper's profiles and authenticity scans; once the shopper's key is destroyed the very
bytes in the log can no longer be opened."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaConsumer
from pydantic import SecretStr

from gateway.app import close_app, create_app
from services.chatbot.store import ChatbotKeys
from services.common import topics
from services.common.vault import PersonalDataVault
from services.vision.core.codes import SigningKey
from tests.support import assert_problem, wait_for

pytestmark = pytest.mark.integration

KEY = "a-long-test-key-0123456789"
HEADERS = {"X-API-Key": KEY}
ORDER = "ORD-30001234"
PERSONAL = {
    "customer_name": "陈静",
    "email": "jing.chen@example.com",
    "phone": "+86 17005556666",
    "shipping_address": {"recipient": "Jing Chen", "line1": "77 Zhongshan Road", "line2": "Apt 9C",
                         "city": "Nanjing", "region": "Jiangsu", "postal_code": "210000", "country": "CN"},
}
PLAINTEXTS = ("陈静", "jing.chen", "17005556666", "Zhongshan Road", "Jing Chen", "Apt 9C")


def envelope(event_type: str, payload: dict, minutes_ago: int) -> dict:
    when = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return {"event_id": f"00000000-0000-4000-8000-{minutes_ago:012d}", "type": event_type, "schema_version": 1,
            "occurred_at": when.isoformat().replace("+00:00", "Z"), "source": "test-shop", "payload": payload}


def _issue_code(client) -> dict | None:
    reply = client.post("/v1/vision/codes", json={"product_id": "p00001", "batch": "B1", "skip_png": True},
                        headers=HEADERS)
    return reply.json["codes"][0] if reply.status_code == 201 else None


def raw_records(bootstrap: str, topic: str, expect: int, timeout: float = 20.0) -> list[bytes]:
    """The records' bytes as the broker stores them (keys and values), nothing decoded."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                             consumer_timeout_ms=int(timeout * 1000))
    out = []
    for record in consumer:
        out.append((record.key or b"") + b"|" + record.value)
        if len(out) >= expect:
            break
    consumer.close()
    return out


@pytest.fixture
def stack(settings, start_service_with, chatbot_model_dir, redis_client):
    root, _, _ = chatbot_model_dir
    shutil.copytree(root / "models", settings.data_dir / "models")
    chatbot = start_service_with(settings, "chatbot", SHOPAI_EMBEDDING_CACHE_DIR=str(root / "cache"))
    recommender = start_service_with(settings, "recommender", SHOPAI_RETRAIN_INTERVAL_SECONDS="0")
    forecasting = start_service_with(settings, "forecasting", SHOPAI_FORECAST_AUTO_TRAIN="false")
    vision = start_service_with(settings, "vision", SHOPAI_VISION_SIGNING_KEY=SigningKey.generate().to_text(),
                                SHOPAI_VISION_AUTO_TRAIN="false")
    for name, service in (("chatbot", chatbot), ("recommender", recommender), ("forecasting", forecasting),
                          ("vision", vision)):
        settings.endpoint(name).grpc_port = service.grpc_port
    gateway_settings = settings.model_copy(update={"gateway_api_keys": SecretStr(f"{KEY}:ingest+privacy+codes"),
                                                   "env": "prod"})
    app = create_app(gateway_settings)
    yield app, chatbot
    close_app(app)


@pytest.mark.timeout(900)  # the first chatbot test of a session trains the intent model (minutes on a busy machine)
def test_personal_fields_are_sealed_in_the_log_exported_and_shredded(stack, settings, redis_client):
    app, chatbot = stack
    client = app.test_client()
    line = {"product_id": "p00001", "quantity": 1, "unit_price": 129.0}
    events = [
        envelope("product.upserted", {"product_id": "p00001", "title": "Red T-shirt", "category": "t-shirts",
                                      "price": 129.0, "currency": "CNY"}, 30),
        envelope("interaction.view", {"user_id": "u7", "product_id": "p00001", "price": 129.0}, 20),
        envelope("order.created", {"order_id": ORDER, "user_id": "u7", "lines": [line], "total": 129.0,
                                   "currency": "CNY", **PERSONAL}, 10),
    ]
    reply = client.post("/v1/events", json={"events": events}, headers=HEADERS)
    assert reply.status_code == 202, reply.json

    # The log holds the order, sealed: none of the plaintext is anywhere in the record's bytes.
    (record,) = raw_records(settings.kafka_bootstrap_servers, topics.ORDERS, 1)
    for text in PLAINTEXTS:
        assert text.encode() not in record, text
    sealed = json.loads(record.split(b"|", 1)[1])["payload"]["sealed_personal"]
    assert sealed["user_id"] == "u7" and sealed["ciphertext"]

    # The assistant projects it (still sealed: its Redis holds nothing readable either).
    wait_for(lambda: redis_client.hget(ChatbotKeys.order(ORDER), "status") == "created", 30, what="the order projected")
    everything = " ".join(str(redis_client.dump(k)) for k in redis_client.keys("*"))
    assert not any(text in everything for text in PLAINTEXTS)

    # The export opens it with the shopper's key, beside what the other services hold.
    def exported() -> dict | None:
        body = client.get("/v1/users/u7/export", headers=HEADERS).json
        return body if body.get("recommender_profile") and body.get("behaviour_profile") else None

    body = wait_for(exported, 30, what="every service to know u7")
    (order,) = body["orders"]
    assert order["order_id"] == ORDER and order["personal"] == PERSONAL
    assert body["recommender_profile"]["user_id"] == "u7" and body["scans"] == []

    # A code u7 scanned is in the export too.
    issued = wait_for(lambda: _issue_code(client), 30, what="the vision catalog to know p00001")
    scan = client.post("/v1/vision/verify", json={"payload": issued["payload"], "scanned_by": "u7",
                                                  "location": "Nanjing"})
    assert scan.status_code == 200, scan.json
    body = wait_for(lambda: client.get("/v1/users/u7/export", headers=HEADERS).json.get("scans") or None, 30,
                    what="the scan recorded")
    assert body == [{**body[0], "serial": issued["serial"], "product_id": "p00001", "location": "Nanjing"}]

    # Erasure destroys the key: the bytes still in the log cannot be opened, by this process or any other.
    assert app.extensions["shopai.vault"].destroy("u7") is True
    another_process = PersonalDataVault.from_settings(settings)
    assert another_process.open("u7", sealed) is None
    another_process.close()
    assert client.get("/v1/users/u7/export", headers=HEADERS).json["orders"][0]["personal"] is None

    # An export is complete or not given: with the assistant down it is a 503.
    chatbot.stop()
    body = assert_problem(client.get("/v1/users/u7/export", headers=HEADERS), 503)
    assert "chatbot" in body["detail"]
