"""Neighbourhood recommenders: products bought together (item KNN) and shoppers alike (user KNN).

Similarities are computed from sparse products in blocks, with the centring of Pearson applied
as a rank-one correction, so neither the centred (dense) interaction matrix nor a full
products x products or shoppers x shoppers matrix is ever held in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import scipy.sparse as sp

from services.recommender.core import moments

BLOCK_CELLS = 1 << 23  # dense cells per block of similarities (64 MiB of float64)
DENSE_ROWS = 32  # up to this many shoppers (a request), ItemKNN.score_items uses the transposed similarities


def cosine_similarity(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine of the angle between two interaction vectors; 0.0 when either is all zeros."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norm = np.linalg.norm(x) * np.linalg.norm(y)
    return float(x @ y / norm) if norm > 0 else 0.0


def pearson_correlation(a: Sequence[float], b: Sequence[float]) -> float:
    """Pearson correlation (cosine of the mean-centred vectors); 0.0 when either is constant."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return cosine_similarity(x - x.mean(), y - y.mean())


def _keep_top(block: np.ndarray, n: int) -> sp.csr_matrix:
    """Each row's ``n`` largest positive values, the rest dropped (negatives say nothing useful)."""
    n = min(n, block.shape[1])
    if n <= 0:
        return sp.csr_matrix(block.shape)
    cols = np.argpartition(-block, n - 1, axis=1)[:, :n]
    vals = np.take_along_axis(block, cols, axis=1)
    rows = np.repeat(np.arange(block.shape[0]), n)
    keep = vals.ravel() > 0
    return sp.csr_matrix((vals.ravel()[keep], (rows[keep], cols.ravel()[keep])), shape=block.shape)


