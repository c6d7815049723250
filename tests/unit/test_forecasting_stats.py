"""Statistics helpers of the forecasting service, checked against hand examples and numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.forecasting.core import stats


def test_linear_regression_seed_example():
    slope, intercept, r2 = stats.linear_regression([1, 2, 3, 4, 5], [2, 4, 5, 4, 5])
    assert slope == pytest.approx(0.6)
    assert intercept == pytest.approx(2.2)
    # SS_res = 2.4, SS_tot = 6.0
    assert r2 == pytest.approx(0.6)


def test_linear_regression_matches_polyfit_and_exact_line():
    rng = np.random.default_rng(0)
    x = rng.normal(50, 10, 200)
    y = 3.0 * x - 7.0 + rng.normal(0, 5, 200)
    slope, intercept, r2 = stats.linear_regression(x, y)
    ref_slope, ref_intercept = np.polyfit(x, y, 1)
    assert slope == pytest.approx(ref_slope, rel=1e-10)
    assert intercept == pytest.approx(ref_intercept, rel=1e-9)
    assert r2 == pytest.approx(np.corrcoef(x, y)[0, 1] ** 2, rel=1e-10)
    assert stats.linear_regression([0, 1, 2], [1, 3, 5]) == pytest.approx((2.0, 1.0, 1.0))
    # constant y: a flat, exact fit
    assert stats.linear_regression([1, 2, 3], [4, 4, 4]) == pytest.approx((0.0, 4.0, 1.0))


def test_mean_variance_std_match_numpy():
    rng = np.random.default_rng(1)
    values = rng.gamma(2.0, 3.0, 101)
    assert stats.mean(values) == pytest.approx(np.mean(values))
    assert stats.variance(values) == pytest.approx(np.var(values))
    assert stats.variance(values, ddof=1) == pytest.approx(np.var(values, ddof=1))
    assert stats.std(values) == pytest.approx(np.std(values))
    assert stats.std(values, ddof=1) == pytest.approx(np.std(values, ddof=1))
    assert stats.variance([2, 4, 4, 4, 5, 5, 7, 9]) == pytest.approx(4.0)
    assert stats.std([2, 4, 4, 4, 5, 5, 7, 9]) == pytest.approx(2.0)
    assert stats.variance([5.0]) == 0.0


def test_variance_is_accurate_with_a_large_offset():
    values = np.array([1e9 + 4, 1e9 + 7, 1e9 + 13, 1e9 + 16])
    assert stats.variance(values) == pytest.approx(np.var([4, 7, 13, 16]), rel=1e-9)


def test_correlation_matches_numpy():
    rng = np.random.default_rng(2)
    x = rng.normal(size=300)
    y = 0.4 * x + rng.normal(size=300)
    assert stats.correlation(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-12)
    assert stats.correlation([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert stats.correlation([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)


def test_logistic_is_stable_and_symmetric():
    assert stats.logistic(0.0) == 0.5
    assert stats.logistic(800.0) == 1.0
    assert stats.logistic(-800.0) == 0.0  # no OverflowError from exp(800)
    for z in (-30.0, -2.5, -0.1, 0.7, 4.0, 35.0):
        assert stats.logistic(z) == pytest.approx(1.0 / (1.0 + math.exp(-z)), rel=1e-12)
        assert stats.logistic(z) + stats.logistic(-z) == pytest.approx(1.0)
    arr = stats.logistic(np.array([-1000.0, 0.0, 1000.0]))
    assert isinstance(arr, np.ndarray) and arr.tolist() == [0.0, 0.5, 1.0]


def test_logistic_probability():
    p = stats.logistic_probability([0.5, -1.0], 0.25, [2.0, 1.0])
    assert p == pytest.approx(1.0 / (1.0 + math.exp(-0.25)))
    assert stats.logistic_probability([1000.0], 0.0, [-5.0]) == 0.0


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: stats.mean([]), "empty"),
        (lambda: stats.variance([]), "empty"),
        (lambda: stats.variance([1.0], ddof=1), "ddof"),
        (lambda: stats.variance([1.0, 2.0], ddof=-1), "ddof"),
        (lambda: stats.std([float("nan"), 1.0]), "NaN"),
        (lambda: stats.correlation([1, 2], [1, 2, 3]), "same length"),
        (lambda: stats.correlation([1, 1, 1], [1, 2, 3]), "zero variance"),
        (lambda: stats.correlation([1, 2, 3], [5, 5, 5]), "zero variance"),
        (lambda: stats.linear_regression([], []), "empty"),
        (lambda: stats.linear_regression([1, 2], [1]), "same length"),
        (lambda: stats.linear_regression([2, 2, 2], [1, 2, 3]), "zero variance"),
        (lambda: stats.logistic_probability([1.0, 2.0], 0.0, [1.0]), "same length"),
        (lambda: stats.logistic_probability([], 0.0, []), "empty"),
        (lambda: stats.logistic(float("nan")), "NaN"),
    ],
)
def test_bad_input_raises_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
