"""The seeded demo shop: a fashion catalog, users with hidden tastes, two years of behaviour, orders and stock.

``generate(DemoShopConfig(seed=42))`` returns a :class:`DemoShop` whose events are in the envelope format
of DESIGN.md (payload fields as in ``protos/events.proto``) and whose ``truth`` holds the hidden parameters
the simulation used, for tests and benchmarks. Nothing reads the wall clock: the same config always gives
the same events, event ids included (uuid5 of ``f"{seed}:{type}:{counter}"``).

See docs/demo-shop.md for the model in words.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from services.common.progress import progress as progress_bar
from shopai.demo.catalog import (
    BRAND_NAMES,
    BRAND_TIER,
    BRANDS,
    CATEGORIES,
    COLOURS,
    CURRENCY,
    MATERIALS,
    TIER_WEIGHT,
    TIERS,
    build_catalog,
    charm_price,
)
from shopai.demo.people import personal_details

SOURCE = "demo-shop"
LOCATION = "main-warehouse"
# Fixed namespace of the demo shop's event ids (uuid5(NAMESPACE, f"{seed}:{type}:{counter}")).
NAMESPACE = uuid.UUID("8a4b2c1e-5d3f-5e7a-9b0c-1d2e3f4a5b6c")
_NS_BYTES = NAMESPACE.bytes

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WEEKLY = np.array([0.92, 0.88, 0.90, 0.94, 1.02, 1.24, 1.14])
WEEKLY_FACTORS = _WEEKLY / _WEEKLY.mean()  # weekend peak, mean 1
# Share of sessions starting in each hour of the day (UTC: the demo shop lives in UTC).
_HOURLY = np.array(
    [
        0.5,
        0.3,
        0.2,
        0.15,
        0.15,
        0.2,
        0.4,
        0.8,
        1.1,
        1.2,
        1.2,
        1.3,
        1.5,
        1.3,
        1.1,
        1.1,
        1.2,
        1.3,
        1.5,
        1.9,
        2.2,
        2.2,
        1.7,
        1.0,
    ]
)
HOURLY_SHARE = _HOURLY / _HOURLY.sum()
Q4_AMPLITUDE, Q4_PEAK_DOY, Q4_WIDTH_DAYS = 0.25, 345, 28.0
TREND_PER_YEAR = 0.15  # traffic grows 15 % a year (centred on the middle of the history)
CATEGORY_POPULARITY = np.array([0.13, 0.11, 0.10, 0.10, 0.09, 0.08, 0.10, 0.12, 0.09, 0.08])
ELASTICITY_RANGE = (-2.5, -0.5)
PRICE_STEP_MULTIPLIERS = (0.8, 0.85, 0.9, 0.95, 1.05, 1.1, 1.15, 1.2, 1.25)
BRAND_LOGIT_WEIGHT = 1.0
# Funnel: probabilities as functions of the hidden match m in (0, 1].
CLICK_P = (0.12, 0.35)  # P(click | view) = a + b m
CART_P = (0.15, 0.40)  # P(add_to_cart | click) = min(0.95, (a + b m) * price_response ** 0.5)
BUY_P = (0.30, 0.40)  # P(purchase | cart) = min(0.95, (a + b m) * price_response ** 0.5)
# price_response = (price / base_price) ** (elasticity * price_sensitivity): demand per view ~ price ** elasticity
QTY_P = (0.85, 0.12, 0.03)
CARRIERS = ("SF Express", "ZTO Express", "YTO Express", "JD Logistics", "EMS")
CANCEL_REASONS = ("changed_mind", "found_cheaper", "ordered_by_mistake", "delivery_too_slow")
RETURN_REASONS = ("wrong_size", "not_as_described", "defective", "changed_mind", "colour_differs")


@dataclass
class DemoShopConfig:
    seed: int = 42
    n_products: int = 2000
    n_users: int = 3000
    days: int = 730
    end_date: date = date(2026, 11, 28)
    sessions_per_day: float = 150.0  # mean before weekly/yearly/promo/trend factors
    views_per_session: float = 2.6  # mean product views in a session (at least 1)
    search_rate: float = 0.3  # share of sessions that start with a search
    price_changes_per_year: float = 1.5  # mean list-price steps per product and year
    late_product_share: float = 0.015  # cold-start products launched in the last weeks
    removed_product_share: float = 0.015  # products removed in the last weeks
    return_rate: float = 0.06  # base share of delivered orders returned (more when the match is poor)

    def validate(self) -> None:
        if self.n_products < 10:
            raise ValueError("n_products must be at least 10 (one per category)")
        if self.n_users < 1 or self.days < 1:
            raise ValueError("n_users and days must be at least 1")
        if self.sessions_per_day <= 0 or self.views_per_session < 1:
            raise ValueError("sessions_per_day must be > 0 and views_per_session >= 1")


def _event_id(name: str) -> str:
    """Same value as ``str(uuid.uuid5(NAMESPACE, name))``, about 3x faster."""
    h = bytearray(hashlib.sha1(_NS_BYTES + name.encode("utf-8")).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50
    h[8] = (h[8] & 0x3F) | 0x80
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


_EPOCH = date(1970, 1, 1)


class _Clock:
    """Integer seconds since the Unix epoch <-> RFC 3339 strings, without the wall clock."""

    def __init__(self) -> None:
        self._days: dict[int, str] = {}

    def day_string(self, epoch_day: int) -> str:
        s = self._days.get(epoch_day)
        if s is None:
            s = self._days[epoch_day] = (_EPOCH + timedelta(days=epoch_day)).isoformat()
        return s

    def fmt(self, ts: int) -> str:
        day, sec = divmod(ts, 86400)
        h, rest = divmod(sec, 3600)
        m, s = divmod(rest, 60)
        return f"{self.day_string(day)}T{h:02d}:{m:02d}:{s:02d}Z"

    def date_of(self, ts: int) -> str:
        return self.day_string(ts // 86400)


class _Emitter:
    """Builds envelopes with deterministic ids and keeps (ts, seq, event) per stream."""

    def __init__(self, seed: int, end_ts: int, clock: _Clock) -> None:
        self.seed = seed
        self.end_ts = end_ts
        self.clock = clock
        self.counters: dict[str, int] = defaultdict(int)
        self.seq = 0

    def make(self, stream: list, kind: str, ts: int, payload: dict) -> None:
        if ts > self.end_ts:
            return  # happens after the end of the history: not a fact yet
        n = self.counters[kind]
        self.counters[kind] = n + 1
        self.seq += 1
        stream.append(
            (
                ts,
                self.seq,
                {
                    "event_id": _event_id(f"{self.seed}:{kind}:{n}"),
                    "type": kind,
                    "schema_version": 1,
                    "occurred_at": self.clock.fmt(ts),
                    "source": SOURCE,
                    "payload": payload,
                },
            )
        )


@dataclass
class DemoShop:
    catalog: list[dict]  # product.* events, time ordered
    inventory: list[dict]  # inventory.* events, time ordered
    interactions: list[dict]  # interaction.* events, time ordered
    orders: list[dict]  # order.* events, time ordered
    truth: dict = field(default_factory=dict)

    def events(self, catalog_first: bool = True) -> Iterator[dict]:
        """Every event. By default the catalog first (so consumers know every product before any
        behaviour), then inventory, orders and interactions merged by ``occurred_at``. With
        ``catalog_first=False`` the catalog is merged in time too (price changes, launches and
        removals then appear when they happened)."""
        key = _occurred_at
        if catalog_first:
            yield from self.catalog
            yield from heapq.merge(self.inventory, self.orders, self.interactions, key=key)
        else:
            yield from heapq.merge(self.catalog, self.inventory, self.orders, self.interactions, key=key)

    def counts(self) -> dict[str, int]:
        """Number of events per type."""
        c: Counter[str] = Counter()
        for stream in (self.catalog, self.inventory, self.interactions, self.orders):
            c.update(e["type"] for e in stream)
        return dict(sorted(c.items()))

    def write_truth(self, path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as fh:
            json.dump(self.truth, fh, ensure_ascii=False, indent=1)
            fh.write("\n")

    def write_events(self, path, catalog_first: bool = True) -> int:
        """Write every event as one JSON line; returns how many."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        n = 0
        with path.open("w", encoding="utf-8") as fh:
            for e in self.events(catalog_first=catalog_first):
                fh.write(json.dumps(e, ensure_ascii=False, separators=(",", ":")))
                fh.write("\n")
                n += 1
        return n


