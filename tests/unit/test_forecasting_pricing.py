"""Price elasticity estimation and price recommendations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.forecasting.core.pricing import (
    NO_ESTIMATE,
    Elasticity,
    category_prior,
    choose_elasticity,
    estimate_elasticity,
    pool_elasticity,
    pooled_elasticity,
    price_levels,
    recommend_price,
    shrink_elasticities,
)

TRUE_E = -1.8
WEEKLY = np.array([0.9, 0.85, 0.9, 0.95, 1.05, 1.3, 1.2])


def _synthetic(seed: int, days: int = 730, views_per_day: float = 150.0, conversion: float = 0.05):
    """Daily views with weekly seasonality, list-price steps and short discounts, Poisson units with a
    known constant elasticity; conversion per view also has a weekly pattern."""
    rng = np.random.default_rng(seed)
    d = np.arange(days)
    dow = d % 7
    month = (d // 30) % 12 + 1
    steps = rng.choice([85.0, 95.0, 100.0, 105.0, 115.0, 125.0], days // 45 + 1)
    price = np.repeat(steps, 45)[:days]
    promo = (d % 90) < 5
    price = np.where(promo, np.round(price * 0.8, 2), price)
    views = rng.poisson(views_per_day * WEEKLY[dow] * (1 + 0.3 * promo))
    conv_dow = np.array([1.0, 1.0, 1.0, 1.0, 1.05, 1.15, 1.1])
    rate = views * conversion * conv_dow[dow] * (price / 100.0) ** TRUE_E
    units = rng.poisson(rate)
    return price, units, views, dow, month, promo.astype(float)


def test_elasticity_recovered_from_synthetic_poisson_data():
    price, units, views, dow, month, promo = _synthetic(0)
    est = estimate_elasticity(price, units, views, day_of_week=dow)
    assert isinstance(est, Elasticity) and est.method == "poisson"
    assert est.elasticity == pytest.approx(TRUE_E, abs=0.2)
    assert est.ci_low < TRUE_E < est.ci_high
    assert est.ci_low < est.elasticity < est.ci_high
    assert est.enough_variation and est.price_levels >= 5 and est.observations == 730
    assert est.units == units.sum() and 0 < est.r_squared < 1
    # with month dummies too, and without exposure (traffic seasonality then needs the controls)
    cal = estimate_elasticity(price, units, views, day_of_week=dow, month=month)
    assert cal.elasticity == pytest.approx(TRUE_E, abs=0.25)
    # promotion days bring traffic and discounts together: without exposure the promo flag is needed
    no_exposure = estimate_elasticity(price, units, day_of_week=dow, month=month, promo=promo)
    assert no_exposure.elasticity == pytest.approx(TRUE_E, abs=0.3)


def test_confidence_interval_coverage():
    covered = 0
    for seed in range(30):
        price, units, views, dow, *_ = _synthetic(100 + seed, days=365, views_per_day=60)
        est = estimate_elasticity(price, units, views, day_of_week=dow)
        covered += est.ci_low <= TRUE_E <= est.ci_high
    assert covered >= 25  # nominal 95 %: 28.5 of 30


def test_sparse_counts_poisson_beats_naive_log_log():
    """Most days sell nothing: dropping the zero days (log-log OLS) biases the slope toward 0, the
    Poisson GLM does not."""
    pois, naive = [], []
    for seed in range(20):
        price, units, views, *_ = _synthetic(1000 + seed, views_per_day=10.0, conversion=0.04)
        assert (units == 0).mean() > 0.5
        p = estimate_elasticity(price, units, views)
        n = estimate_elasticity(price, units, method="ols")
        assert n.method == "ols" and n.observations == int((units > 0).sum())
        assert abs(p.elasticity - TRUE_E) < 3 * p.std_error  # one product: SE ~0.4
        pois.append(p.elasticity)
        naive.append(n.elasticity)
    assert np.mean(pois) == pytest.approx(TRUE_E, abs=0.25)  # unbiased on average
    assert np.mean(naive) > -1.0  # attenuated toward 0


def test_promo_flag_and_zero_exposure_rows():
    price, units, views, _dow, _month, promo = _synthetic(3)
    views = views.copy()
    views[:10] = 0
    units = units.copy()
    units[:10] = 0
    units[0] = 2  # a sale without recorded exposure
    est = estimate_elasticity(price, units, views, promo=promo)
    assert est.observations == 720
    assert "zero exposure" in est.note
    assert est.elasticity == pytest.approx(TRUE_E, abs=0.35)


def test_out_of_stock_days_are_dropped():
    price, units, views, *_ = _synthetic(4)
    promo = price < 85.0  # discounted days
    censored = np.where(promo, np.minimum(units, 2), units)  # promotions sold out after 2 units
    biased = estimate_elasticity(price, censored, views)
    clean = estimate_elasticity(price, censored, views, in_stock=~promo)
    assert clean.observations == int((~promo).sum())
    assert abs(clean.elasticity - TRUE_E) < 0.3 < abs(biased.elasticity - TRUE_E)


def test_no_price_variation_is_reported_not_raised():
    units = np.random.default_rng(0).poisson(2.0, 100)
    est = estimate_elasticity(np.full(100, 59.0), units)
    assert math.isnan(est.elasticity) and not est.enough_variation
    assert "too few price changes" in est.note
    # one price change lasting 3 days: estimable but not enough variation
    price = np.full(100, 59.0)
    price[40:43] = 49.0
    few = estimate_elasticity(price, units)
    assert not few.enough_variation and few.price_levels == 2 and "too few price changes" in few.note
    # no sales at all
    nothing = estimate_elasticity(np.repeat([50.0, 60.0], 50), np.zeros(100))
    assert math.isnan(nothing.elasticity) and "no sales" in nothing.note


def test_price_levels_group_near_equal_prices():
    levels = price_levels(np.array([100.0, 100.3, 99.9, 90.0, 120.0, 120.0]))
    assert levels.tolist() == [1, 1, 1, 0, 2, 2]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"price": [], "units": []}, "empty"),
        ({"price": [10.0, 0.0], "units": [1, 2]}, "price"),
        ({"price": [10.0, 12.0], "units": [1]}, "units"),
        ({"price": [10.0, 12.0], "units": [1, -1]}, "units"),
        ({"price": [10.0, 12.0], "units": [1, 1], "exposure": [1, -3]}, "exposure"),
        ({"price": [10.0, 12.0], "units": [1, 1], "day_of_week": [0, 7]}, "day_of_week"),
        ({"price": [10.0, 12.0], "units": [1, 1], "month": [0, 1]}, "month"),
        ({"price": [10.0, 12.0], "units": [1, 1], "promo": [0, 2]}, "promo"),
        ({"price": [10.0, 12.0], "units": [1, 1], "method": "magic"}, "method"),
        ({"price": [10.0, float("nan")], "units": [1, 1]}, "price"),
        ({"price": [10.0, 12.0], "units": [1, 1], "in_stock": [True]}, "in_stock"),
    ],
)
def test_estimate_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        estimate_elasticity(**kwargs)


def _est(e: float, se: float, enough: bool = True) -> Elasticity:
    return Elasticity(e, e - 1.96 * se, e + 1.96 * se, se, 0.3, 300, 500.0, 4, 0.1, enough, "poisson")


def test_pool_elasticity():
    cat = pool_elasticity(_est(float("nan"), float("nan"), enough=False), -1.4, 0.5)
    assert cat.elasticity == -1.4 and cat.method == "category"
    assert cat.note == "too few price changes: category elasticity used"
    precise = pool_elasticity(_est(-2.2, 0.05), -1.4, 0.5)
    noisy = pool_elasticity(_est(-2.2, 1.0), -1.4, 0.5)
    assert -2.2 < precise.elasticity < noisy.elasticity < -1.4  # noisy estimates move more
    assert precise.elasticity == pytest.approx((-2.2 / 0.05**2 - 1.4 / 0.25) / (1 / 0.05**2 + 1 / 0.25))
    assert precise.method == "shrunk" and "shrunk" in precise.note
    assert precise.std_error < 0.05


def test_shrink_elasticities_toward_category():
    ests = [_est(e, 0.4) for e in (-0.5, -1.0, -1.5, -2.0, -2.5, -3.5)] + [_est(float("nan"), 1, False)]
    mean, spread = category_prior(ests)
    assert -2.0 < mean < -1.5 and spread >= 0.25
    shrunk = shrink_elasticities(ests)
    for before, after in zip(ests[:-1], shrunk[:-1]):
        assert abs(after.elasticity - mean) < abs(before.elasticity - mean)
    assert shrunk[-1].elasticity == pytest.approx(mean) and shrunk[-1].method == "category"
    # a pooled category estimate sets the prior mean; too few reliable products: the default spread
    pooled = _est(-1.2, 0.1)
    assert category_prior(ests[:3], pooled) == (pytest.approx(-1.2), pytest.approx(0.5))
    with pytest.raises(ValueError):
        category_prior([_est(float("nan"), 1, False)])


def test_pooled_elasticity_matches_fixed_effects_poisson():
    """Common slope with one intercept per product, checked against the statsmodels GLM with dummies;
    products' different popularity and price levels do not leak into the slope."""
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(11)
    ids, prices, units, views, truths = [], [], [], [], []
    for i in range(12):
        e = rng.uniform(-2.5, -0.5)
        level = rng.uniform(20, 500)  # expensive and cheap products
        popularity = rng.lognormal(0, 1)
        price = level * np.repeat(rng.choice([0.8, 0.9, 1.0, 1.1, 1.25], 13), 30)[:365]
        v = rng.poisson(30, 365) + 1
        ids += [f"p{i}"] * 365
        prices.append(price)
        views.append(v)
        units.append(rng.poisson(v * 0.03 * popularity * (price / level) ** e))
        truths.append(e)
    price, unit, view = np.concatenate(prices), np.concatenate(units), np.concatenate(views)
    pooled = pooled_elasticity(ids, price, unit, view)
    X = np.column_stack([(np.array(ids) == f"p{i}").astype(float) for i in range(12)] + [np.log(price)])
    ref = sm.GLM(unit, X, family=sm.families.Poisson(), offset=np.log(view)).fit()
    assert pooled.elasticity == pytest.approx(ref.params[-1], abs=1e-6)
    assert pooled.method == "pooled" and pooled.enough_variation and pooled.observations == 12 * 365
    assert pooled.ci_low < np.mean(truths) < pooled.ci_high
    # the cluster-robust error covers the spread of the products' elasticities (wider than the model's)
    assert pooled.std_error > ref.bse[-1]
    # out-of-stock rows dropped
    stocked = np.ones(price.size, dtype=bool)
    stocked[:100] = False
    assert pooled_elasticity(ids, price, unit, view, in_stock=stocked).observations == 12 * 365 - 100


