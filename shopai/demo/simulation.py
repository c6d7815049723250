"""The demo shop's simulation, one method per phase: the calendar, the products, their prices and
promotions, the shoppers, their tastes, the traffic, the opening stock; then every day: catalog changes,
sessions (who comes, what they look at), the funnel (click, cart, buy), the checkouts and the orders'
lifecycles, and the end of day (stock-take, restocking); finally the closing stock.

Two random streams, always drawn in the same order: ``rng`` (numpy, for the vectorised draws) and ``pyr``
(``random.Random``, for scalar draws inside loops). Changing the order of any draw changes every event
after it: ``tests/unit/test_demo_generator.py`` and the byte-identity check of a refactor rely on it.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from services.common.progress import progress as progress_bar
from shopai.demo.catalog import (
    BRAND_NAMES,
    BRAND_TIER,
    BRANDS,
    CATEGORIES,
    COLOURS,
    MATERIALS,
    TIER_WEIGHT,
    TIERS,
    build_catalog,
    charm_price,
)
from shopai.demo.emitter import EPOCH, Clock, Emitter, finish
from shopai.demo.model import (
    APPEAL_EXPONENT,
    BUY_P,
    CART_P,
    CATEGORY_POPULARITY,
    CLICK_P,
    ELASTICITY_RANGE,
    HIT_MIN_PRICE_STEPS,
    HIT_PRODUCTS,
    HOURLY_SHARE,
    PRICE_STEP_MULTIPLIERS,
    QTY_P,
    TREND_PER_YEAR,
    WEEKLY_FACTORS,
    promo_windows,
    q4_factor,
)
from shopai.demo.orders import Order, OrderLifecycle
from shopai.demo.truth import HiddenTruth
from shopai.demo.world import Calendar, Population, Prices, Products, Stock, Tastes

LOCATION = "main-warehouse"
ROWS_AT_ONCE = 256  # users (or sessions) whose logits over every product are held at once
MATERIAL_NAMES = sorted(MATERIALS)


@dataclass
class Visits:
    """One day's sessions and every product view in them (views of session ``s`` are
    ``first[s] : first[s] + n_views[s]``), with the funnel's outcome per view."""

    users: np.ndarray  # per session
    starts: np.ndarray  # second of the day the session starts
    n_views: np.ndarray
    is_search: np.ndarray
    queries: dict[int, str]  # session -> search text
    row: np.ndarray  # per view: its session
    product: np.ndarray  # per view
    first: np.ndarray | None = None
    match: np.ndarray | None = None
    click: np.ndarray | None = None
    cart: np.ndarray | None = None
    buy: np.ndarray | None = None
    quantity: np.ndarray | None = None
    view_gap: np.ndarray | None = None
    click_delay: np.ndarray | None = None
    cart_delay: np.ndarray | None = None
    checkout_delay: np.ndarray | None = None  # per session


