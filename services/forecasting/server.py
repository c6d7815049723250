"""Forecasting gRPC servicer: demand forecasts, inventory plans, price advice and behaviour analytics.

The numbers come from ``core`` (pure); this module reads the daily aggregates the projection keeps
in Redis, caches forecasts, and translates. Three workers run beside the server: the consumer, the
refresher (re-forecasts what new sales moved and raises reorder alerts) and the scheduler (trains
on its own once sales exist, then as they grow).
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import grpc
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp
from scipy.stats import norm

from protos import common_pb2
from protos import forecasting_pb2 as pb
from protos import forecasting_pb2_grpc as pb_grpc
from services.common import topics
from services.common.bus import EventConsumer, LazyEnvelopePublisher
from services.common.cache import connect
from services.common.grpc_server import ServiceRunner, bootstrap, run
from services.common.jobs import JobRunner, TrainingScheduler, get_job_rpc, train_rpc
from services.common.keyfile import persistent_secret
from services.common.logging import get_logger
from services.common.models import ModelHolder, ModelRegistry, model_event, retrain_due
from services.common.settings import Settings, load_settings
from services.forecasting.consumer import ForecastProjection
from services.forecasting.core import behaviour, inventory, pricing
from services.forecasting.core.bundle import ForecastingModel, target_key, to_series
from services.forecasting.core.forecast import Prediction, default_model, fit_predict, forecast_many
from services.forecasting.store import ForecastKeys as K
from services.forecasting.store import ForecastStore
from services.forecasting.trainer import ForecastTrainer, parse_params

log = get_logger(__name__)
DEFAULT_HORIZON = 28
DEFAULT_LEVEL = 0.8
DEFAULT_HISTORY = 90
REFRESH_BATCH = 500
FORECAST_CACHE_SECONDS = 24 * 3600
# A product never seen at two prices: only its category can speak for it.
NO_ESTIMATE = pricing.Elasticity(elasticity=math.nan, ci_low=math.nan, ci_high=math.nan, std_error=math.nan,
                                 r_squared=math.nan, observations=0, units=0.0, price_levels=0, log_price_std=0.0,
                                 enough_variation=False, method="none")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ts(seconds: float) -> Timestamp:
    t = Timestamp()
    t.FromSeconds(int(seconds))
    return t


def _day(text: str, field: str, default: date) -> date:
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{field} must be a date YYYY-MM-DD, got {text!r}") from None


class Forecaster:
    """Forecasts of one target from its newest history with the model chosen for it, cached in
    Redis until the target's sales move (the refresher drops the cache) or the model changes."""

    def __init__(self, store: ForecastStore, holder: ModelHolder[ForecastingModel], holidays_country: str | None):
        self.store = store
        self.holder = holder
        self.holidays_country = holidays_country or None

    def model_for(self, kind: str, target: str, series) -> str:
        model = self.holder.model
        chosen = model.chosen.get(target_key(kind, target)) if model is not None else None
        return chosen or default_model(series)

    def series(self, kind: str, target: str):
        h = self.store.history(kind, target)
        if h is None:
            return None, None
        list_price = None
        if kind == "p":
            try:
                list_price = float(self.store.product(target).get("price") or 0) or None
            except ValueError:
                list_price = None
        return h, to_series(h.start, h.units, h.price if kind == "p" else None, list_price)

    def predict(self, kind: str, target: str, horizon: int, level: float):
        """(history, Prediction) or (None, None) without any sale."""
        h, series = self.series(kind, target)
        if h is None:
            return None, None
        name = self.model_for(kind, target, series)
        field = f"{self.holder.version}:{h.end.isoformat()}:{name}:{horizon}:{level:.4f}"
        cache = K.forecast(target_key(kind, target))
        raw = self.store.redis.hget(cache, field)
        if raw:
            c = json.loads(raw)
            return h, Prediction(model=c["model"], dates=[date.fromisoformat(d) for d in c["dates"]],
                                 yhat=np.array(c["yhat"]), lower=np.array(c["lower"]), upper=np.array(c["upper"]),
                                 level=c["level"])
        prediction = fit_predict(series, name, horizon, level, holidays_country=self.holidays_country)
        self.store.redis.hset(cache, field, json.dumps(_prediction_json(prediction)))
        self.store.redis.expire(cache, FORECAST_CACHE_SECONDS)
        return h, prediction

    def store_predictions(self, kind: str, target: str, end: date, prediction: Prediction) -> None:
        field = f"{self.holder.version}:{end.isoformat()}:{prediction.model}:{DEFAULT_HORIZON}:{DEFAULT_LEVEL:.4f}"
        cache = K.forecast(target_key(kind, target))
        with self.store.redis.pipeline() as pipe:
            pipe.delete(cache)
            pipe.hset(cache, field, json.dumps(_prediction_json(prediction)))
            pipe.expire(cache, FORECAST_CACHE_SECONDS)
            pipe.execute()


