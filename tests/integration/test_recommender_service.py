"""The recommender as a shop uses it: a small demo shop through the real broker, a trained hybrid,
answers over REST with reasons and filters, fresh events changing the next answer, new products
recommendable at once, profiles, and admin training jobs; and a shop that sends only views and purchases."""

from __future__ import annotations

import json
import random
import threading

import pytest
from prometheus_client import REGISTRY

from gateway.app import close_app, create_app
from services.common.bus import EventPublisher
from services.common.events import new_event
from services.common.recommendations import RecommenderKeys as K
from shopai.demo import DemoShopConfig, generate
from tests.support import TEST_ADMIN_KEY, key_id_of, staff, wait_for

pytestmark = pytest.mark.integration

SHOP = DemoShopConfig(seed=11, n_products=200, n_users=300, days=120, sessions_per_day=60)


@pytest.fixture
def shop_stack(settings, start_service, redis_client):
    """The recommender (no automatic retraining) + gateway, with the small demo shop fully applied."""
    shop = generate(SHOP, progress=False)
    recommender = start_service("recommender", SHOPAI_RETRAIN_INTERVAL_SECONDS="0", SHOPAI_RETRAIN_CHECK_SECONDS="3600")
    settings.recommender.grpc_port = recommender.grpc_port
    publisher = EventPublisher(settings)
    events = list(shop.events())
    publisher.publish(events, timeout=120)
    total = len(events)
    wait_for(lambda: sum(int(v) for v in redis_client.hgetall(K.stats).values()) >= total, 90,
             what=f"{total} events applied")
    app = create_app(settings)
    yield staff(app.test_client()), shop, publisher, recommender
    close_app(app)
    publisher.close()


def train(client) -> dict:
    reply = client.post("/v1/admin/train/recommender", json={})
    assert reply.status_code == 202, reply.json
    location = reply.headers["Location"]

    def finished():
        job = client.get(location).json
        return job if job["state"] in ("succeeded", "failed") else None

    job = wait_for(finished, 120, interval=0.5, what="the training job")
    assert job["state"] == "succeeded", job
    return job


def gateway_cache_hits() -> float:
    return REGISTRY.get_sample_value("shopai_gateway_answer_cache_total", {"outcome": "hit"}) or 0.0


def recommend(client, user: str, **params) -> dict:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    reply = client.get(f"/v1/users/{user}/recommendations?{query}")
    assert reply.status_code == 200, reply.json
    return reply.json


def busiest_user(shop) -> str:
    counts: dict[str, int] = {}
    for e in shop.interactions:
        if e["type"] == "interaction.purchase":
            counts[e["payload"]["user_id"]] = counts.get(e["payload"]["user_id"], 0) + 1
    return max(sorted(counts), key=counts.get)


