"""Top-k by inner product over a set of vectors (faiss), exact or approximate by size.

Below ``exact_below`` vectors the index is an exact scan (``IndexFlatIP``): at 16-64 dimensions a
scan of 100,000 vectors takes well under a millisecond per query on one core, and an approximate
index would only add build time and lose recall. From ``exact_below`` up it is HNSW with faiss's
inner-product metric. (The reduction of inner product to Euclidean distance, one more coordinate
sqrt(max_norm² - |x|²) per vector, found half as many of the true top 50 on vectors of uneven
norms at the same search depth: the query lies far from every lifted vector.) ``kind`` forces either.
``AnnParams`` holds the threshold and HNSW's M, efConstruction and efSearch; a caller with its own
(the vision service's settings) passes them, the module's constants are the defaults.

The index is immutable: ``changed`` returns a new index with vectors added and rows removed, the old one
keeps answering unchanged (copy-on-write: a request searching it meanwhile stays right). Rows keep their
numbers: a removed row is left out of every answer (a faiss ID selector) but stays in the HNSW graph,
where it still helps the walk; ``compacted`` drops them (and renumbers) when the caller wants.
An index built without a forced ``kind`` switches by size as it changes: exact → HNSW when its live
vectors reach ``exact_below``, back to exact below 90 % of it (the margin keeps a catalogue hovering
at the threshold from rebuilding each change).

The index pickles as its vectors, removed rows and choice; faiss's structure is rebuilt on load.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import faiss
import numpy as np

EXACT_BELOW = 100_000
HNSW_NEIGHBOURS = 32  # M: links per node
HNSW_BUILD_DEPTH = 80  # efConstruction
HNSW_SEARCH_DEPTH = 64  # efSearch at least this
HNSW_SEARCH_FACTOR = 2  # efSearch = max(search depth, factor * k)
BACK_TO_EXACT = 0.9  # an automatic HNSW index turns exact again below this fraction of exact_below
# A few queries (one request) are searched on the calling thread alone: faiss's OpenMP team costs more than
# it saves there (50,000 x 16 exact: 0.3 ms CPU on one thread, 1.6 ms CPU and 5 ms waiting on two). OpenMP's
# thread count is per calling thread, so a batch elsewhere keeps every core.
ONE_THREAD_QUERIES = 8
_THREADS = faiss.omp_get_max_threads()

Kind = Literal["exact", "hnsw"]


@dataclass(frozen=True)
class AnnParams:
    exact_below: int = EXACT_BELOW
    neighbours: int = HNSW_NEIGHBOURS  # M
    build_depth: int = HNSW_BUILD_DEPTH  # efConstruction
    search_depth: int = HNSW_SEARCH_DEPTH  # efSearch (at least HNSW_SEARCH_FACTOR * k)

    def __post_init__(self) -> None:
        if self.exact_below < 0 or self.neighbours < 2 or self.build_depth < 1 or self.search_depth < 1:
            raise ValueError(f"invalid index parameters {self}")


DEFAULT_PARAMS = AnnParams()


def kind_for(size: int, exact_below: int = EXACT_BELOW) -> Kind:
    """The index a set of ``size`` vectors gets."""
    return "exact" if size < exact_below else "hnsw"


class InnerProductIndex:
    def __init__(self, vectors: np.ndarray, kind: Kind | None = None, params: AnnParams | None = None,
                 removed: np.ndarray | None = None, _graph: faiss.Index | None = None) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.vectors.ndim != 2:
            raise ValueError("vectors must be a 2-d array (one row per vector)")
        self.params = params or DEFAULT_PARAMS
        self.removed = (np.zeros(len(self.vectors), bool) if removed is None
                        else np.asarray(removed, bool).copy())
        if len(self.removed) != len(self.vectors):
            raise ValueError("removed must have one flag per vector")
        self.live = int(len(self.vectors) - self.removed.sum())
        self.automatic = kind is None  # the kind follows the size as the index changes
        self.kind: Kind = kind or kind_for(self.live, self.params.exact_below)
        if self.kind not in ("exact", "hnsw"):
            raise ValueError(f"unknown index kind {self.kind!r}")
        self._index = _graph if _graph is not None else self._build()
        self._bits = self._selector = None
        if self.live < len(self.vectors):  # one bit per live row (faiss keeps a pointer: keep the array)
            self._bits = np.packbits(~self.removed, bitorder="little")
            self._selector = faiss.IDSelectorBitmap(len(self.vectors), faiss.swig_ptr(self._bits))

    def __len__(self) -> int:
        """Rows, removed ones included (row numbers run up to it)."""
        return len(self.vectors)

    def __getstate__(self) -> dict:
        return {"vectors": self.vectors, "kind": None if self.automatic else self.kind,
                "params": self.params, "removed": self.removed}

    def __setstate__(self, state: dict) -> None:  # an index pickled before automatic kinds kept its kind
        self.__init__(state["vectors"], state.get("kind"), state.get("params"),  # type: ignore[misc]
                      state.get("removed"))

    def _build(self) -> faiss.Index:
        dim = self.vectors.shape[1]
        if self.kind == "exact":
            index = faiss.IndexFlatIP(dim)
        else:
            index = faiss.IndexHNSWFlat(dim, self.params.neighbours, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.params.build_depth
        if len(self.vectors):
            faiss.omp_set_num_threads(_THREADS)
            index.add(self.vectors)
        return index

    def changed(self, added: np.ndarray | None = None, removed: Iterable[int] = ()) -> InnerProductIndex:
        """A new index with ``added`` as rows ``len(self)`` onwards and the rows ``removed`` left out; this
        one is unchanged. An automatic index whose live size crosses the threshold is rebuilt as the other
        kind."""
        added = (np.zeros((0, self.vectors.shape[1]), np.float32) if added is None
                 else np.ascontiguousarray(np.atleast_2d(added), dtype=np.float32))
        if added.shape[1] != self.vectors.shape[1]:
            raise ValueError(f"vectors have {added.shape[1]} dimensions, the index {self.vectors.shape[1]}")
        gone = np.fromiter(removed, np.int64)
        if len(gone) and (gone.min() < 0 or gone.max() >= len(self.vectors)):
            raise ValueError("a removed row is not in the index")
        flags = np.concatenate([self.removed, np.zeros(len(added), bool)])
        flags[gone] = True
        vectors = np.concatenate([self.vectors, added]) if len(added) else self.vectors
        kind = self.kind
        if self.automatic:
            live = int(len(flags) - flags.sum())
            if kind == "exact" and live >= self.params.exact_below:
                kind = "hnsw"
            elif kind == "hnsw" and live < BACK_TO_EXACT * self.params.exact_below:
                kind = "exact"
        graph = None
        if kind == self.kind == "hnsw":  # the graph grows in a copy (0.03 s for 20,000 x 256): no rebuild
            graph = self._index
            if len(added):
                graph = faiss.clone_index(self._index)
                faiss.omp_set_num_threads(_THREADS)
                graph.add(added)
        new = InnerProductIndex(vectors, kind, self.params, flags, graph)
        new.automatic = self.automatic
        return new

    def compacted(self) -> tuple[InnerProductIndex, np.ndarray]:
        """A new index of the live rows only (rebuilt), and the old row number of each of its rows."""
        kept = np.flatnonzero(~self.removed)
        new = InnerProductIndex(self.vectors[kept], self.kind, self.params)  # kinds change in ``changed``
        new.automatic = self.automatic
        return new, kept

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(inner products, row numbers) of each query's ``k`` best live vectors, best first; a row with
        fewer than ``k`` results is padded with -inf and -1."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(int(k), self.live)
        faiss.omp_set_num_threads(1 if len(queries) <= ONE_THREAD_QUERIES else _THREADS)
        if k <= 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        if self.kind == "hnsw":  # the search depth per call: concurrent requests share the index
            params = faiss.SearchParametersHNSW(
                efSearch=max(self.params.search_depth, HNSW_SEARCH_FACTOR * k), sel=self._selector)
        else:
            params = faiss.SearchParameters(sel=self._selector)
        scores, rows = self._index.search(queries, k, params=params)
        return np.where(rows >= 0, scores, -np.inf), rows
