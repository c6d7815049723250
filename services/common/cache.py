"""The shared Redis feature cache: one client factory and the key namespace.

Redis holds rebuildable state only (see docs/architecture.md): a flushed Redis
costs speed, never truth.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from typing import Any

import redis
from prometheus_client import Counter

from services.common.settings import Settings
from services.common.transport import redis_options

KEY_PREFIX = "shopai"


def key(*parts: object) -> str:
    """``key("rec", "pop", "all")`` -> ``"shopai:rec:pop:all"``."""
    try:  # the parts are strings nearly always: joined as they are, at a third of the cost (a consumer's hot path)
        return ":".join((KEY_PREFIX, *parts))
    except TypeError:
        return ":".join((KEY_PREFIX, *map(str, parts)))


def connect(target: str | Settings, *, url: str | None = None, **overrides: Any) -> redis.Redis:
    """A pooled client that returns str, with timeouts so a dead Redis never hangs a request. Given the
    Settings (every process), also their Redis password and TLS files; a bare URL is for tests and tools.
    With the Settings and a ``url``: another Redis of the deployment (the vault's), with the same TLS files
    and the credentials of its own URL."""
    options: dict[str, Any] = {"decode_responses": True, "socket_timeout": 5.0, "socket_connect_timeout": 2.0,
                               "health_check_interval": 30, "retry_on_timeout": True}
    if isinstance(target, Settings):
        options.update(redis_options(target, url))
        url = url or target.redis_url
    else:
        url = url or target
    return redis.Redis.from_url(url, **{**options, **overrides})


BATCHED_CALLS = Counter("shopai_redis_batched_calls_total", "Calls of a batched Redis script.", ["script"])
BATCHES = Counter("shopai_redis_batches_total",
                  "Round trips that carried the calls of a batched Redis script (calls / batches = batch size).",
                  ["script"])


class _Call:
    __slots__ = ("command", "done", "error", "finished", "lead", "value")

    def __init__(self, command: tuple[Any, ...]) -> None:
        self.command = command
        self.done: threading.Event | None = None  # set for a caller that waits on another's batch
        self.lead = False  # handed the next batch to send
        self.value: Any = None
        self.error: BaseException | None = None
        self.finished = False

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class BatchedScript:
    """A read-only Lua script that many threads or greenlets call at once, sent to Redis in batches on a
    connection of its own (auto-pipelining, as ioredis and Lettuce offer it).

    A caller that finds no batch on the wire sends its call at once, so a lone request waits no longer than
    with a plain call. Calls that arrive while a batch is on the wire queue up, and when that batch's replies
    are in, the first of them sends the whole queue (at most ``max_batch``) as one pipeline: one write and
    one read for all of them instead of a round trip each. Under gevent a round trip is two system calls
    and a trip through the hub, most of a short command's cost; in the gateway, answer lookups batched this
    way cost a third of a plain call each under load (docs/architecture.md, "the gateway's hot path").

    Called like a redis-py ``Script``: ``batched(keys=[...], args=[...])``. After a lost connection a batch of
    a script that changes nothing is sent once more, on a new one; a script that writes (``resend=False``,
    e.g. the rate limiter's counters) is not, since its batch may have run: its callers get the error. A
    script missing from Redis (a restart, ``SCRIPT FLUSH``) is loaded and the batch sent again (a missing
    script ran nothing)."""

    def __init__(self, client: redis.Redis, script: str, *, name: str = "script", max_batch: int = 64,
                 resend: bool = True) -> None:
        self._pool = client.connection_pool
        self._script = script
        self._sha = hashlib.sha1(script.encode()).hexdigest()
        timeout = self._pool.connection_kwargs.get("socket_timeout") or 5.0
        self._wait_seconds = 4 * float(timeout) + 1  # a batch is two tries of a write and a read at most
        self.max_batch = max_batch
        self.resend = resend
        self._lock = threading.Lock()
        self._queue: list[_Call] = []
        self._busy = False  # a batch is on the wire (or about to be): new calls queue up
        self._connection: Any = None
        self.batches = 0  # pipelines sent (for tests and the curious; /metrics has them by ``name``)
        self.calls = 0
        self._counted = (BATCHES.labels(name), BATCHED_CALLS.labels(name))

    def __call__(self, keys: Sequence[str] = (), args: Sequence[Any] = ()) -> Any:
        call = _Call(("EVALSHA", self._sha, len(keys), *keys, *args))
        with self._lock:
            self._queue.append(call)
            if self._busy:
                call.done = threading.Event()
            else:
                self._busy = True
        if call.done is not None and not self._wait(call):
            return call.result()
        self._send_queue()
        return call.result()

    def _wait(self, call: _Call) -> bool:
        """Wait until ``call`` is answered (False) or handed the next batch to send (True)."""
        assert call.done is not None
        try:
            if not call.done.wait(self._wait_seconds):
                with self._lock:
                    if not call.lead and not call.finished:
                        if call in self._queue:
                            self._queue.remove(call)
                        call.error = redis.TimeoutError("no answer from Redis to a batched script call")
                        return False
                call.done.wait()  # answered or handed the lead at this very moment
        except BaseException:  # the caller gives up (its greenlet killed, a timeout of its own)
            self._abandon(call)
            raise
        return call.lead

    def _abandon(self, call: _Call) -> None:
        """A caller that stops waiting takes its call out of the queue, and passes the lead on if it had
        just been handed it: otherwise the calls behind it would wait for a sender that never comes."""
        with self._lock:
            if call in self._queue:
                self._queue.remove(call)
                if call.lead:
                    self._hand_on()

    def _hand_on(self) -> None:
        """With the lock held, after a batch: the first caller waiting sends the next, or nobody is busy."""
        if self._queue:
            following = self._queue[0]
            following.lead = True
            assert following.done is not None
            following.done.set()
        else:
            self._busy = False

    def _send_queue(self) -> None:
        with self._lock:
            batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
        try:
            self._send(batch)
        except BaseException as exc:  # e.g. a greenlet killed mid-read: every caller of the batch hears of it
            for call in batch:
                if not call.finished:
                    call.error = redis.ConnectionError(f"the batch was interrupted: {exc!r}")
            raise
        finally:
            for call in batch:
                call.finished = True
                if call.done is not None:
                    call.done.set()
            with self._lock:
                self._hand_on()

    def _send(self, batch: list[_Call]) -> None:
        self.batches += 1
        self.calls += len(batch)
        self._counted[0].inc()
        self._counted[1].inc(len(batch))
        loaded = False
        for attempt in range(3):
            try:
                replies = self._round_trip([call.command for call in batch])
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self._drop_connection()
                if attempt == 0 and self.resend:
                    continue
                for call in batch:
                    call.error = exc
                return
            if not loaded and any(isinstance(r, redis.exceptions.NoScriptError) for r in replies):
                self._round_trip([("SCRIPT", "LOAD", self._script)])
                loaded = True
                continue
            for call, reply in zip(batch, replies, strict=True):
                if isinstance(reply, Exception):
                    call.error = reply
                else:
                    call.value = reply
            return

    def _round_trip(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        connection = self._connection
        if connection is None:
            connection = self._connection = self._pool.make_connection()
        connection.send_packed_command(connection.pack_commands(commands))
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(connection.read_response())
            except redis.ResponseError as exc:  # an error reply: the stream is still in step
                replies.append(exc)
        return replies

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.disconnect()

    def close(self) -> None:
        with self._lock:
            self._drop_connection()