def _occurred_at(e: dict) -> str:
    return e["occurred_at"]


# ----------------------------------------------------------------------------------------------------
# Calendar: promotions, seasonality


def _black_friday(year: int) -> date:
    nov1 = date(year, 11, 1)
    first_thursday = nov1 + timedelta(days=(3 - nov1.weekday()) % 7)
    return first_thursday + timedelta(days=22)


def _promo_windows(start: date, end: date) -> list[dict]:
    """Promotion windows overlapping [start, end]: name, first and last day, discount, traffic boost,
    share of products taking part."""
    out = []
    for y in range(start.year - 1, end.year + 1):
        bf = _black_friday(y)
        for name, a, b, disc, boost, share in (
            ("618", date(y, 6, 14), date(y, 6, 18), 0.15, 1.5, 0.6),
            ("Double 11", date(y, 11, 1), date(y, 11, 11), 0.20, 1.7, 0.7),
            ("Black Friday", bf, bf + timedelta(days=3), 0.25, 1.6, 0.6),
            ("New Year", date(y, 12, 26), date(y + 1, 1, 1), 0.10, 1.25, 0.4),
        ):
            if b < start or a > end:
                continue
            out.append(
                {
                    "name": f"{name} {y}",
                    "start": max(a, start),
                    "end": min(b, end),
                    "discount": disc,
                    "traffic_boost": boost,
                    "share": share,
                }
            )
    return sorted(out, key=lambda w: w["start"])


def _q4_factor(doy: np.ndarray) -> np.ndarray:
    dist = np.abs(doy - Q4_PEAK_DOY)
    dist = np.minimum(dist, 365.25 - dist)
    return 1.0 + Q4_AMPLITUDE * np.exp(-0.5 * (dist / Q4_WIDTH_DAYS) ** 2)


# ----------------------------------------------------------------------------------------------------


