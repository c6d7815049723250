"""User-behaviour analytics: RFM scores and segments, the view -> add_to_cart -> purchase funnel,
cohort retention, BG/NBD + Gamma-Gamma customer value, and one customer's behaviour profile.

Pure functions over plain Python records or numpy arrays; no I/O and no clock (every "today" is a
parameter). Conventions:

* Times are UTC. Naive datetimes are taken as UTC; a purchase's day is its UTC calendar day.
* An *order* is one ``order_id`` of one user (rows sharing both are summed); rows without an
  order id are one order each. RFM ``frequency`` counts orders, ``monetary`` is the total spend.
* The BG/NBD model counts *purchase days* (several orders on one day are one purchase occasion, as in
  the published CDNOW analyses); ``frequency`` there is the number of repeat purchase days.
* Raw user ids never leave this module through segments or profiles: they are replaced by
  :func:`pseudonymise` (HMAC-SHA256 with the deployment's secret).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import NamedTuple

import numpy as np
from scipy.optimize import minimize
from scipy.special import digamma, expit, gammaln, hyp2f1

EPOCH = date(1970, 1, 1)
EPOCH_ORDINAL = EPOCH.toordinal()
FUNNEL_STEPS = ("view", "add_to_cart", "purchase")
PERIODS = ("day", "week", "month")
SEGMENT_NAMES = ("champions", "loyal", "potential_loyalists", "new", "at_risk", "hibernating", "lost")
SEGMENT_DESCRIPTIONS = {
    "champions": "bought very recently (R 5) and often (F 4-5)",
    "loyal": "buy often (F 4-5) and fairly recently (R 3-4)",
    "potential_loyalists": "recent (R 4-5) with a few orders (F 2-3), or average on both (R 3, F 3)",
    "new": "recent (R 4-5) first-time or rare buyers (F 1)",
    "at_risk": "used to buy often (F 3-5) but not for a long time (R 1-2)",
    "hibernating": "few orders (F 1-2), last one a while ago (R 2-3)",
    "lost": "few orders (F 1-2), last one long ago (R 1)",
}
# SEGMENT_MAP[r - 1][f - 1]: the standard R x F grid (Putler/Kaggle map merged into seven segments).
SEGMENT_MAP = (
    ("lost", "lost", "at_risk", "at_risk", "at_risk"),  # r = 1
    ("hibernating", "hibernating", "at_risk", "at_risk", "at_risk"),  # r = 2
    ("hibernating", "hibernating", "potential_loyalists", "loyal", "loyal"),  # r = 3
    ("new", "potential_loyalists", "potential_loyalists", "loyal", "loyal"),  # r = 4
    ("new", "potential_loyalists", "potential_loyalists", "champions", "champions"),  # r = 5
)
_SEGMENT_INDEX = np.array([[SEGMENT_NAMES.index(name) for name in row] for row in SEGMENT_MAP])


# ---------------------------------------------------------------- records and conversions


class Purchase(NamedTuple):
    """One order (or one line of an order: rows with the same user and order id are summed)."""

    user_id: str
    occurred_at: datetime
    amount: float
    order_id: str = ""


class Interaction(NamedTuple):
    """One shop interaction; actions other than the funnel's three are ignored by :func:`funnel`."""

    user_id: str
    action: str
    category: str
    occurred_at: datetime


def pseudonymise(user_id: str, secret: bytes) -> str:
    """``"u_"`` + the first 16 hex digits of HMAC-SHA256(secret, user_id): stable for one secret,
    different across secrets, and the raw id cannot be recovered without the secret."""
    if not secret:
        raise ValueError("pseudonymise needs a non-empty secret")
    digest = hmac.new(secret, str(user_id).encode("utf-8"), hashlib.sha256).hexdigest()
    return "u_" + digest[:16]


def utc_day(when: date | datetime) -> int:
    """Days since 1970-01-01 of the UTC calendar day of ``when`` (naive datetimes are UTC)."""
    if isinstance(when, datetime):
        if when.tzinfo is not None:
            when = when.astimezone(UTC)
        return when.toordinal() - EPOCH_ORDINAL
    return when.toordinal() - EPOCH_ORDINAL


def day_to_date(day: int) -> date:
    """Inverse of :func:`utc_day`."""
    return date.fromordinal(int(day) + EPOCH_ORDINAL)