class ShopSimulation:
    """``ShopSimulation(config).run()`` simulates the shop; ``streams()`` and ``truth()`` read the result."""

    def __init__(self, config, progress: bool = True) -> None:
        config.validate()
        self.cfg = config
        self.progress = progress
        self.rng = np.random.default_rng(config.seed)
        self.pyr = random.Random(config.seed * 7919 + 17)  # scalar draws inside loops
        self.clock = Clock()
        self.cal = self._calendar()
        self.em = Emitter(config.seed, self.cal.end_ts)
        self.catalog_events: list = []
        self.inventory_events: list = []
        self.interaction_events: list = []
        self.order_events: list = []
        self.order_no = 10_000_000
        self.session_no = 0
        self.views_sampled = 0

    def run(self) -> ShopSimulation:
        for _ in self.days():
            pass
        return self

    def days(self) -> Iterator[int]:
        """Simulate the shop, yielding after each day ``d`` (and once more, ``days``, after the closing
        stock). Once day ``d`` is yielded no later day makes an event at or before its last second:
        ``take_final`` hands those over, so the events can be published while the simulation runs."""
        self.products = self._products()
        self.prices = self._prices()
        self._promotions()
        self.population = self._population()
        self.tastes = self._tastes()
        self.season, self.expected_sessions = self._traffic()
        self.stock = self._stock()
        self.lifecycle = OrderLifecycle(
            self.em, self.order_events, self.interaction_events, self.pyr, self.clock,
            self.products.quality, self.cfg.return_rate, back_to_stock=self._back_to_stock,
        )
        self._opening()
        self._catalog_events()
        for d in progress_bar(range(self.cal.days), desc="demo shop", unit="day", disable=not self.progress):
            self._day(d)
            yield d
        self._closing()
        yield self.cal.days

    def take_catalog(self) -> list[dict]:
        """Every catalog event, in time order, removed from the buffer: the catalog is complete once
        ``days()`` has yielded (``_catalog_events``)."""
        catalog = finish(self.catalog_events)
        self.catalog_events = []
        return catalog

    def take_final(self, d: int) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
        """The events made so far that happen up to the end of day ``d`` (all of them for ``d`` = ``days``),
        removed from the simulation's buffers: catalog, inventory, interactions, orders, each in time order.
        Call it after ``days()`` yielded ``d``."""
        cutoff = self.cal.start_ts + (d + 1) * 86400 - 1
        out = []
        for stream in (self.catalog_events, self.inventory_events, self.interaction_events, self.order_events):
            ready = [x for x in stream if x[0] <= cutoff]
            if len(ready) < len(stream):
                stream[:] = [x for x in stream if x[0] > cutoff]
            else:
                stream.clear()
            out.append(finish(ready))
        return tuple(out)

    def streams(self) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
        """catalog, inventory, interactions, orders: each in time order."""
        return (finish(self.catalog_events), finish(self.inventory_events),
                finish(self.interaction_events), finish(self.order_events))

    def truth(self, counts: dict[str, int]) -> HiddenTruth:
        return HiddenTruth(
            config=self.cfg, calendar=self.cal, population=self.population, products=self.products,
            prices=self.prices, expected_sessions=self.expected_sessions, units_sold=self.stock.units_sold,
            stockout_days=self.stock.stockout_days, counts=counts, views_sampled=self.views_sampled,
        )

    # ---- set-up phases ---------------------------------------------------------------------------

    def _calendar(self) -> Calendar:
        days, end = self.cfg.days, self.cfg.end_date
        start = end - timedelta(days=days - 1)
        start_ts = (start - EPOCH).days * 86400
        dates = [start + timedelta(days=d) for d in range(days)]
        return Calendar(
            start, end, dates, start_ts, start_ts + days * 86400 - 1,
            np.array([x.timetuple().tm_yday for x in dates], dtype=np.float64),
            np.array([x.weekday() for x in dates]),
        )

    def _products(self) -> Products:
        rng, cfg, D, P = self.rng, self.cfg, self.cal.days, self.cfg.n_products
        n_late = min(max(2, round(cfg.late_product_share * P)), P // 10) if D >= 2 else 0
        n_removed = min(max(2, round(cfg.removed_product_share * P)), P // 10) if D >= 2 else 0
        late = np.zeros(P, dtype=bool)
        if n_late:
            late[P - n_late :] = True
        catalog = build_catalog(P, rng, late)
        material = np.array([MATERIAL_NAMES.index(m) for m in catalog.material])
        ref_price = np.array([c.ref_price for c in CATEGORIES])
        z_price = np.log(catalog.base_price / ref_price[catalog.category])  # where in its category's range
        quality = rng.normal(0.0, 0.5, P)
        elasticity = rng.uniform(*ELASTICITY_RANGE, P)
        lead_time = rng.integers(5, 22, P)
        cover_days = rng.uniform(30, 60, P)
        launch_day = np.zeros(P, dtype=np.int64)
        if n_late:
            launch_day[late] = rng.integers(max(1, D - 45), D, n_late)
        remove_day = np.full(P, D + 1, dtype=np.int64)  # D + 1 = never
        removed = np.array([], dtype=np.int64)
        if n_removed:
            removed = np.sort(rng.choice(np.flatnonzero(~late), n_removed, replace=False))
            remove_day[removed] = rng.integers(max(1, D - 30), D, n_removed)
        appeal = -APPEAL_EXPONENT * np.log(rng.permutation(P) + 1.0)
        return Products(catalog, late, material, z_price, quality, elasticity, lead_time, cover_days,
                        launch_day, remove_day, removed, appeal)

    def _prices(self) -> Prices:
        """List price per product and day: a few steps relative to the base price."""
        rng, D, P, prod = self.rng, self.cal.days, self.cfg.n_products, self.products
        base_price = prod.catalog.base_price
        list_price = np.repeat(base_price[:, None], D, axis=1)
        steps: dict[int, list[int]] = defaultdict(list)
        history = [[(int(prod.launch_day[p]), float(base_price[p]))] for p in range(P)]
        rate = self.cfg.price_changes_per_year * D / 365.0
        hits = set(np.argsort(-prod.appeal, kind="stable")[:HIT_PRODUCTS].tolist())
        for p in range(P):
            if prod.late[p] or D <= 8:
                continue
            k = min(int(rng.poisson(rate)), 6, D - 8)
            if p in hits:
                k = max(k, min(HIT_MIN_PRICE_STEPS, D - 8))
            if k <= 0:
                continue
            days_k = np.sort(rng.choice(np.arange(7, D), k, replace=False))
            current = 1.0
            for sd in days_k:
                if sd >= prod.remove_day[p]:
                    break
                options = [m for m in PRICE_STEP_MULTIPLIERS if abs(m - current) > 1e-9]
                current = options[int(rng.integers(len(options)))]
                newp = charm_price(float(base_price[p] * current))
                if newp == list_price[p, sd - 1]:
                    continue
                list_price[p, sd:] = newp
                steps[int(sd)].append(p)
                history[p].append((int(sd), newp))
        return Prices(list_price, steps, history)

    def _promotions(self) -> None:
        """Discount per product and day, traffic boost per day; the effective price."""
        rng, cal, P, prices = self.rng, self.cal, self.cfg.n_products, self.prices
        pids = self.products.catalog.product_ids
        promos = promo_windows(cal.start, cal.end)
        discount = np.zeros((P, cal.days))
        traffic_boost = np.ones(cal.days)
        for w in promos:
            a, b = (w["start"] - cal.start).days, (w["end"] - cal.start).days + 1
            part = rng.random(P) < w["share"]
            w["product_ids"] = [pids[p] for p in np.flatnonzero(part)]
            discount[part, a:b] = np.maximum(discount[part, a:b], w["discount"])
            traffic_boost[a:b] *= w["traffic_boost"]
            if w["name"].startswith("Double 11") and w["end"].month == 11 and w["end"].day == 11:
                traffic_boost[b - 1] *= 1.5  # the day itself
        prices.promotions = promos
        prices.traffic_boost = traffic_boost
        prices.effective = np.round(prices.list_price * (1.0 - discount), 2)

    def _population(self) -> Population:
        rng, U, D = self.rng, self.cfg.n_users, self.cal.days
        alpha = 5.0 * CATEGORY_POPULARITY / CATEGORY_POPULARITY.sum()
        cat_pref = rng.dirichlet(alpha, size=U)
        cat_pref = np.maximum(cat_pref, 1e-6)
        cat_pref /= cat_pref.sum(1, keepdims=True)
        tier_names = list(TIERS)
        tier_log = np.log([TIERS[t] for t in tier_names])
        user_tier = rng.choice(len(tier_names), size=U, p=[0.32, 0.40, 0.20, 0.08])
        band_mu = tier_log[user_tier] + rng.normal(0.0, 0.15, U)
        band_w = rng.uniform(0.3, 0.5, U)
        brand_aff = self._brand_affinity(band_mu)
        activity = rng.lognormal(0.0, 0.9, U)
        sensitivity = rng.gamma(6.0, 1.0 / 6.0, U)
        signup_day = np.where(rng.random(U) < 0.55, 0, rng.integers(0, D, U))
        language = np.where(rng.random(U) < 0.6, "zh", "en")
        # u1 is a long-standing, active customer (demos and tests use it)
        signup_day[0] = 0
        activity[0] = float(np.quantile(activity, 0.95)) if U > 1 else activity[0]
        uids = [f"u{i + 1}" for i in range(U)]
        return Population(uids, cat_pref, tier_names, user_tier, band_mu, band_w, brand_aff, activity,
                          sensitivity, signup_day, language)

    def _brand_affinity(self, band_mu: np.ndarray) -> np.ndarray:
        """1-3 favourite brands per user, drawn from brands popular in the user's price band."""
        rng, U, B = self.rng, self.cfg.n_users, len(BRANDS)
        brand_log = np.log([TIERS[t] for t in BRAND_TIER])
        brand_pop = np.array([TIER_WEIGHT[t] for t in BRAND_TIER])
        compat = np.exp(-((brand_log[None, :] - band_mu[:, None]) ** 2) / (2 * 0.35**2)) * brand_pop[None, :]
        compat /= compat.sum(1, keepdims=True)
        brand_aff = np.zeros((U, B))
        n_fav = rng.integers(1, 4, U)
        for u in range(U):
            fav = rng.choice(B, n_fav[u], replace=False, p=compat[u])
            brand_aff[u, fav] = rng.uniform(0.8, 2.0, n_fav[u])
        return brand_aff

    def _tastes(self) -> Tastes:
        """Static part of "what a user looks at": category taste, brand affinity, price band, quality
        (computed for the users at hand by ``Tastes.rows``: users x products would not fit a large shop)."""
        pop, prod = self.population, self.products
        category_match = np.sqrt(pop.category_pref / pop.category_pref.max(1, keepdims=True))
        return Tastes(np.log(pop.category_pref), pop.brand_affinity, pop.band_mu, pop.band_w,
                      prod.catalog.category, prod.catalog.brand, prod.z_price, prod.quality, prod.appeal,
                      category_match)

    def _traffic(self) -> tuple[np.ndarray, np.ndarray]:
        """Each category's seasonal log factor per day [10, D], and the expected sessions per day."""
        cal, D = self.cal, self.cal.days
        season_amp = np.array([c.season_amplitude for c in CATEGORIES])
        season_peak = np.array([c.season_peak_doy for c in CATEGORIES])
        phase = 2 * np.pi * (cal.day_of_year[None, :] - season_peak[:, None]) / 365.25
        season = season_amp[:, None] * np.cos(phase)
        trend = 1.0 + TREND_PER_YEAR * (np.arange(D) - (D - 1) / 2.0) / 365.0
        expected = (self.cfg.mean_sessions_per_day * WEEKLY_FACTORS[cal.weekday] * q4_factor(cal.day_of_year)
                    * self.prices.traffic_boost * trend)
        return season, expected

    def _stock(self) -> Stock:
        """Opening stock: enough for 25-60 days of a rough estimate of each product's demand."""
        rng, cfg, P, pop = self.rng, self.cfg, self.cfg.n_products, self.population
        total = np.zeros(P)
        for u0 in range(0, cfg.n_users, ROWS_AT_ONCE):
            static = self.tastes.rows(np.arange(u0, min(u0 + ROWS_AT_ONCE, cfg.n_users)))
            w_static = np.exp(static - static.max(1, keepdims=True))
            w_static /= w_static.sum(1, keepdims=True)
            weighted = pop.activity[u0 : u0 + len(static), None] * w_static
            for row in weighted:  # row by row, in user order: the same sum as over all users at once
                total += row
        share = total / pop.activity.sum()
        demand0 = cfg.mean_sessions_per_day * cfg.views_per_session * share * 0.05 * 1.2  # rough units per day
        initial = np.ceil(demand0 * rng.uniform(25, 60, P)).astype(np.int64) + rng.integers(3, 10, P)
        return Stock(
            on_hand=np.zeros(P, dtype=np.int64),
            demand=demand0.copy(),
            initial=initial,
            pending_restock=np.zeros(P, dtype=bool),
            launched=self.products.launch_day <= 0,
            removed=np.zeros(P, dtype=bool),
            stockout_days=np.zeros(P, dtype=np.int64),
            units_sold=np.zeros(P, dtype=np.int64),
        )

    def _opening(self) -> None:
        """The initial catalog and stock, just before the history starts; when the others arrive or go."""
        start_ts, stock, prod = self.cal.start_ts, self.stock, self.products
        base_price = prod.catalog.base_price
        for p in np.flatnonzero(stock.launched):
            self._product_event("product.upserted", start_ts - 3600, int(p), float(base_price[p]))
        for p in np.flatnonzero(stock.launched):
            stock.on_hand[p] = stock.initial[p]
            self._stock_set(start_ts - 1800, p)
        self.launches: dict[int, list[int]] = defaultdict(list)
        for p in np.flatnonzero(~stock.launched):
            self.launches[int(prod.launch_day[p])].append(int(p))
        self.removals: dict[int, list[int]] = defaultdict(list)
        for p in prod.removed:
            self.removals[int(prod.remove_day[p])].append(int(p))
        colour_w = np.array([c[4] for c in COLOURS])
        self.colour_cum = np.cumsum(colour_w / colour_w.sum())

    def _closing(self) -> None:
        """A final snapshot of every live product's stock."""
        stock = self.stock
        for p in np.flatnonzero(stock.launched & ~stock.removed).tolist():
            self._stock_set(self.cal.end_ts, p)

    # ---- events and stock movements ----------------------------------------------------------------

    def _product_event(self, kind: str, ts: int, p: int, price: float) -> None:
        pl = self.products.catalog.payloads[p]
        payload = dict(pl, price=price, tags=list(pl["tags"]), attributes=dict(pl["attributes"]))
        self.em.make(self.catalog_events, kind, ts, payload)

    def _stock_set(self, ts: int, p) -> None:
        pid = self.products.catalog.product_ids[p]
        payload = {"product_id": pid, "on_hand": int(self.stock.on_hand[p]), "location": LOCATION}
        self.em.make(self.inventory_events, "inventory.set", ts, payload)

    def _stock_delta(self, kind: str, ts: int, p: int, delta: int) -> None:
        pid = self.products.catalog.product_ids[p]
        payload = {"product_id": pid, "delta": int(delta), "location": LOCATION}
        self.em.make(self.inventory_events, kind, ts, payload)

    def _back_to_stock(self, t: int, p: int, q: int) -> None:
        """The units of an order cancelled at ``t`` return to stock then."""
        heap = self.stock.arrivals
        heapq.heappush(heap, (t, len(heap), 1, p, q))

    def _apply_pending(self, limit: int) -> None:
        """Restock arrivals and cancelled orders' units up to ``limit``."""
        stock, heap = self.stock, self.stock.arrivals
        while heap and heap[0][0] <= limit:
            t, _, kind, p, q = heapq.heappop(heap)
            if kind == 0:
                stock.pending_restock[p] = False
                if stock.removed[p]:
                    continue
                stock.on_hand[p] += q
                self._stock_delta("inventory.received", t, p, q)
            else:
                stock.on_hand[p] += q

    # ---- one day -----------------------------------------------------------------------------------

    def _day(self, d: int) -> None:
        day_ts = self.cal.start_ts + d * 86400
        self._catalog_changes(d, day_ts)
        stock, launch_day = self.stock, self.products.launch_day
        active = stock.launched & ~stock.removed
        dyn = self.season[self.products.catalog.category, d] + np.where(active, 0.0, -np.inf)
        dyn += np.where(active & (d - launch_day < 21) & (launch_day > 0), 0.8, 0.0)  # new-arrival boost
        S = int(self.rng.poisson(self.expected_sessions[d]))
        sold_today = np.zeros(self.cfg.n_products, dtype=np.int64)
        if S > 0 and active.any():
            visits = self._visits(d, S, dyn)
            self._funnel(d, visits)
            prices = self.prices.effective[:, d].tolist()
            checkouts = self._browse(d, day_ts, visits, prices)
            self._checkouts(checkouts, prices, sold_today)
        self._end_of_day(d, day_ts + 86399, active, sold_today)

    def _catalog_events(self) -> None:
        """Every day's price steps, launches and removals, known in advance (at the start of their day), so
        the whole catalog is there before the first day is simulated."""
        list_price, start_ts = self.prices.list_price, self.cal.start_ts
        for d in range(self.cal.days):
            day_ts = start_ts + d * 86400
            for p in self.prices.steps.get(d, ()):
                self._product_event("product.upserted", day_ts + 5, p, float(list_price[p, d]))
            for p in self.launches.get(d, ()):
                self._product_event("product.upserted", day_ts + 10, p, float(list_price[p, d]))
            for p in self.removals.get(d, ()):
                pid = self.products.catalog.product_ids[p]
                self.em.make(self.catalog_events, "product.removed", day_ts + 15, {"product_id": pid})

    def _catalog_changes(self, d: int, day_ts: int) -> None:
        """Launches (with their stock) and removals take effect at the start of the day."""
        stock = self.stock
        for p in self.launches.get(d, ()):
            stock.launched[p] = True
            stock.on_hand[p] = stock.initial[p]
            self._stock_set(day_ts + 11, p)
        for p in self.removals.get(d, ()):
            stock.removed[p] = True

    def _visits(self, d: int, S: int, dyn: np.ndarray) -> Visits:
        """Who comes, when, and which products each session looks at."""
        rng, pop, P = self.rng, self.population, self.cfg.n_products
        elig = np.where(pop.signup_day <= d, pop.activity, 0.0)
        users = rng.choice(self.cfg.n_users, S, p=elig / elig.sum())
        starts = rng.choice(24, S, p=HOURLY_SHARE) * 3600 + rng.integers(0, 3600, S)
        nv = 1 + rng.poisson(self.cfg.views_per_session - 1.0, S)
        is_search = rng.random(S) < self.cfg.search_rate
        V = int(nv.sum())
        row = np.repeat(np.arange(S), nv)

        draws = row + rng.random(V) * (1.0 - 1e-9)
        prod = np.empty(V, dtype=np.int64)
        queries: dict[int, str] = {}
        dyn32 = dyn[None, :].astype(np.float32)
        view_end = np.cumsum(nv)
        for s0 in range(0, S, ROWS_AT_ONCE):  # a few hundred sessions at a time: S x P floats may not fit
            s1 = min(s0 + ROWS_AT_ONCE, S)
            logits = self.tastes.rows(users[s0:s1])
            logits += dyn32
            search_rows = np.flatnonzero(is_search[s0:s1])
            if search_rows.size:
                bonus = np.zeros((search_rows.size, P), dtype=np.float32)
                for j, s in enumerate(search_rows):
                    queries[s0 + int(s)] = self._search(int(users[s0 + s]), bonus[j])
                logits[search_rows] += bonus
            logits -= logits.max(1, keepdims=True)
            np.exp(logits, out=logits)
            cum = np.cumsum(logits, axis=1, dtype=np.float64)
            cum /= cum[:, -1:]
            cum += np.arange(s0, s1, dtype=np.float64)[:, None]
            v0, v1 = (int(view_end[s0 - 1]) if s0 else 0), int(view_end[s1 - 1])
            prod[v0:v1] = np.searchsorted(cum.ravel(), draws[v0:v1], side="right") - (row[v0:v1] - s0) * P
            del logits, cum
        np.clip(prod, 0, P - 1, out=prod)
        return Visits(users, starts, nv, is_search, queries, row, prod)

    def _search(self, u: int, bonus: np.ndarray) -> str:
        """A search by user ``u``: a category they like, perhaps with a colour, brand or material. Adds the
        products it names to ``bonus`` (the session's view logits) and returns the query text."""
        pyr, pop, cat = self.pyr, self.population, self.products.catalog
        c = int(np.searchsorted(np.cumsum(pop.category_pref[u]), pyr.random() * 0.999999, side="right"))
        catd = CATEGORIES[c]
        en_noun, zh_noun = catd.search_nouns[pyr.randrange(len(catd.search_nouns))]
        zh = pop.language[u] == "zh"
        form = pyr.randrange(4)
        mask = cat.category == c
        bonus += 3.0 * mask
        if form == 1:
            col = int(np.searchsorted(self.colour_cum, pyr.random() * 0.999999, side="right"))
            bonus += 1.5 * (mask & (cat.colour == col))
            return f"{COLOURS[col][2]}{zh_noun}" if zh else f"{COLOURS[col][1].lower()} {en_noun}"
        if form == 2:
            ok = [b for b in range(len(BRANDS)) if catd.department in BRANDS[b][2]]
            favs = [b for b in ok if pop.brand_affinity[u, b] > 0]
            bsel = favs[pyr.randrange(len(favs))] if favs else ok[pyr.randrange(len(ok))]
            bonus += 2.0 * (mask & (cat.brand == bsel))
            return f"{BRAND_NAMES[bsel]} {zh_noun if zh else en_noun}"
        if form == 3:
            mat = catd.materials[pyr.randrange(len(catd.materials))]
            bonus += 1.0 * (mask & (self.products.material == MATERIAL_NAMES.index(mat)))
            return f"{MATERIALS[mat][1]}{zh_noun}" if zh else f"{MATERIALS[mat][0].lower()} {en_noun}"
        return zh_noun if zh else en_noun

    def _funnel(self, d: int, v: Visits) -> None:
        """Click, cart, purchase and quantity for every view of the day (vectorised), and the timings."""
        rng, pop, prod = self.rng, self.population, self.products
        V, S, p, uu = len(v.product), len(v.users), v.product, v.users[v.row]
        category, brand, base_price = prod.catalog.category, prod.catalog.brand, prod.catalog.base_price
        pt = np.maximum(-((prod.z_price[p] - pop.band_mu[uu]) ** 2) / (2 * pop.band_w[uu] ** 2), -8.0)
        affinity = pop.brand_affinity[uu, brand[p]]
        match = self.tastes.category_match[uu, category[p]] * np.exp(pt) * (0.6 + 0.2 * affinity)
        # price response: (price / base_price) ** (elasticity * sensitivity), split evenly between
        # the add-to-cart and the purchase step so that neither probability saturates
        price_today = self.prices.effective[:, d]
        half_response = (price_today[p] / base_price[p]) ** (0.5 * prod.elasticity[p] * pop.sensitivity[uu])
        v.match = match
        v.click = rng.random(V) < CLICK_P[0] + CLICK_P[1] * match
        p_cart = np.minimum(0.95, (CART_P[0] + CART_P[1] * match) * half_response)
        v.cart = v.click & (rng.random(V) < p_cart)
        p_buy = np.minimum(0.95, (BUY_P[0] + BUY_P[1] * match) * half_response)
        v.buy = v.cart & (rng.random(V) < p_buy)
        qty_draw = rng.random(V)
        v.quantity = np.where(qty_draw < QTY_P[0], 1, np.where(qty_draw < QTY_P[0] + QTY_P[1], 2, 3))
        v.view_gap = rng.integers(8, 120, V)
        v.click_delay = rng.integers(2, 15, V)
        v.cart_delay = rng.integers(20, 240, V)
        v.checkout_delay = rng.integers(30, 300, S)
        span = v.view_gap + v.click * (v.click_delay + v.cart * v.cart_delay)
        v.first = np.concatenate(([0], np.cumsum(v.n_views)[:-1]))
        duration = np.add.reduceat(span, v.first) + 10 * v.is_search + v.checkout_delay
        v.starts = np.minimum(v.starts, 86398 - duration)
        self.views_sampled += V

    def _browse(self, d: int, day_ts: int, v: Visits, price_l: list[float]) -> list:
        """Emit the day's searches, views, clicks and carts; return the checkouts
        (time, session, user, session id, basket of (product, quantity, match))."""
        em, stream = self.em, self.interaction_events
        pids, uids = self.products.catalog.product_ids, self.population.user_ids
        prod_l, click_l, cart_l, buy_l = v.product.tolist(), v.click.tolist(), v.cart.tolist(), v.buy.tolist()
        qty_l, match_l = v.quantity.tolist(), v.match.tolist()
        gap_l, cd_l, kd_l = v.view_gap.tolist(), v.click_delay.tolist(), v.cart_delay.tolist()
        date_tag = self.cal.dates[d].strftime("%Y%m%d")
        users_l, starts_l, nv_l = v.users.tolist(), v.starts.tolist(), v.n_views.tolist()
        first_l, co_l = v.first.tolist(), v.checkout_delay.tolist()
        checkouts: list = []
        for s in range(len(users_l)):
            self.session_no += 1
            u = users_l[s]
            uid = uids[u]
            sid = f"S{date_tag}-{self.session_no:07d}"
            t = day_ts + starts_l[s]
            q = v.queries.get(s)
            if q is not None:
                em.make(stream, "interaction.search", t, {"user_id": uid, "session_id": sid, "query": q})
                t += 10
            seen: set[int] = set()
            basket: list = []
            i0 = first_l[s]
            for i in range(i0, i0 + nv_l[s]):
                p = prod_l[i]
                t += gap_l[i]
                if p in seen:
                    continue
                seen.add(p)
                pid = pids[p]
                price = price_l[p]
                em.make(stream, "interaction.view", t,
                        {"user_id": uid, "product_id": pid, "session_id": sid, "price": price})
                if click_l[i]:
                    t += cd_l[i]
                    em.make(stream, "interaction.click", t,
                            {"user_id": uid, "product_id": pid, "session_id": sid, "price": price})
                    if cart_l[i]:
                        t += kd_l[i]
                        em.make(stream, "interaction.add_to_cart", t,
                                {"user_id": uid, "product_id": pid, "session_id": sid, "quantity": qty_l[i],
                                 "price": price})
                        if buy_l[i]:
                            basket.append((p, qty_l[i], match_l[i]))
            if basket:
                checkouts.append((t + co_l[s], s, u, sid, basket))
        return checkouts

    def _checkouts(self, checkouts: list, price_l: list[float], sold_today: np.ndarray) -> None:
        """Checkouts in time order: what is in stock is bought (purchases, then the order's lifecycle)."""
        stock, pids, uids = self.stock, self.products.catalog.product_ids, self.population.user_ids
        checkouts.sort(key=lambda c: (c[0], c[1]))
        for ts, _s, u, sid, basket in checkouts:
            self._apply_pending(ts)
            lines = []
            for p, q, m in basket:
                avail = int(stock.on_hand[p])
                if avail <= 0 or not (stock.launched[p] and not stock.removed[p]):
                    continue  # sold out: the cart stays unbought
                q = min(q, avail)
                stock.on_hand[p] -= q
                sold_today[p] += q
                lines.append((p, q, m))
            if not lines:
                continue
            uid = uids[u]
            self.order_no += 1
            oid = f"ORD-{self.order_no:08d}"
            for p, q, _m in lines:
                self.em.make(self.interaction_events, "interaction.purchase", ts,
                             {"user_id": uid, "product_id": pids[p], "session_id": sid, "quantity": q,
                              "price": price_l[p]})
            self.lifecycle.run(Order(oid, uid, ts, lines, pids, price_l))

    def _end_of_day(self, d: int, day_end: int, active: np.ndarray, sold_today: np.ndarray) -> None:
        """Arrivals, the monthly stock-take, demand tracking and restock orders."""
        rng, stock, P = self.rng, self.stock, self.cfg.n_products
        self._apply_pending(day_end)
        if self.cal.dates[d].day == 1:
            pick = np.flatnonzero(active & (rng.random(P) < 0.04))
            deltas = rng.choice([-3, -2, -1, -1, 1, 2], pick.size)
            for p, delta in zip(pick.tolist(), deltas.tolist(), strict=True):
                delta = max(delta, -int(stock.on_hand[p]))
                if delta == 0:
                    continue
                stock.on_hand[p] += delta
                self._stock_delta("inventory.adjusted", day_end, p, delta)
        stock.units_sold += sold_today
        stock.demand = np.where(active, 0.93 * stock.demand + 0.07 * sold_today, stock.demand)
        self._reorder(d, active)
        stock.stockout_days += active & (stock.on_hand <= 0)
        if (stock.on_hand < 0).any():  # pragma: no cover - guarded above
            raise AssertionError("simulated stock went negative")

    def _reorder(self, d: int, active: np.ndarray) -> None:
        """Reorder point: expected demand over the planned lead time plus a short safety cover. Suppliers
        are sometimes late: the actual lead time is the planned one -2..+8 days."""
        pyr, stock, prod, cal = self.pyr, self.stock, self.products, self.cal
        ewma = stock.demand
        need = active & ~stock.pending_restock & (stock.on_hand <= ewma * (prod.lead_time + 4) + 1)
        for p in np.flatnonzero(need).tolist():
            qty_r = 6 * math.ceil(max(6.0, ewma[p] * prod.cover_days[p]) / 6.0)
            actual_lead = max(1, int(prod.lead_time[p]) + pyr.randint(-2, 8))
            arrive = cal.start_ts + (d + actual_lead) * 86400 + pyr.randint(6 * 3600, 9 * 3600)
            if arrive <= cal.end_ts:
                stock.restocks += 1
                heapq.heappush(stock.arrivals, (arrive, -stock.restocks, 0, p, qty_r))
                stock.pending_restock[p] = True
