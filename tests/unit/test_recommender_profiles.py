"""Profiles, business filters and explanations: the recommender's pure bookkeeping."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.common.recommendations import Filters
from services.recommender.core import profiles, reasons


def test_recent_entries_round_trip():
    when = datetime(2026, 11, 1, 12, 30, tzinfo=UTC).timestamp()
    item = profiles.parse_recent(profiles.recent_entry("p7", "add_to_cart", when))
    assert (item.product_id, item.action, item.occurred_at.timestamp()) == ("p7", "add_to_cart", when)
    assert profiles.parse_recent("p9").product_id == "p9"  # the older format: a bare id


def test_shares_are_fractions_best_first():
    assert profiles.shares({"bags": 6.0, "coats": 2.0, "shoes": 0.0}) == [("bags", 0.75), ("coats", 0.25)]
    assert profiles.shares({}) == []
    assert len(profiles.shares({str(i): 1.0 for i in range(30)})) == profiles.TOP_NAMES


def test_price_band_prefers_what_was_paid():
    assert profiles.price_band([10.0, 30.0, 20.0], [999.0]) == (10.0, 20.0, 30.0)
    assert profiles.price_band([], [5.0, 7.0]) == (5.0, 6.0, 7.0)
    assert profiles.price_band([], []) is None


def test_purchase_frequency_is_per_30_days_over_at_least_30_days():
    day = 86400.0
    assert profiles.purchase_frequency(6, 0.0, 90 * day) == pytest.approx(2.0)
    assert profiles.purchase_frequency(3, 0.0, 2 * day) == pytest.approx(3.0)  # a short span counts as 30 days
    assert profiles.purchase_frequency(0, 0.0, 90 * day) == 0.0


def test_conversion_rate():
    assert profiles.conversion_rate({"view": 40, "purchase": 2}) == pytest.approx(0.05)
    assert profiles.conversion_rate({"purchase": 2}) == 0.0


def test_filters_apply_category_price_and_exclusions():
    f = Filters(exclude={"p1"}, category="bags", min_price=10, max_price=100)
    assert not f.allows("p1", {"category": "bags", "price": "50"})
    assert f.allows("p2", {"category": "bags", "price": "50"})
    assert not f.allows("p2", {"category": "coats", "price": "50"})
    assert not f.allows("p2", {"category": "bags", "price": "5"})
    assert not f.allows("p2", {"category": "bags", "price": "150"})
    assert not f.allows("p2", None), "a product without details cannot be shown to match a filter"
    assert Filters(exclude_categories={"coats"}).allows("p3", {"category": "bags", "price": "1"})
    assert not Filters(exclude_categories={"coats"}).allows("p3", {"category": "coats", "price": "1"})
    assert Filters().allows("p4", None), "no rule needs details"


@pytest.mark.parametrize("lo, hi", [(-1, None), (None, -2), (50, 10)])
def test_filters_refuse_impossible_prices(lo, hi):
    with pytest.raises(ValueError):
        Filters(min_price=lo, max_price=hi)


def test_reasons_read_like_a_shop():
    assert reasons.because_reason("Nordwind Red T-shirt", "purchase") == "because you bought Nordwind Red T-shirt"
    assert reasons.because_reason("X", "view") == "because you viewed X"
    assert reasons.component_reason("user_knn") == "popular with shoppers like you"
    assert reasons.component_reason("popular", "bags") == "popular in bags"
