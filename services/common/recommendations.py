"""The recommender's contract with the gateway: what both sides must agree on, defined once.

- the request limits and the strategy names (``STRATEGIES``, ``SIMILAR_STRATEGIES``, ``MAX_K``, ...) and
  the business rules of recommender.proto's ``Filters``;
- the recommender's Redis key scheme (``RecommenderKeys``): the recommender's projection writes it, the
  gateway reads a few keys of it (cached answers, the popular ranking, the catalog, a shopper's purchases);
- the answer cache (``AnswerCache``, ``request_digest`` and the Lua lookup): the recommender writes answers,
  the gateway serves a valid one without calling the recommender;
- the read-only popular ranking (``popular_products``) the gateway answers with when the recommender is down;
- the catalog's categories with their live product counts (``catalog_categories``), which the gateway lists.

The gateway imports this module and nothing of ``services/recommender``; the recommender imports it (its
``store`` re-exports the Redis parts). A change here changes both sides, visibly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis
from google.protobuf.message import Message

from services.common import cache
from services.common.cache import key
from services.common.privacy import register_key
from services.common.stock import StockLedger, stock_keys

# ------------------------------------------------------------------ limits and strategy names

STRATEGIES: tuple[str, ...] = ("hybrid", "popular", "trending", "user_knn", "item_knn", "als", "bpr", "content")
SIMILAR_STRATEGIES: tuple[str, ...] = ("item_knn", "content", "als", "hybrid")
DEFAULT_K = 10
MAX_K = 100
MAX_SESSION_PRODUCTS = 50  # session_product_ids of one request

# A cached answer lives this long unless the user's next event deletes it first.
ANSWER_CACHE_SECONDS = 60


def validate_k(k: int) -> int:
    """0 means the default of 10; otherwise 1..MAX_K."""
    if k == 0:
        return DEFAULT_K
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be between 1 and {MAX_K}")
    return k


@dataclass
class Filters:
    """Business rules applied after scoring (mirrors recommender.proto's Filters)."""

    exclude: set[str] = field(default_factory=set)
    category: str = ""
    exclude_categories: set[str] = field(default_factory=set)
    min_price: float | None = None
    max_price: float | None = None

    def __post_init__(self) -> None:
        if self.min_price is not None and self.min_price < 0 or self.max_price is not None and self.max_price < 0:
            raise ValueError("prices must be >= 0")
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise ValueError("min_price must not exceed max_price")

    @property
    def needs_details(self) -> bool:
        return bool(self.category or self.exclude_categories or self.min_price is not None
                    or self.max_price is not None)

    def allows(self, product_id: str, details: Mapping[str, str] | None) -> bool:
        if product_id in self.exclude:
            return False
        if not self.needs_details:
            return True
        if not details:
            return False  # cannot prove it matches
        category = details.get("category", "")
        if self.category and category != self.category:
            return False
        if category in self.exclude_categories:
            return False
        price = float(details.get("price") or 0.0)
        if self.min_price is not None and price < self.min_price:
            return False
        return self.max_price is None or price <= self.max_price


# ------------------------------------------------------------------ the key scheme


class RecommenderKeys:
    popular = key("rec", "pop", "all")
    trending = key("rec", "trend", "all")
    active = key("rec", "catalog", "active")
    # Hash: every category a product was ever filed under -> its Chinese name (attributes.category_zh) or "".
    categories = key("rec", "catalog", "categories")
    stats = key("rec", "stats", "events")
    users = key("rec", "users")
    first_seen = key("rec", "users", "first-seen")
    last_seen = key("rec", "users", "last-seen")
    item_last_seen = key("rec", "items", "last-seen")
    stock, stock_counted_at = stock_keys("rec")
    # The model version the recommender serves now (cached answers of any other version are stale).
    serving = key("rec", "model", "serving")
    # The version it served before a newer one was trained, for ANSWER_CACHE_SECONDS after the swap: the
    # gateway still serves its cached answers meanwhile (a new model must not turn every cached answer into a
    # computed one at the same instant: issue #22 item 7).
    previous = key("rec", "model", "previous")

    @staticmethod
    def product(pid: str) -> str:
        return key("rec", "product", pid)

    @staticmethod
    def category(name: str) -> str:
        return key("rec", "category", name)

    @staticmethod
    def variants(group: str) -> str:
        """The products sharing one ``attributes.item_group_id``: one item in its sizes and colours."""
        return key("rec", "variants", group)

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
    def user_rated(user: str) -> str:
        """The products the shopper rated, whatever the rating: a rating means they own it."""
        return key("rec", "user", user, "rated")

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

# ------------------------------------------------------------------ the answer cache

# A cached answer is found and checked in one round trip, by the recommender and by the gateway alike:
# it is the one under "<user version>:<model version>:<request digest>" (a user's event bumps the version
# and deletes the hash; a new model changes the model version), and it stands while each of its products is
# still on sale and, when the request excludes products out of stock, in stock (stock moves with every
# order, so it is checked on each hit instead of invalidating every user's answers).
# The serving one's lookup ("" model) also takes an answer of the version served before, while K.previous says
# one was replaced by a newer model less than ANSWER_CACHE_SECONDS ago (such an answer is no older than any
# other cached answer); the field returned is always the serving version's, where a new answer goes.
# KEYS: user version, serving model version, answers hash, active catalog, on-hand, counted-at, erasure register,
# previous model version.
# ARGV: request digest, "1" to check stock, the model version to use ("" = the serving one), the user.
# Returns {field, answer or false}; field is "" when no model serves yet or the user was erased (nothing is
# cached under an erased shopper's id: a cache key would name them again).
_LOOKUP_ANSWER = """
if redis.call('SISMEMBER', KEYS[7], ARGV[4]) == 1 then return {'', false} end
local model = ARGV[3]
local before = false
if model == '' then
  model = redis.call('GET', KEYS[2])
  before = redis.call('GET', KEYS[8])
end
if not model then return {'', false} end
local user_version = redis.call('GET', KEYS[1]) or '0'
local function valid(field)
  local entry = redis.call('HMGET', KEYS[3], field, field .. '#pids')
  if not entry[1] or not entry[2] then return false end
  for _, pid in ipairs(cjson.decode(entry[2])) do
    if redis.call('SISMEMBER', KEYS[4], pid) == 0 then return false end
    if ARGV[2] == '1' and redis.call('HEXISTS', KEYS[6], pid) == 1 then
      local level = tonumber(redis.call('HGET', KEYS[5], pid))
      if level and level <= 0 then return false end
    end
  end
  return entry[1]
end
local field = user_version .. ':' .. model .. ':' .. ARGV[1]
local found = valid(field)
if not found and before then found = valid(user_version .. ':' .. before .. ':' .. ARGV[1]) end
return {field, found}
"""

# A newer model (by the time in its version, models.new_version) keeps the one it replaces as K.previous for
# ANSWER_CACHE_SECONDS; any other change (a rollback to an older version, a version without a time) does not,
# so a model an operator took back stops being served at once.
# KEYS: serving, previous. ARGV: the new version, ANSWER_CACHE_SECONDS.
_ANNOUNCE = """
local old = redis.call('GET', KEYS[1])
local pattern = '%d%d%d%d%d%d%d%dT%d%d%d%d%d%dZ'
local old_time = old and string.match(old, pattern)
local new_time = string.match(ARGV[1], pattern)
if old and old ~= ARGV[1] and old_time and new_time and new_time > old_time then
  redis.call('SET', KEYS[2], old, 'EX', ARGV[2])
elseif old ~= ARGV[1] then
  redis.call('DEL', KEYS[2])
end
redis.call('SET', KEYS[1], ARGV[1])
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
                register_key("recommender"), K.previous]
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
        """Say which model serves now: answers cached under another version stop being served, but those of
        the version a newer model replaced only as they expire (``_ANNOUNCE``)."""
        self.redis.eval(_ANNOUNCE, 2, K.serving, K.previous, model_version, ANSWER_CACHE_SECONDS)


# ------------------------------------------------------------------ the popular ranking, read only

POPULAR_MAX_CANDIDATES = 5000  # popular products examined at most to fill one answer
_DETAIL_FIELDS = ("title", "category", "price", "currency")


def popular_products(client: redis.Redis, k: int, filters: Filters, *, exclude_out_of_stock: bool,
                     purchases_of: str = "") -> list[tuple[str, float, dict[str, str]]]:
    """The shop's ``k`` most popular products from the recommender's projection, best first, as
    (product, popularity, title/category/price/currency), with the rules the recommender applies: live
    catalog only, ``filters``, what the shopper ``purchases_of`` owns (when given: bought or rated) and stock.
    Reads only: nothing is written (the recommender's own ranking cache is not used)."""
    if purchases_of:
        filters.exclude |= client.sunion(K.user_purchased(purchases_of), K.user_rated(purchases_of))
    stock = StockLedger(client, "rec")
    found: list[tuple[str, float, dict[str, str]]] = []
    start, size = 0, max(4 * k, 50)
    while len(found) < k and start < POPULAR_MAX_CANDIDATES:
        ranked = client.zrevrange(K.popular, start, start + size - 1, withscores=True)
        pids = [pid for pid, _ in ranked if pid not in filters.exclude]
        if pids:
            with client.pipeline(transaction=False) as pipe:
                pipe.smismember(K.active, pids)
                for pid in pids:
                    pipe.hmget(K.product(pid), *_DETAIL_FIELDS)
                active, *rows = pipe.execute()
            gone = stock.out_of_stock(pids) if exclude_out_of_stock else set()
            scores = dict(ranked)
            for pid, live, row in zip(pids, active, rows, strict=True):
                details = {f: v for f, v in zip(_DETAIL_FIELDS, row, strict=True) if v is not None}
                if not live or pid in gone or not filters.allows(pid, details):
                    continue
                found.append((pid, float(scores[pid]), details))
                if len(found) == k:
                    break
        if len(ranked) < size:
            break
        start, size = start + size, min(size * 4, 1000)
    return found


# ------------------------------------------------------------------ the catalog's categories, read only


@dataclass(frozen=True)
class CategoryCount:
    name: str  # the products' ``category`` field
    products: int  # live products filed under it
    name_zh: str = ""  # the catalog's Chinese name for it (``attributes.category_zh``), when it gave one


def catalog_categories(client: redis.Redis) -> list[CategoryCount]:
    """The categories that hold live products, the fullest first (then by name). Reads only.

    The names come from ``K.categories``, and from the category sets themselves (a ``SCAN``) in a projection
    written before that hash existed; a category whose products were all removed or moved is left out."""
    labels: dict[str, str] = client.hgetall(K.categories)
    if not labels:
        prefix = K.category("")
        labels = {name[len(prefix):]: "" for name in client.scan_iter(match=f"{prefix}*", count=1000)}
    names = sorted(labels)
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.scard(K.category(name))
        counts = pipe.execute()
    found = [CategoryCount(name, int(n), labels[name]) for name, n in zip(names, counts, strict=True) if n]
    return sorted(found, key=lambda c: (-c.products, c.name))