def test_trained_hybrid_serves_fresh_filtered_explained_recommendations(shop_stack, redis_client, settings):
    client, shop, publisher, _recommender = shop_stack
    job = train(client)
    assert job["model_version"].startswith("hybrid-") and job["requested_by"] == key_id_of(TEST_ADMIN_KEY)
    assert 0 < job["metrics"]["ndcg_at_10"] <= 1 and job["progress"] == 1

    user = busiest_user(shop)
    bought = redis_client.smembers(K.user_purchased(user))
    body = recommend(client, user, k=10)
    assert body["strategy"] == "hybrid" and body["model_version"] == job["model_version"]
    assert not body["cold_start"] and len(body["items"]) == 10
    ids = [i["product_id"] for i in body["items"]]
    assert not set(ids) & bought, "already purchased products are excluded by default"
    assert not set(ids) & set(redis_client.hkeys(K.user_items(user))), "recommendations are new to the user"
    assert all(i["reason"] and i["title"] for i in body["items"])
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    # The same request again is answered by the gateway from the recommender's answer cache in Redis.
    hits = gateway_cache_hits()
    cached = recommend(client, user, k=10)
    assert gateway_cache_hits() == hits + 1
    # the same answer, with a recommendation_id of its own (every answer is an impression of its own)
    assert cached.pop("recommendation_id") != body.pop("recommendation_id") and cached == body

    for strategy in ("user_knn", "item_knn", "als", "bpr", "content", "popular", "trending"):
        other = recommend(client, user, k=5, strategy=strategy)
        assert other["strategy"] == strategy and len(other["items"]) == 5, other

    # Filters: one category, a price range, out of stock.
    bags = recommend(client, user, k=5, category="bags")["items"]
    assert bags and {i["category"] for i in bags} == {"bags"}
    cheap = recommend(client, user, k=10, max_price=200)["items"]
    assert cheap and all(i["price"] <= 200 for i in cheap)
    top = ids[0]
    publisher.publish([new_event("inventory.set", {"product_id": top, "on_hand": 0})])
    wait_for(lambda: top not in [i["product_id"] for i in recommend(client, user, k=10)["items"]], 10,
             what="the sold-out product to leave the answer")
    assert top in [i["product_id"] for i in recommend(client, user, k=10, exclude_out_of_stock="false")["items"]]

    # A rating, even a low one, means the shopper owns the product: it leaves the answer, and comes back only
    # when buying again is asked for (exclude_purchased=false, consumables).
    rated = ids[1]
    publisher.publish([new_event("interaction.rating", {"user_id": user, "product_id": rated, "rating": 2})])
    wait_for(lambda: rated not in [i["product_id"] for i in recommend(client, user, k=100)["items"]], 10,
             what="the rated product to leave the answer")
    assert redis_client.sismember(K.user_rated(user), rated)
    again = [i["product_id"] for i in recommend(client, user, k=100, exclude_purchased="false")["items"]]
    assert rated in again and set(again) & bought, "owned products come back when asked for"

    # Freshness: a purchase through the real broker changes the very next answer (no retraining). A shopper
    # with a short history, so that the new purchase weighs: its neighbours come in, explained by it.
    light = min((u for u in redis_client.smembers(K.users) if len(redis_client.hkeys(K.user_items(u))) >= 3),
                key=lambda u: (len(redis_client.hkeys(K.user_items(u))), u))
    before = recommend(client, light, k=10, strategy="item_knn")["items"]
    target = before[0]
    publisher.publish([new_event("interaction.purchase", {"user_id": light, "product_id": target["product_id"],
                                                          "quantity": 1, "price": target["price"]})])

    def refreshed():
        items = recommend(client, light, k=10, strategy="item_knn")["items"]
        return items if target["product_id"] not in [i["product_id"] for i in items] else None

    after = wait_for(refreshed, 10, interval=0.05, what="the purchase to reach the recommendations")
    assert f"because you bought {target['title']}" in [i["reason"] for i in after], after
    old_scores = {i["product_id"]: i["score"] for i in before}
    assert any(i["score"] > old_scores.get(i["product_id"], float("inf")) for i in after), "scores moved up"
    assert recommend(client, light, k=10)["model_version"] == job["model_version"], "no retraining happened"
    user = light
    profile = client.get(f"/v1/users/{user}/profile").json
    assert profile["recent_items"][0]["product_id"] == target["product_id"]
    assert profile["recent_items"][0]["event_type"] == "purchase"


def test_similar_products_new_products_and_profiles(shop_stack, redis_client):
    client, shop, publisher, _ = shop_stack
    train(client)
    original = shop.catalog[0]["payload"]
    similar = client.get(f"/v1/products/{original['product_id']}/similar?k=5&strategy=item_knn").json
    assert len(similar["items"]) == 5 and original["product_id"] not in [i["product_id"] for i in similar["items"]]

    # A product launched after training: its twin in text comes first by content, straight away.
    twin = {**original, "product_id": "p-new-1", "tags": list(original.get("tags", []))}
    twin.pop("image_base64", None)
    publisher.publish([new_event("product.upserted", twin)])

    def twin_known():
        reply = client.get("/v1/products/p-new-1/similar?k=3&strategy=content")
        return reply.json if reply.status_code == 200 and reply.json["strategy"] == "content" else None

    answer = wait_for(twin_known, 10, what="the new product in the content model")
    assert answer["items"][0]["product_id"] == original["product_id"]
    assert answer["strategy"] == "content"
    back = client.get(f"/v1/products/{original['product_id']}/similar?k=3&strategy=content").json
    assert "p-new-1" in [i["product_id"] for i in back["items"]]

    # The twin is the same item in another size: similar products leave it out unless asked.
    group = {"attributes": {"item_group_id": "twins", "size": "L"}}
    publisher.publish([new_event("product.upserted", {**twin, **group}),
                       new_event("product.upserted", {**{k: v for k, v in original.items() if k != "image_base64"},
                                                      "attributes": {"item_group_id": "twins", "size": "M"}})])

    def ids(query: str) -> list[str]:
        return [i["product_id"] for i in client.get(f"/v1/products/p-new-1/similar?k=3&strategy=content{query}")
                .json["items"]]

    wait_for(lambda: original["product_id"] not in ids(""), 10, what="the variant left out")
    assert original["product_id"] in ids("&include_variants=true")

    # Profiles.
    item = client.get(f"/v1/products/{original['product_id']}/profile").json
    assert item["title"] == original["title"] and item["category"] == original["category"]
    views = sum(1 for e in shop.interactions
                if e["type"] == "interaction.view" and e["payload"].get("product_id") == original["product_id"])
    assert item["event_counts"].get("view", 0) == views
    assert client.get("/v1/products/nope/profile").status_code == 404
    user = busiest_user(shop)
    profile = client.get(f"/v1/users/{user}/profile").json
    purchases = [e for e in shop.interactions
                 if e["type"] == "interaction.purchase" and e["payload"]["user_id"] == user]
    assert profile["event_counts"]["purchase"] == len(purchases)
    assert profile["favourite_categories"] and sum(c["weight"] for c in profile["favourite_categories"]) <= 1 + 1e-9
    assert profile["price_band"]["min"] <= profile["price_band"]["median"] <= profile["price_band"]["max"]
    orders = [e for e in shop.orders if e["type"] == "order.created" and e["payload"]["user_id"] == user]
    cancelled = [e for e in shop.orders if e["type"] == "order.cancelled" and e["payload"]["user_id"] == user]
    assert profile["orders"] == len(orders) - len(cancelled)
    assert client.get("/v1/users/never-seen/profile").status_code == 404


