"""Apply events to Redis exactly once.

A projection turns an event into Redis commands (``Ops``). ``RedisApplier`` runs
a whole polled batch in one Lua script: for each event it records the event's
exactly-once marker and runs the event's commands only if the marker was new.
Redis runs a script atomically, so a batch is applied entirely or not at all, and
an event replayed after a crash or a rebalance, or published twice, changes nothing.

Markers (issue #22: one key per event cost ~144 bytes of Redis per applied event,
for 30 days). An event's marker is a 14-character field, 10 bytes of a BLAKE2b digest
of its id, in a small hash ``shopai:dedup:<group>:<generation>:<shard>``. The shard is
the first 2 hex digits of the digest's other 3 bytes (256 hashes), and a hash that fills
(127 markers: Redis keeps a hash of up to 128 entries in its compact listpack encoding)
is marked full and its newer markers go one hex digit deeper (4,096 hashes, then
65,536, ...): so the hashes stay compact whatever the shop's size, ~20 bytes per marker
with a hash's own cost spread over its fields. A generation is ``dedup_ttl_seconds``
long by Redis's clock (``TIME``, one clock for every replica); the script looks in
the current and the previous generation, and a generation's hashes expire at the end
of the next one, so an event is remembered at least ``dedup_ttl_seconds`` and at most
twice that. Two ids share a marker with a probability of at most 2^-88 per pair. The
old per-event keys (``shopai:dedup:<group>:<event_id>``) written before this scheme
are still honoured until they expire.

Erasure (``services/common/privacy.py``) adds a few commands of its own, run by the
same script: ``GUARD``/``ENDGUARD`` skip the commands between them while a shopper is
in the erasure register, and the ``*MEMBERS`` commands delete what a per-user index
set lists (a key pattern is not deterministic; an index is).

Attribution (``services/common/attribution.py``) adds two more: ``IMPRESSION`` counts a
recommendation answer served and ``OUTCOME`` the first click (add to cart, purchase) on one,
joined in the script whichever comes first, so each answer's outcome counts once per kind.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import redis

from services.common.cache import key
from services.common.events import Event

# Commands a projection may emit: all deterministic writes, safe inside a script.
ALLOWED_COMMANDS = frozenset(
    {"HSET", "HSETNX", "HDEL", "HINCRBY", "HINCRBYFLOAT", "ZINCRBY", "ZADD", "ZREM", "SADD", "SREM",
     "INCRBY", "INCRBYFLOAT", "SET", "DEL", "LPUSH", "RPUSH", "LTRIM", "LREM", "EXPIRE", "PFADD"}
    # erasure's own, run by the script below (services/common/privacy.py)
    | {"GUARD", "ENDGUARD", "DELMEMBERKEYS", "SADDIFMEMBER", "SADDMEMBERS", "HDELMEMBERS", "SREMFROMMEMBERS",
       "LREMPAIRS"}
    # attribution's own (services/common/attribution.py)
    | {"IMPRESSION", "OUTCOME"}
)

# Where an event's marker is in one generation (``p``: the generation's prefix; ``shard``: 6 hex digits, ``field``).
# The hashes of a generation split as they fill: a marker goes into the hash named by the shard's first 2 hex
# digits (256 hashes), or, once that one is full (the field '!' marks it, at FULL fields: Redis keeps a hash
# of up to 128 entries in its compact listpack encoding), the one of its first 3 digits (4,096), and so on up
# to 6 (the last level is never marked full). A hash not marked full ends the search: deeper ones only get
# markers after it filled. Returns whether the marker is there, and the hash a new marker goes into with the
# level it is at.
_LOOK = """
local LEVELS = {2, 3, 4, 5, 6}
local FULL = 127
local function look(p, shard, field)
  for level, digits in ipairs(LEVELS) do
    local h = p .. string.sub(shard, 1, digits)
    local got = redis.call('HMGET', h, field, '!')
    if got[1] then return true, h, level end
    if not got[2] or level == #LEVELS then return false, h, level end
  end
end
"""

_APPLY_BATCH = _LOOK + """
local batch = cmsgpack.unpack(ARGV[1])  -- MessagePack: packed at a third of JSON's cost
local period = tonumber(ARGV[2])
local prefix = ARGV[3]
redis.call('SET', ARGV[4], period)  -- for applied() and forget(), which do not know the setting
local now = tonumber(redis.call('TIME')[1])
local gen = math.floor(now / period)
local current = prefix .. gen .. ':'
local previous = prefix .. (gen - 1) .. ':'
local expires = (gen + 2) * period
local applied = {}
local skip = false
local function members(index)
  if redis.call('TYPE', index).ok == 'zset' then return redis.call('ZRANGE', index, 0, -1) end
  return redis.call('SMEMBERS', index)
