"""Reading the demo shop's hidden truth back: how well does a recommender recover each user's tastes?

The simulation draws every shopper's interest in every product from a hidden *match*
(``truth["model"]["match"]``): category preference, price band and brand affinity. A
recommender never sees it; benchmarks and tests score recommendations against it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


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
