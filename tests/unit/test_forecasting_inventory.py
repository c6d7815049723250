"""Inventory planning: safety stock, reorder point, EOQ, stock-out risk, validation."""

from __future__ import annotations

import itertools
import math
from datetime import date

import numpy as np
import pytest
from scipy import stats as sps

from services.forecasting.core.forecast import Prediction
from services.forecasting.core.inventory import DAYS_OF_COVER_CAP, daily_std, forecast_demand, plan_inventory

Z95 = 1.6448536269514722


def test_hand_example():
    plan = plan_inventory(10.0, 3.0, on_hand=60, lead_time_days=4, unit_cost=20.0)
    # lead-time demand 4 x 10, sigma_L = 3 sqrt(4) = 6, safety stock z(0.95) 6
    assert plan.forecast_demand_lead_time == pytest.approx(40.0)
    assert plan.lead_time_demand_std == pytest.approx(6.0)
    assert plan.safety_stock == pytest.approx(Z95 * 6.0)
    assert plan.reorder_point == pytest.approx(40.0 + Z95 * 6.0)
    assert plan.reorder_now is False  # 60 > 49.87
    assert plan.days_of_cover == pytest.approx(6.0)
    # EOQ = sqrt(2 D S / H), D = 3650 a year, S = 50, H = 0.25 x 20 = 5 -> sqrt(73000) = 270.19 -> 271
    assert plan.eoq == pytest.approx(math.sqrt(2 * 3650 * 50 / 5))
    assert plan.order_quantity == 271
    assert plan.service_level == 0.95 and plan.lead_time_days == 4 and plan.unit_cost == 20.0
    assert plan.ordering_cost == 50.0 and plan.holding_cost_rate == 0.25 and plan.on_hand == 60


def test_reorder_now_compares_stock_with_reorder_point():
    low = plan_inventory(10.0, 3.0, on_hand=45, lead_time_days=4, unit_cost=20.0)
    high = plan_inventory(10.0, 3.0, on_hand=55, lead_time_days=4, unit_cost=20.0)
    assert low.reorder_point == pytest.approx(high.reorder_point)
    assert low.reorder_now is True and high.reorder_now is False


def test_reorder_point_rises_with_lead_time_and_service_level():
    by_lead = [
        plan_inventory(2.0, 1.5, on_hand=10, lead_time_days=lt, unit_cost=30.0).reorder_point
        for lt in (0, 0.5, 1, 3, 7, 7.5, 14, 30)
    ]
    assert all(a < b for a, b in itertools.pairwise(by_lead)), by_lead
    by_level = [
        plan_inventory(2.0, 1.5, on_hand=10, service_level=sl, unit_cost=30.0).reorder_point
        for sl in (0.5, 0.8, 0.9, 0.95, 0.99, 0.999)
    ]
    assert all(a < b for a, b in itertools.pairwise(by_level)), by_level
    assert by_level[0] == pytest.approx(14.0)  # z(0.5) = 0: no safety stock


def test_eoq_is_raised_to_cover_lead_time_demand():
    # EOQ = sqrt(2 x 36500 x 50 / 250) = 120.8, lead-time demand 7 x 100 = 700
    plan = plan_inventory(100.0, 20.0, on_hand=0, lead_time_days=7, unit_cost=1000.0)
    assert plan.eoq == pytest.approx(math.sqrt(2 * 36500 * 50 / 250))
    assert plan.order_quantity == 700
    # zero ordering cost: lot for lot (the lead-time demand)
    assert plan_inventory(3.0, 1.0, on_hand=0, ordering_cost=0.0, unit_cost=5.0).order_quantity == 21


def test_forecast_over_fractional_lead_time():
    plan = plan_inventory(
        9.0,
        9.0,
        on_hand=3,
        lead_time_days=2.5,
        unit_cost=10.0,
        forecast_daily=[1.0, 2.0, 3.0, 4.0],
        forecast_daily_std=[1.0, 1.0, 2.0, 2.0],
    )
    assert plan.forecast_demand_lead_time == pytest.approx(1.0 + 2.0 + 0.5 * 3.0)
    assert plan.lead_time_demand_std == pytest.approx(math.sqrt(1 + 1 + 0.5 * 4))
    # a forecast shorter than the lead time continues with the mean
    short = plan_inventory(5.0, 2.0, on_hand=3, lead_time_days=4, unit_cost=10.0, forecast_daily=[1.0, 1.0])
    assert short.forecast_demand_lead_time == pytest.approx(1 + 1 + 5 + 5)
    assert short.lead_time_demand_std == pytest.approx(math.sqrt(4 * 4.0))
    # fractional lead time without a forecast: mean x L, sigma sqrt(L)
    frac = plan_inventory(2.0, 1.0, on_hand=3, lead_time_days=6.5, unit_cost=10.0)
    assert frac.forecast_demand_lead_time == pytest.approx(13.0)
    assert frac.lead_time_demand_std == pytest.approx(math.sqrt(6.5))


