"""The forecasting core: models, intervals, metrics, backtests, model choice and batches."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from services.forecasting.core import forecast as fc
from services.forecasting.core.forecast import (
    MODELS,
    BacktestScore,
    Series,
    backtest,
    candidates_for,
    choose_model,
    croston_rate,
    fit_predict,
    forecast_many,
    mase,
    smape,
)

START = date(2025, 1, 6)  # a Monday
WEEK = np.array([0.8, 0.7, 0.9, 1.0, 1.2, 1.6, 1.4])


def weekly(n: int, level: float = 40.0, slope: float = 0.0, noise: float = 2.0, seed: int = 0) -> np.ndarray:
    """Level + trend + an additive weekly season (weekend peak) + noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return np.maximum(0.0, level + slope * t + 40.0 * (WEEK[t % 7] - 1.0) + rng.normal(0.0, noise, n))


def intermittent(n: int, p: float = 0.25, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random(n) < p) * (1.0 + rng.poisson(2.0, n))


def check_valid(pred, horizon: int) -> None:
    assert len(pred.yhat) == len(pred.lower) == len(pred.upper) == len(pred.dates) == horizon
    for a in (pred.yhat, pred.lower, pred.upper):
        assert np.isfinite(a).all()
    assert (pred.lower >= 0).all()
    assert (pred.lower <= pred.yhat + 1e-9).all() and (pred.yhat <= pred.upper + 1e-9).all()


def test_series_periods_and_dates():
    d = Series(START, np.zeros(3))
    assert d.period == 7 and d.dates() == [date(2025, 1, 6), date(2025, 1, 7), date(2025, 1, 8)]
    assert d.future_dates(2) == [date(2025, 1, 9), date(2025, 1, 10)]
    m = Series(date(2024, 11, 17), np.zeros(3), "MS")  # normalised to the month's first day
    assert m.period == 12 and m.dates() == [date(2024, 11, 1), date(2024, 12, 1), date(2025, 1, 1)]
    q = Series(date(2024, 8, 1), np.zeros(2), "QS")
    assert q.period == 4 and q.dates() == [date(2024, 7, 1), date(2024, 10, 1)]
    assert q.future_dates(2) == [date(2025, 1, 1), date(2025, 4, 1)]
    with pytest.raises(ValueError, match="freq"):
        Series(START, np.zeros(3), "W")
    with pytest.raises(ValueError, match="price"):
        Series(START, np.zeros(3), price=np.ones(2))


def test_metrics():
    train = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    # seasonal naive in-sample MAE (lag 7) is 1, so MASE is the plain MAE
    assert mase(np.array([3.0, 5.0]), np.array([4.0, 4.0]), train, 7) == pytest.approx(1.0)
    # shorter than two periods: lag-1 naive MAE (= 1 here) scales instead
    assert fc.mase_scale(np.array([1.0, 2.0, 3.0]), 7) == pytest.approx(1.0)
    assert fc.mase_scale(np.zeros(20), 7) == 1.0  # zero scale guarded
    assert smape(np.array([100.0]), np.array([50.0])) == pytest.approx(2 * 50 / 150)
    assert smape(np.array([0.0, 1.0]), np.array([0.0, 0.0])) == pytest.approx(1.0)  # 0/0 counts 0, (2+0)/2
    assert smape(np.array([0.0]), np.array([3.0])) == pytest.approx(2.0)


def test_seasonal_naive_repeats_the_last_week():
    y = weekly(70)
    pred = fit_predict(Series(START, y), "seasonal_naive", 14)
    np.testing.assert_allclose(pred.yhat, np.tile(y[-7:], 2))
    assert pred.model == "seasonal_naive" and pred.dates[0] == date(2025, 3, 17)
    check_valid(pred, 14)
    width = pred.upper - pred.lower
    assert width[7:].mean() > width[:7].mean()  # the second week is less certain


