"""The right to be forgotten in each projection, against the real Redis: after ``user.erased`` nothing
kept under the shopper remains, aggregates stay, their late events change nothing personal, and a
replay that meets the erasure first ends in the same state. Also the erasure's id and status, the
script's guard commands, and a trained model that forgets shoppers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import redis
import scipy.sparse as sp

from services.chatbot.consumer import ChatbotProjection
from services.chatbot.store import ChatbotStore
from services.common import privacy
from services.common.events import Event, new_event
from services.common.models import ModelHolder, ModelRegistry
from services.common.projection import Ops, Projection, RedisApplier
from services.forecasting.consumer import ForecastProjection
from services.forecasting.store import ForecastStore
from services.recommender.consumer import RecommenderProjection
from services.recommender.core.bundle import RecommenderModel
from services.recommender.core.defaults import make_components
from services.recommender.core.forgetting import without_users
from services.recommender.core.hybrid import fit_hybrid
from services.recommender.forgetting import ModelForgetter
from services.recommender.store import RecommenderKeys, RecommenderStore
from services.vision.consumer import VisionProjection
from services.vision.store import VisionStore

ERASED, KEPT = "shopper-erased", "shopper-kept"
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
# Bookkeeping that is not the shopper's data: exactly-once markers, the register and the erasure's status.
BOOKKEEPING = ("shopai:dedup:", "shopai:privacy:")


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def apply(projection: Projection, client: redis.Redis, *events: Event) -> None:
    """One batch of the events of the projection's topics through the exactly-once script, as the consumer runs it."""
    state: dict = {}
    items = []
    for event in (e for e in events if e.topic in projection.topics):
        ops = Ops(state)
        projection.apply(event, ops)
        items.append((event.event_id, ops.commands))
    RedisApplier(client, projection.group, 3600).apply(items)


def dump(client: redis.Redis) -> dict[str, object]:
    """Every key but the bookkeeping, with its value (the HyperLogLogs as a placeholder)."""
    readers = {"hash": client.hgetall, "set": lambda k: sorted(client.smembers(k)), "list": lambda k: client.lrange(k, 0, -1),
               "zset": lambda k: client.zrange(k, 0, -1, withscores=True), "string": client.get}
    out: dict[str, object] = {}
    for name in sorted(client.keys("*")):
        if name.startswith(BOOKKEEPING):
            continue
        try:
            out[name] = readers[client.type(name)](name)
        except UnicodeDecodeError:
            out[name] = "<binary>"
    return out


def mentions(client: redis.Redis, text: str) -> list[str]:
    return [k for k, v in dump(client).items() if text in k or text in repr(v)]


def erasure(user: str = ERASED, minutes: int = 30) -> Event:
    return privacy.erasure_event(user, at(minutes), reason="shopper request", requested_by="k1")


def interaction(action: str, user: str, pid: str, minutes: int, **extra) -> Event:
    return new_event(f"interaction.{action}", {"user_id": user, "product_id": pid, **extra}, occurred_at=at(minutes))


def order(action: str, oid: str, user: str | None, minutes: int, pid: str = "p1", **extra) -> Event:
    payload = {"order_id": oid, "lines": [{"product_id": pid, "quantity": 2, "unit_price": 10.0}], "total": 20.0,
               "currency": "CNY", **extra}
    if user:
        payload["user_id"] = user
    return new_event(f"order.{action}", payload, occurred_at=at(minutes))


def product(pid: str, category: str = "shoes") -> Event:
    return new_event("product.upserted", {"product_id": pid, "title": pid.upper(), "category": category,
                                          "brand": "acme", "price": 10.0}, occurred_at=T0 - timedelta(days=1))