def _as_utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class PurchaseLog:
    """Orders as parallel numpy arrays: the efficient input of the population-level functions.

    ``user_ids[users[i]]`` placed order ``i`` on UTC day ``days[i]`` (days since 1970-01-01) for
    ``amounts[i]``. Build it with :meth:`from_purchases` or :meth:`from_arrays`."""

    user_ids: np.ndarray  # distinct user ids (object array of str); the index is the user code
    users: np.ndarray  # int64 user code per order
    days: np.ndarray  # int64 UTC day per order
    amounts: np.ndarray  # float64 order value

    def __len__(self) -> int:
        return int(self.users.size)

    @classmethod
    def from_purchases(cls, purchases: Iterable[Purchase | Sequence]) -> PurchaseLog:
        """From records ``(user_id, occurred_at, amount[, order_id])``; lines of one order are summed
        (the order's day is its earliest line's)."""
        codes: dict[str, int] = {}
        orders: dict[tuple[int, str], int] = {}
        users: list[int] = []
        days: list[int] = []
        amounts: list[float] = []
        for record in purchases:
            user = str(record[0])
            code = codes.setdefault(user, len(codes))
            day = utc_day(record[1])
            amount = float(record[2]) if len(record) > 2 else 0.0
            order_id = str(record[3]) if len(record) > 3 and record[3] else ""
            if order_id:
                index = orders.get((code, order_id))
                if index is not None:
                    amounts[index] += amount
                    days[index] = min(days[index], day)
                    continue
                orders[(code, order_id)] = len(users)
            users.append(code)
            days.append(day)
            amounts.append(amount)
        user_ids = np.empty(len(codes), dtype=object)
        user_ids[:] = list(codes)
        return cls(user_ids, np.asarray(users, dtype=np.int64), np.asarray(days, dtype=np.int64),
                   np.asarray(amounts, dtype=np.float64))

    @classmethod
    def from_arrays(cls, user_ids: Sequence | np.ndarray, when: Sequence | np.ndarray,
                    amounts: Sequence | np.ndarray) -> PurchaseLog:
        """One order per row. ``when``: ``datetime64`` values (any unit, UTC), dates/datetimes, or
        integer UTC day numbers."""
        raw = np.asarray(user_ids)
        uniques, codes = np.unique(raw.astype(str), return_inverse=True)
        when_arr = np.asarray(when)
        if np.issubdtype(when_arr.dtype, np.integer):
            days = when_arr.astype(np.int64)
        elif np.issubdtype(when_arr.dtype, np.datetime64):
            days = when_arr.astype("datetime64[D]").astype(np.int64)
        else:
            days = np.fromiter((utc_day(w) for w in when_arr), dtype=np.int64, count=when_arr.size)
        ids = np.empty(uniques.size, dtype=object)
        ids[:] = uniques.tolist()
        amount_arr = np.asarray(amounts, dtype=np.float64)
        if not (codes.size == days.size == amount_arr.size):
            raise ValueError("user_ids, when and amounts must have the same length")
        return cls(ids, codes.astype(np.int64), days, amount_arr)

    def until(self, last_day: int) -> PurchaseLog:
        """The orders placed on or before UTC day ``last_day``."""
        keep = self.days <= last_day
        return PurchaseLog(self.user_ids, self.users[keep], self.days[keep], self.amounts[keep])


def _as_log(purchases: PurchaseLog | Iterable[Purchase | Sequence]) -> PurchaseLog:
    return purchases if isinstance(purchases, PurchaseLog) else PurchaseLog.from_purchases(purchases)


@dataclass(frozen=True, slots=True)
class _PerUser:
    """Per-customer aggregates of a log (customers with at least one order only)."""

    codes: np.ndarray
    first_day: np.ndarray
    last_day: np.ndarray
    orders: np.ndarray
    spend: np.ndarray
    purchase_days: np.ndarray  # distinct purchase days
    repeat_spend: np.ndarray  # spend on purchase days after the first one


def _per_user(log: PurchaseLog) -> _PerUser:
    order = np.lexsort((log.days, log.users))
    users, days, amounts = log.users[order], log.days[order], log.amounts[order]
    if users.size == 0:
        empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0)
        return _PerUser(empty_i, empty_i, empty_i, empty_i, empty_f, empty_i, empty_f)
    new_user = np.r_[True, users[1:] != users[:-1]]
    starts = np.flatnonzero(new_user)
    ends = np.r_[starts[1:], users.size]
    spend = np.add.reduceat(amounts, starts)
    new_day = new_user | np.r_[True, days[1:] != days[:-1]]
    day_starts = np.flatnonzero(new_day)
    day_spend = np.add.reduceat(amounts, day_starts)
    day_user = np.cumsum(new_user)[day_starts] - 1
    purchase_days = np.bincount(day_user, minlength=starts.size)
    first_day_spend = day_spend[np.flatnonzero(new_user[day_starts])]
    return _PerUser(users[starts], days[starts], days[ends - 1], ends - starts, spend, purchase_days,
                    spend - first_day_spend)


# ---------------------------------------------------------------- RFM


