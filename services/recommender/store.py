"""The recommender's state in Redis: key names and the read side of the projection."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import redis
from google.protobuf.message import Message

from services.common import cache
from services.common.cache import key
from services.common.privacy import register_key
from services.common.stock import StockLedger, stock_keys

# Rankings restricted to the live catalog are recomputed at most this often.
RANKING_CACHE_SECONDS = 5
# A cached answer lives this long unless the user's next event deletes it first.
ANSWER_CACHE_SECONDS = 60


class RecommenderKeys:
    popular = key("rec", "pop", "all")
    trending = key("rec", "trend", "all")
    active = key("rec", "catalog", "active")
    stats = key("rec", "stats", "events")
    users = key("rec", "users")
    first_seen = key("rec", "users", "first-seen")
    last_seen = key("rec", "users", "last-seen")
    item_last_seen = key("rec", "items", "last-seen")
    stock, stock_counted_at = stock_keys("rec")
    # The model version the recommender serves now (cached answers of any other version are stale).
    serving = key("rec", "model", "serving")

    @staticmethod
    def product(pid: str) -> str:
        return key("rec", "product", pid)

    @staticmethod
    def category(name: str) -> str:
        return key("rec", "category", name)

    @staticmethod
    def user_counts(user: str) -> str:
        return key("rec", "user", user, "counts")

    @staticmethod
    def user_recent(user: str) -> str:
        return key("rec", "user", user, "recent")

    @staticmethod
    def user_purchased(user: str) -> str:
        return key("rec", "user", user, "purchased")

    @staticmethod
    def user_items(user: str) -> str:
        """Hash product -> accumulated interest weight: the user's row of the interaction matrix."""
        return key("rec", "user", user, "items")

    @staticmethod
    def user_categories(user: str) -> str:
        return key("rec", "user", user, "categories")

    @staticmethod
    def user_brands(user: str) -> str:
        return key("rec", "user", user, "brands")

    @staticmethod
    def user_prices(user: str, kind: str) -> str:
        return key("rec", "user", user, "prices", kind)

    @staticmethod
    def user_orders(user: str) -> str:
        return key("rec", "user", user, "orders")

    @staticmethod
    def user_version(user: str) -> str:
        """Bumped by each of the user's events; part of every cached answer's key."""
        return key("rec", "user", user, "version")

    @staticmethod
    def answers(user: str) -> str:
        """Hash request fingerprint -> cached response; deleted by each of the user's events."""
        return key("rec", "user", user, "answers")

    @staticmethod
    def item_counts(pid: str) -> str:
        return key("rec", "item", pid, "counts")

    @staticmethod
    def item_users(pid: str) -> str:
        return key("rec", "item", pid, "users")

    @staticmethod
    def item_ratings(pid: str) -> str:
        return key("rec", "item", pid, "ratings")

    @staticmethod
    def bought_with(pid: str) -> str:
        return key("rec", "item", pid, "bought-with")

    @staticmethod
    def ranking_cache(kind: str, category: str | None) -> str:
        return key("rec", "cache", kind, category or "*")


K = RecommenderKeys


@dataclass
class UserState:
    """What one request needs to know about a user, read in one round trip."""

    items: dict[str, float]
    purchased: set[str]
    recent: list[str]


class RecommenderStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self.stock = StockLedger(client, "rec")

    # -- rankings ------------------------------------------------------------------------------
    def ranking(self, kind: str, category: str | None, limit: int) -> list[tuple[str, float]]:
        """Best-first (product, score) for 'popular' or 'trending', live catalog only, optionally one category."""
        source = K.popular if kind == "popular" else K.trending
        cached = K.ranking_cache(kind, category)
        if not self.redis.exists(cached):
            sets = [source, K.active] + ([K.category(category)] if category else [])
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.zinterstore(cached, {s: (1 if s == source else 0) for s in sets}, aggregate="SUM")
                pipe.expire(cached, RANKING_CACHE_SECONDS)
                pipe.execute()
        return [(m, float(s)) for m, s in self.redis.zrevrange(cached, 0, limit - 1, withscores=True)]

    def popularity_rank(self, pid: str) -> int:
        rank = self.redis.zrevrank(K.popular, pid)
        return 0 if rank is None else int(rank) + 1

    # -- users ---------------------------------------------------------------------------------
    def user_state(self, user: str) -> UserState:
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(K.user_items(user))
            pipe.smembers(K.user_purchased(user))
            pipe.lrange(K.user_recent(user), 0, -1)
            items, purchased, recent = pipe.execute()
        return UserState({pid: float(w) for pid, w in items.items()}, set(purchased), list(recent))

    def all_users(self) -> Iterator[tuple[str, dict[str, float]]]:
        """Every user's weighted items, read in pipelined chunks (the trainer's input)."""
        users = sorted(self.redis.smembers(K.users))
        for start in range(0, len(users), 500):
            chunk = users[start : start + 500]
            with self.redis.pipeline(transaction=False) as pipe:
                for u in chunk:
                    pipe.hgetall(K.user_items(u))
                rows = pipe.execute()
            for u, row in zip(chunk, rows, strict=True):
                if row:
                    yield u, {pid: float(w) for pid, w in row.items()}

    def user_facts(self, user: str) -> dict:
        """Everything the profile is computed from, in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(K.user_counts(user))
            pipe.hgetall(K.user_categories(user))
            pipe.hgetall(K.user_brands(user))
            pipe.lrange(K.user_prices(user, "purchase"), 0, -1)
            pipe.lrange(K.user_prices(user, "view"), 0, -1)
            pipe.lrange(K.user_recent(user), 0, -1)
            pipe.zscore(K.first_seen, user)
            pipe.zscore(K.last_seen, user)
            pipe.hgetall(K.user_orders(user))
            r = pipe.execute()
        return {
            "counts": {a: int(n) for a, n in r[0].items()},
            "categories": {c: float(w) for c, w in r[1].items()},
            "brands": {b: float(w) for b, w in r[2].items()},
            "purchase_prices": [float(x) for x in r[3]],
            "view_prices": [float(x) for x in r[4]],
            "recent": r[5],
            "first_seen": r[6],
            "last_seen": r[7],
            "orders": r[8],
        }

    # -- catalog -------------------------------------------------------------------------------
    def product(self, pid: str) -> dict[str, str]:
        return dict(self.redis.hgetall(K.product(pid)))

    def products(self, pids: Iterable[str]) -> dict[str, dict[str, str]]:
        pids = list(pids)
        with self.redis.pipeline(transaction=False) as pipe:
            for pid in pids:
                pipe.hgetall(K.product(pid))
            rows = pipe.execute()
        return {pid: row for pid, row in zip(pids, rows, strict=True) if row}

    def titles(self, pids: Iterable[str]) -> dict[str, str]:
        pids = list(dict.fromkeys(pids))
        with self.redis.pipeline(transaction=False) as pipe:
            for pid in pids:
                pipe.hget(K.product(pid), "title")
            rows = pipe.execute()
        return {pid: title for pid, title in zip(pids, rows, strict=True) if title}

    def active_products(self) -> set[str]:
        return set(self.redis.smembers(K.active))

    def out_of_stock(self, pids: list[str]) -> set[str]:
        return self.stock.out_of_stock(pids)

    def on_hand(self, pid: str) -> int | None:
        return self.stock.on_hand(pid)

    def item_facts(self, pid: str) -> dict:
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(K.item_counts(pid))
            pipe.pfcount(K.item_users(pid))
            pipe.hgetall(K.item_ratings(pid))
            pipe.zscore(K.item_last_seen, pid)
            pipe.zrevrange(K.bought_with(pid), 0, 9, withscores=True)
            r = pipe.execute()
        return {
            "counts": {a: int(n) for a, n in r[0].items()},
            "unique_users": int(r[1]),
            "ratings": {k: int(v) for k, v in r[2].items()},
            "last_seen": r[3],
            "bought_with": [(m, float(s)) for m, s in r[4]],
        }


# A cached answer is found and checked in one round trip, by the recommender and by the gateway alike:
# it is the one under "<user version>:<model version>:<request digest>" (a user's event bumps the version
# and deletes the hash; a new model changes the model version), and it stands while each of its products is
# still on sale and, when the request excludes products out of stock, in stock (stock moves with every
# order, so it is checked on each hit instead of invalidating every user's answers).
# KEYS: user version, serving model version, answers hash, active catalog, on-hand, counted-at, erasure register.
# ARGV: request digest, "1" to check stock, the model version to use ("" = the serving one), the user.
# Returns {field, answer or false}; field is "" when no model serves yet or the user was erased (nothing is
# cached under an erased shopper's id: a cache key would name them again).
_LOOKUP_ANSWER = """
if redis.call('SISMEMBER', KEYS[7], ARGV[4]) == 1 then return {'', false} end
local model = ARGV[3]
if model == '' then model = redis.call('GET', KEYS[2]) end
if not model then return {'', false} end
local field = (redis.call('GET', KEYS[1]) or '0') .. ':' .. model .. ':' .. ARGV[1]
local entry = redis.call('HMGET', KEYS[3], field, field .. '#pids')
if not entry[1] or not entry[2] then return {field, false} end
for _, pid in ipairs(cjson.decode(entry[2])) do
  if redis.call('SISMEMBER', KEYS[4], pid) == 0 then return {field, false} end
  if ARGV[2] == '1' and redis.call('HEXISTS', KEYS[6], pid) == 1 then
    local level = tonumber(redis.call('HGET', KEYS[5], pid))
    if level and level <= 0 then return {field, false} end
  end
