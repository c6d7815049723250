"""When the forecasting service trains on its own: as soon as there are orders, then when the events
doubled or the retraining interval passed (``services.common.jobs.TrainingScheduler`` runs the loop)."""

from __future__ import annotations

import time

from services.common.jobs import JobRunner, TrainingScheduler
from services.common.models import ModelHolder, retrain_due
from services.common.settings import Settings
from services.forecasting.core.bundle import ForecastingModel
from services.forecasting.store import ForecastKeys as K
from services.forecasting.store import ForecastStore


class Scheduler(TrainingScheduler):
    """Trains on its own: as soon as there are orders, then when the events doubled or the interval passed."""

    def __init__(self, settings: Settings, store: ForecastStore, holder: ModelHolder[ForecastingModel],
                 jobs: JobRunner) -> None:
        super().__init__(settings.retrain_check_seconds, holder, jobs, enabled=settings.forecast_auto_train)
        self.settings = settings
        self.store = store

    def due(self) -> bool:
        model = self.holder.model
        events = self.store.events_seen()
        sold = int(self.store.redis.hlen(K.orders))
        return retrain_due(
            has_model=model is not None, users=sold, min_users=self.settings.forecast_min_orders,
            events_now=events, events_at_training=int(self.holder.meta.get("events_seen", 0)),
            model_age_seconds=time.time() - model.trained_at if model is not None else 0.0,
            interval_seconds=self.settings.retrain_interval_seconds)
