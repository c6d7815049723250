"""How the recommender chooses and explains an answer, with no Redis: the pick over scores and rules, the
items, the cold-start mix, the reasons, and when the scheduler trains."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

from services.common.recommendations import Filters
from services.recommender.core import reasons
from services.recommender.core.profiles import recent_entry
from services.recommender.core.selection import (
    interleave,
    item,
    left_out,
    pick,
    session_views,
    session_weights,
)
from services.recommender.scheduler import RecommenderScheduler
from services.recommender.trainer import MIN_USERS

IDS = ["p0", "p1", "p2", "p3", "p4", "p5"]
CATALOG = {"p0": {"category": "bags", "price": "10", "title": "Tote"},
           "p1": {"category": "coats", "price": "90", "title": "Parka"},
           "p2": {"category": "bags", "price": "30", "title": "Satchel"},
           "p3": {"category": "bags", "price": "300", "title": "Trunk"},
           "p4": {"category": "shoes", "price": "50", "title": "Boot"},
           "p5": {"category": "bags", "price": "20", "title": "Pouch"}}


class Reads:
    """The catalog and stock reads ``pick`` asks for, recorded."""

    def __init__(self, gone: set[str] = frozenset()) -> None:
        self.gone = set(gone)
        self.details_asked: list[list[str]] = []
        self.stock_asked: list[list[str]] = []

    def details_of(self, pids: list[str]) -> dict[str, dict[str, str]]:
        self.details_asked.append(list(pids))
        return {p: CATALOG[p] for p in pids if p in CATALOG}

    def out_of_stock(self, pids: list[str]) -> set[str]:
        self.stock_asked.append(list(pids))
        return self.gone & set(pids)


def scores(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def test_pick_takes_the_best_live_allowed_products_in_order():
    reads = Reads(gone={"p1"})
    chosen = pick(scores(0.5, 0.9, 0.8, -np.inf, 0.7, 0.1), IDS, 3, Filters(exclude={"p4"}),
                  active=set(IDS) - {"p5"}, out_of_stock=reads.out_of_stock, details_of=reads.details_of)
    assert [(p, s) for p, s, _ in chosen] == [("p2", 0.8), ("p0", 0.5)]
    assert chosen[0][2] == CATALOG["p2"]
    # No rule needs details: they are read once, for the chosen products alone; -inf is never a candidate.
    assert reads.details_asked == [["p2", "p0"]]
    assert "p3" not in reads.stock_asked[0]


def test_pick_reads_details_per_chunk_when_a_rule_needs_them_and_ignores_stock_when_asked():
    reads = Reads(gone={"p2"})
    chosen = pick(scores(0.1, 0.9, 0.8, 0.7, 0.6, 0.5), IDS, 2, Filters(category="bags", max_price=100),
                  active=set(IDS), out_of_stock=None, details_of=reads.details_of)
    assert [p for p, _, _ in chosen] == ["p2", "p5"]  # p1 is a coat, p3 too dear, p4 shoes; stock not asked
    assert reads.details_asked[0] == ["p1", "p2", "p3", "p4", "p5", "p0"]
    assert reads.stock_asked == []


def test_pick_with_nothing_allowed_is_empty():
    reads = Reads()
    assert pick(scores(*[-np.inf] * 6), IDS, 3, Filters(), active=set(IDS), out_of_stock=None,
                details_of=reads.details_of) == []


def test_left_out_is_everything_seen_or_owned_unless_owned_products_are_asked_back():
    interacted, owned = {"p0": 1.0, "p1": 8.0}, {"p1", "p2"}  # p2 rated low: no interest weight, still owned
    assert left_out(interacted, owned, exclude_owned=True) == {"p0", "p1", "p2"}
    assert left_out(interacted, owned, exclude_owned=False) == {"p0"}, "bought or rated may come back"
    assert left_out({}, set(), exclude_owned=True) == set()


def test_item_carries_catalog_details_with_defaults():
    assert item("p1", 2, "because", {"title": "Parka", "price": "90", "category": "coats", "currency": "EUR"}) == {
        "product_id": "p1", "score": 2.0, "reason": "because", "title": "Parka", "category": "coats",
        "price": 90.0, "currency": "EUR"}
    assert item("p9", 1.5, "r", {}) == {"product_id": "p9", "score": 1.5, "reason": "r", "title": "",
                                         "category": "", "price": 0.0, "currency": ""}


def test_cold_start_mix_alternates_then_fills_from_the_longer_list_each_product_once():
    content = [{"product_id": p} for p in ("a", "b", "c", "d")]
    trending = [{"product_id": p} for p in ("x", "b", "y")]
    assert [i["product_id"] for i in interleave(content, trending, 10)] == ["a", "x", "b", "c", "y", "d"]
    assert [i["product_id"] for i in interleave(content, trending, 3)] == ["a", "x", "b"]
    assert [i["product_id"] for i in interleave([], trending, 2)] == ["x", "b"]


def test_session_views_keep_known_products_once_most_recent_first_and_weigh_the_latest_most():
    viewed = ["p3", "zz", "p1", "p3"] + [f"q{i}" for i in range(30)]
    known = {"p1", "p3", *(f"q{i}" for i in range(30))}
    kept = session_views(viewed, known)
    assert kept[:3] == ["p3", "p1", "q0"] and len(kept) == 20
    assert session_weights(["a", "b", "c"]) == {"a": 1.0, "b": 0.5, "c": pytest.approx(1 / 3)}


def test_strongest_action_names_each_product_and_a_purchase_wins():
    recent = [recent_entry("p1", "view", 1.0), recent_entry("p1", "add_to_cart", 2.0),
              recent_entry("p2", "click", 3.0), recent_entry("p1", "click", 4.0), "p3"]
    assert reasons.strongest_actions(recent, {"p2"}) == {"p1": "add_to_cart", "p2": "purchase", "p3": "view"}
    assert reasons.strongest_actions([], []) == {}


def test_item_reason_names_the_anchor_or_explains_the_component():
    titles, actions = {"p1": "Parka"}, {"p1": "purchase"}
    assert reasons.item_reason("item_knn", "p1", titles, actions, "bags") == "because you bought Parka"
    assert reasons.item_reason("content", "p1", titles, actions, "bags") == "similar to Parka"
    assert reasons.item_reason("als", "p9", titles, {}, "") == "because you viewed p9"  # no title: the id
    assert reasons.item_reason("als", None, titles, actions, "bags") == "matches your taste in bags"
    assert reasons.item_reason("user_knn", None, titles, actions, "") == "popular with shoppers like you"


def test_anchor_comes_from_the_component_that_explains_the_score():
    model = SimpleNamespace(content_anchor=lambda row, pid: f"text-of-{pid}", because_of=lambda row, pid: f"knn-{pid}")
    assert reasons.anchor_of(model, None, "p1", "popular") is None
    assert reasons.anchor_of(model, None, "p1", "user_knn") is None
    assert reasons.anchor_of(model, None, "p1", "content") == "text-of-p1"
    assert reasons.anchor_of(model, None, "p1", "als") == "knn-p1"


def test_other_reasons_read_like_a_shop():
    assert reasons.popularity_reason("trending", "bags") == "trending in bags this week"
    assert reasons.popularity_reason("popular", None) == "popular in the shop"
    assert reasons.similar_reason("item_knn", "Tote") == "often chosen with Tote"
    assert reasons.similar_reason("als", "Tote") == "liked by the same shoppers as Tote"
    assert reasons.similar_reason("hybrid", "Tote") == reasons.similar_reason("content", "Tote") == "similar to Tote"
    assert reasons.popular_alike_reason("bags", "popular in the shop") == "popular in bags"
    assert reasons.popular_alike_reason("", "popular in the shop") == "popular in the shop"
    assert reasons.bought_together_reason(3.0) == "bought together 3 times"


def _scheduler(*, model, users: int, events: int, at_training: int = 0, interval: float = 0.0):
    settings = SimpleNamespace(retrain_check_seconds=3600, retrain_interval_seconds=interval)
    trainer = SimpleNamespace(users_seen=lambda: users, events_seen=lambda: events)
    holder = SimpleNamespace(model=model, meta={"events_seen": at_training}, refresh=lambda: None)
    return RecommenderScheduler(settings, trainer, SimpleNamespace(busy=False), holder)


def test_scheduler_trains_a_first_model_once_enough_shoppers_were_seen():
    assert not _scheduler(model=None, users=MIN_USERS - 1, events=10_000).due()
    assert _scheduler(model=None, users=MIN_USERS, events=10).due()


def test_scheduler_retrains_when_the_data_doubled_and_not_while_the_model_is_fresh():
    old = SimpleNamespace(trained_at=time.time() - 3600)
    assert _scheduler(model=old, users=500, events=2000, at_training=1000).due()
    assert not _scheduler(model=old, users=500, events=1500, at_training=1000).due()
    assert _scheduler(model=old, users=500, events=1500, at_training=1000, interval=600).due()
    assert not _scheduler(model=old, users=500, events=1000, at_training=1000, interval=600).due()
    young = SimpleNamespace(trained_at=time.time())
    assert not _scheduler(model=young, users=500, events=5000, at_training=1000).due()