def generate(config: DemoShopConfig, progress: bool = True) -> DemoShop:
    """Simulate the shop described by ``config``; deterministic in ``config``."""
    config.validate()
    cfg = config
    rng = np.random.default_rng(cfg.seed)
    pyr = random.Random(cfg.seed * 7919 + 17)  # scalar draws inside loops
    clock = _Clock()
    D, P, U = cfg.days, cfg.n_products, cfg.n_users
    end = cfg.end_date
    start = end - timedelta(days=D - 1)
    start_ts = (start - _EPOCH).days * 86400
    end_ts = start_ts + D * 86400 - 1
    em = _Emitter(cfg.seed, end_ts, clock)
    cat_stream: list = []
    inv_stream: list = []
    int_stream: list = []
    ord_stream: list = []

    dates = [start + timedelta(days=d) for d in range(D)]
    doy = np.array([x.timetuple().tm_yday for x in dates], dtype=np.float64)
    dow = np.array([x.weekday() for x in dates])

    # ---- products ----------------------------------------------------------------------------------
    n_late = min(max(2, round(cfg.late_product_share * P)), P // 10) if D >= 2 else 0
    n_removed = min(max(2, round(cfg.removed_product_share * P)), P // 10) if D >= 2 else 0
    late = np.zeros(P, dtype=bool)
    if n_late:
        late[P - n_late :] = True
    cat_arrays = build_catalog(P, rng, late)
    pids = cat_arrays.product_ids
    category, brand, colour = cat_arrays.category, cat_arrays.brand, cat_arrays.colour
    base_price = cat_arrays.base_price
    payloads = cat_arrays.payloads
    material_names = sorted(MATERIALS)
    material = np.array([material_names.index(m) for m in cat_arrays.material])
    ref_price = np.array([c.ref_price for c in CATEGORIES])
    z_price = np.log(base_price / ref_price[category])  # where a product sits in its category's price range
    quality = rng.normal(0.0, 0.5, P)
    elasticity = rng.uniform(*ELASTICITY_RANGE, P)
    lead_time = rng.integers(5, 22, P)
    cover_days = rng.uniform(30, 60, P)

    launch_day = np.zeros(P, dtype=np.int64)
    if n_late:
        launch_day[late] = rng.integers(max(1, D - 45), D, n_late)
    remove_day = np.full(P, D + 1, dtype=np.int64)  # D + 1 = never
    removed_idx = np.array([], dtype=np.int64)
    if n_removed:
        removed_idx = np.sort(rng.choice(np.flatnonzero(~late), n_removed, replace=False))
        remove_day[removed_idx] = rng.integers(max(1, D - 30), D, n_removed)

    # list price per product and day: a few steps relative to the base price
    list_price = np.repeat(base_price[:, None], D, axis=1)
    price_steps: dict[int, list[int]] = defaultdict(list)  # day -> products whose list price changes
    price_history: list[list[tuple[int, float]]] = [
        [(int(launch_day[p]), float(base_price[p]))] for p in range(P)
    ]
    rate = cfg.price_changes_per_year * D / 365.0
    for p in range(P):
        if late[p] or D <= 8:
            continue
        k = min(int(rng.poisson(rate)), 6, D - 8)
        if k <= 0:
            continue
        days_k = np.sort(rng.choice(np.arange(7, D), k, replace=False))
        current = 1.0
        for sd in days_k:
            if sd >= remove_day[p]:
                break
            options = [m for m in PRICE_STEP_MULTIPLIERS if abs(m - current) > 1e-9]
            current = options[int(rng.integers(len(options)))]
            newp = _charm(base_price[p] * current)
            if newp == list_price[p, sd - 1]:
                continue
            list_price[p, sd:] = newp
            price_steps[int(sd)].append(p)
            price_history[p].append((int(sd), newp))

    # promotions: discount per product and day, traffic boost per day
    promos = _promo_windows(start, end)
    discount = np.zeros((P, D))
    traffic_boost = np.ones(D)
    for w in promos:
        a, b = (w["start"] - start).days, (w["end"] - start).days + 1
        part = rng.random(P) < w["share"]
        w["product_ids"] = [pids[p] for p in np.flatnonzero(part)]
        discount[part, a:b] = np.maximum(discount[part, a:b], w["discount"])
        traffic_boost[a:b] *= w["traffic_boost"]
        if w["name"].startswith("Double 11") and w["end"].month == 11 and w["end"].day == 11:
            traffic_boost[b - 1] *= 1.5  # the day itself
    eff_price = np.round(list_price * (1.0 - discount), 2)

    # ---- users -------------------------------------------------------------------------------------
    alpha = 5.0 * CATEGORY_POPULARITY / CATEGORY_POPULARITY.sum()
    cat_pref = rng.dirichlet(alpha, size=U)
    cat_pref = np.maximum(cat_pref, 1e-6)
    cat_pref /= cat_pref.sum(1, keepdims=True)
    tier_names = list(TIERS)
    tier_log = np.log([TIERS[t] for t in tier_names])
    user_tier = rng.choice(len(tier_names), size=U, p=[0.32, 0.40, 0.20, 0.08])
    band_mu = tier_log[user_tier] + rng.normal(0.0, 0.15, U)
    band_w = rng.uniform(0.3, 0.5, U)
    B = len(BRANDS)
    brand_log = np.log([TIERS[t] for t in BRAND_TIER])
    brand_pop = np.array([TIER_WEIGHT[t] for t in BRAND_TIER])
    compat = np.exp(-((brand_log[None, :] - band_mu[:, None]) ** 2) / (2 * 0.35**2)) * brand_pop[None, :]
    compat /= compat.sum(1, keepdims=True)
    brand_aff = np.zeros((U, B))
    n_fav = rng.integers(1, 4, U)
    for u in range(U):
        fav = rng.choice(B, n_fav[u], replace=False, p=compat[u])
        brand_aff[u, fav] = rng.uniform(0.8, 2.0, n_fav[u])
    activity = rng.lognormal(0.0, 0.9, U)
    sensitivity = rng.gamma(6.0, 1.0 / 6.0, U)
    signup_day = np.where(rng.random(U) < 0.55, 0, rng.integers(0, D, U))
    language = np.where(rng.random(U) < 0.6, "zh", "en")
    # u1 is a long-standing, active customer (demos and tests use it)
    signup_day[0] = 0
    activity[0] = float(np.quantile(activity, 0.95)) if U > 1 else activity[0]
    uids = [f"u{i + 1}" for i in range(U)]

    # static part of "what a user looks at": category taste, brand affinity, price band, quality
    price_term = np.maximum(-((z_price[None, :] - band_mu[:, None]) ** 2) / (2 * band_w[:, None] ** 2), -8.0)
    static = (
        np.log(cat_pref)[:, category]
        + BRAND_LOGIT_WEIGHT * brand_aff[:, brand]
        + price_term
        + quality[None, :]
    ).astype(np.float32)
    cp_rel_sqrt = np.sqrt(cat_pref / cat_pref.max(1, keepdims=True))
    del price_term

    # ---- traffic and seasonality -------------------------------------------------------------------
    season_amp = np.array([c.season_amplitude for c in CATEGORIES])
    season_peak = np.array([c.season_peak_doy for c in CATEGORIES])
    season = season_amp[:, None] * np.cos(
        2 * np.pi * (doy[None, :] - season_peak[:, None]) / 365.25
    )  # [10, D]
    trend = 1.0 + TREND_PER_YEAR * (np.arange(D) - (D - 1) / 2.0) / 365.0
    expected_sessions = cfg.sessions_per_day * WEEKLY_FACTORS[dow] * _q4_factor(doy) * traffic_boost * trend

    # ---- stock -------------------------------------------------------------------------------------
    w_static = np.exp(static - static.max(1, keepdims=True))
    w_static /= w_static.sum(1, keepdims=True)
    share = (activity[:, None] * w_static).sum(0) / activity.sum()
    del w_static
    demand0 = cfg.sessions_per_day * cfg.views_per_session * share * 0.05 * 1.2  # rough units per day
    stock = np.zeros(P, dtype=np.int64)
    ewma = demand0.copy()
    init_stock = np.ceil(demand0 * rng.uniform(25, 60, P)).astype(np.int64) + rng.integers(3, 10, P)
    pending_restock = np.zeros(P, dtype=bool)
    removed = np.zeros(P, dtype=bool)
    launched = launch_day <= 0
    stockout_days = np.zeros(P, dtype=np.int64)
    units_sold = np.zeros(P, dtype=np.int64)
    heap: list = []  # (ts, seq, kind, product, qty); kind 0 = restock arrival, 1 = cancelled order back to stock
    heap_seq = 0

    def product_event(kind: str, ts: int, p: int, price: float) -> None:
        pl = payloads[p]
        payload = dict(pl, price=price, tags=list(pl["tags"]), attributes=dict(pl["attributes"]))
        em.make(cat_stream, kind, ts, payload)

    def apply_pending(limit: int) -> None:
        while heap and heap[0][0] <= limit:
            t, _, kind, p, q = heapq.heappop(heap)
            if kind == 0:
                pending_restock[p] = False
                if removed[p]:
                    continue
                stock[p] += q
                em.make(
                    inv_stream,
                    "inventory.received",
                    t,
                    {"product_id": pids[p], "delta": int(q), "location": LOCATION},
                )
            else:
                stock[p] += q

    # initial catalog and stock, just before the history starts
    for p in np.flatnonzero(launched):
        product_event("product.upserted", start_ts - 3600, int(p), float(base_price[p]))
    for p in np.flatnonzero(launched):
        stock[p] = init_stock[p]
        em.make(
            inv_stream,
            "inventory.set",
            start_ts - 1800,
            {"product_id": pids[p], "on_hand": int(stock[p]), "location": LOCATION},
        )

    launches: dict[int, list[int]] = defaultdict(list)
    for p in np.flatnonzero(~launched):
        launches[int(launch_day[p])].append(int(p))
    removals: dict[int, list[int]] = defaultdict(list)
    for p in removed_idx:
        removals[int(remove_day[p])].append(int(p))

    order_no = 10_000_000
    session_no = 0
    views_mean_extra = cfg.views_per_session - 1.0
    colour_w = np.array([c[4] for c in COLOURS])
    colour_w = colour_w / colour_w.sum()
    n_views_total = 0

    for d in progress_bar(range(D), desc="demo shop", unit="day", disable=not progress):
        day_ts = start_ts + d * 86400
        day_end = day_ts + 86399
        # catalog changes happen at the start of the day
        for p in price_steps.get(d, ()):
            product_event("product.upserted", day_ts + 5, p, float(list_price[p, d]))
        for p in launches.get(d, ()):
            launched[p] = True
            product_event("product.upserted", day_ts + 10, p, float(list_price[p, d]))
            stock[p] = init_stock[p]
            em.make(
                inv_stream,
                "inventory.set",
                day_ts + 11,
                {"product_id": pids[p], "on_hand": int(stock[p]), "location": LOCATION},
            )
        for p in removals.get(d, ()):
            removed[p] = True
            em.make(cat_stream, "product.removed", day_ts + 15, {"product_id": pids[p]})
        active = launched & ~removed
        dyn = season[category, d] + np.where(active, 0.0, -np.inf)
        dyn += np.where(active & (d - launch_day < 21) & (launch_day > 0), 0.8, 0.0)  # new-arrival boost

        # ---- sessions: who, when, what they look at --------------------------------------------
        S = int(rng.poisson(expected_sessions[d]))
        sold_today = np.zeros(P, dtype=np.int64)
        checkouts: list = []
        if S > 0 and active.any():
            elig = np.where(signup_day <= d, activity, 0.0)
            users = rng.choice(U, S, p=elig / elig.sum())
            starts = rng.choice(24, S, p=HOURLY_SHARE) * 3600 + rng.integers(0, 3600, S)
            nv = 1 + rng.poisson(views_mean_extra, S)
            is_search = rng.random(S) < cfg.search_rate
            V = int(nv.sum())
            row = np.repeat(np.arange(S), nv)
            uu = users[row]

            logits = static[users]
            logits += dyn[None, :].astype(np.float32)
            queries: dict[int, str] = {}
            search_rows = np.flatnonzero(is_search)
            if search_rows.size:
                bonus = np.zeros((search_rows.size, P), dtype=np.float32)
                for j, s in enumerate(search_rows):
                    u = int(users[s])
                    c = int(np.searchsorted(np.cumsum(cat_pref[u]), pyr.random() * 0.999999, side="right"))
                    catd = CATEGORIES[c]
                    en_noun, zh_noun = catd.search_nouns[pyr.randrange(len(catd.search_nouns))]
                    zh = language[u] == "zh"
                    form = pyr.randrange(4)
                    mask = category == c
                    bonus[j] += 3.0 * mask
                    if form == 1:
                        col = int(np.searchsorted(np.cumsum(colour_w), pyr.random() * 0.999999, side="right"))
                        bonus[j] += 1.5 * (mask & (colour == col))
                        q = f"{COLOURS[col][2]}{zh_noun}" if zh else f"{COLOURS[col][1].lower()} {en_noun}"
                    elif form == 2:
                        ok = [b for b in range(B) if catd.department in BRANDS[b][2]]
                        favs = [b for b in ok if brand_aff[u, b] > 0]
                        bsel = favs[pyr.randrange(len(favs))] if favs else ok[pyr.randrange(len(ok))]
                        bonus[j] += 2.0 * (mask & (brand == bsel))
                        q = f"{BRAND_NAMES[bsel]} {zh_noun if zh else en_noun}"
                    elif form == 3:
                        mat = catd.materials[pyr.randrange(len(catd.materials))]
                        mi = material_names.index(mat)
                        bonus[j] += 1.0 * (mask & (material == mi))
                        q = (
                            f"{MATERIALS[mat][1]}{zh_noun}"
                            if zh
                            else f"{MATERIALS[mat][0].lower()} {en_noun}"
                        )
                    else:
                        q = zh_noun if zh else en_noun
                    queries[int(s)] = q
                logits[search_rows] += bonus
            logits -= logits.max(1, keepdims=True)
            np.exp(logits, out=logits)
            cum = np.cumsum(logits, axis=1, dtype=np.float64)
            cum /= cum[:, -1:]
            cum += np.arange(S, dtype=np.float64)[:, None]
            draws = row + rng.random(V) * (1.0 - 1e-9)
            prod = np.searchsorted(cum.ravel(), draws, side="right") - row * P
            np.clip(prod, 0, P - 1, out=prod)
            del logits, cum

            # ---- funnel, vectorised over every view of the day -------------------------------------
            pt = np.maximum(-((z_price[prod] - band_mu[uu]) ** 2) / (2 * band_w[uu] ** 2), -8.0)
            match = cp_rel_sqrt[uu, category[prod]] * np.exp(pt) * (0.6 + 0.2 * brand_aff[uu, brand[prod]])
            # price response: (price / base_price) ** (elasticity * sensitivity), split evenly between
            # the add-to-cart and the purchase step so that neither probability saturates
            price_today = eff_price[:, d]
            half_response = (price_today[prod] / base_price[prod]) ** (
                0.5 * elasticity[prod] * sensitivity[uu]
            )
            click = rng.random(V) < CLICK_P[0] + CLICK_P[1] * match
            p_cart = np.minimum(0.95, (CART_P[0] + CART_P[1] * match) * half_response)
            cart = click & (rng.random(V) < p_cart)
            p_buy = np.minimum(0.95, (BUY_P[0] + BUY_P[1] * match) * half_response)
            buy = cart & (rng.random(V) < p_buy)
            qty_draw = rng.random(V)
            qty = np.where(qty_draw < QTY_P[0], 1, np.where(qty_draw < QTY_P[0] + QTY_P[1], 2, 3))
            view_gap = rng.integers(8, 120, V)
            click_delay = rng.integers(2, 15, V)
            cart_delay = rng.integers(20, 240, V)
            checkout_delay = rng.integers(30, 300, S)
            span = view_gap + click * (click_delay + cart * cart_delay)
            first = np.concatenate(([0], np.cumsum(nv)[:-1]))
            duration = np.add.reduceat(span, first) + 10 * is_search + checkout_delay
            starts = np.minimum(starts, 86398 - duration)
            n_views_total += V

            # ---- emit browsing events; collect checkouts -----------------------------------------
            prod_l, click_l, cart_l, buy_l = prod.tolist(), click.tolist(), cart.tolist(), buy.tolist()
            qty_l, match_l = qty.tolist(), match.tolist()
            gap_l, cd_l, kd_l = view_gap.tolist(), click_delay.tolist(), cart_delay.tolist()
            price_l = price_today.tolist()
            date_tag = dates[d].strftime("%Y%m%d")
            users_l, starts_l, nv_l, first_l = users.tolist(), starts.tolist(), nv.tolist(), first.tolist()
            co_l = checkout_delay.tolist()
            for s in range(S):
                session_no += 1
                u = users_l[s]
                uid = uids[u]
                sid = f"S{date_tag}-{session_no:07d}"
                t = day_ts + starts_l[s]
                q = queries.get(s)
                if q is not None:
                    em.make(
                        int_stream, "interaction.search", t, {"user_id": uid, "session_id": sid, "query": q}
                    )
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
                    em.make(
                        int_stream,
                        "interaction.view",
                        t,
                        {"user_id": uid, "product_id": pid, "session_id": sid, "price": price},
                    )
                    if click_l[i]:
                        t += cd_l[i]
                        em.make(
                            int_stream,
                            "interaction.click",
                            t,
                            {"user_id": uid, "product_id": pid, "session_id": sid, "price": price},
                        )
                        if cart_l[i]:
                            t += kd_l[i]
                            em.make(
                                int_stream,
                                "interaction.add_to_cart",
                                t,
                                {
                                    "user_id": uid,
                                    "product_id": pid,
                                    "session_id": sid,
                                    "quantity": qty_l[i],
                                    "price": price,
                                },
                            )
                            if buy_l[i]:
                                basket.append((p, qty_l[i], match_l[i]))
                if basket:
                    checkouts.append((t + co_l[s], s, u, sid, basket))

        # ---- checkouts in time order: stock, purchases, orders ------------------------------------
        checkouts.sort(key=lambda c: (c[0], c[1]))
        for ts, _s, u, sid, basket in checkouts:
            apply_pending(ts)
            lines = []
            for p, q, m in basket:
                avail = int(stock[p])
                if avail <= 0 or not (launched[p] and not removed[p]):
                    continue  # sold out: the cart stays unbought
                q = min(q, avail)
                stock[p] -= q
                sold_today[p] += q
                lines.append((p, q, m))
            if not lines:
                continue
            uid = uids[u]
            order_no += 1
            oid = f"ORD-{order_no:08d}"
            for p, q, _m in lines:
                em.make(
                    int_stream,
                    "interaction.purchase",
                    ts,
                    {
                        "user_id": uid,
                        "product_id": pids[p],
                        "session_id": sid,
                        "quantity": q,
                        "price": price_l[p],
                    },
                )
            _order_lifecycle(
                em,
                ord_stream,
                int_stream,
                pyr,
                clock,
                oid,
                uid,
                ts,
                lines,
                price_l,
                pids,
                quality,
                cfg.return_rate,
                heap_push=lambda t, p, q: _push(heap, t, p, q, 1),
            )

        # ---- end of day: stock-take, restocking ----------------------------------------------------
        apply_pending(day_end)
        if dates[d].day == 1:
            pick = np.flatnonzero(active & (rng.random(P) < 0.04))
            deltas = rng.choice([-3, -2, -1, -1, 1, 2], pick.size)
            for p, delta in zip(pick.tolist(), deltas.tolist()):
                delta = max(delta, -int(stock[p]))
                if delta == 0:
                    continue
                stock[p] += delta
                em.make(
                    inv_stream,
                    "inventory.adjusted",
                    day_end,
                    {"product_id": pids[p], "delta": int(delta), "location": LOCATION},
                )
        units_sold += sold_today
        ewma = np.where(active, 0.93 * ewma + 0.07 * sold_today, ewma)
        # reorder point: expected demand over the planned lead time plus a short safety cover
        need = active & ~pending_restock & (stock <= ewma * (lead_time + 4) + 1)
        for p in np.flatnonzero(need).tolist():
            qty_r = 6 * math.ceil(max(6.0, ewma[p] * cover_days[p]) / 6.0)
            # suppliers are sometimes late: the actual lead time is the planned one -2..+8 days
            actual_lead = max(1, int(lead_time[p]) + pyr.randint(-2, 8))
            arrive = start_ts + (d + actual_lead) * 86400 + pyr.randint(6 * 3600, 9 * 3600)
            if arrive <= end_ts:
                heap_seq += 1
                heapq.heappush(heap, (arrive, -heap_seq, 0, p, qty_r))
                pending_restock[p] = True
        stockout_days += active & (stock <= 0)
        if (stock < 0).any():  # pragma: no cover - guarded above
            raise AssertionError("simulated stock went negative")

    # final snapshot of every live product
    for p in np.flatnonzero(launched & ~removed).tolist():
        em.make(
            inv_stream,
            "inventory.set",
            end_ts,
            {"product_id": pids[p], "on_hand": int(stock[p]), "location": LOCATION},
        )

    def finish(stream: list) -> list[dict]:
        stream.sort(key=lambda x: (x[0], x[1]))
        return [e for _, _, e in stream]

    shop = DemoShop(finish(cat_stream), finish(inv_stream), finish(int_stream), finish(ord_stream))
    shop.truth = _truth(
        cfg,
        start,
        end,
        dates,
        promos,
        uids,
        pids,
        cat_pref,
        brand_aff,
        user_tier,
        tier_names,
        band_mu,
        band_w,
        activity,
        sensitivity,
        signup_day,
        language,
        cat_arrays,
        quality,
        elasticity,
        lead_time,
        launch_day,
        remove_day,
        price_history,
        stockout_days,
        units_sold,
        expected_sessions,
        shop.counts(),
        n_views_total,
    )
    return shop


def _push(heap: list, t: int, p: int, q: int, kind: int) -> None:
    heapq.heappush(heap, (t, len(heap), kind, p, q))


def _charm(x: float) -> float:
    return charm_price(float(x))


def _tracking(carrier: str, r: random.Random) -> str:
    def digits(n: int) -> str:
        return "".join(str(r.randrange(10)) for _ in range(n))

    if carrier == "SF Express":
        return "SF" + digits(13)
    if carrier == "ZTO Express":
        return "7" + digits(13)
    if carrier == "YTO Express":
        return "YT" + digits(13)
    if carrier == "JD Logistics":
        return "JDV" + digits(12)
    return "E" + digits(9) + "CN"


def _order_lifecycle(
    em: _Emitter,
    ord_stream: list,
    int_stream: list,
    r: random.Random,
    clock: _Clock,
    oid: str,
    uid: str,
    ts: int,
    lines: list,
    price_l: list,
    pids: list,
    quality: np.ndarray,
    return_rate: float,
    heap_push,
) -> None:
    """order.created at checkout, then paid / cancelled / shipped / delivered / returned / refunded,
    and ratings after delivery. Events after the end of the history are dropped by the emitter."""
    line_payload = [(pids[p], q, price_l[p]) for p, q, _ in lines]
    total = round(sum(q * pr for _, q, pr in line_payload), 2)

    def payload(**extra) -> dict:
        out = {
            "order_id": oid,
            "user_id": uid,
            "lines": [{"product_id": a, "quantity": q, "unit_price": pr} for a, q, pr in line_payload],
            "total": total,
            "currency": CURRENCY,
        }
        out.update(extra)
        return out

    em.make(ord_stream, "order.created", ts, payload(**personal_details(em.seed, uid)))  # sealed by the publisher
    x = r.random()
    if x < 0.015:  # never paid
        t = ts + r.randint(1800, 3600)
        em.make(ord_stream, "order.cancelled", t, payload(reason="payment_timeout"))
        if t <= em.end_ts:
            for p, q, _ in lines:
                heap_push(t, p, q)
        return
    paid = ts + r.randint(20, 900)
    em.make(ord_stream, "order.paid", paid, payload())
    if x < 0.03:  # cancelled after payment, before shipping
        t = paid + r.randint(600, 36000)
        reason = CANCEL_REASONS[r.randrange(len(CANCEL_REASONS))]
        em.make(ord_stream, "order.cancelled", t, payload(reason=reason))
        em.make(ord_stream, "order.refunded", t + r.randint(1800, 86400), payload(reason=reason))
        if t <= em.end_ts:
            for p, q, _ in lines:
                heap_push(t, p, q)
        return
    carrier = CARRIERS[r.randrange(len(CARRIERS))]
    tracking = _tracking(carrier, r)
    shipped = paid + r.randint(4 * 3600, 48 * 3600)
    expected = clock.date_of(shipped + r.randint(2, 4) * 86400)
    ship_info = {"carrier": carrier, "tracking_no": tracking, "expected_delivery": expected}
    em.make(ord_stream, "order.shipped", shipped, payload(**ship_info))
    delivered = shipped + r.randint(20 * 3600, 5 * 86400)
    em.make(ord_stream, "order.delivered", delivered, payload(**ship_info))
    mean_match = sum(m for _, _, m in lines) / len(lines)
    returned = r.random() < return_rate * (0.5 + 1.2 * (1.0 - mean_match))
    if returned:
        reason = RETURN_REASONS[r.randrange(len(RETURN_REASONS))]
        t = delivered + r.randint(2 * 86400, 14 * 86400)
        em.make(ord_stream, "order.returned", t, payload(reason=reason, **ship_info))
        em.make(ord_stream, "order.refunded", t + r.randint(86400, 4 * 86400), payload(reason=reason))
    for p, _q, m in lines:
        if r.random() < (0.45 if returned else 0.3):
            value = 1.8 + 3.0 * m + 0.6 * float(quality[p]) + r.gauss(0.0, 0.6) - (1.2 if returned else 0.0)
            value = int(min(5, max(1, round(value))))
            em.make(
                int_stream,
                "interaction.rating",
                delivered + r.randint(3600, 10 * 86400),
                {"user_id": uid, "product_id": pids[p], "session_id": f"R-{oid}", "rating": value},
            )


def _r(x: float, nd: int = 4) -> float:
    return round(float(x), nd)


def _truth(
    cfg,
    start,
    end,
    dates,
    promos,
    uids,
    pids,
    cat_pref,
    brand_aff,
    user_tier,
    tier_names,
    band_mu,
    band_w,
    activity,
    sensitivity,
    signup_day,
    language,
    cat_arrays,
    quality,
    elasticity,
    lead_time,
    launch_day,
    remove_day,
    price_history,
    stockout_days,
    units_sold,
    expected_sessions,
    counts,
    n_views,
) -> dict:
    D = len(dates)
    cfg_dict = asdict(cfg)
    cfg_dict["end_date"] = cfg.end_date.isoformat()
    users = {}
    for u, uid in enumerate(uids):
        aff = {BRAND_NAMES[b]: _r(brand_aff[u, b], 3) for b in np.flatnonzero(brand_aff[u])}
        users[uid] = {
            "category_prefs": {c.slug: _r(cat_pref[u, i]) for i, c in enumerate(CATEGORIES)},
            "brand_affinity": aff,
            "price_band": {
                "tier": tier_names[user_tier[u]],
                "center": _r(math.exp(band_mu[u]), 3),
                "low": _r(math.exp(band_mu[u] - band_w[u]), 3),
                "high": _r(math.exp(band_mu[u] + band_w[u]), 3),
                "log_center": _r(band_mu[u]),
                "log_width": _r(band_w[u]),
            },
            "activity": _r(activity[u]),
            "price_sensitivity": _r(sensitivity[u]),
            "signup_date": dates[int(signup_day[u])].isoformat(),
            "language": str(language[u]),
        }
    products = {}
    for p, pid in enumerate(pids):
        c = CATEGORIES[cat_arrays.category[p]]
        products[pid] = {
            "category": c.slug,
            "department": c.department,
            "brand": BRAND_NAMES[cat_arrays.brand[p]],
            "colour": COLOURS[cat_arrays.colour[p]][0],
            "material": cat_arrays.material[p],
            "base_price": float(cat_arrays.base_price[p]),
            "cost": float(cat_arrays.cost[p]),
            "elasticity": _r(elasticity[p]),
            "quality": _r(quality[p]),
            "fashion_mnist_train_index": int(cat_arrays.image_index[p]),
            "launched_on": dates[int(launch_day[p])].isoformat() if launch_day[p] > 0 else None,
            "removed_on": dates[int(remove_day[p])].isoformat() if remove_day[p] < D else None,
            "price_history": [{"date": dates[dd].isoformat(), "price": pr} for dd, pr in price_history[p]],
            "restock_lead_time_days": int(lead_time[p]),
            "units_sold": int(units_sold[p]),
            "stockout_days": int(stockout_days[p]),
        }
    return {
        "generator": "shopai.demo",
        "config": cfg_dict,
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "currency": CURRENCY,
        "counts": counts,
        "views_sampled": int(n_views),
        "model": {
            "view_logit": "log(category_pref) + brand_affinity + price_band_term + quality + category_season "
            "(+3 category, +1.5 colour, +2 brand, +1 material when a search names them; "
            "+0.8 for 21 days after launch)",
            "price_band_term": "max(-8, -(log(base_price/category_reference_price) - log_center)^2 / (2 log_width^2))",
            "match": "sqrt(category_pref / max category_pref) * exp(price_band_term) * (0.6 + 0.2 brand_affinity)",
            "p_click_given_view": f"{CLICK_P[0]} + {CLICK_P[1]} match",
            "price_response": "(price / base_price) ** (elasticity * price_sensitivity); price is what the "
            "shopper sees that day (list price after any promotion discount)",
            "p_cart_given_click": f"min(0.95, ({CART_P[0]} + {CART_P[1]} match) * price_response ** 0.5)",
            "p_purchase_given_cart": f"min(0.95, ({BUY_P[0]} + {BUY_P[1]} match) * price_response ** 0.5)",
            "quantity_probabilities": list(QTY_P),
            "rating": "round(1.8 + 3 match + 0.6 quality + N(0, 0.6) - 1.2 if returned), clipped to 1..5",
            "stock_rule": "on_hand = last inventory.set + inventory.received/adjusted deltas - quantities of "
            "order.created + quantities of order.cancelled (returns are not restocked)",
        },
        "seasonality": {
            "weekly": {WEEKDAYS[i]: _r(WEEKLY_FACTORS[i]) for i in range(7)},
            "hourly_share_utc": [_r(x) for x in HOURLY_SHARE],
            "q4": {"amplitude": Q4_AMPLITUDE, "peak_day_of_year": Q4_PEAK_DOY, "width_days": Q4_WIDTH_DAYS},
            "trend_per_year": TREND_PER_YEAR,
            "category": {
                c.slug: {"log_amplitude": c.season_amplitude, "peak_day_of_year": c.season_peak_doy}
                for c in CATEGORIES
            },
            "expected_sessions": {
                "start_date": start.isoformat(),
                "values": [_r(x, 2) for x in expected_sessions],
            },
        },
        "promotions": [
            {
                "name": w["name"],
                "start": w["start"].isoformat(),
                "end": w["end"].isoformat(),
                "discount": w["discount"],
                "traffic_boost": w["traffic_boost"],
                "product_ids": w["product_ids"],
            }
            for w in promos
        ],
        "categories": {
            c.slug: {
                "fashion_mnist_label": c.label,
                "department": c.department,
                "name_zh": c.name_zh,
                "reference_price": c.ref_price,
            }
            for c in CATEGORIES
        },
        "brands": {
            name: {"tier": tier, "price_multiplier": TIERS[tier], "departments": sorted(depts)}
            for name, tier, depts in BRANDS
        },
        "users": users,
        "products": products,
    }
