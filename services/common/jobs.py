"""Admin retraining jobs and the model registry's RPCs, the same for every service (common.proto's
Train / GetJob / ListModels / ServeModel).

A job runs on one background thread per service (training is CPU-heavy; two at
once would only slow both down) and its state lives in Redis, so any replica can
answer GetJob and a restart does not forget finished jobs. A job that was queued
or running when its process died is reported FAILED by whoever reads it next.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
import redis

from protos import common_pb2
from services.common.cache import key
from services.common.catchup import LogCatchUp
from services.common.grpc_server import timestamp
from services.common.logging import get_logger
from services.common.models import ModelHolder, gate_params, trained_timestamp

log = get_logger(__name__)

# progress(fraction, message) lets a training function report how far it is.
Progress = Callable[[float, str], None]


@dataclass
class TrainResult:
    model_version: str
    metrics: dict[str, float] = field(default_factory=dict)
    message: str = "trained"


# train(model, params, progress) -> TrainResult; raise to fail the job (the old model keeps serving).
TrainFn = Callable[[str, Mapping[str, str], Progress], TrainResult]


def lower_priority(nice: int, service: str = "") -> None:
    """Lower the calling thread's CPU priority by ``nice`` (Linux schedules threads, so this thread alone). The
    threads and processes it starts later inherit it: implicit's OpenMP workers, joblib's processes, a
    trainer's own pool. Serving threads keep theirs, so on a machine whose cores training fills the
    answers still get the CPU first (benchmarks/README.md, "Training beside serving")."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as exc:  # e.g. a sandbox without the call: training at the same priority, said once
        log.warning("training_priority_unchanged", service=service, error=str(exc))


class JobRunner:
    def __init__(self, service: str, client: redis.Redis, train: TrainFn, ttl_seconds: int = 7 * 24 * 3600,
                 catchup: LogCatchUp | None = None, nice: int = 0) -> None:
        """``catchup``: wait, before training, for the consumer to apply what was accepted before the request
        (services/common/catchup.py); None trains on what is applied. ``nice``: how much lower the worker's CPU
        priority is than the process's (``settings.jobs_nice``)."""
        self.service = service
        self.nice = nice
        self.catchup = catchup
        self.redis = client
        self.train = train
        self.ttl = ttl_seconds
        self.instance = uuid.uuid4().hex  # jobs of a dead process are recognisable
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._busy = threading.Event()

    def _key(self, job_id: str) -> str:
        return key("jobs", self.service, job_id)

    def _save(self, job: dict) -> None:
        self.redis.set(self._key(job["job_id"]), json.dumps(job), ex=self.ttl)

    def _load(self, job_id: str) -> dict | None:
        raw = self.redis.get(self._key(job_id))
        return json.loads(raw) if raw else None

    def submit(self, model: str, params: Mapping[str, str], requested_by: str) -> common_pb2.Job:
        job = {
            "job_id": f"{self.service}-{uuid.uuid4().hex}", "service": self.service, "model": model,
            "params": dict(params), "state": "QUEUED", "progress": 0.0, "message": "queued",
            "model_version": "", "created_at": time.time(), "started_at": None, "finished_at": None,
            "metrics": {}, "requested_by": requested_by, "instance": self.instance,
            "log_ends": self._log_ends(),
        }
        self._save(job)
        self._queue.put(job["job_id"])
        return to_proto(job)

    def _log_ends(self) -> dict[str, int] | None:
        """Where the consumer's topics end as the job is requested (None without a catch-up or a broker)."""
        if self.catchup is None:
            return None
        try:
            return self.catchup.ends()
        except Exception as exc:  # noqa: BLE001 - no broker now: the job trains on what is applied, and says so
            log.warning("training_catchup_unavailable", service=self.service, error=str(exc))
            return None

    def get(self, job_id: str) -> common_pb2.Job | None:
        job = self._load(job_id)
        if job is None:
            return None
        if job["state"] in ("QUEUED", "RUNNING") and job["instance"] != self.instance and not self._alive(job):
            job.update(state="FAILED", message="the process running this job stopped", finished_at=time.time())
            self._save(job)
        return to_proto(job)

    def _alive(self, job: dict) -> bool:
        """Another replica's job counts as alive while it keeps writing progress (heartbeat)."""
        return time.time() - float(job.get("heartbeat") or job["created_at"]) < 120

    @property
    def busy(self) -> bool:
        return self._busy.is_set() or not self._queue.empty()

    def run(self, stop: threading.Event) -> None:
        """The worker loop (a ServiceRunner worker), at ``nice`` lower priority than serving."""
        lower_priority(self.nice, self.service)
        while not stop.is_set():
            try:
                job_id = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if job_id is None:
                break
            self._busy.set()
            try:
                self._run_one(job_id)
            finally:
                self._busy.clear()

    def _run_one(self, job_id: str) -> None:
        job = self._load(job_id)
        if job is None:
            return
        job.update(state="RUNNING", started_at=time.time(), heartbeat=time.time(), message="training")
        self._save(job)

        def progress(fraction: float, message: str) -> None:
            job.update(progress=max(0.0, min(1.0, float(fraction))), message=message, heartbeat=time.time())
            self._save(job)

        caught_up: dict[str, float] = {}
        try:
            if self.catchup is not None and job.get("log_ends"):
                try:
                    caught_up = self.catchup.wait(job["log_ends"], progress)
                except Exception as exc:  # noqa: BLE001 - the broker went away: train on what is applied
                    log.warning("training_catchup_failed", job_id=job_id, error=str(exc))
            result = self.train(job["model"], job["params"], progress)
            result.metrics = {**caught_up, **result.metrics}
        except Exception as exc:  # the job reports it; the service keeps serving the old model
            log.exception("training_failed", job_id=job_id)
            job.update(state="FAILED", message=f"{type(exc).__name__}: {exc}", finished_at=time.time())
        else:
            job.update(
                state="SUCCEEDED", progress=1.0, message=result.message, model_version=result.model_version,
                metrics=result.metrics, finished_at=time.time(),
            )
        self._save(job)


