"""The catalog's own pictures and categories through the gateway (gateway/routes/catalog.py): catalog events
published to the real broker, applied by the vision and recommender projections' real consumers into the real
Redis, read back by the gateway with ETags, 304s and 404s."""

from __future__ import annotations

import base64
import hashlib
import io
import threading

import pytest
from PIL import Image

from gateway.app import close_app, create_app
from services.common import cache
from services.common.bus import EventConsumer, EventPublisher, ensure_topics
from services.common.events import new_event
from services.recommender.consumer import RecommenderProjection
from services.vision.consumer import VisionProjection
from tests.support import assert_problem, wait_for

pytestmark = pytest.mark.integration


def picture(colour: tuple[int, int, int], fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (28, 28), colour).save(buf, format=fmt)
    return buf.getvalue()


def upserted(pid: str, category: str, image: bytes | None = None, **extra: object):
    payload = {"product_id": pid, "title": f"Product {pid}", "category": category, "price": 99.0,
               "currency": "CNY", **extra}
    if image is not None:
        payload["image_base64"] = base64.b64encode(image).decode()
    return new_event("product.upserted", payload)


@pytest.fixture
def projections(settings):
    ensure_topics(settings)
    consumers = [EventConsumer(settings, VisionProjection(cache.connect(settings))),
                 EventConsumer(settings, RecommenderProjection(cache.connect(settings)))]
    stop = threading.Event()
    threads = [threading.Thread(target=c.run, args=(stop,), daemon=True) for c in consumers]
    for thread in threads:
        thread.start()
    for consumer in consumers:
        wait_for(consumer.ready.is_set, 60, what="the consumers to start")
    yield
    stop.set()
    for thread in threads:
        thread.join(30)


@pytest.fixture
def gateway(settings):
    app = create_app(settings)
    yield app.test_client()
    close_app(app)


def test_pictures_and_categories_come_from_the_catalog_events(settings, projections, gateway, redis_client):
    red, blue = picture((200, 30, 40)), picture((30, 40, 200), "JPEG")
    publisher = EventPublisher(settings, client_id="test")
    try:
        publisher.publish([
            upserted("p1", "shirts", red, attributes={"category_zh": "衬衫"}),
            upserted("p2", "shirts", blue),
            upserted("p3", "bags", image=None, image_url="https://shop.example/p3.jpg"),
            upserted("p4", "bags", red),
        ])
        publisher.publish([new_event("product.removed", {"product_id": "p4"})])

        def both_applied() -> bool:
            first = gateway.get("/v1/products/p2/image").status_code == 200
            body = gateway.get("/v1/products/categories").json
            return first and body["categories"] == [{"name": "shirts", "products": 2, "name_zh": "衬衫"},
                                                     {"name": "bags", "products": 1, "name_zh": ""}]

        wait_for(both_applied, 60, interval=0.2, what="the catalog applied by both projections")

        reply = gateway.get("/v1/products/p1/image")
        assert reply.status_code == 200 and reply.mimetype == "image/png"
        assert reply.get_data() == red  # the bytes the catalog sent, not a re-encoding
        etag = reply.headers["ETag"]
        assert etag == f'"{hashlib.sha256(red).hexdigest()[:32]}"'
        assert reply.headers["Cache-Control"] == "public, max-age=3600"
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        again = gateway.get("/v1/products/p1/image", headers={"If-None-Match": etag})
        assert again.status_code == 304 and not again.get_data()
        assert gateway.get("/v1/products/p2/image").mimetype == "image/jpeg"

        for pid, why in (("p3", "only an image_url"), ("p4", "removed"), ("nope", "unknown")):
            body = assert_problem(gateway.get(f"/v1/products/{pid}/image"), 404)
            assert pid in body["detail"], why

        # A new picture is a new ETag: the old one no longer matches. An upsert without a picture keeps it.
        green = picture((30, 160, 60))
        publisher.publish([upserted("p1", "shirts", green)])
        wait_for(lambda: gateway.get("/v1/products/p1/image").get_data() == green, 30, interval=0.2,
                 what="the new picture")
        changed = gateway.get("/v1/products/p1/image", headers={"If-None-Match": etag})
        assert changed.status_code == 200 and changed.headers["ETag"] != etag
        publisher.publish([upserted("p1", "shirts", None)])
        wait_for(lambda: redis_client.hget("shopai:rec:product:p1", "title") and
                 int(redis_client.hget("shopai:vision:stats", "product.upserted") or 0) >= 6, 30, interval=0.2,
                 what="the upsert without a picture")
        assert gateway.get("/v1/products/p1/image").get_data() == green
    finally:
        publisher.close()
