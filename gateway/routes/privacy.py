"""The right to be forgotten: ``DELETE /v1/users/{user_id}`` and the erasure's status.

The route shreds the shopper's personal fields in the vault at once (when the vault is configured),
drops the answers the gateway could serve from the cache, and publishes ``user.erased`` to
``privacy.v1`` (acks=all); every service then removes what it keeps under the shopper and marks
its part done (``services/common/privacy.py``). Both routes need the ``privacy`` role
(gateway/policy.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import redis
from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field

from gateway.access import current_key_id
from gateway.problems import ApiProblem, Problem
from services.common import privacy as erasure
from services.common.bus import PublishError
from services.common.events import format_time
from services.common.logging import get_logger
from services.common.recommendations import RecommenderKeys

log = get_logger(__name__)

privacy = APIBlueprint(
    "privacy", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="privacy", description="Erase a shopper's data and follow the erasure (a privacy key)")],
)

USER_ID = Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$", description="the shopper's user id")


class UserPath(BaseModel):
    user_id: str = USER_ID


class EraseQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=200, description="why, kept with the erasure event (e.g. shopper request)")


class ErasurePath(BaseModel):
    erasure_id: str = Field(min_length=36, max_length=36, pattern=r"^[0-9a-f-]{36}$",
                            description="as returned by DELETE /v1/users/{user_id}")


class ErasureAccepted(BaseModel):
    model_config = ConfigDict(openapi_extra={  # type: ignore[typeddict-unknown-key]
        "description": "Accepted: every service removes the shopper's data; follow status_url",
        "headers": {"Location": {"description": "/v1/privacy/erasures/{erasure_id}", "schema": {"type": "string"}}},
    })

    erasure_id: str
    user_id: str
    status: str = Field(description="pending until every service applied the erasure, then done")
    status_url: str
    vault_key_destroyed: bool | None = Field(
        None, description="whether the vault held a key of the shopper and destroyed it (null without a vault)")


class ServicePart(BaseModel):
    done: bool
    done_at: str | None = Field(None, description="RFC 3339")


class ErasureState(BaseModel):
    erasure_id: str
    user_id: str
    requested_at: str | None = Field(None, description="RFC 3339")
    status: str = Field(description="pending | done")
    services: dict[str, ServicePart] = Field(description="recommender (data and serving model), chatbot, vision, forecasting")


def _redis() -> redis.Redis:
    return current_app.extensions["shopai.redis"]


def _shred(user_id: str) -> bool | None:
    """Destroy the shopper's key in the vault (crypto-shredding their sealed fields); None without a vault."""
    vault = current_app.extensions.get("shopai.vault")
    if vault is None:
        return None
    try:
        return bool(vault.destroy(user_id))
    except Exception as exc:  # whatever the vault raises, the erasure must not half-happen
        log.error("vault_destroy_failed", error=str(exc))
        raise ApiProblem(503, f"the personal-data vault could not destroy the shopper's key: {exc}") from exc


def _drop_cached_answers(user_id: str) -> None:
    """The gateway serves a shopper's cached recommendations from Redis: they go now, not when the
    recommender's consumer gets to the event."""
    try:
        _redis().delete(RecommenderKeys.answers(user_id))
    except redis.RedisError as exc:  # the recommender's projection deletes them too
        log.warning("erasure_answers_not_dropped", error=str(exc))


def _record_request(erasure_id: str, user_id: str, at: datetime) -> None:
    key = erasure.status_key(erasure_id)
    try:
        with _redis().pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "requested_at", format_time(at))
            pipe.hset(key, "user_id", user_id)
            pipe.expire(key, erasure.STATUS_TTL_SECONDS)
            pipe.execute()
    except redis.RedisError as exc:  # the services write the status as they apply the erasure
        log.warning("erasure_request_not_recorded", error=str(exc))


@privacy.delete(
    "/users/<user_id>",
    responses={202: ErasureAccepted, 400: Problem, 401: Problem, 403: Problem, 503: Problem},
    summary="Erase a shopper: every store, cache and model forgets them",
)
def erase_user(path: UserPath, query: EraseQuery) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Publishes `user.erased`; each service deletes the shopper's data and ignores their later
    events, the recommender's model drops them, and replays never bring them back. Answers 202 with
    the erasure's id; `GET` its `status_url` until `status` is `done`. An unknown shopper is erased
    all the same (nothing to remove); a repeated request within a minute is the same erasure.
    Needs an API key with the `privacy` role."""
    at = datetime.now(UTC)
    shredded = _shred(path.user_id)
    event = erasure.erasure_event(path.user_id, at, reason=query.reason, requested_by=current_key_id() or "")
    _drop_cached_answers(path.user_id)
    try:
        current_app.extensions["shopai.publisher"]().publish([event])
    except PublishError as exc:
        raise ApiProblem(503, f"the event broker did not acknowledge the erasure: {exc}") from exc
    _record_request(event.event_id, path.user_id, at)
    url = f"/v1/privacy/erasures/{quote(event.event_id, safe='')}"
    log.info("erasure_requested", erasure_id=event.event_id)
    body = {"erasure_id": event.event_id, "user_id": path.user_id, "status": "pending", "status_url": url,
            "vault_key_destroyed": shredded}
    return body, 202, {"Location": url}


@privacy.get(
    "/privacy/erasures/<erasure_id>",
    responses={200: ErasureState, 400: Problem, 401: Problem, 403: Problem, 404: Problem, 503: Problem},
    summary="Follow an erasure: which services applied it",
)
def erasure_state(path: ErasurePath) -> dict[str, Any]:
    """`done` once the recommender (its data and its serving model), the assistant, vision and
    forecasting have each applied the erasure. Needs an API key with the `privacy` role."""
    try:
        fields = _redis().hgetall(erasure.status_key(path.erasure_id))
    except redis.RedisError as exc:
        raise ApiProblem(503, f"the erasure's status is unavailable: {exc}") from exc
    status = erasure.erasure_status(path.erasure_id, fields)
    if status is None:
        raise ApiProblem(404, f"no erasure {path.erasure_id!r} is known (statuses are kept 30 days)")
    return status.to_dict()