def _profit(p: float, p0: float, c: float, e: float) -> float:
    return (p - c) * (p / p0) ** e


def test_profit_optimum_matches_closed_form_inside_bounds():
    advice = recommend_price(100.0, 60.0, -3.0, base_demand=12.0, objective="profit", max_change=0.3)
    star = 60.0 * -3.0 / (1 - 3.0)  # 90
    assert advice.recommended_price == pytest.approx(star)
    assert advice.lower_bound == 70.0 and advice.upper_bound == 130.0 and advice.feasible
    grid = np.linspace(advice.lower_bound, advice.upper_bound, 6001)
    assert star == pytest.approx(grid[np.argmax([_profit(p, 100, 60, -3) for p in grid])], abs=0.02)
    assert advice.expected_profit_recommended > advice.expected_profit_current
    assert advice.expected_demand_recommended == pytest.approx(12.0 * 0.9**-3.0)
    assert advice.expected_revenue_recommended == pytest.approx(90.0 * 12.0 * 0.9**-3.0)
    assert advice.expected_profit_current == pytest.approx(40.0 * 12.0)


def test_profit_optimum_is_clipped_and_inelastic_goes_up():
    low = recommend_price(100.0, 30.0, -2.0, 5.0, objective="profit")  # p* = 60 < 80
    assert low.recommended_price == low.lower_bound == 80.0 and "clipped" in low.note
    inelastic = recommend_price(100.0, 30.0, -0.7, 5.0, objective="profit")
    assert inelastic.recommended_price == inelastic.upper_bound == 120.0


