"""User and item profiles: pure functions over plain data (the reasons are in ``reasons``; the business
filters are the gateway's too: services/common/recommendations.py ``Filters``)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