def to_proto(job: Mapping) -> common_pb2.Job:
    """A job as common.proto's ``Job`` (its times are Unix times, never 0, or None before they happen)."""
    return common_pb2.Job(
        job_id=job["job_id"], service=job["service"], model=job["model"],
        state=common_pb2.JobState.Value(f"JOB_STATE_{job['state']}"), progress=job["progress"],
        message=job["message"], model_version=job["model_version"], created_at=timestamp(job["created_at"]),
        started_at=timestamp(job["started_at"]), finished_at=timestamp(job["finished_at"]),
        metrics={k: float(v) for k, v in job["metrics"].items()}, requested_by=job["requested_by"],
    )


def train_rpc(jobs: JobRunner, request: common_pb2.TrainRequest, context: grpc.ServicerContext, *,
              trainable: tuple[str, ...], models_hint: str,
              check: Callable[[dict[str, str]], object]) -> common_pb2.Job:
    """The body of every service's ``Train`` RPC: the model name and the params are checked now (a bad
    value fails the call, not the job an hour later), then the job is queued."""
    if request.model not in trainable:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"model {request.model!r}: {models_hint}")
    params = dict(request.params)
    try:
        check(gate_params(params)[0])  # force_serve is every service's, the rest the service's own
    except (TypeError, ValueError) as exc:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad params: {exc}")
    return jobs.submit(request.model, params, request.requested_by or "unknown")


def get_job_rpc(jobs: JobRunner, request: common_pb2.GetJobRequest, context: grpc.ServicerContext) -> common_pb2.Job:
    """The body of every service's ``GetJob`` RPC."""
    job = jobs.get(request.job_id) if request.job_id else None
    if job is None:
        context.abort(grpc.StatusCode.NOT_FOUND, f"no job {request.job_id!r}")
    return job


