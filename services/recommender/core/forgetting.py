"""Forgetting shoppers in a trained model (the right to be forgotten, issue #17).

A model holds three things per trained shopper: their row of the training matrix in user KNN
(what makes them someone else's neighbour), their trained factors in ALS and BPR, and their id.
``without_users`` returns a copy with those rows zeroed and the ids gone, so the shopper is scored
as a stranger (cold start, from an empty row) and votes for nobody. What the shoppers taught the
item-side models (item similarities, item factors, popularity) is aggregate; the next training,
which reads a projection that no longer has them, removes it too.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp

from services.recommender.core.bundle import RecommenderModel
from services.recommender.core.knn import UserKNN


def without_users(model: RecommenderModel, users: Iterable[str]) -> RecommenderModel:
    """A copy of ``model`` that knows nothing of ``users`` (the same object when it knows none of them)."""
    rows = sorted({model.user_index[u] for u in users if u in model.user_index})
    if not rows:
        return model
    out = copy.copy(model)
    out.hybrid = copy.copy(model.hybrid)
    out.hybrid.components = {name: _forget_rows(component, rows)
                             for name, component in model.hybrid.components.items()}
    gone = set(rows)
    out.user_ids = ["" if i in gone else u for i, u in enumerate(model.user_ids)]
    out.user_index = {u: i for i, u in enumerate(out.user_ids) if u}
    return out


def _forget_rows(component: object, rows: list[int]) -> object:
    """The component without those training rows (components without per-shopper state are shared)."""
    if isinstance(component, UserKNN) and component.train is not None:
        keep = np.ones(component.train.shape[0])
        keep[rows] = 0.0
        train = sp.csr_matrix(sp.diags(keep) @ component.train)
        train.eliminate_zeros()
        return copy.copy(component).fit(train)
    inner = getattr(component, "model", None)
    factors = getattr(inner, "user_factors", None)
    if isinstance(factors, np.ndarray):
        wiped = factors.copy()
        wiped[[r for r in rows if r < len(wiped)]] = 0.0
        out = copy.copy(component)
        out.model = copy.copy(inner)
        out.model.user_factors = wiped
        return out
    return component
