"""The recommender's projection of catalog, interaction, order and stock events into Redis.

Everything a model trains on and everything a request needs in real time lives
here: each user's weighted items (the interaction matrix, one hash per user),
recent items, tastes, prices paid; each product's details, counts and stock.
Every command goes through the exactly-once applier, so increments are safe.
``user.erased`` deletes every key kept under the shopper; their later events change only
aggregates (popularity, product counts), never anything personal (``services/common/privacy.py``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from services.common import attribution, privacy, topics
from services.common.attribution import AttributionKeys as AK
from services.common.events import Event, InvalidEvent
from services.common.projection import Ops, Projection
from services.common.stock import StockLedger
from services.recommender import core
from services.recommender.core.profiles import recent_entry
from services.recommender.store import RecommenderKeys as K

PRODUCT_FIELDS = ("title", "title_zh", "description", "description_zh", "category", "brand", "price", "currency")
RECENT_ITEMS = 50
PRICES_KEPT = 100
# Reads a product's current details when an interaction refers to it (category, brand, price).
_INFO_FIELDS = ("category", "brand", "price", "group")
# The catalog attribute that makes products variants of one item (Google Merchant Center's name for it):
# similar products leave out the anchor's other sizes and colours unless asked.
GROUP_ATTRIBUTE = "item_group_id"
CATEGORY_ZH_ATTRIBUTE = "category_zh"  # the category's Chinese name, listed with the categories


class RecommenderProjection(Projection):
    group = "recommender"
    topics = (topics.CATALOG, topics.INTERACTIONS, topics.ORDERS, topics.INVENTORY, topics.PRIVACY,
              topics.RECOMMENDATIONS_SERVED)

    def __init__(self, redis_client) -> None:
        super().__init__(redis_client)
        self.stock = StockLedger(redis_client, "rec")

    def apply(self, event: Event, ops: Ops) -> None:
        if event.family == "recommendation":  # not a shop event: not in the event counts training looks at
            self._apply_served(event, ops)
            return
        ops("HINCRBY", K.stats, event.type, 1)
        if event.family == "product":
            self._apply_product(event, ops)
        elif event.family == "interaction":
            self._apply_interaction(event, ops)
        elif event.family == "order":
            self._apply_order(event, ops)
        elif event.family == "inventory":
            self._apply_stock(event, ops)
        elif event.family == "user":
            self.erase_user(str(event.payload["user_id"]), ops)
            privacy.record_erasure(ops, "recommender", self.group, event)
            # The serving model drops the shopper in process (services/recommender/forgetting.py).
            ops("HSET", privacy.model_pending_key(), str(event.payload["user_id"]), event.event_id)
        else:
            raise InvalidEvent(f"{event.type} does not belong on {self.topics}")

    def prepare(self, events: Sequence[Event], batch_state: dict[str, Any]) -> None:
        """The category, brand, price and group of every product the batch touches, in one round trip, and the
        stock ledger's count times."""
        self.stock.prepare(events, batch_state)
        infos: dict[str, dict[str, str]] = batch_state.setdefault("info", {})
        pids = list(dict.fromkeys(str(e.payload["product_id"]) for e in events
                                  if e.family in ("product", "interaction") and e.payload.get("product_id")))
        pids = [pid for pid in pids if pid not in infos]
        if not pids:
            return
        with self.redis.pipeline(transaction=False) as pipe:
            for pid in pids:
                pipe.hmget(K.product(pid), *_INFO_FIELDS)
            rows = pipe.execute()
        for pid, values in zip(pids, rows, strict=True):
            infos[pid] = {f: v for f, v in zip(_INFO_FIELDS, values, strict=True) if v is not None}

    # -- catalog -----------------------------------------------------------------------------
    def _info(self, pid: str, ops: Ops) -> dict[str, str]:
        """A product's category/brand/price as of this point in the batch."""
        infos: dict[str, dict[str, str]] = ops.batch_state.setdefault("info", {})
        if pid not in infos:
            values = self.redis.hmget(K.product(pid), *_INFO_FIELDS)
            infos[pid] = {f: v for f, v in zip(_INFO_FIELDS, values, strict=True) if v is not None}
        return infos[pid]

    def _apply_product(self, event: Event, ops: Ops) -> None:
        p = event.payload
        pid = str(p["product_id"])
        info = self._info(pid, ops)
        old = info.get("category")
        old_group = info.get("group")
        if event.action == "removed":
            ops("SREM", K.active, pid)
            if old:
                ops("SREM", K.category(old), pid)
            if old_group:
                ops("SREM", K.variants(old_group), pid)
            return
        fields: list[object] = []
        for name in PRODUCT_FIELDS:
            if name in p:
                fields += [name, p[name]]
        if "tags" in p:
            fields += ["tags", json.dumps(list(p["tags"]), ensure_ascii=False)]
        ops("HSET", K.product(pid), *fields)
        category = str(p["category"])
        if old and old != category:
            ops("SREM", K.category(old), pid)
        ops("SADD", K.category(category), pid)
        ops("SADD", K.active, pid)
        attributes = p.get("attributes") or {}
        name_zh = attributes.get(CATEGORY_ZH_ATTRIBUTE, "") if isinstance(attributes, dict) else ""
        if name_zh:
            ops("HSET", K.categories, category, str(name_zh))
        else:
            ops("HSETNX", K.categories, category, "")  # a name given once stays
        group = str(attributes.get(GROUP_ATTRIBUTE, "") if isinstance(attributes, dict) else "")
        if old_group and old_group != group:
            ops("SREM", K.variants(old_group), pid)
        if group:
            ops("HSET", K.product(pid), "group", group)
            ops("SADD", K.variants(group), pid)
        elif old_group:
            ops("HDEL", K.product(pid), "group")
        info.update({"category": category, "brand": str(p.get("brand", "")), "price": str(p.get("price", "")),
                     "group": group})

    # -- attribution (services/common/attribution.py) -----------------------------------------
    def _apply_served(self, event: Event, ops: Ops) -> None:
        """An answer the gateway served: counted in its hour, strategy, model version and arm."""
        p = event.payload
        experiment, arm = str(p.get("experiment_id") or ""), str(p.get("arm") or "")
        where = attribution.bucket(str(p["strategy"]), str(p.get("model_version") or ""), experiment, arm)
        ops("IMPRESSION", AK.impression(str(p["recommendation_id"])), attribution.hour_of(event.occurred_at), where,
            AK.counters_prefix, attribution.ATTRIBUTION_SECONDS, attribution.COUNTER_SECONDS)
        user = str(p.get("user_id") or "")
        if experiment and user:
            with privacy.guarded(ops, self.group, user):
                ops("PFADD", AK.arm_users(experiment, arm), user)

    # -- behaviour ---------------------------------------------------------------------------
    def _apply_interaction(self, event: Event, ops: Ops) -> None:
        p = event.payload
        if p.get("recommendation_id") and event.action in attribution.OUTCOMES:
            ops("OUTCOME", AK.impression(str(p["recommendation_id"])), event.action, AK.counters_prefix,
                attribution.ATTRIBUTION_SECONDS)
        user = str(p["user_id"])
        pid = str(p.get("product_id") or "")
        info = self._info(pid, ops) if pid else {}
        weight = core.interaction_weight(event.action, p) if pid else 0.0
        with privacy.guarded(ops, self.group, user):
            self._personal_interaction(event, ops, user, pid, weight, info)
        if not pid:
            return
        popular = core.popularity_weight(event.action, p)
        if popular > 0:
            ops("ZINCRBY", K.popular, popular, pid)
            ops("ZINCRBY", K.trending, core.trend_score(popular, event.occurred_at), pid)
        ops("HINCRBY", K.item_counts(pid), event.action, 1)
        ops("ZADD", K.item_last_seen, "GT", event.occurred_at.timestamp(), pid)
        if event.action == "rating":
            ops("HINCRBY", K.item_ratings(pid), "count", 1)
            ops("HINCRBY", K.item_ratings(pid), "sum", int(p.get("rating", 0) or 0))

    def _personal_interaction(self, event: Event, ops: Ops, user: str, pid: str, weight: float,
                              info: dict[str, str]) -> None:
        """What the event tells about the shopper: skipped once they are erased."""
        p = event.payload
        when = event.occurred_at.timestamp()
        ops("SADD", K.users, user)
        ops("HINCRBY", K.user_counts(user), event.action, 1)
        ops("ZADD", K.first_seen, "LT", when, user)
        ops("ZADD", K.last_seen, "GT", when, user)
        # Cached answers are keyed by this version, so one computed from older state is never served again.
        ops("INCRBY", K.user_version(user), 1)
        ops("DEL", K.answers(user))
        if not pid:
            return
        if weight > 0:
            ops("HINCRBYFLOAT", K.user_items(user), pid, weight)
            if info.get("category"):
                ops("HINCRBYFLOAT", K.user_categories(user), info["category"], weight)
            if info.get("brand"):
                ops("HINCRBYFLOAT", K.user_brands(user), info["brand"], weight)
        ops("LPUSH", K.user_recent(user), recent_entry(pid, event.action, when))
        ops("LTRIM", K.user_recent(user), 0, RECENT_ITEMS - 1)
        ops("PFADD", K.item_users(pid), user)
        price = p.get("price") or info.get("price")
        if event.action == "purchase":
            ops("SADD", K.user_purchased(user), pid)
            if price:
                ops("LPUSH", K.user_prices(user, "purchase"), float(price))
                ops("LTRIM", K.user_prices(user, "purchase"), 0, PRICES_KEPT - 1)
        elif event.action == "rating":  # whatever the rating, they own it: never recommended to them again
            ops("SADD", K.user_rated(user), pid)
        elif event.action == "view" and price:
            ops("LPUSH", K.user_prices(user, "view"), float(price))
            ops("LTRIM", K.user_prices(user, "view"), 0, PRICES_KEPT - 1)

    def _apply_order(self, event: Event, ops: Ops) -> None:
        p = event.payload
        user = str(p.get("user_id") or "")
        if event.action in ("created", "cancelled") and user:
            sign = 1 if event.action == "created" else -1
            with privacy.guarded(ops, self.group, user):
                ops("HINCRBY", K.user_orders(user), "orders", sign)
                ops("HINCRBYFLOAT", K.user_orders(user), "spend", sign * float(p.get("total", 0) or 0))
                if p.get("currency"):
                    ops("HSET", K.user_orders(user), "currency", p["currency"])
        if event.action == "created":
            lines = sorted({str(line["product_id"]) for line in p.get("lines", []) or []})
            for a in lines:  # bought together: every pair of products in one order
                for b in lines:
                    if a != b:
                        ops("ZINCRBY", K.bought_with(a), 1, b)
        self._apply_stock(event, ops)

    def erase_user(self, user: str, ops: Ops) -> None:
        """Delete everything kept under the shopper (aggregates such as popularity stay)."""
        ops("DEL", K.user_counts(user), K.user_recent(user), K.user_purchased(user), K.user_rated(user),
            K.user_items(user), K.user_categories(user), K.user_brands(user), K.user_prices(user, "purchase"),
            K.user_prices(user, "view"), K.user_orders(user), K.user_version(user), K.answers(user))
        ops("SREM", K.users, user)
        ops("ZREM", K.first_seen, user)
        ops("ZREM", K.last_seen, user)

    def _apply_stock(self, event: Event, ops: Ops) -> None:
        self.stock.apply(event, ops)