def model_version_proto(service: str, version: str, meta: dict, serving: bool, stored: bool = True
                        ) -> common_pb2.ModelVersion:
    gate = meta.get("gate") if isinstance(meta.get("gate"), dict) else {}
    verdict = "" if not gate else "forced" if gate.get("forced") else "served" if gate.get("serve") else "refused"
    metrics = {}
    for name, value in (meta.get("metrics") or {}).items():
        try:
            metrics[name] = float(value)
        except (TypeError, ValueError):
            continue
    return common_pb2.ModelVersion(
        service=service, model_version=version, serving=serving, metrics=metrics, gate=verdict,
        gate_reason=str(gate.get("reason", "")), stored=stored,
        trained_at=timestamp(trained_timestamp(None, version, meta)),
    )


def list_models_rpc(holder: ModelHolder, service: str, request: common_pb2.ListModelsRequest,
                    context: grpc.ServicerContext) -> common_pb2.ListModelsResponse:
    """The body of every service's ``ListModels`` RPC: the registry's versions, newest first, the one this
    replica serves marked (a serving model that is not stored, e.g. a pretrained one, is listed first)."""
    stored = [v for v in reversed(holder.registry.versions()) if (holder.registry.directory / v / "model.pkl").exists()]
    out = [model_version_proto(service, v, holder.registry.meta(v), v == holder.version) for v in stored]
    if holder.version and holder.version not in stored:
        out.insert(0, model_version_proto(service, holder.version, holder.meta, True, stored=False))
    return common_pb2.ListModelsResponse(versions=out)


def serve_model_rpc(holder: ModelHolder, service: str, request: common_pb2.ServeModelRequest,
                    context: grpc.ServicerContext) -> common_pb2.ModelVersion:
    """The body of every service's ``ServeModel`` RPC: pin or roll back to a stored version (hot swap here,
    ``CURRENT`` for restarts and the other replicas)."""
    version = request.model_version
    try:
        if not version or "/" in version or version.startswith("."):
            raise KeyError(version)
        meta = holder.serve(version)
    except KeyError:
        context.abort(grpc.StatusCode.NOT_FOUND,
                      f"no stored {service} model version {version!r}; ListModels names the stored ones")
        raise AssertionError from None
    log.info("model_pinned", service=service, version=version, requested_by=request.requested_by or "unknown")
    return model_version_proto(service, version, meta, True)


class TrainingScheduler:
    """Starts a training job on its own (the same loop for every service): every
    ``retrain_check_seconds`` it first picks up a version another replica trained, then, when
    ``enabled`` and the runner is idle, submits a job if :meth:`due` says so — at most once a minute,
    so a failing job is not retried in a tight loop, and not for ``gate_backoff_seconds`` after this
    process kept a trained version back (its quality gate failed: the serving model and the events it
    was trained on did not change, so :meth:`due` would keep saying yes). Subclasses say when training
    is due."""

    gate_backoff_seconds = 3600.0

    def __init__(self, check_seconds: float, holder: Any, jobs: JobRunner, enabled: bool = True) -> None:
        self.check_seconds = check_seconds
        self.holder = holder
        self.jobs = jobs
        self.enabled = enabled
        self._last_attempt = 0.0

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.check_seconds):
            try:
                self.holder.refresh()  # a version another replica trained
                if (self.enabled and not self.jobs.busy
                        and time.monotonic() - self._last_attempt >= 60
                        and time.time() - getattr(self.holder, "refused_at", 0.0) >= self.gate_backoff_seconds
                        and self.due()):
                    self._last_attempt = time.monotonic()
                    self.jobs.submit("", {}, "scheduler")
            except Exception:
                log.warning("scheduler_check_failed", exc_info=True)

    def due(self) -> bool:  # pragma: no cover - interface
        raise NotImplementedError
