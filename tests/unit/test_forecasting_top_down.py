"""Top-down forecasts for the sparse tail (issue #22 item 6): the share, the forecast, its backtest and
choice, and the service's path (the forecaster reads the category's kept forecast; the refresher keeps
categories before their products)."""

from __future__ import annotations

from datetime import date, timedelta
from types import SimpleNamespace

import numpy as np
import pytest

from services.forecasting.core import top_down
from services.forecasting.core.bundle import ForecastingModel
from services.forecasting.core.forecast import (
    Prediction,
    Series,
    backtest_many,
    fold_forecasts,
    fold_origins,
)
from services.forecasting.forecaster import Forecaster
from services.forecasting.refresher import Refresher
from services.forecasting.store import build_history

START = date(2025, 1, 1)
DAYS = 365


def _category(days: int = DAYS, seed: int = 1) -> np.ndarray:
    """A dense category: a weekly shape and a promotion week every two months, ~20 units a day."""
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    rate = 20 * (1 + 0.3 * np.sin(2 * np.pi * t / 7)) * np.where((t % 61) < 7, 4.0, 1.0)
    return rng.poisson(rate).astype(float)


def _thin(category: np.ndarray, p: float, seed: int) -> np.ndarray:
    """A product that takes each of its category's sales with probability p (its share): sparse, yet with
    its category's peaks."""
    return np.random.default_rng(seed).binomial(category.astype(int), p).astype(float)


def test_the_share_is_the_recent_part_of_the_categorys_units():
    category = np.full(400, 10.0)
    product = np.zeros(400)
    product[-91:] = 1.0  # 91 of the last 910 units
    assert top_down.share(product, category) == pytest.approx(0.1)
    old = np.zeros(400)
    old[-200] = 5.0  # nothing in the last 91 days: the last 365 count
    assert top_down.share(old, category) == pytest.approx(5 / 3650)
    assert top_down.share(np.zeros(400), category) == 0.0
    assert top_down.share(product, np.zeros(400)) == 0.0
    assert top_down.share(category * 2, category) == 1.0  # never more than the whole category


def test_the_forecast_is_the_share_of_the_categorys_with_poisson_wide_bounds():
    category = Series(START, _category())
    product = Series(START, _thin(category.y, 0.05, 2))
    dates = category.future_dates(28)
    yhat = np.linspace(20, 80, 28)
    prediction = Prediction("prophet", dates, yhat, yhat * 0.8, yhat * 1.2, 0.8)
    out = top_down.predict(product, category, prediction, 0.8)
    s = top_down.share(product.y, category.y)
    assert out.model == top_down.TOP_DOWN and out.dates == dates
    np.testing.assert_allclose(out.yhat, s * yhat)
    assert (out.lower <= out.yhat).all() and (out.upper >= out.yhat).all() and (out.lower >= 0).all()
    assert (out.upper >= s * yhat * 1.2).all() and (out.upper > out.yhat + 0.5).all()  # a product's noise
    # a forecast that does not start where the product's history ends is not used
    shifted = Prediction("prophet", category.future_dates(29)[1:], yhat, yhat, yhat, 0.8)
    assert top_down.predict(product, category, shifted, 0.8) is None
    # no sale in the last year: no share to give
    longer = Series(START, _category(500))
    silent = np.zeros(500)
    silent[:3] = 1.0
    late = Prediction("prophet", longer.future_dates(28), yhat, yhat, yhat, 0.8)
    assert top_down.predict(Series(START, silent), longer, late, 0.8) is None


def test_fold_forecasts_are_the_backtests_folds_keyed_from_the_end():
    series = Series(START, _category())
    folds = fold_forecasts(series, "seasonal_naive", 28, 3)
    origins = fold_origins(series, 28, 3)
    assert sorted(folds) == sorted(len(series.y) - o for o in origins) == [28, 56, 84]
    y = series.y
    mae = np.mean([np.mean(np.abs(y[len(y) - back:len(y) - back + 28] - f)) for back, f in folds.items()])
    assert mae == pytest.approx(backtest_many(series, ["seasonal_naive"], 28, 3)["seasonal_naive"].mae)


def test_top_down_wins_where_the_category_shows_what_the_product_cannot():
    cy = _category()
    category = Series(START, cy)
    follower = Series(START, _thin(cy, 0.03, 3))  # ~0.6 units a day, its category's peaks included
    flat_y = np.zeros(DAYS)
    flat_y[::9] = 2.0  # a product that sells on a schedule of its own: no peak, no weekly shape
    flat = Series(START, flat_y)
    # The category's folds forecast by an oracle of its shape (its true rate): what a good category model gives.
    t = np.arange(DAYS)
    rate = 20 * (1 + 0.3 * np.sin(2 * np.pi * t / 7)) * np.where((t % 61) < 7, 4.0, 1.0)
    folds = {DAYS - o: rate[o:o + 28] for o in fold_origins(follower, 28, 6)}
    own = {k: backtest_many(s, ["croston"], 28, 6)["croston"] for k, s in (("p|a", follower), ("p|b", flat))}
    products = {"p|a": follower, "p|b": flat}
    won = top_down.choose(products, own, {"p|a": "c|x", "p|b": "c|x"}, {"c|x": category}, {"c|x": folds}, 28, 6)
    assert set(won) == {"p|a"}
    assert won["p|a"].folds == own["p|a"].folds == 6 and won["p|a"].rmsse < 0.9 * own["p|a"].rmsse
    # without a backtest of its own model a product keeps it; a dense product is not the sparse tail
    assert top_down.choose(products, {}, {"p|a": "c|x"}, {"c|x": category}, {"c|x": folds}, 28, 6) == {}
    assert top_down.choose({"c|x": category}, {"c|x": own["p|a"]}, {"c|x": "c|x"}, {"c|x": category},
                           {"c|x": folds}, 28, 6) == {}


