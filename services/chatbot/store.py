"""The assistant's state in Redis: orders, catalog and stock (its projection) and dialogue sessions."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable

import redis

from services.chatbot.core.turns import REPLAY_SECONDS
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
    def turns(session_id: str) -> str:
        """Hash message_id -> "fingerprint answer" of the session's recent turns (core/turns.py)."""
        return key("chat", "turns", session_id)

    @staticmethod
    def first_turn(message_id: str) -> str:
        """"session_id fingerprint" of the conversation a message sent without a session started."""
        return key("chat", "first-turn", message_id)

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

    def save_session(self, session_id: str, state: dict, user_id: str = "",
                     turn: tuple[str, str, bytes] | None = None) -> None:
        """Save the dialogue state; a shopper's sessions are indexed so that their erasure finds them.
        ``turn``: (message_id, fingerprint, answer) remembered with the state, in the same transaction."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(K.session(session_id), json.dumps(state, ensure_ascii=False), ex=self.session_ttl)
            if turn is not None:
                message_id, fingerprint, answer = turn
                pipe.hset(K.turns(session_id), message_id, f"{fingerprint} {base64.b64encode(answer).decode()}")
                pipe.expire(K.turns(session_id), REPLAY_SECONDS)
            if user_id:
                pipe.sadd(K.user_sessions(user_id), session_id)
                pipe.expire(K.user_sessions(user_id), self.session_ttl)
            pipe.execute()

    # -- remembered turns (core/turns.py) --------------------------------------------------------------
    def claim_first_turn(self, message_id: str, fingerprint: str, session_id: str) -> tuple[str, str]:
        """(session_id, fingerprint) of the conversation the message ``message_id``, sent without a session,
        started: ``session_id`` if this is the first time the id is seen, else the first one's."""
        value = f"{session_id} {fingerprint}"
        if not self.redis.set(K.first_turn(message_id), value, nx=True, ex=REPLAY_SECONDS):
            value = _text(self.redis.get(K.first_turn(message_id))) or value
        first, _, first_fingerprint = value.partition(" ")
        return first, first_fingerprint

    def open_turn(self, session_id: str, message_id: str, also: str) -> tuple[
            tuple[str, bytes] | None, dict | None, str]:
        """What a turn reads before it answers, in one round trip instead of three (issue #22 item 4): the
        remembered answer to ``message_id`` (``remembered_turn``; None without an id), the dialogue state
        (``load_session``), and the string at key ``also`` (the conversation's hand-off id; "" when absent)."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(K.session(session_id))
            pipe.get(also)
            if message_id:
                pipe.hget(K.turns(session_id), message_id)
            replies = pipe.execute()
        raw = _text(replies[2]) if message_id else ""
        remembered = None
        if raw:
            fingerprint, _, answer = raw.partition(" ")
            remembered = fingerprint, base64.b64decode(answer)
        state = json.loads(replies[0]) if replies[0] else None
        return remembered, state, _text(replies[1])

    def remembered_turn(self, session_id: str, message_id: str) -> tuple[str, bytes] | None:
        """(fingerprint, answer) of the session's turn ``message_id`` while it is remembered, else None."""
        raw = _text(self.redis.hget(K.turns(session_id), message_id))
        if not raw:
            return None
        fingerprint, _, answer = raw.partition(" ")
        return fingerprint, base64.b64decode(answer)


def decode_product(pid: str, raw: dict) -> dict:
    product = {**raw, "product_id": pid}
    for field in ("attributes", "tags"):
        product[field] = json.loads(product.get(field) or ("{}" if field == "attributes" else "[]"))
    product["price"] = float(product.get("price") or 0.0)
    return product


def _text(value: str | bytes | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")
