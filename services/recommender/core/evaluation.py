"""Offline evaluation: the per-user split and the top-k ranking metrics.

Both follow the Microsoft Recommenders protocol (``python_stratified_split`` and its ``map``,
``ndcg_at_k``, ``precision_at_k``, ``recall_at_k`` with binary relevance) so our figures can be
compared with the table it publishes for MovieLens-100k.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

ScoreSource = np.ndarray | Callable[[np.ndarray], np.ndarray]


def stratified_split(matrix: sp.csr_matrix, ratio: float = 0.75,
                     seed: int = 42) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Split every shopper's interactions: ``round(n * ratio)`` of them, at random, train; the rest test.

    Splitting per shopper, not globally, keeps every shopper in both halves, so each one is scored
    against history the model has seen.
    """
    coo = sp.csr_matrix(matrix).tocoo()
    coo.sum_duplicates()
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(coo.nnz), coo.row))  # shuffled within each row, rows in order
    row, col, data = coo.row[order], coo.col[order], coo.data[order]
    counts = np.bincount(row, minlength=matrix.shape[0])
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(len(row)) - starts[row]
    in_train = rank < np.round(counts * ratio).astype(np.int64)[row]
    shape = matrix.shape
    train = sp.csr_matrix((data[in_train], (row[in_train], col[in_train])), shape=shape)
    test = sp.csr_matrix((data[~in_train], (row[~in_train], col[~in_train])), shape=shape)
    return train, test


def top_items(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores of each row, best first (ties: lower index first)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    return np.take_along_axis(part, order, axis=1)


def ranking_metrics(scores: ScoreSource, train: sp.csr_matrix, test: sp.csr_matrix, k: int = 10,
                    batch: int = 512) -> dict[str, float]:
    """MAP, nDCG@k, precision@k and recall@k over the shoppers who have test items.

    ``scores`` is a dense shoppers x products array or ``fn(user_indices) -> array`` called in
    batches, so a large shop never needs its full score matrix in memory. Products in ``train``
    are never recommended again, so they are ranked last.
    """
    train, test = sp.csr_matrix(train), sp.csr_matrix(test)
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)
    totals = np.zeros(4)
    for start in range(0, len(users), batch):
        chunk = users[start:start + batch]
        block = scores[chunk] if isinstance(scores, np.ndarray) else scores(chunk)
        block = np.array(block, dtype=np.float64)  # a copy: the caller's scores stay untouched
        seen = train[chunk].tocoo()
        block[seen.row, seen.col] = -np.inf
        top = top_items(block, k)
        relevant = test[chunk]
        hits = np.asarray(relevant[np.arange(len(chunk))[:, None], top].todense()) != 0
        n_relevant = np.diff(relevant.indptr)
        cum_hits = np.cumsum(hits, axis=1)
        precision_at_rank = cum_hits / np.arange(1, top.shape[1] + 1)
        totals[0] += np.sum((precision_at_rank * hits).sum(axis=1) / n_relevant)
        dcg = (hits * discounts[:top.shape[1]]).sum(axis=1)
        totals[1] += np.sum(dcg / ideal[np.minimum(k, n_relevant) - 1])
        totals[2] += hits.sum() / k
        totals[3] += np.sum(hits.sum(axis=1) / n_relevant)
    n = max(len(users), 1)
    return {"map": float(totals[0] / n), f"ndcg_at_{k}": float(totals[1] / n),
            f"precision_at_{k}": float(totals[2] / n), f"recall_at_{k}": float(totals[3] / n),
            "users": len(users)}


def list_metrics(answers: Mapping[int, Sequence[int]], test: sp.csr_matrix, k: int = 10) -> dict[str, float]:
    """``ranking_metrics`` of answers already made: ``answers[user]`` is the product indices a served answer
    listed, best first (the REST answer of a running service). The same formulas over the same shoppers (those
    with test items); a shopper with no answer, or a short one, counts what it has (no hit for what is missing).
    """
    test = sp.csr_matrix(test)
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)
    totals = np.zeros(4)
    for user in users:
        relevant = set(test.indices[test.indptr[user]:test.indptr[user + 1]].tolist())
        hits = np.array([i in relevant for i in list(answers.get(int(user), ()))[:k]], dtype=bool)
        cum_hits = np.cumsum(hits)
        totals[0] += float((cum_hits / np.arange(1, len(hits) + 1) * hits).sum()) / len(relevant)
        totals[1] += float((hits * discounts[:len(hits)]).sum()) / ideal[min(k, len(relevant)) - 1]
        totals[2] += hits.sum() / k
        totals[3] += hits.sum() / len(relevant)
    n = max(len(users), 1)
    return {"map": float(totals[0] / n), f"ndcg_at_{k}": float(totals[1] / n),
            f"precision_at_{k}": float(totals[2] / n), f"recall_at_{k}": float(totals[3] / n),
            "users": len(users)}
