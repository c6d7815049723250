"""Dead letters: list and show what consumers could not process, and replay chosen ones after a fix
(services/common/deadletters.py reads the ``<topic>.dlq`` topics and re-publishes).

They need an API key with the ``admin`` role (gateway/policy.py: ``/v1/admin/*``)."""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from flask_openapi3 import APIBlueprint, Tag
from kafka.errors import KafkaError
from pydantic import BaseModel, Field

from gateway.access import current_key_id
from gateway.problems import ApiProblem, Problem, require_json_object
from gateway.routes import QueryModel
from services.common.bus import PublishError
from services.common.deadletters import (
    DEFAULT_LIMIT,
    DLQ_TOPICS,
    ID_EXAMPLE,
    MAX_LIMIT,
    BadLetterId,
    DeadLetterReadError,
    DeadLetters,
    ReplayRefused,
    UnknownLetters,
)

deadletters = APIBlueprint(
    "deadletters", __name__, url_prefix="/v1/admin",
    abp_tags=[Tag(name="admin", description="Retrain models, follow the jobs, read the audit log (an admin key)")],
)

MAX_REPLAY_IDS = 100
SOURCES = ", ".join(t.removesuffix(".dlq") for t in DLQ_TOPICS)


class DeadLettersQuery(QueryModel):
    topic: str | None = Field(None, min_length=1, max_length=200,
                              description=f"only this topic's dead letters: {SOURCES} (or the same with .dlq)")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="at most this many, newest first")


class LetterPath(BaseModel):
    letter_id: str = Field(max_length=300, description=f"<dead-letter topic>:<partition>:<offset>, e.g. {ID_EXAMPLE}")


class ReplayInfo(BaseModel):
    letter: str = Field(description="the letter whose replay re-published this event (this one or another "
                                    "consumer group's letter of the same event)")
    topic: str
    partition: int
    offset: int = Field(description="where the event was re-published")
    at: str = Field(description="RFC 3339")
    by: str = Field(description="the replaying API key's id, or cli:<user>")
    forced: bool


class DeadLetterOut(BaseModel):
    id: str = Field(description=f"<dead-letter topic>:<partition>:<offset>, e.g. {ID_EXAMPLE}")
    dead_letter_topic: str
    topic: str = Field(description="the topic the event came from (where a replay sends it)")
    partition: int
    offset: int = Field(description="the event's position in its topic")
    consumer_group: str = Field(description="the consumer that could not process it")
    reason: str
    error_type: str
    failed_at: str = Field(description="RFC 3339")
    key: str
    event_id: str | None = None
    event_type: str | None = None
    event: Any = Field(None, description="the original event, when it is JSON")
    event_base64: str | None = Field(None, description="the original bytes, when they are not JSON")
    replayed: ReplayInfo | None = Field(None, description="absent until replayed")


class DeadLetterPage(BaseModel):
    dead_letters: list[DeadLetterOut]
    total: int = Field(description="dead letters of the topic(s) in all")


class ReplayBody(BaseModel):
    ids: list[str] = Field(min_length=1, max_length=MAX_REPLAY_IDS, description=f"e.g. [\"{ID_EXAMPLE}\"]")
    force: bool = Field(False, description="replay letters replayed before, or older than the de-duplication window")


class Replayed(BaseModel):
    id: str
    topic: str
    partition: int
    offset: int = Field(description="where the event was re-published")
    event_id: str | None = None


class ReplayReply(BaseModel):
    replayed: list[Replayed]


def _store(with_publisher: bool = False) -> DeadLetters:
    settings = current_app.extensions["shopai.settings"]
    return DeadLetters(settings, current_app.extensions["shopai.publisher"] if with_publisher else None)


def _unavailable(exc: Exception) -> ApiProblem:
    return ApiProblem(503, f"the dead-letter topics cannot be read or written: {exc}", slug="broker-unavailable")


@deadletters.before_request
def _json_object_body() -> None:
    if request.method == "POST":
        require_json_object(f'{{"ids": ["{ID_EXAMPLE}"], "force": false}}')


@deadletters.get("/dead-letters", responses={200: DeadLetterPage, 400: Problem, 503: Problem})
def list_dead_letters(query: DeadLettersQuery) -> tuple[dict, int]:
    """Events the consumers could not process, newest first: where each came from, which consumer failed it,
    why, the original event, and whether it was replayed. Needs an API key with the `admin` role."""
    try:
        letters, total = _store().list(query.topic, query.limit)
    except BadLetterId as exc:
        raise ApiProblem(400, str(exc), slug="unknown-topic") from exc
    except (KafkaError, DeadLetterReadError) as exc:
        raise _unavailable(exc) from exc
    return {"dead_letters": [letter.to_dict() for letter in letters], "total": total}, 200


@deadletters.get("/dead-letters/<letter_id>", responses={200: DeadLetterOut, 400: Problem, 404: Problem,
                                                         503: Problem})
def get_dead_letter(path: LetterPath) -> tuple[dict, int]:
    """One dead letter by id. Needs an API key with the `admin` role."""
    try:
        letter = _store().get(path.letter_id)
    except BadLetterId as exc:
        raise ApiProblem(400, str(exc), slug="invalid-id") from exc
    except UnknownLetters as exc:
        raise ApiProblem(404, str(exc), slug="unknown-dead-letter") from exc
    except (KafkaError, DeadLetterReadError) as exc:
        raise _unavailable(exc) from exc
    return letter.to_dict(), 200


@deadletters.post("/dead-letters/replay", responses={200: ReplayReply, 400: Problem, 404: Problem, 409: Problem,
                                                     503: Problem})
def replay_dead_letters(body: ReplayBody) -> tuple[dict, int]:
    """Re-publish the chosen letters' original events to their topics, once fixed (e.g. the product arrived):
    each consumer applies an event at most once (by `event_id`), and one that still cannot process it
    dead-letters it again with the new reason. A letter replayed before is a 409 unless `force`.
    Needs an API key with the `admin` role."""
    try:
        results = _store(with_publisher=True).replay(body.ids, force=body.force, by=current_key_id() or "gateway")
    except BadLetterId as exc:
        raise ApiProblem(400, str(exc), slug="invalid-id") from exc
    except UnknownLetters as exc:
        raise ApiProblem(404, str(exc), slug="unknown-dead-letter") from exc
    except ReplayRefused as exc:
        raise ApiProblem(409, str(exc), slug="replay-refused") from exc
    except (KafkaError, DeadLetterReadError, PublishError) as exc:
        raise _unavailable(exc) from exc
    return {"replayed": results}, 200