def _prediction_json(p: Prediction) -> dict:
    return {"model": p.model, "dates": [d.isoformat() for d in p.dates], "yhat": [float(v) for v in p.yhat],
            "lower": [float(v) for v in p.lower], "upper": [float(v) for v in p.upper], "level": p.level}


def daily_std(prediction: Prediction) -> np.ndarray:
    """Per-day standard deviation implied by a central prediction interval (normal approximation)."""
    z = norm.ppf(0.5 + prediction.level / 2)
    return np.maximum((prediction.upper - prediction.lower) / (2 * z), 0.0)


class ForecastingServicer(pb_grpc.ForecastingServicer):
    def __init__(self, settings: Settings, store: ForecastStore, holder: ModelHolder[ForecastingModel],
                 forecaster: Forecaster, jobs: JobRunner, secret: bytes) -> None:
        self.settings = settings
        self.store = store
        self.holder = holder
        self.forecaster = forecaster
        self.jobs = jobs
        self.secret = secret

    # -- forecasts -----------------------------------------------------------------------------------
    def _target(self, request, context) -> tuple[str, str]:
        which = request.WhichOneof("target")
        if which == "product_id" and request.product_id:
            if not self.store.known_product(request.product_id):
                context.abort(grpc.StatusCode.NOT_FOUND, f"product {request.product_id!r} is not in the catalog")
            return "p", request.product_id
        if which == "category" and request.category:
            if not self.store.is_category(request.category):
                context.abort(grpc.StatusCode.NOT_FOUND, f"category {request.category!r} is not in the catalog")
            return "c", request.category
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "exactly one of product_id or category is required")
        raise AssertionError

    def Forecast(self, request: pb.ForecastRequest, context: grpc.ServicerContext) -> pb.ForecastResponse:
        kind, target = self._target(request, context)
        horizon = request.horizon_days or DEFAULT_HORIZON
        level = request.interval_level if request.HasField("interval_level") else DEFAULT_LEVEL
        history_days = request.history_days or DEFAULT_HISTORY
        if not 1 <= horizon <= 365:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"horizon_days must be 1..365, got {horizon}")
        if not 0 < level < 1:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"interval_level must be in (0, 1), got {level}")
        if history_days < -1 or history_days > 3660:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "history_days must be -1 (none), 0 (90) or 1..3660")
        h, prediction = self.forecaster.predict(kind, target, horizon, level)
        if prediction is None:
            what = "product" if kind == "p" else "category"
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"{what} {target!r} has no sales yet: a forecast starts from its first order")
        response = pb.ForecastResponse(
            points=[pb.ForecastPoint(date=d.isoformat(), yhat=float(y), yhat_lower=float(lo), yhat_upper=float(hi))
                    for d, y, lo, hi in zip(prediction.dates, prediction.yhat, prediction.lower, prediction.upper,
                                            strict=True)],
            model=prediction.model, model_version=self.holder.version or "untrained",
            interval_level=prediction.level)
        if kind == "p":
            response.product_id = target
        else:
            response.category = target
        if history_days > 0:
            units = h.units[-history_days:]
            first = h.end - timedelta(days=len(units) - 1)
            response.history.extend(pb.HistoryPoint(date=(first + timedelta(days=i)).isoformat(), y=float(v))
                                    for i, v in enumerate(units))
        model = self.holder.model
        score = model.backtests.get(target_key(kind, target)) if model is not None else None
        if score is not None and model.chosen.get(target_key(kind, target)) == prediction.model:
            response.backtest.CopyFrom(pb.Backtest(
                mase=_finite(score.mase), smape=_finite(score.smape), mae=_finite(score.mae),
                horizon=score.horizon, folds=score.folds))
        return response

    # -- inventory -----------------------------------------------------------------------------------
    def _product(self, pid: str, context) -> dict[str, str]:
        if not pid:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "product_id is required")
        details = self.store.product(pid)
        if not details:
            context.abort(grpc.StatusCode.NOT_FOUND, f"product {pid!r} is not in the catalog")
        return details

    def plan(self, pid: str, details: dict[str, str], service_level: float = 0.95, lead_time: float = 7.0,
             ordering_cost: float = 50.0, holding_rate: float = 0.25):
        """(plan, on_hand) of one product, or raise LookupError with the reason."""
        on_hand = self.store.stock.on_hand(pid)
        if on_hand is None:
            raise LookupError(f"the stock of {pid!r} was never counted: send an inventory.set first")
        horizon = max(DEFAULT_HORIZON, math.ceil(lead_time) + 1)
        _, prediction = self.forecaster.predict("p", pid, horizon, DEFAULT_LEVEL)
        if prediction is None:  # never sold: no demand to plan for
            forecast, std = np.zeros(horizon), np.zeros(horizon)
        else:
            forecast, std = prediction.yhat, daily_std(prediction)
        unit_cost = _float(details.get("cost")) or _float(details.get("price")) or 0.0
        plan = inventory.plan_inventory(
            mean_daily_demand=float(np.mean(forecast)), daily_demand_std=float(np.sqrt(np.mean(std ** 2))),
            on_hand=on_hand, lead_time_days=lead_time, service_level=service_level, ordering_cost=ordering_cost,
            holding_cost_rate=holding_rate, unit_cost=unit_cost, forecast_daily=list(forecast),
            forecast_daily_std=list(std))
        return plan, on_hand, unit_cost

    def InventoryPlan(self, request: pb.InventoryPlanRequest, context: grpc.ServicerContext) -> pb.InventoryPlanResponse:
        details = self._product(request.product_id, context)
        opt = {name: getattr(request, name) for name in ("service_level", "lead_time_days", "ordering_cost",
                                                          "holding_cost_rate") if request.HasField(name)}
        try:
            plan, on_hand, unit_cost = self.plan(
                request.product_id, details, opt.get("service_level", 0.95), opt.get("lead_time_days", 7.0),
                opt.get("ordering_cost", 50.0), opt.get("holding_cost_rate", 0.25))
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except LookupError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc.args[0]))
        return pb.InventoryPlanResponse(
            product_id=request.product_id, on_hand=on_hand, safety_stock=plan.safety_stock,
            reorder_point=plan.reorder_point, order_quantity=int(plan.order_quantity),
            stockout_risk=plan.stockout_risk, days_of_cover=plan.days_of_cover,
            forecast_demand_lead_time=plan.forecast_demand_lead_time, service_level=plan.service_level,
            lead_time_days=plan.lead_time_days, reorder_now=plan.reorder_now,
            mean_daily_demand=plan.mean_daily_demand, daily_demand_std=plan.daily_demand_std,
            ordering_cost=plan.ordering_cost, holding_cost_rate=plan.holding_cost_rate, unit_cost=unit_cost,
            currency=details.get("currency", ""))

    # -- pricing -------------------------------------------------------------------------------------
    def PriceRecommendation(self, request: pb.PriceRecommendationRequest,
                            context: grpc.ServicerContext) -> pb.PriceRecommendationResponse:
        details = self._product(request.product_id, context)
        objective = "profit" if request.objective == pb.OBJECTIVE_PROFIT else "revenue"
        min_margin = request.min_margin if request.HasField("min_margin") else 0.0
        max_change = request.max_change if request.HasField("max_change") else 0.2
        model = self.holder.model
        if model is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          "no pricing model yet: train the forecasting service (POST /v1/admin/train/forecasting)")
        current = _float(details.get("price"))
        if not current:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"product {request.product_id!r} has no price")
        own = model.elasticities.get(target_key("p", request.product_id))
        prior = model.category_priors.get(details.get("category", ""))
        notes = []
        if prior is not None:  # the product's own estimate shrunk toward its category (or the category's)
            chosen = pricing.pool_elasticity(own or NO_ESTIMATE, *prior)
        elif own is not None and own.enough_variation and math.isfinite(own.elasticity):
            chosen = own
        else:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"neither {request.product_id!r} nor any product of its category changed its price "
                          "enough to estimate how demand responds to price")
        if chosen.note:
            notes.append(chosen.note)
        _, prediction = self.forecaster.predict("p", request.product_id, DEFAULT_HORIZON, DEFAULT_LEVEL)
        base_demand = float(np.mean(prediction.yhat)) if prediction is not None else 0.0
        unit_cost = _float(details.get("cost")) or 0.0
        try:
            advice = pricing.recommend_price(current_price=current, unit_cost=unit_cost, elasticity=chosen.elasticity,
                                             base_demand=base_demand, objective=objective, min_margin=min_margin,
                                             max_change=max_change)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if advice.note:
            notes.append(advice.note)
        return pb.PriceRecommendationResponse(
            product_id=request.product_id, currency=details.get("currency", ""),
            objective=pb.OBJECTIVE_PROFIT if objective == "profit" else pb.OBJECTIVE_REVENUE,
            current_price=current, recommended_price=advice.recommended_price, elasticity=chosen.elasticity,
            elasticity_ci_low=_finite(chosen.ci_low), elasticity_ci_high=_finite(chosen.ci_high),
            r_squared=_finite(chosen.r_squared), observations=int(chosen.observations),
            expected_demand_current=advice.expected_demand_current,
            expected_demand_recommended=advice.expected_demand_recommended,
            expected_revenue_current=advice.expected_revenue_current,
            expected_revenue_recommended=advice.expected_revenue_recommended,
            expected_profit_current=advice.expected_profit_current,
            expected_profit_recommended=advice.expected_profit_recommended,
            lower_bound=advice.lower_bound, upper_bound=advice.upper_bound, unit_cost=unit_cost,
            note="; ".join(notes))

    # -- behaviour -----------------------------------------------------------------------------------
    def _purchases(self) -> list[behaviour.Purchase]:
        return [behaviour.Purchase(user, datetime.fromtimestamp(t, UTC), total, oid)
                for oid, user, t, total, _ in self.store.orders()]

    def _currency(self) -> str:
        for _oid, _user, _t, _total, currency in self.store.orders():
            if currency:
                return currency
        return ""

    def behaviour_model(self) -> behaviour.BehaviourModel | None:
        """The trained population model, or one fitted now from every order (kept while no new
        event arrives): profiles work before the first training."""
        model = self.holder.model
        if model is not None and model.behaviour is not None:
            return model.behaviour
        seen = self.store.events_seen()
        cached = self._fallback
        if cached is not None and cached[0] == seen:
            return cached[1]
        purchases = self._purchases()
        try:
            fitted = behaviour.BehaviourModel.fit(purchases, self.store.last_day() or date.today()) if purchases else None
        except ValueError:
            fitted = None
        self._fallback = (seen, fitted)
        return fitted

    _fallback: tuple[int, behaviour.BehaviourModel | None] | None = None

    def Segments(self, request: pb.SegmentsRequest, context: grpc.ServicerContext) -> pb.SegmentsResponse:
        try:
            as_of = _day(request.as_of, "as_of", datetime.now(UTC).date())
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if not 0 <= request.sample_size <= 100:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "sample_size must be 0..100")
        report = behaviour.segments(behaviour.rfm(self._purchases(), as_of), request.sample_size, self.secret)
        return pb.SegmentsResponse(
            segments=[pb.Segment(name=s.name, description=s.description, customers=s.customers,
                                 customer_share=s.customer_share, revenue=s.revenue, revenue_share=s.revenue_share,
                                 avg_recency_days=s.avg_recency_days, avg_frequency=s.avg_frequency,
                                 avg_monetary=s.avg_monetary, sample_user_ids=s.sample_user_ids)
                      for s in report.segments],
            total_customers=report.total_customers, total_revenue=report.total_revenue, currency=self._currency(),
            as_of=as_of.isoformat())

    def Funnel(self, request: pb.FunnelRequest, context: grpc.ServicerContext) -> pb.FunnelResponse:
        try:
            last = _day(request.to_date, "to_date", datetime.now(UTC).date())
            first = _day(request.from_date, "from_date", last - timedelta(days=30))
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if first > last:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"from_date {first} is after to_date {last}")
        if (last - first).days > 366:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the range may cover at most 366 days")
        rows, counts = self.store.funnel_events(first, last, request.category or None)
        report = behaviour.funnel(rows, first, last, request.category or None)

        def steps(items, category: str | None) -> list[pb.FunnelStep]:
            # The store keeps one row per user, action, category and day: event counts come from its counters.
            return [pb.FunnelStep(name=st.name, users=st.users,
                                  events=sum(n for (a, c), n in counts.items()
                                             if a == st.name and (category is None or c == category)),
                                  conversion=st.conversion, conversion_from_start=st.conversion_from_start)
                    for st in items]

        return pb.FunnelResponse(
            steps=steps(report.steps, request.category or None),
            categories=[pb.CategoryFunnel(category=c.category, steps=steps(c.steps, c.category))
                        for c in report.categories],
            from_date=first.isoformat(), to_date=last.isoformat())

    def Cohorts(self, request: pb.CohortsRequest, context: grpc.ServicerContext) -> pb.CohortsResponse:
        period = {pb.COHORT_PERIOD_DAY: "day", pb.COHORT_PERIOD_WEEK: "week"}.get(request.period, "month")
        max_periods = request.max_periods or 12
        if not 1 <= max_periods <= 52:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "max_periods must be 1..52")
        try:
            last = _day(request.to_date, "to_date", datetime.now(UTC).date())
            first = _day(request.from_date, "from_date", date.min) if request.from_date else None
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        report = behaviour.cohorts(self._purchases(), period, max_periods, first, last)
        return pb.CohortsResponse(
            period={"day": pb.COHORT_PERIOD_DAY, "week": pb.COHORT_PERIOD_WEEK}.get(period, pb.COHORT_PERIOD_MONTH),
            cohorts=[pb.Cohort(cohort=c.cohort.isoformat(), size=c.size, retention=c.retention, active=c.active)
                     for c in report.cohorts])

    def UserProfile(self, request: pb.UserProfileRequest, context: grpc.ServicerContext) -> pb.UserProfileResponse:
        if not request.user_id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "user_id is required")
        user = request.user_id
        orders = self.store.user_orders(user)
        counts = self.store.user_counts(user)
        by_category = self.store.user_categories(user)
        purchased = {k.split("|", 1)[1]: v for k, v in by_category.items() if k.startswith("purchase|")}
        viewed = {k.split("|", 1)[1]: v for k, v in by_category.items() if k.startswith("view|")}
        model = self.behaviour_model() if orders else None
        if model is None and orders:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the customer-value model could not be fitted yet")
        if model is None:
            profile = None if not counts else behaviour.UserProfile(
                behaviour.pseudonymise(user, self.secret), None, "", 0.0, 0.0, 0, 0.0, 0.0, None, None, 0.0,
                {k: v for k, v in counts.items() if v > 0},
                min(1.0, counts.get("purchase", 0) / counts["add_to_cart"]) if counts.get("add_to_cart") else 0.0,
                sorted(viewed, key=lambda c: -viewed[c])[:5])
        else:
            profile = behaviour.user_profile(
                user, [behaviour.Purchase(user, datetime.fromtimestamp(t, UTC), total, oid) for oid, t, total in orders],
                model, self.secret, as_of=max(model.as_of, self.store.last_day() or model.as_of),
                event_counts=counts, purchased_categories=purchased, viewed_categories=viewed)
        if profile is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "this user has never been seen")
        reply = pb.UserProfileResponse(
            pseudonymous_id=profile.pseudonymous_id, segment=profile.segment,
            repeat_purchase_probability=profile.repeat_purchase_probability,
            predicted_customer_value=profile.predicted_customer_value, currency=self._currency() if orders else "",
            orders=profile.orders, total_spend=profile.total_spend, average_order_value=profile.average_order_value,
            avg_days_between_purchases=profile.avg_days_between_purchases, event_counts=profile.event_counts,
            cart_to_purchase_rate=profile.cart_to_purchase_rate, favourite_categories=profile.favourite_categories)
        if profile.rfm is not None:
            r = profile.rfm
            reply.rfm.CopyFrom(pb.Rfm(recency_days=r.recency_days, frequency=r.frequency, monetary=r.monetary,
                                      r_score=r.r_score, f_score=r.f_score, m_score=r.m_score))
        if profile.first_purchase_at is not None:
            reply.first_purchase_at.CopyFrom(_ts(profile.first_purchase_at.timestamp()))
            reply.last_purchase_at.CopyFrom(_ts(profile.last_purchase_at.timestamp()))
        return reply

    # -- admin ---------------------------------------------------------------------------------------
    def Train(self, request: common_pb2.TrainRequest, context: grpc.ServicerContext) -> common_pb2.Job:
        return train_rpc(self.jobs, request, context, trainable=("", "forecast"), check=parse_params,
                         models_hint="the forecasting service trains all its models together: model must be "
                                     "empty or 'forecast'")

    def GetJob(self, request: common_pb2.GetJobRequest, context: grpc.ServicerContext) -> common_pb2.Job:
        return get_job_rpc(self.jobs, request, context)


