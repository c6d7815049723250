"""The non-personalised baseline: how many shoppers interacted with each product."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from services.recommender.core import moments


class Popularity:
    """Everyone gets the same scores; in a blend it lifts well-liked products among equals and
    serves shoppers with no history."""

    name = "popular"

    def __init__(self) -> None:
        self.counts: np.ndarray | None = None

    def fit(self, train: sp.csr_matrix) -> Popularity:
        train = sp.csr_matrix(train)
        self.counts = np.bincount(train.indices[train.data != 0], minlength=train.shape[1]).astype(np.float64)
        return self

    def score(self, rows: sp.csr_matrix, user_indices: np.ndarray | None = None) -> np.ndarray:
        return np.tile(self.counts, (rows.shape[0], 1))

    def score_items(self, rows: sp.csr_matrix, user_indices: np.ndarray | None, items: np.ndarray) -> np.ndarray:
        return np.tile(self.counts[items], (rows.shape[0], 1))

    def score_items_with_moments(self, rows: sp.csr_matrix, user_indices: np.ndarray | None,
                                 items: np.ndarray) -> tuple[np.ndarray, moments.Moments]:
        counts = self.counts[: sp.csr_matrix(rows).shape[1]][None, :]
        return self.score_items(rows, user_indices, items), moments.of_dense(
            np.repeat(counts, rows.shape[0], axis=0), rows)
