"""The catalog's vector index: product ids, their categories and L2-normalised embeddings.

Inner product on normalised vectors is cosine similarity. The search is exact, through faiss's
``IndexFlatIP`` (SIMD, multi-threaded BLAS-free scan): the benchmark (``make bench-vision``,
section search) compared it with numpy, faiss HNSW and usearch on the demo catalog, where an
exact scan of a few thousand vectors takes well under a millisecond and approximate indexes only
add build time and lose recall. A shop with millions of images would switch the inner index to
HNSW without touching the callers.

The object is immutable: ``upsert``/``remove`` return a new index (copy-on-write), so a request
never reads one that is being changed. It pickles as plain arrays; faiss is rebuilt on load.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import faiss
import numpy as np


class VectorIndex:
    def __init__(self, dim: int, ids: Sequence[str] = (), vectors: np.ndarray | None = None,
                 categories: Sequence[str] = ()) -> None:
        self.dim = int(dim)
        self.ids: list[str] = list(ids)
        self.vectors = (np.zeros((0, self.dim), np.float32) if vectors is None
                        else np.ascontiguousarray(vectors, dtype=np.float32))
        self.categories = np.asarray(list(categories), dtype=object)
        if len(self.ids) != len(self.vectors) or len(self.categories) != len(self.ids):
            raise ValueError("ids, vectors and categories must have the same length")
        self.position = {pid: i for i, pid in enumerate(self.ids)}
        self._faiss: faiss.Index | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def __getstate__(self) -> dict:
        return {"dim": self.dim, "ids": self.ids, "vectors": self.vectors, "categories": list(self.categories)}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["dim"], state["ids"], state["vectors"], state["categories"])  # type: ignore[misc]

    def _flat(self) -> faiss.Index:
        if self._faiss is None:
            index = faiss.IndexFlatIP(self.dim)
            if len(self.ids):
                index.add(self.vectors)
            self._faiss = index
        return self._faiss

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, categories: Sequence[str]) -> VectorIndex:
        if not len(ids):
            return self
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have {vectors.shape[1]} dimensions, the index {self.dim}")
        keep = [i for i, pid in enumerate(self.ids) if pid not in set(ids)]
        return VectorIndex(
            self.dim, [self.ids[i] for i in keep] + list(ids),
            np.concatenate([self.vectors[keep], vectors.astype(np.float32)]),
            [self.categories[i] for i in keep] + list(categories))

    def remove(self, ids: Iterable[str]) -> VectorIndex:
        gone = set(ids) & self.position.keys()
        if not gone:
            return self
        keep = [i for i, pid in enumerate(self.ids) if pid not in gone]
        return VectorIndex(self.dim, [self.ids[i] for i in keep], self.vectors[keep],
                           [self.categories[i] for i in keep])

    def similarity(self, query: np.ndarray, pid: str) -> float:
        i = self.position.get(pid)
        return float(self.vectors[i] @ query) if i is not None else -1.0

    def search(self, query: np.ndarray, k: int, category: str | None = None) -> list[tuple[str, float]]:
        """The ``k`` most similar products (id, cosine), best first; only ``category`` when given."""
        if not self.ids or k <= 0:
            return []
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        if category is not None:
            rows = np.flatnonzero(self.categories == category)
            if not len(rows):
                return []
            sims = self.vectors[rows] @ q[0]
            top = rows[np.argsort(-sims, kind="stable")[:k]]
            return [(self.ids[i], float(self.vectors[i] @ q[0])) for i in top]
        sims, rows = self._flat().search(q, min(k, len(self.ids)))
        return [(self.ids[i], float(s)) for s, i in zip(sims[0], rows[0], strict=True) if i >= 0]
