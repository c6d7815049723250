"""An order's life in the demo shop: created at checkout, then paid, cancelled, shipped, delivered, returned
or refunded, and rated after delivery. Events after the end of the history are dropped by the emitter."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shopai.demo.catalog import CURRENCY
from shopai.demo.emitter import Clock, Emitter
from shopai.demo.people import personal_details

CARRIERS = ("SF Express", "ZTO Express", "YTO Express", "JD Logistics", "EMS")
CANCEL_REASONS = ("changed_mind", "found_cheaper", "ordered_by_mistake", "delivery_too_slow")
RETURN_REASONS = ("wrong_size", "not_as_described", "defective", "changed_mind", "colour_differs")


def tracking_number(carrier: str, r: random.Random) -> str:
    def digits(n: int) -> str:
        return "".join(str(r.randrange(10)) for _ in range(n))

    if carrier == "SF Express":
        return "SF" + digits(13)
    if carrier == "ZTO Express":
        return "7" + digits(13)
    if carrier == "YTO Express":
        return "YT" + digits(13)
    if carrier == "JD Logistics":
        return "JDV" + digits(12)
    return "E" + digits(9) + "CN"


@dataclass
class Order:
    """One checkout that bought something: ``lines`` are (product index, quantity, hidden match)."""

    order_id: str
    user_id: str
    placed_at: int
    lines: list[tuple[int, int, float]]
    product_ids: list[str]
    prices: list[float]  # each product's price that day

    def __post_init__(self) -> None:
        self._lines = [(self.product_ids[p], q, self.prices[p]) for p, q, _ in self.lines]
        self._total = round(sum(q * pr for _, q, pr in self._lines), 2)

    def payload(self, **extra) -> dict:
        out = {
            "order_id": self.order_id,
            "user_id": self.user_id,
            "lines": [{"product_id": a, "quantity": q, "unit_price": pr} for a, q, pr in self._lines],
            "total": self._total,
            "currency": CURRENCY,
        }
        out.update(extra)
        return out


@dataclass
class OrderLifecycle:
    """What happens to every order after checkout. ``back_to_stock(t, product, quantity)`` returns the
    units of an order cancelled at ``t``; ``r`` is the simulation's scalar random stream."""

    emitter: Emitter
    orders: list  # the order.* stream
    interactions: list  # the interaction.* stream (ratings)
    r: random.Random
    clock: Clock
    quality: np.ndarray
    return_rate: float
    back_to_stock: Callable[[int, int, int], None]

    def run(self, order: Order) -> None:
        em, r = self.emitter, self.r
        ts = order.placed_at
        created = order.payload(**personal_details(em.seed, order.user_id))  # sealed by the publisher
        em.make(self.orders, "order.created", ts, created)
        x = r.random()
        if x < 0.015:  # never paid
            t = ts + r.randint(1800, 3600)
            em.make(self.orders, "order.cancelled", t, order.payload(reason="payment_timeout"))
            self._restock(t, order)
            return
        paid = ts + r.randint(20, 900)
        em.make(self.orders, "order.paid", paid, order.payload())
        if x < 0.03:  # cancelled after payment, before shipping
            t = paid + r.randint(600, 36000)
            reason = CANCEL_REASONS[r.randrange(len(CANCEL_REASONS))]
            em.make(self.orders, "order.cancelled", t, order.payload(reason=reason))
            em.make(self.orders, "order.refunded", t + r.randint(1800, 86400), order.payload(reason=reason))
            self._restock(t, order)
            return
        delivered, returned = self._deliver(order, paid)
        self._ratings(order, delivered, returned)

    def _restock(self, t: int, order: Order) -> None:
        if t <= self.emitter.end_ts:
            for p, q, _ in order.lines:
                self.back_to_stock(t, p, q)

    def _deliver(self, order: Order, paid: int) -> tuple[int, bool]:
        """Shipped, delivered and perhaps returned (more often when the match is poor); returns the
        delivery time and whether the order came back."""
        em, r = self.emitter, self.r
        carrier = CARRIERS[r.randrange(len(CARRIERS))]
        tracking = tracking_number(carrier, r)
        shipped = paid + r.randint(4 * 3600, 48 * 3600)
        expected = self.clock.date_of(shipped + r.randint(2, 4) * 86400)
        ship_info = {"carrier": carrier, "tracking_no": tracking, "expected_delivery": expected}
        em.make(self.orders, "order.shipped", shipped, order.payload(**ship_info))
        delivered = shipped + r.randint(20 * 3600, 5 * 86400)
        em.make(self.orders, "order.delivered", delivered, order.payload(**ship_info))
        mean_match = sum(m for _, _, m in order.lines) / len(order.lines)
        returned = r.random() < self.return_rate * (0.5 + 1.2 * (1.0 - mean_match))
        if returned:
            reason = RETURN_REASONS[r.randrange(len(RETURN_REASONS))]
            t = delivered + r.randint(2 * 86400, 14 * 86400)
            em.make(self.orders, "order.returned", t, order.payload(reason=reason, **ship_info))
            refunded = t + r.randint(86400, 4 * 86400)
            em.make(self.orders, "order.refunded", refunded, order.payload(reason=reason))
        return delivered, returned

    def _ratings(self, order: Order, delivered: int, returned: bool) -> None:
        r = self.r
        for p, _q, m in order.lines:
            if r.random() < (0.45 if returned else 0.3):
                value = 1.8 + 3.0 * m + 0.6 * float(self.quality[p]) + r.gauss(0.0, 0.6)
                value -= 1.2 if returned else 0.0
                value = int(min(5, max(1, round(value))))
                self.emitter.make(
                    self.interactions,
                    "interaction.rating",
                    delivered + r.randint(3600, 10 * 86400),
                    {"user_id": order.user_id, "product_id": order.product_ids[p],
                     "session_id": f"R-{order.order_id}", "rating": value},
                )
