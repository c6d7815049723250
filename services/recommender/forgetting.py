"""The serving model forgets erased shoppers within a second of their erasure.

The projection applies ``user.erased`` to Redis (the shopper's keys go, the shopper joins the
erasure register, and the erasure waits in ``model-pending``). This watcher, one per replica,
filters the register out of whatever model serves: after each erasure (the register grew) and
after each swap or update (a freshly trained model, one loaded from disk, one extended with new
products), so a training run that read the shopper before the erasure never serves them. Then it
rewrites the versions kept on disk without the shopper and marks the erasure's ``recommender_model``
part done.
"""

from __future__ import annotations

import pickle
import threading

import redis

from services.common import privacy
from services.common.events import now_time
from services.common.logging import get_logger
from services.common.models import ModelHolder
from services.recommender.core.bundle import RecommenderModel
from services.recommender.core.forgetting import without_users

log = get_logger(__name__)
CHECK_SECONDS = 0.5
GROUP = "recommender"


def erased_users(client: redis.Redis) -> set[str]:
    return set(client.smembers(privacy.register_key(GROUP)))


class ModelForgetter:
    def __init__(self, client: redis.Redis, holder: ModelHolder[RecommenderModel]) -> None:
        self.redis = client
        self.holder = holder
        self._checked: tuple[RecommenderModel, int] | None = None  # (the model filtered, register size then)

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(CHECK_SECONDS):
            try:
                self.check()
            except redis.RedisError as exc:  # Redis away for a moment: try again next tick
                log.warning("model_forget_check_failed", error=str(exc))

    def check(self) -> int:
        """Filter the serving model if it or the register changed; mark pending erasures done.
        Returns how many shoppers were dropped from the model now."""
        dropped = self._filter_serving_model()
        self._mark_done()
        return dropped

    def _filter_serving_model(self) -> int:
        model, version = self.holder.model, self.holder.version
        size = int(self.redis.scard(privacy.register_key(GROUP)))
        if model is None or (self._checked is not None and self._checked[0] is model and self._checked[1] == size):
            return 0
        filtered = without_users(model, erased_users(self.redis))
        if filtered is not model and not self.holder.update(filtered, version):
            return 0  # a new version was swapped in meanwhile: filter that one next tick
        self._checked = (filtered, size)
        dropped = len(model.user_index) - len(filtered.user_index)
        if dropped:
            log.info("model_forgot_users", version=version, users=dropped)
        return dropped

    def _mark_done(self) -> None:
        pending = self.redis.hgetall(privacy.model_pending_key())
        if not pending:
            return
        self.scrub_artifacts(set(pending))
        model = self.holder.model
        now = now_time()
        with self.redis.pipeline(transaction=True) as pipe:
            for user, erasure_id in pending.items():
                if model is not None and user in model.user_index:
                    continue  # not filtered yet (a swap raced the check): next tick
                pipe.hset(privacy.status_key(erasure_id), "recommender_model", now)
                pipe.expire(privacy.status_key(erasure_id), privacy.STATUS_TTL_SECONDS)
                pipe.hdel(privacy.model_pending_key(), user)
            pipe.execute()

    def scrub_artifacts(self, users: set[str]) -> int:
        """Take ``users`` out of every model version kept on disk (a restart or a rollback must not bring
        them back); returns how many versions were rewritten."""
        registry = self.holder.registry
        rewritten = 0
        for version in registry.versions():
            try:
                model, _ = registry.load(version)
            except (OSError, EOFError, pickle.UnpicklingError):  # pruned meanwhile, or being written
                continue
            filtered = without_users(model, users)
            if filtered is not model:
                registry.replace_model(version, filtered)
                rewritten += 1
        if rewritten:
            log.info("model_artifacts_scrubbed", versions=rewritten, users=len(users))
        return rewritten
