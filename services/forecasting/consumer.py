"""The forecasting service's projection: catalog, orders, interactions and stock -> daily aggregates.

Every command goes through the exactly-once applier (``services/common/projection.py``), so a
replayed or duplicated ``order.created`` never counts twice: the daily series are built exactly
once however often the log is read. ``user.erased`` removes the shopper's analytics rows (orders
for RFM, cohorts and customer value, funnel memberships, behaviour profile); daily sales, views and
event counts are aggregates and stay (``services/common/privacy.py``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from services.common import privacy, topics
from services.common.events import Event, InvalidEvent
from services.common.projection import Ops, Projection
from services.common.stock import StockLedger
from services.forecasting.core.returns import OrderRecord, apply_refund, apply_return
from services.forecasting.store import FUNNEL_ACTIONS, day_of
from services.forecasting.store import ForecastKeys as K

PRODUCT_FIELDS = ("title", "category", "price", "cost", "currency")


class ForecastProjection(Projection):
    group = "forecasting"
    topics = (topics.CATALOG, topics.ORDERS, topics.INTERACTIONS, topics.INVENTORY, topics.PRIVACY)

    def __init__(self, redis_client) -> None:
        super().__init__(redis_client)
        self.stock = StockLedger(redis_client, "fc")

    def apply(self, event: Event, ops: Ops) -> None:
        ops("HINCRBY", K.stats, event.type, 1)
        ops("ZADD", K.clock, "GT", event.occurred_at.timestamp(), "last")
        if event.family == "product":
            self._product(event, ops)
        elif event.family == "order":
            self._order(event, ops)
        elif event.family == "interaction":
            self._interaction(event, ops)
        elif event.family == "inventory":
            self.stock.apply(event, ops)
            ops("SADD", K.dirty, "stock|" + str(event.payload["product_id"]))
        elif event.family == "user":
            self.erase_user(str(event.payload["user_id"]), ops)
            privacy.record_erasure(ops, "forecasting", self.group, event)
        else:
            raise InvalidEvent(f"{event.type} does not belong on {self.topics}")

    def prepare(self, events: Sequence[Event], batch_state: dict[str, Any]) -> None:
        """What the batch will read, in one round trip: the category of every product its interactions and
        order lines name, the orders its cancellations, returns and refunds refer to, and the stock ledger's
        count times."""
        self.stock.prepare(events, batch_state)
        cats: dict[str, str] = batch_state.setdefault("category", {})
        orders: dict[str, Any] = batch_state.setdefault("orders", {})
        pids: dict[str, None] = {}
        oids: dict[str, None] = {}
        for event in events:
            p = event.payload
            if event.family == "interaction" and p.get("product_id"):
                pids[str(p["product_id"])] = None
            elif event.family == "order":
                lines = p.get("lines")
                if isinstance(lines, list):
                    pids.update((str(line["product_id"]), None) for line in lines
                                if isinstance(line, dict) and "product_id" in line)
                if event.action in ("cancelled", "returned", "refunded") and p.get("order_id"):
                    oids[str(p["order_id"])] = None
        pids_wanted = [pid for pid in pids if pid not in cats]
        oids_wanted = [oid for oid in oids if oid not in orders]
        if not pids_wanted and not oids_wanted:
            return
        with self.redis.pipeline(transaction=False) as pipe:
            for pid in pids_wanted:
                pipe.hget(K.product(pid), "category")
            if oids_wanted:
                pipe.hmget(K.orders, oids_wanted)
            replies = pipe.execute()
        for pid, category in zip(pids_wanted, replies, strict=False):
            cats[pid] = category or ""
        if oids_wanted:
            orders.update(zip(oids_wanted, replies[-1], strict=True))

    def _category(self, pid: str, ops: Ops) -> str:
        """The product's category as of this point in the batch ("" when unknown)."""
        cats: dict[str, str] = ops.batch_state.setdefault("category", {})
        if pid not in cats:
            cats[pid] = self.redis.hget(K.product(pid), "category") or ""
        return cats[pid]

    def _product(self, event: Event, ops: Ops) -> None:
        p = event.payload
        pid = str(p["product_id"])
        if event.action == "removed":
            ops("SREM", K.active, pid)
            return
        fields: list[object] = []
        for name in PRODUCT_FIELDS:
            if p.get(name) is not None:
                fields += [name, p[name]]
        ops("HSET", K.product(pid), *fields)
        ops("SADD", K.catalog, pid)
        ops("SADD", K.active, pid)
        if p.get("category"):
            ops("SADD", K.categories, str(p["category"]))
            ops.batch_state.setdefault("category", {})[pid] = str(p["category"])

    def _known_order(self, oid: str, ops: Ops) -> OrderRecord | None:
        """The order as of this point in the batch (None when never seen, or cancelled)."""
        cached = ops.batch_state.get("orders", {})
        known = cached[oid] if oid in cached else self.redis.hget(K.orders, oid)
        if not known:
            return None
        return OrderRecord.from_json(known if isinstance(known, dict) else json.loads(known))

    def _move(self, pid: str, day: str, units: float, revenue: float, ops: Ops) -> None:
        """Add ``units`` and ``revenue`` (negative: taken back) to the product's and its category's day."""
        category = self._category(pid, ops)
        for kind, target in [("p", pid)] + ([("c", category)] if category else []):
            if units:
                ops("HINCRBYFLOAT", K.units(kind, target), day, units)
            if revenue:
                ops("HINCRBYFLOAT", K.revenue(kind, target), day, revenue)
            ops("SADD", K.dirty, f"{kind}|{target}")

    def _order(self, event: Event, ops: Ops) -> None:
        p = event.payload
        oid = str(p["order_id"])
        user = str(p.get("user_id") or "")
        lines = p.get("lines") or []
        if not isinstance(lines, list):
            raise InvalidEvent("lines must be a list")
        if event.action in ("returned", "refunded"):
            self._taken_back(event, oid, lines, ops)
            return
        if event.action not in ("created", "cancelled"):
            return
        sign = 1 if event.action == "created" else -1
        # A cancellation moves the sale out of the day it was made, not the day it was cancelled.
        day = day_of(event.occurred_at)
        known = self._known_order(oid, ops) if event.action == "cancelled" else None
        if known is not None and known.cancelled:
            return  # cancelled before: its lines already left the series
        if known is not None:
            day = datetime.fromtimestamp(known.at, UTC).date().isoformat()
            if not lines:  # a cancellation that does not repeat the lines cancels them all
                lines = [{"product_id": pid, "quantity": q, "unit_price": price}
                         for pid, (q, price) in known.lines.items()]
        for line in lines:
            pid = str(line["product_id"])
            qty = float(line.get("quantity", 1) or 1)
            price = float(line.get("unit_price", 0) or 0)
            if qty <= 0:
                raise InvalidEvent(f"line of {pid}: quantity must be positive")
            self._move(pid, day, sign * qty, sign * qty * price, ops)
            ops("SADD", K.dirty, "stock|" + pid)
        self.stock.apply(event, ops)
        if event.action == "created" and user:
            order = OrderRecord.created(user, event.occurred_at.timestamp(), float(p.get("total", 0) or 0),
                                        str(p.get("currency", "")), lines).to_json()
            with privacy.guarded(ops, self.group, user):
                ops("HSET", K.orders, oid, json.dumps(order, separators=(",", ":")))
                ops("SADD", K.buyers, user)
                ops("SADD", K.user_orders(user), oid)
            ops.batch_state.setdefault("orders", {})[oid] = order
        elif event.action == "cancelled" and known is not None:
            # Kept as a tombstone, so a second cancellation or a refund counts nothing; it stays in the
            # shopper's order index, so erasing the shopper erases it too.
            known.cancelled = True
            record = known.to_json()
            with privacy.guarded(ops, self.group, known.user):
                ops("HSET", K.orders, oid, json.dumps(record, separators=(",", ":")))
            ops.batch_state.setdefault("orders", {})[oid] = record

    def _taken_back(self, event: Event, oid: str, lines: list, ops: Ops) -> None:
        """A return or refund: units and value leave the sale's day; the order's net value falls
        (core/returns.py). An order never seen (before the history, or cancelled) changes nothing."""
        order = self._known_order(oid, ops)
        if order is None or order.cancelled:
            return
        if event.action == "returned":
            back = apply_return(order, lines)
        else:
            back = apply_refund(order, float(event.payload.get("total", 0) or 0), lines)
        day = datetime.fromtimestamp(order.at, UTC).date().isoformat()
        for pid in sorted(set(back.units) | set(back.revenue)):
            self._move(pid, day, -back.units.get(pid, 0.0), -back.revenue.get(pid, 0.0), ops)
        record = order.to_json()
        with privacy.guarded(ops, self.group, order.user):
            ops("HSET", K.orders, oid, json.dumps(record, separators=(",", ":")))
        ops.batch_state.setdefault("orders", {})[oid] = record

    def _interaction(self, event: Event, ops: Ops) -> None:
        p = event.payload
        user = str(p["user_id"])
        action = event.action
        day = day_of(event.occurred_at)
        pid = str(p.get("product_id") or "")
        category = (self._category(pid, ops) or "unknown") if pid else ""
        with privacy.guarded(ops, self.group, user):
            ops("HINCRBY", K.user_counts(user), action, 1)
            if pid:
                ops("HINCRBY", K.user_categories(user), f"{action}|{category}", 1)
            if pid and action in FUNNEL_ACTIONS:
                ops("SADD", K.funnel_users(day, action, category), user)
                ops("SADD", K.user_funnel(user), K.funnel_users(day, action, category))
        if not pid:
            return
        if action == "view":
            ops("HINCRBYFLOAT", K.views(pid), day, 1)
            if p.get("price"):
                ops("HINCRBYFLOAT", K.view_price(pid), day, float(p["price"]))
        if action in FUNNEL_ACTIONS:
            ops("SADD", K.days, day)
            ops("HINCRBY", K.funnel_counts(day), f"{action}|{category}", 1)

    def erase_user(self, user: str, ops: Ops) -> None:
        """Remove the shopper's analytics rows; daily sales, views and event counts are aggregates and stay."""
        ops("HDELMEMBERS", K.user_orders(user), K.orders)
        ops("SREMFROMMEMBERS", K.user_funnel(user), user)
        ops("SREM", K.buyers, user)
        ops("DEL", K.user_orders(user), K.user_funnel(user), K.user_counts(user), K.user_categories(user))
