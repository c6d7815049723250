"""Liveness, readiness and metrics."""

from __future__ import annotations

import socket

from flask import Response, current_app
from flask_openapi3 import APIBlueprint, Tag
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

system = APIBlueprint("system", __name__, abp_tags=[Tag(name="system", description="Health and metrics")])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str = Field(description="ready, or degraded when anything below is down")
    backends: dict[str, str]
    redis: str
    broker: str = Field(description="ok, or unavailable with the reason (events cannot be accepted)")
    down: list[str] = Field(description="what is down: backends by name, redis, broker (empty when ready)")


@system.get("/healthz", responses={200: Health})
def healthz() -> tuple[dict, int]:
    """Liveness: the gateway process answers."""
    return {"status": "ok"}, 200


@system.get("/readyz", responses={200: Readiness, 503: Readiness})
def readyz() -> tuple[dict, int]:
    """Readiness: every backend's gRPC health check says SERVING, Redis answers and the broker accepts connections;
    otherwise 503, ``degraded``, naming what is down (the storefront shows a notice from it)."""
    backends = current_app.extensions["shopai.backends"].health_all(timeout=1.0)
    try:
        current_app.extensions["shopai.redis"].ping()
        redis_state = "ok"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        redis_state = f"unavailable: {exc}"
    broker_state = _broker_state(current_app.extensions["shopai.settings"].kafka_bootstrap_servers)
    down = [name for name, state in backends.items() if state != "SERVING"]
    down += [name for name, state in (("redis", redis_state), ("broker", broker_state)) if state != "ok"]
    return {"status": "degraded" if down else "ready", "backends": backends, "redis": redis_state,
            "broker": broker_state, "down": down}, (503 if down else 200)


def _broker_state(bootstrap_servers: str, timeout: float = 0.5) -> str:
    """ok when one of the bootstrap brokers accepts a connection, else why none did."""
    errors = []
    for address in bootstrap_servers.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
                return "ok"
        except (OSError, ValueError) as exc:
            errors.append(f"{address.strip()}: {getattr(exc, 'strerror', None) or exc}")
    return "unavailable: " + "; ".join(errors)


@system.get("/metrics", responses={200: {
    "description": "Prometheus text exposition format",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}})
def prometheus_metrics() -> Response:
    """Prometheus metrics of the gateway process."""
    return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)