def test_stockout_risk_laws():
    # over-dispersed sparse demand: negative binomial with the lead-time mean and variance
    plan = plan_inventory(0.2, 0.8, on_hand=2, lead_time_days=7, unit_cost=50.0)
    m, v = 1.4, 7 * 0.64
    expected = sps.nbinom.sf(2, m * m / (v - m), m / v)
    assert plan.risk_distribution == "negative_binomial"
    assert plan.stockout_risk == pytest.approx(expected)
    # variance = mean: Poisson
    pois = plan_inventory(1.0, 1.0, on_hand=10, lead_time_days=7, unit_cost=50.0)
    assert pois.risk_distribution == "poisson"
    assert pois.stockout_risk == pytest.approx(sps.poisson.sf(10, 7.0))
    # under-dispersed: normal with continuity correction
    norm = plan_inventory(50.0, 2.0, on_hand=360, lead_time_days=7, unit_cost=50.0)
    assert norm.risk_distribution == "normal"
    assert norm.stockout_risk == pytest.approx(sps.norm.sf((360.5 - 350) / math.sqrt(28)))
    # more stock, less risk
    risks = [plan_inventory(0.5, 1.0, on_hand=s, unit_cost=9.0).stockout_risk for s in (0, 1, 3, 6, 12)]
    assert all(a > b for a, b in itertools.pairwise(risks)) and 0 < risks[-1] < risks[0] <= 1


def test_risk_at_reorder_point_is_about_one_minus_service_level_for_dense_demand():
    plan = plan_inventory(200.0, 30.0, on_hand=0, lead_time_days=10, service_level=0.9, unit_cost=5.0)
    at_rop = plan_inventory(
        200.0, 30.0, on_hand=round(plan.reorder_point), lead_time_days=10, service_level=0.9, unit_cost=5.0
    )
    assert at_rop.stockout_risk == pytest.approx(0.1, abs=0.02)


def test_no_demand():
    plan = plan_inventory(0.0, 0.0, on_hand=5, unit_cost=10.0)
    assert plan.order_quantity == 0 and plan.stockout_risk == 0.0
    assert plan.days_of_cover == DAYS_OF_COVER_CAP and plan.reorder_now is False
    assert plan.reorder_point == 0.0 and plan.risk_distribution == "none"
    assert plan_inventory(0.0, 0.0, on_hand=0, unit_cost=10.0).days_of_cover == 0.0
    # tiny demand: cover capped
    assert plan_inventory(1e-7, 0.0, on_hand=5, unit_cost=10.0).days_of_cover == DAYS_OF_COVER_CAP


def test_zero_lead_time():
    plan = plan_inventory(4.0, 2.0, on_hand=0, lead_time_days=0, unit_cost=10.0)
    assert plan.forecast_demand_lead_time == 0 and plan.safety_stock == 0 and plan.reorder_point == 0
    assert plan.reorder_now is True and plan.stockout_risk == 0.0


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"service_level": 1.0}, "service_level"),
        ({"service_level": 0.0}, "service_level"),
        ({"service_level": 1.5}, "service_level"),
        ({"lead_time_days": -1}, "lead_time_days"),
        ({"ordering_cost": -5}, "ordering_cost"),
        ({"holding_cost_rate": 0.0}, "holding_cost_rate"),
        ({"holding_cost_rate": -0.1}, "holding_cost_rate"),
        ({"unit_cost": -1.0}, "unit_cost"),
        ({"unit_cost": 0.0}, "unit_cost"),
        ({"mean_daily_demand": -1.0}, "mean_daily_demand"),
        ({"daily_demand_std": float("nan")}, "daily_demand_std"),
        ({"on_hand": 2.5}, "on_hand"),
        ({"forecast_daily": [1.0, -2.0]}, r"forecast_daily\[1\]"),
        ({"forecast_daily": [1.0, 2.0], "forecast_daily_std": [1.0]}, "forecast_daily_std"),
    ],
)
def test_validation_names_the_field(kwargs, field):
    args = {"mean_daily_demand": 1.0, "daily_demand_std": 1.0, "on_hand": 3, "unit_cost": 10.0, **kwargs}
    with pytest.raises(ValueError, match=field):
        plan_inventory(**args)


def test_a_plan_starts_from_the_forecast_and_its_interval():
    z80 = sps.norm.ppf(0.9)
    p = Prediction(model="ets", dates=[date(2026, 1, 1), date(2026, 1, 2)], yhat=np.array([4.0, 2.0]),
                   lower=np.array([4.0 - 2 * z80, 2.0]), upper=np.array([4.0 + 2 * z80, 1.0]), level=0.8)
    forecast, std = forecast_demand(p, 28)
    assert forecast is p.yhat
    assert std == pytest.approx([2.0, 0.0]), "the interval's half width over z; never negative"
    assert daily_std(p) == pytest.approx(std)
    forecast, std = forecast_demand(None, 3)  # never sold: nothing to plan for
    assert forecast.tolist() == [0.0, 0.0, 0.0] and std.tolist() == [0.0, 0.0, 0.0]
