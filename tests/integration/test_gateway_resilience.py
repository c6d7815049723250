"""The gateway degrades instead of failing when the recommender dies, and recovers when it returns.

Real parts: the broker, Redis, the recommender as a process (frozen with SIGSTOP, killed with SIGKILL,
restarted on the same port); the gateway app in process. The other three backends are a gRPC health
service that says SERVING, so that /readyz is 200 exactly when the recommender serves."""

from __future__ import annotations

import os
import signal
import time
from concurrent import futures

import grpc
import pytest
import redis
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from gateway.app import close_app, create_app
from services.common.events import new_event
from services.common.settings import SERVICE_NAMES
from services.recommender.store import AnswerCache, RecommenderKeys
from tests.support import assert_problem, free_port, staff, wait_for

pytestmark = pytest.mark.integration

DEADLINE = 2.0  # SHOPAI_GRPC_DEADLINE_SECONDS' default
FALLBACK_REASON = "popular in the shop (the recommender is unavailable)"


def product(pid: str, category: str, price: float) -> dict:
    return new_event(
        "product.upserted",
        {"product_id": pid, "title": f"Product {pid}", "category": category, "brand": "Nordwind",
         "price": price, "currency": "EUR"},
    ).to_dict()


def interaction(kind: str, user: str, pid: str) -> dict:
    payload = {"user_id": user, "product_id": pid, "quantity": 1, "price": 20.0}
    return new_event(f"interaction.{kind}", payload).to_dict()


