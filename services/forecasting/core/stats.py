"""Small statistics helpers: mean, variance, standard deviation, Pearson correlation, simple linear
regression and the logistic function.

Every function takes plain sequences or numpy arrays of numbers and raises ``ValueError`` with a clear
message for empty input, mismatched lengths, non-finite values and (where it matters) zero variance.
Sums are computed around the mean (two-pass), so large offsets such as prices near 1e9 do not lose
precision the way the textbook ``E[x^2] - E[x]^2`` formula does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Numbers = Sequence[float] | np.ndarray


def _as_vector(values: Numbers, name: str) -> np.ndarray:
    """1-d float array of finite values; ValueError naming ``name`` otherwise."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a one-dimensional sequence of numbers, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: at least one value is needed")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _pair(x: Numbers, y: Numbers) -> tuple[np.ndarray, np.ndarray]:
    xa, ya = _as_vector(x, "x"), _as_vector(y, "y")
    if xa.size != ya.size:
        raise ValueError(f"x and y must have the same length, got {xa.size} and {ya.size}")
    return xa, ya


def mean(values: Numbers) -> float:
    """Arithmetic mean."""
    return float(np.mean(_as_vector(values, "values")))


def variance(values: Numbers, ddof: int = 0) -> float:
    """Variance: ``ddof=0`` the population variance (divide by n), ``ddof=1`` the sample variance
    (divide by n - 1)."""
    arr = _as_vector(values, "values")
    if ddof < 0:
        raise ValueError(f"ddof must be >= 0, got {ddof}")
    if arr.size <= ddof:
        raise ValueError(f"variance with ddof={ddof} needs more than {ddof} values, got {arr.size}")
    dev = arr - arr.mean()
    return float(np.dot(dev, dev) / (arr.size - ddof))


def std(values: Numbers, ddof: int = 0) -> float:
    """Standard deviation, the square root of :func:`variance` with the same ``ddof``."""
    return math.sqrt(variance(values, ddof))


def correlation(x: Numbers, y: Numbers) -> float:
    """Pearson correlation coefficient in [-1, 1]; ValueError when x or y is constant."""
    xa, ya = _pair(x, y)
    dx, dy = xa - xa.mean(), ya - ya.mean()
    sxx, syy = float(np.dot(dx, dx)), float(np.dot(dy, dy))
    if sxx == 0.0:
        raise ValueError("x has zero variance: the correlation is undefined")
    if syy == 0.0:
        raise ValueError("y has zero variance: the correlation is undefined")
    r = float(np.dot(dx, dy)) / math.sqrt(sxx * syy)
    return max(-1.0, min(1.0, r))


def linear_regression(x: Numbers, y: Numbers) -> tuple[float, float, float]:
    """Ordinary least squares fit of ``y = slope * x + intercept``: returns ``(slope, intercept,
    r_squared)``. R² is 1.0 when y is constant (the fit is then exact). ValueError when x is constant."""
    xa, ya = _pair(x, y)
    dx, dy = xa - xa.mean(), ya - ya.mean()
    sxx = float(np.dot(dx, dx))
    if sxx == 0.0:
        raise ValueError("x has zero variance: the regression slope is undefined")
    slope = float(np.dot(dx, dy)) / sxx
    intercept = float(ya.mean() - slope * xa.mean())
    resid = ya - (slope * xa + intercept)
    ss_tot = float(np.dot(dy, dy))
    ss_res = float(np.dot(resid, resid))
    r_squared = 1.0 if ss_tot == 0.0 else max(0.0, 1.0 - ss_res / ss_tot)
    return slope, intercept, r_squared


def logistic(z: float | Numbers) -> float | np.ndarray:
    """The logistic (sigmoid) function ``1 / (1 + e^-z)``, computed without overflow for any z
    (``e^-|z|`` is never larger than 1). A float for a scalar, an array for an array."""
    arr = np.asarray(z, dtype=np.float64)
    if np.any(np.isnan(arr)):
        raise ValueError("z contains NaN")
    e = np.exp(-np.abs(arr))
    out = np.where(arr >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return float(out) if out.ndim == 0 else out


def logistic_probability(weights: Numbers, bias: float, features: Numbers) -> float:
    """Probability of a logistic-regression model: ``logistic(weights · features + bias)``."""
    w = _as_vector(weights, "weights")
    f = _as_vector(features, "features")
    if w.size != f.size:
        raise ValueError(f"weights and features must have the same length, got {w.size} and {f.size}")
    if not math.isfinite(bias):
        raise ValueError("bias must be a finite number")
    return float(logistic(float(np.dot(w, f)) + bias))
