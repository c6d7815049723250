"""Forecasting gRPC servicer: demand forecasts, inventory plans, price advice and behaviour analytics.

The numbers come from ``core`` (pure); the servicer checks requests, asks the forecaster
(forecaster.py: forecasts cached in Redis, inventory plans) or the analytics reader (analytics.py),
and answers through converters.py. Workers run beside the server: the consumer (consumer.py),
the trainer's job runner, the refresher (refresher.py: keeps every target's forecast, re-forecasts what new
sales moved and raises reorder alerts), the on-demand forecaster (ondemand.py: what a request asked that
nothing kept), the reports worker (services/common/precomputed.py), the scheduler (scheduler.py: trains on
its own once sales exist, then as they grow), and the alerts desk's consumer of alerts.v1 (alerts.py) and
webhook worker (webhooks.py). A request never fits a model: it reads a kept forecast, or waits a moment for
the on-demand worker, or is told when to ask again (UNAVAILABLE with retry-after, REST 503 + Retry-After).
"""

from __future__ import annotations

import grpc
import numpy as np

from protos import common_pb2
from protos import forecasting_pb2 as pb
from protos import forecasting_pb2_grpc as pb_grpc
from services.common import catchup
from services.common.bus import EventConsumer, LazyEnvelopePublisher
from services.common.cache import connect
from services.common.grpc_server import ServiceRunner, bootstrap, run
from services.common.jobs import JobRunner, get_job_rpc, list_models_rpc, serve_model_rpc, train_rpc
from services.common.keyfile import persistent_secret
from services.common.models import ModelHolder, ModelRegistry, announce_version
from services.common.precomputed import NotReady, Precomputed
from services.common.projection import rebuilding
from services.common.settings import Settings, load_settings
from services.forecasting import converters as cv
from services.forecasting.alerts import AlertDesk, AlertPending, AlertsProjection, AlertStore
from services.forecasting.analytics import Analytics
from services.forecasting.consumer import ForecastProjection
from services.forecasting.core import behaviour, pricing
from services.forecasting.core.alerts import AlertNotFound, AlreadyAcknowledged
from services.forecasting.core.bundle import ForecastingModel, target_key
from services.forecasting.core.forecast import NoDemand
from services.forecasting.forecaster import DEFAULT_HORIZON, DEFAULT_LEVEL, Forecaster, number
from services.forecasting.ondemand import ForecastPending, OnDemand
from services.forecasting.refresher import Refresher
from services.forecasting.scheduler import Scheduler
from services.forecasting.store import ForecastStore
from services.forecasting.trainer import ForecastTrainer, parse_params
from services.forecasting.webhooks import WebhookWorker

FORECASTING_GROUP = ForecastProjection.group
REBUILD_RETRY_SECONDS = 10