def _finite(x: float | None) -> float:
    return float(x) if x is not None and math.isfinite(x) else 0.0


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


class Refresher:
    """Keeps cached forecasts fresh as sales arrive and raises reorder alerts: every few seconds it
    takes the targets whose sales or stock moved, re-forecasts them with their chosen models (in
    parallel) and publishes ``alert.reorder_needed`` when a product's stock falls to its reorder point."""

    def __init__(self, servicer: ForecastingServicer, publish, every_seconds: float, n_jobs: int) -> None:
        self.servicer = servicer
        self.store = servicer.store
        self.forecaster = servicer.forecaster
        self.publish = publish
        self.every = every_seconds
        self.n_jobs = n_jobs

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.every):
            try:
                self.refresh()
            except Exception:
                log.warning("refresh_failed", exc_info=True)

    def refresh(self) -> int:
        dirty = self.store.take_dirty(REFRESH_BATCH)
        if not dirty:
            return 0
        sales = sorted({d for d in dirty if not d.startswith("stock|")})
        stock = sorted({d.split("|", 1)[1] for d in dirty if d.startswith("stock|")})
        items, ends = {}, {}
        for entry in sales:
            kind, target = entry.split("|", 1)
            h, series = self.forecaster.series(kind, target)
            if series is not None:
                items[entry] = series
                ends[entry] = h.end
        if items:
            chosen = {k: self.forecaster.model_for(*k.split("|", 1), items[k]) for k in items}
            outcomes = forecast_many(items, DEFAULT_HORIZON, DEFAULT_LEVEL, chosen=chosen,
                                     n_jobs=self.n_jobs if len(items) > 50 else 1,
                                     holidays_country=self.forecaster.holidays_country)
            for k, outcome in outcomes.items():
                if outcome.error is None:
                    kind, target = k.split("|", 1)
                    self.forecaster.store_predictions(kind, target, ends[k], outcome.prediction)
        for pid in stock:
            self.check_stock(pid)
        return len(dirty)

    def check_stock(self, pid: str) -> None:
        details = self.store.product(pid)
        if not details:
            return
        try:
            plan, on_hand, _ = self.servicer.plan(pid, details)
        except (LookupError, ValueError):
            return
        alerted = self.store.redis.hget(K.alerted, pid)
        if not plan.reorder_now:
            if alerted is not None:
                self.store.redis.hdel(K.alerted, pid)
            return
        if alerted is not None:
            return  # one alert per crossing; cleared when stock is back above the reorder point
        payload = {"product_id": pid, "on_hand": on_hand, "reorder_point": round(plan.reorder_point, 2),
                   "order_quantity": int(plan.order_quantity), "stockout_risk": round(plan.stockout_risk, 4),
                   "days_of_cover": round(plan.days_of_cover, 2), "title": details.get("title", "")}
        self.publish(topics.ALERTS, pid, {"event_id": str(uuid.uuid4()), "type": "alert.reorder_needed",
                                          "schema_version": 1, "occurred_at": _now(), "source": "forecasting",
                                          "payload": payload})
        self.store.redis.hset(K.alerted, pid, plan.reorder_point)
        log.info("reorder_alert", product_id=pid, on_hand=on_hand, reorder_point=payload["reorder_point"])