def _moments(matrix: sp.csr_matrix, centred: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-row mean (zero when not centred) and norm of the (centred) row, over all columns."""
    m = matrix.shape[1]
    sums = np.ravel(matrix.sum(axis=1))
    squares = np.ravel(matrix.multiply(matrix).sum(axis=1))
    mean = sums / m if centred else np.zeros_like(sums)
    return mean, np.sqrt(np.maximum(squares - m * mean**2, 0.0))


def _similarity_block(rows: sp.csr_matrix, others_t: sp.spmatrix, rows_moments, others_moments,
                      length: int) -> np.ndarray:
    """Cosine of (possibly centred) ``rows`` against every other vector, as a dense block."""
    mean_a, norm_a = rows_moments
    mean_b, norm_b = others_moments
    dots = (rows @ others_t).toarray() - length * np.outer(mean_a, mean_b)
    denom = np.outer(norm_a, norm_b)
    return np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 1e-12)


class ItemKNN:
    """Products are similar when the same shoppers interact with both; score = sum of similarities
    between a product and what the shopper has, weighted by how much they interacted."""

    name = "item_knn"

    def __init__(self, similarity: Literal["cosine", "pearson"] = "cosine", neighbours: int = 200) -> None:
        if similarity not in ("cosine", "pearson"):
            raise ValueError(f"unknown similarity {similarity!r}")
        self.kind = similarity
        self.neighbours = neighbours
        self.similarity: sp.csr_matrix | None = None

    def fit(self, train: sp.csr_matrix) -> ItemKNN:
        items = sp.csr_matrix(train, dtype=np.float64).T.tocsr()  # products x shoppers
        moments = _moments(items, centred=self.kind == "pearson")
        n_items, n_users = items.shape
        items_t = items.T.tocsc()
        step = max(1, BLOCK_CELLS // max(n_items, 1))
        parts = []
        for start in range(0, n_items, step):
            stop = min(start + step, n_items)
            block = _similarity_block(items[start:stop], items_t, tuple(x[start:stop] for x in moments),
                                      moments, n_users)
            block[np.arange(stop - start), np.arange(start, stop)] = 0.0  # a product is not its own neighbour
            parts.append(_keep_top(block, self.neighbours))
        self.similarity = sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, 0))
        return self

    def score(self, rows: sp.csr_matrix, user_indices: np.ndarray | None = None) -> np.ndarray:
        return np.asarray((sp.csr_matrix(rows) @ self.similarity.T).todense())

    def score_items(self, rows: sp.csr_matrix, user_indices: np.ndarray | None, items: np.ndarray) -> np.ndarray:
        """``score`` for ``items`` only. A few shoppers (a request): their rows times the transposed
        similarities (kept as CSR), which touches only the neighbours of the shoppers' own products, then
        the candidates' columns; slicing the candidates' rows of similarities and multiplying them cost
        ~1 ms at 50,000 products. Many shoppers: the candidates' rows, never the whole matrix transposed."""
        rows = sp.csr_matrix(rows)
        if rows.shape[0] <= DENSE_ROWS:
            return (rows @ self._transposed()).toarray()[:, items]
        return np.asarray((rows @ self.similarity[items].T).todense())

    def _transposed(self) -> sp.csr_matrix:
        """``similarity.T`` as CSR, made once per similarity matrix and not saved with the model."""
        kept = getattr(self, "_similarity_t", None)
        if kept is None or kept[0] is not self.similarity:
            kept = self._similarity_t = (self.similarity, self.similarity.T.tocsr())
        return kept[1]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_similarity_t", None)
        return state

    def neighbours_of(self, weights: sp.csr_matrix, n: int) -> np.ndarray:
        """The ``n`` products most similar to a weighted set of products (a 1 x products row) by the kept
        neighbours of each, best first: the candidate stage's "more like what they looked at"."""
        votes = sp.csr_matrix(sp.csr_matrix(weights) @ self.similarity)
        votes.eliminate_zeros()
        order = np.lexsort((votes.indices, -votes.data))[:n]
        return votes.indices[order].astype(np.int64)

    def similar_items(self, item: int, n: int) -> list[tuple[int, float]]:
        """The ``n`` kept neighbours of ``item``, most similar first."""
        row = self.similarity[item]
        order = np.lexsort((row.indices, -row.data))[:n]
        return [(int(row.indices[i]), float(row.data[i])) for i in order]

    def because_of(self, row: sp.csr_matrix, item: int) -> int | None:
        """The product in the shopper's row that adds most to ``item``'s score (for "because you
        bought X"); None when nothing they have is a neighbour of ``item``."""
        row = sp.csr_matrix(row)
        contribution = row.multiply(self.similarity[item]).tocsr()
        contribution.eliminate_zeros()
        if contribution.nnz == 0 or contribution.data.max() <= 0:
            return None
        return int(contribution.indices[np.argmax(contribution.data)])


class UserKNN:
    """Shoppers whose interactions correlate (Pearson: each shopper centred by their own mean)
    vote for what they have; a shopper's row is compared with the training shoppers when scored,
    so a fresh or unseen shopper is served without refitting."""

    name = "user_knn"

    def __init__(self, neighbours: int = 80) -> None:
        self.neighbours = neighbours
        self.train: sp.csr_matrix | None = None

    def fit(self, train: sp.csr_matrix) -> UserKNN:
        self.train = sp.csr_matrix(train, dtype=np.float64)
        # CSR: a request's row times a CSC matrix would convert it to CSR first (~1 ms at 50,000 products).
        self._train_t = self.train.T.tocsr()
        self._moments = _moments(self.train, centred=True)
        return self

    def score(self, rows: sp.csr_matrix, user_indices: np.ndarray | None = None) -> np.ndarray:
        rows = sp.csr_matrix(rows, dtype=np.float64)
        n_users, n_items = self.train.shape
        own = np.full(rows.shape[0], -1) if user_indices is None else np.asarray(user_indices)
        out = np.zeros((rows.shape[0], n_items))
        step = max(1, BLOCK_CELLS // max(n_users, 1))
        for start in range(0, rows.shape[0], step):
            stop = min(start + step, rows.shape[0])
            block = _similarity_block(rows[start:stop], self._others(), _moments(rows[start:stop], True),
                                      self._moments, n_items)
            mine = np.flatnonzero((own[start:stop] >= 0) & (own[start:stop] < n_users))
            block[mine, own[start:stop][mine]] = 0.0  # a shopper is not their own neighbour
            out[start:stop] = (_keep_top(block, self.neighbours) @ self.train).toarray()
        return out

    def _others(self) -> sp.csr_matrix:
        """The training shoppers, products x shoppers, as CSR (a version saved with CSC is converted once)."""
        if self._train_t.format != "csr":
            self._train_t = self._train_t.tocsr()
        return self._train_t

    def score_items(self, rows: sp.csr_matrix, user_indices: np.ndarray | None, items: np.ndarray) -> np.ndarray:
        """``score`` for ``items`` only (the candidate stage's re-rank: a few shoppers at a time)."""
        return moments.columns(self._votes(rows, user_indices), items)

    def score_items_with_moments(self, rows: sp.csr_matrix, user_indices: np.ndarray | None,
                                 items: np.ndarray) -> tuple[np.ndarray, moments.Moments]:
        votes = self._votes(rows, user_indices)
        return moments.columns(votes, items), moments.of_sparse(votes, rows)

    def _votes(self, rows: sp.csr_matrix, user_indices: np.ndarray | None) -> sp.csr_matrix:
        """``score`` as a sparse matrix (most products get no vote)."""
        rows = sp.csr_matrix(rows, dtype=np.float64)
        own = np.full(rows.shape[0], -1) if user_indices is None else np.asarray(user_indices)
        block = _similarity_block(rows, self._others(), _moments(rows, True), self._moments, self.train.shape[1])
        mine = np.flatnonzero((own >= 0) & (own < self.train.shape[0]))
        block[mine, own[mine]] = 0.0
        return sp.csr_matrix(_keep_top(block, self.neighbours) @ self.train)
