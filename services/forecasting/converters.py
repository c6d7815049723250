"""Requests' fields in (checked: ValueError with the reason, which the servicer answers as
INVALID_ARGUMENT), the core's results out as the Forecasting service's proto messages."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

from google.protobuf import struct_pb2

from protos import forecasting_pb2 as pb
from services.common.grpc_server import timestamp
from services.forecasting.core import behaviour, inventory, pricing
from services.forecasting.core.alerts import ACKNOWLEDGED, OPEN, AlertRecord
from services.forecasting.core.bundle import ForecastingModel
from services.forecasting.core.forecast import Prediction
from services.forecasting.forecaster import DEFAULT_HORIZON, DEFAULT_LEVEL
from services.forecasting.store import DailyHistory

DEFAULT_HISTORY = 90
COHORT_PERIODS = {pb.COHORT_PERIOD_DAY: "day", pb.COHORT_PERIOD_WEEK: "week"}  # anything else: "month"


def parse_day(text: str, field: str, default: date) -> date:
    """A request's day ``YYYY-MM-DD`` (``default`` when empty); ValueError naming ``field``."""
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{field} must be a date YYYY-MM-DD, got {text!r}") from None


def _today() -> date:
    return datetime.now(UTC).date()


def forecast_options(request: pb.ForecastRequest) -> tuple[int, float, int]:
    """(horizon days, interval level, history days) of a forecast request, defaults filled in."""
    horizon = request.horizon_days or DEFAULT_HORIZON
    level = request.interval_level if request.HasField("interval_level") else DEFAULT_LEVEL
    history_days = request.history_days or DEFAULT_HISTORY
    if not 1 <= horizon <= 365:
        raise ValueError(f"horizon_days must be 1..365, got {horizon}")
    if not 0 < level < 1:
        raise ValueError(f"interval_level must be in (0, 1), got {level}")
    if history_days < -1 or history_days > 3660:
        raise ValueError("history_days must be -1 (none), 0 (90) or 1..3660")
    return horizon, level, history_days


def plan_options(request: pb.InventoryPlanRequest) -> tuple[float, float, float, float]:
    """(service level, lead time, ordering cost, holding cost rate): the request's, or the defaults."""
    opt = {name: getattr(request, name) for name in ("service_level", "lead_time_days", "ordering_cost",
                                                      "holding_cost_rate") if request.HasField(name)}
    return (opt.get("service_level", 0.95), opt.get("lead_time_days", 7.0), opt.get("ordering_cost", 50.0),
            opt.get("holding_cost_rate", 0.25))


def price_options(request: pb.PriceRecommendationRequest) -> dict:
    """The objective and bounds of a price recommendation (``recommend_price``'s keywords)."""
    return {"objective": "profit" if request.objective == pb.OBJECTIVE_PROFIT else "revenue",
            "min_margin": request.min_margin if request.HasField("min_margin") else 0.0,
            "max_change": request.max_change if request.HasField("max_change") else 0.2}


def segments_as_of(request: pb.SegmentsRequest) -> date:
    as_of = parse_day(request.as_of, "as_of", _today())
    if not 0 <= request.sample_size <= 100:
        raise ValueError("sample_size must be 0..100")
    return as_of


def funnel_range(request: pb.FunnelRequest) -> tuple[date, date]:
    """(first, last) day of a funnel: the last 30 days by default, at most 366."""
    last = parse_day(request.to_date, "to_date", _today())
    first = parse_day(request.from_date, "from_date", last - timedelta(days=30))
    if first > last:
        raise ValueError(f"from_date {first} is after to_date {last}")
    if (last - first).days > 366:
        raise ValueError("the range may cover at most 366 days")
    return first, last


def cohort_options(request: pb.CohortsRequest) -> tuple[str, int, date | None, date]:
    """(period, max periods, first day or None, last day) of a cohorts request."""
    period = COHORT_PERIODS.get(request.period, "month")
    max_periods = request.max_periods or 12
    if not 1 <= max_periods <= 52:
        raise ValueError("max_periods must be 1..52")
    last = parse_day(request.to_date, "to_date", _today())
    first = parse_day(request.from_date, "from_date", date.min) if request.from_date else None
    return period, max_periods, first, last


def finite(x: float | None) -> float:
    """0 for a missing or non-finite number (proto3 JSON has no NaN)."""
    return float(x) if x is not None and math.isfinite(x) else 0.0


