"""Confidence weighting of interaction weights before matrix factorisation.

implicit's ``bm25_weight`` and ``tfidf_weight`` weight the matrix they are given in one go, so a
shopper's fresh row at serving time could not be weighted the way the training rows were. This
class keeps what the weighting learnt from the training matrix (each product's idf and the average
shopper's total weight) and applies exactly the same formula to any later row.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

Scheme = Literal["bm25", "tfidf", "none"]


class ConfidenceWeighting:
    """``bm25`` / ``tfidf`` as in ``implicit.nearest_neighbours``, or ``none`` (values kept).

    For a shoppers x products matrix the idf is per product, ``log(N) - log1p(df)`` with N the
    number of shoppers and df the shoppers who touched the product, and BM25's length
    normalisation is per shopper against the average shopper's total weight.
    """

    def __init__(self, scheme: Scheme = "bm25", K1: float = 100.0, B: float = 0.8) -> None:
        if scheme not in ("bm25", "tfidf", "none"):
            raise ValueError(f"unknown weighting {scheme!r}")
        self.scheme = scheme
        self.K1 = K1
        self.B = B
        self.idf: np.ndarray | None = None
        self.average_length = 1.0

    def fit(self, train: sp.csr_matrix) -> ConfidenceWeighting:
        train = sp.csr_matrix(train)
        # Stored entries are counted, as implicit's bincount over the COO columns does.
        df = np.bincount(train.indices, minlength=train.shape[1])
        self.idf = np.log(float(train.shape[0])) - np.log1p(df)
        self.average_length = float(np.ravel(train.sum(axis=1)).mean()) if train.shape[0] else 1.0
        return self

    def transform(self, rows: sp.csr_matrix) -> sp.csr_matrix:
        """The weighted copy of ``rows`` (training rows or fresh ones), same shape."""
        rows = sp.csr_matrix(rows, dtype=np.float64, copy=True)
        if self.scheme == "none":
            return rows
        if self.idf is None:
            raise RuntimeError("fit the weighting before transforming rows")
        if rows.shape[1] != len(self.idf):
            raise ValueError(f"rows have {rows.shape[1]} products, the weighting knows {len(self.idf)}")
        idf = self.idf[rows.indices]
        if self.scheme == "tfidf":
            rows.data = np.sqrt(rows.data) * idf
            return rows
        row_of = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
        length_norm = (1.0 - self.B) + self.B * np.ravel(rows.sum(axis=1)) / self.average_length
        rows.data = rows.data * (self.K1 + 1.0) / (self.K1 * length_norm[row_of] + rows.data) * idf
        return rows
