"""The candidate stage: the few hundred products worth re-ranking for one shopper in a large catalogue.

Below ``EXHAUSTIVE_BELOW`` products the hybrid scores every product per request (10-30 ms at 2,000
products) and this stage is not used. From there on the hybrid re-ranks only the union of:
- the best products by ALS for the shopper (their folded-in factors as the query of an inner-product
  index over the ALS product factors: ``services/common/ann.py``, exact below ``EXACT_BELOW``
  products, HNSW from there),
- the neighbours (item KNN) of what the shopper looked at most recently,
- the most popular products,
- the best products by text among the cold ones: those nobody had touched at training (their ALS
  factors say nothing) and those added since (they have none).
If the rules of the request (category, stock, exclusions) leave fewer than k of them, the caller
asks again with four times as many candidates, up to a plain exhaustive pass (``CandidatePolicy``).

The index is built with the model (training) and its faiss structure again on load.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD

from services.common.ann import InnerProductIndex, kind_for

EXHAUSTIVE_BELOW = 20_000
# The ALS index stays an exact scan up to here: 0.3 ms of one core at 50,000 x 16 factors (~6 ms at a million),
# while HNSW found 42 % of the exact top 150 of those factors at 50,000 (make bench-recommender SECTION=scale).
EXACT_BELOW = 1_000_000
CANDIDATES = 300
WIDEN = 4
# Products scored beside the candidates to estimate each component's mean and spread (standardising).
SAMPLE = 256
TEXT_DIMENSIONS = 64
TEXT_FIT_PRODUCTS = 5000
RECENT_ITEMS = 20  # the shopper's products whose neighbours are candidates
SEED = 7
T = TypeVar("T")


@dataclass(frozen=True)
class CandidatePolicy:
    """When a request goes through the candidate stage, and with how many candidates first."""

    exhaustive_below: int = EXHAUSTIVE_BELOW
    count: int = CANDIDATES

    def sizes(self, n_products: int) -> list[int | None]:
        """The candidate counts to try in turn, each ``WIDEN`` times the last, then None (every
        product); only None below ``exhaustive_below`` products or with a count of 0."""
        if n_products < self.exhaustive_below or self.count <= 0:
            return [None]
        out: list[int | None] = []
        n = self.count
        while n * 2 < n_products:
            out.append(n)
            n *= WIDEN
        return [*out, None]


def choose_widening(scored: Callable[[int | None], tuple[np.ndarray, T]], choose: Callable[[np.ndarray], list],
                    k: int, sizes: Sequence[int | None]) -> tuple[list, T]:
    """The k products ``choose`` keeps (the request's rules) from the scores of the first candidate count
    in ``sizes`` that leaves k of them (the last, None, scores every product), and what ``scored`` gave
    with those scores."""
    chosen: list = []
    extra = None
    for size in sizes:
        scores, extra = scored(size)
        chosen = choose(scores)
        if len(chosen) >= k:
            break
    return chosen, extra  # type: ignore[return-value]


class CandidateIndex:
    """The inner-product index over the ALS factors of the products shoppers touched, the cold
    products, the popularity order and the standardising sample, for one trained hybrid."""

    def __init__(self, item_factors: np.ndarray, cold: np.ndarray, popular_order: np.ndarray,
                 exact_below: int = EXACT_BELOW) -> None:
        n_items = len(item_factors)
        self.cold = np.asarray(cold, dtype=np.int64)
        self.warm = np.setdiff1d(np.arange(n_items), self.cold)
        self.ann = InnerProductIndex(item_factors[self.warm], kind_for(len(self.warm), exact_below))
        self.popular_order = np.asarray(popular_order, dtype=np.int64)
        self.sample = np.sort(np.random.default_rng(SEED).choice(n_items, min(SAMPLE, n_items), replace=False))
        self.text_vectors: np.ndarray | None = None  # every trained product's text, reduced (with_texts)
        self.cold_index: InnerProductIndex | None = None

    def with_texts(self, content_items: sp.csr_matrix | None, exact_below: int = EXACT_BELOW) -> CandidateIndex:
        """Index the cold products by text: their TF-IDF vectors reduced to ``TEXT_DIMENSIONS`` (truncated
        SVD fitted on at most ``TEXT_FIT_PRODUCTS`` of them); a shopper's query is the weighted sum of their
        products' reduced vectors, so it ranks like the content model's profile, approximately."""
        n_trained = len(self.cold) + len(self.warm)
        if content_items is None or not len(self.cold) or content_items.shape[1] <= TEXT_DIMENSIONS:
            return self
        items = sp.csr_matrix(content_items[:n_trained])
        rng = np.random.default_rng(SEED)
        fit_on = items[np.sort(rng.choice(n_trained, min(TEXT_FIT_PRODUCTS, n_trained), replace=False))]
        svd = TruncatedSVD(TEXT_DIMENSIONS, random_state=SEED).fit(fit_on)
        self.text_vectors = np.asarray(items @ svd.components_.T, dtype=np.float32)
        self.cold_index = InnerProductIndex(self.text_vectors[self.cold], kind_for(len(self.cold), exact_below))
        return self

    @classmethod
    def for_hybrid(cls, components: dict, exact_below: int = EXACT_BELOW) -> CandidateIndex | None:
        """The index of a fitted hybrid; None without ALS (such a model is always scored exhaustively)."""
        als = components.get("als")
        if als is None or getattr(als, "item_factors", None) is None:
            return None
        factors = np.asarray(als.item_factors, dtype=np.float32)
        popular = components.get("popular")
        if popular is not None and popular.counts is not None:
            counts = np.asarray(popular.counts, dtype=np.float64)[: len(factors)]
            cold = np.flatnonzero(counts <= 0)
            order = np.argsort(-counts, kind="stable")
        else:
            cold = np.flatnonzero(np.linalg.norm(factors, axis=1) <= 1e-8)
            order = np.zeros(0, dtype=np.int64)
        content = components.get("content")
        return cls(factors, cold, order, exact_below).with_texts(None if content is None else content.items,
                                                                 exact_below)

    def candidates(self, components: dict, row: sp.csr_matrix, n: int, n_products: int,
                   recent: sp.csr_matrix | None = None) -> np.ndarray:
        """About ``n`` product indices (of ``n_products``: trained ones, then those added since) for the
        shopper of ``row``, ascending, besides the row's own products, which may be among them (each
        source asks for as many more: the caller leaves them out, or not: "buy again"). ``recent``:
        the products they looked at last, weighted (default: the row's ``RECENT_ITEMS`` heaviest)."""
        row = sp.csr_matrix(row)
        seen = row.indices
        found = [self._by_factors(components["als"], row, n // 2 + len(seen)),
                 self._neighbours(components, row if recent is None else recent, n // 4, seen),
                 self.popular_order[: n // 8 + len(seen)],
                 self._cold(components, row, n // 8, n_products)]
        return np.unique(np.concatenate(found).astype(np.int64))

    def _by_factors(self, als, row: sp.csr_matrix, n: int) -> np.ndarray:
        query = np.asarray(als.user_factors(row), dtype=np.float32)
        _, rows = self.ann.search(query, n)
        return self.warm[rows[0][rows[0] >= 0]]

    def _neighbours(self, components: dict, recent: sp.csr_matrix, n: int, seen: np.ndarray) -> np.ndarray:
        recent = sp.csr_matrix(recent)
        if recent.nnz > RECENT_ITEMS:
            keep = np.argsort(-recent.data, kind="stable")[:RECENT_ITEMS]
            recent = sp.csr_matrix((recent.data[keep], (np.zeros(len(keep), int), recent.indices[keep])),
                                   shape=recent.shape)
        knn = components.get("item_knn")
        if knn is not None and knn.similarity is not None:
            return knn.neighbours_of(recent[:, : knn.similarity.shape[0]], n + len(seen))
        factors = self.ann.vectors  # no item KNN: products nearest the recent ones' mean ALS factors
        position = np.searchsorted(self.warm, recent.indices)
        known = (position < len(self.warm)) & (self.warm[np.minimum(position, len(self.warm) - 1)] == recent.indices)
        if not known.any():
            return np.zeros(0, dtype=np.int64)
        _, rows = self.ann.search(factors[position[known]].mean(axis=0), n + len(seen))
        return self.warm[rows[0][rows[0] >= 0]]

    def _cold(self, components: dict, row: sp.csr_matrix, n: int, n_products: int) -> np.ndarray:
        """The best cold products by text (all of them when there are few)."""
        n_trained = len(self.cold) + len(self.warm)
        new = np.arange(n_trained, n_products)
        cold = np.concatenate([self.cold, new])
        content = components.get("content")
        if len(cold) <= n or content is None or self.cold_index is None or n <= 0:
            return cold[: max(n, 0)]
        row = sp.csr_matrix(row)
        mine = row.indices < n_trained
        query = row.data[mine].astype(np.float32) @ self.text_vectors[row.indices[mine]]  # only the row's vectors
        _, found = self.cold_index.search(query, n)
        out = self.cold[found[0][found[0] >= 0]]
        if len(new):  # products added since training: few, scored by the content model itself
            scores = content.score_items(row, None, new)[0]
            out = np.concatenate([out, new[np.argsort(-scores, kind="stable")[:n]]])
        return out