def forecast_response(kind: str, target: str, prediction: Prediction, model_version: str) -> pb.ForecastResponse:
    response = pb.ForecastResponse(
        points=[pb.ForecastPoint(date=d.isoformat(), yhat=float(y), yhat_lower=float(lo), yhat_upper=float(hi))
                for d, y, lo, hi in zip(prediction.dates, prediction.yhat, prediction.lower, prediction.upper,
                                        strict=True)],
        model=prediction.model, model_version=model_version, interval_level=prediction.level)
    if kind == "p":
        response.product_id = target
    else:
        response.category = target
    return response


def add_history(response: pb.ForecastResponse, h: DailyHistory, history_days: int) -> None:
    """The last ``history_days`` days of sales before the forecast."""
    units = h.units[-history_days:]
    first = h.end - timedelta(days=len(units) - 1)
    response.history.extend(pb.HistoryPoint(date=(first + timedelta(days=i)).isoformat(), y=float(v))
                            for i, v in enumerate(units))


def add_backtest(response: pb.ForecastResponse, model: ForecastingModel | None, key: str, chosen: str) -> None:
    """The backtest scores of the target's model, when the forecast used the model they were measured on."""
    score = model.backtests.get(key) if model is not None else None
    if score is not None and model.chosen.get(key) == chosen:
        response.backtest.CopyFrom(pb.Backtest(mase=finite(score.mase), smape=finite(score.smape),
                                               mae=finite(score.mae), horizon=score.horizon, folds=score.folds))


def inventory_response(pid: str, plan: inventory.InventoryPlan, on_hand: int, unit_cost: float,
                       currency: str) -> pb.InventoryPlanResponse:
    return pb.InventoryPlanResponse(
        product_id=pid, on_hand=on_hand, safety_stock=plan.safety_stock,
        reorder_point=plan.reorder_point, order_quantity=int(plan.order_quantity),
        stockout_risk=plan.stockout_risk, days_of_cover=plan.days_of_cover,
        forecast_demand_lead_time=plan.forecast_demand_lead_time, service_level=plan.service_level,
        lead_time_days=plan.lead_time_days, reorder_now=plan.reorder_now,
        mean_daily_demand=plan.mean_daily_demand, daily_demand_std=plan.daily_demand_std,
        ordering_cost=plan.ordering_cost, holding_cost_rate=plan.holding_cost_rate, unit_cost=unit_cost,
        currency=currency)


def price_response(pid: str, currency: str, current: float, chosen: pricing.Elasticity,
                   advice: pricing.PriceAdvice, unit_cost: float, note: str) -> pb.PriceRecommendationResponse:
    return pb.PriceRecommendationResponse(
        product_id=pid, currency=currency,
        objective=pb.OBJECTIVE_PROFIT if advice.objective == "profit" else pb.OBJECTIVE_REVENUE,
        current_price=current, recommended_price=advice.recommended_price, elasticity=chosen.elasticity,
        elasticity_ci_low=finite(chosen.ci_low), elasticity_ci_high=finite(chosen.ci_high),
        r_squared=finite(chosen.r_squared), observations=int(chosen.observations),
        expected_demand_current=advice.expected_demand_current,
        expected_demand_recommended=advice.expected_demand_recommended,
        expected_revenue_current=advice.expected_revenue_current,
        expected_revenue_recommended=advice.expected_revenue_recommended,
        expected_profit_current=advice.expected_profit_current,
        expected_profit_recommended=advice.expected_profit_recommended,
        lower_bound=advice.lower_bound, upper_bound=advice.upper_bound, unit_cost=unit_cost, note=note)


def segments_response(report: behaviour.SegmentReport, currency: str, as_of: date) -> pb.SegmentsResponse:
    return pb.SegmentsResponse(
        segments=[pb.Segment(name=s.name, description=s.description, customers=s.customers,
                             customer_share=s.customer_share, revenue=s.revenue, revenue_share=s.revenue_share,
                             avg_recency_days=s.avg_recency_days, avg_frequency=s.avg_frequency,
                             avg_monetary=s.avg_monetary, sample_user_ids=s.sample_user_ids)
                  for s in report.segments],
        total_customers=report.total_customers, total_revenue=report.total_revenue, currency=currency,
        as_of=as_of.isoformat())