class ForecastingServicer(pb_grpc.ForecastingServicer):
    def __init__(self, settings: Settings, store: ForecastStore, holder: ModelHolder[ForecastingModel],
                 forecaster: Forecaster, jobs: JobRunner, secret: bytes, desk: AlertDesk) -> None:
        self.settings = settings
        self.desk = desk
        self.store = store
        self.holder = holder
        self.forecaster = forecaster
        self.jobs = jobs
        self.secret = secret
        self.on_demand = OnDemand(forecaster.predict)
        self.analytics = Analytics(store, holder)
        # The defaults are what the gateway asks when a caller names no parameter.
        self.reports = Precomputed(store.events_seen, refresh_seconds=settings.analytics_refresh_seconds)
        self.reports.register("segments", self._segments,
                              lambda: [(cv.segments_as_of(pb.SegmentsRequest()), 0)])
        self.reports.register("funnel", self._funnel, lambda: [(*cv.funnel_range(pb.FunnelRequest()), None)])
        self.reports.register("cohorts", self._cohorts, lambda: [cv.cohort_options(pb.CohortsRequest())])

    # -- forecasts -----------------------------------------------------------------------------------
    def _refuse(self, code: grpc.StatusCode, detail: str, what: str, context: grpc.ServicerContext) -> None:
        """Abort with ``code`` (NOT_FOUND, or FAILED_PRECONDITION "no sales yet"), unless Redis lost the projection
        and the consumer is rebuilding it from the event log: then the catalog and the sales only look empty, and
        the answer is UNAVAILABLE with retry-after (the gateway serves its kept answer, or a 503), never a wrong
        404 or 400."""
        if rebuilding(self.store.redis, FORECASTING_GROUP):
            context.set_trailing_metadata((("retry-after", str(REBUILD_RETRY_SECONDS)),))
            context.abort(grpc.StatusCode.UNAVAILABLE,
                          f"{what} is not known yet: the forecasting service is rebuilding its data from the event "
                          "log (Redis lost it); retry shortly")
        context.abort(code, detail)

    def _not_found(self, what: str, context: grpc.ServicerContext) -> None:
        self._refuse(grpc.StatusCode.NOT_FOUND, f"{what} is not in the catalog", what, context)

    def _target(self, request, context) -> tuple[str, str]:
        which = request.WhichOneof("target")
        if which == "product_id" and request.product_id:
            if not self.store.known_product(request.product_id):
                self._not_found(f"product {request.product_id!r}", context)
            return "p", request.product_id
        if which == "category" and request.category:
            if not self.store.is_category(request.category):
                self._not_found(f"category {request.category!r}", context)
            return "c", request.category
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "exactly one of product_id or category is required")
        raise AssertionError

    def Forecast(self, request: pb.ForecastRequest, context: grpc.ServicerContext) -> pb.ForecastResponse:
        kind, target = self._target(request, context)
        horizon, level, history_days = _checked(cv.forecast_options, request, context)
        try:
            h, prediction = self._prediction(kind, target, horizon, level, context)
        except NoDemand as exc:
            self._refuse(grpc.StatusCode.FAILED_PRECONDITION, f"{target!r}: {exc}", f"{target!r}'s sales", context)
        if prediction is None:
            what = "product" if kind == "p" else "category"
            self._refuse(grpc.StatusCode.FAILED_PRECONDITION,
                         f"{what} {target!r} has no sales yet: a forecast starts from its first order",
                         f"{what} {target!r}'s sales", context)
        response = cv.forecast_response(kind, target, prediction, self.holder.version or "untrained")
        if history_days > 0:
            cv.add_history(response, h, history_days)
        cv.add_backtest(response, self.holder.model, target_key(kind, target), prediction.model)
        return response

    def _prediction(self, kind: str, target: str, horizon: int, level: float, context: grpc.ServicerContext):
        """The kept forecast, else the on-demand worker's within the wait (bounded by the call's deadline),
        else abort UNAVAILABLE with retry-after: the request never fits a model itself (issue #21)."""
        h, prediction = self.forecaster.kept(kind, target, horizon, level)
        if h is None or prediction is not None:
            return h, prediction
        wait = self.settings.forecast_wait_seconds
        remaining = context.time_remaining()
        if remaining is not None:
            # The gateway's channel retries UNAVAILABLE: the margin leaves its later attempts their answer in time.
            wait = min(wait, max(0.0, remaining - 0.5))
        try:
            return self.on_demand.get(kind, target, horizon, level, wait)
        except ForecastPending as exc:
            context.set_trailing_metadata((("retry-after", str(exc.retry_after)),))
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        raise AssertionError("unreachable")

    # -- inventory -----------------------------------------------------------------------------------
    def _product(self, pid: str, context) -> dict[str, str]:
        if not pid:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "product_id is required")
        details = self.store.product(pid)
        if not details:
            self._not_found(f"product {pid!r}", context)
        return details

    def InventoryPlan(self, request: pb.InventoryPlanRequest, context: grpc.ServicerContext) -> pb.InventoryPlanResponse:
        details = self._product(request.product_id, context)
        try:
            plan, on_hand, unit_cost = self.forecaster.plan(
                request.product_id, details, *cv.plan_options(request),
                predict=lambda kind, target, horizon, level: self._prediction(kind, target, horizon, level, context))
        except NoDemand as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"{request.product_id!r}: {exc}")
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except LookupError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc.args[0]))
        return cv.inventory_response(request.product_id, plan, on_hand, unit_cost, details.get("currency", ""))

    # -- pricing -------------------------------------------------------------------------------------
    def PriceRecommendation(self, request: pb.PriceRecommendationRequest,
                            context: grpc.ServicerContext) -> pb.PriceRecommendationResponse:
        details = self._product(request.product_id, context)
        model = self.holder.model
        if model is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          "no pricing model yet: train the forecasting service (POST /v1/admin/train/forecasting)")
        current = number(details.get("price"))
        if not current:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"product {request.product_id!r} has no price")
        chosen = pricing.choose_elasticity(model.elasticities.get(target_key("p", request.product_id)),
                                           model.category_priors.get(details.get("category", "")))
        if chosen is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"neither {request.product_id!r} nor any product of its category changed its price "
                          "enough to estimate how demand responds to price")
        try:
            _, prediction = self._prediction("p", request.product_id, DEFAULT_HORIZON, DEFAULT_LEVEL, context)
        except NoDemand as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"{request.product_id!r}: {exc}")
        unit_cost = number(details.get("cost")) or 0.0
        try:
            advice = pricing.recommend_price(
                current_price=current, unit_cost=unit_cost, elasticity=chosen.elasticity,
                base_demand=float(np.mean(prediction.yhat)) if prediction is not None else 0.0,
                **cv.price_options(request))
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        note = "; ".join(n for n in (chosen.note, advice.note) if n)
        return cv.price_response(request.product_id, details.get("currency", ""), current, chosen, advice,
                                 unit_cost, note)

    # -- behaviour -----------------------------------------------------------------------------------
    # Reports over every order are computed by the reports worker (services/common/precomputed.py) and
    # answered from what it kept: the request never computes them (issue #21).
    def Segments(self, request: pb.SegmentsRequest, context: grpc.ServicerContext) -> pb.SegmentsResponse:
        as_of = _checked(cv.segments_as_of, request, context)
        return self._report("segments", (as_of, request.sample_size), context)

    def Funnel(self, request: pb.FunnelRequest, context: grpc.ServicerContext) -> pb.FunnelResponse:
        first, last = _checked(cv.funnel_range, request, context)
        return self._report("funnel", (first, last, request.category or None), context)

    def Cohorts(self, request: pb.CohortsRequest, context: grpc.ServicerContext) -> pb.CohortsResponse:
        return self._report("cohorts", _checked(cv.cohort_options, request, context), context)

    def _report(self, report: str, params, context: grpc.ServicerContext):
        remaining = context.time_remaining()
        wait = self.settings.analytics_wait_seconds
        if remaining is not None:
            wait = min(wait, max(0.0, remaining - 0.3))
        try:
            answer = self.reports.get(report, params, wait)
        except NotReady as exc:
            context.set_trailing_metadata((("retry-after", str(exc.retry_after)),))
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        context.set_trailing_metadata((("x-shopai-computed-at", f"{answer.computed_at:.3f}"),
                                       ("x-shopai-stale", "1" if answer.stale else "0")))
        return answer.value

    def _segments(self, params) -> pb.SegmentsResponse:
        as_of, sample_size = params
        report = behaviour.segments(behaviour.rfm(self.analytics.purchases(), as_of), sample_size, self.secret)
        return cv.segments_response(report, self.analytics.currency(), as_of)

    def _funnel(self, params) -> pb.FunnelResponse:
        first, last, category = params
        rows, counts = self.store.funnel_events(first, last, category)
        return cv.funnel_response(behaviour.funnel(rows, first, last, category), counts, category, first, last)

    def _cohorts(self, params) -> pb.CohortsResponse:
        period, max_periods, first, last = params
        return cv.cohorts_response(behaviour.cohorts(self.analytics.purchases(), period, max_periods, first, last))

    def UserProfile(self, request: pb.UserProfileRequest, context: grpc.ServicerContext) -> pb.UserProfileResponse:
        if not request.user_id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "user_id is required")
        user = request.user_id
        orders = self.analytics.user_purchases(user)
        counts = self.store.user_counts(user)
        purchased, viewed = self.analytics.user_categories(user)
        model = self.analytics.model() if orders else None
        if model is None and orders:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the customer-value model could not be fitted yet")
        if model is None:
            profile = behaviour.visitor_profile(user, self.secret, counts, viewed)
        else:
            profile = behaviour.user_profile(
                user, orders, model, self.secret, as_of=max(model.as_of, self.store.last_day() or model.as_of),
                event_counts=counts, purchased_categories=purchased, viewed_categories=viewed)
        if profile is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "this user has never been seen")
        return cv.profile_response(profile, self.analytics.currency() if orders else "")

    # -- admin ---------------------------------------------------------------------------------------
    def Train(self, request: common_pb2.TrainRequest, context: grpc.ServicerContext) -> common_pb2.Job:
        return train_rpc(self.jobs, request, context, trainable=("", "forecast"), check=parse_params,
                         models_hint="the forecasting service trains all its models together: model must be "
                                     "empty or 'forecast'")

    def GetJob(self, request: common_pb2.GetJobRequest, context: grpc.ServicerContext) -> common_pb2.Job:
        return get_job_rpc(self.jobs, request, context)

    def ListModels(self, request: common_pb2.ListModelsRequest,
                   context: grpc.ServicerContext) -> common_pb2.ListModelsResponse:
        return list_models_rpc(self.holder, "forecasting", request, context)

    def ServeModel(self, request: common_pb2.ServeModelRequest,
                   context: grpc.ServicerContext) -> common_pb2.ModelVersion:
        return serve_model_rpc(self.holder, "forecasting", request, context)

    # -- the alerts desk -----------------------------------------------------------------------------
    def ListAlerts(self, request: pb.ListAlertsRequest, context: grpc.ServicerContext) -> pb.ListAlertsResponse:
        state, event_type, limit, before = _checked(cv.alert_filter, request, context)
        try:
            records, after = self.desk.store.page(state, event_type, limit, before)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return pb.ListAlertsResponse(alerts=[cv.alert_message(r) for r in records], next=after)

    def AcknowledgeAlert(self, request: pb.AcknowledgeAlertRequest, context: grpc.ServicerContext) -> pb.Alert:
        if not request.alert_id or not request.acknowledged_by:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "alert_id and acknowledged_by are required")
        try:
            record = self.desk.acknowledge(request.alert_id, request.acknowledged_by, request.role)
        except AlertNotFound as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except AlreadyAcknowledged as exc:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, str(exc))
        except AlertPending as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return cv.alert_message(record)


