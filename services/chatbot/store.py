"""The assistant's state in Redis: orders, catalog and stock (its projection) and dialogue sessions."""

from __future__ import annotations

import json
from collections.abc import Iterable

import redis

from services.common.cache import key
from services.common.stock import StockLedger, stock_keys


class ChatbotKeys:
    active = key("chat", "catalog", "active")
    catalog_version = key("chat", "catalog", "version")
    stock, stock_counted_at = stock_keys("chat")
    stats = key("chat", "stats", "events")

    @staticmethod
    def order(order_id: str) -> str:
        return key("chat", "order", order_id)

    @staticmethod
    def user_orders(user: str) -> str:
        return key("chat", "user", user, "orders")

    @staticmethod
    def product(pid: str) -> str:
        return key("chat", "product", pid)

    @staticmethod
    def session(session_id: str) -> str:
        return key("chat", "session", session_id)

    @staticmethod
    def user_sessions(user: str) -> str:
        """Set of the dialogue sessions a shopper chatted in (erasure deletes them)."""
        return key("chat", "user", user, "sessions")

    # Orders of erased shoppers: their later events (shipped, delivered, ...) are no-ops.
    erased_orders = key("chat", "orders", "erased")


K = ChatbotKeys


class ChatbotStore:
    def __init__(self, client: redis.Redis, session_ttl_seconds: int = 1800) -> None:
        self.redis = client
        self.session_ttl = session_ttl_seconds
        self.stock = StockLedger(client, "chat")

    # -- orders ----------------------------------------------------------------------------------
    def order(self, order_id: str) -> dict | None:
        raw = self.redis.hgetall(K.order(order_id))
        if not raw:
            return None
        order = dict(raw)
        order["lines"] = json.loads(order.get("lines") or "[]")
        order["history"] = json.loads(order.get("history") or "[]")
        if "sealed_personal" in order:
            order["sealed_personal"] = json.loads(order["sealed_personal"])
        order["order_id"] = order_id
        for name in list(order):
            if name.endswith("_at"):
                order[name] = float(order[name])  # epoch seconds
        return order

    def user_orders(self, user: str, limit: int = 10) -> list[dict]:
        """The user's orders, newest first (``limit`` 0: all of them)."""
        ids = self.redis.zrevrange(K.user_orders(user), 0, limit - 1)
        return [o for o in (self.order(i) for i in ids) if o]

    def user_conversations(self, user: str) -> dict[str, dict]:
        """The dialogue states of the shopper's conversations still kept, by session id."""
        sessions = sorted(self.redis.smembers(K.user_sessions(user)))
        states = {sid: self.load_session(sid) for sid in sessions}
        return {sid: state for sid, state in states.items() if state}

    # -- catalog ---------------------------------------------------------------------------------
    def product(self, pid: str) -> dict | None:
        raw = self.redis.hgetall(K.product(pid))
        return decode_product(pid, raw) if raw else None

    def products(self, pids: Iterable[str]) -> dict[str, dict]:
        pids = list(pids)
        with self.redis.pipeline(transaction=False) as pipe:
            for pid in pids:
                pipe.hgetall(K.product(pid))
            rows = pipe.execute()
        return {pid: decode_product(pid, row) for pid, row in zip(pids, rows, strict=True) if row}

    def catalog(self) -> list[dict]:
        return list(self.products(sorted(self.redis.smembers(K.active))).values())

    def catalog_version(self) -> int:
        return int(self.redis.get(K.catalog_version) or 0)

    def on_hand(self, pid: str) -> int | None:
        return self.stock.on_hand(pid)

    # -- sessions --------------------------------------------------------------------------------
    def load_session(self, session_id: str) -> dict | None:
        raw = self.redis.get(K.session(session_id))
        return json.loads(raw) if raw else None

    def save_session(self, session_id: str, state: dict, user_id: str = "") -> None:
        """Save the dialogue state; a shopper's sessions are indexed so that their erasure finds them."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(K.session(session_id), json.dumps(state, ensure_ascii=False), ex=self.session_ttl)
            if user_id:
                pipe.sadd(K.user_sessions(user_id), session_id)
                pipe.expire(K.user_sessions(user_id), self.session_ttl)
            pipe.execute()


def decode_product(pid: str, raw: dict) -> dict:
    product = {**raw, "product_id": pid}
    for field in ("attributes", "tags"):
        product[field] = json.loads(product.get(field) or ("{}" if field == "attributes" else "[]"))
    product["price"] = float(product.get("price") or 0.0)
    return product