def test_revenue_objective_moves_toward_the_better_bound():
    up = recommend_price(100.0, 40.0, -0.6, 10.0, objective="revenue")
    down = recommend_price(100.0, 40.0, -2.4, 10.0, objective="revenue")
    flat = recommend_price(100.0, 40.0, -1.0, 10.0, objective="revenue")
    assert up.recommended_price == 120.0 and up.expected_revenue_recommended > up.expected_revenue_current
    assert down.recommended_price == 80.0
    assert down.expected_revenue_recommended > down.expected_revenue_current
    assert flat.recommended_price == 100.0
    assert flat.expected_revenue_recommended == pytest.approx(flat.expected_revenue_current)


def test_bounds_are_respected_and_rounded_to_cents():
    rng = np.random.default_rng(5)
    for _ in range(300):
        p0 = float(np.round(rng.uniform(1, 2000), 2))
        cost = float(rng.uniform(0, 1.1) * p0)
        e = float(rng.uniform(-4, 0.5))
        margin = float(rng.uniform(0, 0.6))
        change = float(rng.uniform(0.01, 1.0))
        obj = "profit" if rng.random() < 0.5 else "revenue"
        a = recommend_price(p0, cost, e, 3.0, objective=obj, min_margin=margin, max_change=change)
        assert a.lower_bound <= a.recommended_price <= a.upper_bound
        assert a.upper_bound <= p0 * (1 + change) + 1e-9
        assert round(a.recommended_price, 2) == a.recommended_price
        if a.feasible:
            assert a.lower_bound >= p0 * (1 - change) - 1e-9
            assert a.recommended_price * (1 - margin) >= cost - 1e-6  # the margin holds
        else:
            assert a.recommended_price == a.upper_bound and "infeasible" in a.note