def test_categories_are_refreshed_before_their_products():
    assert top_down.order_for_refresh(["p|b", "c|z", "p|a", "c|a"]) == ["c|a", "c|z", "p|a", "p|b"]


# -- the service's path -----------------------------------------------------------------------------------

class _Redis:
    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, str]] = {}

    def hmget(self, key, fields):
        return [self.hashes.get(key, {}).get(f) for f in fields]

    def hset(self, key, field, value):
        self.hashes.setdefault(key, {})[field] = value

    def expire(self, key, seconds):
        pass

    def delete(self, key):
        self.hashes.pop(key, None)

    def pipeline(self, transaction=True):
        return _Pipe(self)


class _Pipe:
    def __init__(self, redis):
        self.redis, self.calls = redis, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __getattr__(self, name):
        return lambda *a: self.calls.append((name, a))

    def execute(self):
        return [getattr(self.redis, name)(*a) for name, a in self.calls]


class _Store:
    """Daily units of products and categories, and product details, as the forecaster reads them."""

    def __init__(self, units: dict[tuple[str, str], np.ndarray], details: dict[str, dict]) -> None:
        self.redis = _Redis()
        self.units, self.details = units, details
        self.end = START + timedelta(days=DAYS - 1)

    def history(self, kind, target, end=None, start=None):
        y = self.units.get((kind, target))
        if y is None:
            return None
        sold = {(START + timedelta(days=i)).isoformat(): str(v) for i, v in enumerate(y) if v}
        return build_history(sold, {}, {}, {}, end or self.end, start)

    def product(self, pid):
        return self.details.get(pid, {})


def _forecaster(chosen: dict[str, str], details: dict[str, dict]):
    cy = _category()
    units = {("c", "bags"): cy, ("p", "tote"): _thin(cy, 0.04, 5), ("p", "loner"): _thin(cy, 0.04, 6)}
    store = _Store(units, details)
    holder = SimpleNamespace(model=ForecastingModel("v1", store.end, chosen=chosen), version="v1")
    return Forecaster(store, holder, None), store


def test_a_top_down_product_is_its_share_of_the_categorys_kept_forecast():
    forecaster, store = _forecaster({"p|tote": "top_down", "c|bags": "seasonal_naive", "p|loner": "top_down"},
                                    {"tote": {"category": "bags"}, "loner": {}})
    _, prediction = forecaster.predict("p", "tote", 28, 0.8)
    _, category = forecaster.kept("c", "bags", 28, 0.8)  # the category's forecast was fitted and kept
    assert prediction.model == "top_down" and category is not None and category.model == "seasonal_naive"
    s = top_down.share(store.units[("p", "tote")], store.units[("c", "bags")])
    np.testing.assert_allclose(prediction.yhat, s * category.yhat)
    _, again = forecaster.kept("p", "tote", 28, 0.8)
    np.testing.assert_allclose(again.yhat, prediction.yhat)
    # a product without a category: its own default model (intermittent: croston), under the chosen name
    _, alone = forecaster.predict("p", "loner", 28, 0.8)
    assert alone.model == "croston"
    assert forecaster.kept("p", "loner", 28, 0.8)[1] is not None


def test_the_refresher_keeps_a_top_down_product_after_its_category():
    forecaster, store = _forecaster({"p|tote": "top_down", "c|bags": "seasonal_naive"},
                                    {"tote": {"category": "bags"}})
    refresher = Refresher(forecaster, lambda *a: None, 5.0, 1)
    refresher.reforecast(["p|tote", "c|bags"])
    _, product = forecaster.kept("p", "tote", 28, 0.8)
    _, category = forecaster.kept("c", "bags", 28, 0.8)
    assert product.model == "top_down" and category.model == "seasonal_naive"
    s = top_down.share(store.units[("p", "tote")], store.units[("c", "bags")])
    np.testing.assert_allclose(product.yhat, s * category.yhat)


def test_the_training_job_gives_top_down_to_the_products_it_suits():
    from services.forecasting.core.forecast import forecast_many
    from services.forecasting.trainer import ForecastTrainer

    t = np.arange(DAYS)
    rng = np.random.default_rng(4)
    category = rng.poisson(np.where(t % 7 >= 5, 800.0, 10.0)).astype(float)  # weekends sell 80x weekdays
    # ~0.8 a weekend day, ~0.01 a weekday: 83 % of days without a sale, so croston or the mean, which
    # cannot see the week, against top-down, which lends it the category's
    follower = _thin(category, 0.001, 7)
    flat = np.zeros(DAYS)
    flat[::9] = 2.0
    items = {"p|a": Series(START, follower), "p|b": Series(START, flat), "c|x": Series(START, category)}
    outcomes = forecast_many(items, 28, select=True, n_jobs=1, folds=6, holidays_country=None)
    chosen = {k: o.model for k, o in outcomes.items()}
    trainer = ForecastTrainer.__new__(ForecastTrainer)
    trainer.holidays_country = None
    won = trainer._top_down(items, outcomes, chosen, {"a": {"category": "x"}, "b": {"category": "x"},
                                                       "c": {}}, {"horizon": 28, "folds": 6})
    assert set(won) == {"p|a"}, (chosen, won)
