"""Answering one request: the served model's scores + the user's live state in Redis + business rules.

The model is read once per request from the holder (a hot swap never changes it
mid-request). The user's row is read from Redis on every request, so an event
the consumer applied a moment ago already changes the answer: the factor models
fold the fresh row in, the neighbourhood models score it directly.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from services.common.grpc_server import timestamp
from services.common.logging import get_logger
from services.common.models import ModelHolder
from services.common.recommendations import Filters
from services.recommender import core
from services.recommender.core import profiles, reasons
from services.recommender.core.bundle import RecommenderModel, product_text
from services.recommender.core.candidates import CandidatePolicy, choose_widening
from services.recommender.core.selection import (
    interleave,
    item,
    left_out,
    pick,
    session_views,
    session_weights,
)
from services.recommender.store import RecommenderStore, decode_tags

log = get_logger(__name__)

POPULARITY_VERSION = "popularity-v1"
CATALOG_REFRESH_SECONDS = 1.0


@dataclass
class Answer:
    items: list[dict] = field(default_factory=list)
    model_version: str = POPULARITY_VERSION
    strategy: str = "popular"
    cold_start: bool = False


class Ranker:
    def __init__(self, store: RecommenderStore, holder: ModelHolder[RecommenderModel],
                 candidates: CandidatePolicy | None = None) -> None:
        self.store = store
        self.holder = holder
        self.candidates = candidates or CandidatePolicy()
        self._active: frozenset[str] = frozenset()
        self._active_at = 0.0

    @property
    def model_version(self) -> str:
        return self.holder.version or POPULARITY_VERSION

    def active(self, fresh: bool = False) -> frozenset[str]:
        """The live catalog, re-read at most once a second (the catalog watcher keeps it warm), or now."""
        if fresh or time.monotonic() - self._active_at > CATALOG_REFRESH_SECONDS:
            self._active = frozenset(self.store.active_products())
            self._active_at = time.monotonic()
        return self._active

    # -- recommendations -------------------------------------------------------------------------
    def recommend(self, user: str, k: int, strategy: str, filters: Filters, *, exclude_purchased: bool,
                  exclude_out_of_stock: bool, session: list[str], model: RecommenderModel | None = None) -> Answer:
        """``model``: another stored version than the serving one (an experiment's arm)."""
        model = model if model is not None else self.holder.model
        state = self.store.user_state(user) if user else None
        items = state.items if state else {}
        owned = state.owned if state else set()
        if exclude_purchased:
            filters.exclude |= owned
        if strategy in ("popular", "trending") or model is None:
            used = strategy if strategy in ("popular", "trending") else "popular"
            return self._ranking(used, k, filters, exclude_out_of_stock, cold_start=not items)
        row = model.row(items)
        if row.nnz == 0:
            recent = [profiles.parse_recent(e).product_id for e in state.recent] if state else []
            return self._cold_start(model, k, filters, exclude_out_of_stock, session + recent)
        if strategy not in model.strategies:
            strategy = "hybrid"
        never = left_out(items, owned, exclude_owned=exclude_purchased)  # what is new to the user
        never_at = [model.item_index[p] for p in never if p in model.item_index]

        def scored(size: int | None) -> tuple[np.ndarray, np.ndarray | None]:
            if strategy == "hybrid":
                scores, dominant = model.explained_scores(row, user, size, self._recent_row(model, state, size))
            else:
                scores, dominant = model.scores(strategy, row, user), None
            scores[never_at] = -np.inf
            return scores, dominant

        # A large catalogue: the hybrid re-ranks a few hundred candidates, more if the rules leave too few.
        chosen, dominant = choose_widening(
            scored, lambda scores: self._pick(model, scores, k, filters, exclude_out_of_stock), k,
            self.candidates.sizes(len(model.item_ids)) if strategy == "hybrid" else [None])
        components = [str(dominant[model.item_index[pid]]) if dominant is not None else strategy
                      for pid, _, _ in chosen]
        anchors = [reasons.anchor_of(model, row, pid, component)
                   for (pid, _, _), component in zip(chosen, components, strict=True)]
        titles = self.store.titles([a for a in anchors if a])
        actions = reasons.strongest_actions(state.recent, state.purchased) if state else {}
        out = []
        for (pid, score, details), component, anchor in zip(chosen, components, anchors, strict=True):
            reason = reasons.item_reason(component, anchor, titles, actions, details.get("category", ""))
            out.append(item(pid, score, reason, details))
        return Answer(out, model.version, strategy)

    @staticmethod
    def _recent_row(model: RecommenderModel, state, size: int | None):
        """What the shopper looked at last, most recent weighing most (the candidate stage's neighbours)."""
        recent = [profiles.parse_recent(e).product_id for e in state.recent] if state and size else []
        viewed = session_views(recent, model.item_index)
        return model.row(session_weights(viewed)) if viewed else None

    def _cold_start(self, model: RecommenderModel, k: int, filters: Filters,
                    exclude_out_of_stock: bool, viewed: list[str]) -> Answer:
        """No usable history: content from this session's views (then recent views), mixed with trending."""
        viewed = session_views(viewed, model.item_index)
        trending = self._ranking("trending", k, filters, exclude_out_of_stock, cold_start=True)
        if not viewed or "content" not in model.strategies:
            return trending
        pseudo = model.row(session_weights(viewed))
        content = model.scores("content", pseudo)
        for p in viewed:
            content[model.item_index[p]] = -np.inf
        filters.exclude |= set(viewed)
        similar = self._pick(model, content, k, filters, exclude_out_of_stock)
        anchors = [model.content_anchor(pseudo, pid) or viewed[0] for pid, _, _ in similar]
        titles = self.store.titles(anchors)
        by_content = [item(pid, score, reasons.similar_to_reason(titles.get(anchor) or anchor), details)
                      for (pid, score, details), anchor in zip(similar, anchors, strict=True)]
        mixed = interleave(by_content, trending.items, k)
        return Answer(mixed, model.version, "content+trending", cold_start=True)

    def _pick(self, model: RecommenderModel, scores: np.ndarray, k: int, filters: Filters,
              exclude_out_of_stock: bool) -> list[tuple[str, float, dict]]:
        """The k best products that pass every rule, best first, with their catalog details
        (``selection.pick`` over the live catalog, the stock and the catalog in Redis)."""
        def chosen(active: frozenset[str]) -> list[tuple[str, float, dict]]:
            return pick(scores, model.item_ids, k, filters, active,
                        out_of_stock=self.store.out_of_stock if exclude_out_of_stock else None,
                        details_of=self.store.products)

        found = chosen(self.active())
        if len(found) < k:  # the catalog may have grown since the last read (within a second): look again
            found = chosen(self.active(fresh=True))
        return found

    def _ranking(self, kind: str, k: int, filters: Filters, exclude_out_of_stock: bool,
                 cold_start: bool) -> Answer:
        """Popular or trending from the projection (no model needed), with the same rules applied."""
        limit = (k + len(filters.exclude)) * 4
        out: list[dict] = []
        while True:
            ranked = self.store.ranking(kind, filters.category or None, limit)
            if kind == "trending":  # stored scores grow with time; answer the weight decayed to now
                now = datetime.now(UTC)
                ranked = [(pid, core.decayed_to(score, now)) for pid, score in ranked]
            pids = [pid for pid, _ in ranked if pid not in filters.exclude]
            gone = self.store.out_of_stock(pids) if exclude_out_of_stock else set()
            pids = [p for p in pids if p not in gone]
            details = self.store.products(pids if filters.needs_details else pids[:k])
            scores = dict(ranked)
            out = []
            for pid in pids:
                info = details.get(pid)
                if not filters.allows(pid, info):
                    continue
                reason = reasons.popularity_reason(kind, (info or {}).get("category") if filters.category else None)
                out.append(item(pid, scores[pid], reason, info or {}))
                if len(out) == k:
                    break
            if len(out) == k or len(ranked) < limit:
                break
            limit *= 4
        return Answer(out, self.model_version if self.holder.model else POPULARITY_VERSION, kind,
                      cold_start=cold_start)

    # -- similar products ------------------------------------------------------------------------
    def similar(self, product_id: str, k: int, strategy: str, filters: Filters, *,
                exclude_out_of_stock: bool, include_variants: bool = False) -> Answer:
        model = self.holder.model
        filters.exclude.add(product_id)
        product = self.store.product(product_id)
        if not include_variants:  # the same item in another size or colour is not "similar"
            filters.exclude |= self.store.variants(product.get("group", ""))
        if model is None or product_id not in model.item_index:
            answer = self._ranking("popular", k, Filters(
                exclude=filters.exclude, category=filters.category or product.get("category", ""),
                exclude_categories=filters.exclude_categories, min_price=filters.min_price,
                max_price=filters.max_price), exclude_out_of_stock, cold_start=True)
            for entry in answer.items:
                entry["reason"] = reasons.popular_alike_reason(entry["category"], entry["reason"])
            return answer
        if strategy != "hybrid" and strategy not in model.strategies:
            strategy = "hybrid"
        neighbours = model.similar(product_id, strategy, max(k * 5, 50))
        if not neighbours and strategy != "content":  # nobody interacted with it yet: its text still speaks
            strategy = "content"
            neighbours = model.similar(product_id, strategy, max(k * 5, 50))
        scores = np.full(len(model.item_ids), -np.inf)
        for pid, score in neighbours:
            scores[model.item_index[pid]] = score
        title = product.get("title", product_id)
        reason = reasons.similar_reason(strategy, title)
        chosen = self._pick(model, scores, k, filters, exclude_out_of_stock)
        return Answer([item(pid, s, reason, d) for pid, s, d in chosen], model.version, strategy)

    # -- profiles --------------------------------------------------------------------------------
    def user_profile(self, user: str) -> dict | None:
        facts = self.store.user_facts(user)
        orders = facts["orders"]
        if facts["first_seen"] is None and not orders:
            return None
        band = profiles.price_band(facts["purchase_prices"], facts["view_prices"])
        recent = [profiles.parse_recent(e) for e in facts["recent"][: profiles.RECENT_ITEMS_SHOWN]]
        currency = orders.get("currency", "")
        return {
            "user_id": user,
            "purchase_frequency": profiles.purchase_frequency(
                facts["counts"].get("purchase", 0), facts["first_seen"], facts["last_seen"]),
            "favourite_categories": [{"name": n, "weight": w} for n, w in profiles.shares(facts["categories"])],
            "favourite_brands": [{"name": n, "weight": w} for n, w in profiles.shares(facts["brands"])],
            "price_band": ({"min": band[0], "median": band[1], "max": band[2], "currency": currency}
                           if band else None),
            "recent_items": [{"product_id": r.product_id, "event_type": r.action,
                              "occurred_at": timestamp(r.occurred_at.timestamp())} for r in recent],
            "event_counts": facts["counts"],
            "first_seen": timestamp(facts["first_seen"]),
            "last_seen": timestamp(facts["last_seen"]),
            "orders": max(0, int(orders.get("orders", 0))),
            "total_spend": max(0.0, float(orders.get("spend", 0.0))),
            "currency": currency,
        }

    def item_profile(self, product_id: str) -> dict | None:
        details = self.store.product(product_id)
        if not details:
            return None
        facts = self.store.item_facts(product_id)
        on_hand = self.store.on_hand(product_id)
        ratings = facts["ratings"]
        together = self.store.products([pid for pid, _ in facts["bought_with"]])
        return {
            "product_id": product_id,
            "title": details.get("title", ""),
            "category": details.get("category", ""),
            "brand": details.get("brand", ""),
            "price": float(details.get("price") or 0.0),
            "currency": details.get("currency", ""),
            "tags": decode_tags(details.get("tags")),
            "in_stock": on_hand is None or on_hand > 0,
            "event_counts": facts["counts"],
            "unique_users": facts["unique_users"],
            "conversion_rate": profiles.conversion_rate(facts["counts"]),
            "average_rating": ratings.get("sum", 0) / ratings["count"] if ratings.get("count") else 0.0,
            "rating_count": ratings.get("count", 0),
            "popularity_rank": self.store.popularity_rank(product_id),
            "last_interaction_at": timestamp(facts["last_seen"]),
            "frequently_bought_with": [
                item(pid, n, reasons.bought_together_reason(n), together.get(pid, {}))
                for pid, n in facts["bought_with"]
            ],
        }

    # -- background ------------------------------------------------------------------------------
    def watch_catalog(self, stop: threading.Event) -> None:
        """Keep the live catalog warm and make new products known to the served model within a second."""
        while not stop.wait(CATALOG_REFRESH_SECONDS):
            try:
                self._active = frozenset(self.store.active_products())
                self._active_at = time.monotonic()
                self.learn_new_products()
            except Exception:  # Redis away for a moment: try again next second
                log.warning("catalog_refresh_failed", exc_info=True)

    def learn_new_products(self) -> int:
        model, version = self.holder.model, self.holder.version
        if model is None:
            return 0
        new = sorted(self._active - model.item_index.keys())
        if not new:
            return 0
        details = self.store.products(new)
        texts = {pid: product_text(details[pid], decode_tags) for pid in new if pid in details}
        if texts and self.holder.update(model.with_new_products(texts), version):
            log.info("products_learned", count=len(texts), version=version)
        return len(texts)