end
return {field, entry[1]}
"""


def request_digest(request: Message) -> str:
    """The fingerprint of a ``RecommendRequest`` (of its deterministic serialization)."""
    return hashlib.blake2b(request.SerializeToString(deterministic=True), digest_size=12).hexdigest()


@dataclass
class CachedAnswer:
    field: str  # where an answer to this request is (or would be) cached; "" = no serving model known
    payload: bytes | None  # the serialized RecommendResponse, when a valid one is cached


class AnswerCache:
    """The recommender's cached answers (``RecommendResponse`` bytes), shared with the gateway, which
    serves a valid cached answer without calling the recommender. Only the recommender writes."""

    def __init__(self, client: redis.Redis, *, batched: bool = False) -> None:
        """``batched``: lookups from many threads or greenlets go to Redis together (``cache.BatchedScript``,
        on a connection of its own): the gateway, where they are the hottest path."""
        self.redis = client
        self._lookup: Any = (cache.BatchedScript(client, _LOOKUP_ANSWER, name="answer_lookup") if batched
                             else client.register_script(_LOOKUP_ANSWER))

    def lookup(self, user: str, digest: str, *, exclude_out_of_stock: bool, model_version: str = "") -> CachedAnswer:
        keys = [K.user_version(user), K.serving, K.answers(user), K.active, K.stock, K.stock_counted_at,
                register_key("recommender")]
        field, value = self._lookup(keys=keys, args=[digest, "1" if exclude_out_of_stock else "0", model_version, user])
        return CachedAnswer(field or "", value.encode("latin-1") if value else None)

    def store(self, user: str, field: str, payload: bytes, pids: list[str], model_version: str) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(K.answers(user), mapping={field: payload.decode("latin-1"), f"{field}#pids": json.dumps(pids)})
            pipe.expire(K.answers(user), ANSWER_CACHE_SECONDS)
            pipe.set(K.serving, model_version)
            pipe.execute()

    def close(self) -> None:
        """Close the batched lookups' connection (the client is the caller's)."""
        if isinstance(self._lookup, cache.BatchedScript):
            self._lookup.close()

    def announce(self, model_version: str) -> None:
        """Say which model serves now: answers cached under another version stop being served."""
        self.redis.set(K.serving, model_version)


def decode_tags(raw: str | None) -> list[str]:
    if not raw:
        return []
    try:
        return [str(t) for t in json.loads(raw)]
    except ValueError:
        return []
