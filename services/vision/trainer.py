"""Training the vision model: the catalog's pictures -> a fine-tuned, versioned embedder + index.

One run: read every product picture from the projection; make held-out query photos
(``distort.make_query``, seeded, an implementation the training never samples from); fine-tune
(core/finetune.py, progress and checkpoints); embed the catalog into a new index; fit the
identification settings on training-style photos of the held-out products and of strangers made
from them (``unknown_rule``); save the version and swap it in. The job's metrics
compare the new model's recall with the model that was serving, on the same photos.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping

import numpy as np
from PIL import Image

from services.common.jobs import Progress, TrainResult
from services.common.logging import get_logger
from services.common.models import ModelHolder, ModelRegistry, gate_params, new_version, quality_gate
from services.vision.core.distort import make_query, stranger, training_transform
from services.vision.core.finetune import finetune, training_params
from services.vision.core.index import VectorIndex
from services.vision.core.model import Product, VisionModel, evaluate, fit_unknown_rule, tune
from services.vision.store import CatalogEntry, VisionStore

log = get_logger(__name__)
TRAINABLE_MODELS = ("", "embedder")
HELD_OUT_QUERIES = 500


def catalog_images(entries: list[CatalogEntry]) -> dict:
    return {e.product_id: (Product(e.product_id, e.title, e.category, e.fingerprint), e.image) for e in entries}


def unknown_rule(model: VisionModel, held: list[CatalogEntry], images: Mapping[str, Image.Image],
                 params: Mapping[str, float]) -> dict[str, float]:
    """The identification settings, fitted on a training-style photo of each held-out product and a
    photo of a stranger made from it and its nearest neighbour in the catalog (``distort.stranger``)."""
    random.seed(0)  # the training pipeline draws from ``random``: the same photos for the same catalog
    photo = training_transform(int(params["image_size"]), params["crop_min"], as_picture=True)
    index = model.index
    strangers = []
    for e in held:
        hits = index.search(index.vectors[index.position[e.product_id]], 2, None)
        other = next((pid for pid, _ in hits if pid != e.product_id), e.product_id)
        strangers.append(photo(stranger(e.image, images[other])))
    return fit_unknown_rule(model, [photo(e.image) for e in held], [e.product_id for e in held], strangers)


class VisionTrainer:
    def __init__(self, store: VisionStore, holder: ModelHolder[VisionModel], registry: ModelRegistry,
                 on_new_version: Callable[[str, dict], None] | None = None) -> None:
        self.store = store
        self.holder = holder
        self.registry = registry
        self.on_new_version = on_new_version

    def train(self, model_name: str, raw: Mapping[str, str], progress: Progress) -> TrainResult:
        if model_name not in TRAINABLE_MODELS:
            raise ValueError(f"model {model_name!r}: the vision service trains 'embedder' (or empty for all)")
        own, force = gate_params(raw)
        params = training_params(own)
        started = time.time()
        entries = self.store.catalog()
        if len(entries) < 2:
            raise ValueError(f"{len(entries)} product picture(s) in the catalog: fine-tuning needs at least 2")
        progress(0.02, f"{len(entries)} product pictures")
        rng = np.random.default_rng(0)
        held = [entries[i] for i in sorted(rng.choice(len(entries), min(HELD_OUT_QUERIES, len(entries)),
                                                      replace=False))]
        queries = [make_query(e.image, rng) for e in held]
        truth = [e.product_id for e in held]
        previous, previous_version = self.holder.model, self.holder.version
        before = evaluate(previous, queries, truth) if previous is not None and len(previous.index) else {}

        version = new_version("vision")
        plan: dict[str, float] = {}
        net = finetune([e.image for e in entries], params,
                       report=lambda f, msg: progress(0.05 + 0.85 * f, msg),
                       checkpoint_dir=str(self.registry.directory / "checkpoints" / version), plan=plan)
        progress(0.92, "embedding the catalog")
        model = VisionModel(net=net, image_size=int(params["image_size"]), kind="finetuned",
                            index=VectorIndex(int(params["embed_dim"])), trained_at=time.time())
        model = model.with_products(catalog_images(entries))
        after = evaluate(model, queries, truth)
        progress(0.95, "fitting the unknown rule")
        settings = unknown_rule(model, held, {e.product_id: e.image for e in entries}, params)
        model = tune(model, settings)
        metrics = {"products": float(len(entries)), "held_out_queries": float(len(queries)),
                   "recall_at_1": after["recall_at_1"], "recall_at_5": after["recall_at_5"],
                   "softmax_scale": settings["scale"], "min_similarity": settings["min_similarity"],
                   "min_confidence": settings["min_confidence"],
                   **{k: v for k, v in settings.items() if k.startswith("calibration_")},
                   "train_seconds": round(time.time() - started, 1), **plan}
        if before:
            metrics.update(previous_recall_at_1=before["recall_at_1"], previous_recall_at_5=before["recall_at_5"])
        # The quality gate: the model that was serving, on the same query photos (``before``).
        gate = quality_gate("recall_at_1", after["recall_at_1"], before.get("recall_at_1"),
                            serving_version=previous_version if before else "", force=force)
        metrics.update(gate.metrics())
        meta = {"metrics": metrics, "params": params, "kind": "finetuned",
                "previous_version": previous_version}
        self.holder.offer(model, version, meta, gate)
        if self.on_new_version is not None:
            self.on_new_version(version, meta)
        log.info("vision_trained", version=version, **metrics)
        return TrainResult(version, metrics, f"recall@1 {after['recall_at_1']:.3f} on {len(queries)} query photos; "
                                             f"{gate.reason}")