end
-- GUARD set member: skip what follows until ENDGUARD if member is in set (an erased shopper's late event)
-- DELMEMBERKEYS index prefix: DEL prefix..m for each member m of the set or zset index
-- SADDIFMEMBER set member target value: SADD target value if member is in set
-- SADDMEMBERS index set: SADD set m for each member m
-- HDELMEMBERS index hash: HDEL hash m for each member m
-- SREMFROMMEMBERS index value: SREM m value for each member m (a key name)
-- LREMPAIRS index prefix: each member is JSON [suffix, value]: LREM prefix..suffix 0 value
-- IMPRESSION record hour bucket prefix ttl counter_ttl: a recommendation answer served: keep its bucket and
--   hour in the record, count it in the hour's counters (prefix..hour, field bucket|impressions) and count the
--   outcomes already noted in the record (o:<kind>) that arrived ahead of it
-- OUTCOME record kind prefix ttl: the first <kind> outcome of an answer counts for its bucket (bucket|kind);
--   ahead of its impression, it is noted in the record and counted when the impression comes
local special = {
  GUARD = function(op) skip = skip or redis.call('SISMEMBER', op[2], op[3]) == 1 end,
  ENDGUARD = function(op) skip = false end,
  DELMEMBERKEYS = function(op)
    for _, m in ipairs(members(op[2])) do redis.call('DEL', op[3] .. m) end
  end,
  SADDIFMEMBER = function(op)
    if redis.call('SISMEMBER', op[2], op[3]) == 1 then redis.call('SADD', op[4], op[5]) end
  end,
  SADDMEMBERS = function(op)
    for _, m in ipairs(members(op[2])) do redis.call('SADD', op[3], m) end
  end,
  HDELMEMBERS = function(op)
    for _, m in ipairs(members(op[2])) do redis.call('HDEL', op[3], m) end
  end,
  SREMFROMMEMBERS = function(op)
    for _, m in ipairs(members(op[2])) do redis.call('SREM', m, op[3]) end
  end,
  IMPRESSION = function(op)
    if redis.call('HEXISTS', op[2], 'bucket') == 1 then return end
    redis.call('HSET', op[2], 'bucket', op[4], 'hour', op[3])
    local counters = op[5] .. op[3]
    redis.call('HINCRBY', counters, op[4] .. '|impressions', 1)
    for _, f in ipairs(redis.call('HKEYS', op[2])) do
      if string.sub(f, 1, 2) == 'o:' then redis.call('HINCRBY', counters, op[4] .. '|' .. string.sub(f, 3), 1) end
    end
    redis.call('EXPIRE', op[2], op[6])
    redis.call('EXPIRE', counters, op[7])
  end,
  OUTCOME = function(op)
    if redis.call('HSETNX', op[2], 'o:' .. op[3], '1') == 0 then return end
    local found = redis.call('HMGET', op[2], 'bucket', 'hour')
    if found[1] then
      redis.call('HINCRBY', op[4] .. found[2], found[1] .. '|' .. op[3], 1)
    else
      redis.call('EXPIRE', op[2], op[5])
    end
  end,
  LREMPAIRS = function(op)
    for _, m in ipairs(members(op[2])) do
      local pair = cjson.decode(m)
      redis.call('LREM', op[3] .. pair[1], 0, pair[2])
    end
  end,
}
-- ev = {shard, field, legacy marker key, commands}: new when neither generation has its marker and the key of
-- the old scheme is absent; then its marker is written in the current generation
local function fresh(ev)
  if redis.call('EXISTS', ev[3]) == 1 or look(previous, ev[1], ev[2]) then return false end
  local found, h, level = look(current, ev[1], ev[2])
  if found then return false end
  redis.call('HSET', h, ev[2], '')
  local n = redis.call('HLEN', h)
  if n == 1 then redis.call('EXPIREAT', h, expires) end
  if n >= FULL and level < #LEVELS then redis.call('HSET', h, '!', '') end
  return true
end
for i, ev in ipairs(batch) do
  if fresh(ev) then
    skip = false
    for _, op in ipairs(ev[4]) do
      local run = special[op[1]]
      if run and (not skip or op[1] == 'ENDGUARD') then run(op)
      elseif not run and not skip then redis.call(unpack(op)) end
    end
    applied[i] = 1
  else
    applied[i] = 0
  end
end
return applied
"""


class Ops:
    """The Redis commands one event turns into, plus state shared across one batch."""

    def __init__(self, batch_state: dict[str, Any] | None = None,
                 source: tuple[str, int, int] | None = None) -> None:
        self.commands: list[list[str]] = []
        self.batch_state: dict[str, Any] = batch_state if batch_state is not None else {}
        # Where the event being applied is in the log (topic, partition, offset), when read from Kafka.
        self.source = source

    def __call__(self, command: str, *args: object) -> None:
        if command not in ALLOWED_COMMANDS:  # the projections write them upper-case; the check is per event
            command = command.upper()
            if command not in ALLOWED_COMMANDS:
                raise ValueError(f"command {command} is not allowed in a projection")
        # str of a float is its shortest exact round trip (Python's repr), unlike Lua's own %.14g; and of a
        # numpy float too, where repr would say "np.float64(...)".
        self.commands.append([command, *map(str, args)])


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

    def prepare(self, events: Sequence[Event], batch_state: dict[str, Any]) -> None:
        """Before a batch is applied: read what ``apply`` will need of Redis for all of ``events`` at once
        (one pipelined round trip) into ``batch_state``, which every event's ``ops.batch_state`` shares.
        Only reads; the default reads nothing."""

    @property
    def sentinel_key(self) -> str:
        """Present while Redis holds this projection; its absence means "rebuild from the topics"."""
        return built_key(self.group)


def built_key(group: str) -> str:
    """The sentinel of ``group``'s projection (``Projection.sentinel_key``): set once it is built, gone while Redis
    lost it and the consumer rebuilds it from the topics."""
    return key(group, "built")


def rebuilding(client: redis.Redis, group: str) -> bool:
    """Redis does not hold ``group``'s projection right now (flushed or restarted empty; the consumer is
    replaying the topics): a read that finds nothing should say "retry shortly", not "no such thing"."""
    return not client.exists(built_key(group))


@dataclass
class Applied:
    """Per event of a batch, in order: True if applied now, False if it had been applied before."""

    per_event: list[bool] = field(default_factory=list)


def marker(event_id: str) -> tuple[str, str]:
    """(shard, field) of an event's exactly-once marker: the first 3 bytes of a 13-byte BLAKE2b digest of its id
    as 6 hex digits, its last 10 bytes as 14 characters of URL-safe base64."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=13).digest()
    return digest[:3].hex(), base64.urlsafe_b64encode(digest[3:]).decode()[:14]