def _checked(options, request, context):
    """``options(request)``, or abort with INVALID_ARGUMENT and the reason."""
    try:
        return options(request)
    except ValueError as exc:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        raise AssertionError from exc


def build(settings: Settings) -> ServiceRunner:
    runner = bootstrap("forecasting", settings)
    client = connect(settings)
    store = ForecastStore(client)
    holder: ModelHolder[ForecastingModel] = ModelHolder(ModelRegistry(settings.model_dir("forecasting")))
    holder.refresh()
    # The key of the pseudonyms in analytics outputs: SHOPAI_ANALYTICS_SECRET, or a random one kept in
    # <data_dir>/secrets/analytics-secret (mode 0600), made on first start.
    secret = persistent_secret(settings.analytics_secret, settings.data_dir / "secrets" / "analytics-secret")
    outputs = LazyEnvelopePublisher(settings, client_id="forecasting")

    def announce(version: str, meta: dict) -> None:
        announce_version(outputs.publish, "forecasting", version, meta)

    trainer = ForecastTrainer(store, holder.registry, holder, secret, n_jobs=settings.forecast_jobs,
                              holidays_country=settings.forecast_holidays_country, on_new_version=announce)
    jobs = JobRunner("forecasting", client, trainer.train, ttl_seconds=settings.jobs_ttl_seconds,
                     nice=settings.jobs_nice, catchup=catchup.for_projection(settings, ForecastProjection))
    forecaster = Forecaster(store, holder, settings.forecast_holidays_country)
    desk = AlertDesk(AlertStore(client), outputs.publish)
    servicer = ForecastingServicer(settings, store, holder, forecaster, jobs, secret, desk)
    consumer = EventConsumer(settings, ForecastProjection(client))
    alerts = EventConsumer(settings, AlertsProjection(client, settings.alert_webhook_urls,
                                                      settings.alert_webhook_max_age_seconds, pseudonyms=secret))
    webhooks = WebhookWorker(client, settings, outputs.publish)
    refresher = Refresher(forecaster, outputs.publish, settings.forecast_refresh_seconds, settings.forecast_jobs)
    runner.add_servicer(pb_grpc.add_ForecastingServicer_to_server, servicer,
                        pb.DESCRIPTOR.services_by_name["Forecasting"].full_name)
    runner.add_worker(consumer.run, "forecasting-consumer")
    runner.add_worker(jobs.run, "forecasting-trainer")
    runner.add_worker(refresher.run, "forecasting-refresher")
    runner.add_worker(servicer.on_demand.run, "forecasting-on-demand")
    runner.add_worker(servicer.reports.run, "forecasting-reports")
    runner.add_worker(Scheduler(settings, store, holder, jobs).run, "forecasting-scheduler")
    runner.add_worker(alerts.run, "forecasting-alerts")
    runner.add_worker(webhooks.run, "forecasting-alert-webhooks")
    runner.add_readiness(consumer.ready.is_set)
    runner.add_readiness(alerts.ready.is_set)
    runner.on_stop(outputs.close)
    return runner


def main() -> None:
    run(build(load_settings()))
