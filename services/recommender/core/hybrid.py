"""The blend of all recommenders, with weights learnt on held-out interactions, never hand-set.

Components score on different scales (similarity sums, factor dot products, counts), so each
one's scores are standardised per shopper before weighting: a weight then says how much a
component's opinion counts, not how large its numbers happen to be.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from services.recommender.core.evaluation import ranking_metrics, stratified_split

# Learning weights caches every component's dense scores for the validation shoppers: on a large
# shop a seeded sample of them, at most SAMPLE_USERS and at most CACHE_CELLS scores per component.
SAMPLE_USERS = 3000
CACHE_CELLS = 25_000_000


class Model(Protocol):
    """What every recommender offers; ``rows`` are shoppers' current interaction rows (possibly
    newer than training, or of shoppers unseen in training), scores higher = better, seen
    products included (the caller excludes them)."""

    name: str

    def fit(self, train: sp.csr_matrix) -> Model: ...

    def score(self, rows: sp.csr_matrix, user_indices: np.ndarray | None = None) -> np.ndarray: ...


def standardise(scores: np.ndarray, rows: sp.csr_matrix) -> np.ndarray:
    """Per-shopper z-scores, with mean and spread taken over the products not in the shopper's row.

    Products the shopper already has are left out of the statistics (they will not be
    recommended, and their typically high scores would squash everyone else's) but are still
    transformed, so the result ranks exactly like the input.
    """
    scores = np.array(scores, dtype=np.float64)
    rows = sp.csr_matrix(rows)
    candidate = np.ones(scores.shape, dtype=bool)
    coo = rows.tocoo()
    candidate[coo.row, coo.col] = False
    count = np.maximum(candidate.sum(axis=1, keepdims=True), 1)
    mean = np.where(candidate, scores, 0.0).sum(axis=1, keepdims=True) / count
    spread = np.sqrt(np.where(candidate, (scores - mean) ** 2, 0.0).sum(axis=1, keepdims=True) / count)
    return np.divide(scores - mean, spread, out=np.zeros_like(scores), where=spread > 1e-12)


def score_items(model: Model, rows: sp.csr_matrix, user_indices: np.ndarray | None, items: np.ndarray) -> np.ndarray:
    """A component's scores for the products ``items`` only (all of them scored if it cannot do less)."""
    if hasattr(model, "score_items"):
        return np.asarray(model.score_items(rows, user_indices, items), dtype=np.float64)
    return np.asarray(model.score(rows, user_indices), dtype=np.float64)[:, items]


def standardise_by_sample(scores: np.ndarray, sample_scores: np.ndarray, sample_counts: np.ndarray) -> np.ndarray:
    """``standardise`` with the mean and spread estimated on a random sample of the catalogue:
    ``sample_counts`` (1 x sample) is 0 where a sampled product is in the shopper's row, 1 elsewhere."""
    count = np.maximum(sample_counts.sum(axis=1, keepdims=True), 1)
    mean = (sample_scores * sample_counts).sum(axis=1, keepdims=True) / count
    spread = np.sqrt((((sample_scores - mean) ** 2) * sample_counts).sum(axis=1, keepdims=True) / count)
    return np.divide(scores - mean, spread, out=np.zeros_like(scores), where=spread > 1e-12)


class Hybrid:
    """Weighted sum of standardised component scores."""

    name = "hybrid"

    def __init__(self, components: dict[str, Model], weights: dict[str, float] | None = None) -> None:
        self.components = components
        self.weights = weights or {name: 1.0 / len(components) for name in components}

    def fit(self, train: sp.csr_matrix) -> Hybrid:
        for model in self.components.values():
            model.fit(train)
        return self

    def component_scores(self, rows: sp.csr_matrix,
                         user_indices: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Each component's standardised scores over the products of ``rows`` (components with
        weight 0 are not asked). Products a component learnt after training (content's
        ``add_items``) are beyond the rows' width and left to the caller."""
        width = rows.shape[1]
        return {name: standardise(model.score(rows, user_indices)[:, :width], rows)
                for name, model in self.components.items() if self.weights.get(name, 0.0) > 0}

    def candidate_scores(self, rows: sp.csr_matrix, user_indices: np.ndarray | None, items: np.ndarray,
                         sample: np.ndarray) -> dict[str, np.ndarray]:
        """``component_scores`` for the trained products ``items`` only (the candidate stage's re-rank).

        Standardising needs each component's mean and spread over the whole catalogue (the shopper's
        own products left out, as ``standardise`` does): exact from the components that offer
        ``score_items_with_moments`` (factors, neighbours of shoppers, EASE, popularity), estimated on
        ``sample``, a fixed random set of products scored along with the candidates, for the others."""
        rows = sp.csr_matrix(rows)
        both = np.concatenate([items, sample])
        counts = np.ones((rows.shape[0], len(sample)))
        position = {int(p): i for i, p in enumerate(sample)}
        coo = rows.tocoo()
        for r, c in zip(coo.row, coo.col, strict=True):
            if int(c) in position:
                counts[r, position[int(c)]] = 0.0
        out = {}
        for name, model in self.components.items():
            if self.weights.get(name, 0.0) <= 0:
                continue
            if hasattr(model, "score_items_with_moments"):
                scored, (mean, spread) = model.score_items_with_moments(rows, user_indices, items)
                out[name] = np.divide(scored - mean, spread, out=np.zeros_like(scored), where=spread > 1e-12)
            else:
                scored = score_items(model, rows, user_indices, both)
                out[name] = standardise_by_sample(scored[:, : len(items)], scored[:, len(items):], counts)
        return out

    def score(self, rows: sp.csr_matrix, user_indices: np.ndarray | None = None) -> np.ndarray:
        parts = self.component_scores(rows, user_indices)
        return sum(self.weights[name] * z for name, z in parts.items())

    def contributions(self, rows_1x: sp.csr_matrix, item: int, user_index: int = -1) -> dict[str, float]:
        """Each component's weighted standardised score for ``item`` for one shopper (``user_index``
        their training row, -1 if none); the largest names the reason shown with the recommendation."""
        parts = self.component_scores(rows_1x, np.array([user_index]))
        return {name: float(self.weights[name] * z[0, item]) for name, z in parts.items()}

    def learn_weights(self, train_fit: sp.csr_matrix, validation: sp.csr_matrix, k: int = 10,
                      steps: tuple[float, ...] = (0.5, 0.25, 0.1, 0.05), seed: int = 7) -> dict[str, float]:
        """Coordinate search on the simplex for the weights with the best validation nDCG@k.

        The components must already be fitted on ``train_fit``. Starting from equal weights (or a
        single component, if it alone is better), each weight in turn is moved by +-step (clipped
        at 0, then all renormalised to sum 1) and a move is kept only if it improves nDCG; the step
        shrinks when no move helps. Sets ``validation_ndcg`` and ``component_validation_ndcg``
        (each component alone) for reports.
        """
        train_fit, validation = sp.csr_matrix(train_fit), sp.csr_matrix(validation)
        users = np.flatnonzero(np.diff(validation.indptr) > 0)
        limit = max(1, min(SAMPLE_USERS, CACHE_CELLS // max(train_fit.shape[1], 1)))
        if len(users) > limit:
            users = np.sort(np.random.default_rng(seed).choice(users, limit, replace=False))
        rows, held_out = train_fit[users], validation[users]
        cached = {name: standardise(model.score(rows, users)[:, :rows.shape[1]], rows).astype(np.float32)
                  for name, model in self.components.items()}
        names = list(cached)
        key = f"ndcg_at_{k}"

        def quality(w: np.ndarray) -> float:
            blend = sum(float(wi) * cached[n] for wi, n in zip(w, names, strict=True) if wi > 0)
            return ranking_metrics(blend, rows, held_out, k)[key]

        # Equal weights first; a component alone replaces them only if strictly better, so the
        # learnt blend is never worse on validation than its best component.
        starts = [np.full(len(names), 1.0 / len(names)), *np.eye(len(names))]
        values = [float(quality(w)) for w in starts]
        self.component_validation_ndcg = dict(zip(names, values[1:], strict=True))
        weights, best = starts[int(np.argmax(values))], max(values)
        for step in steps:
            improved = True
            while improved:
                improved = False
                for i in range(len(names)):
                    for move in (step, -step):
                        trial = weights.copy()
                        trial[i] = max(0.0, trial[i] + move)
                        if trial.sum() <= 0:
                            continue
                        trial /= trial.sum()
                        value = quality(trial)
                        if value > best + 1e-12:
                            weights, best, improved = trial, value, True
        self.weights = {n: float(w) for n, w in zip(names, weights, strict=True)}
        self.validation_ndcg = float(best)
        return self.weights


def fit_hybrid(train: sp.csr_matrix, make_components: Callable[[], dict[str, Model]],
               validation_ratio: float = 0.8, seed: int = 7) -> tuple[Hybrid, dict]:
    """Learn the blend's weights on a split of ``train``, then fit every component on all of it.

    Returns the hybrid and a report: the weights, and the validation nDCG@10 of each component
    alone and of the blend.
    """
    fit_part, validation = stratified_split(train, validation_ratio, seed)
    probe = Hybrid(make_components()).fit(fit_part)
    weights = probe.learn_weights(fit_part, validation, seed=seed)
    hybrid = Hybrid(make_components(), dict(weights)).fit(train)
    report = {"weights": weights, "validation_ndcg_at_10": {**probe.component_validation_ndcg,
                                                             "hybrid": probe.validation_ndcg}}
    return hybrid, report
