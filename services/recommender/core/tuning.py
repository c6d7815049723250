"""Each shop's own choice of hyper-parameters: candidate settings tried on the shop's held-out interactions
within a time budget, the best kept (pure: the clock is passed in, so tests need no timing).

Every candidate is a set of ``TRAIN_PARAMS`` overrides on top of what the training request fixed; each is
measured the way the served hybrid is made (components fitted on part of the data, the blend's weights
learnt on the rest, ``Hybrid.learn_weights``), so its figure is the validation nDCG@10 of a whole hybrid.
The defaults are always measured first; the others run while the budget allows one more (the slowest so far
is the estimate), greedily: a candidate is tried on top of the overrides kept so far and kept only if its
hybrid beats the best yet (so EASE's lambda and ALS's size can both change).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import scipy.sparse as sp

from services.recommender.core.evaluation import stratified_split
from services.recommender.core.hybrid import Hybrid, Model

# Tried in this order after the defaults: EASE's regularisation (the most telling), factor models' size and regularisation, ALS without its
# confidence weighting, smaller neighbourhoods (sparse shops), larger ones (dense shops).
CANDIDATES: tuple[dict[str, str], ...] = (
    {"ease_regularization": "100"},
    {"ease_regularization": "1000"},
    {"als_factors": "32", "als_regularization": "0.05"},
    {"als_weighting": "none"},
    {"item_knn_neighbours": "50", "user_knn_neighbours": "30"},
    {"als_factors": "64", "als_regularization": "0.1"},
    {"item_knn_neighbours": "400", "user_knn_neighbours": "160"},
)
DEFAULT_BUDGET_SECONDS = 120.0


@dataclass
class Tuning:
    chosen: dict[str, str]  # the overrides kept ({} = the defaults)
    tried: list[tuple[dict[str, str], float, float]] = field(default_factory=list)  # overrides, nDCG, seconds
    skipped: int = 0  # candidates left out by the budget or fixed by the request

    @property
    def default_ndcg(self) -> float:
        return self.tried[0][1] if self.tried else float("nan")

    @property
    def chosen_ndcg(self) -> float:
        return max((ndcg for _, ndcg, _ in self.tried), default=float("nan"))

    def metrics(self) -> dict[str, float]:
        """What the training job reports (numbers only)."""
        return {"tuning_candidates_tried": float(len(self.tried)), "tuning_candidates_skipped": float(self.skipped),
                "tuning_validation_ndcg_defaults": self.default_ndcg,
                "tuning_validation_ndcg_chosen": self.chosen_ndcg,
                "tuning_seconds": float(sum(s for _, _, s in self.tried))}

    def describe(self) -> str:
        chosen = ", ".join(f"{k}={v}" for k, v in sorted(self.chosen.items())) or "the defaults"
        return (f"tuned on held-out interactions: {chosen} (validation nDCG@10 {self.chosen_ndcg:.4f} against "
                f"{self.default_ndcg:.4f} for the defaults; {len(self.tried)} tried, {self.skipped} skipped)")


def tune(train: sp.csr_matrix, components: Callable[[Mapping[str, str]], dict[str, Model]], *,
         fixed: Mapping[str, str] = {}, budget_seconds: float = DEFAULT_BUDGET_SECONDS,
         candidates: Sequence[Mapping[str, str]] = CANDIDATES, validation_ratio: float = 0.8, seed: int = 7,
         clock: Callable[[], float] = time.perf_counter) -> Tuning:
    """The overrides (of the candidates not touching a ``fixed`` param) whose hybrid ranks the shop's held-out
    interactions best, within ``budget_seconds`` (the defaults are always measured). ``components(overrides)``
    makes fresh, unfitted components with those overrides."""
    fit_part, validation = stratified_split(train, validation_ratio, seed)
    usable = [dict(c) for c in candidates if not set(c) & set(fixed)]
    result = Tuning(chosen={}, skipped=len(candidates) - len(usable))
    started = clock()
    slowest, best = 0.0, -1.0
    for index, candidate in enumerate([{}, *usable]):
        if index > 0 and clock() - started + slowest > budget_seconds:
            result.skipped += len(usable) - index + 1
            break
        overrides = {**result.chosen, **candidate}  # greedy: each kept improvement builds on the last
        t0 = clock()
        probe = Hybrid(components(overrides)).fit(fit_part)
        probe.learn_weights(fit_part, validation, seed=seed)
        seconds = clock() - t0
        slowest = max(slowest, seconds)
        result.tried.append((overrides, float(probe.validation_ndcg), seconds))
        if probe.validation_ndcg > best + 1e-9:
            result.chosen, best = overrides, float(probe.validation_ndcg)
    return result