def shop_history() -> list[Event]:
    events = [product("p1"), product("p2", "bags")]
    for user, oid in ((ERASED, "ord-e1"), (KEPT, "ord-k1")):
        events += [interaction("view", user, "p1", 1, price=10.0), interaction("add_to_cart", user, "p1", 2),
                   interaction("purchase", user, "p1", 3, price=10.0), interaction("rating", user, "p2", 4, rating=5),
                   interaction("view", user, "p2", 5, price=12.0), order("created", oid, user, 3)]
    events += [order("paid", "ord-e1", ERASED, 6), order("shipped", "ord-e1", None, 7, tracking_no="SF1")]
    return events


def late_events() -> list[Event]:
    """What arrives after the erasure about the erased shopper (and one order event without a user)."""
    return [interaction("view", ERASED, "p2", 40, price=12.0), order("delivered", "ord-e1", None, 41),
            order("created", "ord-e2", ERASED, 42)]


# -- the erasure's id, status and guard commands --------------------------------------------------------

def test_the_erasure_id_is_one_per_shopper_and_minute():
    first = privacy.erasure_id("u1", T0)
    assert first == privacy.erasure_id("u1", T0 + timedelta(seconds=30))  # a retried DELETE
    assert first != privacy.erasure_id("u1", T0 + timedelta(minutes=2))
    assert first != privacy.erasure_id("u2", T0)
    uuid.UUID(first)
    event = erasure("u1")
    assert event.topic == "privacy.v1" and event.key == "u1" and event.event_id == privacy.erasure_id("u1", at(30))


def test_the_status_is_done_once_every_service_and_the_model_applied_it():
    assert privacy.erasure_status("e1", {}) is None
    fields = {"user_id": "u1", "requested_at": "2026-11-02T10:00:00Z", "recommender": "2026-11-02T10:00:01Z",
              "chatbot": "2026-11-02T10:00:01Z", "vision": "2026-11-02T10:00:02Z", "forecasting": "2026-11-02T10:00:01Z"}
    status = privacy.erasure_status("e1", fields)
    assert not status.done and status.services["recommender"] is None  # the serving model has not dropped them
    assert status.to_dict()["status"] == "pending" and status.to_dict()["services"]["chatbot"]["done"]
    status = privacy.erasure_status("e1", {**fields, "recommender_model": "2026-11-02T10:00:03Z"})
    assert status.done and status.services["recommender"] == "2026-11-02T10:00:03Z"
    assert status.to_dict()["status"] == "done" and status.to_dict()["user_id"] == "u1"


@pytest.mark.integration
def test_guarded_commands_are_skipped_for_a_registered_shopper_and_the_rest_runs(redis_client):
    applier = RedisApplier(redis_client, "g", 3600)
    register = privacy.register_key("g")
    redis_client.sadd(register, "gone")
    for eid, user in (("e1", "gone"), ("e2", "here")):
        ops = Ops()
        ops("INCRBY", "shopai:t:aggregate", 1)
        with privacy.guarded(ops, "g", user):
            ops("SADD", "shopai:t:personal", user)
        ops("INCRBY", "shopai:t:after", 1)
        applier.apply([(eid, ops.commands)])
    assert redis_client.smembers("shopai:t:personal") == {"here"}
    assert redis_client.get("shopai:t:aggregate") == "2" and redis_client.get("shopai:t:after") == "2"
    with pytest.raises(ValueError):
        Ops()("KEYS", "*")  # a pattern is not deterministic: still refused


# -- each projection's erase ----------------------------------------------------------------------------

def erased_everywhere(client: redis.Redis, projection: Projection, history: list[Event]) -> dict[str, object]:
    """Apply the history, the erasure and late events; check the shopper is gone; return the state."""
    apply(projection, client, *history)
    assert mentions(client, ERASED), "the history must leave something to erase"
    apply(projection, client, erasure())
    assert mentions(client, ERASED) == []
    assert client.sismember(privacy.register_key(projection.group), ERASED)
    apply(projection, client, *late_events())
    assert mentions(client, ERASED) == []
    apply(projection, client, erasure())  # erasing twice is harmless
    return dump(client)


