"""Models that follow a moving level and the daily model choice against the baselines (issue #19): no
Redis, no timings."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from services.forecasting.core import forecast as fc
from services.forecasting.core.forecast import Series, candidates_for, choose_model, fit_predict
from services.forecasting.core.level_models import RECENT_MEAN_PERIODS

START = date(2025, 1, 6)  # a Monday
WEEK = np.array([3.0, 3.0, 3.0, 4.0, 5.0, 8.0, 8.0])


def weekly(days: int, level, noise: float = 0.5, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.broadcast_to(np.asarray(level, dtype=float), (days,))
    return np.maximum(base * np.resize(WEEK, days) / WEEK.mean() + rng.normal(0, noise, days), 0.0)


def check_valid(p, horizon: int) -> None:
    assert len(p.yhat) == horizon and len(p.dates) == horizon
    assert np.isfinite(p.yhat).all() and (p.yhat >= 0).all()
    assert (p.lower <= p.yhat).all() and (p.yhat <= p.upper).all() and (p.lower >= 0).all()


def test_recent_mean_is_the_mean_of_the_last_28_days():
    y = np.concatenate([np.full(100, 50.0), np.arange(28, dtype=float)])
    p = fit_predict(Series(START, y), "recent_mean", 10)
    assert RECENT_MEAN_PERIODS["D"] == 28
    assert p.model == "recent_mean" and p.yhat == pytest.approx(np.full(10, 13.5))
    check_valid(p, 10)


@pytest.mark.parametrize("model", ["theta", "stl_ets", "recent_mean"])
def test_level_models_follow_a_level_that_moved(model):
    """The level drops from 20 to 8 a day for the last ten weeks: the models forecast near 8, not the
    long-run mean (about 14)."""
    level = np.concatenate([np.full(200, 20.0), np.full(70, 8.0)])
    p = fit_predict(Series(START, weekly(270, level)), model, 28)
    assert p.model == model
    check_valid(p, 28)
    assert 6.0 <= float(np.mean(p.yhat)) <= 10.5, float(np.mean(p.yhat))


@pytest.mark.parametrize("model", ["theta", "stl_ets", "recent_mean"])
@pytest.mark.parametrize("days", [1, 5, 9, 15])
def test_very_short_series_fall_back_to_a_simpler_model(model, days):
    p = fit_predict(Series(START, np.arange(1.0, days + 1.0)), model, 7)
    check_valid(p, 7)
    if days < 14:
        assert p.model in ("seasonal_naive", "mean", "recent_mean")
    assert float(np.mean(p.yhat)) > 0


@pytest.mark.parametrize("model", ["theta", "stl_ets", "recent_mean", "ets", "seasonal_naive"])
def test_long_zero_runs_inside_dense_demand(model):
    """A shop closed for three weeks twice (zeros) between busy weeks: a valid, positive forecast."""
    y = weekly(200, 10.0)
    y[60:81] = 0.0
    y[150:171] = 0.0
    p = fit_predict(Series(START, y), model, 14)
    check_valid(p, 14)
    assert float(np.mean(p.yhat)) > 1.0


def test_a_history_without_demand_is_refused_with_the_reason():
    for model in fc.BASE_MODELS:
        with pytest.raises(fc.NoDemand, match="no demand in the 60 periods"):
            fit_predict(Series(START, np.zeros(60)), model, 7)
    with pytest.raises(ValueError, match="no demand"):  # cancellations netted below zero
        fit_predict(Series(START, -np.ones(20)), "recent_mean", 7)


def test_a_long_zero_run_at_the_end_is_croston_not_zero():
    """Sold on about a third of the days, then nothing for 60 days: intermittent, so Croston or the
    mean is chosen, and the forecast is a positive rate, never a silent zero."""
    rng = np.random.default_rng(4)
    y = np.concatenate([(rng.random(200) < 0.35) * rng.integers(1, 4, 200), np.zeros(60)]).astype(float)
    series = Series(START, y)
    assert fc.is_intermittent(series.y) and "theta" not in candidates_for(series)
    model, _ = choose_model(series, 28, folds=2)
    assert model in ("croston", "mean", "ets")
    p = fit_predict(series, model, 28)
    check_valid(p, 28)
    assert float(np.mean(p.yhat)) > 0.0


def test_backtest_folds_before_the_first_sale_forecast_zero():
    y = np.concatenate([np.zeros(120), weekly(60, 10.0)])
    scores = fc.backtest_many(Series(START, y), ("recent_mean", "theta"), 28, folds=5)
    assert all(s.folds == 5 and np.isfinite(s.mase) for s in scores.values())


def test_daily_candidates_include_the_baselines_and_the_level_models():
    cands = candidates_for(Series(START, weekly(120, 10.0)))
    assert cands == fc.DAILY_CANDIDATES
    assert {"seasonal_naive", "recent_mean", "theta", "ets", "prophet"} <= set(cands)
    monthly = candidates_for(Series(date(2020, 1, 1), weekly(60, 10.0), "MS"))
    assert "theta" not in monthly  # monthly choice unchanged (bench_forecasting "series")


def test_daily_choice_keeps_the_better_baseline_unless_clearly_beaten():
    # A stable weekly pattern: the last week repeated is hard to beat by more than 5 %.
    y = np.tile(WEEK * 3, 30)
    series = Series(START, y + np.resize([0.0, 0.2], len(y)))
    model, scores = choose_model(series, 28, folds=3, candidates=("seasonal_naive", "recent_mean", "theta"),
                                 baseline_margin=0.05)
    assert model == "seasonal_naive", {m: s.mase for m, s in scores.items()}
    # A level that moved: the baseline anchor is beaten clearly, so a level model is chosen.
    level = np.linspace(5.0, 40.0, 240)
    series = Series(START, weekly(240, level, noise=0.3))
    model, scores = choose_model(series, 28, folds=3, candidates=("seasonal_naive", "recent_mean", "theta"))
    assert model == "theta", {m: s.mase for m, s in scores.items()}
    # With a margin nothing can beat, the better baseline stays.
    model, scores = choose_model(series, 28, folds=3, candidates=("seasonal_naive", "recent_mean", "theta"),
                                 baseline_margin=1.0)
    assert model == min(("seasonal_naive", "recent_mean"), key=lambda m: scores[m].mase)


def test_daily_choice_without_a_margin_is_the_plain_backtest_minimum():
    level = np.linspace(5.0, 40.0, 240)
    series = Series(START, weekly(240, level, noise=0.3))
    cands = ("seasonal_naive", "recent_mean", "theta", "ets", "ets+theta")
    model, scores = choose_model(series, 28, folds=3, candidates=cands)
    assert fc.DAILY_BASELINE_MARGIN == 0.0
    assert model == min(cands, key=lambda m: (scores[m].mase, cands.index(m)))


def test_daily_candidates_include_equal_weight_combinations():
    assert {"ets+theta", "recent_mean+ets", "recent_mean+ets+theta", "ets+prophet+theta"} <= set(fc.DAILY_CANDIDATES)
    assert all(part in fc.BASE_MODELS for m in fc.DAILY_CANDIDATES for part in m.split("+"))


def test_one_year_of_daily_history_does_not_make_prophet_the_default():
    """One year shows the yearly season once: ETS is the default until a year and a half (PROPHET_DEFAULT_DAYS)."""
    assert fc.default_model(Series(START, weekly(400, 10.0))) == "ets"
    assert fc.default_model(Series(START, weekly(fc.PROPHET_DEFAULT_DAYS, 10.0))) == "prophet"


def test_prophet_is_kept_with_a_year_and_a_half_of_daily_history_when_close_to_the_best():
    """From a year and a half of history Prophet is the default (yearly season, holidays, promotions): kept when
    within ``margin`` of the best backtest, the baseline rule applies otherwise."""
    series = Series(START, weekly(fc.PROPHET_DEFAULT_DAYS + 10, 10.0))
    assert fc.default_model(series) == "prophet"
    cands = ("seasonal_naive", "recent_mean", "prophet")
    model, _ = choose_model(series, 28, folds=2, candidates=cands, margin=1.0, baseline_margin=1.0)
    assert model == "prophet"
    model, scores = choose_model(series, 28, folds=2, candidates=cands, margin=0.0, baseline_margin=1.0)
    best = min(cands, key=lambda m: scores[m].mase)
    assert model == (best if best == "prophet" else min(cands[:2], key=lambda m: scores[m].mase))


def test_versus_baselines_summarises_the_choice_against_the_better_baseline():
    def score(m: float) -> fc.BacktestScore:
        return fc.BacktestScore(m, 0.1, 1.0, 28, 3)

    outcomes = {
        "a": fc.Outcome("theta", None, None, None, {"seasonal_naive": score(1.0), "recent_mean": score(0.8),
                                                     "theta": score(0.6)}),
        "b": fc.Outcome("recent_mean", None, None, None, {"seasonal_naive": score(1.0), "recent_mean": score(0.5)}),
        "c": fc.Outcome("croston", None, None, None, {"croston": score(0.9), "mean": score(1.0)}),  # intermittent
        "d": fc.Outcome("", None, None, "NoDemand: no demand", None),
    }
    summary = fc.versus_baselines(outcomes)
    assert summary["series_vs_baselines"] == 2
    assert summary["median_backtest_mase_vs_better_baseline"] == pytest.approx((0.75 + 1.0) / 2)
    assert summary["share_beating_better_baseline"] == 0.5
    assert np.isnan(fc.versus_baselines({})["share_beating_better_baseline"])
