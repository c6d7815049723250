"""The forecasting service's pure plumbing: store aggregates -> daily history -> the core's series,
promotion days, training parameters, the price model's observations, the projection's commands."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pytest

from services.common.events import new_event
from services.common.projection import Ops
from services.forecasting.consumer import ForecastProjection
from services.forecasting.core.bundle import promo_flags, to_series
from services.forecasting.core.forecast import Prediction
from services.forecasting.core.inventory import daily_std
from services.forecasting.store import ForecastKeys as K
from services.forecasting.store import build_history
from services.forecasting.trainer import elasticity_data, parse_params


def test_history_spans_first_sale_to_the_last_day_with_zeros_between():
    h = build_history({"2026-01-02": "2", "2026-01-05": "1"}, {"2026-01-02": "200", "2026-01-05": "90"},
                      {"2026-01-03": "4"}, {"2026-01-03": "396"}, date(2026, 1, 6))
    assert h.start == date(2026, 1, 2) and h.end == date(2026, 1, 6)
    assert h.units.tolist() == [2, 0, 0, 1, 0]
    assert h.price[0] == 100 and h.price[3] == 90 and np.isnan(h.price[1])
    assert h.views.tolist() == [0, 4, 0, 0, 0] and h.seen_price[1] == 99 and np.isnan(h.seen_price[0])
    assert build_history({}, {}, {}, {}, date(2026, 1, 6)) is None
    assert build_history({"2026-02-01": "1"}, {}, {}, {}, date(2026, 1, 6)) is None  # sales after the end
    # A cancellation of a sale from before the window never makes a negative day.
    assert build_history({"2026-01-02": "-1"}, {}, {}, {}, date(2026, 1, 3)).units.tolist() == [0, 0]


def test_promotion_days_are_prices_paid_below_the_list_price():
    price = np.array([100, np.nan, 85, 99, 96])
    assert promo_flags(price, 100).tolist() == [0, 0, 1, 0, 1]
    assert promo_flags(price, None) is None and promo_flags(np.array([100.0]), 100) is None
    series = to_series(date(2026, 1, 1), np.array([1, 0, 3, 1, 2]), price, 100)
    assert series.freq == "D" and series.promo.tolist() == [0, 0, 1, 0, 1] and series.price is not None
    assert to_series(date(2026, 1, 1), np.array([1.0, 2.0])).price is None


def test_training_parameters_are_checked_before_the_job():
    assert parse_params({}) == {"horizon": 28, "folds": 3, "max_products": 0}
    assert parse_params({"horizon": "14", "folds": "2"})["horizon"] == 14
    for bad in ({"horizon": "0"}, {"folds": "11"}, {"horizon": "x"}, {"max_products": "-1"}, {"epochs": "3"}):
        with pytest.raises(ValueError):
            parse_params(bad)


def test_price_observations_are_days_with_views():
    h = build_history({"2026-01-01": "1", "2026-01-03": "2"}, {"2026-01-01": "50", "2026-01-03": "80"},
                      {"2026-01-01": "5", "2026-01-02": "3", "2026-01-03": "6"},
                      {"2026-01-01": "250", "2026-01-03": "240"}, date(2026, 1, 4))
    data = elasticity_data(h)
    # Day 2 had views but no price shown and no sale: nothing to learn the price from. Day 4: no views.
    assert data["price"].tolist() == [50, 40] and data["units"].tolist() == [1, 2]
    assert data["exposure"].tolist() == [5, 6] and data["day_of_week"].tolist() == [3, 5]
    assert data["month"].tolist() == [1, 1]


def test_interval_width_gives_the_daily_spread():
    p = Prediction(model="ets", dates=[date(2026, 1, 1)], yhat=np.array([10.0]), lower=np.array([10 - 1.2816]),
                   upper=np.array([10 + 1.2816]), level=0.8)
    assert daily_std(p)[0] == pytest.approx(1.0, rel=1e-3)


class _Redis:
    """Only what the projection reads while it builds commands: nothing is known yet."""

    def hget(self, *_):
        return None

    def hmget(self, _key, fields):
        return [None] * len(fields)


def test_an_order_becomes_daily_units_revenue_stock_and_an_order_record():
    projection = ForecastProjection(_Redis())
    ops = Ops()
    ops.batch_state["category"] = {"p1": "bags"}
    when = datetime(2026, 3, 4, 23, 30, tzinfo=UTC)
    projection.apply(new_event("order.created", {"order_id": "o1", "user_id": "u1", "total": 250.0, "currency": "CNY",
                                                 "lines": [{"product_id": "p1", "quantity": 2, "unit_price": 125.0}]},
                               occurred_at=when), ops)
    commands = [tuple(c) for c in ops.commands]
    assert ("HINCRBYFLOAT", K.units("p", "p1"), "2026-03-04", "2.0") in commands
    assert ("HINCRBYFLOAT", K.units("c", "bags"), "2026-03-04", "2.0") in commands
    assert ("HINCRBYFLOAT", K.revenue("p", "p1"), "2026-03-04", "250.0") in commands
    assert ("SADD", K.dirty, "p|p1") in commands and ("SADD", K.user_orders("u1"), "o1") in commands
    assert any(c[0] == "HSET" and c[1] == K.orders for c in commands)
    # The cancellation takes the units back from the day of the sale, even when cancelled later.
    cancel = Ops(ops.batch_state)
    projection.apply(new_event("order.cancelled", {"order_id": "o1", "user_id": "u1",
                                                   "lines": [{"product_id": "p1", "quantity": 2, "unit_price": 125.0}]},
                               occurred_at=datetime(2026, 3, 6, 8, tzinfo=UTC)), cancel)
    undo = [tuple(c) for c in cancel.commands]
    assert ("HINCRBYFLOAT", K.units("p", "p1"), "2026-03-04", "-2.0") in undo
    assert ("HDEL", K.orders, "o1") in undo
