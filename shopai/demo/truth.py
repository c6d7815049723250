"""The demo shop's hidden truth: what the simulation drew (``HiddenTruth``, written next to the events), and
reading it back: how well does a recommender recover each user's tastes?

The simulation draws every shopper's interest in every product from a hidden *match*
(``truth["model"]["match"]``): category preference, price band and brand affinity. A
recommender never sees it; benchmarks and tests score recommendations against it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shopai.demo.catalog import BRAND_NAMES, BRANDS, CATEGORIES, COLOURS, CURRENCY, TIERS
from shopai.demo.model import (
    APPEAL_EXPONENT,
    BUY_P,
    CART_P,
    CLICK_P,
    HOURLY_SHARE,
    Q4_AMPLITUDE,
    Q4_PEAK_DOY,
    Q4_WIDTH_DAYS,
    QTY_P,
    TREND_PER_YEAR,
    WEEKDAYS,
    WEEKLY_FACTORS,
)

if TYPE_CHECKING:
    from shopai.demo.world import Calendar, Population, Prices, Products

MODEL = {
    "view_logit": "log(category_pref) + brand_affinity + price_band_term + quality + appeal + category_season "
    "(+3 category, +1.5 colour, +2 brand, +1 material when a search names them; "
    "+0.8 for 21 days after launch)",
    "appeal": f"-{APPEAL_EXPONENT} log(rank), the ranks a random permutation of 1..n_products (hits)",
    "price_band_term": "max(-8, -(log(base_price/category_reference_price) - log_center)^2 / (2 log_width^2))",
    "match": "sqrt(category_pref / max category_pref) * exp(price_band_term) * (0.6 + 0.2 brand_affinity)",
    "p_click_given_view": f"{CLICK_P[0]} + {CLICK_P[1]} match",
    "price_response": "(price / base_price) ** (elasticity * price_sensitivity); price is what the "
    "shopper sees that day (list price after any promotion discount)",
    "p_cart_given_click": f"min(0.95, ({CART_P[0]} + {CART_P[1]} match) * price_response ** 0.5)",
    "p_purchase_given_cart": f"min(0.95, ({BUY_P[0]} + {BUY_P[1]} match) * price_response ** 0.5)",
    "quantity_probabilities": list(QTY_P),
    "rating": "round(1.8 + 3 match + 0.6 quality + N(0, 0.6) - 1.2 if returned), clipped to 1..5",
    "stock_rule": "on_hand = last inventory.set + inventory.received/adjusted deltas - quantities of "
    "order.created + quantities of order.cancelled (returns are not restocked)",
}


def _r(x: float, nd: int = 4) -> float:
    return round(float(x), nd)


@dataclass
class HiddenTruth:
    """Everything the simulation drew that the events do not say outright; ``to_dict()`` is what
    ``DemoShop.truth`` holds."""

    config: Any  # the DemoShopConfig
    calendar: Calendar
    population: Population
    products: Products
    prices: Prices
    expected_sessions: np.ndarray  # per day, before the Poisson draw
    units_sold: np.ndarray  # per product
    stockout_days: np.ndarray  # per product
    counts: dict[str, int]  # events per type
    views_sampled: int

    def to_dict(self) -> dict:
        cal = self.calendar
        cfg_dict = asdict(self.config)
        cfg_dict["end_date"] = self.config.end_date.isoformat()
        # the mean the simulation used (a config that makes the same shop); sessions_per_user_day folded into it
        cfg_dict["sessions_per_day"] = self.config.mean_sessions_per_day
        del cfg_dict["sessions_per_user_day"]
        return {
            "generator": "shopai.demo",
            "config": cfg_dict,
            "start_date": cal.start.isoformat(),
            "end_date": cal.end.isoformat(),
            "currency": CURRENCY,
            "counts": self.counts,
            "views_sampled": int(self.views_sampled),
            "model": {**MODEL, "quantity_probabilities": list(QTY_P)},  # a copy: the truth is the caller's
            "seasonality": self._seasonality(),
            "promotions": [
                {
                    "name": w["name"],
                    "start": w["start"].isoformat(),
                    "end": w["end"].isoformat(),
                    "discount": w["discount"],
                    "traffic_boost": w["traffic_boost"],
                    "product_ids": w["product_ids"],
                }
                for w in self.prices.promotions
            ],
            "categories": {
                c.slug: {
                    "fashion_mnist_label": c.label,
                    "department": c.department,
                    "name_zh": c.name_zh,
                    "reference_price": c.ref_price,
                }
                for c in CATEGORIES
            },
            "brands": {
                name: {"tier": tier, "price_multiplier": TIERS[tier], "departments": sorted(depts)}
                for name, tier, depts in BRANDS
            },
            "users": self._users(),
            "products": self._products(),
        }

    def _seasonality(self) -> dict:
        start = self.calendar.start.isoformat()
        return {
            "weekly": {WEEKDAYS[i]: _r(WEEKLY_FACTORS[i]) for i in range(7)},
            "hourly_share_utc": [_r(x) for x in HOURLY_SHARE],
            "q4": {"amplitude": Q4_AMPLITUDE, "peak_day_of_year": Q4_PEAK_DOY, "width_days": Q4_WIDTH_DAYS},
            "trend_per_year": TREND_PER_YEAR,
            "category": {
                c.slug: {"log_amplitude": c.season_amplitude, "peak_day_of_year": c.season_peak_doy}
                for c in CATEGORIES
            },
            "expected_sessions": {"start_date": start, "values": [_r(x, 2) for x in self.expected_sessions]},
        }

    def _users(self) -> dict:
        pop, dates = self.population, self.calendar.dates
        users = {}
        for u, uid in enumerate(pop.user_ids):
            aff = pop.brand_affinity
            mu, w = pop.band_mu[u], pop.band_w[u]
            users[uid] = {
                "category_prefs": {c.slug: _r(pop.category_pref[u, i]) for i, c in enumerate(CATEGORIES)},
                "brand_affinity": {BRAND_NAMES[b]: _r(aff[u, b], 3) for b in np.flatnonzero(aff[u])},
                "price_band": {
                    "tier": pop.tier_names[pop.tier[u]],
                    "center": _r(math.exp(mu), 3),
                    "low": _r(math.exp(mu - w), 3),
                    "high": _r(math.exp(mu + w), 3),
                    "log_center": _r(mu),
                    "log_width": _r(w),
                },
                "activity": _r(pop.activity[u]),
                "price_sensitivity": _r(pop.sensitivity[u]),
                "signup_date": dates[int(pop.signup_day[u])].isoformat(),
                "language": str(pop.language[u]),
            }
        return users

    def _products(self) -> dict:
        prod, cat, dates = self.products, self.products.catalog, self.calendar.dates
        days = len(dates)
        products = {}
        for p, pid in enumerate(cat.product_ids):
            c = CATEGORIES[cat.category[p]]
            launch, remove = prod.launch_day[p], prod.remove_day[p]
            products[pid] = {
                "category": c.slug,
                "department": c.department,
                "brand": BRAND_NAMES[cat.brand[p]],
                "colour": COLOURS[cat.colour[p]][0],
                "material": cat.material[p],
                "base_price": float(cat.base_price[p]),
                "cost": float(cat.cost[p]),
                "elasticity": _r(prod.elasticity[p]),
                "quality": _r(prod.quality[p]),
                "appeal": _r(prod.appeal[p]),
                "fashion_mnist_train_index": int(cat.image_index[p]),
                "launched_on": dates[int(launch)].isoformat() if launch > 0 else None,
                "removed_on": dates[int(remove)].isoformat() if remove < days else None,
                "price_history": [
                    {"date": dates[dd].isoformat(), "price": pr} for dd, pr in self.prices.history[p]
                ],
                "restock_lead_time_days": int(prod.lead_time[p]),
                "units_sold": int(self.units_sold[p]),
                "stockout_days": int(self.stockout_days[p]),
            }
        return products


def hidden_match(truth: Mapping, user_ids: Sequence[str], product_ids: Sequence[str]) -> np.ndarray:
    """users x products matrix of the simulation's match in (0, 1]:
    sqrt(category_pref / max category_pref) * exp(price_band_term) * (0.6 + 0.2 brand_affinity)."""
    products = truth["products"]
    reference = {slug: c["reference_price"] for slug, c in truth["categories"].items()}
    categories = [products[p]["category"] for p in product_ids]
    brands = [products[p]["brand"] for p in product_ids]
    z_price = np.array([math.log(products[p]["base_price"] / reference[c]) for p, c in zip(product_ids, categories,
                                                                                           strict=True)])
    out = np.zeros((len(user_ids), len(product_ids)))
    for row, uid in enumerate(user_ids):
        user = truth["users"][uid]
        prefs = user["category_prefs"]
        top = max(prefs.values())
        cat = np.array([math.sqrt(prefs[c] / top) for c in categories])
        band = user["price_band"]
        term = np.maximum(-((z_price - band["log_center"]) ** 2) / (2 * band["log_width"] ** 2), -8.0)
        affinity = np.array([user["brand_affinity"].get(b, 0.0) for b in brands])
        out[row] = cat * np.exp(term) * (0.6 + 0.2 * affinity)
    return out


def taste_ndcg(recommended: Sequence[Sequence[int]], match: np.ndarray, candidates: np.ndarray, k: int = 10) -> float:
    """Mean nDCG@k of each user's recommended product indices with the hidden match as graded gain;
    the ideal is the user's k best-matching *candidates* (a boolean users x products mask: what the
    recommender was allowed to propose)."""
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    values = []
    for row, items in enumerate(recommended):
        gains = match[row][np.asarray(items[:k], dtype=int)] if len(items) else np.array([])
        allowed = np.where(candidates[row], match[row], -np.inf)
        ideal = np.sort(allowed[np.isfinite(allowed)])[::-1][:k]
        idcg = float((ideal * discount[: len(ideal)]).sum())
        if idcg > 0:
            values.append(float((gains * discount[: len(gains)]).sum()) / idcg)
    return float(np.mean(values)) if values else 0.0
