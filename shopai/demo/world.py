"""The simulated shop's state, one dataclass per set-up phase of ``ShopSimulation``: the calendar, the
products, their prices and promotions, the shoppers and their hidden tastes, and the stock. Arrays are
indexed by product position (``p``), user position (``u``) and day of the history (``d``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np

from shopai.demo.catalog import CatalogArrays
from shopai.demo.model import BRAND_LOGIT_WEIGHT


@dataclass
class Calendar:
    start: date  # first day of the history
    end: date  # last day
    dates: list[date]  # every day, start..end
    start_ts: int  # Unix seconds of the first day's midnight
    end_ts: int  # last second of the history
    day_of_year: np.ndarray  # float per day
    weekday: np.ndarray  # 0 = Monday, per day

    @property
    def days(self) -> int:
        return len(self.dates)


@dataclass
class Products:
    catalog: CatalogArrays  # what the catalog says (ids, category, brand, colour, material, prices, payloads)
    late: np.ndarray  # bool: launched during the history (cold start)
    material: np.ndarray  # int, index into sorted(MATERIALS)
    z_price: np.ndarray  # log(base price / category reference price)
    quality: np.ndarray  # hidden, adds to every shopper's interest
    elasticity: np.ndarray  # hidden price elasticity of demand
    lead_time: np.ndarray  # planned restock lead time, days
    cover_days: np.ndarray  # days of demand a restock covers
    launch_day: np.ndarray  # 0 = in the catalog from the start
    remove_day: np.ndarray  # days + 1 = never removed
    removed: np.ndarray  # positions of the products removed during the history, sorted
    appeal: np.ndarray  # hidden, -APPEAL_EXPONENT * log(rank): adds to every shopper's interest (hits)


@dataclass
class Prices:
    list_price: np.ndarray  # products x days
    steps: dict[int, list[int]]  # day -> products whose list price changes that day
    history: list[list[tuple[int, float]]]  # per product: (day, new list price), the launch first
    promotions: list[dict] = field(default_factory=list)  # windows (model.promo_windows) + product_ids
    traffic_boost: np.ndarray | None = None  # per day, from the promotions
    effective: np.ndarray | None = None  # products x days: what the shopper pays (list price - discount)


@dataclass
class Population:
    user_ids: list[str]
    category_pref: np.ndarray  # users x categories, rows sum to 1
    tier_names: list[str]
    tier: np.ndarray  # index into tier_names: the user's price tier
    band_mu: np.ndarray  # log centre of the user's price band (relative to the category reference)
    band_w: np.ndarray  # log half-width of the band
    brand_affinity: np.ndarray  # users x brands, 0 for brands the user does not care about
    activity: np.ndarray  # relative rate of sessions
    sensitivity: np.ndarray  # multiplies the products' price elasticity
    signup_day: np.ndarray
    language: np.ndarray  # "zh" or "en"


@dataclass
class Tastes:
    """The time-independent part of every user's interest in every product: ``rows(users)``."""

    log_category_pref: np.ndarray  # users x categories
    brand_affinity: np.ndarray  # users x brands
    band_mu: np.ndarray  # per user
    band_w: np.ndarray  # per user
    category: np.ndarray  # per product
    brand: np.ndarray  # per product
    z_price: np.ndarray  # per product
    quality: np.ndarray  # per product
    appeal: np.ndarray  # per product
    category_match: np.ndarray  # users x categories: sqrt(pref / max pref), the match's category factor

    def rows(self, users: np.ndarray) -> np.ndarray:
        """users x products logits (float32): category + brand + price band + quality + appeal, summed in
        float64 in that order (in place: the same values as the plain expression, at half the time)."""
        price_term = np.empty((len(users), len(self.category)))
        np.subtract(self.z_price[None, :], self.band_mu[users, None], out=price_term)
        np.square(price_term, out=price_term)
        np.negative(price_term, out=price_term)
        np.divide(price_term, 2 * self.band_w[users, None] ** 2, out=price_term)
        np.maximum(price_term, -8.0, out=price_term)
        logits = self.log_category_pref[users].take(self.category, axis=1)
        brand = self.brand_affinity[users].take(self.brand, axis=1)
        if BRAND_LOGIT_WEIGHT != 1.0:
            brand *= BRAND_LOGIT_WEIGHT
        logits += brand
        del brand
        logits += price_term
        del price_term
        logits += self.quality[None, :]
        logits += self.appeal[None, :]
        return logits.astype(np.float32)


@dataclass
class Stock:
    on_hand: np.ndarray
    demand: np.ndarray  # EWMA of units sold per day (starts at a rough estimate)
    initial: np.ndarray  # on hand at launch
    pending_restock: np.ndarray  # bool: a restock is on its way
    launched: np.ndarray  # bool
    removed: np.ndarray  # bool
    stockout_days: np.ndarray
    units_sold: np.ndarray
    # (ts, seq, kind, product, qty); kind 0 = restock arrival, 1 = cancelled order back to stock
    arrivals: list = field(default_factory=list)
    restocks: int = 0  # restock orders placed (their seq is -restocks)