@pytest.fixture
def healthy_others():
    """One gRPC server whose health service says SERVING, standing in for chatbot, vision and forecasting."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(grace=None)


@pytest.fixture
def stack(settings, start_service, healthy_others):
    recommender = start_service("recommender")
    settings.recommender.grpc_port = recommender.grpc_port
    for name in SERVICE_NAMES:
        if name != "recommender":
            settings.endpoint(name).grpc_port = healthy_others
    assert settings.grpc_deadline_seconds == DEADLINE
    app = create_app(settings)
    yield staff(app.test_client()), recommender
    close_app(app)


def timed(call):
    started = time.monotonic()
    reply = call()
    return reply, time.monotonic() - started


def ids(body: dict) -> list[str]:
    return [item["product_id"] for item in body["items"]]


def test_recommendations_fall_back_to_popular_items_and_recover(stack, start_service, redis_client):
    client, recommender = stack
    catalog = [product("p1", "shoes", 40.0), product("p2", "shoes", 60.0), product("p3", "bags", 80.0),
               product("p4", "bags", 120.0)]
    # Popularity: p3 16, p2 12, p1 8, p4 1; u1 bought p2.
    behaviour = [
        interaction("purchase", "u7", "p3"), interaction("purchase", "u8", "p3"),
        interaction("purchase", "u7", "p1"), interaction("add_to_cart", "u9", "p2"),
        interaction("view", "u9", "p4"), interaction("purchase", "u1", "p2"),
    ]
    assert client.post("/v1/events", json={"events": catalog + behaviour}).status_code == 202
    wait_for(lambda: redis_client.zcard(RecommenderKeys.popular) == 4
             and redis_client.sismember(RecommenderKeys.user_purchased("u1"), "p2"), 30,
             what="the popularity")

    # Normal answers.
    normal = client.get("/v1/users/u1/recommendations?strategy=popular")
    assert normal.status_code == 200, normal.json
    assert "X-ShopAI-Degraded" not in normal.headers
    assert normal.json["strategy"] == "popular" and ids(normal.json) == ["p3", "p1", "p4"]
    assert client.get("/v1/users/u1/recommendations").json["strategy"] != "popular_fallback"
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json

    def assert_fallback(query: str, expected: list[str], reason: str = FALLBACK_REASON) -> dict:
        reply, seconds = timed(lambda: client.get(f"/v1/users/u1/recommendations?{query}"))
        assert reply.status_code == 200, reply.get_data(as_text=True)
        assert seconds < DEADLINE + 1, f"the fallback took {seconds:.2f} s"
        assert reply.headers["X-ShopAI-Degraded"] == "recommender"
        body = reply.json
        assert body["strategy"] == "popular_fallback" and body["model_version"] == "fallback"
        assert body["user_id"] == "u1" and body["cold_start"] is False
        assert ids(body) == expected
        assert all(item["reason"] == reason for item in body["items"])
        return body

    def assert_not_ready() -> None:
        reply, seconds = timed(lambda: client.get("/readyz"))
        assert reply.status_code == 503 and seconds < 3, (reply.json, seconds)
        assert reply.json["backends"]["recommender"] != "SERVING"
        others = {name: state for name, state in reply.json["backends"].items() if name != "recommender"}
        assert set(others.values()) == {"SERVING"}, others

    # A recommender that accepts but never answers (frozen): every call ends at its deadline.
    os.killpg(recommender.proc.pid, signal.SIGSTOP)
    try:
        # The answer the recommender gave and cached a moment ago is still valid: the gateway serves it
        # from Redis without asking the recommender, at once and not degraded.
        cached, seconds = timed(lambda: client.get("/v1/users/u1/recommendations"))
        assert cached.status_code == 200 and seconds < 1, (cached.json, seconds)
        assert "X-ShopAI-Degraded" not in cached.headers and cached.json["strategy"] != "popular_fallback"
        assert_fallback("k=9", ["p3", "p1", "p4"])  # never asked before: no cached answer
        assert_not_ready()
    finally:
        os.killpg(recommender.proc.pid, signal.SIGCONT)

    # A dead recommender (SIGKILL): connection refused, the fallback answers at once.
    port = recommender.grpc_port
    recommender.kill()
    body = assert_fallback("k=8", ["p3", "p1", "p4"])
    first = body["items"][0]
    assert first["title"] == "Product p3" and first["category"] == "bags" and first["price"] == 80.0
    assert first["currency"] == "EUR" and first["score"] == 16.0
    assert_fallback("exclude_purchased=false", ["p3", "p2", "p1", "p4"])
    assert_fallback("k=2&exclude=p3", ["p1", "p4"])
    assert_fallback("category=bags", ["p3", "p4"], reason="popular in bags (the recommender is unavailable)")
    assert_fallback("exclude_categories=bags&exclude_purchased=false", ["p2", "p1"])
    assert_fallback("min_price=50&max_price=100&exclude_purchased=false", ["p3", "p2"])
    assert_not_ready()
    reply, seconds = timed(lambda: client.get("/v1/products/p3/similar"))
    assert seconds < DEADLINE + 1
    assert "recommender" in assert_problem(reply, 503)["detail"]
    assert_problem(client.get("/v1/users/u1/profile"), 503)

    # Redis unreachable too: the recommender's problem, as without a fallback.
    extensions = client.application.extensions
    saved, extensions["shopai.redis"] = extensions["shopai.redis"], redis.Redis(port=free_port())
    saved_answers, extensions["shopai.answers"] = extensions["shopai.answers"], AnswerCache(extensions["shopai.redis"])
    try:
        assert "recommender" in assert_problem(client.get("/v1/users/u1/recommendations"), 503)["detail"]
    finally:
        extensions["shopai.redis"].close()
        extensions["shopai.redis"] = saved
        extensions["shopai.answers"] = saved_answers

    # The recommender comes back on the same port: the same gateway uses it again.
    again = start_service("recommender", wait=False, SHOPAI_RECOMMENDER__GRPC_PORT=str(port))
    again.grpc_port, again.target = port, f"127.0.0.1:{port}"
    again.wait_serving()

    def recovered() -> dict | None:
        reply = client.get("/v1/users/u1/recommendations?strategy=popular")
        return reply.json if reply.status_code == 200 and "X-ShopAI-Degraded" not in reply.headers else None

    body = wait_for(recovered, 15, interval=0.25, what="the gateway to use the restarted recommender")
    assert body["strategy"] == "popular" and ids(body) == ["p3", "p1", "p4"]
    wait_for(lambda: client.get("/readyz").status_code == 200, 10, what="/readyz to be 200 again")
    assert client.get("/v1/products/p3/similar").status_code == 200
