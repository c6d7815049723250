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
import math
import os
import pickle
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from services.common import topics
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

    def save(self, version: str, model: Any, meta: dict, serve: bool = True) -> Path:
        """Store a version; ``serve`` makes it the current one (False: kept, e.g. refused by its quality gate)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=self.directory))
        with open(tmp / "model.pkl", "wb") as fh:
            pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
        (tmp / "meta.json").write_text(json.dumps({"version": version, **meta}, indent=1, default=str))
        final = self.directory / version
        tmp.rename(final)
        if serve:
            self.set_current(version)
        self._prune()
        return final

    def set_current(self, version: str) -> None:
        """Make a stored version the one to serve (a pin or a roll-back); atomically, so replicas polling
        ``CURRENT`` and a restarted service load it. KeyError for a version that is not stored."""
        if not (self.directory / version / "model.pkl").exists():
            raise KeyError(version)
        current = self.directory / f".CURRENT.{os.getpid()}.{threading.get_ident()}.tmp"
        current.write_text(version)
        current.replace(self.directory / "CURRENT")

    def meta(self, version: str) -> dict:
        """A stored version's meta.json ({} when it cannot be read)."""
        try:
            return json.loads((self.directory / version / "meta.json").read_text())
        except (OSError, ValueError):
            return {}

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
        # When this process last kept a trained version back (its quality gate failed); 0: never.
        self.refused_at = 0.0

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

    def offer(self, model: T, version: str, meta: dict, gate: GateDecision) -> None:
        """Store a newly trained version with its gate's verdict in ``meta["gate"]``, and serve it when
        the gate lets it through (otherwise it is kept, listed, and can be served by :meth:`serve`)."""
        meta["gate"] = gate.record()
        self.registry.save(version, model, meta, serve=gate.serve)
        if gate.serve:
            self.swap(model, version, meta)
        else:
            self.refused_at = time.time()
            log.warning("model_refused_by_gate", service=self.service, version=version, reason=gate.reason)

    def serve(self, version: str) -> dict:
        """Pin a stored version (or roll back to it): it becomes ``CURRENT`` (kept across restarts, picked
        up by replicas) and serves at once. KeyError for an unknown version. Returns its meta."""
        if version not in self.registry.versions():
            raise KeyError(version)
        model, meta = self.registry.load(version)
        self.registry.set_current(version)
        self.swap(model, version, meta)
        return meta

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
    """The ``models.v1`` record announcing a new version (``events.envelope``, type ``model.published``);
    ``served`` says whether it serves, once a quality gate judged it."""
    metrics = {k: float(v) for k, v in (meta.get("metrics") or {}).items()}
    payload: dict[str, Any] = {"service": service, "model_version": version, "metrics": metrics}
    if isinstance(meta.get("gate"), dict):
        payload["served"] = bool(meta["gate"].get("serve"))
    record = envelope("model.published", payload, service)
    return json.dumps(record, separators=(",", ":")).encode()


def gate_alert(service: str, version: str, meta: dict) -> dict | None:
    """The ``alerts.v1`` envelope (``alert.model_gate_failed``) for a version its quality gate kept from
    serving, or None when it serves."""
    gate = meta.get("gate")
    if not isinstance(gate, dict) or gate.get("serve", True):
        return None
    payload = {"service": service, "model_version": version, "metric": gate.get("metric", ""),
               "new": gate.get("new"), "serving": gate.get("serving"),
               "serving_version": gate.get("serving_version", ""), "reason": gate.get("reason", "")}
    return envelope("alert.model_gate_failed", payload, service)


def announce_version(publish: Callable[[str, str, dict], None], service: str, version: str, meta: dict) -> None:
    """Publish a newly trained version on ``models.v1`` and, when its gate kept it from serving, an alert
    on ``alerts.v1`` (``publish(topic, key, envelope)``, e.g. ``LazyEnvelopePublisher.publish``)."""
    publish(topics.MODELS, service, json.loads(model_event(service, version, meta)))
    alert = gate_alert(service, version, meta)
    if alert is not None:
        publish(topics.ALERTS, service, alert)


