"""The population model the service trains (RFM edges and customer value as of a day) and one customer's
behaviour profile built from their own data and that model."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np

from services.forecasting.core.behaviour.customer_value import CustomerValueModel, repeat_summary
from services.forecasting.core.behaviour.records import (
    EPOCH_ORDINAL,
    Purchase,
    PurchaseLog,
    _as_log,
    _as_utc,
    pseudonymise,
    utc_day,
)
from services.forecasting.core.behaviour.segmentation import (
    _SEGMENT_INDEX,
    SEGMENT_NAMES,
    CustomerRfm,
    QuintileEdges,
    _rfm_arrays,
    segment_of,
)


@dataclass
class BehaviourModel:
    """Population-level state fitted from all purchases (picklable): RFM quintile edges and the fitted
    customer value model, as of the last day of data."""

    as_of: date
    edges: QuintileEdges
    value_model: CustomerValueModel
    customers: int = 0
    segment_counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def fit(cls, purchases: PurchaseLog | Iterable[Purchase | Sequence], as_of: date, *,
            annual_discount_rate: float = 0.0, penalizer: float = 0.0) -> BehaviourModel:
        """Fit from every order up to ``as_of`` (days as the model's time unit)."""
        log = _as_log(purchases)
        agg, recency = _rfm_arrays(log, as_of)
        if agg.codes.size == 0:
            raise ValueError("no purchases on or before as_of")
        edges = QuintileEdges.fit(recency, agg.orders, agg.spend)
        r, f, _ = edges.scores(recency, agg.orders, agg.spend)
        names = np.asarray(SEGMENT_NAMES)[_SEGMENT_INDEX[r - 1, f - 1]]
        counts = {name: int(np.sum(names == name)) for name in SEGMENT_NAMES}
        value = CustomerValueModel(annual_discount_rate=annual_discount_rate, penalizer=penalizer)
        value.fit(repeat_summary(log, as_of))
        return cls(as_of, edges, value, int(agg.codes.size), counts)


@dataclass(frozen=True, slots=True)
class UserProfile:
    pseudonymous_id: str
    rfm: CustomerRfm | None  # user_id holds the pseudonymous id; None without orders
    segment: str  # SEGMENT_NAMES, "" without orders
    repeat_purchase_probability: float  # P(a purchase in the next 90 days)
    predicted_customer_value: float  # expected spend in the next 365 days
    orders: int
    total_spend: float
    average_order_value: float
    first_purchase_at: datetime | None
    last_purchase_at: datetime | None
    avg_days_between_purchases: float  # 0 with fewer than two orders
    event_counts: dict[str, int]
    cart_to_purchase_rate: float  # purchase events / add_to_cart events, 0..1
    favourite_categories: list[str]


def user_profile(user_id: str, orders: Iterable[Purchase | Sequence], model: BehaviourModel, secret: bytes, *,
                 as_of: date, event_counts: Mapping[str, int] | None = None,
                 purchased_categories: Mapping[str, float] | None = None,
                 viewed_categories: Mapping[str, float] | None = None,
                 window_days: float = 90.0, horizon_days: float = 365.0) -> UserProfile | None:
    """One customer's behaviour profile from their own data plus the population's fitted state.

    ``orders``: the user's orders ``(user_id, occurred_at, amount, order_id)`` (the user id field is
    ignored; lines of one order are summed; orders after ``as_of`` are ignored). ``event_counts``:
    interactions per action; ``purchased_categories`` / ``viewed_categories``: counts per category.
    Scores use ``model.edges`` (the population at ``model.as_of``). Returns None when the user has
    neither orders nor events (never seen)."""
    pid = pseudonymise(user_id, secret)
    counts = {str(k): int(v) for k, v in (event_counts or {}).items() if int(v) > 0}
    end = utc_day(as_of)
    merged: dict[str, list] = {}
    for i, rec in enumerate(orders):
        when = _as_utc(rec[1])
        if when.toordinal() - EPOCH_ORDINAL > end:
            continue
        key = str(rec[3]) if len(rec) > 3 and rec[3] else f"#{i}"
        amount = float(rec[2]) if len(rec) > 2 else 0.0
        if key in merged:
            merged[key][1] += amount
            merged[key][0] = min(merged[key][0], when)
        else:
            merged[key] = [when, amount]
    if not merged and not counts:
        return None
    purchased = {str(k): float(v) for k, v in (purchased_categories or {}).items() if v > 0}
    viewed = {str(k): float(v) for k, v in (viewed_categories or {}).items() if v > 0}
    favourites = sorted(set(purchased) | set(viewed), key=lambda c: (-purchased.get(c, 0.0), -viewed.get(c, 0.0), c))
    carts = counts.get("add_to_cart", 0)
    cart_rate = min(1.0, counts.get("purchase", 0) / carts) if carts else 0.0
    if not merged:
        return UserProfile(pid, None, "", 0.0, 0.0, 0, 0.0, 0.0, None, None, 0.0, counts, cart_rate, favourites[:5])
    times = sorted(w for w, _ in merged.values())
    n = len(merged)
    spend = float(sum(a for _, a in merged.values()))
    recency = end - utc_day(times[-1])
    r, f, m = (int(v) for v in model.edges.scores(recency, n, spend))
    segment = segment_of(r, f)
    vm = model.value_model
    summary = repeat_summary(PurchaseLog.from_purchases((pid, w, a) for w, a in merged.values()), as_of,
                             vm.unit_days)
    args = (summary.frequency, summary.recency, summary.age)
    p_buy = float(vm.p_purchase(window_days, *args)[0])
    value = float(vm.customer_value(horizon_days, *args, summary.monetary)[0])
    gap = (times[-1] - times[0]).total_seconds() / 86400.0 / (n - 1) if n > 1 else 0.0
    return UserProfile(
        pseudonymous_id=pid, rfm=CustomerRfm(pid, int(recency), n, spend, r, f, m, segment), segment=segment,
        repeat_purchase_probability=min(1.0, max(0.0, p_buy)), predicted_customer_value=max(0.0, value),
        orders=n, total_spend=spend, average_order_value=spend / n, first_purchase_at=times[0],
        last_purchase_at=times[-1], avg_days_between_purchases=gap, event_counts=counts,
        cart_to_purchase_rate=cart_rate, favourite_categories=favourites[:5])



def visitor_profile(user_id: str, secret: bytes, event_counts: Mapping[str, int],
                    viewed_categories: Mapping[str, int]) -> UserProfile | None:
    """The profile of a user with events but no order, before any customer-value model exists: event
    counts, cart-to-purchase rate and the five most viewed categories (ties in the order given); None
    when there is no event at all (never seen)."""
    if not event_counts:
        return None
    carts = event_counts.get("add_to_cart")
    return UserProfile(
        pseudonymous_id=pseudonymise(user_id, secret), rfm=None, segment="", repeat_purchase_probability=0.0,
        predicted_customer_value=0.0, orders=0, total_spend=0.0, average_order_value=0.0,
        first_purchase_at=None, last_purchase_at=None, avg_days_between_purchases=0.0,
        event_counts={k: v for k, v in event_counts.items() if v > 0},
        cart_to_purchase_rate=min(1.0, event_counts.get("purchase", 0) / carts) if carts else 0.0,
        favourite_categories=sorted(viewed_categories, key=lambda c: -viewed_categories[c])[:5])
