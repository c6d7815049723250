"""The records every analysis takes: purchases and interactions, the array form of a purchase log
(``PurchaseLog``) with its per-customer aggregates, UTC day numbers and pseudonymous ids."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import NamedTuple

import numpy as np

from services.common.pseudonyms import pseudonymise  # noqa: F401 (re-exported: behaviour.pseudonymise)

EPOCH = date(1970, 1, 1)
EPOCH_ORDINAL = EPOCH.toordinal()


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

