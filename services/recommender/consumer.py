"""The recommender's projection of the catalog and interaction topics into Redis."""

from __future__ import annotations

from services.common import topics
from services.common.events import Event, InvalidEvent
from services.common.projection import Ops, Projection
from services.recommender import core
from services.recommender.store import RecommenderKeys as K

PRODUCT_FIELDS = ("title", "title_zh", "category", "brand", "price", "currency")


class RecommenderProjection(Projection):
    group = "recommender"
    topics = (topics.CATALOG, topics.INTERACTIONS)

    def apply(self, event: Event, ops: Ops) -> None:
        ops("HINCRBY", K.stats, event.type, 1)
        if event.family == "product":
            self._apply_product(event, ops)
        elif event.family == "interaction":
            self._apply_interaction(event, ops)
        else:
            raise InvalidEvent(f"{event.type} does not belong on {self.topics}")

    def _apply_product(self, event: Event, ops: Ops) -> None:
        p = event.payload
        pid = str(p["product_id"])
        categories: dict[str, str] = ops.batch_state.setdefault("category", {})
        old = categories[pid] if pid in categories else self.redis.hget(K.product(pid), "category")
        if event.action == "removed":
            ops("SREM", K.active, pid)
            if old:
                ops("SREM", K.category(old), pid)
            return
        fields: list[object] = []
        for name in PRODUCT_FIELDS:
            if name in p:
                fields += [name, p[name]]
        ops("HSET", K.product(pid), *fields)
        category = str(p["category"])
        if old and old != category:
            ops("SREM", K.category(old), pid)
        ops("SADD", K.category(category), pid)
        ops("SADD", K.active, pid)
        categories[pid] = category

    def _apply_interaction(self, event: Event, ops: Ops) -> None:
        p = event.payload
        user = str(p["user_id"])
        ops("HINCRBY", K.user_counts(user), event.action, 1)
        pid = str(p.get("product_id") or "")
        if not pid:
            return
        weight = core.interaction_weight(event.action, p)
        if weight > 0:
            ops("ZINCRBY", K.popular, weight, pid)
            ops("ZINCRBY", K.trending, core.trend_score(weight, event.occurred_at), pid)
        ops("LPUSH", K.user_recent(user), pid)
        ops("LTRIM", K.user_recent(user), 0, 49)
        if event.action == "purchase":
            ops("SADD", K.user_purchased(user), pid)
