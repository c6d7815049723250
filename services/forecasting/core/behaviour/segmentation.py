"""RFM (recency, frequency, monetary value) scores from population quintiles, and the seven RFM
segments with their summaries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from services.forecasting.core.behaviour.records import (
    Purchase,
    PurchaseLog,
    _as_log,
    _per_user,
    _PerUser,
    pseudonymise,
    utc_day,
)

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