def test_retraining_swaps_the_model_without_dropping_requests(shop_stack, settings):
    client, shop, _, _ = shop_stack
    first = train(client)["model_version"]
    user = busiest_user(shop)
    seen: list[str] = []
    failures: list[object] = []
    stop = threading.Event()

    def shop_traffic():
        own = staff(client.application.test_client())
        while not stop.is_set():
            reply = own.get(f"/v1/users/{user}/recommendations?k=10&exclude=p{len(seen)}")  # never cached
            if reply.status_code != 200 or len(reply.json["items"]) != 10:
                failures.append(reply.json)
            else:
                seen.append(reply.json["model_version"])

    assert recommend(client, user, k=7)["model_version"] == first  # cached under the first model
    thread = threading.Thread(target=shop_traffic)
    thread.start()
    try:
        second = train(client)["model_version"]
        wait_for(lambda: seen and seen[-1] == second, 10, what="answers from the new version")
    finally:
        stop.set()
        thread.join()
    # The swap told the gateway which model serves. The answer cached under the first model stays servable for
    # the rest of its 60 s (a newer model keeps the one it replaced as K.previous); after that, never again.
    client.application.extensions["shopai.redis"].delete(K.previous)
    assert recommend(client, user, k=7)["model_version"] == second
    assert not failures, failures[:3]
    assert first != second and {first, second} <= set(seen)
    assert seen.index(second) > seen.index(first) and first not in seen[seen.index(second):], "a clean switch"
    assert (settings.data_dir / "models" / "recommender" / "CURRENT").read_text() == second


def test_cold_start_and_bad_requests(shop_stack):
    client, shop, _, _ = shop_stack
    train(client)
    stranger = recommend(client, "someone-new", k=5)
    assert stranger["cold_start"] and len(stranger["items"]) == 5
    assert stranger["strategy"] == "trending"
    viewed = shop.catalog[5]["payload"]
    session = recommend(client, "someone-new", k=6, session=viewed["product_id"])
    assert session["cold_start"] and session["strategy"] == "content+trending"
    reasons = [i["reason"] for i in session["items"]]
    assert f"similar to {viewed['title']}" in reasons and any(r.startswith("trending") for r in reasons)
    assert viewed["product_id"] not in [i["product_id"] for i in session["items"]]
    for bad in ("k=0", "k=101", "strategy=magic", "min_price=10&max_price=5"):
        reply = client.get(f"/v1/users/u1/recommendations?{bad}")
        assert reply.status_code == 400, bad
        assert reply.content_type == "application/problem+json"
    assert client.get("/v1/products/nope/similar").status_code == 404
    reply = client.post("/v1/admin/train/recommender", json={"params": {"bogus": "1"}})
    assert reply.status_code == 400 and "bogus" in json.dumps(reply.json)