# -- the quality gate -------------------------------------------------------------------------------------
FORCE_SERVE = "force_serve"
# Figures this close are a tie: the same recipe refitted on the same data may differ in the last digits.
TIE_TOLERANCE = 1e-9


def gate_params(params: Mapping[str, str]) -> tuple[dict[str, str], bool]:
    """A training job's params without ``force_serve``, and whether it was asked for ("true"/"false";
    anything else raises ValueError): every service accepts it besides its own params."""
    rest = {k: v for k, v in params.items() if k != FORCE_SERVE}
    raw = str(params.get(FORCE_SERVE, "false")).strip().lower()
    if raw not in ("true", "false", "1", "0"):
        raise ValueError(f"{FORCE_SERVE} must be true or false, got {params[FORCE_SERVE]!r}")
    return rest, raw in ("true", "1")


@dataclass(frozen=True)
class GateDecision:
    """Whether a newly trained version serves, and why: its held-out ``metric`` (``new``) against the
    serving version's on the same held-out data (``serving``; None when nothing was measured)."""

    serve: bool
    metric: str
    new: float | None
    serving: float | None
    serving_version: str
    higher_is_better: bool
    forced: bool
    reason: str

    def record(self) -> dict:
        """As kept in the version's meta.json (``gate``)."""
        return {"serve": self.serve, "metric": self.metric, "new": self.new, "serving": self.serving,
                "serving_version": self.serving_version, "higher_is_better": self.higher_is_better,
                "forced": self.forced, "reason": self.reason}

    def metrics(self) -> dict[str, float]:
        """For the job's metrics: ``served`` (1/0), ``gate_<metric>`` (the new version's figure) and
        ``gate_serving_<metric>`` (the serving one's, when it was measured)."""
        out = {"served": 1.0 if self.serve else 0.0}
        if self.new is not None:
            out[f"gate_{self.metric}"] = float(self.new)
        if self.serving is not None:
            out[f"gate_serving_{self.metric}"] = float(self.serving)
        return out


def _finite(value: float | None) -> bool:
    return value is not None and isinstance(value, int | float) and math.isfinite(value)


def quality_gate(metric: str, new: float | None, serving: float | None, *, serving_version: str = "",
                 higher_is_better: bool = True, force: bool = False) -> GateDecision:
    """The quality gate every trainer applies (pure). ``new`` and ``serving`` are the same held-out
    ``metric`` of the new version and of the serving one. The new one serves unless it scores worse
    (a tie, within TIE_TOLERANCE for the last digits of a refit, serves: it learnt from newer data); with
    nothing serving, or no figure for the serving one,
    it serves. A new figure that could not be measured (nan) while the serving one was is refused.
    ``force`` (the job's ``force_serve=true``) serves it whatever the figures, and says so."""
    def fmt(value: float | None) -> str:
        return "n/a" if not _finite(value) else f"{value:.4f}"

    better = "higher" if higher_is_better else "lower"
    args: dict[str, Any] = {"metric": metric, "new": float(new) if _finite(new) else None,
                            "serving": float(serving) if _finite(serving) else None,
                            "serving_version": serving_version, "higher_is_better": higher_is_better}
    if not _finite(serving):
        what = "nothing was serving" if not serving_version else f"{serving_version} has no {metric} figure"
        return GateDecision(True, forced=force, reason=f"served ({what} to compare with)", **args)
    compared = (f"held-out {metric} {fmt(new)} against {fmt(serving)} for the serving {serving_version}"
                f" ({better} is better)")
    tie = _finite(new) and math.isclose(new, serving, rel_tol=TIE_TOLERANCE, abs_tol=TIE_TOLERANCE)
    worse = not tie and (not _finite(new) or (new < serving if higher_is_better else new > serving))
    if not worse:
        return GateDecision(True, forced=force, reason=f"served: {compared}", **args)
    if force:
        return GateDecision(True, forced=True, reason=f"served because force_serve=true, although worse: {compared}",
                            **args)
    return GateDecision(False, forced=False, reason=f"kept but not served, worse than the serving model: {compared}; "
                                                    f"serve it with POST /v1/admin/models/<service>/<version>/serve "
                                                    f"or train with force_serve=true", **args)


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