@pytest.mark.parametrize("model", ["ets", "prophet"])
def test_ets_and_prophet_learn_a_weekly_season_with_trend(model):
    y = weekly(168, slope=0.15, seed=3)
    train = Series(START, y[:140])
    pred = fit_predict(train, model, 28, holidays_country=None)
    check_valid(pred, 28)
    assert pred.model == model
    assert mase(y[140:], pred.yhat, y[:140], 7) < 1.0
    naive = fit_predict(train, "seasonal_naive", 28)
    assert mase(y[140:], pred.yhat, y[:140], 7) < mase(y[140:], naive.yhat, y[:140], 7)


def test_prophet_uses_holidays_and_the_promo_regressor():
    rng = np.random.default_rng(5)
    n = 140
    promo = (rng.random(n) < 0.15).astype(float)
    y = weekly(n, noise=1.0, seed=5) + 30.0 * promo
    future_promo = np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0], dtype=float)
    pred = fit_predict(Series(START, y, promo=promo), "prophet", 14, future_promo=future_promo,
                       holidays_country="CN")
    check_valid(pred, 14)
    lift = pred.yhat[future_promo == 1].mean() - pred.yhat[future_promo == 0].mean()
    assert 15.0 < lift < 45.0


@pytest.mark.parametrize("model", ["seasonal_naive", "ets", "mean"])
def test_intervals_cover_about_the_level(model):
    rng = np.random.default_rng(11)
    n, h = 400, 56
    y = 50.0 + 5.0 * WEEK[np.arange(n) % 7] + rng.normal(0.0, 6.0, n)
    pred = fit_predict(Series(START, y[:-h]), model, h, level=0.8)
    covered = float(np.mean((y[-h:] >= pred.lower) & (y[-h:] <= pred.upper)))
    assert 0.6 <= covered <= 0.97, covered


def test_croston_rate_and_interval():
    y = np.tile([0.0, 0.0, 3.0], 40)  # a demand of 3 every third period
    rate, size, gap = croston_rate(y)
    assert (size, gap) == pytest.approx((3.0, 3.0))
    assert rate == pytest.approx((1 - fc.CROSTON_ALPHA / 2) * 1.0)  # SBA: 0.95 units per period
    y = intermittent(900, p=0.25)
    pred = fit_predict(Series(START, y), "croston", 7)
    check_valid(pred, 7)
    assert pred.yhat[0] == pytest.approx(0.25 * 3.0, rel=0.25)
    assert pred.lower[0] == 0.0 and pred.upper[0] >= 2.0
    future = intermittent(300, p=0.25, seed=9)
    wide = fit_predict(Series(START, y), "croston", 300)
    covered = float(np.mean((future >= wide.lower) & (future <= wide.upper)))
    assert 0.7 <= covered <= 0.97, covered
    with pytest.raises(fc.NoDemand, match="no demand in the 30 periods"):  # no silent zero forecast
        fit_predict(Series(START, np.zeros(30)), "croston", 3)


@pytest.mark.parametrize("model", MODELS)
def test_every_model_gives_a_valid_prediction(model):
    for y in (weekly(60, seed=7), intermittent(60, seed=8)):
        pred = fit_predict(Series(START, y), model, 10, holidays_country=None)
        check_valid(pred, 10)
        assert pred.level == 0.8


def test_short_series_fall_back_and_empty_ones_raise():
    with pytest.raises(ValueError, match="empty"):
        fit_predict(Series(START, np.array([])), "mean", 3)
    for model in ("ets", "prophet", "seasonal_naive", "croston", "mean"):
        pred = fit_predict(Series(START, np.array([4.0])), model, 3)
        check_valid(pred, 3)
        if model != "croston":
            assert pred.model == "mean" if model in ("ets", "prophet", "mean") else "seasonal_naive"
            np.testing.assert_allclose(pred.yhat, 4.0)
    assert candidates_for(Series(START, np.array([4.0]))) == ("mean",)
    with pytest.raises(ValueError, match="NaN"):
        fit_predict(Series(START, np.array([1.0, np.nan, 2.0])), "mean", 3)
    with pytest.raises(ValueError, match="unknown model"):
        fit_predict(Series(START, np.ones(5)), "arima", 3)