def implicit_shop() -> tuple[list, dict[str, str], dict[str, set[str]], dict[str, set[str]], dict[str, str]]:
    """A shop that sends no ratings (issue #19): 40 products of one category whose titles say nothing of
    taste, four tastes of ten products each, 32 shoppers who each look at six products of their taste and
    buy three of them, and glance at one product of another taste. Only who touched what tells the tastes.
    (events, each product's taste, what each shopper bought, what each only viewed, each shopper's taste)"""
    rng = random.Random(19)
    products = [f"p{i:02d}" for i in range(40)]
    rng.shuffle(products)
    tastes = {t: products[10 * t:10 * t + 10] for t in range(4)}
    taste_of = {pid: str(t) for t, pids in tastes.items() for pid in pids}
    events = [new_event("product.upserted", {"product_id": pid, "title": f"article {pid}", "category": "goods",
                                             "price": 10.0}) for pid in sorted(products)]
    bought, viewed_only, shopper_taste = {}, {}, {}
    for n in range(32):
        user, taste = f"shopper-{n}", n % 4
        touched = rng.sample(tastes[taste], 6)
        elsewhere = rng.choice(tastes[(taste + 1 + rng.randrange(3)) % 4])
        for pid in [*touched, elsewhere]:
            events.append(new_event("interaction.view", {"user_id": user, "product_id": pid}))
        for pid in touched[:3]:
            events.append(new_event("interaction.purchase", {"user_id": user, "product_id": pid, "quantity": 1,
                                                             "price": 10.0}))
        bought[user], viewed_only[user], shopper_taste[user] = set(touched[:3]), {*touched[3:], elsewhere}, str(taste)
    return events, taste_of, bought, viewed_only, shopper_taste


def test_a_shop_with_only_views_and_purchases_is_trained_and_served(settings, start_service, redis_client):
    """No rating event at all: the hybrid trains on views and purchases, learns each shopper's taste from who
    touched what, explains by their own history, never shows what they looked at, and shows what they bought
    only when buying again is asked for."""
    events, taste_of, bought, viewed_only, shopper_taste = implicit_shop()
    recommender = start_service("recommender", SHOPAI_RETRAIN_INTERVAL_SECONDS="0",
                                SHOPAI_RETRAIN_CHECK_SECONDS="3600")
    settings.recommender.grpc_port = recommender.grpc_port
    publisher = EventPublisher(settings)
    publisher.publish(events, timeout=60)
    wait_for(lambda: sum(int(v) for v in redis_client.hgetall(K.stats).values()) >= len(events), 60,
             what=f"{len(events)} events applied")
    assert not redis_client.hget(K.stats, "interaction.rating")
    app = create_app(settings)
    try:
        client = staff(app.test_client())
        job = train(client)
        assert job["model_version"].startswith("hybrid-") and 0 < job["metrics"]["ndcg_at_10"] <= 1, job

        in_taste, reasons = 0, []
        for user, taste in shopper_taste.items():
            body = recommend(client, user, k=3)
            assert body["strategy"] == "hybrid" and not body["cold_start"], body
            ids = [i["product_id"] for i in body["items"]]
            assert len(ids) == 3 and not set(ids) & (bought[user] | viewed_only[user]), (user, ids)
            in_taste += sum(taste_of[pid] == taste for pid in ids)
            for i in body["items"]:  # a reason naming a product names one of the shopper's own
                named = i["reason"].rsplit(" ", 1)[-1] if "article " in i["reason"] else None
                assert i["reason"] and named in (bought[user] | viewed_only[user] | {None}), (user, i)
                reasons.append(i["reason"])
        assert in_taste >= 0.8 * 3 * len(shopper_taste), f"{in_taste} of {3 * len(shopper_taste)} in the taste"
        assert any(r.startswith("because you bought") for r in reasons), sorted(set(reasons))

        # Buying again asked for: what they bought may come back; what they only looked at stays out either way.
        user = "shopper-0"
        again = {i["product_id"] for i in recommend(client, user, k=40, exclude_purchased="false")["items"]}
        assert bought[user] <= again and not again & viewed_only[user], sorted(again)

        popular = recommend(client, user, k=5, strategy="popular")
        assert len(popular["items"]) == 5 and not {i["product_id"] for i in popular["items"]} & bought[user]
        stranger = recommend(client, "someone-new", k=5)
        assert stranger["cold_start"] and stranger["strategy"] == "trending" and len(stranger["items"]) == 5
    finally:
        close_app(app)
        publisher.close()
