"""The forecasting service's pure plumbing: store aggregates -> daily history -> the core's series,
promotion days, training parameters, the price model's observations, the projection's commands, the
refresher's reorder alert, request checks and replies."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from protos import forecasting_pb2 as pb
from services.common import topics
from services.common.events import new_event
from services.common.projection import Ops
from services.forecasting import converters
from services.forecasting.consumer import ForecastProjection
from services.forecasting.core import behaviour as bh
from services.forecasting.core.bundle import promo_flags, to_series
from services.forecasting.core.forecast import Outcome, Prediction, backtest_many
from services.forecasting.core.inventory import daily_std, plan_inventory
from services.forecasting.refresher import Refresher
from services.forecasting.store import ForecastKeys as K
from services.forecasting.store import build_history
from services.forecasting.trainer import FOLDS, HORIZON, elasticity_data, gate_figures, parse_params


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
    assert parse_params({}) == {"horizon": 28, "folds": 6, "max_products": 0}
    assert parse_params({"horizon": "14", "folds": "2"})["horizon"] == 14
    for bad in ({"horizon": "0"}, {"folds": "11"}, {"horizon": "x"}, {"max_products": "-1"}, {"epochs": "3"}):
        with pytest.raises(ValueError):
            parse_params(bad)


def test_the_gate_scores_both_models_of_each_series_on_the_same_folds():
    rng = np.random.default_rng(0)
    days = 7 * 30
    weekly = np.tile([3.0, 3, 3, 3, 3, 7, 8], days // 7) + rng.integers(-1, 2, days)
    items = {"p|a": to_series(date(2026, 1, 1), weekly), "p|b": to_series(date(2026, 1, 1), weekly[::-1].copy())}
    cheap = ("seasonal_naive", "mean")

    def selected(horizon: int, folds: int) -> dict[str, Outcome]:
        out = {}
        for key, series in items.items():
            scores = backtest_many(series, cheap, horizon, folds, None)
            best = min(cheap, key=lambda m: scores[m].mase)
            out[key] = Outcome(best, None, scores[best], None, scores)
        return out

    def on_gate_folds(key: str, model: str) -> float:
        return backtest_many(items[key], [model], HORIZON, FOLDS, None)[model].mase

    options = {"horizon": HORIZON, "folds": FOLDS, "max_products": 0}
    outcomes = selected(HORIZON, FOLDS)
    chosen = {k: o.model for k, o in outcomes.items()}
    new, same = gate_figures(items, outcomes, chosen, chosen, options, None)
    assert new == same == pytest.approx(np.mean([outcomes[k].backtest.mase for k in items]))
    # A serving model with another choice is backtested on the same folds.
    other = {"p|a": "recent_mean", "p|b": "mean"}
    new, serving = gate_figures(items, outcomes, chosen, other, options, None)
    assert serving == pytest.approx(np.mean([on_gate_folds(k, m) for k, m in other.items()]))
    assert new == pytest.approx(same)
    # Another horizon or fold count for the job: the gate still measures on its own folds.
    short = selected(7, 1)
    mine = {k: o.model for k, o in short.items()}
    new, serving = gate_figures(items, short, mine, chosen, {**options, "horizon": 7, "folds": 1}, None)
    assert serving == pytest.approx(same)
    assert new == pytest.approx(np.mean([on_gate_folds(k, m) for k, m in mine.items()]))
    assert gate_figures({}, {}, {}, chosen, options, None) == (None, None)


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
    # The order stays as a tombstone: RFM and customer value skip it, a second cancellation counts nothing.
    assert cancel.batch_state["orders"]["o1"]["cancelled"] is True
    assert any(c[0] == "HSET" and c[1] == K.orders and c[2] == "o1" for c in undo)


class _AlertStore:
    """A product at its reorder point, as the refresher's stock check reads it."""

    def __init__(self) -> None:
        self.redis = self
        self.alerted: dict[str, float] = {}

    def product(self, pid):
        return {"title": "Tote", "price": "100"}

    def hget(self, _key, pid):
        return self.alerted.get(pid)

    def hset(self, _key, pid, value):
        self.alerted[pid] = value

    def hdel(self, _key, pid):
        self.alerted.pop(pid, None)


class _PlanningForecaster:
    def __init__(self, store, reorder_now: bool) -> None:
        self.store = store
        self.reorder_now = reorder_now

    def plan(self, pid, details):
        plan = plan_inventory(2.0, 1.0, 5 if self.reorder_now else 500, unit_cost=40.0)
        return plan, plan.on_hand, 40.0


def test_a_stock_at_the_reorder_point_raises_one_alert_in_the_common_envelope():
    store = _AlertStore()
    sent = []
    refresher = Refresher(_PlanningForecaster(store, True), lambda *a: sent.append(a), 5.0, 1)
    refresher.check_stock("p1")
    refresher.check_stock("p1")  # still below: no second alert
    assert len(sent) == 1
    topic, key, record = sent[0]
    assert (topic, key) == (topics.ALERTS, "p1")
    assert set(record) == {"event_id", "type", "schema_version", "occurred_at", "source", "payload"}
    assert (record["type"], record["source"], record["schema_version"]) == ("alert.reorder_needed", "forecasting", 1)
    assert datetime.fromisoformat(record["occurred_at"]).tzinfo is not None and record["occurred_at"].endswith("Z")
    assert record["payload"]["product_id"] == "p1" and record["payload"]["on_hand"] == 5
    assert record["payload"]["title"] == "Tote" and record["payload"]["order_quantity"] >= 1
    refresher.forecaster.reorder_now = False  # restocked: the next crossing alerts again
    refresher.check_stock("p1")
    assert store.alerted == {} and len(sent) == 1


def test_purchase_times_travel_in_whole_seconds():
    first = datetime(2026, 3, 1, 9, 30, 15, 750000, tzinfo=UTC)
    profile = bh.UserProfile(
        pseudonymous_id="u_1", rfm=None, segment="new", repeat_purchase_probability=0.5,
        predicted_customer_value=10.0, orders=2, total_spend=30.0, average_order_value=15.0,
        first_purchase_at=first, last_purchase_at=first + timedelta(days=2), avg_days_between_purchases=2.0,
        event_counts={"purchase": 2}, cart_to_purchase_rate=1.0, favourite_categories=["bags"])
    reply = converters.profile_response(profile, "CNY")
    assert (reply.first_purchase_at.seconds, reply.first_purchase_at.nanos) == (int(first.timestamp()), 0)
    assert reply.last_purchase_at.seconds - reply.first_purchase_at.seconds == 2 * 86400
    assert reply.currency == "CNY" and not reply.HasField("rfm")


def test_forecast_requests_are_checked_before_any_work():
    assert converters.forecast_options(pb.ForecastRequest(product_id="p1")) == (28, 0.8, 90)
    for bad, reason in ((pb.ForecastRequest(horizon_days=400), "horizon_days"),
                        (pb.ForecastRequest(interval_level=1.0), "interval_level"),
                        (pb.ForecastRequest(history_days=-2), "history_days")):
        with pytest.raises(ValueError, match=reason):
            converters.forecast_options(bad)
    with pytest.raises(ValueError, match="after to_date"):
        converters.funnel_range(pb.FunnelRequest(from_date="2026-02-01", to_date="2026-01-01"))
    assert converters.cohort_options(pb.CohortsRequest(period=pb.COHORT_PERIOD_WEEK, to_date="2026-01-31"))[:3] == (
        "week", 12, None)
