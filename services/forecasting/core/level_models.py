"""Models that follow a level that moves, for dense daily demand (issue #19): the recent mean, the Theta
method and STL + damped ETS (a seasonal-trend decomposition whose seasonally adjusted part is forecast
by exponential smoothing, the MSTL idea with the weekly season). All from statsmodels (already a
dependency): statsforecast 2.1.1 needs pandas < 3, which the project pins at 3.1.1.

Each function takes the cleaned history ``y`` (non-negative, finite) and answers a
:class:`~services.forecasting.core.forecast.Prediction`; a history too short for a model falls back to
a simpler one (``Prediction.model`` says which), as the other models of ``forecast.py`` do.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

# "recent_mean" averages the last RECENT_MEAN_PERIODS periods (the "28-day mean" baseline for daily data).
RECENT_MEAN_PERIODS = {"D": 28, "MS": 3, "QS": 2}


def recent_mean(series, y: np.ndarray, horizon: int, level: float):
    """The mean of the last 28 days (3 months, 2 quarters); interval from those days' spread."""
    from services.forecasting.core.forecast import _finish, _z

    window = y[-min(len(y), RECENT_MEAN_PERIODS[series.freq]):]
    mu = float(np.mean(window))
    yhat = np.full(horizon, mu)
    if len(window) >= 20:
        lo, hi = np.quantile(window, [0.5 - level / 2.0, 0.5 + level / 2.0])
        lower, upper = np.full(horizon, lo), np.full(horizon, hi)
    else:
        sd = float(np.std(window, ddof=1)) if len(window) >= 2 else 0.0
        sd = max(sd, math.sqrt(max(mu, 0.0))) * math.sqrt(1.0 + 1.0 / len(window))
        lower, upper = yhat - _z(level) * sd, yhat + _z(level) * sd
    return _finish("recent_mean", series, horizon, level, yhat, lower, upper)


def _fallback(series, y: np.ndarray, horizon: int, level: float):
    from services.forecasting.core.forecast import _mean, _seasonal_naive

    return _seasonal_naive(series, y, horizon, level) if len(y) >= series.period else _mean(series, y, horizon,
                                                                                            level)


def theta(series, y: np.ndarray, horizon: int, level: float):
    """statsmodels' Theta method (Assimakopoulos & Nikolopoulos; SES with drift), deseasonalised by
    the seasonal period when there are two seasons (multiplicatively when the series is positive)."""
    from statsmodels.tsa.forecasting.theta import ThetaModel

    from services.forecasting.core.forecast import _finish

    m, n = series.period, len(y)
    if n < max(2 * m, 8) or float(np.std(y)) == 0.0:
        return _fallback(series, y, horizon, level)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            res = ThetaModel(y, period=m, deseasonalize=True,
                             method="multiplicative" if y.min() > 0 else "additive").fit()
            yhat = np.asarray(res.forecast(horizon), dtype=float)
            bounds = np.asarray(res.prediction_intervals(horizon, alpha=1.0 - level), dtype=float)
        except Exception:  # noqa: BLE001 - statsmodels raises many kinds of errors on degenerate data
            return _fallback(series, y, horizon, level)
    if not (np.isfinite(yhat).all() and np.isfinite(bounds).all()):
        return _fallback(series, y, horizon, level)
    return _finish("theta", series, horizon, level, yhat, bounds[:, 0], bounds[:, 1])


def stl_ets(series, y: np.ndarray, horizon: int, level: float):
    """Robust STL with the seasonal period; the seasonally adjusted series forecast by ETS (additive
    error, damped additive trend), the last season of the seasonal component added back."""
    import pandas as pd
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel
    from statsmodels.tsa.forecasting.stl import STLForecast

    from services.forecasting.core.forecast import _finish

    m, n = series.period, len(y)
    if n < max(2 * m + 2, 10) or float(np.std(y)) == 0.0:
        return _fallback(series, y, horizon, level)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            model = STLForecast(pd.Series(y), ETSModel, period=m, robust=True,
                                model_kwargs={"error": "add", "trend": "add", "damped_trend": True})
            res = model.fit(fit_kwargs={"disp": False, "maxiter": 200})
            frame = res.get_prediction(start=n, end=n + horizon - 1).summary_frame(alpha=1.0 - level)
            yhat, lower, upper = (frame[c].to_numpy(dtype=float)
                                  for c in ("mean", "mean_ci_lower", "mean_ci_upper"))
        except Exception:  # noqa: BLE001 - statsmodels raises many kinds of errors on degenerate data
            return _fallback(series, y, horizon, level)
    if not (np.isfinite(yhat).all() and np.isfinite(lower).all() and np.isfinite(upper).all()):
        return _fallback(series, y, horizon, level)
    return _finish("stl_ets", series, horizon, level, yhat, lower, upper)
