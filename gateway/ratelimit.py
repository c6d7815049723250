"""Per-client request budgets in fixed windows, shared by every gateway process through Redis.

Every process counts its clients' requests in Redis with one Lua script (``_HIT``: add the hits, start the
window on its first hit, return the count and the time left). For large budgets (``MIN_LOCAL_LIMIT`` a
window and more) a process does not pay that round trip on every request: while the client is below
``limit - margin`` (margin: the budget's last tenth) and the last exchange with Redis is less than
``sync_seconds`` (50 ms) old, the process counts locally and sends those hits with its next exchange. In
the margin, and for small budgets always, every request is counted in Redis before it is answered. So one
process is exact, and several are exact unless one client sends more than a margin's worth of requests
(100 at the smallest) through the other processes within 50 ms; ``RateLimit-Remaining`` is exact to the same
degree. The exchanges of requests that arrive together go to Redis as one pipeline (``cache.BatchedScript``).
Why not flask-limiter: docs/architecture.md ("rate limits").
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from redis.backoff import NoBackoff
from redis.retry import Retry

from services.common import cache
from services.common.settings import Settings

# KEYS: the client's counter; ARGV: hits to add, window length in ms. Returns {count, ms left}.
_HIT = """
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  left = tonumber(ARGV[2])
end
return {count, left}
"""

SYNC_SECONDS = 0.05
MARGIN_SHARE = 0.1  # the last tenth of a budget is always counted in Redis first
MIN_LOCAL_LIMIT = 1000  # smaller budgets are always counted in Redis first
MAX_LOCAL_CLIENTS = 10_000  # past this many, clients whose window ended are forgotten


@dataclass(frozen=True)
class Window:
    """A client's budget after the current request was counted."""

    limit: int
    count: int
    reset_in_ms: int
    window_seconds: int

    @property
    def exceeded(self) -> bool:
        return self.count > self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)


class RateLimited(Exception):
    """The current request is over its client's budget (answered with a 429 problem)."""


@dataclass
class _Local:
    count: int  # the client's count in Redis at the last exchange, plus the hits sent with it
    pending: int  # hits counted here since then, not yet sent
    window_end: float  # time.monotonic() at which the Redis window ends
    synced_at: float


class FixedWindowLimiter:
    def __init__(self, redis_target: str | Settings, prefix: str, window_seconds: int = 60,
                 sync_seconds: float = SYNC_SECONDS) -> None:
        # A dead Redis must cost a request next to nothing: no retries, short timeouts; bytes, not str.
        self.redis = cache.connect(redis_target, decode_responses=False, socket_connect_timeout=0.25,
                                   socket_timeout=0.5, retry=Retry(NoBackoff(), 0), retry_on_timeout=False,
                                   health_check_interval=0)
        self.prefix = prefix
        self.window_seconds = window_seconds
        self.sync_seconds = sync_seconds
        # Hits of requests that arrive together go to Redis together (auto-pipelining, cache.BatchedScript):
        # a shopper seen rarely by this process is counted in Redis on each request, many shoppers at once.
        self._hit = cache.BatchedScript(self.redis, _HIT, name="rate_limit", resend=False)
        self._lock = threading.Lock()
        self._local: dict[str, _Local] = {}
        self.exchanges = 0  # round trips to Redis so far (for tests and the curious)

    def hit(self, client_key: str, limit: int) -> Window:
        """Count one request of ``client_key`` against ``limit`` per window; raises ``redis.RedisError``
        when Redis does not answer (the hits not yet sent are then dropped: limits fail open)."""
        counter = f"{self.prefix}:{limit}/{self.window_seconds}s:{client_key}"
        margin = max(1, int(limit * MARGIN_SHARE))
        now = time.monotonic()
        with self._lock:
            local = self._local.get(counter)
            if (local is not None and limit >= MIN_LOCAL_LIMIT and now < local.window_end
                    and now - local.synced_at < self.sync_seconds
                    and local.count + local.pending + 1 <= limit - margin):
                local.pending += 1
                return Window(limit, local.count + local.pending, int((local.window_end - now) * 1000),
                              self.window_seconds)
            send = 1
            if local is not None and now < local.window_end:
                send += local.pending
                local.pending = 0
        count, left = self._hit(keys=[counter], args=[send, self.window_seconds * 1000])
        count, left = int(count), int(left)
        with self._lock:
            self.exchanges += 1
            local = self._local.get(counter)
            if local is None:
                if len(self._local) >= MAX_LOCAL_CLIENTS:
                    self._forget_ended(now)
                local = self._local[counter] = _Local(count, 0, now + left / 1000, now)
            else:
                local.count, local.window_end, local.synced_at = count, now + left / 1000, now
            counted = count + local.pending  # hits another thread counted here meanwhile
        return Window(limit, counted, left, self.window_seconds)

    def _forget_ended(self, now: float) -> None:
        for counter in [c for c, local in self._local.items() if local.window_end <= now]:
            del self._local[counter]

    def close(self) -> None:
        self._hit.close()
        self.redis.close()
