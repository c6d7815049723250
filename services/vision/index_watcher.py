"""The index watcher: keeps the served model's index equal to the catalog's pictures."""

from __future__ import annotations

import threading

from services.common.logging import get_logger
from services.common.models import ModelHolder
from services.vision.core.model import Product, VisionModel
from services.vision.store import VisionStore

log = get_logger(__name__)
WATCH_SECONDS = 1.0
WATCH_BATCH = 256


class IndexWatcher:
    """Keeps the served index equal to the catalog's pictures: embeds new and changed products,
    drops removed ones, within a second; ``synced`` is set once it has caught up."""

    def __init__(self, store: VisionStore, holder: ModelHolder[VisionModel]) -> None:
        self.store = store
        self.holder = holder
        self.synced = threading.Event()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                if self.sync() == 0:
                    self.synced.set()
                    stop.wait(WATCH_SECONDS)
            except Exception:  # Redis away for a moment, or a picture that vanished: next round
                log.warning("index_sync_failed", exc_info=True)
                stop.wait(WATCH_SECONDS)

    def sync(self) -> int:
        model, version = self.holder.model, self.holder.version
        if model is None:
            return 0
        fingerprints = self.store.fingerprints()
        changed = [p for p, fp in fingerprints.items()
                   if p not in model.products or model.products[p].fingerprint != fp][:WATCH_BATCH]
        removed = [p for p in model.products if p not in fingerprints]
        if not changed and not removed:
            return 0
        entries = self.store.entries(changed)
        images = {e.product_id: (Product(e.product_id, e.title, e.category, e.fingerprint), e.image)
                  for e in entries}
        if self.holder.update(model.with_products(images, removed), version):
            log.info("index_updated", added=len(images), removed=len(removed), version=version)
        return len(changed) + len(removed)