def funnel_response(report: behaviour.FunnelReport, counts: dict[tuple[str, str], int], category: str | None,
                    first: date, last: date) -> pb.FunnelResponse:
    """The funnel's answer. The store keeps one row per user, action, category and day: event counts come
    from its counters (``counts`` per action and category)."""

    def steps(items: list[behaviour.FunnelStep], category: str | None) -> list[pb.FunnelStep]:
        return [pb.FunnelStep(name=st.name, users=st.users,
                              events=sum(n for (a, c), n in counts.items()
                                         if a == st.name and (category is None or c == category)),
                              conversion=st.conversion, conversion_from_start=st.conversion_from_start)
                for st in items]

    return pb.FunnelResponse(
        steps=steps(report.steps, category),
        categories=[pb.CategoryFunnel(category=c.category, steps=steps(c.steps, c.category))
                    for c in report.categories],
        from_date=first.isoformat(), to_date=last.isoformat())


def cohorts_response(report: behaviour.CohortReport) -> pb.CohortsResponse:
    return pb.CohortsResponse(
        period={"day": pb.COHORT_PERIOD_DAY, "week": pb.COHORT_PERIOD_WEEK}.get(report.period,
                                                                               pb.COHORT_PERIOD_MONTH),
        cohorts=[pb.Cohort(cohort=c.cohort.isoformat(), size=c.size, retention=c.retention, active=c.active)
                 for c in report.cohorts])


def profile_response(profile: behaviour.UserProfile, currency: str) -> pb.UserProfileResponse:
    """Purchase times in whole seconds (as the service always sent them)."""
    reply = pb.UserProfileResponse(
        pseudonymous_id=profile.pseudonymous_id, segment=profile.segment,
        repeat_purchase_probability=profile.repeat_purchase_probability,
        predicted_customer_value=profile.predicted_customer_value, currency=currency,
        orders=profile.orders, total_spend=profile.total_spend, average_order_value=profile.average_order_value,
        avg_days_between_purchases=profile.avg_days_between_purchases, event_counts=profile.event_counts,
        cart_to_purchase_rate=profile.cart_to_purchase_rate, favourite_categories=profile.favourite_categories)
    if profile.rfm is not None:
        r = profile.rfm
        reply.rfm.CopyFrom(pb.Rfm(recency_days=r.recency_days, frequency=r.frequency, monetary=r.monetary,
                                  r_score=r.r_score, f_score=r.f_score, m_score=r.m_score))
    for name, when in (("first_purchase_at", profile.first_purchase_at),
                       ("last_purchase_at", profile.last_purchase_at)):
        stamp = timestamp(int(when.timestamp())) if when is not None else None
        if stamp is not None:
            getattr(reply, name).CopyFrom(stamp)
    return reply


# ---------------------------------------------------------------- alerts

ALERT_STATES = {pb.ALERT_STATE_OPEN: OPEN, pb.ALERT_STATE_ACKNOWLEDGED: ACKNOWLEDGED}


def alert_filter(request: pb.ListAlertsRequest) -> tuple[str, str, int, str]:
    """(state, type, limit, before) of a listing: "" for any state or type; ValueError when out of range."""
    if request.state not in (pb.ALERT_STATE_UNSPECIFIED, *ALERT_STATES):
        raise ValueError(f"state must be open or acknowledged, not {request.state}")
    limit = request.limit or 50
    if not 1 <= limit <= 500:
        raise ValueError(f"limit must be 1..500, got {request.limit}")
    if request.type and not request.type.startswith("alert."):
        raise ValueError(f"type must be an alert type such as alert.reorder_needed, not {request.type!r}")
    return ALERT_STATES.get(request.state, ""), request.type, limit, request.before


def _instant(text: str) -> float | None:
    return datetime.fromisoformat(text).timestamp() if text else None


def alert_message(record: AlertRecord) -> pb.Alert:
    payload = struct_pb2.Struct()
    payload.update(record.payload)
    return pb.Alert(
        alert_id=record.alert_id, type=record.type, occurred_at=timestamp(record.at), source=record.source,
        subject=record.subject, payload=payload,
        state=pb.ALERT_STATE_ACKNOWLEDGED if record.state == ACKNOWLEDGED else pb.ALERT_STATE_OPEN,
        acknowledged_at=timestamp(_instant(record.acknowledged_at)), acknowledged_by=record.acknowledged_by,
        acknowledged_role=record.acknowledged_role,
    )
