"""The recommender's pure parts: weights, time decay, ranking, and the projection's commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.common.events import new_event
from services.common.projection import Ops
from services.common.recommendations import RecommenderKeys as K
from services.common.recommendations import validate_k
from services.recommender import core
from services.recommender.consumer import RecommenderProjection


def test_stronger_signals_weigh_more():
    w = {a: core.interaction_weight(a, {}) for a in ("view", "click", "add_to_cart", "purchase")}
    assert w["view"] < w["click"] < w["add_to_cart"] < w["purchase"]
    assert core.interaction_weight("search", {"query": "shoes"}) == 0
    assert core.interaction_weight("rating", {"rating": 5}) > core.interaction_weight("rating", {"rating": 4}) > 0
    assert core.interaction_weight("rating", {"rating": 2}) > 0, "a low rating still says they have it"
    assert core.popularity_weight("rating", {"rating": 2}) == 0 < core.popularity_weight("rating", {"rating": 4})
    assert core.popularity_weight("purchase", {}) == w["purchase"]


def test_trending_halves_per_half_life_and_keeps_order_over_time():
    now = datetime(2026, 11, 28, tzinfo=UTC)
    fresh = core.trend_score(1.0, now)
    week_old = core.trend_score(1.0, now - timedelta(days=core.TREND_HALF_LIFE_DAYS))
    assert week_old / fresh == pytest.approx(0.5)
    assert core.decayed_to(fresh, now) == pytest.approx(1.0)
    # Three old views lose to one fresh purchase-sized signal two half-lives later.
    assert 3 * core.trend_score(1.0, now - timedelta(days=14)) < core.trend_score(1.0, now)


def test_top_k_skips_excluded_and_stops_at_k():
    ranked = [("a", 5.0), ("b", 4.0), ("c", 3.0), ("d", 2.0)]
    assert core.top_k(ranked, 2, exclude={"a"}) == [("b", 4.0), ("c", 3.0)]
    assert core.top_k(ranked, 10) == ranked


@pytest.mark.parametrize("k, ok", [(0, 10), (1, 1), (100, 100)])
def test_k_defaults_and_bounds(k, ok):
    assert validate_k(k) == ok


@pytest.mark.parametrize("k", [-1, 101])
def test_k_out_of_range_is_refused(k):
    with pytest.raises(ValueError):
        validate_k(k)


class NoRedis:
    """The projection reads a product's details and a product's last stock count; nothing else."""

    def __init__(self, categories=None, counted_at=None):
        self.categories = categories or {}
        self.counted_at = counted_at or {}

    def hmget(self, key, *fields):
        return [self.categories.get(key) if f == "category" else None for f in fields]

    def hget(self, key, field):
        assert key == K.stock_counted_at
        return self.counted_at.get(field)


def commands(projection, *events):
    ops = Ops()
    for e in events:
        projection.apply(e, ops)
    return ops.commands


def test_a_purchase_becomes_popularity_trend_recent_and_purchased():
    event = new_event("interaction.purchase", {"user_id": "u1", "product_id": "p1", "quantity": 1, "price": 5.0})
    cmds = commands(RecommenderProjection(NoRedis()), event)
    assert ["ZINCRBY", K.popular, "8.0", "p1"] in cmds
    assert any(c[:2] == ["ZINCRBY", K.trending] for c in cmds)
    assert ["SADD", K.user_purchased("u1"), "p1"] in cmds
    assert any(c[:2] == ["LPUSH", K.user_recent("u1")] and c[2].startswith("p1|purchase|") for c in cmds)
    assert ["HINCRBYFLOAT", K.user_items("u1"), "p1", "8.0"] in cmds
    assert ["INCRBY", K.user_version("u1"), "1"] in cmds, "cached answers of u1 must go stale"
    assert ["HINCRBY", K.user_counts("u1"), "purchase", "1"] in cmds


def test_a_product_moving_category_leaves_the_old_one():
    projection = RecommenderProjection(NoRedis({K.product("p1"): "shoes"}))
    moved = new_event("product.upserted", {"product_id": "p1", "title": "T", "category": "bags", "price": 3.0})
    moved_again = new_event("product.upserted", {"product_id": "p1", "title": "T", "category": "coats", "price": 3.0})
    cmds = commands(projection, moved, moved_again)
    assert ["SREM", K.category("shoes"), "p1"] in cmds
    # Within one batch the second upsert sees the first one's category, not Redis's stale one.
    assert ["SREM", K.category("bags"), "p1"] in cmds
    assert ["SADD", K.active, "p1"] in cmds
    last_add = max(i for i, c in enumerate(cmds) if c == ["SADD", K.active, "p1"])
    assert last_add > cmds.index(["SREM", K.category("bags"), "p1"])  # still live after the second move


def test_a_removed_product_leaves_the_live_catalog():
    projection = RecommenderProjection(NoRedis({K.product("p1"): "shoes"}))
    cmds = commands(projection, new_event("product.removed", {"product_id": "p1"}))
    assert ["SREM", K.active, "p1"] in cmds and ["SREM", K.category("shoes"), "p1"] in cmds


def test_stock_follows_counts_deltas_and_orders():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    count = new_event("inventory.set", {"product_id": "p1", "on_hand": 10}, occurred_at=t0)
    sold = new_event("order.created", {"order_id": "o1", "user_id": "u1", "total": 10.0,
                                       "lines": [{"product_id": "p1", "quantity": 3, "unit_price": 5.0}]},
                     occurred_at=t0 + timedelta(hours=1))
    received = new_event("inventory.received", {"product_id": "p1", "delta": 4}, occurred_at=t0 + timedelta(hours=2))
    cmds = commands(RecommenderProjection(NoRedis()), count, sold, received)
    assert ["HSET", K.stock, "p1", "10"] in cmds
    assert ["HINCRBY", K.stock, "p1", "-3"] in cmds and ["HINCRBY", K.stock, "p1", "4"] in cmds
    assert ["HINCRBY", K.user_orders("u1"), "orders", "1"] in cmds


def test_a_change_older_than_the_last_stock_count_is_already_counted():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    late_sale = new_event("order.created", {"order_id": "o1", "user_id": "u1",
                                            "lines": [{"product_id": "p1", "quantity": 2, "unit_price": 5.0}]},
                          occurred_at=t0 - timedelta(minutes=5))
    older_count = new_event("inventory.set", {"product_id": "p1", "on_hand": 50}, occurred_at=t0 - timedelta(days=1))
    projection = RecommenderProjection(NoRedis(counted_at={"p1": str(t0.timestamp())}))
    cmds = commands(projection, late_sale, older_count)
    assert not [c for c in cmds if c[1:2] == [K.stock]], cmds


def test_an_order_links_its_products_as_bought_together():
    order = new_event("order.created", {"order_id": "o1", "user_id": "u1", "lines": [
        {"product_id": "p1", "quantity": 1, "unit_price": 5.0}, {"product_id": "p2", "quantity": 1, "unit_price": 5.0}]})
    cmds = commands(RecommenderProjection(NoRedis()), order)
    assert ["ZINCRBY", K.bought_with("p1"), "1", "p2"] in cmds and ["ZINCRBY", K.bought_with("p2"), "1", "p1"] in cmds


def test_ops_only_allow_deterministic_writes():
    ops = Ops()
    with pytest.raises(ValueError):
        ops("FLUSHALL")
    ops("zincrby", "k", 0.1, "m")
    assert ops.commands == [["ZINCRBY", "k", "0.1", "m"]]


def test_a_rating_of_any_value_marks_the_product_owned_and_erasure_forgets_it():
    projection = RecommenderProjection(NoRedis())
    low = new_event("interaction.rating", {"user_id": "u1", "product_id": "p1", "rating": 1})
    cmds = commands(projection, low)
    assert ["SADD", K.user_rated("u1"), "p1"] in cmds
    assert ["HINCRBYFLOAT", K.user_items("u1"), "p1", "1.0"] in cmds, "the models learn that they have it"
    assert not any(c[:2] in (["ZINCRBY", K.popular], ["ZINCRBY", K.trending]) for c in cmds), "not popular"
    view = new_event("interaction.view", {"user_id": "u1", "product_id": "p2"})
    assert not any(c[:2] == ["SADD", K.user_rated("u1")] for c in commands(projection, view))
    ops = Ops()
    projection.erase_user("u1", ops)
    assert K.user_rated("u1") in next(c for c in ops.commands if c[0] == "DEL")
