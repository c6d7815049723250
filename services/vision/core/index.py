"""The catalog's vector index: product ids, their categories and L2-normalised embeddings.

Inner product on normalised vectors is cosine similarity. The search is ``services/common/ann.py``: an
exact scan (faiss ``IndexFlatIP``) below ``vision_index_exact_below`` pictures (20,000 by default) and
HNSW from there, switched automatically as products arrive and leave. The benchmark (``make bench-vision
SECTION=scale``) chose the default: at 256 dimensions (the fine-tuned embedder) an exact scan costs
~0.4 ms of CPU per query at 10,000 pictures, ~1.1 ms at 20,000, ~4 ms at 50,000 (the vectors no longer
fit the cache) and ~8 ms at 100,000, where HNSW answers in ~0.4 ms with recall@10 0.999 on clustered
vectors (benchmarks/README.md, "Image search over 100,000 pictures").

The object is immutable: ``upsert``/``remove`` return a new index (copy-on-write), so a request
never reads one that is being changed. Rows keep their numbers: a removed or replaced product's row
stays (``ids`` holds ``None`` there) and is left out of answers, until removed rows are a quarter of
the index and it is rebuilt without them. It pickles as plain arrays; faiss is rebuilt on load with the
parameters ``configure`` set (the service's settings), so changed settings apply to a loaded model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from services.common.ann import AnnParams, InnerProductIndex

DEFAULT_EXACT_BELOW = 20_000
COMPACT_REMOVED = 0.25  # removed rows are dropped (the index rebuilt) from this fraction of all rows
_params = AnnParams(exact_below=DEFAULT_EXACT_BELOW)


def configure(params: AnnParams) -> None:
    """The threshold and HNSW parameters of every index built from now on (the service's settings)."""
    global _params
    _params = params


def parameters() -> AnnParams:
    return _params


class VectorIndex:
    def __init__(self, dim: int, ids: Sequence[str] = (), vectors: np.ndarray | None = None,
                 categories: Sequence[str] = (), _ann: InnerProductIndex | None = None) -> None:
        self.dim = int(dim)
        self.ids: list[str | None] = list(ids)
        self.categories = np.asarray(list(categories), dtype=object)
        if _ann is None:
            vectors = np.zeros((0, self.dim), np.float32) if vectors is None else vectors
            _ann = InnerProductIndex(vectors, params=_params)
        self.ann = _ann
        if len(self.ids) != len(self.ann) or len(self.categories) != len(self.ids):
            raise ValueError("ids, vectors and categories must have the same length")
        self.position = {pid: i for i, pid in enumerate(self.ids) if pid is not None}

    @property
    def vectors(self) -> np.ndarray:
        """Every row's vector (a removed row's too: look products up through ``position``)."""
        return self.ann.vectors

    @property
    def kind(self) -> str:
        return self.ann.kind

    def __len__(self) -> int:
        return len(self.position)

    def __getstate__(self) -> dict:
        live = [i for i, pid in enumerate(self.ids) if pid is not None]
        return {"dim": self.dim, "ids": [self.ids[i] for i in live], "vectors": self.vectors[live],
                "categories": list(self.categories[live])}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["dim"], state["ids"], state["vectors"], state["categories"])  # type: ignore[misc]

    def _changed(self, ids: list[str | None], categories: np.ndarray, ann: InnerProductIndex) -> VectorIndex:
        if ann.live < len(ann) and len(ann) - ann.live >= COMPACT_REMOVED * len(ann):
            ann, kept = ann.compacted()
            ids, categories = [ids[i] for i in kept], categories[kept]
        return VectorIndex(self.dim, ids, categories=categories, _ann=ann)

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, categories: Sequence[str]) -> VectorIndex:
        if not len(ids):
            return self
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have {vectors.shape[1]} dimensions, the index {self.dim}")
        last = {pid: i for i, pid in enumerate(ids)}  # a product named twice: its last vector
        order = sorted(last.values())
        replaced = [self.position[ids[i]] for i in order if ids[i] in self.position]
        rows = self.ids.copy()
        for r in replaced:
            rows[r] = None
        cats = self.categories.copy()
        cats[replaced] = None
        ann = self.ann.changed(np.asarray(vectors, np.float32)[order], replaced)
        added = np.asarray([categories[i] for i in order], dtype=object)
        return self._changed(rows + [ids[i] for i in order], np.concatenate([cats, added]), ann)

    def remove(self, ids: Iterable[str]) -> VectorIndex:
        gone = [self.position[pid] for pid in set(ids) if pid in self.position]
        if not gone:
            return self
        rows = self.ids.copy()
        for r in gone:
            rows[r] = None
        cats = self.categories.copy()
        cats[gone] = None
        return self._changed(rows, cats, self.ann.changed(removed=gone))

    def similarity(self, query: np.ndarray, pid: str) -> float:
        i = self.position.get(pid)
        return float(self.vectors[i] @ query) if i is not None else -1.0

    def search(self, query: np.ndarray, k: int, category: str | None = None) -> list[tuple[str, float]]:
        """The ``k`` most similar products (id, cosine), best first; only ``category`` when given."""
        if not self.position or k <= 0:
            return []
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        if category is not None:  # removed rows have no category
            rows = np.flatnonzero(self.categories == category)
            if not len(rows):
                return []
            sims = self.vectors[rows] @ q[0]
            top = rows[np.argsort(-sims, kind="stable")[:k]]
            return [(self.ids[i], float(self.vectors[i] @ q[0])) for i in top]
        sims, rows = self.ann.search(q, k)
        return [(self.ids[i], float(s)) for s, i in zip(sims[0], rows[0], strict=True) if i >= 0]
