"""The served model: every strategy's fitted model plus the id maps, as one versioned artifact.

Users and products are ids in the shop and indices in the matrices; this module
is where one becomes the other. Products that reach the catalog after training
are appended to the content model only (``with_new_products``), so they are
recommendable through their text before the next training run.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from services.recommender.core import interaction_weight
from services.recommender.core.candidates import CandidateIndex
from services.recommender.core.hybrid import Hybrid

TEXT_FIELDS = ("title", "title_zh", "category", "brand", "description", "description_zh")


class CandidateReasons:
    """Per product index, the component that contributed most, for the candidates alone: "" for the others
    (an array of every product's would cost more than the candidates' scores at 50,000 products)."""

    def __init__(self) -> None:
        self._by: dict[int, str] = {}

    def set(self, items: np.ndarray, names) -> None:
        self._by.update(zip(np.asarray(items).tolist(), names, strict=True))

    def __getitem__(self, index):
        """One product's reason; for an index array or a boolean mask, theirs, as an array does."""
        if np.ndim(index) == 0:
            return self._by.get(int(index), "")
        index = np.asarray(index)
        positions = np.flatnonzero(index) if index.dtype == bool else index
        return np.array([self._by.get(int(i), "") for i in positions], dtype=object)


def product_text(details: Mapping[str, str], decode_tags: Callable[[str | None], list[str]]) -> str:
    """One text per product for the content model: both languages' title and description, category, brand, tags."""
    parts = [str(details.get(f) or "") for f in TEXT_FIELDS]
    parts += decode_tags(details.get("tags"))
    return " ".join(p for p in parts if p)


def user_items_from_events(events: Iterable[Mapping]) -> dict[str, dict[str, float]]:
    """Each user's weighted items from interaction events (dicts in the envelope format), as the
    projection accumulates them in Redis: the offline path to the same matrix."""
    out: dict[str, dict[str, float]] = {}
    for event in events:
        family, action = event["type"].split(".", 1)
        payload = event["payload"]
        if family != "interaction" or not payload.get("product_id"):
            continue
        weight = interaction_weight(action, payload)
        if weight > 0:
            items = out.setdefault(str(payload["user_id"]), {})
            items[payload["product_id"]] = items.get(payload["product_id"], 0.0) + weight
    return out


def build_matrix(
    users: Iterable[tuple[str, Mapping[str, float]]], catalog: Iterable[str]
) -> tuple[list[str], list[str], sp.csr_matrix]:
    """(user ids, product ids, users x products weights): every catalog product is a column, interacted or not."""
    item_ids: list[str] = sorted(set(catalog))
    index = {p: i for i, p in enumerate(item_ids)}
    user_ids: list[str] = []
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for u, items in users:
        r = len(user_ids)
        user_ids.append(u)
        for pid, weight in items.items():
            if weight <= 0:
                continue
            if pid not in index:  # a product that left the catalog still tells who likes what
                index[pid] = len(item_ids)
                item_ids.append(pid)
            rows.append(r)
            cols.append(index[pid])
            vals.append(float(weight))
    matrix = sp.csr_matrix((vals, (rows, cols)), shape=(len(user_ids), len(item_ids)), dtype=np.float64)
    return user_ids, item_ids, matrix


