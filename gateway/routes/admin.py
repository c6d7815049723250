"""Admin routes: retrain a service's models and poll the job (REST -> each service's Train/GetJob), list
the stored model versions and serve one (ListModels/ServeModel), and read the audit log of staff reads
of shoppers' data.

They need an API key with the ``admin`` role (gateway/policy.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import grpc
import redis
from flask import Response, current_app, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from gateway.access import current_key_id
from gateway.json import reply_json
from gateway.problems import ApiProblem, Problem, from_grpc_error
from gateway.routes import QueryModel
from protos import common_pb2
from services.common.settings import SERVICE_NAMES

admin = APIBlueprint(
    "admin", __name__, url_prefix="/v1/admin",
    abp_tags=[Tag(name="admin", description="Retrain models, follow the jobs, list and serve model versions, read "
                                            "the audit log (an admin key)")],
)

JOB_STATES = ("queued", "running", "succeeded", "failed")


class TrainPath(BaseModel):
    # Checked in the view so that an unknown service is a 404 naming the services, not a 400.
    service: str = Field(json_schema_extra={"enum": list(SERVICE_NAMES)})


class TrainBody(BaseModel):
    """Optional: an absent body trains every model of the service with its default options."""

    model_config = ConfigDict(extra="forbid", openapi_extra={"required": False})  # type: ignore[typeddict-unknown-key]

    model: str = Field("", max_length=64, description="which model to train (e.g. als); empty: every model")
    params: dict[str, str] = Field({}, description='training options, e.g. {"factors": "64"}')

    @model_validator(mode="before")
    @classmethod
    def _absent_body(cls, value: Any) -> Any:
        return {} if value is None else value


class JobPath(BaseModel):
    job_id: str = Field(min_length=1, max_length=200, description="as returned by the train route, e.g. recommender-6f1c…")


class Job(BaseModel):
    job_id: str
    service: str
    model: str
    state: str = Field(description=" | ".join(JOB_STATES))
    progress: float = Field(description="fraction done, 0..1")
    message: str
    model_version: str
    created_at: str | None = Field(None, description="RFC 3339")
    started_at: str | None = Field(None, description="RFC 3339; absent while queued")
    finished_at: str | None = Field(None, description="RFC 3339; absent until succeeded or failed")
    metrics: dict[str, float]
    requested_by: str


class JobAccepted(Job):
    model_config = ConfigDict(openapi_extra={  # type: ignore[typeddict-unknown-key]
        "description": "Accepted: the job is queued",
        "headers": {"Location": {"description": "/v1/admin/jobs/{job_id}", "schema": {"type": "string"}}},
    })


def _services() -> str:
    return ", ".join(SERVICE_NAMES)


def _stub(service: str) -> Any:
    return current_app.extensions["shopai.backends"].stub(service)


def _deadline() -> float:
    return current_app.config["GRPC_DEADLINE"]


@admin.post(
    "/train/<service>",
    responses={202: JobAccepted, 400: Problem, 404: Problem, 501: Problem, 503: Problem, 504: Problem},
)
def train(path: TrainPath, body: TrainBody) -> Response | tuple[dict, int, dict[str, str]]:
    """Retrain a service's models from the events seen so far.

    Answers 202 with the queued job and its `Location`; poll it with `GET /v1/admin/jobs/{job_id}`.
    A service that cannot train yet answers 501. Needs an API key with the `admin` role."""
    if path.service not in SERVICE_NAMES:
        raise ApiProblem(404, f"unknown service {path.service!r}; expected one of {_services()}", slug="unknown-service")
    if request.get_data() and request.get_json(silent=True) is None:
        raise ApiProblem(400, "the body must be a JSON object such as {\"model\": \"als\", \"params\": {}}, or absent")
    message = common_pb2.TrainRequest(
        model=body.model, params=body.params,
        requested_by=current_key_id() or "gateway",  # the calling key's id (never the key itself)
    )
    try:  # Train is never retried (not idempotent): see gateway/backends.py
        job = _stub(path.service).Train(message, timeout=_deadline())
    except grpc.RpcError as exc:
        return from_grpc_error(exc, path.service)  # names the service that failed
    return reply_json(job), 202, {"Location": f"/v1/admin/jobs/{quote(job.job_id, safe='')}"}


@admin.get(
    "/jobs/<job_id>",
    responses={200: Job, 400: Problem, 404: Problem, 501: Problem, 503: Problem, 504: Problem},
)
def get_job(path: JobPath) -> Response | tuple[dict, int]:
    """The state of a retraining job; the job id's prefix (`recommender-…`) names the service asked.

    Needs an API key with the `admin` role."""
    service = path.job_id.split("-", 1)[0]
    if "-" not in path.job_id or service not in SERVICE_NAMES:
        raise ApiProblem(
            404, f"unknown job {path.job_id!r}: job ids start with the owning service and a dash "
                 f"({_services()}), e.g. recommender-6f1c…", slug="unknown-job",
        )
    try:
        job = _stub(service).GetJob(common_pb2.GetJobRequest(job_id=path.job_id), timeout=_deadline())
    except grpc.RpcError as exc:
        return from_grpc_error(exc, service)
    return reply_json(job), 200


class ModelsQuery(QueryModel):
    service: str | None = Field(None, json_schema_extra={"enum": list(SERVICE_NAMES)},
                                description="only this service's versions")


class ModelPath(BaseModel):
    # The service is checked in the view (an unknown one is a 404 naming the services).
    service: str = Field(json_schema_extra={"enum": list(SERVICE_NAMES)})
    version: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$",
                         description="a stored version, as listed by GET /v1/admin/models")


class ModelVersion(BaseModel):
    service: str
    model_version: str
    serving: bool = Field(description="the version the service answers with now")
    trained_at: str | None = Field(None, description="RFC 3339; absent for a model not trained here (pretrained)")
    metrics: dict[str, float] = Field(description="held-out figures, as on the job that trained it")
    gate: str = Field(description="the quality gate's verdict when it was trained: served | forced | refused | "
                                  "empty (no gate ran)")
    gate_reason: str = Field(description="the figures the gate compared, in words")
    stored: bool = Field(description="false for a serving model that is not in the registry (pretrained)")


class UnavailableService(BaseModel):
    service: str
    detail: str


class ModelsReply(BaseModel):
    models: list[ModelVersion] = Field(description="per service in the order of `services`, newest first")
    unavailable: list[UnavailableService] = Field(description="services that could not be asked (their versions "
                                                              "are missing above)")


def _service_or_404(service: str) -> None:
    if service not in SERVICE_NAMES:
        raise ApiProblem(404, f"unknown service {service!r}; expected one of {_services()}", slug="unknown-service")


@admin.get("/models", responses={200: ModelsReply, 400: Problem, 404: Problem, 503: Problem, 504: Problem})
def list_models(query: ModelsQuery) -> Response | tuple[dict, int]:
    """Every stored model version of each service (or of `service`), newest first, with its held-out
    metrics, when it was trained and its quality gate's verdict; the serving one is marked. Needs an API
    key with the `admin` role."""
    services = SERVICE_NAMES
    if query.service is not None:
        _service_or_404(query.service)
        services = (query.service,)
    models: list[dict] = []
    unavailable: list[dict] = []
    for service in services:
        try:
            reply = _stub(service).ListModels(common_pb2.ListModelsRequest(), timeout=_deadline())
        except grpc.RpcError as exc:
            if query.service is not None:
                return from_grpc_error(exc, service)
            details = exc.details() if hasattr(exc, "details") else str(exc)
            unavailable.append({"service": service, "detail": details or "no answer"})
            continue
        models.extend(reply_json(v) for v in reply.versions)
    return {"models": models, "unavailable": unavailable}, 200


@admin.post(
    "/models/<service>/<version>/serve",
    responses={200: ModelVersion, 400: Problem, 404: Problem, 501: Problem, 503: Problem, 504: Problem},
)
def serve_model(path: ModelPath) -> Response | tuple[dict, int]:
    """Serve a stored version now (pin it, or roll back to it): the service swaps it in without a
    restart, and keeps serving it after one (the registry's current version), until another version is
    served or a newer one passes its quality gate. An unknown service or version is a 404. Needs an API
    key with the `admin` role."""
    _service_or_404(path.service)
    message = common_pb2.ServeModelRequest(model_version=path.version, requested_by=current_key_id() or "gateway")
    try:
        version = _stub(path.service).ServeModel(message, timeout=_deadline())
    except grpc.RpcError as exc:
        return from_grpc_error(exc, path.service)
    return reply_json(version), 200


class AuditQuery(QueryModel):
    limit: int = Field(50, ge=1, le=500, description="entries per page")
    before: str | None = Field(None, pattern=r"^\d{1,20}-\d{1,20}$",
                               description="the `next` of the previous page: entries older than this one")
    subject: str | None = Field(None, min_length=1, max_length=128, description="only reads of this shopper's data")
    key_id: str | None = Field(None, pattern=r"^key-[0-9a-f]{8}$", description="only reads by this API key")

    @field_validator("before")
    @classmethod
    def _stream_id(cls, value: str | None) -> str | None:
        if value is not None and any(int(part) >= 2**64 for part in value.split("-")):
            raise PydanticCustomError("stream_id", "not an entry id: each part is below 2^64")
        return value


class AuditEntry(BaseModel):
    id: str = Field(description="the entry's id; also a cursor")
    key_id: str = Field(description="the staff API key's id (key- + 8 hex digits of its sha256), never the key")
    method: str
    route: str = Field(description="the route as the gateway declares it, e.g. /v1/users/<user_id>/profile")
    subject: str = Field(description="the shopper whose data was read")
    at: str = Field(description="RFC 3339, UTC")


class AuditPageReply(BaseModel):
    entries: list[AuditEntry]
    next: str | None = Field(None, description="pass as `before` for the next (older) page; absent on the last")


@admin.get("/audit", responses={200: AuditPageReply, 400: Problem, 503: Problem})
def audit(query: AuditQuery) -> tuple[dict, int]:
    """Staff reads of shoppers' personal data, newest first: which API key read whose data, through which
    route, when. Recorded before each read is served (a read that cannot be recorded is refused)."""
    log = current_app.extensions["shopai.access"].audit
    try:
        page = log.page(query.limit, before=query.before, subject=query.subject, key_id=query.key_id)
    except redis.RedisError as exc:
        raise ApiProblem(503, f"the audit log cannot be read: {exc}") from exc
    body: dict[str, Any] = {"entries": page.entries}
    if page.next_cursor:
        body["next"] = page.next_cursor
    return body, 200
