"""Recommender logic with no I/O: event weights, time decay, top k (reasons: ``reasons``; choosing items:
``selection``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

# How much one interaction says about interest; a purchase says the most.
EVENT_WEIGHTS: Mapping[str, float] = {
    "view": 1.0,
    "click": 2.0,
    "add_to_cart": 4.0,
    "purchase": 8.0,
}
# Any rating says the shopper has the product (they consumed it, like a view at least): it is in their row, so
# the models learn from what they rated too; 4 and 5 count as interest. Popularity and trending count only the
# ratings of interest (POPULAR_RATINGS): a 1-star rating makes nothing popular.
RATING_WEIGHTS: Mapping[int, float] = {1: 1.0, 2: 1.0, 3: 1.0, 4: 2.0, 5: 4.0}
POPULAR_RATINGS = frozenset({4, 5})

# Trending scores are stored as weight * 2**((t - epoch) / half_life): the ranking
# at any moment equals that of weights decayed to that moment, with no rewrite of
# old scores. Doubles hold this for ~19 years past the epoch with a 7-day half-life.
TREND_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
TREND_HALF_LIFE_DAYS = 7.0

# The strategy names, k's bounds and the Filters rules are the recommender's contract with the gateway:
# services/common/recommendations.py.


def interaction_weight(action: str, payload: Mapping[str, object]) -> float:
    """Weight of one interaction event in the shopper's row (0 for searches)."""
    if action == "rating":
        return RATING_WEIGHTS.get(int(payload.get("rating", 0) or 0), 0.0)  # type: ignore[arg-type]
    return EVENT_WEIGHTS.get(action, 0.0)


def popularity_weight(action: str, payload: Mapping[str, object]) -> float:
    """What one interaction adds to the product's popularity and trend: its row weight, but nothing for a
    rating below 4."""
    if action == "rating" and int(payload.get("rating", 0) or 0) not in POPULAR_RATINGS:  # type: ignore[call-overload]
        return 0.0
    return interaction_weight(action, payload)


def trend_score(weight: float, occurred_at: datetime, half_life_days: float = TREND_HALF_LIFE_DAYS) -> float:
    """The stored trending increment of an interaction that happened at ``occurred_at``."""
    age = (occurred_at - TREND_EPOCH).total_seconds() / 86400.0
    return weight * 2.0 ** (age / half_life_days)


def decayed_to(stored: float, now: datetime, half_life_days: float = TREND_HALF_LIFE_DAYS) -> float:
    """A stored trending score expressed as decayed weight at ``now``."""
    age = (now - TREND_EPOCH).total_seconds() / 86400.0
    return stored * 2.0 ** (-age / half_life_days)


def top_k(scored: Iterable[tuple[str, float]], k: int, exclude: set[str] | frozenset[str] = frozenset()) -> list[tuple[str, float]]:
    """The k best (product, score) pairs not in ``exclude``; input must already be best-first."""
    out: list[tuple[str, float]] = []
    for product_id, score in scored:
        if product_id in exclude:
            continue
        out.append((product_id, score))
        if len(out) == k:
            break
    return out
