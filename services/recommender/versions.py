"""Stored model versions other than the serving one, loaded on request (an A/B experiment's arm that names a
``model_version``).

A version is read from the registry on first use and kept ``KEEP_SECONDS``; it is filtered of the shoppers
erased so far when it is loaded (as ``forgetting.py`` filters the serving model), so reloading it every few
seconds keeps later erasures out too. At most ``MAX_VERSIONS`` are kept.
"""

from __future__ import annotations

import threading
import time

import redis

from services.common.models import ModelRegistry
from services.recommender.core.bundle import RecommenderModel
from services.recommender.core.forgetting import without_users
from services.recommender.forgetting import erased_users

KEEP_SECONDS = 5.0
MAX_VERSIONS = 2


class StoredVersions:
    def __init__(self, registry: ModelRegistry, client: redis.Redis) -> None:
        self.registry = registry
        self.redis = client
        self._lock = threading.Lock()
        self._kept: dict[str, tuple[float, RecommenderModel]] = {}

    def get(self, version: str) -> RecommenderModel:
        """The stored version, filtered of erased shoppers; KeyError when it is not stored."""
        now = time.monotonic()
        with self._lock:
            found = self._kept.get(version)
            if found is not None and now - found[0] < KEEP_SECONDS:
                return found[1]
        if version not in self.registry.versions():
            raise KeyError(version)
        model, _meta = self.registry.load(version)
        model = without_users(model, erased_users(self.redis))
        with self._lock:
            self._kept[version] = (now, model)
            while len(self._kept) > MAX_VERSIONS:
                self._kept.pop(min(self._kept, key=lambda v: self._kept[v][0]))
        return model
