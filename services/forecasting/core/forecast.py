"""Demand forecasting core: series, models, rolling-origin backtests, model choice, batches.

Pure functions over numpy arrays (no Redis, Kafka or files). A :class:`Series` is one target's
history (a product's or a category's units per day, or any monthly/quarterly series);
:func:`fit_predict` fits one model and forecasts ``horizon`` periods with a ``level`` interval;
:func:`backtest` scores a model by rolling origin; :func:`choose_model` picks the model with the
lowest backtest error among :func:`candidates_for`; :func:`forecast_many` does either for many
series across processes.

Models (``MODELS``), every one answering non-negative ``yhat`` inside ``[lower, upper]``:

- ``seasonal_naive``: the last season repeated; interval from the in-sample seasonal differences.
- ``ets``: statsmodels ``ETSModel``, additive error, damped additive trend, additive season when
  there are two full seasons; for a strictly positive series also fitted on the log scale, the
  better of the two by AICc (log-likelihoods made comparable with the Jacobian).
- ``prophet``: Prophet with the seasonalities the frequency allows (daily: weekly, and yearly from
  a year of history; monthly/quarterly: a multiplicative yearly season), the country's holidays
  for daily data, ``promo`` and ``price`` as regressors; 100 uncertainty samples (seeded).
- ``croston``: Croston's method with the Syntetos-Boylan correction (SBA) for intermittent demand;
  interval from the per-period mixture "a demand happens with probability 1/interval, of an
  in-sample size".
- ``mean``: the recent mean; interval from the recent values' spread.
- ``ets+prophet``, ``seasonal_naive+ets+prophet`` (any ``a+b`` of the above works): the mean of the
  members' forecasts and of their bounds.

Model choice: rolling-origin MASE (RMSSE for intermittent series) averaged over the folds; the
default model (:func:`default_model`) is kept unless a candidate is more than SELECTION_MARGIN
better. On 16 real monthly/quarterly series (benchmarks/bench_forecasting.py) that beats seasonal
naive on 14 and is slightly better than ETS alone, the best single model there.

Short histories: an empty series raises ``ValueError``; any model given a history too short for it
answers with the simpler model that fits it (``Prediction.model`` says which): ``prophet`` below two
seasons and ``ets`` below one season + 2 periods fall back to ``seasonal_naive``, or to ``mean``
below one season (ets fits without a season below two seasons + 2). So a one-point series gets the
``mean`` answer: that value, with a Poisson-like interval.
Negative values (net of cancellations) are treated as 0; NaN or infinite values raise ``ValueError``.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import as_completed
from dataclasses import dataclass
from datetime import date, timedelta
from statistics import NormalDist

import numpy as np

from services.forecasting.core import level_models

FREQ_PERIOD = {"D": 7, "MS": 12, "QS": 4}
BASE_MODELS = ("seasonal_naive", "ets", "prophet", "croston", "mean", "recent_mean", "theta", "stl_ets")
LEVEL_MODELS = ("recent_mean", "theta", "stl_ets")  # core/level_models.py
MODELS = (*BASE_MODELS, "ets+prophet", "seasonal_naive+ets+prophet")
CROSTON_ALPHA = 0.1
# A series is intermittent when at least this share of its periods has no demand; from SPARSE_ZERO_SHARE
# on, ETS (then about simple exponential smoothing, like Croston) is not worth its backtest.
INTERMITTENT_ZERO_SHARE = 0.3
SPARSE_ZERO_SHARE = 0.8
# "mean" averages the last MEAN_WINDOW_SEASONS seasons (all of a shorter history).
MEAN_WINDOW_SEASONS = {"D": 8, "MS": 2, "QS": 2}
PROPHET_SAMPLES = 100
# choose_model keeps the default model unless a candidate's backtest error is this much lower (10 %).
SELECTION_MARGIN = 0.1
# Dense daily demand (issue #19): the two baselines a shop could use instead (the last week repeated, the
# mean of the last 28 days) compete with models that follow a moving level and with equal-weight
# combinations of them (which cost no fit: backtest_many reuses the members' fold forecasts); a model
# replaces the better baseline only when its backtest error is lower by more than DAILY_BASELINE_MARGIN.
BASELINES = ("seasonal_naive", "recent_mean")
DAILY_CANDIDATES = (*BASELINES, "ets", "theta", "prophet", "ets+prophet", "recent_mean+theta", "ets+theta",
                    "recent_mean+ets", "recent_mean+ets+theta", "ets+prophet+theta")
# 0: the plain backtest minimum. On the benchmark's 15 daily series (benchmarks/README.md) a margin of 0.05
# kept the 28-day mean on four series the chosen model beat on the holdout (mean ratio to the better
# baseline 0.933 against 0.928 without a margin; 0.02 gave 0.930).
DAILY_BASELINE_MARGIN = 0.0
# Prophet is the default for dense daily demand only from a year and a half of history, when part of the
# yearly season has been seen twice: with one year Prophet fits that year's noise as the season (on the
# benchmark's daily series of 337-398 days its holdout error was 16 % above ETS's on average), while on the
# demo shop's categories (702 days, holidays and promotions) keeping it lowers the holdout MASE from 1.19 to
# 1.09 (benchmarks/README.md).
PROPHET_DEFAULT_DAYS = 548
# Prophet settings per frequency ("log": fit log(y) when y > 0; "fourier": the yearly season's order for
# monthly/quarterly data, daily data uses Prophet's own yearly season). Multiplicative seasonality and
# order 6 were the best of the variants tried on the benchmark series' training parts (backtest MASE).
PROPHET_OPTIONS = {
    "MS": {"log": False, "changepoint_prior_scale": 0.05, "seasonality_mode": "multiplicative", "fourier": 6,
           "changepoint_range": 0.8},
    "QS": {"log": False, "changepoint_prior_scale": 0.05, "seasonality_mode": "multiplicative", "fourier": 2,
           "changepoint_range": 0.8},
    "D": {"log": False, "changepoint_prior_scale": 0.05, "seasonality_mode": "additive", "fourier": 0,
          "changepoint_range": 0.8},
}


# ----------------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True, eq=False)
class Series:
    """One target's history: ``y[i]`` is the demand of the i-th period from ``start``."""

    start: date
    y: np.ndarray
    freq: str = "D"
    price: np.ndarray | None = None
    promo: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.freq not in FREQ_PERIOD:
            raise ValueError(f"freq must be one of {', '.join(FREQ_PERIOD)}, got {self.freq!r}")
        y = np.asarray(self.y, dtype=float).ravel()
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "start", _period_start(self.start, self.freq))
        for name in ("price", "promo"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=float).ravel()
                if len(value) != len(y):
                    raise ValueError(f"{name} has {len(value)} values for {len(y)} periods")
                object.__setattr__(self, name, value)

    @property
    def period(self) -> int:
        """The seasonal period: 7 for daily, 12 for monthly, 4 for quarterly."""
        return FREQ_PERIOD[self.freq]

    def __len__(self) -> int:
        return len(self.y)

    def dates(self) -> list[date]:
        """The date of every period of the history."""
        return [shift(self.start, self.freq, i) for i in range(len(self.y))]

    def future_dates(self, horizon: int) -> list[date]:
        """The ``horizon`` periods after the last one of the history."""
        n = len(self.y)
        return [shift(self.start, self.freq, n + i) for i in range(horizon)]

    def head(self, n: int) -> Series:
        """The first ``n`` periods."""
        return Series(self.start, self.y[:n], self.freq,
                      None if self.price is None else self.price[:n],
                      None if self.promo is None else self.promo[:n])