def legacy_marker(group: str, event_id: str) -> str:
    """The marker key of the scheme before issue #22 (one key per event), honoured until it expires."""
    return key("dedup", group, event_id)


def _markers_prefix(group: str) -> str:
    return key("dedup", group, "")


def _period_key(group: str) -> str:
    return key("dedup", group)


# KEYS: the group's period key, the event's legacy marker; ARGV: the markers' prefix, shard, field, and "forget" to
# remove the marker instead of looking for it. Redis's clock, as when the marker was written.
_LOOKUP = _LOOK + """
local period = tonumber(redis.call('GET', KEYS[1]) or '0')
local forget = ARGV[4] == 'forget'
local found = redis.call('EXISTS', KEYS[2])
if forget then redis.call('DEL', KEYS[2]) end
if period and period > 0 then
  local gen = math.floor(tonumber(redis.call('TIME')[1]) / period)
  for g = gen - 1, gen do
    local there, h = look(ARGV[1] .. g .. ':', ARGV[2], ARGV[3])
    if there then
      found = 1
      if forget then redis.call('HDEL', h, ARGV[3]) end
    end
  end
end
return found
"""


def _lookup(client: redis.Redis, group: str, event_id: str, action: str) -> Any:
    shard, field = marker(event_id)
    return client.eval(_LOOKUP, 2, _period_key(group), legacy_marker(group, event_id),
                       _markers_prefix(group), shard, field, action)


def applied(client: redis.Redis, group: str, event_id: str) -> bool:
    """Whether ``group``'s projection has applied the event (its marker is there)."""
    return bool(_lookup(client, group, event_id, "find"))


def forget(client: redis.Redis, group: str, event_id: str) -> None:
    """Remove the event's marker, so that a replay of it is applied again (e.g. a dead-lettered alert). Works
    on a pipeline too (queued with it)."""
    _lookup(client, group, event_id, "forget")


class RedisApplier:
    """Runs batches of (event_id, commands) through the exactly-once script."""

    def __init__(self, redis_client: redis.Redis, group: str, dedup_ttl_seconds: int, chunk: int = 500) -> None:
        self.redis = redis_client
        self.group = group
        self.period = max(1, int(dedup_ttl_seconds))
        self.chunk = chunk
        self._prefix = _markers_prefix(group)
        self._script = redis_client.register_script(_APPLY_BATCH)

    def applied(self, event_id: str) -> bool:
        return applied(self.redis, self.group, event_id)

    def apply(self, items: Sequence[tuple[str, Iterable[Sequence[str]]]]) -> Applied:
        result = Applied()
        for start in range(0, len(items), self.chunk):
            part = items[start : start + self.chunk]
            body = msgpack.packb([[*marker(eid), legacy_marker(self.group, eid), cmds] for eid, cmds in part])
            flags = self._script(args=[body, self.period, self._prefix, _period_key(self.group)])
            result.per_event.extend(bool(flag) for flag in flags)
        return result
