"""The four services and the broker SIGKILLed under a small steady load of events (issue #21, "How it is
checked"): every event the gateway acknowledged is applied exactly once by every consumer that keeps it, and
every event refused while the broker was away was refused with a 503 that names the broker (its sender sends
the same batch, the same event ids, again until it is acknowledged, as a shop's system does).

The broker keeps its log in its S3 store on disk (as `make run` starts it); the services run as processes on
the real Redis; the gateway runs in this process (it is not what is killed here: `make chaos` kills it).
Totals are each consumer's per-type counts (``<service>:stats:events``), which a consumer changes in the same
atomic step as the rest of its projection, once per event id."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from gateway.app import close_app, create_app
from services.chatbot.store import ChatbotKeys
from services.common.bus import ensure_topics
from services.common.events import new_event
from services.common.recommendations import RecommenderKeys
from services.common.settings import Settings
from services.forecasting.store import ForecastKeys
from services.vision.store import VisionKeys
from tests.support import TEST_KEYS, Broker, S3Store, staff, wait_for

pytestmark = pytest.mark.integration

SERVICES = ("recommender", "forecasting", "chatbot", "vision")
PRODUCTS = [f"p{i}" for i in range(6)]
USERS = [f"u{i}" for i in range(8)]
# Which event types each consumer counts (its topics: services/<name>/consumer.py).
COUNTED = {
    "recommender": (RecommenderKeys.stats, ("product.upserted", "interaction.view", "interaction.purchase",
                                            "order.created")),
    "forecasting": (ForecastKeys.stats, ("product.upserted", "interaction.view", "interaction.purchase",
                                         "order.created")),
    "chatbot": (ChatbotKeys.stats, ("product.upserted", "order.created")),
    "vision": (VisionKeys.stats, ("product.upserted",)),
}


def catalog() -> list[dict]:
    return [new_event("product.upserted", {"product_id": pid, "title": f"Product {pid}", "category": "bags",
                                           "brand": "Nordwind", "price": 20.0, "currency": "EUR"}).to_dict()
            for pid in PRODUCTS]


def batch(n: int) -> list[dict]:
    """Three views, a purchase and an order: one shopper's few seconds in the shop."""
    user, product = USERS[n % len(USERS)], PRODUCTS[n % len(PRODUCTS)]
    events = [new_event("interaction.view", {"user_id": user, "product_id": PRODUCTS[(n + k) % len(PRODUCTS)]})
              for k in range(3)]
    events.append(new_event("interaction.purchase", {"user_id": user, "product_id": product, "quantity": 1,
                                                     "price": 20.0}))
    events.append(new_event("order.created", {"order_id": f"ORD-{uuid.uuid4().int % 10**8:08d}", "user_id": user,
                                              "lines": [{"product_id": product, "quantity": 1, "unit_price": 20.0}],
                                              "total": 20.0, "currency": "EUR"}))
    return [e.to_dict() for e in events]


class Sender:
    """A shop's system: batches at a steady pace; a refused batch is sent again, the same ids, until acknowledged."""

    def __init__(self, client) -> None:
        self.client = client
        self.lock = threading.Lock()
        self.acknowledged: Counter = Counter()  # event type -> events acknowledged (each id once)
        self.acknowledged_ids: set[str] = set()
        self.refusals: list[tuple[int, dict]] = []  # (status, problem) of every refused request
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def send(self, events: list[dict]) -> None:
        while True:
            reply = self.client.post("/v1/events", json={"events": events})
            if reply.status_code == 202:
                assert reply.json["accepted"] == len(events), reply.json
                with self.lock:
                    for event in events:
                        if event["event_id"] not in self.acknowledged_ids:
                            self.acknowledged_ids.add(event["event_id"])
                            self.acknowledged[event["type"]] += 1
                return
            with self.lock:
                self.refusals.append((reply.status_code, reply.get_json(silent=True) or {}))
            time.sleep(0.3)  # the sender's back-off; the same batch again

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            self.send(batch(n))
            n += 1
            time.sleep(0.1)


def test_killing_every_service_and_the_broker_under_load_loses_and_doubles_nothing(
        tmp_path, redis_url, redis_client, start_service_with, chatbot_model_dir):
    store = S3Store(tmp_path / "s3")
    broker = Broker(s3=store)
    settings = Settings(kafka_bootstrap_servers=broker.bootstrap, redis_url=redis_url, data_dir=tmp_path / "data",
                        log_json=False, gateway_api_keys=TEST_KEYS, gateway_rate_limit_per_minute=0,
                        gateway_key_rate_limit_per_minute=0)
    # The assistant serves once it has an intent model: the session's (training takes minutes).
    shutil.copytree(chatbot_model_dir[0] / "models", settings.data_dir / "models")
    cache = str(chatbot_model_dir[0] / "cache")
    app = None
    sender = None

    def start_all(wait: bool):
        procs = {name: start_service_with(settings, name, False, SHOPAI_EMBEDDING_CACHE_DIR=cache)
                 for name in SERVICES}
        if wait:
            with ThreadPoolExecutor(len(procs)) as pool:
                list(pool.map(lambda p: p.wait_serving(120), procs.values()))
        return procs

    try:
        ensure_topics(settings)
        app = create_app(settings)
        sender = Sender(staff(app.test_client()))
        sender.send(catalog())
        procs = start_all(wait=True)
        sender.thread.start()
        wait_for(lambda: sender.acknowledged["order.created"] >= 10, 60, what="the load under way")

        # One wave: every service, then the broker, SIGKILLed while events flow and are being applied.
        for proc in procs.values():
            proc.kill()
        broker.kill()
        # They come back at once (as the supervisor starts them) and wait for the broker, which is away until
        # the sender has had a batch refused (the producer gives a batch up after its delivery timeout, 20 s).
        procs = start_all(wait=False)
        wait_for(lambda: len(sender.refusals) >= 1, 60, what="an event refused while the broker is away")
        broker.start()
        with ThreadPoolExecutor(len(procs)) as pool:
            list(pool.map(lambda p: p.wait_serving(120), procs.values()))
        # The load goes on a little after everything is back, then stops.
        target = sender.acknowledged["order.created"] + 10
        wait_for(lambda: sender.acknowledged["order.created"] >= target, 60, what="events after the restarts")
        sender.stop.set()
        sender.thread.join(60)
        assert not sender.thread.is_alive(), "the last batch was never acknowledged"

        # Refused only while the broker was away, and always with the broker named as the reason.
        assert sender.refusals, "no event was refused while the broker was down"
        for status, problem in sender.refusals:
            assert status == 503, (status, problem)
            assert "broker" in problem.get("detail", ""), problem

        expected = {name: {kind: sender.acknowledged[kind] for kind in kinds}
                    for name, (_, kinds) in COUNTED.items()}

        def counted() -> dict[str, dict[str, int]]:
            return {name: {kind: int(redis_client.hget(stats, kind) or 0) for kind in kinds}
                    for name, (stats, kinds) in COUNTED.items()}

        def all_applied() -> bool:
            now = counted()
            return all(now[name][kind] >= n for name, kinds in expected.items() for kind, n in kinds.items())

        wait_for(all_applied, 120, what=f"every acknowledged event applied ({expected})")
        time.sleep(2)  # anything applied twice would show by now: nothing is left to read
        assert counted() == expected, "events lost or applied twice"
        for name, proc in procs.items():
            assert proc.proc.poll() is None, f"{name} died:\n{proc.log()}"
    finally:
        if sender is not None:
            sender.stop.set()
        broker.kill()
        store.kill()
        if app is not None:
            close_app(app)