def test_min_margin_raises_the_lower_bound_and_infeasible_is_flagged():
    a = recommend_price(100.0, 70.0, -4.0, 5.0, objective="revenue", min_margin=0.2)
    assert a.lower_bound == 87.5 and a.recommended_price == 87.5 and a.margin_floor == 87.5
    bad = recommend_price(100.0, 90.0, -3.0, 5.0, objective="profit", min_margin=0.3)
    assert not bad.feasible and bad.recommended_price == 120.0 and "infeasible" in bad.note
    assert bad.margin_floor == pytest.approx(128.58)


def test_unknown_cost_profit_equals_revenue():
    a = recommend_price(50.0, 0.0, -0.5, 4.0, objective="profit")
    assert a.recommended_price == 60.0 and a.expected_profit_recommended == a.expected_revenue_recommended


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"current_price": 0.0}, "current_price"),
        ({"current_price": -5.0}, "current_price"),
        ({"unit_cost": -1.0}, "unit_cost"),
        ({"elasticity": float("nan")}, "elasticity"),
        ({"base_demand": -1.0}, "base_demand"),
        ({"objective": "volume"}, "objective"),
        ({"min_margin": 1.0}, "min_margin"),
        ({"min_margin": -0.1}, "min_margin"),
        ({"max_change": 0.0}, "max_change"),
        ({"max_change": 1.5}, "max_change"),
    ],
)
def test_recommend_validation_names_the_field(kwargs, field):
    args = {"current_price": 100.0, "unit_cost": 40.0, "elasticity": -1.5, "base_demand": 3.0, **kwargs}
    with pytest.raises(ValueError, match=field):
        recommend_price(**args)


def test_the_elasticity_a_recommendation_uses():
    own = Elasticity(-2.0, -2.4, -1.6, 0.2, 0.5, 200, 300.0, 3, 0.1, True, "poisson")
    noisy = Elasticity(-0.5, -3.0, 2.0, 1.3, 0.1, 30, 20.0, 2, 0.01, False, "poisson")
    assert choose_elasticity(own, None) is own, "a usable own estimate without a category prior"
    assert choose_elasticity(noisy, None) is None and choose_elasticity(None, None) is None
    assert choose_elasticity(own, (-1.5, 0.5)) == pool_elasticity(own, -1.5, 0.5)
    # No estimate of its own: the category's value, as for a product that never changed its price.
    category = choose_elasticity(None, (-1.5, 0.5))
    assert category == pool_elasticity(NO_ESTIMATE, -1.5, 0.5)
    assert (category.elasticity, category.method, category.observations) == (-1.5, "category", 0)
