"""User and item profiles, business filters and explanations: pure functions over plain data."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

RECENT_ITEMS_SHOWN = 20
TOP_NAMES = 10
DAYS_PER_PERIOD = 30.0


def recent_entry(product_id: str, action: str, occurred_at: float) -> str:
    """How one interaction is kept in the user's recent list: ``product|action|epoch``."""
    return f"{product_id}|{action}|{occurred_at:.3f}"


@dataclass(frozen=True)
class RecentItem:
    product_id: str
    action: str
    occurred_at: datetime


def parse_recent(entry: str) -> RecentItem:
    """The inverse of ``recent_entry``; a bare product id (older format) reads as a view of unknown time."""
    parts = entry.split("|")
    if len(parts) != 3:
        return RecentItem(entry, "view", datetime.fromtimestamp(0, UTC))
    return RecentItem(parts[0], parts[1], datetime.fromtimestamp(float(parts[2]), UTC))


def shares(weights: Mapping[str, float], top: int = TOP_NAMES) -> list[tuple[str, float]]:
    """The best ``top`` names with their share of the total weight (a list sums to <= 1)."""
    total = sum(w for w in weights.values() if w > 0)
    if total <= 0:
        return []
    ranked = sorted(((n, w / total) for n, w in weights.items() if w > 0), key=lambda x: (-x[1], x[0]))
    return ranked[:top]


def price_band(purchase_prices: Sequence[float], view_prices: Sequence[float]) -> tuple[float, float, float] | None:
    """(min, median, max) of prices paid, or of prices viewed when the user never bought."""
    prices = [p for p in purchase_prices if p > 0] or [p for p in view_prices if p > 0]
    if not prices:
        return None
    return min(prices), statistics.median(prices), max(prices)


def purchase_frequency(purchases: int, first_seen: float | None, last_seen: float | None) -> float:
    """Purchases per 30 days over the span between first and last event (at least 30 days)."""
    if not purchases or first_seen is None or last_seen is None:
        return 0.0
    days = max(DAYS_PER_PERIOD, (last_seen - first_seen) / 86400.0)
    return purchases * DAYS_PER_PERIOD / days


def conversion_rate(counts: Mapping[str, int]) -> float:
    views = counts.get("view", 0)
    return min(1.0, counts.get("purchase", 0) / views) if views else 0.0


@dataclass
class Filters:
    """Business rules applied after scoring (mirrors recommender.proto's Filters)."""

    exclude: set[str] = field(default_factory=set)
    category: str = ""
    exclude_categories: set[str] = field(default_factory=set)
    min_price: float | None = None
    max_price: float | None = None

    def __post_init__(self) -> None:
        if self.min_price is not None and self.min_price < 0 or self.max_price is not None and self.max_price < 0:
            raise ValueError("prices must be >= 0")
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise ValueError("min_price must not exceed max_price")

    @property
    def needs_details(self) -> bool:
        return bool(self.category or self.exclude_categories or self.min_price is not None
                    or self.max_price is not None)

    def allows(self, product_id: str, details: Mapping[str, str] | None) -> bool:
        if product_id in self.exclude:
            return False
        if not self.needs_details:
            return True
        if not details:
            return False  # cannot prove it matches
        category = details.get("category", "")
        if self.category and category != self.category:
            return False
        if category in self.exclude_categories:
            return False
        price = float(details.get("price") or 0.0)
        if self.min_price is not None and price < self.min_price:
            return False
        return self.max_price is None or price <= self.max_price


ACTION_VERBS = {
    "purchase": "bought",
    "add_to_cart": "added to your cart",
    "rating": "rated",
    "click": "looked at",
    "view": "viewed",
}


def because_reason(anchor_title: str, anchor_action: str) -> str:
    """"because you bought Nordwind Red T-shirt"."""
    return f"because you {ACTION_VERBS.get(anchor_action, 'viewed')} {anchor_title}"


def component_reason(component: str, category: str = "") -> str:
    """The explanation when no single item of the user's history is the cause."""
    where = f" in {category}" if category else ""
    return {
        "user_knn": "popular with shoppers like you",
        "als": f"matches your taste{where}",
        "bpr": f"matches your taste{where}",
        "content": f"similar to what you viewed{where}",
        "popular": f"popular{where}" if category else "popular in the shop",
        "trending": f"trending{where} this week",
    }.get(component, f"recommended for you{where}")
