"""Inventory planning for one product: safety stock, reorder point, order quantity and stock-out risk.

The model (a continuous-review (s, Q) policy):

- **Lead-time demand** ``D_L`` over the supplier lead time ``L`` days. Its mean is the sum of the daily
  forecast over the lead time when ``forecast_daily`` is given (days beyond the forecast use
  ``mean_daily_demand``), else ``mean_daily_demand * L``. A fractional lead time counts the last day
  by its fraction: ``L = 2.5`` is days 1 and 2 in full and half of day 3. Days are independent, so
  the variance is the sum of the daily variances with the same weights: ``sigma_L = sqrt(sum w_i
  sigma_i^2)`` (``sigma * sqrt(L)`` for a flat forecast).
- **Safety stock** ``z(service_level) * sigma_L`` and **reorder point** ``E[D_L] + safety stock``;
  ``reorder_now`` when ``on_hand <= reorder_point``. Both rise with the lead time and the service level.
- **Order quantity**: the economic order quantity ``EOQ = sqrt(2 D S / H)`` with ``D`` the annual demand
  (365 x mean daily demand), ``S`` the ordering cost and ``H = holding_cost_rate x unit_cost`` the
  yearly holding cost of a unit, rounded up. *Choice:* the quantity is raised to cover the expected
  lead-time demand when the EOQ is smaller, so that one order at a time suffices: ``reorder_now``
  compares the stock on hand (not on hand + on order) with the reorder point, and a smaller lot would
  leave the stock below the reorder point when it arrives. ``eoq`` keeps the unrounded EOQ. No demand
  means no order (0).
- **Stock-out risk** ``P(D_L > on_hand)``: the probability that the stock on hand runs out before an
  order placed now would arrive. *Choice:* shop demand is a count and, for most products of the demo
  shop, a sparse one (a few units a month), where the normal curve is poor (it puts mass on negative
  demand and misses the skew). So the risk uses a **negative binomial** with the lead-time mean and
  variance when the variance exceeds the mean (over-dispersed counts, the usual case), a **Poisson**
  when they are equal, and a **normal with continuity correction** only when the variance is below the
  mean (under-dispersed; no count law above fits). The safety stock keeps the normal formula the
  protocol documents; for sparse skewed demand the risk at the reorder point can therefore differ
  from ``1 - service_level``; ``risk_distribution`` says which law was used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats as sps

if TYPE_CHECKING:
    from services.forecasting.core.forecast import Prediction

DAYS_PER_YEAR = 365.0
DAYS_OF_COVER_CAP = 9999.0  # days of cover reported when demand is (almost) zero
_ZERO_DEMAND = 1e-9  # units per day below which demand counts as zero


@dataclass(frozen=True)
class InventoryPlan:
    """An inventory plan and the parameters it was computed with."""

    safety_stock: float  # units: z(service_level) * sigma_L
    reorder_point: float  # units: forecast_demand_lead_time + safety_stock
    order_quantity: int  # units to order: ceil(max(EOQ, expected lead-time demand)); 0 without demand
    stockout_risk: float  # P(lead-time demand > on_hand), 0..1
    days_of_cover: float  # on_hand / mean_daily_demand; DAYS_OF_COVER_CAP when demand is ~0
    forecast_demand_lead_time: float  # expected units sold during the lead time
    lead_time_demand_std: float  # sigma_L, units
    eoq: float  # economic order quantity before rounding (units)
    reorder_now: bool  # on_hand <= reorder_point
    risk_distribution: str  # "negative_binomial", "poisson", "normal" or "none" (no demand)
    mean_daily_demand: float  # parameters used
    daily_demand_std: float
    on_hand: int
    lead_time_days: float
    service_level: float
    ordering_cost: float
    holding_cost_rate: float
    unit_cost: float


def _check_number(name: str, value: float, *, low: float, low_inclusive: bool = True) -> float:
    """A finite float above ``low``; ValueError naming the field otherwise."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if v < low or (v == low and not low_inclusive):
        bound = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be {bound} {low:g}, got {v:g}")
    return v


def _lead_time_weights(lead_time_days: float) -> list[float]:
    """Weight of each day in the lead time: 1 for full days, the fraction for the last partial day."""
    full = math.floor(lead_time_days)
    frac = lead_time_days - full
    return [1.0] * full + ([frac] if frac > 1e-12 else [])


def _daily_values(name: str, values: Sequence[float] | None, n: int, default: float) -> list[float]:
    """``n`` daily values: the given ones (validated >= 0), then ``default`` beyond their end."""
    if values is None:
        return [default] * n
    out = [_check_number(f"{name}[{i}]", v, low=0.0) for i, v in enumerate(values)]
    return (out + [default] * max(0, n - len(out)))[:n]


def _stockout_risk(mean: float, var: float, on_hand: int) -> tuple[float, str]:
    """P(D > on_hand) for lead-time demand D with this mean and variance, and the law used."""
    if mean <= _ZERO_DEMAND and var <= _ZERO_DEMAND:
        return (0.0 if on_hand >= 0 else 1.0), "none"
    if var > mean * (1.0 + 1e-9) and mean > 0:
        p = mean / var
        n = mean * mean / (var - mean)
        return float(sps.nbinom.sf(on_hand, n, p)), "negative_binomial"
    if var >= mean * (1.0 - 1e-9) and mean > 0:
        return float(sps.poisson.sf(on_hand, mean)), "poisson"
    if var <= 0:
        return (1.0 if mean > on_hand else 0.0), "normal"
    return float(sps.norm.sf((on_hand + 0.5 - mean) / math.sqrt(var))), "normal"


