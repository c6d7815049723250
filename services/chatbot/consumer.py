"""The assistant's projection: orders (for order questions), the catalog and stock (for product questions),
and the support inbox (hand-offs from ``handoffs.v1``: ``services/chatbot/handoffs.py``).

Answers about an order come only from here, never from guesses: an order the projection has not
seen is "not found". Every command goes through the exactly-once applier.
``user.erased`` deletes the shopper's orders, their order index and their dialogue sessions; later
events of those orders or that shopper are no-ops (``services/common/privacy.py``); their hand-offs go too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from services.chatbot.handoffs import HandoffLog
from services.chatbot.store import ChatbotKeys as K
from services.common import privacy, topics
from services.common.events import Event, InvalidEvent
from services.common.projection import Ops, Projection
from services.common.stock import StockLedger

ORDER_FIELDS = ("user_id", "total", "currency", "carrier", "tracking_no", "expected_delivery", "reason")
PRODUCT_FIELDS = ("title", "title_zh", "description", "description_zh", "category", "brand", "price", "currency")


class ChatbotProjection(Projection):
    group = "chatbot"
    topics = (topics.ORDERS, topics.CATALOG, topics.INVENTORY, topics.PRIVACY, topics.HANDOFFS)

    def __init__(self, redis_client) -> None:
        super().__init__(redis_client)
        self.handoffs = HandoffLog(redis_client, self.group)
        self.stock = StockLedger(redis_client, "chat")

    def prepare(self, events: Sequence[Event], batch_state: dict[str, Any]) -> None:
        """The stock ledger's count times of the batch's products and the status history of its orders: two
        round trips, not one per event."""
        self.stock.prepare(events, batch_state)
        histories: dict[str, list] = batch_state.setdefault("history", {})
        oids = list(dict.fromkeys(str(e.payload["order_id"]).upper() for e in events
                                  if e.family == "order" and e.payload.get("order_id")))
        oids = [oid for oid in oids if oid not in histories]
        if oids:
            with self.redis.pipeline(transaction=False) as pipe:
                for oid in oids:
                    pipe.hget(K.order(oid), "history")
                for oid, history in zip(oids, pipe.execute(), strict=True):
                    histories[oid] = json.loads(history or "[]")

    def apply(self, event: Event, ops: Ops) -> None:
        ops("HINCRBY", K.stats, event.type, 1)
        if event.family == "order":
            self._apply_order(event, ops)
            self.stock.apply(event, ops)
        elif event.family == "product":
            self._apply_product(event, ops)
        elif event.family == "inventory":
            self.stock.apply(event, ops)
        elif event.family == "user":
            self.erase_user(str(event.payload["user_id"]), ops)
            privacy.record_erasure(ops, "chatbot", self.group, event)
        elif event.family == "handoff":
            self.handoffs.apply(event, ops)
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
        if p.get("sealed_personal"):  # kept sealed, for the shopper's export; the latest sent wins
            fields += ["sealed_personal", json.dumps(p["sealed_personal"])]
        # The status history is kept in the hash as JSON, rebuilt by appending within this batch.
        histories: dict[str, list] = ops.batch_state.setdefault("history", {})
        if oid not in histories:
            histories[oid] = json.loads(self.redis.hget(K.order(oid), "history") or "[]")
        histories[oid].append([event.action, when])
        fields += ["history", json.dumps(histories[oid])]
        # An erased shopper's order (known by its owner, or by its id once erased) stays gone.
        if p.get("user_id"):  # a replay meets the erasure first: remember the order for its later events
            ops("SADDIFMEMBER", privacy.register_key(self.group), str(p["user_id"]), K.erased_orders, oid)
        ops("GUARD", K.erased_orders, oid)
        with privacy.guarded(ops, self.group, str(p.get("user_id") or "")):
            ops("HSET", K.order(oid), *fields)
            if event.action == "created" and p.get("user_id"):
                ops("ZADD", K.user_orders(str(p["user_id"])), when, oid)

    def erase_user(self, user: str, ops: Ops) -> None:
        """Delete the shopper's orders, their index and the shopper's dialogue sessions."""
        ops("SADDMEMBERS", K.user_orders(user), K.erased_orders)
        ops("DELMEMBERKEYS", K.user_orders(user), K.order(""))
        ops("DELMEMBERKEYS", K.user_sessions(user), K.session(""))
        ops("DELMEMBERKEYS", K.user_sessions(user), K.turns(""))  # their remembered answers
        ops("DEL", K.user_orders(user), K.user_sessions(user))
        self.handoffs.erase_user(user, ops)

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
