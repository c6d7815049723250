"""When the recommender trains on its own: a first model once enough shoppers were seen, then as the data
grows (``models.retrain_due``); the loop is every service's ``jobs.TrainingScheduler``."""

from __future__ import annotations

import time

from services.common.jobs import JobRunner, TrainingScheduler
from services.common.models import ModelHolder, retrain_due
from services.common.settings import Settings
from services.recommender.core.bundle import RecommenderModel
from services.recommender.trainer import MIN_USERS, RecommenderTrainer


class RecommenderScheduler(TrainingScheduler):
    """Starts training runs on its own: a first model once there is data, then as data grows."""

    def __init__(self, settings: Settings, trainer: RecommenderTrainer, jobs: JobRunner,
                 holder: ModelHolder[RecommenderModel]) -> None:
        super().__init__(settings.retrain_check_seconds, holder, jobs)
        self.settings = settings
        self.trainer = trainer

    def due(self) -> bool:
        holder: ModelHolder[RecommenderModel] = self.holder
        model = holder.model
        return retrain_due(
            has_model=model is not None, users=self.trainer.users_seen(), min_users=MIN_USERS,
            events_now=self.trainer.events_seen(), events_at_training=int(holder.meta.get("events_seen", 0)),
            model_age_seconds=time.time() - model.trained_at if model is not None else 0.0,
            interval_seconds=self.settings.retrain_interval_seconds,
        )
