"""A component's mean and spread over every product a shopper does not have, without scoring every product
one by one: what the candidate stage needs to standardise a few hundred scores as ``hybrid.standardise``
standardises them all (the spread sets how much a component counts in the blend)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

Moments = tuple[np.ndarray, np.ndarray]  # mean, spread: one row per shopper, shape (rows, 1)


def from_sums(sums: np.ndarray, squares: np.ndarray, counts: np.ndarray) -> Moments:
    """Mean and spread from the sum and the sum of squares of ``counts`` scores per shopper."""
    counts = np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
    mean = np.asarray(sums, dtype=np.float64) / counts
    variance = np.maximum(np.asarray(squares, dtype=np.float64) / counts - mean**2, 0.0)
    return mean.reshape(-1, 1), np.sqrt(variance).reshape(-1, 1)


def of_dense(scores: np.ndarray, rows: sp.csr_matrix) -> Moments:
    """Over every column of ``scores`` but the shoppers' own products (the rows' columns)."""
    rows = sp.csr_matrix(rows)
    sums, squares = scores.sum(axis=1), (scores**2).sum(axis=1)
    for r in range(rows.shape[0]):
        own = scores[r, rows.indices[rows.indptr[r]:rows.indptr[r + 1]]]
        sums[r] -= own.sum()
        squares[r] -= (own**2).sum()
    return from_sums(sums, squares, scores.shape[1] - np.diff(rows.indptr))


def columns(scores: sp.csr_matrix, wanted: np.ndarray) -> np.ndarray:
    """``scores[:, columns].toarray()`` for a few rows, by binary search in each row's sorted columns:
    scipy's column indexing builds an array as long as the row (~0.2 ms at 50,000 products)."""
    scores = sp.csr_matrix(scores)
    if not scores.has_sorted_indices:
        scores = scores.sorted_indices()
    wanted = np.asarray(wanted, dtype=np.int64)
    out = np.zeros((scores.shape[0], len(wanted)))
    for r in range(scores.shape[0]):
        start, stop = scores.indptr[r], scores.indptr[r + 1]
        indices, data = scores.indices[start:stop], scores.data[start:stop]
        if not len(indices):
            continue
        at = np.minimum(np.searchsorted(indices, wanted), len(indices) - 1)
        found = indices[at] == wanted
        out[r, found] = data[at[found]]
    return out


def of_sparse(scores: sp.csr_matrix, rows: sp.csr_matrix) -> Moments:
    """``of_dense`` for scores that are mostly 0 (neighbourhood votes), never made dense."""
    scores, rows = sp.csr_matrix(scores), sp.csr_matrix(rows)
    sums = np.ravel(scores.sum(axis=1))
    squares = np.ravel(scores.multiply(scores).sum(axis=1))
    for r in range(rows.shape[0]):
        own = columns(scores[r], rows.indices[rows.indptr[r]:rows.indptr[r + 1]])
        sums[r] -= own.sum()
        squares[r] -= (own**2).sum()
    return from_sums(sums, squares, scores.shape[1] - np.diff(rows.indptr))


def of_factors(users: np.ndarray, items: np.ndarray, mean: np.ndarray, second: np.ndarray,
               rows: sp.csr_matrix) -> Moments:
    """Scores ``users @ items.T`` exactly, from the products' mean factor vector ``mean`` and second-moment
    matrix ``second`` (itemsᵀ items / n): a factors x factors product, not a products-long one."""
    rows = sp.csr_matrix(rows)
    n = items.shape[0]
    sums = n * (users @ mean)
    squares = n * np.einsum("rf,fg,rg->r", users, second, users)
    for r in range(rows.shape[0]):
        own = items[rows.indices[rows.indptr[r]:rows.indptr[r + 1]]] @ users[r]
        sums[r] -= own.sum()
        squares[r] -= (own**2).sum()
    return from_sums(sums, squares, n - np.diff(rows.indptr))


def factor_moments(items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The products' mean factor vector and second-moment matrix (float64), for ``of_factors``."""
    items = np.asarray(items, dtype=np.float64)
    return items.mean(axis=0), items.T @ items / max(len(items), 1)