def replayed(client: redis.Redis, projection: Projection, history: list[Event]) -> dict[str, object]:
    """A flushed Redis rebuilt from the topics: privacy.v1 first, then everything else."""
    client.flushdb()
    apply(projection, client, erasure())
    apply(projection, client, *history, *late_events())
    return dump(client)


@pytest.mark.integration
def test_recommender_forgets_the_shopper_and_keeps_the_aggregates(redis_client):
    projection = RecommenderProjection(redis_client)
    store = RecommenderStore(redis_client)
    apply(projection, redis_client, *shop_history())
    before = store.item_facts("p1")
    redis_client.hset(RecommenderKeys.answers(ERASED), "f", "cached")
    kept_profile = store.user_facts(KEPT)
    redis_client.flushdb()
    state = erased_everywhere(redis_client, projection, shop_history())
    assert store.user_state(ERASED).items == {} and store.user_facts(ERASED)["orders"] == {}
    assert store.user_facts(KEPT) == kept_profile
    assert ERASED not in {u for u, _ in store.all_users()} and KEPT in {u for u, _ in store.all_users()}
    after = store.item_facts("p1")
    assert after["counts"]["purchase"] == before["counts"]["purchase"] == 2  # aggregates stay
    assert after["bought_with"] == before["bought_with"]
    assert redis_client.hget(privacy.model_pending_key(), ERASED) == erasure().event_id
    assert replayed(redis_client, projection, shop_history()) == state


@pytest.mark.integration
def test_chatbot_forgets_orders_and_sessions_of_the_shopper(redis_client):
    projection = ChatbotProjection(redis_client)
    store = ChatbotStore(redis_client)
    store.save_session("s-erased", {"turns": [{"role": "user", "text": "where is ord-e1"}]}, ERASED)
    store.save_session("s-kept", {"turns": []}, KEPT)
    store.save_session("s-anonymous", {"turns": []})
    state = erased_everywhere(redis_client, projection, shop_history())
    assert store.order("ORD-E1") is None and store.order("ORD-E2") is None and store.user_orders(ERASED) == []
    assert [o["order_id"] for o in store.user_orders(KEPT)] == ["ORD-K1"]
    assert store.load_session("s-erased") is None
    assert store.load_session("s-kept") is not None and store.load_session("s-anonymous") is not None
    projected = {k: v for k, v in state.items() if ":session" not in k}  # sessions are the server's, not replayed
    assert replayed(redis_client, projection, shop_history()) == projected


@pytest.mark.integration
def test_forecasting_forgets_the_shoppers_analytics_rows_and_keeps_daily_sales(redis_client):
    projection = ForecastProjection(redis_client)
    store = ForecastStore(redis_client)
    apply(projection, redis_client, *shop_history())
    units = store.history("p", "p1").units.tolist()
    redis_client.flushdb()
    state = erased_everywhere(redis_client, projection, shop_history())
    assert store.user_orders(ERASED) == [] and store.user_counts(ERASED) == {} and store.user_categories(ERASED) == {}
    assert [o[1] for o in store.orders()] == [KEPT]  # RFM, cohorts and customer value read these
    rows, counts = store.funnel_events(T0.date(), T0.date(), None)
    assert {r[0] for r in rows} == {KEPT} and counts[("view", "shoes")] == 2  # event counts are aggregates
    # Daily sales are not personal: the erased shopper's sales stay, and their late order counts in them.
    assert store.history("p", "p1").units.tolist()[0] == units[0] + 2
    assert replayed(redis_client, projection, shop_history()) == state


