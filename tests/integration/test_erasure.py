"""The right to be forgotten on the real stack: a small demo shop through the broker into all four
services, 20 shoppers erased through DELETE /v1/users/{id}, every service's part done; no profile, no
recommendation from their history, no order, session or scan, no analytics row, and the trained model
without them. Then Redis is flushed, the services rebuild from Kafka (privacy.v1 first), the recommender
is retrained, and all of it holds again."""

from __future__ import annotations

import pickle
import re

import pytest
import redis

from gateway.app import close_app, create_app
from services.chatbot.store import ChatbotKeys, ChatbotStore
from services.common import privacy
from services.common.bus import EventPublisher
from services.common.events import new_event
from shopai.demo import DemoShopConfig, generate
from tests.support import staff, wait_for

pytestmark = pytest.mark.integration

SHOP = DemoShopConfig(seed=11, n_products=80, n_users=150, days=60, sessions_per_day=40)
GROUPS = ("recommender", "chatbot", "vision", "forecasting")
ERASED_COUNT = 20
# Bookkeeping that names an erased shopper on purpose: the register, the erasure's status, exactly-once markers,
# and the audit of staff reads (gateway/audit.py: who read whose data is an accountability record).
BOOKKEEPING = (b"shopai:privacy:", b"shopai:dedup:", b"shopai:gateway:audit")


@pytest.fixture
def stack(settings, start_service, redis_client):
    """All four services (no automatic training) and the gateway, with the demo shop applied everywhere."""
    shop = generate(SHOP, progress=False)
    quiet = {"SHOPAI_RETRAIN_INTERVAL_SECONDS": "0", "SHOPAI_RETRAIN_CHECK_SECONDS": "3600",
             "SHOPAI_VISION_AUTO_TRAIN": "false", "SHOPAI_FORECAST_AUTO_TRAIN": "false"}
    procs = {name: start_service(name, wait=name in ("recommender", "forecasting"), **quiet) for name in GROUPS}
    for name, proc in procs.items():
        getattr(settings, name).grpc_port = proc.grpc_port
    publisher = EventPublisher(settings)
    events = list(shop.events())
    publisher.publish(events + scans(shop), timeout=120)
    wait_applied(redis_client, events)
    app = create_app(settings)
    yield staff(app.test_client()), shop, settings
    close_app(app)
    publisher.close()


def scans(shop) -> list[dict]:
    """Authenticity scans recorded under shoppers' ids (a shop app that passes its user as scanned_by)."""
    pid = shop.catalog[0]["payload"]["product_id"]
    return [new_event("code.scanned", {"product_id": pid, "batch": "B1", "serial": f"S{i % 3}", "location": "Shanghai",
                                       "scanned_by": f"u{i + 1}"}).to_dict() for i in range(40)]


def applied(client: redis.Redis, stats_key: str) -> int:
    return sum(int(v) for v in client.hgetall(stats_key).values() if v.lstrip("-").isdigit())


def wait_applied(client: redis.Redis, events: list[dict], timeout: float = 120) -> None:
    """Until every service's projection has applied the shop (and is marked built)."""
    totals = {"shopai:rec:stats:events": len(events),
              "shopai:chat:stats:events": sum(e["type"].split(".")[0] in ("order", "product", "inventory") for e in events),
              "shopai:fc:stats:events": len(events)}
    for stats_key, total in totals.items():
        wait_for(lambda k=stats_key, n=total: applied(client, k) >= n, timeout, what=f"{total} events in {stats_key}")
    for group in GROUPS:
        wait_for(lambda g=group: client.exists(f"shopai:{g}:built"), timeout, what=f"{group} built")


def buyers(shop) -> list[str]:
    """Shoppers with orders and interactions (the most there is to forget), by id."""
    return sorted({e["payload"]["user_id"] for e in shop.orders if e["type"] == "order.created"},
                  key=lambda u: int(u[1:]))


def start_training(client) -> str:
    reply = client.post("/v1/admin/train/recommender", json={})
    assert reply.status_code == 202, reply.json
    return reply.headers["Location"]


def trained(client, job_url: str) -> str:
    def finished():
        job = client.get(job_url).json
        return job if job["state"] in ("succeeded", "failed") else None

    job = wait_for(finished, 120, interval=0.5, what="the training job")
    assert job["state"] == "succeeded", job
    return job["model_version"]


def train(client) -> str:
    return trained(client, start_training(client))


def erase_during_training(client, settings, user: str) -> None:
    """An erasure that arrives while a training run reads the shopper: the new model still lacks them."""
    job_url = start_training(client)
    wait_for(lambda: client.get(job_url).json["state"] == "running", 30, interval=0.1, what="training to start")
    status_url = client.delete(f"/v1/users/{user}").json["status_url"]
    version = trained(client, job_url)
    wait_for(lambda: client.get(status_url).json["status"] == "done", 60, interval=0.5, what="the erasure")
    assert user not in model_users(settings, version)


def model_users(settings, version: str) -> set[str]:
    with open(settings.model_dir("recommender") / version / "model.pkl", "rb") as fh:
        return {u for u in pickle.load(fh).user_ids if u}


