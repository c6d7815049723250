"""Versioned model artifacts and their hot swap, the same for every service.

A version is a directory ``<model_dir>/<version>/`` holding ``model.pkl`` and
``meta.json``; the file ``CURRENT`` names the version to serve. Writing goes to a
temporary directory renamed into place, and ``CURRENT`` is replaced atomically,
so a reader never sees half a model. Replicas sharing the directory pick up a new
version by polling ``CURRENT`` (``ModelHolder.refresh``).

Artifacts are pickles: load only from a directory the service itself writes.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from services.common.events import envelope
from services.common.logging import get_logger
from services.common.metrics import MODEL_INFO, MODEL_TRAINED

log = get_logger(__name__)
T = TypeVar("T")
KEEP_VERSIONS = 5
_VERSION_TIME = re.compile(r"(\d{8}T\d{6}Z)")


def new_version(prefix: str) -> str:
    """``<prefix>-20261129T101500Z-1a2b3c``: sortable by time, unique."""
    return f"{prefix}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{os.urandom(3).hex()}"


class ModelRegistry:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def save(self, version: str, model: Any, meta: dict) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=self.directory))
        with open(tmp / "model.pkl", "wb") as fh:
            pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
        (tmp / "meta.json").write_text(json.dumps({"version": version, **meta}, indent=1, default=str))
        final = self.directory / version
        tmp.rename(final)
        current = self.directory / ".CURRENT.tmp"
        current.write_text(version)
        current.replace(self.directory / "CURRENT")
        self._prune()
        return final

    def current_version(self) -> str | None:
        try:
            version = (self.directory / "CURRENT").read_text().strip()
        except FileNotFoundError:
            return None
        return version if (self.directory / version / "model.pkl").exists() else None

    def load(self, version: str) -> tuple[Any, dict]:
        with open(self.directory / version / "model.pkl", "rb") as fh:
            model = pickle.load(fh)  # our own artifact directory, never user input
        meta = json.loads((self.directory / version / "meta.json").read_text())
        return model, meta

    def replace_model(self, version: str, model: Any) -> None:
        """Rewrite a saved version's model in place, atomically (e.g. with erased shoppers taken out)."""
        tmp = self.directory / version / f".model.pkl.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(self.directory / version / "model.pkl")

    def versions(self) -> list[str]:
        if not self.directory.exists():
            return []
        return sorted(p.name for p in self.directory.iterdir() if p.is_dir() and not p.name.startswith("."))

    def _prune(self) -> None:
        current = self.current_version()
        for old in self.versions()[:-KEEP_VERSIONS]:
            if old != current:
                shutil.rmtree(self.directory / old, ignore_errors=True)


class ModelHolder(Generic[T]):
    """The model a service answers with; replaced in one reference assignment (requests never wait)."""

    def __init__(self, registry: ModelRegistry, service: str = "") -> None:
        self.registry = registry
        # The ``service`` label of the model metrics: the registry directory is <data_dir>/models/<service>.
        self.service = service or registry.directory.name
        self._lock = threading.Lock()
        self.model: T | None = None
        self.version = ""
        self.meta: dict = {}
        # Called with the new version after each swap (e.g. to tell other processes which model serves).
        self.on_swap: list[Callable[[str], None]] = []

    def swap(self, model: T, version: str, meta: dict) -> None:
        with self._lock:
            previous = self.version
            self.model, self.version, self.meta = model, version, meta
            if previous and previous != version:
                try:
                    MODEL_INFO.remove(self.service, previous)
                except KeyError:
                    pass
            MODEL_INFO.labels(self.service, version).set(1)
            trained = trained_timestamp(model, version, meta)
            if trained is None:
                try:
                    MODEL_TRAINED.remove(self.service)
                except KeyError:
                    pass
            else:
                MODEL_TRAINED.labels(self.service).set(trained)
        log.info("model_serving", service=self.service, version=version)
        for listener in self.on_swap:
            try:
                listener(version)
            except Exception as exc:  # noqa: BLE001 - a listener must not undo a swap that happened
                log.warning("model_swap_listener_failed", service=self.service, version=version, error=str(exc))

    def update(self, model: T, version: str) -> bool:
        """Replace the served object of the same version (e.g. extended with new products); False if a
        newer version was swapped in meanwhile (the update was made from a stale model)."""
        with self._lock:
            if version != self.version:
                return False
            self.model = model
            return True

    def refresh(self) -> bool:
        """Load the registry's current version if it is not the one serving; True when swapped."""
        version = self.registry.current_version()
        if not version or version == self.version:
            return False
        model, meta = self.registry.load(version)
        self.swap(model, version, meta)
        return True


def trained_timestamp(model: Any, version: str, meta: dict) -> float | None:
    """When a model was trained (Unix time): ``meta["trained_at"]``, the model's ``trained_at``, or the
    time in a ``new_version`` name; None for a model that was never trained here (a pretrained one)."""
    for value in (meta.get("trained_at"), getattr(model, "trained_at", None)):
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    match = _VERSION_TIME.search(version)
    if match:
        return datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    return None


def model_event(service: str, version: str, meta: dict) -> bytes:
    """The ``models.v1`` record announcing a new version (``events.envelope``, type ``model.published``)."""
    metrics = {k: float(v) for k, v in (meta.get("metrics") or {}).items()}
    record = envelope("model.published", {"service": service, "model_version": version, "metrics": metrics}, service)
    return json.dumps(record, separators=(",", ":")).encode()


def retrain_due(
    *, has_model: bool, users: int, min_users: int, events_now: int, events_at_training: int,
    model_age_seconds: float, interval_seconds: float, min_gap_seconds: float = 60.0,
) -> bool:
    """Whether the scheduler should start a training run now.

    First model: as soon as there are enough users. Afterwards only when new events arrived, and then
    when the data doubled since the last run (a young shop learns fast) or the interval passed.
    """
    if not has_model:
        return users >= min_users
    if events_now <= events_at_training or model_age_seconds < min_gap_seconds:
        return False
    if events_now >= 2 * max(events_at_training, 1):
        return True
    return interval_seconds > 0 and model_age_seconds >= interval_seconds
