"""Returns and refunds take sales back (issue #20): pure bookkeeping of one order, no I/O.

An order's record (``OrderRecord``, kept as JSON in the forecasting store) remembers its lines, what was
returned of each and how much was refunded. Two rules keep the figures honest:

- **A return takes units and their value back**, line by line, never more than was sold (a second return
  of the same pizza is capped at what is left). A return without lines returns everything left.
- **A refund takes money back** (its ``total``, else its lines' value, else everything left), never more
  than the order was worth. The money a shop gives back for returned goods is the same money twice
  reported (the demo shop and most order systems send ``order.returned`` then ``order.refunded``), so the
  order's value falls by ``max(returned value, refunded value)``, not by their sum: a return then its
  refund takes the value back once, a refund without a return (goods kept: a damaged parcel, a goodwill
  credit) takes only money.

Each step answers what leaves which product's series on the sale's day (units, revenue) and the order's
net value for RFM, cohorts and customer value; an order worth nothing any more (all returned or refunded)
is no longer an order there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

EPSILON = 1e-9


@dataclass
class OrderRecord:
    user: str
    at: float  # epoch seconds of the sale
    gross: float  # the order's total when created
    currency: str = ""
    lines: dict[str, tuple[float, float]] = field(default_factory=dict)  # product -> (quantity, unit price)
    returned: dict[str, float] = field(default_factory=dict)  # product -> quantity returned
    returned_value: float = 0.0
    refunded_value: float = 0.0
    cancelled: bool = False  # cancelled: its lines already left the series; later events change nothing

    @property
    def taken_back(self) -> float:
        """The value no longer counted as sold."""
        return min(self.gross, max(self.returned_value, self.refunded_value))

    @property
    def net(self) -> float:
        return max(self.gross - self.taken_back, 0.0)

    @property
    def void(self) -> bool:
        """Nothing of it counts any more: cancelled, everything returned, or its whole value refunded."""
        if self.cancelled:
            return True
        all_back = bool(self.lines) and all(self.returned.get(p, 0.0) >= q - EPSILON
                                            for p, (q, _) in self.lines.items())
        return all_back or (self.gross > 0 and self.net <= EPSILON)

    def to_json(self) -> dict[str, Any]:
        """The stored form: ``u``, ``t``, ``total`` (net) and ``cur`` as before, plus the bookkeeping."""
        out: dict[str, Any] = {"u": self.user, "t": self.at, "total": round(self.net, 6), "cur": self.currency,
                               "gross": self.gross, "l": [[p, q, price] for p, (q, price) in self.lines.items()]}
        if self.returned:
            out["ret"] = self.returned
        if self.returned_value:
            out["rv"] = self.returned_value
        if self.refunded_value:
            out["rf"] = self.refunded_value
        if self.cancelled:
            out["cancelled"] = True
        if self.void:
            out["void"] = True
        return out

    @classmethod
    def from_json(cls, o: Mapping[str, Any]) -> OrderRecord:
        lines = {str(p): (float(q), float(price)) for p, q, price in o.get("l", [])}
        return cls(str(o["u"]), float(o["t"]), float(o.get("gross", o.get("total", 0.0))), str(o.get("cur", "")),
                   lines, {str(k): float(v) for k, v in (o.get("ret") or {}).items()}, float(o.get("rv", 0.0)),
                   float(o.get("rf", 0.0)), bool(o.get("cancelled", False)))

    @classmethod
    def created(cls, user: str, at: float, total: float, currency: str,
                lines: Iterable[Mapping[str, Any]]) -> OrderRecord:
        merged: dict[str, tuple[float, float]] = {}
        for line in lines:
            pid, qty, price = str(line["product_id"]), float(line.get("quantity", 1) or 1), \
                float(line.get("unit_price", 0) or 0)
            old_qty, _ = merged.get(pid, (0.0, price))
            merged[pid] = (old_qty + qty, price)
        gross = float(total) if total else sum(q * p for q, p in merged.values())
        return cls(user, at, gross, currency, merged)


@dataclass(frozen=True)
class TakenBack:
    """What one return or refund removes from each product's sale-day series."""

    units: dict[str, float]
    revenue: dict[str, float]


def _spread(amount: float, weights: Mapping[str, float]) -> dict[str, float]:
    total = sum(w for w in weights.values() if w > 0)
    if amount <= EPSILON or total <= EPSILON:
        return {}
    return {p: amount * w / total for p, w in weights.items() if w > 0}


def apply_return(order: OrderRecord, lines: Iterable[Mapping[str, Any]] | None) -> TakenBack:
    """Book a return (``lines`` as the event carries them; none = everything not returned yet)."""
    before = order.taken_back
    wanted: dict[str, float] = {}
    for line in lines or ():
        pid = str(line["product_id"])
        wanted[pid] = wanted.get(pid, 0.0) + float(line.get("quantity", 1) or 1)
    if not wanted:
        wanted = {p: q for p, (q, _) in order.lines.items()}
    units: dict[str, float] = {}
    value: dict[str, float] = {}
    for pid, qty in wanted.items():
        sold, price = order.lines.get(pid, (0.0, 0.0))
        qty = min(qty, sold - order.returned.get(pid, 0.0))
        if qty <= EPSILON:
            continue
        order.returned[pid] = order.returned.get(pid, 0.0) + qty
        units[pid], value[pid] = qty, qty * price
    order.returned_value += sum(value.values())
    return TakenBack(units, _spread(order.taken_back - before, value))


def apply_refund(order: OrderRecord, total: float, lines: Iterable[Mapping[str, Any]] | None) -> TakenBack:
    """Book a refund of ``total`` (or of ``lines``' value, or of everything left when neither is given)."""
    before = order.taken_back
    lines = list(lines or ())
    if total > 0:
        amount = total
    elif lines:
        amount = sum(float(x.get("quantity", 1) or 1) * float(x.get("unit_price", 0) or 0) for x in lines)
    else:
        amount = order.gross - order.refunded_value
    order.refunded_value = min(order.gross, order.refunded_value + max(amount, 0.0))
    # The money leaves the products it was paid for: the refund's lines when it names them, else every line
    # by the value still counted.
    named = {str(x["product_id"]) for x in lines}
    weights = {p: (q - order.returned.get(p, 0.0)) * price for p, (q, price) in order.lines.items()
               if not named or p in named}
    if not any(w > 0 for w in weights.values()):
        weights = {p: q * price for p, (q, price) in order.lines.items()}
    return TakenBack({}, _spread(order.taken_back - before, weights))
