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


def connect(url: str, *, single_connection: bool = False) -> redis.Redis:
    """A pooled client that returns str, with timeouts so a dead Redis never hangs a request.

    ``single_connection``: one connection that callers take turns on (a lock) instead of a pool. For a hot
    path of short commands: it skips the pool's checkout and release and the readiness poll of the socket
    that redis-py makes before every pooled command (a system call, and under gevent a trip through the
    hub), about a fifth of a cached recommendation's cost in the gateway."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=5.0,
        socket_connect_timeout=2.0,
        health_check_interval=30,
        retry_on_timeout=True,
        single_connection_client=single_connection,
    )
