"""The recommenders the service trains, with the settings the MovieLens-100k benchmark measured.

``benchmarks/bench_recommender.py`` builds its hybrid with ``make_components``, so what is
served is exactly what was measured (nDCG@10 figures below: that benchmark, 75/25 split).
- ALS keeps BM25 confidence. Alone, ALS without weighting ranks a little better (0.462 against
  0.459; 0.464 against 0.455 over five other splits) because BM25's idf demotes popular movies,
  but inside the hybrid, next to the popularity component, BM25 ALS adds more: the hybrid reaches
  0.495 with it against 0.479 without (0.490 against 0.473 averaged over four splits). TF-IDF was
  worst alone (0.450). 16 factors, 15 iterations is the plain-implicit baseline's setting; 32
  factors ranked worse (0.429 over five splits).
- Item KNN uses cosine: Pearson (columns centred over all shoppers) ranked far lower (0.376 / 0.438).
- BPR: a small search on a validation split of the training data. implicit's BPR falls off
  sharply once learning_rate x iterations passes ~0.5-1 (its negatives are sampled in proportion
  to popularity), so 0.005 x 100 sits on the plateau. It is a component so the "bpr" strategy is
  served; the blend learns how much it counts (nothing on MovieLens, over ALS + KNN).
- EASE (closed-form item-to-item weights) joined for issue #19: on the public sets sent through the service
  (``make bench-recommender SECTION=service``) it lifts the blend most (MovieLens-100k 0.490 -> 0.498,
  InstEval 0.698 -> 0.762 offline with lambda 100); its lambda is each shop's to tune (core/tuning.py).
- Content joins only when there is text for every product; on MovieLens it gets a small weight,
  in the shop it is what makes a product recommendable before anyone has touched it.
"""

from __future__ import annotations

from collections.abc import Callable

from services.recommender.core.content import ContentModel
from services.recommender.core.ease import EASE
from services.recommender.core.factors import ALS, BPR
from services.recommender.core.hybrid import Model
from services.recommender.core.knn import ItemKNN, UserKNN
from services.recommender.core.popularity import Popularity
from services.recommender.core.weighting import Scheme

ALS_FACTORS = 16
ALS_ITERATIONS = 15
ALS_REGULARIZATION = 0.01
ALS_ALPHA = 1.0
ALS_WEIGHTING: Scheme = "bm25"
BPR_FACTORS = 64
BPR_ITERATIONS = 100
BPR_LEARNING_RATE = 0.005
BPR_REGULARIZATION = 0.003
ITEM_KNN_SIMILARITY = "cosine"
ITEM_KNN_NEIGHBOURS = 200
USER_KNN_NEIGHBOURS = 80
CONTENT_MAX_FEATURES = 50000
EASE_REGULARIZATION = 250.0  # MovieLens-100k alone best near 500, InstEval near 100: each shop tunes it
EASE_MAX_ITEMS = 4000
SEED = 42


def weighting(value: str) -> str:
    """A confidence weighting scheme's name (validates a training param)."""
    if value not in ("bm25", "tfidf", "none"):
        raise ValueError(value)
    return value


def similarity(value: str) -> str:
    """An item similarity's name (validates a training param)."""
    if value not in ("cosine", "pearson"):
        raise ValueError(value)
    return value


def seconds(value: str) -> float:
    """A time budget in seconds, 0 or more (validates a training param)."""
    parsed = float(value)
    if not parsed >= 0:
        raise ValueError(value)
    return parsed


# What a training request may override (string values from the API), each with its parser; tuning_seconds is
# the budget of the shop's own hyper-parameter choice (core/tuning.py; 0 = none), not a component's setting.
TRAIN_PARAMS: dict[str, Callable[[str], object]] = {
    "als_factors": int, "als_iterations": int, "als_regularization": float, "als_alpha": float,
    "als_weighting": weighting, "bpr_factors": int, "bpr_iterations": int, "bpr_learning_rate": float,
    "bpr_regularization": float, "item_knn_similarity": similarity, "item_knn_neighbours": int,
    "user_knn_neighbours": int, "ease_regularization": float, "seed": int, "tuning_seconds": seconds,
}


def make_components(item_texts: list[str] | None = None, **overrides: str | float) -> dict[str, Model]:
    """Fresh, unfitted components of the hybrid, keyed by strategy name.

    Content joins only when there is one text per product (index order). ``overrides`` are
    ``TRAIN_PARAMS`` names with values as the API sends them (strings) or already parsed.
    """
    unknown = sorted(set(overrides) - set(TRAIN_PARAMS))
    if unknown:
        raise ValueError(f"unknown training params {unknown}")
    p = {name: TRAIN_PARAMS[name](v) if isinstance(v, str) else v for name, v in overrides.items()}
    seed = p.get("seed", SEED)
    components: dict[str, Model] = {
        "als": ALS(factors=p.get("als_factors", ALS_FACTORS),
                   iterations=p.get("als_iterations", ALS_ITERATIONS),
                   regularization=p.get("als_regularization", ALS_REGULARIZATION),
                   alpha=p.get("als_alpha", ALS_ALPHA), weighting=p.get("als_weighting", ALS_WEIGHTING),
                   seed=seed),
        "item_knn": ItemKNN(p.get("item_knn_similarity", ITEM_KNN_SIMILARITY),
                            p.get("item_knn_neighbours", ITEM_KNN_NEIGHBOURS)),
        "user_knn": UserKNN(p.get("user_knn_neighbours", USER_KNN_NEIGHBOURS)),
        "popular": Popularity(),
        "bpr": BPR(factors=p.get("bpr_factors", BPR_FACTORS),
                   iterations=p.get("bpr_iterations", BPR_ITERATIONS),
                   learning_rate=p.get("bpr_learning_rate", BPR_LEARNING_RATE),
                   regularization=p.get("bpr_regularization", BPR_REGULARIZATION), seed=seed),
    }
    components["ease"] = EASE(p.get("ease_regularization", EASE_REGULARIZATION), EASE_MAX_ITEMS)
    if item_texts is not None:
        components["content"] = ContentModel(CONTENT_MAX_FEATURES).fit_items(item_texts)
    return components