@dataclass(frozen=True, eq=False)
class Prediction:
    """A forecast: ``model`` is the model that produced it (a fallback's name when one was needed)."""

    model: str
    dates: list[date]
    yhat: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    level: float


@dataclass(frozen=True)
class BacktestScore:
    """Rolling-origin errors averaged over ``folds`` (0 folds: too little history, metrics nan).
    ``rmsse`` is the root mean squared scaled error (M5), the criterion for intermittent series."""

    mase: float
    smape: float
    mae: float
    horizon: int
    folds: int
    rmsse: float = float("nan")


@dataclass(frozen=True)
class Outcome:
    """One item of :func:`forecast_many`: the model asked for or chosen, its forecast, the chosen
    model's backtest (with ``select``) and every candidate's (``scores``), or the error text."""

    model: str
    prediction: Prediction | None
    backtest: BacktestScore | None
    error: str | None
    scores: dict[str, BacktestScore] | None = None


def shift(start: date, freq: str, k: int) -> date:
    """The date ``k`` periods after ``start``."""
    if freq == "D":
        return start + timedelta(days=k)
    months = start.year * 12 + start.month - 1 + k * (3 if freq == "QS" else 1)
    return date(months // 12, months % 12 + 1, 1)


def _period_start(d: date, freq: str) -> date:
    if freq == "D":
        return d
    month = d.month if freq == "MS" else 3 * ((d.month - 1) // 3) + 1
    return date(d.year, month, 1)


class NoDemand(ValueError):
    """The history has no positive value: a forecast would be a silent zero, so none is made."""


def _clean(series: Series) -> np.ndarray:
    y = series.y
    if len(y) == 0:
        raise ValueError("empty series: nothing to forecast")
    if not np.isfinite(y).all():
        raise ValueError(f"y has {int((~np.isfinite(y)).sum())} NaN or infinite values")
    y = np.maximum(y, 0.0)
    if not (y > 0).any():
        raise NoDemand(f"no demand in the {len(y)} periods of the history (every sale cancelled or none "
                       "made): nothing to forecast from, rather than a silent zero forecast")
    return y


def _filled(x: np.ndarray) -> np.ndarray:
    """Forward then backward fill of NaN."""
    x = np.asarray(x, dtype=float).copy()
    ok = np.isfinite(x)
    if not ok.any():
        return x
    idx = np.where(ok, np.arange(len(x)), 0)
    np.maximum.accumulate(idx, out=idx)
    x = x[idx]
    first = int(np.flatnonzero(ok)[0])
    x[:first] = x[first]
    return x


# ----------------------------------------------------------------------------------------------------
# Metrics


def mase_scale(train: np.ndarray, period: int) -> float:
    """The in-sample MAE of the seasonal naive forecast (lag ``period``), or of the naive one (lag 1)
    when the history is shorter than two periods; when that is 0, the next of: lag-1 MAE, mean |y|, 1."""
    train = np.asarray(train, dtype=float)
    candidates = []
    if len(train) >= 2 * period:
        candidates.append(np.mean(np.abs(train[period:] - train[:-period])))
    if len(train) >= 2:
        candidates.append(np.mean(np.abs(np.diff(train))))
    if len(train):
        candidates.append(np.mean(np.abs(train)))
    for scale in candidates:
        if np.isfinite(scale) and scale > 0:
            return float(scale)
    return 1.0


def mase(actual: np.ndarray, forecast: np.ndarray, train: np.ndarray, period: int) -> float:
    """Mean absolute scaled error: MAE of the forecast / :func:`mase_scale` of the training data
    (below 1: better than the in-sample seasonal naive forecast)."""
    err = np.mean(np.abs(np.asarray(actual, dtype=float) - np.asarray(forecast, dtype=float)))
    return float(err / mase_scale(train, period))


def rmsse(actual: np.ndarray, forecast: np.ndarray, train: np.ndarray, period: int) -> float:
    """Root mean squared scaled error (the M5 metric): RMSE / in-sample RMSE of the naive forecast
    (lag 1), with the same fallbacks as :func:`mase_scale` when that is 0."""
    train = np.asarray(train, dtype=float)
    scale = float(np.sqrt(np.mean(np.diff(train) ** 2))) if len(train) >= 2 else 0.0
    if not scale > 0:
        scale = float(np.sqrt(np.mean(train**2))) if len(train) else 0.0
    if not scale > 0:
        scale = 1.0
    err = np.sqrt(np.mean((np.asarray(actual, dtype=float) - np.asarray(forecast, dtype=float)) ** 2))
    return float(err / scale)


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Symmetric MAPE as a fraction in [0, 2]: mean of 2|a - f| / (|a| + |f|), a 0/0 term counting 0."""
    a, f = np.abs(np.asarray(actual, dtype=float)), np.asarray(forecast, dtype=float)
    num, den = 2.0 * np.abs(np.asarray(actual, dtype=float) - f), a + np.abs(f)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return float(np.mean(terms))


# ----------------------------------------------------------------------------------------------------
# Models


def _z(level: float) -> float:
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def _finish(model: str, series: Series, horizon: int, level: float, yhat, lower, upper) -> Prediction:
    """Non-negative yhat inside [lower, upper], lower >= 0, no NaN."""
    yhat = np.maximum(np.asarray(yhat, dtype=float), 0.0)
    lower = np.asarray(lower, dtype=float)
    upper = np.asarray(upper, dtype=float)
    if not (np.isfinite(yhat).all() and np.isfinite(lower).all() and np.isfinite(upper).all()):
        raise ValueError(f"{model} produced NaN or infinite values")
    lower = np.clip(np.minimum(lower, yhat), 0.0, None)
    upper = np.maximum(upper, yhat)
    return Prediction(model, series.future_dates(horizon), yhat, lower, upper, level)


def _spread_interval(yhat: np.ndarray, residuals: np.ndarray, level: float, widen: np.ndarray):
    """yhat + the residuals' central ``level`` quantiles (empirical with >= 20 residuals, else normal),
    scaled by ``widen`` per step."""
    residuals = residuals[np.isfinite(residuals)]
    if len(residuals) >= 20:
        lo, hi = np.quantile(residuals, [0.5 - level / 2.0, 0.5 + level / 2.0])
    else:
        sd = float(np.std(residuals, ddof=1)) if len(residuals) >= 2 else 0.0
        if not sd > 0:
            sd = math.sqrt(max(float(np.mean(yhat)), 1e-9))
        lo, hi = -_z(level) * sd, _z(level) * sd
    return yhat + lo * widen, yhat + hi * widen


def _seasonal_naive(series: Series, y: np.ndarray, horizon: int, level: float) -> Prediction:
    m, n = series.period, len(y)
    steps = np.arange(horizon)
    if n >= m:
        yhat = y[n - m + steps % m]
        widen = np.sqrt(steps // m + 1.0)
        residuals = y[m:] - y[:-m] if n > m else np.diff(y)
    else:  # less than a season: the naive forecast (last value)
        yhat = np.full(horizon, y[-1])
        widen = np.sqrt(steps + 1.0)
        residuals = np.diff(y)
    lower, upper = _spread_interval(yhat, residuals, level, widen)
    return _finish("seasonal_naive", series, horizon, level, yhat, lower, upper)


def _mean(series: Series, y: np.ndarray, horizon: int, level: float) -> Prediction:
    window = y[-min(len(y), MEAN_WINDOW_SEASONS[series.freq] * series.period):]
    mu = float(np.mean(window))
    yhat = np.full(horizon, mu)
    if len(window) >= 20:  # the per-period distribution of the recent values
        lo, hi = np.quantile(window, [0.5 - level / 2.0, 0.5 + level / 2.0])
        lower, upper = np.full(horizon, lo), np.full(horizon, hi)
    else:
        sd = float(np.std(window, ddof=1)) if len(window) >= 2 else 0.0
        sd = max(sd, math.sqrt(max(mu, 0.0)))  # at least Poisson-like
        sd *= math.sqrt(1.0 + 1.0 / len(window))  # the mean's own uncertainty
        lower, upper = yhat - _z(level) * sd, yhat + _z(level) * sd
    return _finish("mean", series, horizon, level, yhat, lower, upper)


def croston_rate(y: np.ndarray, alpha: float = CROSTON_ALPHA) -> tuple[float, float, float]:
    """(SBA demand rate per period, smoothed demand size, smoothed interval between demands)."""
    nz = np.flatnonzero(y > 0)
    if len(nz) == 0:
        return 0.0, 0.0, float("inf")
    sizes = y[nz]
    gaps = np.diff(np.concatenate([[-1], nz])).astype(float)
    z, p = sizes[0], float(np.mean(gaps))
    for size, gap in zip(sizes[1:], gaps[1:], strict=True):
        z += alpha * (size - z)
        p += alpha * (gap - p)
    p = max(p, 1.0)
    return float((1.0 - alpha / 2.0) * z / p), float(z), p


def _croston(series: Series, y: np.ndarray, horizon: int, level: float) -> Prediction:
    rate, size, gap = croston_rate(y)
    if rate == 0.0:
        zeros = np.zeros(horizon)
        return _finish("croston", series, horizon, level, zeros, zeros, zeros)
    # Per period: a demand with probability 1/gap, of a size drawn from the in-sample sizes (scaled to
    # the smoothed size). Quantile q of that mixture: 0 while q <= P(no demand), else a size quantile.
    sizes = y[y > 0] * (size / float(np.mean(y[y > 0])))
    p_zero = 1.0 - 1.0 / gap

    def quantile(q: float) -> float:
        if q <= p_zero:
            return 0.0
        return float(np.quantile(sizes, (q - p_zero) / (1.0 - p_zero)))

    lo, hi = quantile(0.5 - level / 2.0), quantile(0.5 + level / 2.0)
    return _finish("croston", series, horizon, level, np.full(horizon, rate), np.full(horizon, lo),
                   np.full(horizon, hi))


def _ets_fit(y: np.ndarray, m: int, seasonal: bool, trend: bool):
    import pandas as pd
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    model = ETSModel(pd.Series(y), error="add", trend="add" if trend else None, damped_trend=trend,
                     seasonal="add" if seasonal else None, seasonal_periods=m if seasonal else None)
    return model.fit(disp=False, maxiter=200)


def _attempt(fn: Callable, *args):
    """fn(*args), or None when it raises."""
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - the callers fall back to a simpler model
        return None


def _aicc(result, n: int) -> float:
    k = len(result.params) + 1
    return float(-2 * result.llf + 2 * k + (2 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else 1e6))


def _ets(series: Series, y: np.ndarray, horizon: int, level: float) -> Prediction:
    m, n = series.period, len(y)
    if n < m + 2 or n < 6:
        return _seasonal_naive(series, y, horizon, level) if n >= m else _mean(series, y, horizon, level)
    seasonal, trend = n >= 2 * m + 2, n >= 10
    fits = []
    # Imported before the filter: statsmodels adds "always" filters for its warnings on import.
    import statsmodels.tsa.exponential_smoothing.ets  # noqa: F401
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        res = _attempt(_ets_fit, y, m, seasonal, trend)
        if res is not None:
            fits.append((_aicc(res, n), False, res))
        if y.min() > 0:
            res = _attempt(_ets_fit, np.log(y), m, seasonal, trend)
            if res is not None:
                fits.append((_aicc(res, n) + 2.0 * float(np.sum(np.log(y))), True, res))
        for _, logged, res in sorted(fits, key=lambda f: f[0] if np.isfinite(f[0]) else np.inf):
            frame = _attempt(lambda r: r.get_prediction(start=n, end=n + horizon - 1).summary_frame(
                alpha=1.0 - level), res)
            if frame is None:
                continue
            yhat, lower, upper = (frame[c].to_numpy(dtype=float) for c in ("mean", "pi_lower", "pi_upper"))
            if logged:
                yhat, lower, upper = np.exp(yhat), np.exp(lower), np.exp(upper)
            if np.isfinite(yhat).all() and np.isfinite(lower).all() and np.isfinite(upper).all():
                return _finish("ets", series, horizon, level, yhat, lower, upper)
    # Every fit failed (statsmodels raises many kinds of errors on degenerate data): the last season.
    return _seasonal_naive(series, y, horizon, level)


def _quiet_prophet():
    """Import Prophet with cmdstanpy's and prophet's chatter silenced."""
    for name in ("prophet", "prophet.plot", "cmdstanpy"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    from cmdstanpy.utils import get_logger
    from prophet import Prophet

    # get_logger() resets the level on its first call. CRITICAL: an L-BFGS failure is logged as an
    # ERROR although Prophet then retries with Newton's method.
    get_logger().setLevel(logging.CRITICAL)
    for name in ("prophet", "prophet.plot", "cmdstanpy"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return Prophet


def _prophet(series: Series, y: np.ndarray, horizon: int, level: float, future_price: np.ndarray | None,
             future_promo: np.ndarray | None, holidays_country: str | None) -> Prediction:
    import pandas as pd

    m, n = series.period, len(y)
    if n < 2 * m:
        return _seasonal_naive(series, y, horizon, level) if n >= m else _mean(series, y, horizon, level)
    Prophet = _quiet_prophet()
    daily = series.freq == "D"
    options = PROPHET_OPTIONS[series.freq]
    logged = bool(options["log"]) and y.min() > 0
    model = Prophet(interval_width=level, uncertainty_samples=PROPHET_SAMPLES, daily_seasonality=False,
                    weekly_seasonality=daily and n >= 14, yearly_seasonality=daily and n >= 365,
                    changepoint_prior_scale=options["changepoint_prior_scale"],
                    seasonality_mode=options["seasonality_mode"],
                    changepoint_range=options["changepoint_range"])
    if not daily and n >= 2 * m:
        model.add_seasonality(name="yearly", period=365.25, fourier_order=options["fourier"])
    if daily and holidays_country:
        model.add_country_holidays(country_name=holidays_country)
    history = pd.DataFrame({"ds": pd.to_datetime(series.dates()), "y": np.log(y) if logged else y})
    future = pd.DataFrame({"ds": pd.to_datetime(series.future_dates(horizon))})
    if series.promo is not None and np.nanstd(series.promo) > 0:
        model.add_regressor("promo")
        history["promo"] = np.nan_to_num(series.promo)
        future["promo"] = 0.0 if future_promo is None else np.nan_to_num(_fit_length(future_promo, horizon))
    if series.price is not None:
        price = _filled(series.price)
        if np.isfinite(price).all() and np.std(price) > 0:
            model.add_regressor("price")
            history["price"] = price
            fp = np.full(horizon, np.nan) if future_price is None else _fit_length(future_price, horizon)
            future["price"] = _filled(np.concatenate([price, fp]))[n:]
    state = np.random.get_state()
    np.random.seed(0)  # Prophet samples its intervals from the global generator
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(history)
            frame = model.predict(future)
    finally:
        np.random.set_state(state)
    yhat, lower, upper = (frame[c].to_numpy(dtype=float) for c in ("yhat", "yhat_lower", "yhat_upper"))
    if logged:
        yhat, lower, upper = np.exp(yhat), np.exp(lower), np.exp(upper)
    return _finish("prophet", series, horizon, level, yhat, lower, upper)


def _fit_length(x: np.ndarray, horizon: int) -> np.ndarray:
    x = np.asarray(x, dtype=float).ravel()[:horizon]
    return np.concatenate([x, np.full(horizon - len(x), np.nan)]) if len(x) < horizon else x


def fit_predict(series: Series, model: str, horizon: int, level: float = 0.8,
                future_price: np.ndarray | None = None, future_promo: np.ndarray | None = None,
                holidays_country: str | None = "CN") -> Prediction:
    """Fit ``model`` on the whole history and forecast the next ``horizon`` periods with a central
    ``level`` interval. ``future_price``/``future_promo`` (one value per future period) feed Prophet's
    regressors (default: the last price, no promotion). ``a+b`` averages the members' forecasts."""
    if horizon < 1:
        raise ValueError("horizon must be at least 1")
    if not 0.0 < level < 1.0:
        raise ValueError("level must be in (0, 1)")
    y = _clean(series)
    if "+" in model:
        members = model.split("+")
        preds = [fit_predict(series, m, horizon, level, future_price, future_promo, holidays_country)
                 for m in members]
        return _combine(model, preds)
    prediction = _fit_base(series, y, model, horizon, level, future_price, future_promo, holidays_country)
    if model != "croston" and not (prediction.yhat > 0).any():
        # The recent window had no sale although the history has some: Croston's rate over the whole
        # history rather than a silent zero forecast (Prediction.model says "croston").
        return _croston(series, y, horizon, level)
    return prediction


def _fit_base(series: Series, y: np.ndarray, model: str, horizon: int, level: float, future_price,
              future_promo, holidays_country: str | None) -> Prediction:
    if model == "seasonal_naive":
        return _seasonal_naive(series, y, horizon, level)
    if model == "mean":
        return _mean(series, y, horizon, level)
    if model == "croston":
        return _croston(series, y, horizon, level)
    if model == "ets":
        return _ets(series, y, horizon, level)
    if model == "prophet":
        return _prophet(series, y, horizon, level, future_price, future_promo, holidays_country)
    if model in LEVEL_MODELS:
        return getattr(level_models, model)(series, y, horizon, level)
    raise ValueError(f"unknown model {model!r}; known: {', '.join(BASE_MODELS)} or a+b combinations")


def _combine(name: str, preds: Sequence[Prediction]) -> Prediction:
    """The mean of the members' forecasts and bounds (named ``name``, or the fallbacks' names)."""
    used = "+".join(dict.fromkeys(p.model for p in preds))
    first = preds[0]
    yhat = np.mean([p.yhat for p in preds], axis=0)
    lower = np.minimum(np.mean([p.lower for p in preds], axis=0), yhat)
    upper = np.maximum(np.mean([p.upper for p in preds], axis=0), yhat)
    return Prediction(name if used == name else used, first.dates, yhat, lower, upper, first.level)


# ----------------------------------------------------------------------------------------------------
# Backtests and model choice


def min_train(series: Series) -> int:
    """The shortest history a backtest fold trains on: two seasons, and at least 8 periods."""
    return max(2 * series.period, 8)


def fold_origins(series: Series, horizon: int, folds: int) -> list[int]:
    """The first period of each backtest fold: the last ``folds`` windows of ``horizon`` periods that
    leave :func:`min_train` periods before them (fewer when the history is short), oldest first."""
    n = len(series.y)
    usable = max(0, min(folds, (n - min_train(series)) // horizon))
    return [n - horizon * (usable - i) for i in range(usable)]



def _future(x: np.ndarray | None, origin: int, horizon: int) -> np.ndarray | None:
    return None if x is None else x[origin:origin + horizon]


def backtest_many(series: Series, models: Sequence[str], horizon: int, folds: int = 3,
                  holidays_country: str | None = "CN") -> dict[str, BacktestScore]:
    """:func:`backtest` of several models on the same folds; a combination ``a+b`` reuses its
    members' fold forecasts instead of fitting them again. A model whose fit raises on some fold
    scores nan with 0 folds (the others are still scored); an unknown model name raises."""
    y = _clean(series)
    origins = fold_origins(series, horizon, folds)
    nan = float("nan")
    if not origins:
        return {m: BacktestScore(nan, nan, nan, horizon, 0) for m in models}
    needed = list(dict.fromkeys(part for m in models for part in m.split("+")))
    unknown = [b for b in needed if b not in BASE_MODELS]
    if unknown:
        raise ValueError(f"unknown model {unknown[0]!r}; known: {', '.join(BASE_MODELS)} or a+b combinations")

    def fold_forecasts(base: str) -> list[np.ndarray]:
        # A fold whose training part has no demand yet (a product launched later) forecasts zero there.
        return [fit_predict(series.head(o), base, horizon, 0.8, _future(series.price, o, horizon),
                            _future(series.promo, o, horizon), holidays_country).yhat
                if (y[:o] > 0).any() else np.zeros(horizon) for o in origins]

    forecasts = {base: _attempt(fold_forecasts, base) for base in needed}
    out = {}
    for m in models:
        parts = m.split("+")
        if any(forecasts[p] is None for p in parts):
            out[m] = BacktestScore(nan, nan, nan, horizon, 0)
            continue
        rows = []
        for i, o in enumerate(origins):
            f = np.mean([forecasts[p][i] for p in parts], axis=0)
            actual, train = y[o:o + horizon], y[:o]
            rows.append((mase(actual, f, train, series.period), smape(actual, f),
                         float(np.mean(np.abs(actual - f))), rmsse(actual, f, train, series.period)))
        a = np.mean(rows, axis=0)
        out[m] = BacktestScore(float(a[0]), float(a[1]), float(a[2]), horizon, len(origins), float(a[3]))
    return out


def fold_forecasts(series: Series, model: str, horizon: int, folds: int = 3,
                   holidays_country: str | None = "CN") -> dict[int, np.ndarray]:
    """``model``'s forecast of each backtest fold (fitted on the history before it), keyed by the fold's
    distance from the end in periods, so that series ending on the same day share keys (top_down.py)."""
    y = _clean(series)
    out = {}
    for o in fold_origins(series, horizon, folds):
        parts = [fit_predict(series.head(o), m, horizon, 0.8, _future(series.price, o, horizon),
                             _future(series.promo, o, horizon), holidays_country).yhat
                 if (y[:o] > 0).any() else np.zeros(horizon) for m in model.split("+")]
        out[len(y) - o] = np.mean(parts, axis=0)
    return out


def backtest(series: Series, model: str, horizon: int, folds: int = 3,
             holidays_country: str | None = "CN") -> BacktestScore:
    """Rolling-origin backtest: ``folds`` consecutive windows of ``horizon`` periods at the end of the
    history, each forecast by ``model`` fitted on everything before it (at least :func:`min_train`
    periods: fewer folds when the history is short, 0 folds and nan metrics when it is too short).
    Metrics are averaged over the folds; each fold's MASE/RMSSE is scaled by its own training data."""
    return backtest_many(series, [model], horizon, folds, holidays_country)[model]


def is_intermittent(y: np.ndarray) -> bool:
    """At least INTERMITTENT_ZERO_SHARE of the periods have no demand."""
    return len(y) > 0 and float(np.mean(np.asarray(y) <= 0)) >= INTERMITTENT_ZERO_SHARE


def candidates_for(series: Series) -> tuple[str, ...]:
    """The models worth backtesting for this series. Intermittent demand: croston and mean, and ets
    when under SPARSE_ZERO_SHARE of the periods are empty (seasonal naive would repeat last season's
    sporadic sales). Dense data with two full seasons: seasonal naive, ets, prophet and two
    combinations. Shorter: seasonal naive from one season, and mean."""
    y = np.nan_to_num(series.y)
    n, m = len(y), series.period
    if n < max(m, 4):
        return ("mean",)
    if is_intermittent(y):
        lumpy = float(np.mean(y <= 0)) < SPARSE_ZERO_SHARE and n >= 2 * m + 2
        return ("croston", "mean", "ets") if lumpy else ("croston", "mean")
    if n < 2 * m:
        return ("seasonal_naive", "mean")
    if series.freq == "D":
        return DAILY_CANDIDATES
    return ("seasonal_naive", "ets", "prophet", "ets+prophet", "seasonal_naive+ets+prophet")


def default_model(series: Series) -> str:
    """The model used without a backtest, and the one :func:`choose_model` keeps unless another is clearly
    better: croston for intermittent demand; prophet for dense daily data with a year and a half of
    history (PROPHET_DEFAULT_DAYS: ETS sees only the weekly season, Prophet also the yearly one, holidays
    and promotions, but one year shows the yearly season only once); ets with two seasons; seasonal
    naive with one; else the mean."""
    y = np.nan_to_num(series.y)
    n, m = len(y), series.period
    if is_intermittent(y):
        return "croston" if (y > 0).sum() >= 2 else "mean"
    if series.freq == "D" and n >= PROPHET_DEFAULT_DAYS:
        return "prophet"
    if n >= 2 * m + 2:
        return "ets"
    return "seasonal_naive" if n >= m else "mean"


def selection_metric(series: Series) -> str:
    """``rmsse`` for intermittent series (MASE rewards forecasting zero there), else ``mase``."""
    return "rmsse" if is_intermittent(series.y) else "mase"


def choose_model(series: Series, horizon: int, folds: int = 3, candidates: Sequence[str] | None = None,
                 metric: str | None = None, holidays_country: str | None = "CN",
                 margin: float = SELECTION_MARGIN, baseline_margin: float = DAILY_BASELINE_MARGIN
                 ) -> tuple[str, dict[str, BacktestScore]]:
    """The candidate with the lowest mean backtest ``metric`` over the folds (default
    :func:`selection_metric`; ties go to the earlier candidate), and every candidate's score.
    Parsimony: when :func:`default_model` is a candidate it is kept unless the best one's error is
    lower by more than ``margin`` (a fraction), since a few folds rank close models by chance.
    Dense daily series: Prophet, the default from a year and a half of history (it alone sees the yearly season,
    holidays and planned promotions, which a few recent folds cannot show), is kept as above when
    within ``margin`` of the best; otherwise the anchor is the better of the baselines among the
    candidates (BASELINES, by the same backtest) with ``baseline_margin``, so a model is served only
    when its backtest beats what the shop could do with the last week or the 28-day mean.
    Without any fold (too short a history) the answer is :func:`default_model` (or the only candidate)."""
    cands = tuple(candidates) if candidates else candidates_for(series)
    metric = metric or selection_metric(series)
    scores = backtest_many(series, cands, horizon, folds, holidays_country)

    def value(name: str) -> float:
        s = scores[name]
        v = getattr(s, metric)
        return float(v) if s.folds > 0 and np.isfinite(v) else float("inf")

    valid = [(value(m), i, m) for i, m in enumerate(cands) if np.isfinite(value(m))]
    default = default_model(series)
    if not valid:
        return (default if default in cands or len(cands) != 1 else cands[0]), scores
    best_value, _, best = min(valid)
    baselines = [(value(b), b) for b in BASELINES if b in cands and np.isfinite(value(b))]
    near_default = default in cands and best_value >= (1.0 - margin) * value(default)
    if series.freq == "D" and baselines and not is_intermittent(series.y) and not (
            default == "prophet" and near_default):
        default, margin = min(baselines)[1], baseline_margin
    if default in cands and np.isfinite(value(default)) and best_value >= (1.0 - margin) * value(default):
        return default, scores
    return best, scores


def versus_baselines(outcomes: Mapping[str, Outcome]) -> dict[str, float]:
    """How the chosen models compare with the better baseline in their own selection backtest (an
    optimistic figure: the same folds chose them), over the series where both baselines were scored:
    ``series_vs_baselines``, ``median_backtest_mase_vs_better_baseline`` and
    ``share_beating_better_baseline`` (nan without such a series)."""
    ratios = []
    for o in outcomes.values():
        scores = o.scores or {}
        if o.error is not None or o.model not in scores or not all(b in scores for b in BASELINES):
            continue
        best = min(scores[b].mase for b in BASELINES)
        mine = scores[o.model].mase
        if np.isfinite(best) and best > 0 and np.isfinite(mine):
            ratios.append(mine / best)
    nan = float("nan")
    return {"series_vs_baselines": float(len(ratios)),
            "median_backtest_mase_vs_better_baseline": float(np.median(ratios)) if ratios else nan,
            "share_beating_better_baseline": float(np.mean(np.array(ratios) < 1.0)) if ratios else nan}


# ----------------------------------------------------------------------------------------------------
# Batches


def _run_item(series: Series, model: str | None, future: tuple, select: bool, horizon: int, level: float,
              folds: int, holidays_country: str | None) -> Outcome:
    scores = None
    try:
        if model is None and select:
            model, scores = choose_model(series, horizon, folds, holidays_country=holidays_country)
        elif model is None:
            model = default_model(series)
        prediction = fit_predict(series, model, horizon, level, future[0], future[1], holidays_country)
        return Outcome(model, prediction, scores.get(model) if scores else None, None, scores)
    except Exception as exc:  # noqa: BLE001 - one bad item must not kill the batch
        return Outcome(model or "", None, None, f"{type(exc).__name__}: {exc}", scores)


def _run_chunk(chunk: list[tuple[str, Series, str | None, tuple]], select: bool, horizon: int, level: float,
               folds: int, holidays_country: str | None) -> list[tuple[str, Outcome]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [(key, _run_item(s, m, future, select, horizon, level, folds, holidays_country))
                for key, s, m, future in chunk]


_WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def chunk_size(total: int, n_jobs: int) -> int:
    """Items per task: about 8 tasks per worker, 1..50 items each."""
    return max(1, min(50, math.ceil(total / max(1, n_jobs * 8))))


def forecast_many(items: Mapping[str, Series], horizon: int, level: float = 0.8,
                  chosen: Mapping[str, str] | None = None, select: bool = False, n_jobs: int = 2,
                  progress: Callable[[int, int], None] | None = None, holidays_country: str | None = "CN",
                  folds: int = 3, future_price: Mapping[str, np.ndarray] | None = None,
                  future_promo: Mapping[str, np.ndarray] | None = None) -> dict[str, Outcome]:
    """Forecast every item. An item named in ``chosen`` is fitted with that model only (the refresh);
    otherwise with ``select`` its model is chosen by :func:`choose_model` first (``Outcome.backtest``,
    ``Outcome.scores``), else :func:`default_model` is used. ``n_jobs > 1`` runs chunks of items in
    that many worker processes (loky, reused between calls: the first call pays the start and imports,
    ~2 s); ``progress(done, total)`` is called in this process as chunks finish. A failing item gets
    ``Outcome.error``; the others are unaffected. ``future_price``/``future_promo`` give an item's
    planned prices/promotions over the horizon (see :func:`fit_predict`). Returns outcomes in the order
    of ``items``."""
    chosen = chosen or {}
    future_price, future_promo = future_price or {}, future_promo or {}
    keys = list(items)
    total = len(keys)
    tasks = [(k, items[k], chosen.get(k), (future_price.get(k), future_promo.get(k))) for k in keys]
    size = chunk_size(total, n_jobs)
    chunks = [tasks[i:i + size] for i in range(0, total, size)]
    args = (select, horizon, level, folds, holidays_country)
    results: dict[str, Outcome] = {}
    done = 0
    if n_jobs <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            results.update(_run_chunk(chunk, *args))
            done += len(chunk)
            if progress:
                progress(done, total)
        return {k: results[k] for k in keys}
    from joblib.externals.loky import get_reusable_executor

    # Small models gain nothing from BLAS threads; n_jobs processes share the cores.
    executor = get_reusable_executor(max_workers=n_jobs, timeout=300, env=_WORKER_ENV)
    futures = {executor.submit(_run_chunk, chunk, *args): chunk for chunk in chunks}
    for future in as_completed(futures):
        chunk = futures[future]
        try:
            results.update(future.result())
        except Exception as exc:  # noqa: BLE001 - a crashed worker fails its chunk only
            for key, _, model, _ in chunk:
                results[key] = Outcome(model or "", None, None, f"worker failed: {type(exc).__name__}: {exc}")
        done += len(chunk)
        if progress:
            progress(done, total)
    return {k: results[k] for k in keys}
