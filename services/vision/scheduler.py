"""The training scheduler: fine-tunes the embedder once the catalog has enough pictures, then as it grows."""

from __future__ import annotations

import time

from services.common.jobs import JobRunner, TrainingScheduler
from services.common.models import ModelHolder, retrain_due
from services.common.settings import Settings
from services.vision.core.model import VisionModel
from services.vision.store import VisionStore


class Scheduler(TrainingScheduler):
    """Fine-tunes on its own: once the catalog has enough pictures, then as it grows."""

    def __init__(self, settings: Settings, store: VisionStore, holder: ModelHolder[VisionModel],
                 jobs: JobRunner) -> None:
        super().__init__(settings.retrain_check_seconds, holder, jobs, enabled=settings.vision_auto_train)
        self.settings = settings
        self.store = store

    def due(self) -> bool:
        model = self.holder.model
        finetuned = model is not None and model.kind == "finetuned"
        images = self.store.images_count()
        return retrain_due(
            has_model=finetuned, users=images, min_users=self.settings.vision_min_products, events_now=images,
            events_at_training=int(self.holder.meta.get("metrics", {}).get("products", 0)),
            model_age_seconds=time.time() - model.trained_at if finetuned else 0.0,
            interval_seconds=self.settings.retrain_interval_seconds)
