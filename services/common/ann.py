"""Top-k by inner product over a fixed set of vectors (faiss), exact or approximate by size.

Below ``EXACT_BELOW`` vectors the index is an exact scan (``IndexFlatIP``): at 16-64 dimensions a
scan of 100,000 vectors takes well under a millisecond per query on one core, and an approximate
index would only add build time and lose recall. From ``EXACT_BELOW`` up it is HNSW with faiss's
inner-product metric. (The reduction of inner product to Euclidean distance, one more coordinate
sqrt(max_norm² - |x|²) per vector, found half as many of the true top 50 on vectors of uneven
norms at the same search depth: the query lies far from every lifted vector.) ``kind`` forces either.

The index pickles as its vectors and choice; faiss's structure is rebuilt on load.
"""

from __future__ import annotations

from typing import Literal

import faiss
import numpy as np

EXACT_BELOW = 100_000
HNSW_NEIGHBOURS = 32  # M: links per node
HNSW_BUILD_DEPTH = 80  # efConstruction
HNSW_SEARCH_FACTOR = 2  # efSearch = max(64, factor * k)
# A few queries (one request) are searched on the calling thread alone: faiss's OpenMP team costs more than
# it saves there (50,000 x 16 exact: 0.3 ms CPU on one thread, 1.6 ms CPU and 5 ms waiting on two). OpenMP's
# thread count is per calling thread, so a batch elsewhere keeps every core.
ONE_THREAD_QUERIES = 8
_THREADS = faiss.omp_get_max_threads()

Kind = Literal["exact", "hnsw"]


def kind_for(size: int, exact_below: int = EXACT_BELOW) -> Kind:
    """The index a set of ``size`` vectors gets."""
    return "exact" if size < exact_below else "hnsw"


class InnerProductIndex:
    def __init__(self, vectors: np.ndarray, kind: Kind | None = None) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.vectors.ndim != 2:
            raise ValueError("vectors must be a 2-d array (one row per vector)")
        self.kind: Kind = kind or kind_for(len(self.vectors))
        if self.kind not in ("exact", "hnsw"):
            raise ValueError(f"unknown index kind {self.kind!r}")
        self._index = self._build()

    def __len__(self) -> int:
        return len(self.vectors)

    def __getstate__(self) -> dict:
        return {"vectors": self.vectors, "kind": self.kind}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["vectors"], state["kind"])  # type: ignore[misc]

    def _build(self) -> faiss.Index:
        dim = self.vectors.shape[1]
        if self.kind == "exact":
            index = faiss.IndexFlatIP(dim)
            if len(self.vectors):
                index.add(self.vectors)
            return index
        index = faiss.IndexHNSWFlat(dim, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_BUILD_DEPTH
        if len(self.vectors):
            index.add(self.vectors)
        return index

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(inner products, row numbers) of each query's ``k`` best vectors, best first; a row with
        fewer than ``k`` results is padded with -inf and -1."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(int(k), len(self.vectors))
        faiss.omp_set_num_threads(1 if len(queries) <= ONE_THREAD_QUERIES else _THREADS)
        if k <= 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        if self.kind == "hnsw":  # the search depth per call: concurrent requests share the index
            depth = faiss.SearchParametersHNSW(efSearch=max(64, HNSW_SEARCH_FACTOR * k))
            scores, rows = self._index.search(queries, k, params=depth)
        else:
            scores, rows = self._index.search(queries, k)
        return np.where(rows >= 0, scores, -np.inf), rows
