"""Recommendation attribution and A/B experiments on the real broker, Redis and recommender: every answer
carries a recommendation_id and is counted once; events carrying the id show in the analytics; an
experiment serves each shopper one arm, stably, and reports both arms; bad definitions are 4xx."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gateway.app import close_app, create_app
from services.common import attribution, topics
from services.common.attribution import AttributionKeys
from services.common.bus import EventPublisher
from services.common.events import envelope, new_event
from services.common.projection import RedisApplier
from services.common.recommendations import RecommenderKeys as K
from services.recommender.consumer import RecommenderProjection
from tests.support import assert_problem, staff, wait_for

pytestmark = pytest.mark.integration

PRODUCTS = [f"p{i}" for i in range(1, 13)]


def catalog_and_views() -> list:
    events = [new_event("product.upserted", {"product_id": pid, "title": f"Product {pid}", "category": "bags",
                                             "price": 10.0 + i, "currency": "CNY"})
              for i, pid in enumerate(PRODUCTS)]
    for i, pid in enumerate(PRODUCTS):  # a popularity order for the popular and trending rankings
        events += [new_event("interaction.view", {"user_id": f"seed{j}", "product_id": pid}) for j in range(i + 1)]
    return events


@pytest.fixture
def stack(settings, start_service, redis_client):
    recommender = start_service("recommender", SHOPAI_RETRAIN_INTERVAL_SECONDS="0",
                                SHOPAI_RETRAIN_CHECK_SECONDS="3600")
    settings.recommender.grpc_port = recommender.grpc_port
    publisher = EventPublisher(settings)
    events = catalog_and_views()
    publisher.publish(events, timeout=60)
    wait_for(lambda: sum(int(v) for v in redis_client.hgetall(K.stats).values()) >= len(events), 60,
             what="the shop applied")
    app = create_app(settings)
    yield staff(app.test_client()), recommender, publisher
    close_app(app)
    publisher.close()


def interaction(kind: str, user: str, pid: str, rid: str) -> dict:
    return new_event(f"interaction.{kind}", {"user_id": user, "product_id": pid, "recommendation_id": rid}).to_dict()


def post_events(client, events: list[dict]) -> None:
    reply = client.post("/v1/events", json={"events": events})
    assert reply.status_code == 202 and reply.json["rejected"] == 0, reply.json


def analytics(client, strategy: str) -> dict:
    reply = client.get("/v1/analytics/recommendations")
    assert reply.status_code == 200, reply.json
    rows = [r for r in reply.json["rows"] if r["strategy"] == strategy]
    return rows[0] if rows else {"impressions": 0, "clicks": 0, "add_to_cart": 0, "purchases": 0}


def test_answers_carry_new_ids_and_the_events_naming_them_show_in_the_analytics(stack):
    client, _recommender, _publisher = stack
    answers = [client.get("/v1/users/u1/recommendations?strategy=popular&k=3").json for _ in range(3)]
    answers.append(client.get("/v1/recommendations?strategy=popular&k=3").json)
    ids = [a["recommendation_id"] for a in answers]
    assert len(set(ids)) == 4 and all(len(i) == 32 for i in ids)
    assert all(a["strategy"] == "popular" and "experiment" not in a for a in answers)
    first, second = answers[0], answers[1]
    shown = first["items"][0]["product_id"]
    # two clicks on one answer count once; the add to cart and the purchase each once
    post_events(client, [interaction("click", "u1", shown, first["recommendation_id"]),
                         interaction("click", "u1", first["items"][1]["product_id"], first["recommendation_id"]),
                         interaction("add_to_cart", "u1", shown, first["recommendation_id"]),
                         interaction("purchase", "u1", shown, first["recommendation_id"]),
                         interaction("click", "u1", second["items"][0]["product_id"], second["recommendation_id"])])
    row = wait_for(lambda: (r := analytics(client, "popular"))["clicks"] == 2 and r["purchases"] == 1 and r,
                   30, what="the clicks counted")
    assert row["impressions"] == 4 and row["add_to_cart"] == 1
    assert row["click_through"] == pytest.approx(0.5) and row["conversion"] == pytest.approx(0.25)
    # an id of no answer is accepted (it may be another gateway's) and changes nothing; a malformed one is refused
    post_events(client, [interaction("click", "u1", shown, uuid.uuid4().hex)])
    malformed = interaction("click", "u1", shown, uuid.uuid4().hex)
    malformed["payload"]["recommendation_id"] = "not-an-id"
    bad = client.post("/v1/events", json=malformed)
    assert bad.status_code == 400 and "recommendation_id" in bad.json["errors"][0]["reason"]
    assert analytics(client, "popular")["clicks"] == 2
    # recommendation.* is the gateway's own
    served = envelope("recommendation.served", {"recommendation_id": uuid.uuid4().hex, "strategy": "popular",
                                                "surface": "user"}, "test")
    refused = client.post("/v1/events", json=served)
    assert refused.status_code == 400 and "written by the gateway" in refused.json["errors"][0]["reason"]
    similar = client.get(f"/v1/products/{PRODUCTS[0]}/similar")
    assert similar.status_code == 200 and len(similar.json["recommendation_id"]) == 32


def test_the_window_is_checked(stack):
    client, _recommender, _publisher = stack
    assert_problem(client.get("/v1/analytics/recommendations?since=2026-12-07T00:00:00Z&until=2026-12-01T00:00:00Z"),
                   400)
    assert_problem(client.get("/v1/analytics/recommendations?since=2026-01-01T00:00:00Z&until=2026-12-01T00:00:00Z"),
                   400)
    old = client.get("/v1/analytics/recommendations?since=2020-01-01T00:00:00Z&until=2020-01-02T00:00:00Z")
    assert old.status_code == 200 and old.json["rows"] == []


def test_an_experiment_serves_each_shopper_one_arm_and_reports_both(stack, redis_client):
    client, _recommender, _publisher = stack
    created = client.post("/v1/admin/experiments", json={
        "name": "popular vs trending", "arms": [{"name": "A", "strategy": "popular"},
                                                {"name": "B", "strategy": "trending"}]})
    assert created.status_code == 201, created.json
    experiment = created.json
    eid = experiment["experiment_id"]
    assert experiment["status"] == "running" and experiment["split"] == [50, 50]
    assert created.headers["Location"] == f"/v1/admin/experiments/{eid}"
    users = [f"shopper{i}" for i in range(40)]
    arms: dict[str, str] = {}
    clicks = []
    for user in users:
        for _ in range(2):
            answer = wait_for(lambda u=user: (a := client.get(f"/v1/users/{u}/recommendations?k=3").json)
                              .get("experiment") and a, 10, what="the experiment applied")
            arm = answer["experiment"]["arm"]
            assert answer["experiment"]["id"] == eid and arms.setdefault(user, arm) == arm  # stable
            assert arm == "AB"[attribution.assign_arm(eid, user, [50, 50])]
            assert answer["strategy"] == {"A": "popular", "B": "trending"}[arm]
            if arm == "A":  # arm A's shoppers click every answer, B's none
                clicks.append(interaction("click", user, answer["items"][0]["product_id"],
                                          answer["recommendation_id"]))
    # a request naming its strategy is outside the experiment
    named = client.get(f"/v1/users/{users[0]}/recommendations?strategy=popular").json
    assert "experiment" not in named
    post_events(client, clicks)
    in_a = sum(1 for arm in arms.values() if arm == "A")
    assert 0 < in_a < len(users)

    def reported() -> dict | None:
        report = client.get(f"/v1/admin/experiments/{eid}").json["report"]
        by_name = {a["name"]: a for a in report["arms"]}
        done = by_name["A"]["clicks"] == in_a * 2 and by_name["B"]["impressions"] == (len(users) - in_a) * 2
        return report if done else None

    report = wait_for(reported, 30, what="the experiment's report")
    a, b = report["arms"]
    assert (a["name"], a["impressions"], a["click_through"]) == ("A", in_a * 2, 1.0)
    assert (b["name"], b["clicks"], b["click_through"]) == ("B", 0, 0.0)
    assert abs(a["users"] - in_a) <= 1 and abs(b["users"] - (len(users) - in_a)) <= 1
    assert report["metric"] == "click_through" and report["difference"] == pytest.approx(-1.0)
    assert report["ci95"][1] < 0 and report["better"] == "A"
    listed = client.get("/v1/admin/experiments").json["experiments"]
    assert [e["experiment_id"] for e in listed] == [eid]
    # another experiment while this one runs is a conflict
    again = client.post("/v1/admin/experiments", json={
        "name": "x", "arms": [{"name": "A", "strategy": "hybrid"}, {"name": "B", "strategy": "popular"}]})
    assert assert_problem(again, 409)["detail"].startswith(f"experiment {eid}")
    stopped = client.post(f"/v1/admin/experiments/{eid}/stop")
    assert stopped.status_code == 200 and stopped.json["status"] == "stopped" and stopped.json["stopped_at"]
    wait_for(lambda: "experiment" not in client.get(f"/v1/users/{users[0]}/recommendations").json, 10,
             what="the experiment stopped")
    assert client.get(f"/v1/admin/experiments/{eid}").json["report"]["better"] == "A"  # the report stays


@pytest.mark.parametrize("body, detail", [
    ({"name": "x", "arms": [{"name": "A", "strategy": "hybrid"}]}, "exactly two arms; 1 given"),
    ({"name": "x", "arms": [{"name": "A", "strategy": "hybrid"}, {"name": "B", "strategy": "magic"}]},
     "unknown strategy 'magic'"),
    ({"name": "x", "arms": [{"name": "A", "strategy": "hybrid"}, {"name": "B", "strategy": "popular"}],
      "split": [70, 20]}, "summing to 100"),
    ({"name": "x", "arms": [{"name": "A", "strategy": "hybrid"},
                            {"name": "B", "strategy": "hybrid", "model_version": "hybrid-nope"}]},
     "unknown recommender model version 'hybrid-nope'"),
])
def test_experiments_that_cannot_run_are_422s(stack, body, detail):
    client, _recommender, _publisher = stack
    problem = assert_problem(client.post("/v1/admin/experiments", json=body), 422)
    assert detail in problem["detail"]
    assert client.get("/v1/admin/experiments").json["experiments"] == []


def test_an_unknown_experiment_is_a_404(stack):
    client, _recommender, _publisher = stack
    assert_problem(client.get("/v1/admin/experiments/nope"), 404)
    assert_problem(client.post("/v1/admin/experiments/nope/stop"), 404)


def counts(redis_client) -> dict:
    """Every counter of the last two hours (the records here are served now)."""
    now = datetime.now(UTC)
    return attribution.read_counters(redis_client, now - timedelta(hours=2), now + timedelta(hours=1))


def served_record(rid: str, strategy: str = "popular", arm: str = "") -> dict:
    payload = {"recommendation_id": rid, "user_id": "u1", "strategy": strategy, "model_version": "v1",
               "product_ids": ["p1"], "surface": "user"}
    if arm:
        payload.update(experiment_id="e1", arm=arm)
    event_id = str(uuid.UUID(rid))
    return envelope("recommendation.served", payload, "gateway", event_id=event_id)


def test_each_answer_and_outcome_counts_once_whatever_the_order_and_replays(redis_client):
    """The projection's join in the real Redis: an outcome ahead of its answer, repeated outcomes, a replayed
    batch (as after a crash before the offsets were committed)."""
    from services.common.events import parse_event
    from services.common.projection import Ops

    projection = RecommenderProjection(redis_client)
    applier = RedisApplier(redis_client, projection.group, 3600)

    def apply(records: list[dict]) -> None:
        items = []
        for record in records:
            ops = Ops()
            event = parse_event(record)
            projection.apply(event, ops)
            items.append((event.event_id, ops.commands))
        applier.apply(items)

    early, late = uuid.uuid4().hex, uuid.uuid4().hex
    click_early = interaction("click", "u1", "p1", early)
    apply([click_early, interaction("purchase", "u1", "p1", early)])  # ahead of their answer
    batch = [served_record(early, arm="A"), served_record(late, arm="B"), interaction("click", "u1", "p1", late),
             interaction("click", "u1", "p1", late)]
    apply(batch)
    apply(batch + [click_early])  # replayed: changes nothing
    totals = counts(redis_client)
    by_arm = {b.arm: c for b, c in totals.items()}
    assert by_arm["A"] == {"impressions": 1, "click": 1, "add_to_cart": 0, "purchase": 1}
    assert by_arm["B"] == {"impressions": 1, "click": 1, "add_to_cart": 0, "purchase": 0}
    assert redis_client.pfcount(AttributionKeys.arm_users("e1", "A")) == 1
    assert 0 < redis_client.ttl(AttributionKeys.impression(early)) <= attribution.ATTRIBUTION_SECONDS
    assert "recommendation.served" not in redis_client.hgetall(K.stats)  # answers served are not shop events


def test_impressions_count_once_across_a_recommender_killed_mid_stream(settings, start_service, redis_client):
    """300 answers and their clicks on the bus; the recommender is killed while applying them and started
    again: every answer and click is counted exactly once."""
    first = start_service("recommender", SHOPAI_RETRAIN_INTERVAL_SECONDS="0", SHOPAI_RETRAIN_CHECK_SECONDS="3600")
    publisher = EventPublisher(settings)
    rids = [uuid.uuid4().hex for _ in range(300)]
    records = [served_record(rid, arm="AB"[i % 2]) for i, rid in enumerate(rids)]
    records += [interaction("click", "u1", "p1", rid) for rid in rids[::3]]
    for start in range(0, len(records), 50):
        chunk = records[start:start + 50]
        futures = [(topics.RECOMMENDATIONS_SERVED if r["type"].startswith("recommendation") else topics.INTERACTIONS,
                    publisher.send(topics.RECOMMENDATIONS_SERVED if r["type"].startswith("recommendation")
                                   else topics.INTERACTIONS, r["payload"].get("recommendation_id"),
                                   json.dumps(r).encode()))
                   for r in chunk]
        publisher.wait(futures)

    def impressions() -> int:
        return sum(c["impressions"] for c in counts(redis_client).values())

    wait_for(lambda: impressions() > 0, 60, interval=0.05, what="the first answers counted")
    first.kill()
    start_service("recommender", SHOPAI_RETRAIN_INTERVAL_SECONDS="0", SHOPAI_RETRAIN_CHECK_SECONDS="3600")
    wait_for(lambda: impressions() >= len(rids), 90, what="every answer counted")
    totals = counts(redis_client)
    assert sum(c["impressions"] for c in totals.values()) == len(rids)
    assert sum(c["click"] for c in totals.values()) == len(rids[::3])
    publisher.close()


def test_a_version_arm_is_served_by_its_stored_version(settings, start_service, redis_client):
    """Two trained versions of a small demo shop; an experiment of the older (no longer serving) against the
    serving one: each shopper's answers come from their arm's version."""
    from shopai.demo import DemoShopConfig, generate

    shop = generate(DemoShopConfig(seed=11, n_products=150, n_users=200, days=90, sessions_per_day=50), progress=False)
    recommender = start_service("recommender", SHOPAI_RETRAIN_INTERVAL_SECONDS="0",
                                SHOPAI_RETRAIN_CHECK_SECONDS="3600")
    settings.recommender.grpc_port = recommender.grpc_port
    publisher = EventPublisher(settings)
    events = list(shop.events())
    publisher.publish(events, timeout=120)
    wait_for(lambda: sum(int(v) for v in redis_client.hgetall(K.stats).values()) >= len(events), 90,
             what="the shop applied")
    app = create_app(settings)
    client = staff(app.test_client())
    try:
        versions = []
        for _ in range(2):
            reply = client.post("/v1/admin/train/recommender", json={"params": {"force_serve": "true"}})
            assert reply.status_code == 202, reply.json
            job = wait_for(lambda loc=reply.headers["Location"]: (j := client.get(loc).json)["state"]
                           in ("succeeded", "failed") and j, 180, interval=0.5, what="training")
            assert job["state"] == "succeeded", job
            versions.append(job["model_version"])
        old, serving = versions
        created = client.post("/v1/admin/experiments", json={"name": "old vs new", "arms": [
            {"name": "old", "strategy": "hybrid", "model_version": old},
            {"name": "new", "strategy": "hybrid", "model_version": serving}]})
        assert created.status_code == 201, created.json
        buyers = sorted({e["payload"]["user_id"] for e in shop.interactions if e["type"] == "interaction.purchase"})
        seen = set()
        for user in buyers[:30]:
            answer = wait_for(lambda u=user: (a := client.get(f"/v1/users/{u}/recommendations").json)
                              .get("experiment") and a, 10, what="the experiment applied")
            arm = answer["experiment"]["arm"]
            if answer["items"] and answer["strategy"] == "hybrid":
                assert answer["model_version"] == {"old": old, "new": serving}[arm], answer
                seen.add(arm)
        assert seen == {"old", "new"}
    finally:
        close_app(app)
        publisher.close()


def test_the_demo_shoppers_over_http_show_in_the_analytics(settings, start_service, redis_client):
    """The live shoppers of `shopai demo` (RestShop: shopper tokens minted by a sessions key, events with an
    ingest key) against the gateway on a real HTTP port: their clicks are attributed to the answers."""
    from pydantic import SecretStr
    from werkzeug.serving import make_server

    from shopai.demo.shoppers import LiveShoppers, RestShop
    from tests.support import TEST_KEYS, free_port

    recommender = start_service("recommender", SHOPAI_RETRAIN_INTERVAL_SECONDS="0",
                                SHOPAI_RETRAIN_CHECK_SECONDS="3600")
    settings.recommender.grpc_port = recommender.grpc_port
    publisher = EventPublisher(settings)
    events = catalog_and_views()
    publisher.publish(events, timeout=60)
    wait_for(lambda: sum(int(v) for v in redis_client.hgetall(K.stats).values()) >= len(events), 60,
             what="the shop applied")
    sessions_key, ingest_key = "test-sessions-key-0123456789abcdef", "test-ingest-key-0123456789abcdef"
    app = create_app(settings.model_copy(update={
        "gateway_api_keys": SecretStr(f"{TEST_KEYS},{sessions_key}:sessions,{ingest_key}:ingest"),
        "gateway_shopper_token_secrets": SecretStr("test-shopper-token-secret-0123456789abcdef")}))
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        truth = {"users": {f"u{i}": {} for i in range(20)}, "products": {}}  # a match of 0: the 0.12 floor
        shoppers = LiveShoppers(RestShop(f"http://127.0.0.1:{port}", sessions_key, ingest_key), truth, seed=3)
        for _ in range(40):
            shoppers.session()
        assert shoppers.tally.sessions == 40 and shoppers.tally.clicked > 0
        client = staff(app.test_client())

        def counted() -> dict | None:
            rows = client.get("/v1/analytics/recommendations").json["rows"]
            total = {kind: sum(r[kind] for r in rows) for kind in ("impressions", "clicks")}
            return total if total["impressions"] == 40 and total["clicks"] == shoppers.tally.clicked else None

        wait_for(counted, 30, what="the shoppers' answers and clicks counted")
    finally:
        server.shutdown()
        close_app(app)
        publisher.close()
