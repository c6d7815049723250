"""The last good answer of a staff read, served while its service is away (HTTP's ``stale-if-error``, RFC 5861).

When a service restarts (a crash, a deploy) its routes would answer 503 until it is back: for forecasts,
inventory plans, price advice and analytics, the answer it gave a moment ago is worth more to an analyst than
an error. Every 200 answer of those ``GET`` routes is kept in Redis for ``KEEP_SECONDS`` under its path and
query (who may read it is decided before, by gateway/policy.py: these routes need a staff role, so a kept
answer is never shown to someone the route would refuse; one shopper's own profile is not kept at all, so
nothing of an erased shopper outlives the erasure here); when the service is
unreachable or too slow (gRPC ``UNAVAILABLE``, ``DEADLINE_EXCEEDED``) the kept answer is served with
``X-ShopAI-Degraded: <service>``, ``X-ShopAI-Stale: true`` and ``Age`` (seconds since it was kept). Without a
kept answer the error stands. A Redis that is away makes this a no-op, never an error.
"""

from __future__ import annotations

import hashlib
import json
import time

import grpc
from flask import Flask, Response, request

from services.common.cache import key
from services.common.logging import get_logger

log = get_logger(__name__)

ROUTES = ("/v1/forecasts/", "/v1/inventory/", "/v1/pricing/", "/v1/analytics/")
KEEP_SECONDS = 24 * 3600
STALE_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
DEGRADED_HEADER = "X-ShopAI-Degraded"


# One shopper's own analytics are not kept: an erased shopper's profile must not outlive the erasure here.
NOT_KEPT = ("/v1/analytics/users/",)


def _applies() -> bool:
    return request.method == "GET" and request.path.startswith(ROUTES) and not request.path.startswith(NOT_KEPT)


def _key() -> str:
    digest = hashlib.sha256(request.full_path.encode()).hexdigest()[:32]
    return key("gw", "stale", digest)


def install(app: Flask) -> None:
    """Keep every 200 answer of the staff read routes (after_request)."""

    @app.after_request
    def keep(response: Response) -> Response:
        if (response.status_code == 200 and _applies() and response.mimetype == "application/json"
                and DEGRADED_HEADER not in response.headers):
            record = {"at": time.time(), "body": response.get_data(as_text=True),
                      "headers": {k: v for k, v in response.headers.items() if k.startswith("X-ShopAI-")}}
            try:
                app.extensions["shopai.redis"].set(_key(), json.dumps(record), ex=KEEP_SECONDS)
            except Exception as exc:  # noqa: BLE001 - Redis away: nothing kept, the answer goes out
                log.warning("stale_answer_not_kept", path=request.path, error=str(exc))
        return response


def answer(app: Flask, error: grpc.RpcError, service: str) -> Response | None:
    """The kept answer of this request when ``error`` says its service is away, else None."""
    code = error.code() if hasattr(error, "code") else None
    if code not in STALE_CODES or not _applies():
        return None
    try:
        raw = app.extensions["shopai.redis"].get(_key())
    except Exception:  # noqa: BLE001 - Redis away too: the error stands
        return None
    if not raw:
        return None
    record = json.loads(raw)
    response = Response(record["body"], status=200, mimetype="application/json")
    response.headers.update(record["headers"])
    response.headers[DEGRADED_HEADER] = service
    response.headers["X-ShopAI-Stale"] = "true"
    response.headers["Age"] = str(max(0, int(time.time() - record["at"])))
    return response
