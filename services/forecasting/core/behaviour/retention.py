"""Cohort retention: customers grouped by the period (day, week, month) of their first purchase."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from services.forecasting.core.behaviour.records import Purchase, PurchaseLog, _as_log, day_to_date, utc_day

PERIODS = ("day", "week", "month")


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

