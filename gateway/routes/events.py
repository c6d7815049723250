"""POST /v1/events: validate a batch of events and publish the good ones with acks='all'."""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from gateway.problems import ApiProblem, Problem
from services.common.bus import BrokerStorageError, PublishError
from services.common.events import InvalidEvent, parse_event
from services.common.topics import INTERNAL_FAMILIES
from services.common.vault import VAULT_ERRORS

events = APIBlueprint("events", __name__, url_prefix="/v1", abp_tags=[Tag(name="events", description="Ingest shop events")])

MAX_EVENTS_PER_REQUEST = 5000


class EventIn(BaseModel):
    """One event in the envelope of protos/events.proto; the payload's schema depends on ``type``
    (the payload messages of the same file)."""

    event_id: str = Field(description="UUID, used for de-duplication")
    type: str = Field(description="e.g. interaction.purchase")
    schema_version: int = 1
    occurred_at: str = Field(description="RFC 3339 time the fact happened")
    source: str = ""
    payload: dict[str, Any]


# Who writes the families POST /v1/events refuses (services/common/topics.py INTERNAL_FAMILIES).
WRITERS = {"user": "DELETE /v1/users/{user_id}", "code": "the vision service", "handoff": "the assistant",
           "alert": "the services (acknowledge one with POST /v1/admin/alerts/{alert_id}/acknowledge)",
           "recommendation": "the gateway, one per recommendation answer"}


class EventBatch(BaseModel):
    events: list[EventIn] = Field(description=f"1 to {MAX_EVENTS_PER_REQUEST} events")


class EventResult(BaseModel):
    index: int
    event_id: str | None = None
    status: str = Field(description="accepted or rejected")
    reason: str | None = None
    topic: str | None = None


class EventsAccepted(BaseModel):
    accepted: int
    rejected: int
    results: list[EventResult]


@events.post(
    "/events",
    responses={202: EventsAccepted, 400: Problem, 413: Problem, 503: Problem},
    summary="Publish a batch of events (or one event) to Kafka",
)
def post_events() -> tuple[dict, int]:
    """Validates each event against protos/events.proto. Valid events are published to their
    topic (202 once the broker acknowledged them all); each invalid event is reported with its
    reason. A batch with no valid event is a 400. A 503 says why nothing was acknowledged: the broker away or
    slow, its storage unable to write (a full disk), or the vault away; the same events may be sent again."""
    body = request.get_json(silent=True)
    if body is None:
        raise ApiProblem(400, "the body must be JSON: {\"events\": [...]} or one event object")
    raw = body.get("events") if isinstance(body, dict) and "events" in body else [body]
    if not isinstance(raw, list) or not raw:
        raise ApiProblem(400, "events must be a non-empty array")
    if len(raw) > MAX_EVENTS_PER_REQUEST:
        raise ApiProblem(413, f"at most {MAX_EVENTS_PER_REQUEST} events per request")
    results: list[dict[str, Any]] = []
    valid = []
    for index, item in enumerate(raw):
        event_id = item.get("event_id") if isinstance(item, dict) else None
        try:
            event = parse_event(item)
            if event.family in INTERNAL_FAMILIES:
                writer = WRITERS.get(event.family, "the vision service")
                raise InvalidEvent(f"{event.type} events are written by {writer} only")
        except InvalidEvent as exc:
            results.append({"index": index, "event_id": event_id, "status": "rejected", "reason": str(exc)})
            continue
        valid.append(event)
        results.append({"index": index, "event_id": event.event_id, "status": "accepted", "topic": event.topic})
    accepted = len(valid)
    summary = {"accepted": accepted, "rejected": len(raw) - accepted, "results": results}
    if not valid:
        raise ApiProblem(400, "no event in the request is valid", slug="invalid-events", errors=results)
    try:
        current_app.extensions["shopai.publisher"]().publish(valid)
    except BrokerStorageError as exc:
        raise ApiProblem(503, f"the event broker did not acknowledge the events: {exc}", slug="broker-storage",
                         headers={"Retry-After": "30"}) from exc
    except PublishError as exc:
        raise ApiProblem(503, f"the event broker did not acknowledge the events: {exc}") from exc
    except VAULT_ERRORS as exc:  # personal fields are never published unsealed
        raise ApiProblem(503, f"the personal-data vault is unavailable: {exc}") from exc
    return summary, 202
