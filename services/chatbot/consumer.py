"""The assistant's projection: orders (for order questions), the catalog and stock (for product questions).

Answers about an order come only from here, never from guesses: an order the projection has not
seen is "not found". Every command goes through the exactly-once applier.
"""

from __future__ import annotations

import json

from services.chatbot.store import ChatbotKeys as K
from services.common import topics
from services.common.events import Event, InvalidEvent
from services.common.projection import Ops, Projection
from services.common.stock import StockLedger

ORDER_FIELDS = ("user_id", "total", "currency", "carrier", "tracking_no", "expected_delivery", "reason")
PRODUCT_FIELDS = ("title", "title_zh", "description", "description_zh", "category", "brand", "price", "currency")


class ChatbotProjection(Projection):
    group = "chatbot"
    topics = (topics.ORDERS, topics.CATALOG, topics.INVENTORY)

    def apply(self, event: Event, ops: Ops) -> None:
        ops("HINCRBY", K.stats, event.type, 1)
        if event.family == "order":
            self._apply_order(event, ops)
            StockLedger(self.redis, "chat").apply(event, ops)
        elif event.family == "product":
            self._apply_product(event, ops)
        elif event.family == "inventory":
            StockLedger(self.redis, "chat").apply(event, ops)
        else:
            raise InvalidEvent(f"{event.type} does not belong on {self.topics}")

    def _apply_order(self, event: Event, ops: Ops) -> None:
        p = event.payload
        oid = str(p["order_id"]).upper()
        when = event.occurred_at.timestamp()
        fields: list[object] = ["status", event.action, f"{event.action}_at", when, "updated_at", when]
        for name in ORDER_FIELDS:
            if p.get(name) not in (None, ""):
                fields += [name, p[name]]
        if p.get("lines"):
            fields += ["lines", json.dumps(p["lines"], ensure_ascii=False)]
        # The status history is kept in the hash as JSON, rebuilt by appending within this batch.
        histories: dict[str, list] = ops.batch_state.setdefault("history", {})
        if oid not in histories:
            histories[oid] = json.loads(self.redis.hget(K.order(oid), "history") or "[]")
        histories[oid].append([event.action, when])
        fields += ["history", json.dumps(histories[oid])]
        ops("HSET", K.order(oid), *fields)
        if event.action == "created" and p.get("user_id"):
            ops("ZADD", K.user_orders(str(p["user_id"])), when, oid)

    def _apply_product(self, event: Event, ops: Ops) -> None:
        p = event.payload
        pid = str(p["product_id"])
        ops("INCRBY", K.catalog_version, 1)
        if event.action == "removed":
            ops("SREM", K.active, pid)
            return
        fields: list[object] = []
        for name in PRODUCT_FIELDS:
            if name in p:
                fields += [name, p[name]]
        fields += ["attributes", json.dumps(p.get("attributes") or {}, ensure_ascii=False),
                   "tags", json.dumps(list(p.get("tags") or []), ensure_ascii=False)]
        ops("HSET", K.product(pid), *fields)
        ops("SADD", K.active, pid)
