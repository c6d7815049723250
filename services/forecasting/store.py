"""The forecasting service's state in Redis: key names and the read side of its projection.

Everything is aggregated by the UTC day of each event's ``occurred_at``:

- per product and per category, units sold and revenue per day (``order.created`` adds its lines,
  ``order.cancelled`` takes them back), views per day (the exposure the price model needs);
- the orders themselves (user, time, total) for RFM, cohorts and customer value;
- per day, action and category, the set of users who did it (the funnel) and event counts;
- per user, event counts and category counts (the behaviour profile);
- stock on hand (the shared rule in ``services/common/stock.py``);
- the products whose sales moved since their forecast was cached (the refresher's work list).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import redis

from services.common.cache import key
from services.common.stock import StockLedger, stock_keys

FUNNEL_ACTIONS = ("view", "add_to_cart", "purchase")


class ForecastKeys:
    catalog = key("fc", "catalog")            # set of products ever upserted
    active = key("fc", "catalog", "active")   # set of products in the catalog now
    categories = key("fc", "categories")      # set of category names
    clock = key("fc", "clock")                # zset: "last" -> latest occurred_at seen (epoch seconds)
    dirty = key("fc", "dirty")                # set of products/categories whose sales moved
    orders = key("fc", "orders")              # hash order_id -> json {u, t, total (net), cur, ...} (core/returns.py)
    buyers = key("fc", "buyers")              # set of users with an order
    stats = key("fc", "stats", "events")      # hash event type -> count
    days = key("fc", "days")                  # set of days with any interaction (funnel ranges)
    alerted = key("fc", "alerted")            # hash product -> reorder point it was alerted at
    stock, stock_counted_at = stock_keys("fc")

    @staticmethod
    def product(pid: str) -> str:
        return key("fc", "product", pid)

    @staticmethod
    def units(kind: str, target: str) -> str:
        """Hash day -> units sold; ``kind`` is "p" (product) or "c" (category)."""
        return key("fc", "units", kind, target)

    @staticmethod
    def revenue(kind: str, target: str) -> str:
        return key("fc", "revenue", kind, target)

    @staticmethod
    def views(pid: str) -> str:
        return key("fc", "views", pid)

    @staticmethod
    def view_price(pid: str) -> str:
        """Hash day -> sum of the prices shown in that day's views (/ views = the average price seen)."""
        return key("fc", "view-price", pid)

    @staticmethod
    def funnel_users(day: str, action: str, category: str) -> str:
        return key("fc", "funnel", day, action, category)

    @staticmethod
    def funnel_counts(day: str) -> str:
        """Hash "action|category" -> events that day."""
        return key("fc", "funnel", day, "counts")

    @staticmethod
    def user_counts(user: str) -> str:
        return key("fc", "user", user, "counts")

    @staticmethod
    def user_orders(user: str) -> str:
        """Set of the user's order ids (not cancelled)."""
        return key("fc", "user", user, "orders")

    @staticmethod
    def user_categories(user: str) -> str:
        """Hash "action|category" -> events."""
        return key("fc", "user", user, "categories")

    @staticmethod
    def user_funnel(user: str) -> str:
        """Set of the funnel user-set keys the user is in (erasure removes them from each)."""
        return key("fc", "user", user, "funnel")

    @staticmethod
    def forecast(target_key: str) -> str:
        """Cached forecast answers of one target, hash request fingerprint -> JSON."""
        return key("fc", "forecast", target_key)


K = ForecastKeys


def day_of(ts: datetime) -> str:
    return ts.astimezone(UTC).date().isoformat()


@dataclass(frozen=True)
class DailyHistory:
    """One target's daily sales: units, average price paid (NaN without a sale) and views per day."""

    start: date
    units: np.ndarray
    price: np.ndarray
    views: np.ndarray
    seen_price: np.ndarray  # average price shown in the day's views (NaN without views)

    @property
    def end(self) -> date:
        return self.start + timedelta(days=len(self.units) - 1)


class ForecastStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self.stock = StockLedger(client, "fc")

    # -- catalog -------------------------------------------------------------------------------------
    def product(self, pid: str) -> dict[str, str]:
        return self.redis.hgetall(K.product(pid))

    def active_products(self) -> set[str]:
        return self.redis.smembers(K.active)

    def known_product(self, pid: str) -> bool:
        return bool(self.redis.sismember(K.catalog, pid))

    def categories(self) -> set[str]:
        return self.redis.smembers(K.categories)

    def is_category(self, name: str) -> bool:
        return bool(self.redis.sismember(K.categories, name))

    def products_with_sales(self) -> list[str]:
        return self.targets_with_sales("p")

    def targets_with_sales(self, kind: str) -> list[str]:
        """The products ("p") or categories ("c") that ever sold."""
        prefix = K.units(kind, "")
        return sorted(k[len(prefix):] for k in self.redis.scan_iter(match=prefix + "*", count=1000))

    # -- time ---------------------------------------------------------------------------------------
    def last_day(self) -> date | None:
        """The last UTC day the projection has seen events for (the series end here)."""
        score = self.redis.zscore(K.clock, "last")
        return None if score is None else datetime.fromtimestamp(score, UTC).date()

    def events_seen(self) -> int:
        return sum(int(v) for v in self.redis.hgetall(K.stats).values())

    # -- sales --------------------------------------------------------------------------------------
    def history(self, kind: str, target: str, end: date | None = None, start: date | None = None) -> DailyHistory | None:
        """Daily units/price/views of a product ("p") or category ("c") from its first sale (or
        ``start``) to ``end`` (default: the last day seen); None without any sale."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(K.units(kind, target))
            pipe.hgetall(K.revenue(kind, target))
            pipe.hgetall(K.views(target) if kind == "p" else K.views("\0none"))
            pipe.hgetall(K.view_price(target) if kind == "p" else K.views("\0none"))
            units, revenue, views, seen = pipe.execute()
        return build_history(units, revenue, views, seen, end or self.last_day(), start)

    def histories(self, kind: str, targets: Iterable[str], end: date) -> dict[str, DailyHistory]:
        targets = list(targets)
        out: dict[str, DailyHistory] = {}
        for i in range(0, len(targets), 200):
            chunk = targets[i:i + 200]
            with self.redis.pipeline(transaction=False) as pipe:
                for t in chunk:
                    pipe.hgetall(K.units(kind, t))
                    pipe.hgetall(K.revenue(kind, t))
                    pipe.hgetall(K.views(t) if kind == "p" else K.views("\0none"))
                    pipe.hgetall(K.view_price(t) if kind == "p" else K.views("\0none"))
                values = pipe.execute()
            for j, t in enumerate(chunk):
                h = build_history(*values[4 * j:4 * j + 4], end)
                if h is not None:
                    out[t] = h
        return out

    def take_dirty(self, limit: int = 500) -> list[str]:
        return list(self.redis.spop(K.dirty, limit) or [])

    # -- orders and behaviour -----------------------------------------------------------------------
    def orders(self) -> Iterator[tuple[str, str, float, float, str]]:
        """(order_id, user, epoch seconds, net total, currency) of every order not cancelled, nor all
        returned or refunded (core/returns.py)."""
        for oid, raw in self.redis.hscan_iter(K.orders, count=2000):
            o = json.loads(raw)
            if not o.get("void"):
                yield oid, o["u"], float(o["t"]), float(o["total"]), o.get("cur", "")

    def user_orders(self, user: str) -> list[tuple[str, float, float]]:
        """(order_id, epoch seconds, net total) of the user's orders (as :meth:`orders`)."""
        ids = sorted(self.redis.smembers(K.user_orders(user)))
        if not ids:
            return []
        out = []
        for oid, raw in zip(ids, self.redis.hmget(K.orders, ids), strict=True):
            o = json.loads(raw) if raw else None
            if o and not o.get("void"):
                out.append((oid, float(o["t"]), float(o["total"])))
        return out

    def user_counts(self, user: str) -> dict[str, int]:
        return {k: int(v) for k, v in self.redis.hgetall(K.user_counts(user)).items()}

    def user_categories(self, user: str) -> dict[str, int]:
        return {k: int(v) for k, v in self.redis.hgetall(K.user_categories(user)).items()}

    def funnel_events(self, first: date, last: date, category: str | None):
        """(user, action, category, day) rows for the funnel in [first, last], one per user, action,
        category and day (the sets the projection keeps), and event counts per action and category."""
        days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
        known = self.redis.smembers(K.days)
        days = [d for d in days if d in known]
        categories = [category] if category else sorted(self.categories())
        rows: list[tuple[str, str, str, datetime]] = []
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for d in days:
            when = datetime.fromisoformat(d).replace(tzinfo=UTC)
            with self.redis.pipeline(transaction=False) as pipe:
                for action in FUNNEL_ACTIONS:
                    for c in categories:
                        pipe.smembers(K.funnel_users(d, action, c))
                pipe.hgetall(K.funnel_counts(d))
                values = pipe.execute()
            i = 0
            for action in FUNNEL_ACTIONS:
                for c in categories:
                    rows.extend((u, action, c, when) for u in values[i])
                    i += 1
            for field_, n in values[-1].items():
                action, _, c = field_.partition("|")
                if not category or c == category:
                    counts[(action, c)] += int(n)
        return rows, counts


def build_history(units: dict[str, str], revenue: dict[str, str], views: dict[str, str],
                  seen: dict[str, str], end: date | None, start: date | None = None) -> DailyHistory | None:
    if not units or end is None:
        return None
    sold = {date.fromisoformat(d): float(v) for d, v in units.items()}
    first = start or min(sold)
    if first > end:
        return None
    n = (end - first).days + 1
    y = np.zeros(n)
    rev = np.zeros(n)
    seen_prices = seen
    seen = np.zeros(n)
    for d, v in sold.items():
        i = (d - first).days
        if 0 <= i < n:
            y[i] = v
    for d, v in revenue.items():
        i = (date.fromisoformat(d) - first).days
        if 0 <= i < n:
            rev[i] = float(v)
    shown = np.zeros(n)
    for d, v in views.items():
        i = (date.fromisoformat(d) - first).days
        if 0 <= i < n:
            seen[i] = float(v)
    for d, v in seen_prices.items():
        i = (date.fromisoformat(d) - first).days
        if 0 <= i < n:
            shown[i] = float(v)
    y = np.clip(y, 0, None)  # a cancellation of a sale from before the window cannot go below zero
    with np.errstate(invalid="ignore", divide="ignore"):
        price = np.where(y > 0, rev / np.where(y > 0, y, 1), np.nan)
        seen_price = np.where(seen > 0, shown / np.where(seen > 0, seen, 1), np.nan)
    return DailyHistory(first, y, price, seen, seen_price)
