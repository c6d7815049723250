"""The trained state the forecasting service serves (one pickled, versioned artifact) and the
conversions between the store's daily aggregates and the forecasting core's series."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

from services.forecasting.core.forecast import Series

# A day counts as a promotion day when the price paid is this far below the product's list price.
PROMO_DISCOUNT = 0.03


@dataclass
class ForecastingModel:
    version: str
    as_of: date                                   # the last day of history the model was fitted on
    chosen: dict[str, str] = field(default_factory=dict)      # "p|<product>" / "c|<category>" -> model
    backtests: dict[str, Any] = field(default_factory=dict)   # same keys -> BacktestScore
    elasticities: dict[str, Any] = field(default_factory=dict)  # "p|<product>" -> its own Elasticity
    category_priors: dict[str, tuple[float, float]] = field(default_factory=dict)  # category -> (mean, spread)
    behaviour: Any = None                         # core.behaviour.BehaviourModel, or None without orders
    trained_at: float = 0.0


def target_key(kind: str, target: str) -> str:
    return f"{kind}|{target}"


def promo_flags(price: np.ndarray, list_price: float | None) -> np.ndarray | None:
    """1 on days the average price paid was below the list price by more than PROMO_DISCOUNT."""
    if not list_price or list_price <= 0:
        return None
    with np.errstate(invalid="ignore"):
        flags = np.where(np.isnan(price), 0.0, (price < list_price * (1 - PROMO_DISCOUNT)).astype(float))
    return flags if flags.any() else None


def to_series(start: date, units: np.ndarray, price: np.ndarray | None = None,
              list_price: float | None = None) -> Series:
    """Daily units (and price paid, NaN on days without a sale) -> the core's Series."""
    has_price = price is not None and np.isfinite(price).any()
    return Series(start=start, y=np.asarray(units, dtype=float), freq="D",
                  price=np.asarray(price, dtype=float) if has_price else None,
                  promo=promo_flags(price, list_price) if has_price else None)