def mentions(url: str, users: list[str]) -> dict[str, list[str]]:
    """Every key whose name or value names one of ``users`` (bookkeeping aside), per user."""
    raw = redis.Redis.from_url(url)
    # Not inside base64 (ciphertexts, nonces): "+u9/" there is chance, not a mention.
    pattern = re.compile(rb"(?<![\w+/=-])(" + b"|".join(re.escape(u.encode()) for u in users) + rb")(?![\w+/=])")
    readers = {b"string": "get", b"hash": "hgetall", b"set": "smembers", b"zset": "zrange", b"list": "lrange",
               b"stream": "xrange"}
    found: dict[str, list[str]] = {}
    try:
        names = [k for k in raw.scan_iter(count=5000) if not k.startswith(BOOKKEEPING)]
        for start in range(0, len(names), 2000):
            chunk = names[start:start + 2000]
            with raw.pipeline(transaction=False) as pipe:
                for name in chunk:
                    pipe.type(name)
                types = pipe.execute()
            live = [(name, kind) for name, kind in zip(chunk, types, strict=True) if kind != b"none"]  # expired since
            chunk = [name for name, _ in live]
            with raw.pipeline(transaction=False) as pipe:
                for name, kind in live:
                    reader = readers[kind]
                    getattr(pipe, reader)(*((name, 0, -1) if reader in ("zrange", "lrange") else (name,)))
                values = pipe.execute()
            for name, value in zip(chunk, values, strict=True):
                for match in pattern.finditer(name + b" " + repr(value).encode()):
                    found.setdefault(match.group(1).decode(), []).append(name.decode())
    finally:
        raw.close()
    return found


def assert_forgotten(client, redis_client: redis.Redis, url: str, erased: list[str], kept: str) -> None:
    for user in erased:
        assert client.get(f"/v1/users/{user}/profile").status_code == 404
        assert client.get(f"/v1/analytics/users/{user}").status_code == 404
        recs = client.get(f"/v1/users/{user}/recommendations?k=5").json
        assert recs["cold_start"] is True, recs
        assert not redis_client.exists(ChatbotKeys.user_orders(user), ChatbotKeys.session(f"chat-{user}"),
                                       ChatbotKeys.turns(f"chat-{user}"))  # nor a remembered answer
    assert mentions(url, erased) == {}
    # Everyone else is untouched.
    assert client.get(f"/v1/users/{kept}/profile").status_code == 200
    assert client.get(f"/v1/analytics/users/{kept}").status_code == 200
    assert redis_client.exists(ChatbotKeys.user_orders(kept))


def test_erased_shoppers_are_gone_everywhere_and_stay_gone_after_a_rebuild(stack, redis_client, redis_url):
    client, shop, settings = stack
    erased, kept = buyers(shop)[:ERASED_COUNT], buyers(shop)[ERASED_COUNT]
    late = buyers(shop)[ERASED_COUNT + 1]  # erased while a training run is under way
    before = train(client)
    assert set(erased) <= model_users(settings, before)
    for user in erased:  # what the assistant kept of their conversations
        ChatbotStore(redis_client).save_session(f"chat-{user}", {"turns": [{"role": "user", "text": "hi"}]}, user,
                                                turn=("m-0123456789abcdef", "print", f"an answer for {user}".encode()))
    assert set(mentions(redis_url, erased)) == set(erased)

    urls = []
    for user in erased:
        reply = client.delete(f"/v1/users/{user}", query_string={"reason": "shopper request"})
        assert reply.status_code == 202, reply.json
        urls.append(reply.json["status_url"])
    again = client.delete(f"/v1/users/{erased[0]}")  # twice is harmless: the same erasure
    assert again.status_code == 202 and again.json["status_url"] == urls[0]
    unknown = client.delete("/v1/users/never-seen-shopper").json["status_url"]

    def all_done():
        states = [client.get(url).json for url in [*urls, unknown]]
        return states if all(s["status"] == "done" for s in states) else None

    states = wait_for(all_done, 60, interval=0.5, what="every service to apply the erasures")
    assert {s["user_id"] for s in states} == {*erased, "never-seen-shopper"}
    assert_forgotten(client, redis_client, redis_url, erased, kept)
    assert not set(erased) & model_users(settings, before)  # the artifact on disk was rewritten too
    assert kept in model_users(settings, before)
    erase_during_training(client, settings, late)
    erased.append(late)
    assert_forgotten(client, redis_client, redis_url, erased, kept)

    # Redis lost: every service rebuilds from the topics; the erasures are replayed first.
    redis_client.flushdb()
    wait_applied(redis_client, list(shop.events()))
    assert_forgotten(client, redis_client, redis_url, erased, kept)
    after = train(client)
    assert not set(erased) & model_users(settings, after)
    assert kept in model_users(settings, after)
    for user in erased:
        assert client.get(f"/v1/users/{user}/recommendations?k=5").json["cold_start"] is True
    assert all(redis_client.sismember(privacy.register_key(g), u) for g in GROUPS for u in erased)