@pytest.mark.integration
def test_vision_forgets_the_scans_recorded_under_the_shopper(redis_client):
    projection = VisionProjection(redis_client)
    store = VisionStore(redis_client)

    def scan(by: str, minutes: int) -> Event:
        return new_event("code.scanned", {"product_id": "p1", "batch": "b1", "serial": "S1", "location": "Shanghai",
                                          "scanned_by": by}, occurred_at=at(minutes))

    history = [scan(ERASED, 1), scan(KEPT, 2), scan(ERASED, 3), scan("", 4)]
    apply(projection, redis_client, *history)
    assert [s["scanned_by"] for s in store.history("S1").recent] == ["", ERASED, KEPT, ERASED]
    apply(projection, redis_client, erasure(), scan(ERASED, 40))  # a late scan in the same batch
    assert [s["scanned_by"] for s in store.history("S1").recent] == ["", KEPT]
    assert store.history("S1").count == 5  # how often a code was scanned is an aggregate
    assert mentions(redis_client, ERASED) == []
    state = dump(redis_client)
    redis_client.flushdb()
    apply(projection, redis_client, erasure())
    apply(projection, redis_client, *history, scan(ERASED, 40))
    assert dump(redis_client) == state


# -- the trained model ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained() -> tuple[RecommenderModel, sp.csr_matrix]:
    """A small trained hybrid where only shopper u0 touched product p11."""
    rng = np.random.default_rng(3)
    dense = (rng.random((30, 12)) < 0.3).astype(float)
    dense[:, 11] = 0.0
    dense[0, 11] = 5.0  # only shopper u0 touched product 11
    matrix = sp.csr_matrix(dense)
    hybrid, _ = fit_hybrid(matrix, lambda: make_components(None))
    users = [f"u{i}" for i in range(30)]
    model = RecommenderModel(version="v1", user_ids=users, item_ids=[f"p{j}" for j in range(12)], hybrid=hybrid,
                             item_texts=[""] * 12, trained_at=0.0)
    return model, matrix


def test_a_trained_model_forgets_shoppers_factors_and_neighbourhoods(trained):
    model, matrix = trained
    neighbour_row = sp.csr_matrix(matrix[0].toarray())  # someone exactly like u0
    assert model.component("user_knn").score(neighbour_row)[0, 11] > 0
    forgot = without_users(model, ["u0", "nobody"])
    assert "u0" not in forgot.user_index and forgot.user_index["u1"] == 1 and forgot.user_ids[0] == ""
    assert forgot.component("user_knn").score(neighbour_row)[0, 11] == 0  # u0 votes for nobody
    assert forgot.component("user_knn").train[0].nnz == 0
    for name in ("als", "bpr"):
        assert not forgot.component(name).model.user_factors[0].any()
        assert forgot.component(name).model.user_factors[1].any()
        assert model.component(name).model.user_factors[0].any()  # the serving copy was not changed
    assert model.component("user_knn").train[0].nnz > 0 and "u0" in model.user_index
    assert without_users(forgot, ["u0"]) is forgot and without_users(model, []) is model
    assert np.isfinite(forgot.scores("hybrid", forgot.row({"p1": 1.0}), "u0")).all()


@pytest.mark.integration
def test_the_serving_model_and_the_saved_versions_forget_erased_shoppers(trained, redis_client, tmp_path):
    model, _ = trained
    holder: ModelHolder[RecommenderModel] = ModelHolder(ModelRegistry(tmp_path / "recommender"))
    holder.registry.save("v1", model, {})
    holder.refresh()
    served = holder.model
    forgetter = ModelForgetter(redis_client, holder)
    assert forgetter.check() == 0  # nobody erased: the serving model stays the same object
    assert holder.model is served
    projection = RecommenderProjection(redis_client)
    apply(projection, redis_client, erasure("u0"), erasure("never-seen"))
    assert forgetter.check() == 1
    assert "u0" not in holder.model.user_index and holder.version == "v1"
    assert "u0" not in holder.registry.load("v1")[0].user_index  # a restart does not bring them back
    for user in ("u0", "never-seen"):
        status = privacy.erasure_status(erasure(user).event_id,
                                        redis_client.hgetall(privacy.status_key(erasure(user).event_id)))
        assert status.services["recommender"] is not None, status  # its data and its serving model
    assert redis_client.hlen(privacy.model_pending_key()) == 0
    # A model that knew them and is swapped in later (a training run that read them before) is filtered too.
    holder.swap(model, "v2", {})
    assert forgetter.check() == 1 and "u0" not in holder.model.user_index