def test_backtest_rolls_origins_and_reports_too_short_history():
    y = weekly(120)
    score = backtest(Series(START, y), "seasonal_naive", 14, folds=3)
    assert score.folds == 3 and score.horizon == 14
    # by hand: the three last 14-day windows forecast by the week before each origin
    manual = []
    for origin in (120 - 42, 120 - 28, 120 - 14):
        f = np.tile(y[origin - 7:origin], 2)
        manual.append(mase(y[origin:origin + 14], f, y[:origin], 7))
    assert score.mase == pytest.approx(np.mean(manual))
    short = backtest(Series(START, y[:20]), "ets", 14, folds=3)
    assert short.folds == 0 and np.isnan(short.mase)


def test_candidates_depend_on_the_series():
    assert "croston" in candidates_for(Series(START, intermittent(200, p=0.1)))
    assert "prophet" not in candidates_for(Series(START, intermittent(200, p=0.1)))
    assert "prophet" in candidates_for(Series(START, weekly(60)))
    assert candidates_for(Series(START, weekly(10))) == ("seasonal_naive", "mean")


def test_choose_model_prefers_a_trend_model_on_a_trending_series():
    y = np.arange(100, dtype=float) * 2.0 + 10.0 + np.random.default_rng(2).normal(0, 1.0, 100)
    best, scores = choose_model(Series(START, y), 14, folds=3)
    assert best not in ("seasonal_naive", "mean")
    assert set(scores) == set(candidates_for(Series(START, y)))
    assert scores[best].mase < scores["seasonal_naive"].mase
    assert all(isinstance(s, BacktestScore) and s.folds == 3 for s in scores.values())


def test_choose_model_keeps_the_default_unless_clearly_beaten():
    y = intermittent(300, p=0.3, seed=4)
    best, scores = choose_model(Series(START, y), 28, candidates=("croston", "mean"), margin=1.0)
    assert best == "croston"  # nothing beats the default by 100 %
    best, _ = choose_model(Series(START, y), 28, candidates=("croston", "mean"), margin=0.0)
    assert best == min(("croston", "mean"), key=lambda m: scores[m].rmsse)


def test_forecast_many_in_parallel_isolates_a_bad_item():
    items = {f"d{i}": Series(START, weekly(42, seed=i)) for i in range(5)}
    items.update({f"i{i}": Series(START, intermittent(42, seed=i)) for i in range(5)})
    items["bad"] = Series(START, np.array([1.0, np.nan, 3.0] * 10))
    calls = []
    out = forecast_many(items, 7, select=True, n_jobs=2, progress=lambda d, t: calls.append((d, t)),
                        holidays_country=None)
    assert list(out) == list(items)
    assert out["bad"].prediction is None and "NaN" in out["bad"].error
    for key in items:
        if key != "bad":
            o = out[key]
            assert o.error is None and o.model in o.scores and o.backtest == o.scores[o.model]
            check_valid(o.prediction, 7)
    assert calls[-1] == (len(items), len(items)) and len(calls) > 1
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    # The refresh: only the chosen model is fitted, no backtest; same numbers in one process.
    chosen = {k: o.model for k, o in out.items() if o.error is None}
    again = forecast_many({k: items[k] for k in chosen}, 7, chosen=chosen, n_jobs=1, holidays_country=None)
    for key, o in again.items():
        assert o.model == chosen[key] and o.backtest is None and o.scores is None
        np.testing.assert_allclose(o.prediction.yhat, out[key].prediction.yhat)


def test_a_model_failing_in_the_backtest_is_skipped_not_fatal(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(fc, "_ets", broken)
    best, scores = choose_model(Series(START, weekly(60)), 7, candidates=("seasonal_naive", "ets", "ets+prophet"))
    assert best == "seasonal_naive"
    assert scores["ets"].folds == 0 and scores["ets+prophet"].folds == 0 and scores["seasonal_naive"].folds == 3
