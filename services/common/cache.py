"""The shared Redis feature cache: one client factory and the key namespace.

Redis holds rebuildable state only (see docs/architecture.md): a flushed Redis
costs speed, never truth.
"""

from __future__ import annotations

import redis

KEY_PREFIX = "shopai"


def key(*parts: object) -> str:
    """``key("rec", "pop", "all")`` -> ``"shopai:rec:pop:all"``."""
    return ":".join((KEY_PREFIX, *(str(p) for p in parts)))


def connect(url: str) -> redis.Redis:
    """A pooled client that returns str, with timeouts so a dead Redis never hangs a request."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=5.0,
        socket_connect_timeout=2.0,
        health_check_interval=30,
        retry_on_timeout=True,
    )
