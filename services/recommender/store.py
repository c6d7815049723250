"""The recommender's state in Redis: key names and the read side of the projection."""

from __future__ import annotations

import redis

from services.common.cache import key

# Rankings restricted to the live catalog are recomputed at most this often.
RANKING_CACHE_SECONDS = 5


class RecommenderKeys:
    popular = key("rec", "pop", "all")
    trending = key("rec", "trend", "all")
    active = key("rec", "catalog", "active")
    stats = key("rec", "stats", "events")

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
    def ranking_cache(kind: str, category: str | None) -> str:
        return key("rec", "cache", kind, category or "*")


K = RecommenderKeys


class RecommenderStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

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

    def purchased(self, user: str) -> set[str]:
        return set(self.redis.smembers(K.user_purchased(user)))

    def recent(self, user: str, n: int = 20) -> list[str]:
        return list(self.redis.lrange(K.user_recent(user), 0, n - 1))

    def product(self, pid: str) -> dict[str, str]:
        return dict(self.redis.hgetall(K.product(pid)))
