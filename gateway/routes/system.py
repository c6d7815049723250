"""Liveness, readiness and metrics."""

from __future__ import annotations

from flask import Response, current_app
from flask_openapi3 import APIBlueprint, Tag
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

system = APIBlueprint("system", __name__, abp_tags=[Tag(name="system", description="Health and metrics")])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    backends: dict[str, str]
    redis: str


@system.get("/healthz", responses={200: Health})
def healthz() -> tuple[dict, int]:
    """Liveness: the gateway process answers."""
    return {"status": "ok"}, 200


@system.get("/readyz", responses={200: Readiness, 503: Readiness})
def readyz() -> tuple[dict, int]:
    """Readiness: every backend's gRPC health check says SERVING and Redis answers."""
    backends = current_app.extensions["shopai.backends"].health_all(timeout=1.0)
    try:
        current_app.extensions["shopai.redis"].ping()
        redis_state = "ok"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        redis_state = f"unavailable: {exc}"
    ready = all(state == "SERVING" for state in backends.values()) and redis_state == "ok"
    return {"status": "ready" if ready else "not ready", "backends": backends, "redis": redis_state}, (
        200 if ready else 503
    )


@system.get("/metrics", responses={200: {
    "description": "Prometheus text exposition format",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}})
def prometheus_metrics() -> Response:
    """Prometheus metrics of the gateway process."""
    return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)
