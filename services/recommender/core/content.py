"""Content-based recommendations from product text (title, description, category, brand, tags).

Character n-grams within word boundaries need no tokenizer, so Chinese and English titles both
work, and a product added after training is recommendable at once: its text is vectorised with
the fitted vocabulary.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize


class ContentModel:
    """Score = cosine between the shopper's profile (their interaction-weighted sum of product
    vectors) and every product."""

    name = "content"

    def __init__(self, max_features: int = 50000) -> None:
        self.vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, min_df=1,
                                          max_features=max_features)
        self.items: sp.csr_matrix | None = None

    def fit_items(self, texts: list[str]) -> ContentModel:
        """Learn the vocabulary from one text per product, in product-index order."""
        self.items = normalize(self.vectorizer.fit_transform(texts).tocsr())
        return self

    def add_items(self, texts: list[str]) -> int:
        """Append products that arrived after fitting; returns the index of the first new one."""
        first = self.items.shape[0]
        self.items = sp.vstack([self.items, normalize(self.vectorizer.transform(texts))], format="csr")
        return first

    def fit(self, train: sp.csr_matrix) -> ContentModel:
        """Nothing to learn from interactions: the products' text is the model."""
        if self.items is None:
            raise RuntimeError("fit_items(texts) first")
        return self

    def score(self, rows: sp.csr_matrix, user_indices: np.ndarray | None = None) -> np.ndarray:
        rows = sp.csr_matrix(rows, dtype=np.float64)
        n_items = self.items.shape[0]
        if rows.shape[1] < n_items:  # rows built before the newest products were added
            rows = sp.hstack([rows, sp.csr_matrix((rows.shape[0], n_items - rows.shape[1]))], format="csr")
        profiles = normalize(rows @ self.items)
        if rows.shape[0] <= 32:  # serving: a sparse matrix times dense profiles is ~6x faster than sparse x sparse
            return np.asarray(self.items @ profiles.toarray().T).T
        return np.asarray((profiles @ self.items.T).todense())

    def score_items(self, rows: sp.csr_matrix, user_indices: np.ndarray | None, items: np.ndarray) -> np.ndarray:
        """``score`` for ``items`` only (their text vectors against the shoppers' profiles)."""
        return np.asarray(self.items[items] @ self.profiles(rows).T).T

    def profiles(self, rows: sp.csr_matrix) -> np.ndarray:
        """The shoppers' profiles: the normalised interaction-weighted sum of their products' vectors."""
        rows = sp.csr_matrix(rows, dtype=np.float64)
        if rows.shape[1] < self.items.shape[0]:  # widen the rows, never slice (copy) the product vectors
            rows = sp.csr_matrix((rows.data, rows.indices, rows.indptr), shape=(rows.shape[0], self.items.shape[0]))
        profiles = (rows @ self.items).toarray()
        # sklearn's normalize, without its per-call checks (~0.7 ms of a request at 50,000 products)
        norms = np.sqrt(np.einsum("ij,ij->i", profiles, profiles))
        return profiles / np.where(norms > 0, norms, 1.0)[:, None]

    def similar_items(self, item: int, n: int) -> list[tuple[int, float]]:
        """The ``n`` products whose text is closest to ``item``'s, most similar first."""
        sims = np.asarray((self.items @ self.items[item].T).todense()).ravel()
        sims[item] = -np.inf
        n = min(n, len(sims) - 1)
        best = np.argpartition(-sims, n - 1)[:n] if n > 0 else np.array([], dtype=int)
        best = best[np.lexsort((best, -sims[best]))]
        return [(int(i), float(sims[i])) for i in best]
