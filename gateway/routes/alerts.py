"""The alerts desk: every service's alerts (alerts.v1) with their state, and acknowledging one (REST ->
the forecasting service's ListAlerts/AcknowledgeAlert; it hosts the desk, docs/architecture.md).

Reading needs an API key with the ``analyst`` role (reorder points and stock-outs are their work) or
``admin``; acknowledging needs ``admin`` (gateway/policy.py)."""

from __future__ import annotations

from typing import Any

import grpc
from flask import Response, current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from gateway.access import current_key_id
from gateway.json import reply_json
from gateway.policy import ADMIN
from gateway.problems import Problem, from_grpc_error
from gateway.routes import QueryModel
from protos import forecasting_pb2 as pb
from services.common.events import EVENT_TYPES

alerts = APIBlueprint(
    "alerts", __name__, url_prefix="/v1/admin",
    abp_tags=[Tag(name="alerts", description="Every service's alerts, open or acknowledged; acknowledge one")],
)

ALERT_TYPES = [f"alert.{a}" for a in EVENT_TYPES["alert"] if a != "acknowledged"]
STATES = {"open": pb.ALERT_STATE_OPEN, "acknowledged": pb.ALERT_STATE_ACKNOWLEDGED}
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class AlertsQuery(QueryModel):
    state: str | None = Field(None, json_schema_extra={"enum": list(STATES)}, pattern="^(open|acknowledged)$",
                              description="only alerts in this state; absent: every state")
    type: str | None = Field(None, json_schema_extra={"enum": ALERT_TYPES}, pattern=r"^alert\.[a-z_]{1,64}$",
                             description="only alerts of this type")
    limit: int = Field(50, ge=1, le=500, description="alerts per page, newest first")
    before: str | None = Field(None, pattern=UUID_PATTERN,
                               description="the `next` of the previous page: the alerts listed after it")


class AlertPath(BaseModel):
    alert_id: str = Field(pattern=UUID_PATTERN, description="an alert's id (its event id on alerts.v1)")


class AlertOut(BaseModel):
    alert_id: str = Field(description="the alert's event id on alerts.v1")
    type: str = Field(description=" | ".join(ALERT_TYPES))
    occurred_at: str | None = Field(None, description="RFC 3339: when the service raised it")
    source: str = Field(description="the service that raised it")
    subject: str = Field(description="what it is about: product:<id>, serial:<serial>, service:<name>, or empty")
    state: str = Field(description="open | acknowledged")
    payload: dict[str, Any] = Field(description="the alert's figures as published (protos/events.proto Alert)")
    acknowledged_at: str | None = Field(None, description="RFC 3339; absent while open")
    acknowledged_by: str = Field(description="the acknowledging API key's id; empty while open")
    acknowledged_role: str = Field(description="the role that allowed it; empty while open")


class AlertPage(BaseModel):
    alerts: list[AlertOut] = Field(description="newest first")
    next: str | None = Field(None, description="pass as `before` for the next page; absent on the last")


def _stub() -> Any:
    return current_app.extensions["shopai.backends"].stub("forecasting")


def _deadline() -> float:
    return current_app.config["GRPC_DEADLINE"]


def _alert_json(message: pb.Alert) -> dict[str, Any]:
    body = reply_json(message)
    body.setdefault("payload", {})
    if not message.HasField("acknowledged_at"):
        body.pop("acknowledged_at", None)
    return body


@alerts.get("/alerts", responses={200: AlertPage, 400: Problem, 503: Problem, 504: Problem})
def list_alerts(query: AlertsQuery) -> Response | tuple[dict, int]:
    """Every service's alerts, newest first: reorder points reached, suspicious or counterfeit code scans,
    models kept from serving by their quality gate; each open or acknowledged (when, by which key).
    Needs an API key with the `analyst` role (or `admin`)."""
    message = pb.ListAlertsRequest(state=STATES.get(query.state or "", pb.ALERT_STATE_UNSPECIFIED),
                                   type=query.type or "", limit=query.limit, before=query.before or "")
    try:
        reply = _stub().ListAlerts(message, timeout=_deadline())
    except grpc.RpcError as exc:
        return from_grpc_error(exc, "forecasting")
    body: dict[str, Any] = {"alerts": [_alert_json(a) for a in reply.alerts]}
    if reply.next:
        body["next"] = reply.next
    return body, 200


@alerts.post("/alerts/<alert_id>/acknowledge",
             responses={200: AlertOut, 400: Problem, 404: Problem, 409: Problem, 503: Problem, 504: Problem})
def acknowledge_alert(path: AlertPath) -> Response | tuple[dict, int]:
    """Acknowledge an open alert: it is recorded on alerts.v1 with the calling key's id, and the alert
    answers acknowledged from then on. An unknown id is a 404; an alert acknowledged before is a 409 that
    says when and by which key. Needs an API key with the `admin` role."""
    message = pb.AcknowledgeAlertRequest(alert_id=path.alert_id, acknowledged_by=current_key_id() or "gateway",
                                         role=ADMIN)
    try:  # never retried: a second call would answer 409 for the first one's acknowledgement
        reply = _stub().AcknowledgeAlert(message, timeout=_deadline())
    except grpc.RpcError as exc:
        return from_grpc_error(exc, "forecasting")
    return _alert_json(reply), 200