class Scheduler(TrainingScheduler):
    """Trains on its own: as soon as there are orders, then when the events doubled or the interval passed."""

    def __init__(self, settings: Settings, store: ForecastStore, holder: ModelHolder[ForecastingModel],
                 jobs: JobRunner) -> None:
        super().__init__(settings.retrain_check_seconds, holder, jobs, enabled=settings.forecast_auto_train)
        self.settings = settings
        self.store = store

    def due(self) -> bool:
        model = self.holder.model
        events = self.store.events_seen()
        sold = int(self.store.redis.hlen(K.orders))
        return retrain_due(
            has_model=model is not None, users=sold, min_users=self.settings.forecast_min_orders,
            events_now=events, events_at_training=int(self.holder.meta.get("events_seen", 0)),
            model_age_seconds=time.time() - model.trained_at if model is not None else 0.0,
            interval_seconds=self.settings.retrain_interval_seconds)


def analytics_secret(settings: Settings) -> bytes:
    """The key of the pseudonyms in analytics outputs: SHOPAI_ANALYTICS_SECRET, or a random one kept in
    <data_dir>/secrets/analytics-secret (mode 0600), made on first start."""
    return persistent_secret(settings.analytics_secret, settings.data_dir / "secrets" / "analytics-secret")


def build(settings: Settings) -> ServiceRunner:
    runner = bootstrap("forecasting", settings)
    client = connect(settings)
    store = ForecastStore(client)
    holder: ModelHolder[ForecastingModel] = ModelHolder(ModelRegistry(settings.model_dir("forecasting")))
    holder.refresh()
    secret = analytics_secret(settings)
    outputs = LazyEnvelopePublisher(settings, client_id="forecasting")

    def announce(version: str, meta: dict) -> None:
        outputs.publish(topics.MODELS, "forecasting", json.loads(model_event("forecasting", version, meta)))

    trainer = ForecastTrainer(store, holder.registry, holder, secret, n_jobs=settings.forecast_jobs,
                              holidays_country=settings.forecast_holidays_country, on_new_version=announce)
    jobs = JobRunner("forecasting", client, trainer.train, ttl_seconds=settings.jobs_ttl_seconds)
    forecaster = Forecaster(store, holder, settings.forecast_holidays_country)
    servicer = ForecastingServicer(settings, store, holder, forecaster, jobs, secret)
    consumer = EventConsumer(settings, ForecastProjection(client))
    refresher = Refresher(servicer, outputs.publish, settings.forecast_refresh_seconds, settings.forecast_jobs)
    runner.add_servicer(pb_grpc.add_ForecastingServicer_to_server, servicer,
                        pb.DESCRIPTOR.services_by_name["Forecasting"].full_name)
    runner.add_worker(consumer.run, "forecasting-consumer")
    runner.add_worker(jobs.run, "forecasting-trainer")
    runner.add_worker(refresher.run, "forecasting-refresher")
    runner.add_worker(Scheduler(settings, store, holder, jobs).run, "forecasting-scheduler")
    runner.add_readiness(consumer.ready.is_set)
    runner.on_stop(outputs.close)
    return runner


def main() -> None:
    run(build(load_settings()))
