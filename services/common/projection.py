"""Apply events to Redis exactly once.

A projection turns an event into Redis commands (``Ops``). ``RedisApplier`` runs
a whole polled batch in one Lua script: for each event it sets the marker
``shopai:dedup:<group>:<event_id>`` with NX and runs the event's commands only if
the marker was new. Redis runs a script atomically, so a batch is applied
entirely or not at all, and an event replayed after a crash or a rebalance, or
published twice, changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from services.common.cache import key
from services.common.events import Event

# Commands a projection may emit: all deterministic writes, safe inside a script.
ALLOWED_COMMANDS = frozenset(
    {"HSET", "HSETNX", "HDEL", "HINCRBY", "HINCRBYFLOAT", "ZINCRBY", "ZADD", "ZREM", "SADD", "SREM",
     "INCRBY", "INCRBYFLOAT", "SET", "DEL", "LPUSH", "RPUSH", "LTRIM", "LREM", "EXPIRE", "PFADD"}
)

_APPLY_BATCH = """
local batch = cjson.decode(ARGV[1])
local ttl = ARGV[2]
local applied = {}
for i, ev in ipairs(batch) do
  if redis.call('SET', ev[1], '1', 'NX', 'EX', ttl) then
    for _, op in ipairs(ev[2]) do redis.call(unpack(op)) end
    applied[i] = 1
  else
    applied[i] = 0
  end
end
return applied
"""


class Ops:
    """The Redis commands one event turns into, plus state shared across one batch."""

    def __init__(self, batch_state: dict[str, Any] | None = None) -> None:
        self.commands: list[list[str]] = []
        self.batch_state: dict[str, Any] = batch_state if batch_state is not None else {}

    def __call__(self, command: str, *args: object) -> None:
        command = command.upper()
        if command not in ALLOWED_COMMANDS:
            raise ValueError(f"command {command} is not allowed in a projection")
        self.commands.append([command, *(_redis_arg(a) for a in args)])


def _redis_arg(value: object) -> str:
    if isinstance(value, float):
        return repr(value)  # shortest exact round trip, unlike Lua's own %.14g
    return str(value)


class Projection:
    """A consumer group's view of some topics, kept in Redis.

    Subclasses set ``group`` and ``topics`` and implement ``apply``; ``apply``
    raises ``InvalidEvent``/``ValueError`` for an event it cannot process (it
    goes to the dead-letter topic) and must not write anything itself.
    """

    group: str = ""
    topics: tuple[str, ...] = ()

    def __init__(self, redis_client: redis.Redis) -> None:
        self.redis = redis_client

    def apply(self, event: Event, ops: Ops) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def sentinel_key(self) -> str:
        """Present while Redis holds this projection; its absence means "rebuild from the topics"."""
        return key(self.group, "built")


@dataclass
class Applied:
    """Per event of a batch, in order: True if applied now, False if it had been applied before."""

    per_event: list[bool] = field(default_factory=list)


class RedisApplier:
    """Runs batches of (event_id, commands) through the exactly-once script."""

    def __init__(self, redis_client: redis.Redis, group: str, dedup_ttl_seconds: int, chunk: int = 500) -> None:
        self.redis = redis_client
        self.group = group
        self.ttl = int(dedup_ttl_seconds)
        self.chunk = chunk
        self._script = redis_client.register_script(_APPLY_BATCH)

    def marker(self, event_id: str) -> str:
        return key("dedup", self.group, event_id)

    def apply(self, items: Sequence[tuple[str, Iterable[Sequence[str]]]]) -> Applied:
        result = Applied()
        for start in range(0, len(items), self.chunk):
            part = items[start : start + self.chunk]
            body = json.dumps([[self.marker(eid), [list(c) for c in cmds]] for eid, cmds in part])
            flags = self._script(args=[body, self.ttl])
            result.per_event.extend(bool(flag) for flag in flags)
        return result
