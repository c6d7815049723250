"""EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", 2019): item-to-item weights in closed
form, B = I - P / diag(P) with P = (XᵀX + λI)⁻¹ over who touched what, diagonal forced to zero.

A shopper's scores are their row (binary) times B, so a fresh row needs nothing refitted. It is a dense
products x products inverse: only the ``max_items`` products most shoppers touched get weights (the others
score lowest, as nobody knows them well); 4,000 products is a 4,000² inverse, seconds on two cores.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from services.recommender.core import moments


class EASE:
    name = "ease"

    def __init__(self, regularization: float = 500.0, max_items: int = 4000) -> None:
        if regularization <= 0 or max_items < 1:
            raise ValueError("EASE needs regularization > 0 and max_items >= 1")
        self.regularization = regularization
        self.max_items = max_items
        self.kept = np.zeros(0, dtype=np.int64)
        self.weights = np.zeros((0, 0), dtype=np.float32)
        self.n_items = 0

    def fit(self, train: sp.csr_matrix) -> EASE:
        binary = (sp.csr_matrix(train) > 0).astype(np.float64)
        self.n_items = binary.shape[1]
        counts = np.asarray(binary.sum(axis=0)).ravel()
        touched = np.flatnonzero(counts > 0)
        order = touched[np.argsort(-counts[touched], kind="stable")][: self.max_items]
        self.kept = np.sort(order)
        x = binary[:, self.kept]
        gram = (x.T @ x).toarray()
        gram[np.diag_indices_from(gram)] += self.regularization
        inverse = np.linalg.inv(gram)
        weights = -inverse / np.diag(inverse)
        weights[np.diag_indices_from(weights)] = 0.0
        self.weights = weights.astype(np.float32)
        return self

    def score(self, rows: sp.csr_matrix, user_indices: np.ndarray | None = None) -> np.ndarray:
        rows = sp.csr_matrix(rows)[:, : self.n_items]
        binary = (rows[:, self.kept] > 0).astype(np.float32)
        known = np.asarray(binary @ self.weights, dtype=np.float64)
        floor = known.min(axis=1, keepdims=True) - 1.0 if known.size else np.zeros((rows.shape[0], 1))
        scores = np.repeat(floor, self.n_items, axis=1)
        scores[:, self.kept] = known
        return scores

    def score_items(self, rows: sp.csr_matrix, user_indices: np.ndarray | None, items: np.ndarray) -> np.ndarray:
        """``score`` for ``items`` only; the floor (products without weights) is the same as over all."""
        full_width = self.score(rows)  # the cost is the row times the kept x kept weights either way
        return full_width[:, items]

    def score_items_with_moments(self, rows: sp.csr_matrix, user_indices: np.ndarray | None,
                                 items: np.ndarray) -> tuple[np.ndarray, moments.Moments]:
        full_width = self.score(rows)
        return full_width[:, items], moments.of_dense(full_width, sp.csr_matrix(rows)[:, : self.n_items])
