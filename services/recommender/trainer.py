"""Offline training: the projection in Redis -> a versioned RecommenderModel artifact.

Training reads every user's weighted items (the interaction matrix the consumer
keeps) and the catalog's text, measures the hybrid on a held-out split (the
metrics on the job and in the artifact's meta.json), then fits it on everything,
saves a new version and swaps it in. Requests keep being answered by the old
model until the swap, a single reference assignment.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from services.common.jobs import Progress, TrainResult
from services.common.logging import get_logger
from services.common.models import ModelHolder, ModelRegistry, gate_params, new_version, quality_gate
from services.recommender.core.bundle import RecommenderModel, build_matrix, product_text
from services.recommender.core.defaults import TRAIN_PARAMS, make_components
from services.recommender.core.evaluation import ranking_metrics, stratified_split
from services.recommender.core.forgetting import without_users
from services.recommender.core.hybrid import fit_hybrid
from services.recommender.core.tuning import DEFAULT_BUDGET_SECONDS, Tuning, tune
from services.recommender.forgetting import erased_users
from services.recommender.store import RecommenderKeys as K
from services.recommender.store import RecommenderStore, decode_tags

log = get_logger(__name__)
# Fewer users than this and a model would only echo popularity: the service keeps answering from it.
MIN_USERS = 5
HOLDOUT_RATIO = 0.75


class NotEnoughData(RuntimeError):
    pass


class RecommenderTrainer:
    def __init__(self, store: RecommenderStore, registry: ModelRegistry, holder: ModelHolder[RecommenderModel],
                 on_new_version: Callable[[str, dict], None] | None = None) -> None:
        self.store = store
        self.registry = registry
        self.holder = holder
        self.on_new_version = on_new_version

    def events_seen(self) -> int:
        """How many events the projection has applied (the scheduler retrains when this moves)."""
        return sum(int(v) for v in self.store.redis.hgetall(K.stats).values())

    def users_seen(self) -> int:
        return int(self.store.redis.scard(K.users))

    def train(self, model: str, params: Mapping[str, str], progress: Progress) -> TrainResult:
        started = time.perf_counter()
        params, force = gate_params(params)
        events_before = self.events_seen()
        progress(0.02, "reading interactions and catalog")
        users = list(self.store.all_users())
        if len(users) < MIN_USERS:
            raise NotEnoughData(f"{len(users)} users with interactions; at least {MIN_USERS} are needed")
        catalog = self.store.products(sorted(self.store.active_products()))
        user_ids, item_ids, matrix = build_matrix(users, catalog)
        details = self.store.products([p for p in item_ids if p not in catalog])
        texts = [product_text(catalog.get(p) or details.get(p) or {}, decode_tags) for p in item_ids]
        fit_part, held_out = stratified_split(matrix, HOLDOUT_RATIO, seed=42)
        # The shop's own hyper-parameters, chosen on the training part only: the held-out part stays unseen.
        tuning = self._tune(fit_part, texts, params, progress)
        options = {k: v for k, v in params.items() if k in TRAIN_PARAMS and k != "tuning_seconds"}
        options.update(tuning.chosen if tuning else {})

        def components() -> dict:
            return make_components(texts, **options)

        progress(0.3, f"held-out evaluation on {len(user_ids)} users x {len(item_ids)} products")
        evaluated, _ = fit_hybrid(fit_part, components)
        metrics = ranking_metrics(lambda users_: evaluated.score(fit_part[users_], users_), fit_part, held_out)
        metrics.update(tuning.metrics() if tuning else {})
        gate = self._gate(metrics.get("ndcg_at_10"), options, fit_part, held_out, texts, force, progress)
        metrics.update(gate.metrics())
        progress(0.5, "fitting every model on all interactions")
        hybrid, report = fit_hybrid(matrix, components)
        version = new_version("hybrid")
        bundle = RecommenderModel(version=version, user_ids=user_ids, item_ids=item_ids, hybrid=hybrid,
                                  item_texts=texts, trained_at=time.time())
        # Shoppers erased while this run trained are not saved (the forgetter covers the swap itself).
        bundle = without_users(bundle, erased_users(self.store.redis))
        metrics = {k: float(v) for k, v in metrics.items()}
        meta = {
            "metrics": metrics, "weights": hybrid.weights, "report": report, "users": len(user_ids),
            "products": len(item_ids), "interactions": int(matrix.nnz), "events_seen": events_before,
            "train_seconds": round(time.perf_counter() - started, 2), "params": options,
            "tuning": None if tuning is None else {
                "chosen": tuning.chosen, "skipped": tuning.skipped,
                "tried": [{"params": o, "validation_ndcg_at_10": round(n, 4), "seconds": round(t, 1)}
                          for o, n, t in tuning.tried]},
        }
        progress(0.9, f"saving {version}")
        self.holder.offer(bundle, version, meta, gate)
        if self.on_new_version is not None:
            self.on_new_version(version, meta)
        log.info("model_trained", version=version, seconds=meta["train_seconds"],
                 ndcg_at_10=round(metrics.get("ndcg_at_10", float("nan")), 4), served=gate.serve)
        return TrainResult(model_version=version, metrics=metrics,
                           message=f"trained on {len(user_ids)} users, {len(item_ids)} products"
                                   + (f"; {tuning.describe()}" if tuning else "") + f"; {gate.reason}")

    def _gate(self, new_ndcg: float | None, options: Mapping, fit_part, held_out, texts: list[str], force: bool,
              progress: Progress):
        """The quality gate on held-out NDCG@10. The serving model itself has seen today's held-out
        interactions (it was fitted on everything), so what is measured is its recipe: the serving
        version's hyper-parameters fitted on the same training part and scored on the same held-out part."""
        serving_version = self.holder.version if self.holder.model is not None else ""
        recipe = self.holder.meta.get("params") if serving_version else None
        serving_ndcg = None
        if isinstance(recipe, dict):
            if dict(recipe) == dict(options):
                serving_ndcg = new_ndcg  # the same recipe on the same data: the same figure
            else:
                progress(0.45, f"measuring the serving version's recipe ({serving_version}) on the same split")
                try:
                    def serving_components() -> dict:
                        return make_components(texts, **recipe)

                    evaluated, _ = fit_hybrid(fit_part, serving_components)
                    serving_ndcg = ranking_metrics(lambda users_: evaluated.score(fit_part[users_], users_),
                                                   fit_part, held_out).get("ndcg_at_10")
                except (TypeError, ValueError):  # a recipe this version no longer understands
                    log.warning("serving_recipe_not_evaluated", version=serving_version, exc_info=True)
        return quality_gate("ndcg_at_10", new_ndcg, serving_ndcg, serving_version=serving_version, force=force)

    @staticmethod
    def _tune(fit_part, texts: list[str], params: Mapping[str, str], progress: Progress) -> Tuning | None:
        """Candidate hyper-parameters tried on ``fit_part`` within ``tuning_seconds`` (0: the defaults and the
        request's params, untuned); the params the request set are never changed."""
        budget = float(params.get("tuning_seconds", DEFAULT_BUDGET_SECONDS))
        if budget <= 0:
            return None
        fixed = {k: v for k, v in params.items() if k in TRAIN_PARAMS and k != "tuning_seconds"}
        progress(0.05, f"choosing hyper-parameters on held-out interactions (at most {budget:.0f} s)")
        return tune(fit_part, lambda overrides: make_components(texts, **{**fixed, **overrides}), fixed=fixed,
                    budget_seconds=budget)

