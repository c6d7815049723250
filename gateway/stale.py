"""The last good answer of a staff read, served while its service is away (HTTP's ``stale-if-error``, RFC 5861).

When a service restarts (a crash, a deploy) its routes would answer 503 until it is back: for forecasts,
inventory plans, price advice and analytics, the answer it gave a moment ago is worth more to an analyst than
an error. Every 200 answer of those ``GET`` routes is kept in Redis for ``KEEP_SECONDS`` under its path and
query (who may read it is decided before, by gateway/policy.py: these routes need a staff role, so a kept
answer is never shown to someone the route would refuse; one shopper's own profile is not kept at all, so
nothing of an erased shopper outlives the erasure here); when the service is
unreachable or too slow (gRPC ``UNAVAILABLE``, ``DEADLINE_EXCEEDED``) the kept answer is served with
``X-ShopAI-Degraded: <service>``, ``X-ShopAI-Stale: true`` and ``Age`` (seconds since it was kept). Without a
kept answer the error stands.

Each gateway process also keeps a copy in its own memory (``LOCAL_BYTES`` at most, least recently kept first
out; cachetools' ``TTLCache``), read when Redis has none: a Redis that was killed and came back empty takes
the shared copies with it, and that is exactly when the services, rebuilding their own state from the event
log, cannot answer either (``make chaos``, issue #21). Redis's copy is read first: every process writes it, so
it is the newest. A Redis that is away makes keeping a no-op, never an error.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time

import grpc
from cachetools import TTLCache
from flask import Flask, Response, request

from services.common.cache import key
from services.common.logging import get_logger

log = get_logger(__name__)

ROUTES = ("/v1/forecasts/", "/v1/inventory/", "/v1/pricing/", "/v1/analytics/")
KEEP_SECONDS = 24 * 3600
STALE_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
DEGRADED_HEADER = "X-ShopAI-Degraded"
LOCAL_BYTES = 32 * 1024 * 1024  # each gateway process's own copies (a forecast's answer is ~3 KB)


# One shopper's own analytics are not kept: an erased shopper's profile must not outlive the erasure here.
NOT_KEPT = ("/v1/analytics/users/",)


def _applies() -> bool:
    return request.method == "GET" and request.path.startswith(ROUTES) and not request.path.startswith(NOT_KEPT)


def _key() -> str:
    digest = hashlib.sha256(request.full_path.encode()).hexdigest()[:32]
    return key("gw", "stale", digest)


class LocalCopies:
    """The answers this process kept, by key, at most ``max_bytes`` of them and each for ``KEEP_SECONDS``."""

    def __init__(self, max_bytes: int = LOCAL_BYTES, ttl: float = KEEP_SECONDS) -> None:
        self._cache: TTLCache[str, str] = TTLCache(maxsize=max_bytes, ttl=ttl, getsizeof=len)
        self._lock = threading.Lock()  # cachetools' caches are not thread-safe

    def put(self, name: str, raw: str) -> None:
        with self._lock:
            if len(raw) <= self._cache.maxsize:  # larger than the whole budget: not kept here
                self._cache[name] = raw

    def get(self, name: str) -> str | None:
        with self._lock:
            return self._cache.get(name)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


def install(app: Flask) -> None:
    """Keep every 200 answer of the staff read routes (after_request)."""
    local = app.extensions["shopai.stale_local"] = LocalCopies()

    @app.after_request
    def keep(response: Response) -> Response:
        if (response.status_code == 200 and _applies() and response.mimetype == "application/json"
                and DEGRADED_HEADER not in response.headers):
            record = {"at": time.time(), "body": response.get_data(as_text=True),
                      "headers": {k: v for k, v in response.headers.items() if k.startswith("X-ShopAI-")}}
            name, raw = _key(), json.dumps(record)
            local.put(name, raw)
            try:
                app.extensions["shopai.redis"].set(name, raw, ex=KEEP_SECONDS)
            except Exception as exc:  # noqa: BLE001 - Redis away: nothing kept, the answer goes out
                log.warning("stale_answer_not_kept", path=request.path, error=str(exc))
        return response


def answer(app: Flask, error: grpc.RpcError, service: str) -> Response | None:
    """The kept answer of this request when ``error`` says its service is away, else None."""
    code = error.code() if hasattr(error, "code") else None
    if code not in STALE_CODES or not _applies():
        return None
    name = _key()
    try:
        raw = app.extensions["shopai.redis"].get(name)
    except Exception:  # noqa: BLE001 - Redis away too: this process's own copy, if any
        raw = None
    if not raw:
        raw = app.extensions["shopai.stale_local"].get(name)
    if not raw:
        return None
    record = json.loads(raw)
    response = Response(record["body"], status=200, mimetype="application/json")
    response.headers.update(record["headers"])
    response.headers[DEGRADED_HEADER] = service
    response.headers["X-ShopAI-Stale"] = "true"
    response.headers["Age"] = str(max(0, int(time.time() - record["at"])))
    return response
