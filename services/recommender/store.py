"""The recommender's state in Redis: the read side of the projection.

The key scheme and the answer cache are the recommender's contract with the gateway and live in
``services/common/recommendations.py``; they are re-exported here for the recommender's own modules."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import redis

from services.common.recommendations import (
    ANSWER_CACHE_SECONDS,
    AnswerCache,
    CachedAnswer,
    K,
    RecommenderKeys,
    request_digest,
)
from services.common.stock import StockLedger

__all__ = ["ANSWER_CACHE_SECONDS", "RANKING_CACHE_SECONDS", "AnswerCache", "CachedAnswer", "K", "RecommenderKeys",
           "RecommenderStore", "UserState", "decode_tags", "request_digest"]

# Rankings restricted to the live catalog are recomputed at most this often.
RANKING_CACHE_SECONDS = 5


@dataclass
class UserState:
    """What one request needs to know about a user, read in one round trip."""

    items: dict[str, float]
    purchased: set[str]
    recent: list[str]
    rated: set[str] = field(default_factory=set)

    @property
    def owned(self) -> set[str]:
        """What the shopper has: bought or rated (a rating means they own it)."""
        return self.purchased | self.rated


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
            pipe.smembers(K.user_rated(user))
            items, purchased, recent, rated = pipe.execute()
        return UserState({pid: float(w) for pid, w in items.items()}, set(purchased), list(recent), set(rated))

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

    def variants(self, group: str) -> set[str]:
        """The products of one item group (its sizes and colours; consumer.GROUP_ATTRIBUTE)."""
        return set(self.redis.smembers(K.variants(group))) if group else set()

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


def decode_tags(raw: str | None) -> list[str]:
    if not raw:
        return []
    try:
        return [str(t) for t in json.loads(raw)]
    except ValueError:
        return []
