"""Top-down forecasts for the sparse tail (issue #22 item 6): a product's share of its category's recent
sales times the category's forecast.

A product that sells on a few days a year gives its own model little to learn: Croston or a mean
forecast a flat rate and cannot see a promotion, a holiday peak or the season, which its category, with
sales every day, shows well (the category's chosen model is often Prophet). Top-down lends the category's
shape to the product: ``share × category forecast``, with the share taken over the last ``SHARE_DAYS``
days (``LONG_SHARE_DAYS`` when the product sold nothing in them).

It is chosen per product the way every model is: on the same rolling-origin folds as the product's own
candidates, each fold's category forecast fitted only on the category's history before the fold, the
share only on the product's. The trainer gives top-down to an intermittent product whose top-down error
beats its chosen model's by ``MARGIN`` (the parsimony of :func:`forecast.choose_model`); the forecast
records it as ``top_down``, and the service then forecasts the product from its category's kept forecast
(forecaster.py), which costs no fit at all.

Intervals: the share of the category's bounds, widened to the Poisson quantiles of the daily rate, since
one product's daily sales are far noisier than its share of a category's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import poisson

from services.forecasting.core.forecast import (
    BacktestScore,
    Prediction,
    Series,
    fold_forecasts,
    fold_origins,
    is_intermittent,
    mase,
    rmsse,
    selection_metric,
    smape,
)

TOP_DOWN = "top_down"
SHARE_DAYS = 91
LONG_SHARE_DAYS = 365
MARGIN = 0.1


def share(product: np.ndarray, category: np.ndarray, days: int = SHARE_DAYS) -> float:
    """The product's part of its category's units over the last ``days`` (the two histories end on the
    same day), or over ``LONG_SHARE_DAYS`` when the product sold nothing in them; 0 without any."""
    product = np.maximum(np.nan_to_num(np.asarray(product, dtype=float)), 0.0)
    category = np.maximum(np.nan_to_num(np.asarray(category, dtype=float)), 0.0)
    for window in dict.fromkeys((days, max(days, LONG_SHARE_DAYS))):
        mine, theirs = float(product[-window:].sum()), float(category[-window:].sum())
        if mine > 0 and theirs > 0:
            return min(mine / theirs, 1.0)
    return 0.0


def predict(product: Series, category: Series, category_prediction: Prediction, level: float) -> Prediction | None:
    """The product's forecast from its category's (over the same future days), or None when the product
    has no share to give it (no sale in ``LONG_SHARE_DAYS``): its own model answers then."""
    first = product.future_dates(1)[0]
    if first not in category_prediction.dates:
        return None  # the category's forecast does not start where the product's history ends
    start = category_prediction.dates.index(first)
    s = share(product.y, category.y)
    yhat = s * np.asarray(category_prediction.yhat[start:], dtype=float)
    if not (yhat > 0).any():
        return None
    low, high = (1.0 - level) / 2.0, (1.0 + level) / 2.0
    lower = np.minimum(s * np.asarray(category_prediction.lower[start:]), poisson.ppf(low, yhat))
    upper = np.maximum(s * np.asarray(category_prediction.upper[start:]), poisson.ppf(high, yhat))
    return Prediction(TOP_DOWN, list(category_prediction.dates[start:]), yhat, np.minimum(lower, yhat),
                      np.maximum(upper, yhat), level)


def backtest(product: Series, category: Series, category_folds: Mapping[int, np.ndarray], horizon: int,
             folds: int) -> BacktestScore:
    """Top-down on the product's own rolling-origin folds (:func:`forecast.fold_origins`, as its other
    candidates): ``category_folds`` maps a fold's distance from the end (in periods) to the category's
    forecast made before it (:func:`forecast.fold_forecasts`); each fold's share is taken on the
    product's and the category's history before the fold. A fold the category has no forecast for, or
    before the product's first sale, is left out."""
    y = np.maximum(np.nan_to_num(product.y), 0.0)
    c = np.maximum(np.nan_to_num(category.y), 0.0)
    rows = []
    for origin in fold_origins(product, horizon, folds):
        back = len(y) - origin
        forecast = category_folds.get(back)
        if forecast is None or len(c) - back < 1 or not (y[:origin] > 0).any():
            continue
        f = share(y[:origin], c[: len(c) - back]) * np.asarray(forecast, dtype=float)
        actual, train = y[origin : origin + horizon], y[:origin]
        rows.append((mase(actual, f, train, product.period), smape(actual, f),
                     float(np.mean(np.abs(actual - f))), rmsse(actual, f, train, product.period)))
    nan = float("nan")
    if not rows:
        return BacktestScore(nan, nan, nan, horizon, 0, nan)
    a = np.mean(rows, axis=0)
    return BacktestScore(float(a[0]), float(a[1]), float(a[2]), horizon, len(rows), float(a[3]))


def category_folds(categories: Mapping[str, Series], models: Mapping[str, str], horizon: int, folds: int,
                   holidays_country: str | None) -> dict[str, dict[int, np.ndarray]]:
    """Every category's fold forecasts with its chosen model (a category whose fits fail has none)."""
    out = {}
    for key, series in categories.items():
        with contextlib.suppress(Exception):  # a category that cannot be backtested lends no shape
            out[key] = fold_forecasts(series, models[key], horizon, folds, holidays_country)
    return out


def choose(products: Mapping[str, Series], chosen_scores: Mapping[str, BacktestScore | None],
           category_of: Mapping[str, str], categories: Mapping[str, Series],
           folds_by_category: Mapping[str, Mapping[int, np.ndarray]], horizon: int, folds: int,
           margin: float = MARGIN) -> dict[str, BacktestScore]:
    """The intermittent products for which top-down wins, with its backtest: its error (the product's
    selection metric) lower than ``(1 - margin)`` × its chosen model's on the same folds. Without a
    backtest of its chosen model (too short a history) a product keeps it."""
    out = {}
    for key, series in products.items():
        category = category_of.get(key)
        folds = folds_by_category.get(category) if category else None
        if not folds or not is_intermittent(series.y):
            continue
        theirs = chosen_scores.get(key)
        metric = selection_metric(series)
        if theirs is None or not theirs.folds or not np.isfinite(getattr(theirs, metric)):
            continue
        mine = backtest(series, categories[category], folds, horizon, theirs.folds)
        value = getattr(mine, metric)
        if mine.folds == theirs.folds and np.isfinite(value) and value < (1.0 - margin) * getattr(theirs, metric):
            out[key] = mine
    return out


def order_for_refresh(entries: Sequence[str]) -> list[str]:
    """``kind|target`` entries with the categories first: a top-down product reads its category's forecast."""
    return sorted(entries, key=lambda e: (not e.startswith("c|"), e))