@dataclass
class RecommenderModel:
    version: str
    user_ids: list[str]
    item_ids: list[str]
    hybrid: Hybrid
    item_texts: list[str]
    trained_at: float
    n_trained_items: int = field(init=False)

    def __post_init__(self) -> None:
        self.n_trained_items = len(self.item_ids)
        self.user_index = {u: i for i, u in enumerate(self.user_ids)}
        self.item_index = {p: i for i, p in enumerate(self.item_ids)}
        self.candidate_index()  # built with the model; its faiss structure is rebuilt on load

    def candidate_index(self) -> CandidateIndex | None:
        """The candidate stage's index (``core/candidates.py``), built once (a model saved before
        the stage existed builds it on first use); copies of the model share it."""
        if "_candidates" not in self.__dict__:
            self._candidates = CandidateIndex.for_hybrid(self.hybrid.components)
        return self._candidates

    @property
    def strategies(self) -> tuple[str, ...]:
        return tuple(self.hybrid.components)

    def component(self, name: str):
        return self.hybrid.components[name]

    def row(self, items: Mapping[str, float]) -> sp.csr_matrix:
        """A user's weighted items as a 1 x trained-products row (unknown products are ignored)."""
        cols = [self.item_index[p] for p in items if self.item_index.get(p, self.n_trained_items) < self.n_trained_items]
        vals = [float(items[self.item_ids[c]]) for c in cols]
        return sp.csr_matrix((vals, ([0] * len(cols), cols)), shape=(1, self.n_trained_items), dtype=np.float64)

    def user_position(self, user: str) -> np.ndarray:
        return np.array([self.user_index.get(user, -1)])

    def scores(self, strategy: str, row: sp.csr_matrix, user: str = "") -> np.ndarray:
        """Scores over every product of the model (trained ones, then those added since), higher is better."""
        if strategy == "hybrid":
            return self.explained_scores(row, user)[0]
        n_all = len(self.item_ids)
        scores = np.asarray(self.component(strategy).score(row, self.user_position(user)), dtype=np.float64).ravel()
        if len(scores) < n_all:  # a model that cannot know new products ranks them last
            scores = np.concatenate([scores, np.full(n_all - len(scores), -np.inf)])
        return scores

    def explained_scores(self, row: sp.csr_matrix, user: str = "", candidates: int | None = None,
                         recent: sp.csr_matrix | None = None) -> tuple[np.ndarray, np.ndarray | CandidateReasons]:
        """The hybrid's scores and, per product, the component that contributed most (the reason).

        ``candidates``: score only about that many candidates (``core/candidates.py``; ``recent``:
        the products the shopper looked at last, weighted), every other product -inf; None: all."""
        index = self.candidate_index() if candidates is not None else None
        if index is not None:
            return self._candidate_scores(index, row, user, candidates, recent)
        parts = {name: self.hybrid.weights[name] * np.asarray(z).ravel()
                 for name, z in self.hybrid.component_scores(row, self.user_position(user)).items()}
        names = np.array(list(parts))
        stacked = np.vstack(list(parts.values()))
        base = stacked.sum(axis=0)
        dominant = names[np.argmax(stacked, axis=0)]
        extra = len(self.item_ids) - self.n_trained_items
        if extra:
            base = np.concatenate([base, self._new_products_in_hybrid(row, base)])
            dominant = np.concatenate([dominant, np.full(extra, "content")])
        return base, dominant

    def _candidate_scores(self, index: CandidateIndex, row: sp.csr_matrix, user: str, n: int,
                          recent: sp.csr_matrix | None) -> tuple[np.ndarray, CandidateReasons]:
        """``explained_scores`` over the candidates alone; the others score -inf and have no reason."""
        components = self.hybrid.components
        items = index.candidates(components, row, n, len(self.item_ids), recent)
        trained, new = items[items < self.n_trained_items], items[items >= self.n_trained_items]
        parts = {name: self.hybrid.weights[name] * z[0] for name, z in
                 self.hybrid.candidate_scores(row, self.user_position(user), trained, index.sample).items()}
        base = np.full(len(self.item_ids), -np.inf)
        dominant = CandidateReasons()
        if parts:
            stacked = np.vstack(list(parts.values()))
            base[trained] = stacked.sum(axis=0)
            dominant.set(trained, np.array(list(parts), dtype=object)[np.argmax(stacked, axis=0)])
        if len(new) and "content" in components and self.hybrid.weights.get("content", 0) > 0:
            content = components["content"].score_items(row, None, np.concatenate([new, index.sample]))[0]
            known = content[len(new):]  # new products enter through content, on the blend's scale (as below)
            base[new] = self.hybrid.weights["content"] * (content[: len(new)] - known.mean()) / (known.std() or 1.0)
            dominant.set(new, ["content"] * len(new))
        return base, dominant

    def _new_products_in_hybrid(self, row: sp.csr_matrix, base: np.ndarray) -> np.ndarray:
        """New products enter the blend through content alone, on the blend's own scale."""
        extra = len(self.item_ids) - self.n_trained_items
        if extra == 0 or "content" not in self.hybrid.components or self.hybrid.weights.get("content", 0) <= 0:
            return np.full(extra, -np.inf)
        content = np.asarray(self.component("content").score(row)).ravel()
        known = content[: self.n_trained_items]
        spread = float(known.std()) or 1.0
        z = (content[self.n_trained_items :] - float(known.mean())) / spread
        return self.hybrid.weights["content"] * z

    def similar(self, product_id: str, strategy: str, n: int) -> list[tuple[str, float]]:
        """Products most like ``product_id`` by one model, or by all of them ("hybrid": mean rank score)."""
        item = self.item_index[product_id]
        names = [strategy] if strategy != "hybrid" else [s for s in ("item_knn", "content", "als")
                                                          if s in self.hybrid.components]
        if item >= self.n_trained_items:
            names = ["content"]  # only text knows a product added after training
        combined: dict[int, float] = {}
        for name in names:
            neighbours = self._neighbours(name, item, n * 3 if len(names) > 1 else n)
            for rank, (j, score) in enumerate(neighbours):
                # Blend by reciprocal rank: the models' similarity scales are not comparable.
                combined[j] = combined.get(j, 0.0) + (score if len(names) == 1 else 1.0 / (rank + 1))
        best = sorted(combined.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
        return [(self.item_ids[j], s) for j, s in best if j != item]

    def _neighbours(self, name: str, item: int, n: int) -> list[tuple[int, float]]:
        model = self.component(name)
        if hasattr(model, "similar_items"):
            if item < model_size(model, self.n_trained_items):
                return model.similar_items(item, n)
            return []
        factors = model.item_factors if hasattr(model, "item_factors") else None
        if factors is None or item >= len(factors):
            return []
        norms = np.linalg.norm(factors, axis=1) + 1e-12
        sims = factors @ factors[item] / (norms * norms[item])
        sims[item] = -np.inf
        best = np.argsort(-sims)[:n]
        return [(int(j), float(sims[j])) for j in best]

    def because_of(self, row: sp.csr_matrix, product_id: str) -> str | None:
        """The product of the user's history that best explains ``product_id`` (item similarity), if any."""
        item = self.item_index.get(product_id)
        if item is None or item >= self.n_trained_items or "item_knn" not in self.hybrid.components:
            return None
        anchor = self.component("item_knn").because_of(row, item)
        return None if anchor is None else self.item_ids[anchor]

    def content_anchor(self, row: sp.csr_matrix, product_id: str) -> str | None:
        """The product of the user's row whose text is closest to ``product_id``'s."""
        item = self.item_index.get(product_id)
        if item is None or "content" not in self.hybrid.components or row.nnz == 0:
            return None
        vectors = self.component("content").items
        sims = np.asarray((vectors[row.indices] @ vectors[item].T).todense()).ravel()
        return self.item_ids[int(row.indices[int(np.argmax(sims))])]

    def with_new_products(self, products: Mapping[str, str]) -> RecommenderModel:
        """A copy that also knows these products (id -> text) through the content model."""
        fresh = {p: t for p, t in products.items() if p not in self.item_index}
        if not fresh or "content" not in self.hybrid.components:
            return self
        out = copy.copy(self)
        out.hybrid = copy.copy(self.hybrid)
        out.hybrid.components = dict(self.hybrid.components)
        content = copy.copy(self.component("content"))
        content.add_items(list(fresh.values()))
        out.hybrid.components["content"] = content
        out.item_ids = [*self.item_ids, *fresh]
        out.item_texts = [*self.item_texts, *fresh.values()]
        out.item_index = {p: i for i, p in enumerate(out.item_ids)}
        return out


def model_size(model: object, default: int) -> int:
    items = getattr(model, "items", None)
    return items.shape[0] if items is not None and hasattr(items, "shape") else default