@dataclass(frozen=True, slots=True)
class QuintileEdges:
    """Population quintile edges (4 per measure) that turn a value into a 1..5 score, 5 = best.

    ``f_score = 1 + #{edges below the value}`` (same for monetary) and ``r_score = 1 + #{recency edges
    above the value}``. Equivalently: score = 1 + floor(5 x share of the population strictly worse),
    so tied values share a score (ties take their lowest rank, pandas ``rank(method="min")``), the
    worst value always scores 1 and a new value is scored exactly as it would be inside the population.
    """

    recency: tuple[float, float, float, float]  # descending days
    frequency: tuple[float, float, float, float]  # ascending orders
    monetary: tuple[float, float, float, float]  # ascending spend

    @classmethod
    def fit(cls, recency_days: Sequence[float] | np.ndarray, frequency: Sequence[float] | np.ndarray,
            monetary: Sequence[float] | np.ndarray) -> QuintileEdges:
        """Edges of a population (at least one customer)."""
        return cls(tuple(-_edges(-np.asarray(recency_days, np.float64))),
                   tuple(_edges(np.asarray(frequency, np.float64))),
                   tuple(_edges(np.asarray(monetary, np.float64))))

    def scores(self, recency_days: Sequence[float] | np.ndarray | float, frequency: Sequence[float] | np.ndarray | float,
               monetary: Sequence[float] | np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(r, f, m) integer scores 1..5 for arrays (or scalars) of values."""
        rec = np.asarray(recency_days, np.float64)
        r = 1 + np.searchsorted(-np.asarray(self.recency), -rec, side="left")
        f = 1 + np.searchsorted(np.asarray(self.frequency), np.asarray(frequency, np.float64), side="left")
        m = 1 + np.searchsorted(np.asarray(self.monetary), np.asarray(monetary, np.float64), side="left")
        return r.astype(np.int64), f.astype(np.int64), m.astype(np.int64)


def _edges(values: np.ndarray) -> np.ndarray:
    """Edge k (k = 1..4): the value at sorted index ceil(k n / 5) - 1, so that
    ``1 + searchsorted(edges, v, "left") == 1 + floor(5 * #{x < v} / n)``."""
    if values.size == 0:
        raise ValueError("quintile edges need at least one customer")
    ordered = np.sort(values)
    n = ordered.size
    return np.array([ordered[-(-k * n // 5) - 1] for k in range(1, 5)], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class CustomerRfm:
    """One customer's recency, frequency and monetary value with 1..5 scores (5 = best)."""

    user_id: str
    recency_days: int  # days from the last order to as_of
    frequency: int  # number of orders
    monetary: float  # total spend
    r_score: int
    f_score: int
    m_score: int
    segment: str  # one of SEGMENT_NAMES


def segment_of(r_score: int, f_score: int) -> str:
    """The segment of an (R, F) score pair (``SEGMENT_MAP``)."""
    return SEGMENT_MAP[int(r_score) - 1][int(f_score) - 1]


def _rfm_arrays(log: PurchaseLog, as_of: date) -> tuple[_PerUser, np.ndarray]:
    agg = _per_user(log.until(utc_day(as_of)))
    return agg, utc_day(as_of) - agg.last_day


def rfm(purchases: PurchaseLog | Iterable[Purchase | Sequence], as_of: date,
        edges: QuintileEdges | None = None) -> list[CustomerRfm]:
    """RFM of every customer with an order on or before ``as_of``, sorted by user id.

    Scores use the population's own quintile edges (``QuintileEdges.fit``) unless ``edges`` is given."""
    log = _as_log(purchases)
    agg, recency = _rfm_arrays(log, as_of)
    if agg.codes.size == 0:
        return []
    if edges is None:
        edges = QuintileEdges.fit(recency, agg.orders, agg.spend)
    r, f, m = edges.scores(recency, agg.orders, agg.spend)
    names = np.asarray(SEGMENT_NAMES, dtype=object)[_SEGMENT_INDEX[r - 1, f - 1]]
    rows = [CustomerRfm(str(log.user_ids[c]), int(rec), int(n), float(s), int(ri), int(fi), int(mi), str(g))
            for c, rec, n, s, ri, fi, mi, g in zip(agg.codes, recency, agg.orders, agg.spend, r, f, m, names,
                                                   strict=True)]
    rows.sort(key=lambda row: row.user_id)
    return rows


@dataclass(frozen=True, slots=True)
class SegmentSummary:
    name: str
    description: str
    customers: int
    customer_share: float  # of all customers, 0..1
    revenue: float
    revenue_share: float  # of all revenue, 0..1
    avg_recency_days: float
    avg_frequency: float
    avg_monetary: float
    sample_user_ids: list[str]  # pseudonymised; the segment's top spenders first


@dataclass(frozen=True, slots=True)
class SegmentReport:
    segments: list[SegmentSummary]  # all seven, largest revenue first (then most customers, then name)
    total_customers: int
    total_revenue: float


def segments(rows: Sequence[CustomerRfm], sample_size: int = 0, secret: bytes | None = None) -> SegmentReport:
    """Aggregate RFM rows by segment; every segment of ``SEGMENT_NAMES`` appears (empty ones with zeros).

    ``sample_size`` pseudonymised ids per segment (needs ``secret``): its top spenders, ties broken by
    the pseudonymous id, so the sample is deterministic and reveals nothing about raw-id order."""
    if sample_size > 0 and not secret:
        raise ValueError("sample ids are pseudonymised: pass the secret")
    total_customers = len(rows)
    total_revenue = float(sum(row.monetary for row in rows))
    groups: dict[str, list[CustomerRfm]] = {name: [] for name in SEGMENT_NAMES}
    for row in rows:
        groups[row.segment].append(row)
    out = []
    for name, members in groups.items():
        n = len(members)
        revenue = float(sum(m.monetary for m in members))
        sample: list[str] = []
        if sample_size > 0 and n:
            keyed = [(-m.monetary, pseudonymise(m.user_id, secret), m) for m in members]  # type: ignore[arg-type]
            sample = [pid for _, pid, _ in sorted(keyed, key=lambda k: (k[0], k[1]))[:sample_size]]
        out.append(SegmentSummary(
            name=name, description=SEGMENT_DESCRIPTIONS[name], customers=n,
            customer_share=n / total_customers if total_customers else 0.0, revenue=revenue,
            revenue_share=revenue / total_revenue if total_revenue > 0 else 0.0,
            avg_recency_days=float(np.mean([m.recency_days for m in members])) if n else 0.0,
            avg_frequency=float(np.mean([m.frequency for m in members])) if n else 0.0,
            avg_monetary=revenue / n if n else 0.0, sample_user_ids=sample))
    out.sort(key=lambda s: (-s.revenue, -s.customers, s.name))
    return SegmentReport(out, total_customers, total_revenue)


# ---------------------------------------------------------------- funnel


@dataclass(frozen=True, slots=True)
class FunnelStep:
    name: str  # "view", "add_to_cart", "purchase"
    users: int  # distinct users who reached this step (strict funnel)
    events: int  # all events of this type in the range
    conversion: float  # users / previous step's users (1 for the first step; 0 if the previous is 0)
    conversion_from_start: float  # users / first step's users (0 if the first is 0)


@dataclass(frozen=True, slots=True)
class CategoryFunnel:
    category: str
    steps: list[FunnelStep]


@dataclass(frozen=True, slots=True)
class FunnelReport:
    steps: list[FunnelStep]  # overall, or the requested category
    categories: list[CategoryFunnel]  # most viewed (distinct viewers, then view events) first
    from_date: date
    to_date: date | None  # the last day considered (None: no purchases and no to_date given)


def funnel(events: Iterable[Interaction | Sequence], from_date: date, to_date: date,
           category: str | None = None) -> FunnelReport:
    """The view -> add_to_cart -> purchase funnel over UTC days ``from_date..to_date`` (inclusive).

    Strict and ordered: a user counts at add_to_cart only with an add_to_cart at or after their first
    view in the range, and at purchase only with a purchase at or after that add_to_cart (events with
    equal timestamps are taken in funnel order). ``events`` counts every event of the step's type. The
    overall funnel ignores categories (view in one, buy in another counts); each category's funnel only
    sees that category's events. Events with an empty category count overall only."""
    first, last = utc_day(from_date), utc_day(to_date)
    lo, hi = first * 86400.0, (last + 1) * 86400.0
    step_of = {name: k for k, name in enumerate(FUNNEL_STEPS)}
    rows: list[tuple[float, int, str, str]] = []
    for ev in events:
        step = step_of.get(ev[1])
        if step is None:
            continue
        cat = ev[2] or ""
        if category is not None and cat != category:
            continue
        when = ev[3]
        ts = (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).timestamp()
        if lo <= ts < hi:
            rows.append((ts, step, str(ev[0]), cat))
    rows.sort()  # by time, then funnel order
    overall = _FunnelCounter()
    per_category: dict[str, _FunnelCounter] = {}
    stage, counts = overall.stage, overall.events
    for _, step, user, cat in rows:
        counts[step] += 1
        if stage.get(user, 0) == step:  # the previous step was reached before (or at the same time)
            stage[user] = step + 1
        if cat:
            counter = per_category.get(cat)
            if counter is None:
                counter = per_category[cat] = _FunnelCounter()
            counter.events[step] += 1
            if counter.stage.get(user, 0) == step:
                counter.stage[user] = step + 1
    cats = sorted(per_category.items(), key=lambda kv: (-kv[1].users()[0], -kv[1].events[0], kv[0]))
    steps = (per_category.get(category) or _FunnelCounter()).steps() if category else overall.steps()
    return FunnelReport(steps, [CategoryFunnel(c, counter.steps()) for c, counter in cats],
                        day_to_date(first), day_to_date(last))


class _FunnelCounter:
    """The furthest strict step each user reached (0..3), plus event counts per step."""

    def __init__(self) -> None:
        self.stage: dict[str, int] = {}
        self.events = [0, 0, 0]

    def users(self) -> list[int]:
        counts = Counter(self.stage.values())
        return [sum(n for s, n in counts.items() if s >= k) for k in (1, 2, 3)]

    def steps(self) -> list[FunnelStep]:
        users = self.users()
        out = []
        for k, name in enumerate(FUNNEL_STEPS):
            prev = users[k - 1] if k else users[0]
            conversion = 1.0 if k == 0 else (users[k] / prev if prev else 0.0)
            out.append(FunnelStep(name, users[k], self.events[k], conversion,
                                  users[k] / users[0] if users[0] else 0.0))
        return out


# ---------------------------------------------------------------- cohorts


@dataclass(frozen=True, slots=True)
class Cohort:
    cohort: date  # first day of the acquisition period
    size: int  # customers whose first purchase fell in this period
    retention: list[float]  # retention[i]: share of `size` purchasing in period i after acquisition
    active: list[int]  # active[i]: those customers


@dataclass(frozen=True, slots=True)
class CohortReport:
    period: str
    cohorts: list[Cohort]  # oldest first
    to_date: date | None  # the last day considered (None: no purchases and no to_date given)


def period_index(days: np.ndarray | int, period: str) -> np.ndarray:
    """Absolute period number of UTC day numbers: the day itself, the ISO week (Monday start), or
    year * 12 + month - 1."""
    days = np.asarray(days, dtype=np.int64)
    if period == "day":
        return days
    if period == "week":
        return (days + 3) // 7  # 1970-01-01 was a Thursday: week 0 starts Monday 1969-12-29
    if period == "month":
        months = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
        return months + 1970 * 12
    raise ValueError(f"period must be one of {PERIODS}, got {period!r}")


def period_start(index: int, period: str) -> date:
    """First day of an absolute period number (inverse of :func:`period_index`)."""
    if period == "day":
        return day_to_date(index)
    if period == "week":
        return day_to_date(index * 7 - 3)
    if period == "month":
        return date(int(index) // 12, int(index) % 12 + 1, 1)
    raise ValueError(f"period must be one of {PERIODS}, got {period!r}")


def cohorts(purchases: PurchaseLog | Iterable[Purchase | Sequence], period: str = "month", max_periods: int = 12,
            from_date: date | None = None, to_date: date | None = None) -> CohortReport:
    """Retention matrix by acquisition period (the period of each customer's first purchase ever).

    Purchases after ``to_date`` (default: the last purchase day) are ignored. A row holds period 0
    (acquisition, retention 1) and up to ``max_periods`` periods after it, but only periods that have
    started by ``to_date`` (the last one may be partly observed). ``from_date`` drops cohorts whose
    period starts before the period containing it. Records may be bare ``(user_id, occurred_at)``."""
    if max_periods < 1:
        raise ValueError("max_periods must be at least 1")
    log = _as_log(purchases)
    if to_date is not None:
        log = log.until(utc_day(to_date))
    if len(log) == 0:
        return CohortReport(period, [], to_date)
    end_day = int(log.days.max()) if to_date is None else utc_day(to_date)
    idx = period_index(log.days, period)
    first = np.full(log.user_ids.size, np.iinfo(np.int64).max)
    np.minimum.at(first, log.users, idx)
    offset = idx - first[log.users]
    keep = offset <= max_periods
    pairs = np.unique(log.users[keep] * (max_periods + 1) + offset[keep])
    pair_users, pair_offset = pairs // (max_periods + 1), pairs % (max_periods + 1)
    end_period = int(period_index(end_day, period))
    start_period = -(2**62) if from_date is None else int(period_index(utc_day(from_date), period))
    cohort_ids, inverse = np.unique(first[pair_users], return_inverse=True)
    counts = np.bincount(inverse * (max_periods + 1) + pair_offset,
                         minlength=cohort_ids.size * (max_periods + 1)).reshape(-1, max_periods + 1)
    out = []
    for c, row in zip(cohort_ids.tolist(), counts, strict=True):
        if c < start_period:
            continue
        length = min(max_periods + 1, end_period - c + 1)
        active = [int(v) for v in row[:length]]
        out.append(Cohort(period_start(c, period), active[0], [a / active[0] for a in active], active))
    return CohortReport(period, out, day_to_date(end_day))


# ---------------------------------------------------------------- BG/NBD and Gamma-Gamma


@dataclass(frozen=True, slots=True)
class RepeatSummary:
    """Per-customer inputs of the BG/NBD and Gamma-Gamma models, in units of ``unit_days`` days.

    frequency: repeat purchase days (distinct purchase days - 1); recency: first to last purchase day;
    age: first purchase day to as_of; monetary: mean spend per repeat purchase day (0 without repeats)."""

    user_ids: np.ndarray
    frequency: np.ndarray
    recency: np.ndarray
    age: np.ndarray
    monetary: np.ndarray
    unit_days: float = 1.0

    def __len__(self) -> int:
        return int(self.frequency.size)


def repeat_summary(purchases: PurchaseLog | Iterable[Purchase | Sequence], as_of: date,
                   unit_days: float = 1.0, since: date | None = None) -> RepeatSummary:
    """The BG/NBD summary of customers with a purchase on or before ``as_of``; ``since`` keeps only
    customers whose first purchase is on or after it (e.g. the CDNOW cohort of Q1 1997)."""
    log = _as_log(purchases)
    end = utc_day(as_of)
    agg = _per_user(log.until(end))
    keep = np.ones(agg.codes.size, bool) if since is None else agg.first_day >= utc_day(since)
    x = (agg.purchase_days - 1)[keep]
    monetary = np.divide(agg.repeat_spend[keep], x, out=np.zeros(x.size), where=x > 0)
    return RepeatSummary(log.user_ids[agg.codes[keep]], x.astype(np.float64),
                         (agg.last_day - agg.first_day)[keep] / unit_days,
                         (end - agg.first_day[keep]) / unit_days, monetary, unit_days)


@dataclass(frozen=True, slots=True)
class BgNbdParams:
    """Purchase rate lambda ~ Gamma(r, alpha) (alpha in model time units); dropout after each repeat
    purchase with probability p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float = 0.0  # mean per customer at the optimum


@dataclass(frozen=True, slots=True)
class GammaGammaParams:
    """Spend per transaction ~ Gamma(p, nu), nu ~ Gamma(q, gamma); population mean p * gamma / (q - 1)."""

    p: float
    q: float
    gamma: float
    log_likelihood: float = 0.0

    @property
    def mean(self) -> float:
        return self.p * self.gamma / (self.q - 1.0)


def _bgnbd_negll(theta: np.ndarray, x: np.ndarray, tx: np.ndarray, big_t: np.ndarray,
                 penalizer: float) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood of BG/NBD (Fader, Hardie & Lee 2005, eq. 6) and its gradient in
    log-parameters."""
    r, alpha, a, b = np.exp(theta)
    repeat = x > 0
    xm1 = np.where(repeat, x - 1.0, 0.0)
    log_at, log_atx = np.log(alpha + big_t), np.log(alpha + tx)
    a3 = -(r + x) * log_at
    a4 = np.where(repeat, np.log(a) - np.log(b + xm1) - (r + x) * log_atx, -np.inf)
    tail = np.logaddexp(a3, a4)
    ll = (gammaln(r + x) - gammaln(r) + r * np.log(alpha) + gammaln(a + b) + gammaln(b + x) - gammaln(b)
          - gammaln(a + b + x) + tail)
    w4 = np.exp(a4 - tail)
    w3 = 1.0 - w4
    d_r = digamma(r + x) - digamma(r) + np.log(alpha) - w3 * log_at - w4 * log_atx
    d_alpha = r / alpha - (r + x) * (w3 / (alpha + big_t) + w4 / (alpha + tx))
    psi_ab, psi_abx = digamma(a + b), digamma(a + b + x)
    d_a = psi_ab - psi_abx + w4 / a
    d_b = psi_ab + digamma(b + x) - digamma(b) - psi_abx - np.where(repeat, w4 / (b + xm1), 0.0)
    params = np.array([r, alpha, a, b])
    grad = np.array([d_r.mean(), d_alpha.mean(), d_a.mean(), d_b.mean()]) * params
    value = -float(ll.mean()) + penalizer * float(np.sum(params**2))
    return value, -grad + penalizer * 2.0 * params**2


def _gg_negll(theta: np.ndarray, x: np.ndarray, m: np.ndarray, penalizer: float) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood of the Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and
    CLV", eq. 3) with parameters (log p, log(q - 1), log gamma), and its gradient."""
    p, q, g = math.exp(theta[0]), 1.0 + math.exp(theta[1]), math.exp(theta[2])
    px = p * x
    log_gmx = np.log(g + m * x)
    ll = (gammaln(px + q) - gammaln(px) - gammaln(q) + q * math.log(g) + (px - 1) * np.log(m) + px * np.log(x)
          - (px + q) * log_gmx)
    psi = digamma(px + q)
    d_p = x * (psi - digamma(px) + np.log(m) + np.log(x) - log_gmx)
    d_q = psi - digamma(q) + math.log(g) - log_gmx
    d_g = q / g - (px + q) / (g + m * x)
    grad = np.array([d_p.mean() * p, d_q.mean() * (q - 1.0), d_g.mean() * g])
    params = np.array([p, q, g])
    value = -float(ll.mean()) + penalizer * float(np.sum(params**2))
    return value, -grad + penalizer * 2.0 * params**2 * np.array([1.0, (q - 1.0) / q, 1.0])


def _minimise(fun, starts: list[np.ndarray], args: tuple, bounds: list[tuple[float, float]]) -> np.ndarray:
    best = None
    for start in starts:
        res = minimize(fun, start, args=args, jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": 500, "ftol": 1e-12, "gtol": 1e-8})
        if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
            best = res
    if best is None:
        raise ValueError("the likelihood could not be evaluated at any starting point")
    return best.x


@dataclass
class CustomerValueModel:
    """BG/NBD repeat purchases x Gamma-Gamma average order value = expected customer value.

    Times are in units of ``unit_days`` days (the :class:`RepeatSummary`'s); the prediction methods
    take horizons in days. ``annual_discount_rate`` > 0 discounts the value month by month
    (``value = sum_k dE[purchases in month k] x AOV / (1 + rate) ** (t_k / 365)``); 0 = undiscounted."""

    unit_days: float = 1.0
    annual_discount_rate: float = 0.0
    penalizer: float = 0.0
    bgnbd: BgNbdParams | None = None
    gamma_gamma: GammaGammaParams | None = None
    fallback_aov: float = 0.0  # mean spend per purchase day, used without a Gamma-Gamma fit
    customers: int = 0

    def fit(self, summary: RepeatSummary) -> CustomerValueModel:
        """Maximum-likelihood fit of both models (L-BFGS-B on log-parameters with analytic gradients,
        bounded, several starts; times scaled so the largest age is 10). Gamma-Gamma is fitted on
        customers with repeat purchases and positive spend and skipped below 10 of them."""
        x = np.asarray(summary.frequency, np.float64)
        if x.size == 0:
            raise ValueError("no customers to fit")
        self.unit_days = summary.unit_days
        tx, big_t = np.asarray(summary.recency, np.float64), np.asarray(summary.age, np.float64)
        scale = max(float(big_t.max()), 1e-9) / 10.0
        bounds = [(-12.0, 12.0)] * 4
        starts = [np.zeros(4), np.array([math.log(0.5), math.log(2.0), math.log(0.5), math.log(2.0)])]
        theta = _minimise(_bgnbd_negll, starts, (x, tx / scale, big_t / scale, self.penalizer), bounds)
        r, alpha, a, b = np.exp(theta)
        ll = -_bgnbd_negll(theta, x, tx / scale, big_t / scale, 0.0)[0] - float(np.mean(x)) * math.log(scale)
        self.bgnbd = BgNbdParams(float(r), float(alpha * scale), float(a), float(b), ll)
        m = np.asarray(summary.monetary, np.float64)
        repeat = (x > 0) & (m > 0)
        spent = m[repeat] * x[repeat]
        self.fallback_aov = float(spent.sum() / x[repeat].sum()) if repeat.any() else 0.0
        self.customers = int(x.size)
        self.gamma_gamma = None
        if repeat.sum() >= 10:
            mscale = float(m[repeat].mean())
            gg_starts = [np.zeros(3), np.array([math.log(5.0), math.log(3.0), math.log(10.0)])]
            gtheta = _minimise(_gg_negll, gg_starts, (x[repeat], m[repeat] / mscale, self.penalizer),
                               [(-12.0, 12.0)] * 3)
            gll = -_gg_negll(gtheta, x[repeat], m[repeat] / mscale, 0.0)[0] - math.log(mscale)
            self.gamma_gamma = GammaGammaParams(math.exp(gtheta[0]), 1.0 + math.exp(gtheta[1]),
                                                math.exp(gtheta[2]) * mscale, gll)
        return self

    def _params(self) -> BgNbdParams:
        if self.bgnbd is None:
            raise ValueError("CustomerValueModel is not fitted")
        return self.bgnbd

    def p_alive(self, frequency, recency, age) -> np.ndarray:
        """P(still active at ``age``) = 1 / (1 + [x > 0] a / (b + x - 1) ((alpha + T) / (alpha + t_x))^(r + x))."""
        pr = self._params()
        x, tx, big_t = (np.asarray(v, np.float64) for v in (frequency, recency, age))
        log_odds = (np.log(pr.a) - np.log(pr.b + np.maximum(x, 1.0) - 1.0)
                    + (pr.r + x) * (np.log(pr.alpha + big_t) - np.log(pr.alpha + tx)))
        return np.where(x > 0, expit(-log_odds), 1.0)

    def expected_purchases(self, days: float, frequency, recency, age) -> np.ndarray:
        """E[purchases in (T, T + t]] (FHL 2005 eq. 10), with the Euler transform of the 2F1 term:
        (a+b+x-1)/(a-1) [1 - (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)] P(alive), z = t/(alpha+T+t);
        well conditioned for heavy buyers (the textbook form multiplies a huge 2F1 by a tiny power)."""
        pr = self._params()
        t = days / self.unit_days
        x, tx, big_t = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (frequency, recency, age)))
        a, b, r, alpha = (pr.a if abs(pr.a - 1.0) > 1e-6 else 1.0 + 1e-6), pr.b, pr.r, pr.alpha
        z = t / (alpha + big_t + t)
        c = a + b + x - 1.0
        alive = self.p_alive(x, tx, big_t)
        with np.errstate(all="ignore"):
            bracket = 1.0 - np.exp((a - 1.0) * np.log1p(-z)) * hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
            value = np.asarray(c / (a - 1.0) * bracket * alive, dtype=np.float64)
            bad = ~np.isfinite(value)
            if bad.any():  # very large a, b (almost no heterogeneity in dropout): the textbook form
                xb, zb = x[bad], z[bad]
                power = np.exp((r + xb) * np.log1p(-zb))
                value[bad] = c[bad] / (a - 1.0) * (1.0 - power * hyp2f1(r + xb, b + xb, c[bad], zb)) * alive[bad]
                bad = ~np.isfinite(value)
            if bad.any():  # the limit of a degenerate Beta at p = a / (a + b)
                p = a / (a + b)
                decay = np.exp((r + x[bad]) * (np.log(alpha + big_t[bad]) - np.log(alpha + big_t[bad] + p * t)))
                value[bad] = alive[bad] * (1.0 - decay) / p
        return np.maximum(np.nan_to_num(value, nan=0.0, posinf=0.0), 0.0)

    def p_purchase(self, days: float, frequency, recency, age) -> np.ndarray:
        """P(at least one purchase in (T, T + t]) = P(alive) [1 - ((alpha + T) / (alpha + T + t))^(r + x)].

        Derivation: dropout happens only right after a purchase, so a customer alive at T makes no
        purchase in the window with probability exp(-lambda t); integrating over the posterior of
        (lambda, p, alive) gives P(alive) ((alpha + T) / (alpha + T + t))^(r + x) for "alive and no
        purchase", and dead customers never purchase."""
        pr = self._params()
        t = days / self.unit_days
        x, big_t = np.asarray(frequency, np.float64), np.asarray(age, np.float64)
        none = np.exp((pr.r + x) * (np.log(pr.alpha + big_t) - np.log(pr.alpha + big_t + t)))
        return self.p_alive(frequency, recency, age) * (1.0 - none)

    def expected_aov(self, frequency, monetary) -> np.ndarray:
        """Gamma-Gamma posterior mean spend per purchase day: (gamma + m x) p / (p x + q - 1) with
        repeats, the population mean p gamma / (q - 1) without (``fallback_aov`` when unfitted)."""
        x, m = np.asarray(frequency, np.float64), np.asarray(monetary, np.float64)
        gg = self.gamma_gamma
        if gg is None:
            return np.where((x > 0) & (m > 0), m, self.fallback_aov) * np.ones_like(x)
        repeat = (x > 0) & (m > 0)
        cond = (gg.gamma + m * x) * gg.p / (gg.p * x + gg.q - 1.0)
        return np.where(repeat, cond, gg.mean)

    def customer_value(self, days: float, frequency, recency, age, monetary) -> np.ndarray:
        """Expected spend in the next ``days`` days: E[purchases] x E[AOV], discounted when configured."""
        aov = self.expected_aov(frequency, monetary)
        if self.annual_discount_rate <= 0:
            return self.expected_purchases(days, frequency, recency, age) * aov
        steps = max(1, math.ceil(days / (365.25 / 12)))
        edges = np.linspace(0.0, days, steps + 1)
        total = np.zeros(np.broadcast(np.asarray(frequency), np.asarray(age)).shape)
        prev = np.zeros_like(total)
        for end in edges[1:]:
            cum = self.expected_purchases(float(end), frequency, recency, age)
            total += (cum - prev) / (1.0 + self.annual_discount_rate) ** (end / 365.0)
            prev = cum
        return total * aov

    def predict(self, summary: RepeatSummary, horizon_days: float = 365.0,
                window_days: float = 90.0) -> ValuePrediction:
        """Per-customer predictions for a summary in this model's time unit."""
        if abs(summary.unit_days - self.unit_days) > 1e-12:
            raise ValueError(f"summary is in {summary.unit_days}-day units, the model in {self.unit_days}")
        args = (summary.frequency, summary.recency, summary.age)
        return ValuePrediction(
            user_ids=summary.user_ids, p_alive=self.p_alive(*args),
            p_purchase=self.p_purchase(window_days, *args),
            expected_purchases=self.expected_purchases(horizon_days, *args),
            expected_aov=self.expected_aov(summary.frequency, summary.monetary),
            customer_value=self.customer_value(horizon_days, *args, summary.monetary))


@dataclass(frozen=True, slots=True)
class ValuePrediction:
    user_ids: np.ndarray
    p_alive: np.ndarray
    p_purchase: np.ndarray  # P(at least one purchase in the window)
    expected_purchases: np.ndarray  # over the horizon
    expected_aov: np.ndarray
    customer_value: np.ndarray  # over the horizon


# ---------------------------------------------------------------- population state and one profile


@dataclass
class BehaviourModel:
    """Population-level state fitted from all purchases (picklable): RFM quintile edges and the fitted
    customer value model, as of the last day of data."""

    as_of: date
    edges: QuintileEdges
    value_model: CustomerValueModel
    customers: int = 0
    segment_counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def fit(cls, purchases: PurchaseLog | Iterable[Purchase | Sequence], as_of: date, *,
            annual_discount_rate: float = 0.0, penalizer: float = 0.0) -> BehaviourModel:
        """Fit from every order up to ``as_of`` (days as the model's time unit)."""
        log = _as_log(purchases)
        agg, recency = _rfm_arrays(log, as_of)
        if agg.codes.size == 0:
            raise ValueError("no purchases on or before as_of")
        edges = QuintileEdges.fit(recency, agg.orders, agg.spend)
        r, f, _ = edges.scores(recency, agg.orders, agg.spend)
        names = np.asarray(SEGMENT_NAMES)[_SEGMENT_INDEX[r - 1, f - 1]]
        counts = {name: int(np.sum(names == name)) for name in SEGMENT_NAMES}
        value = CustomerValueModel(annual_discount_rate=annual_discount_rate, penalizer=penalizer)
        value.fit(repeat_summary(log, as_of))
        return cls(as_of, edges, value, int(agg.codes.size), counts)


@dataclass(frozen=True, slots=True)
class UserProfile:
    pseudonymous_id: str
    rfm: CustomerRfm | None  # user_id holds the pseudonymous id; None without orders
    segment: str  # SEGMENT_NAMES, "" without orders
    repeat_purchase_probability: float  # P(a purchase in the next 90 days)
    predicted_customer_value: float  # expected spend in the next 365 days
    orders: int
    total_spend: float
    average_order_value: float
    first_purchase_at: datetime | None
    last_purchase_at: datetime | None
    avg_days_between_purchases: float  # 0 with fewer than two orders
    event_counts: dict[str, int]
    cart_to_purchase_rate: float  # purchase events / add_to_cart events, 0..1
    favourite_categories: list[str]


def user_profile(user_id: str, orders: Iterable[Purchase | Sequence], model: BehaviourModel, secret: bytes, *,
                 as_of: date, event_counts: Mapping[str, int] | None = None,
                 purchased_categories: Mapping[str, float] | None = None,
                 viewed_categories: Mapping[str, float] | None = None,
                 window_days: float = 90.0, horizon_days: float = 365.0) -> UserProfile | None:
    """One customer's behaviour profile from their own data plus the population's fitted state.

    ``orders``: the user's orders ``(user_id, occurred_at, amount, order_id)`` (the user id field is
    ignored; lines of one order are summed; orders after ``as_of`` are ignored). ``event_counts``:
    interactions per action; ``purchased_categories`` / ``viewed_categories``: counts per category.
    Scores use ``model.edges`` (the population at ``model.as_of``). Returns None when the user has
    neither orders nor events (never seen)."""
    pid = pseudonymise(user_id, secret)
    counts = {str(k): int(v) for k, v in (event_counts or {}).items() if int(v) > 0}
    end = utc_day(as_of)
    merged: dict[str, list] = {}
    for i, rec in enumerate(orders):
        when = _as_utc(rec[1])
        if when.toordinal() - EPOCH_ORDINAL > end:
            continue
        key = str(rec[3]) if len(rec) > 3 and rec[3] else f"#{i}"
        amount = float(rec[2]) if len(rec) > 2 else 0.0
        if key in merged:
            merged[key][1] += amount
            merged[key][0] = min(merged[key][0], when)
        else:
            merged[key] = [when, amount]
    if not merged and not counts:
        return None
    purchased = {str(k): float(v) for k, v in (purchased_categories or {}).items() if v > 0}
    viewed = {str(k): float(v) for k, v in (viewed_categories or {}).items() if v > 0}
    favourites = sorted(set(purchased) | set(viewed), key=lambda c: (-purchased.get(c, 0.0), -viewed.get(c, 0.0), c))
    carts = counts.get("add_to_cart", 0)
    cart_rate = min(1.0, counts.get("purchase", 0) / carts) if carts else 0.0
    if not merged:
        return UserProfile(pid, None, "", 0.0, 0.0, 0, 0.0, 0.0, None, None, 0.0, counts, cart_rate, favourites[:5])
    times = sorted(w for w, _ in merged.values())
    n = len(merged)
    spend = float(sum(a for _, a in merged.values()))
    recency = end - utc_day(times[-1])
    r, f, m = (int(v) for v in model.edges.scores(recency, n, spend))
    segment = segment_of(r, f)
    vm = model.value_model
    summary = repeat_summary(PurchaseLog.from_purchases((pid, w, a) for w, a in merged.values()), as_of,
                             vm.unit_days)
    args = (summary.frequency, summary.recency, summary.age)
    p_buy = float(vm.p_purchase(window_days, *args)[0])
    value = float(vm.customer_value(horizon_days, *args, summary.monetary)[0])
    gap = (times[-1] - times[0]).total_seconds() / 86400.0 / (n - 1) if n > 1 else 0.0
    return UserProfile(
        pseudonymous_id=pid, rfm=CustomerRfm(pid, int(recency), n, spend, r, f, m, segment), segment=segment,
        repeat_purchase_probability=min(1.0, max(0.0, p_buy)), predicted_customer_value=max(0.0, value),
        orders=n, total_spend=spend, average_order_value=spend / n, first_purchase_at=times[0],
        last_purchase_at=times[-1], avg_days_between_purchases=gap, event_counts=counts,
        cart_to_purchase_rate=cart_rate, favourite_categories=favourites[:5])