def _plan_inputs(
    mean_daily_demand: float,
    daily_demand_std: float,
    on_hand: int,
    lead_time_days: float,
    service_level: float,
    ordering_cost: float,
    holding_cost_rate: float,
    unit_cost: float,
) -> tuple[float, float, int, float, float, float, float, float]:
    """:func:`plan_inventory`'s numbers checked and converted; ValueError naming the bad one."""
    mu = _check_number("mean_daily_demand", mean_daily_demand, low=0.0)
    sigma = _check_number("daily_demand_std", daily_demand_std, low=0.0)
    if isinstance(on_hand, bool) or int(on_hand) != on_hand:
        raise ValueError(f"on_hand must be a whole number of units, got {on_hand!r}")
    stock = int(on_hand)
    lead = _check_number("lead_time_days", lead_time_days, low=0.0)
    sl = _check_number("service_level", service_level, low=0.0, low_inclusive=False)
    if sl >= 1.0:
        raise ValueError(f"service_level must be in (0, 1), got {sl:g}")
    s_cost = _check_number("ordering_cost", ordering_cost, low=0.0)
    h_rate = _check_number("holding_cost_rate", holding_cost_rate, low=0.0, low_inclusive=False)
    c_unit = _check_number("unit_cost", unit_cost, low=0.0, low_inclusive=False)
    return mu, sigma, stock, lead, sl, s_cost, h_rate, c_unit


def plan_inventory(
    mean_daily_demand: float,
    daily_demand_std: float,
    on_hand: int,
    lead_time_days: float = 7.0,
    service_level: float = 0.95,
    ordering_cost: float = 50.0,
    holding_cost_rate: float = 0.25,
    *,
    unit_cost: float,
    forecast_daily: Sequence[float] | None = None,
    forecast_daily_std: Sequence[float] | None = None,
) -> InventoryPlan:
    """Plan stock for one product (see the module docstring for the model and its choices).

    ``forecast_daily`` / ``forecast_daily_std``: optional per-day forecast (units) and its standard
    deviation from tomorrow on; missing days fall back to ``mean_daily_demand`` / ``daily_demand_std``.
    ValueError naming the field for a service level outside (0, 1), a negative lead time, demand or cost,
    a holding rate or unit cost that is not > 0, or a non-integer stock.
    """
    mu, sigma, stock, lead, sl, s_cost, h_rate, c_unit = _plan_inputs(
        mean_daily_demand, daily_demand_std, on_hand, lead_time_days, service_level, ordering_cost,
        holding_cost_rate, unit_cost,
    )
    if (
        forecast_daily_std is not None
        and forecast_daily is not None
        and len(forecast_daily_std) != len(forecast_daily)
    ):
        raise ValueError(
            "forecast_daily_std must have the same length as forecast_daily, got "
            f"{len(forecast_daily_std)} and {len(forecast_daily)}"
        )

    weights = _lead_time_weights(lead)
    means = _daily_values("forecast_daily", forecast_daily, len(weights), mu)
    stds = _daily_values("forecast_daily_std", forecast_daily_std, len(weights), sigma)
    lt_mean = sum(w * m for w, m in zip(weights, means))
    lt_var = sum(w * s * s for w, s in zip(weights, stds))
    sigma_l = math.sqrt(lt_var)

    z = float(sps.norm.ppf(sl))
    safety = z * sigma_l
    reorder_point = lt_mean + safety

    annual = DAYS_PER_YEAR * mu
    holding = h_rate * c_unit
    eoq = math.sqrt(2.0 * annual * s_cost / holding)
    if mu <= _ZERO_DEMAND and lt_mean <= _ZERO_DEMAND:
        quantity = 0
    else:
        # 1e-9 guards against float noise such as ceil(100.00000000000001) = 101
        quantity = max(1, math.ceil(max(eoq, lt_mean) - 1e-9))

    risk, law = _stockout_risk(lt_mean, lt_var, stock)
    if mu <= _ZERO_DEMAND:
        cover = DAYS_OF_COVER_CAP if stock > 0 else 0.0
    else:
        cover = min(DAYS_OF_COVER_CAP, max(0.0, stock / mu))

    return InventoryPlan(
        safety_stock=safety,
        reorder_point=reorder_point,
        order_quantity=quantity,
        stockout_risk=min(1.0, max(0.0, risk)),
        days_of_cover=cover,
        forecast_demand_lead_time=lt_mean,
        lead_time_demand_std=sigma_l,
        eoq=eoq,
        reorder_now=stock <= reorder_point,
        risk_distribution=law,
        mean_daily_demand=mu,
        daily_demand_std=sigma,
        on_hand=stock,
        lead_time_days=lead,
        service_level=sl,
        ordering_cost=s_cost,
        holding_cost_rate=h_rate,
        unit_cost=c_unit,
    )


def daily_std(prediction: Prediction) -> np.ndarray:
    """Per-day standard deviation implied by a central prediction interval (normal approximation)."""
    z = sps.norm.ppf(0.5 + prediction.level / 2)
    return np.maximum((prediction.upper - prediction.lower) / (2 * z), 0.0)


def forecast_demand(prediction: Prediction | None, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """The daily demand forecast and its per-day standard deviation a plan starts from: zeros over
    ``horizon`` days for a product never sold (no demand to plan for)."""
    if prediction is None:
        return np.zeros(horizon), np.zeros(horizon)
    return prediction.yhat, daily_std(prediction)
