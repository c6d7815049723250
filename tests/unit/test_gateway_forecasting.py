"""The gateway's forecasting routes (/v1/forecasts, /v1/inventory, /v1/pricing, /v1/analytics) against a fake
Forecasting gRPC service (a real server, in process): query parameters become the right proto fields (optional
ones stay unset when not given), replies keep their JSON shape, bad input is a 400 naming the parameter that
never reaches the service, gRPC codes become the right problems, the chart routes render the forecast."""

from __future__ import annotations

import json
import sys
import types

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

import gateway
from gateway.app import BLUEPRINT_BACKEND, close_app, create_app
from gateway.backends import _RETRY_POLICY
from gateway.policy import NOT_FOUND_DETAIL
from gateway.problems import GRPC_TO_HTTP
from gateway.routes.forecasting import CHART_CACHE_CONTROL, ForecastChart
from protos import forecasting_pb2 as pb
from protos import forecasting_pb2_grpc
from services.common.settings import SERVICE_NAMES, Settings
from tests.support import TEST_KEYS, RecordingServicer, assert_problem, free_port, serving, staff

CHARTS = "gateway.charts"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FORECASTING = "shopai.forecasting.v1.Forecasting"
READS = ("Forecast", "InventoryPlan", "PriceRecommendation", "Segments", "Funnel", "Cohorts", "UserProfile")


def stamp(text: str) -> Timestamp:
    value = Timestamp()
    value.FromJsonString(text)
    return value


def forecast_reply(request: pb.ForecastRequest) -> pb.ForecastResponse:
    """Three forecast days and two history days (fewer when asked for fewer), whatever the horizon."""
    target = request.WhichOneof("target")
    points = [pb.ForecastPoint(date=f"2026-11-{29 + i}", yhat=3.0 + i, yhat_lower=1.0, yhat_upper=6.0 + i)
              for i in range(min(request.horizon_days, 2))]
    points.append(pb.ForecastPoint(date="2026-12-01", yhat=4.5, yhat_lower=1.5, yhat_upper=8.0))
    history = [] if request.history_days == -1 else [pb.HistoryPoint(date="2026-11-27", y=2.0),
                                                     pb.HistoryPoint(date="2026-11-28", y=0.0)]
    level = request.interval_level if request.HasField("interval_level") else 0.8
    return pb.ForecastResponse(
        **{target: getattr(request, target)}, points=points, history=history, model="ets",
        model_version="fc-v2", backtest=pb.Backtest(mase=0.82, smape=0.31, mae=1.2, horizon=28, folds=4),
        interval_level=level,
    )


def inventory_reply(request: pb.InventoryPlanRequest) -> pb.InventoryPlanResponse:
    return pb.InventoryPlanResponse(
        product_id=request.product_id, on_hand=12, safety_stock=4.2, reorder_point=25.2, order_quantity=40,
        stockout_risk=0.31, days_of_cover=4.0, forecast_demand_lead_time=21.0,
        service_level=request.service_level if request.HasField("service_level") else 0.95,
        lead_time_days=request.lead_time_days if request.HasField("lead_time_days") else 7.0,
        reorder_now=True, mean_daily_demand=3.0, daily_demand_std=1.1, ordering_cost=50.0,
        holding_cost_rate=0.25, unit_cost=80.0, currency="CNY",
    )


def pricing_reply(request: pb.PriceRecommendationRequest) -> pb.PriceRecommendationResponse:
    return pb.PriceRecommendationResponse(
        product_id=request.product_id, currency="CNY", objective=request.objective or pb.OBJECTIVE_REVENUE,
        current_price=199.0, recommended_price=179.0, elasticity=-1.6, elasticity_ci_low=-2.1,
        elasticity_ci_high=-1.1, r_squared=0.62, observations=140, expected_demand_current=3.0,
        expected_demand_recommended=3.5, expected_revenue_current=597.0, expected_revenue_recommended=626.5,
        lower_bound=159.2, upper_bound=238.8, unit_cost=80.0, note="",
    )


def segments_reply(request: pb.SegmentsRequest) -> pb.SegmentsResponse:
    samples = [f"c{i:02d}" for i in range(min(request.sample_size, 2))]
    return pb.SegmentsResponse(
        segments=[pb.Segment(name="champions", description="bought recently, often, and spent the most",
                             customers=120, customer_share=0.1, revenue=50000.0, revenue_share=0.45,
                             avg_recency_days=6.5, avg_frequency=7.2, avg_monetary=416.7,
                             sample_user_ids=samples)],
        total_customers=1200, total_revenue=111000.0, currency="CNY", as_of=request.as_of or "2026-11-28",
    )


def funnel_reply(request: pb.FunnelRequest) -> pb.FunnelResponse:
    steps = [pb.FunnelStep(name=name, users=users, events=events, conversion=step,
                           conversion_from_start=start)
             for name, users, events, step, start in (("view", 1000, 5400, 1.0, 1.0),
                                                      ("add_to_cart", 200, 260, 0.2, 0.2),
                                                      ("purchase", 50, 55, 0.25, 0.05))]
    return pb.FunnelResponse(steps=steps, categories=[pb.CategoryFunnel(category="bags", steps=steps)],
                             from_date=request.from_date or "2026-10-30",
                             to_date=request.to_date or "2026-11-28")


def cohorts_reply(request: pb.CohortsRequest) -> pb.CohortsResponse:
    return pb.CohortsResponse(
        period=request.period or pb.COHORT_PERIOD_MONTH,
        cohorts=[pb.Cohort(cohort="2026-10-01", size=80, retention=[1.0, 0.25], active=[80, 20]),
                 pb.Cohort(cohort="2026-11-01", size=60, retention=[1.0], active=[60])],
    )


def profile_reply(request: pb.UserProfileRequest) -> pb.UserProfileResponse:
    return pb.UserProfileResponse(
        pseudonymous_id="9f2c51d0",
        rfm=pb.Rfm(recency_days=3.0, frequency=4, monetary=812.0, r_score=5, f_score=4, m_score=4),
        segment="loyal", repeat_purchase_probability=0.71, predicted_customer_value=960.0, currency="CNY",
        orders=4, total_spend=812.0, average_order_value=203.0,
        first_purchase_at=stamp("2026-06-01T09:00:00Z"),
        last_purchase_at=stamp("2026-11-25T18:30:00Z"), avg_days_between_purchases=58.0,
        event_counts={"view": 31, "purchase": 4}, cart_to_purchase_rate=0.5,
        favourite_categories=["bags", "shoes"],
    )


class FakeForecasting(RecordingServicer, forecasting_pb2_grpc.ForecastingServicer):
    """The fake service (tests.support.RecordingServicer records calls and injects errors)."""

    def Forecast(self, request, context):
        return self._handle("Forecast", request, context, forecast_reply)

    def InventoryPlan(self, request, context):
        return self._handle("InventoryPlan", request, context, inventory_reply)

    def PriceRecommendation(self, request, context):
        return self._handle("PriceRecommendation", request, context, pricing_reply)

    def Segments(self, request, context):
        return self._handle("Segments", request, context, segments_reply)

    def Funnel(self, request, context):
        return self._handle("Funnel", request, context, funnel_reply)

    def Cohorts(self, request, context):
        return self._handle("Cohorts", request, context, cohorts_reply)

    def UserProfile(self, request, context):
        return self._handle("UserProfile", request, context, profile_reply)


@pytest.fixture(scope="module")
def server():
    with serving(FakeForecasting(), forecasting_pb2_grpc.add_ForecastingServicer_to_server) as fake:
        yield fake


@pytest.fixture(scope="module")
def app(server):
    # nothing listens on the other services' ports
    ports = {name: free_port() for name in SERVICE_NAMES} | {"forecasting": server.port}
    settings = Settings(
        gateway_api_keys=TEST_KEYS,
        redis_url=f"redis://127.0.0.1:{free_port()}/0", kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
        grpc_deadline_seconds=2.0, log_json=False,
        **{name: {"grpc_port": port, "metrics_port": free_port()} for name, port in ports.items()},
    )
    app = create_app(settings)
    yield app
    close_app(app)


@pytest.fixture
def fake(server):
    return server.reset()


@pytest.fixture
def client(app, fake):
    # one app for the module: what an earlier test was answered must not be kept for this one (gateway/stale.py)
    app.extensions["shopai.stale_local"].clear()
    return staff(app.test_client())


def ok(reply) -> dict:
    assert reply.status_code == 200, reply.get_data(as_text=True)
    return reply.json


# ------------------------------------------------------------------ forecasts


def test_a_product_forecast_has_defaults_and_answers_points_history_and_backtest(client, fake):
    body = ok(client.get("/v1/forecasts/p1001"))
    request = fake.only("Forecast")
    assert request.WhichOneof("target") == "product_id" and request.product_id == "p1001"
    assert (request.horizon_days, request.history_days) == (28, 90)
    assert request.HasField("interval_level") and request.interval_level == pytest.approx(0.8)
    assert body["product_id"] == "p1001" and "category" not in body
    assert body["points"][0] == {"date": "2026-11-29", "yhat": 3.0, "yhat_lower": 1.0, "yhat_upper": 6.0}
    assert body["history"] == [{"date": "2026-11-27", "y": 2.0}, {"date": "2026-11-28", "y": 0.0}]
    assert (body["model"], body["model_version"], body["interval_level"]) == ("ets", "fc-v2", 0.8)
    assert body["backtest"] == {"mase": 0.82, "smape": 0.31, "mae": 1.2, "horizon": 28, "folds": 4}
    assert 0 < fake.calls[0][2] <= 2.1, "the gateway's deadline travels with the call (2 s, plus clock rounding)"


def test_forecast_parameters_become_the_request_fields(client, fake):
    ok(client.get("/v1/forecasts/p1001?horizon=7&level=0.95&history=-1"))
    request = fake.only("Forecast")
    assert (request.horizon_days, request.interval_level, request.history_days) == (7, 0.95, -1)


@pytest.mark.parametrize("query", ["horizon=1&history=0", "horizon=365&history=3660&level=0.01"])
def test_forecast_parameter_limits_are_accepted(client, fake, query):
    ok(client.get(f"/v1/forecasts/p1?{query}"))


def test_a_category_forecast_targets_the_category(client, fake):
    body = ok(client.get("/v1/forecasts/categories/bags?horizon=14"))
    request = fake.only("Forecast")
    assert request.WhichOneof("target") == "category" and request.category == "bags"
    assert request.horizon_days == 14
    assert body["category"] == "bags" and "product_id" not in body


def test_the_product_routes_do_not_swallow_categories(app, client, fake):
    adapter = app.url_map.bind("localhost")
    assert adapter.match("/v1/forecasts/categories/chart")[0] == "forecasting.category_forecast"
    assert adapter.match("/v1/forecasts/categories/chart.png")[0] == "forecasting.category_forecast"
    assert adapter.match("/v1/forecasts/p1/chart")[0] == "forecasting.product_forecast_chart"
    assert adapter.match("/v1/forecasts/p1/chart.png")[0] == "forecasting.product_forecast_png"
    assert adapter.match("/v1/forecasts/categories")[0] == "forecasting.product_forecast"
    ok(client.get("/v1/forecasts/categories/chart"))
    assert fake.only("Forecast").WhichOneof("target") == "category"


BAD_FORECAST_QUERIES = [
    pytest.param("horizon=0", "horizon", "greater than or equal to 1", id="horizon-0"),
    pytest.param("horizon=366", "horizon", "less than or equal to 365", id="horizon-366"),
    pytest.param("horizon=ten", "horizon", "integer", id="horizon-text"),
    pytest.param("level=1", "level", "less than 1", id="level-1"),
    pytest.param("level=0", "level", "greater than 0", id="level-0"),
    pytest.param("level=nan", "level", "finite", id="level-nan"),
    pytest.param("history=-2", "history", "greater than or equal to -1", id="history--2"),
    pytest.param("history=3661", "history", "3660", id="history-3661"),
]


@pytest.mark.parametrize("path", ["/v1/forecasts/p1", "/v1/forecasts/categories/bags",
                                  "/v1/forecasts/p1/chart", "/v1/forecasts/p1/chart.png"])
@pytest.mark.parametrize("query, location, reason", BAD_FORECAST_QUERIES)
def test_bad_forecast_queries_are_400s_naming_the_parameter(client, fake, path, query, location, reason):
    problem = assert_problem(client.get(f"{path}?{query}"), 400)
    assert [e["location"] for e in problem["errors"]] == [location], problem
    assert location in problem["detail"] and reason in problem["detail"], problem["detail"]
    assert fake.calls == []


# ------------------------------------------------------------------ charts


def _fake_charts(monkeypatch) -> list[tuple[str, dict]]:
    """Replace the chart renderer with one that records its arguments."""
    seen: list[tuple[str, dict]] = []
    module = types.ModuleType(CHARTS)
    module.forecast_chart_png = lambda **kw: seen.append(("png", kw)) or PNG_SIGNATURE + b"fake"
    module.forecast_chart_json = lambda **kw: seen.append(("json", kw)) or {"series": len(kw["dates"])}
    monkeypatch.setitem(sys.modules, CHARTS, module)
    monkeypatch.setattr(gateway, "charts", module, raising=False)
    return seen


def test_the_charts_get_the_forecast_as_iso_days_and_lists(client, fake, monkeypatch):
    seen = _fake_charts(monkeypatch)
    assert ok(client.get("/v1/forecasts/p1001/chart?horizon=3&level=0.9")) == {"series": 3}
    request = fake.only("Forecast")
    assert (request.product_id, request.horizon_days, request.interval_level) == ("p1001", 3, 0.9)
    reply = client.get("/v1/forecasts/p1001/chart.png")
    assert reply.status_code == 200 and reply.data == PNG_SIGNATURE + b"fake"
    assert [kind for kind, _ in seen] == ["json", "png"]
    args = seen[0][1]
    assert args == {
        "history_dates": ["2026-11-27", "2026-11-28"], "history_y": [2.0, 0.0],
        "dates": ["2026-11-29", "2026-11-30", "2026-12-01"], "yhat": [3.0, 4.0, 4.5],
        "lower": [1.0, 1.0, 1.5], "upper": [6.0, 7.0, 8.0], "title": args["title"],
        "level": pytest.approx(0.9),
    }
    assert "p1001" in args["title"]


def test_a_gateway_without_the_chart_renderer_answers_501(client, fake, monkeypatch):
    monkeypatch.setitem(sys.modules, CHARTS, None)  # import fails
    monkeypatch.delattr(gateway, "charts", raising=False)
    assert "charts" in assert_problem(client.get("/v1/forecasts/p1/chart.png"), 501)["detail"]
    assert_problem(client.get("/v1/forecasts/p1/chart"), 501)


def test_chart_errors_from_the_service_are_problems(client, fake, monkeypatch):
    _fake_charts(monkeypatch)
    fake.errors["Forecast"] = (grpc.StatusCode.NOT_FOUND, "unknown product p404")
    assert_problem(client.get("/v1/forecasts/p404/chart.png"), 404)


def test_the_png_chart_is_a_png_that_browsers_may_keep_briefly(client, fake):
    reply = client.get("/v1/forecasts/p1001/chart.png?horizon=3")
    assert reply.status_code == 200, reply.get_data(as_text=True)
    assert reply.content_type == "image/png"
    assert reply.data.startswith(PNG_SIGNATURE)
    assert reply.headers["Cache-Control"] == CHART_CACHE_CONTROL


def test_the_json_chart_is_a_json_object(client, fake):
    reply = client.get("/v1/forecasts/p1001/chart?horizon=3")
    assert reply.status_code == 200, reply.get_data(as_text=True)
    assert reply.content_type == "application/json"
    assert set(ForecastChart.model_fields) <= set(reply.json), "the spec's ForecastChart matches the renderer"
    assert reply.json["forecast"]["dates"] == ["2026-11-29", "2026-11-30", "2026-12-01"]


# ------------------------------------------------------------------ inventory


def test_an_inventory_plan_sends_only_the_parameters_given(client, fake):
    body = ok(client.get("/v1/inventory/p1001/plan"))
    request = fake.only("InventoryPlan")
    assert request.product_id == "p1001"
    for name in ("service_level", "lead_time_days", "ordering_cost", "holding_cost_rate"):
        assert not request.HasField(name), f"{name} not given must stay unset"
    assert (body["on_hand"], body["order_quantity"], body["reorder_now"]) == (12, 40, True)
    assert body["service_level"] == 0.95
    assert body["currency"] == "CNY" and body["stockout_risk"] == 0.31


def test_an_inventory_plan_forwards_every_parameter(client, fake):
    query = "service_level=0.99&lead_time_days=0&ordering_cost=0&holding_cost_rate=10"
    ok(client.get(f"/v1/inventory/p1001/plan?{query}"))
    request = fake.only("InventoryPlan")
    assert request.HasField("lead_time_days") and request.lead_time_days == 0, "0 is a value, not 'unset'"
    assert request.HasField("ordering_cost") and request.ordering_cost == 0
    assert (request.service_level, request.holding_cost_rate) == (0.99, 10)
    fake.reset()
    ok(client.get("/v1/inventory/p1001/plan?lead_time_days=3.5"))
    request = fake.only("InventoryPlan")
    assert request.lead_time_days == 3.5 and not request.HasField("service_level")


@pytest.mark.parametrize("query, location", [
    ("service_level=1", "service_level"), ("service_level=0", "service_level"),
    ("lead_time_days=-1", "lead_time_days"), ("lead_time_days=366", "lead_time_days"),
    ("ordering_cost=-0.5", "ordering_cost"), ("ordering_cost=inf", "ordering_cost"),
    ("holding_cost_rate=0", "holding_cost_rate"), ("holding_cost_rate=10.5", "holding_cost_rate"),
])
def test_bad_inventory_parameters_are_400s(client, fake, query, location):
    problem = assert_problem(client.get(f"/v1/inventory/p1/plan?{query}"), 400)
    assert [e["location"] for e in problem["errors"]] == [location], problem
    assert fake.calls == []


# ------------------------------------------------------------------ pricing


def test_pricing_defaults_to_revenue_and_leaves_the_bounds_to_the_service(client, fake):
    body = ok(client.get("/v1/pricing/p1001"))
    request = fake.only("PriceRecommendation")
    assert (request.product_id, request.objective) == ("p1001", pb.OBJECTIVE_REVENUE)
    assert not request.HasField("min_margin") and not request.HasField("max_change")
    assert body["objective"] == "revenue"
    assert (body["recommended_price"], body["elasticity"], body["observations"]) == (179.0, -1.6, 140)
    assert body["note"] == "" and body["expected_profit_current"] == 0.0, "every scalar is present"


def test_pricing_forwards_the_objective_and_bounds(client, fake):
    body = ok(client.get("/v1/pricing/p1001?objective=profit&min_margin=0&max_change=1"))
    request = fake.only("PriceRecommendation")
    assert request.objective == pb.OBJECTIVE_PROFIT
    assert request.HasField("min_margin") and request.min_margin == 0
    assert request.max_change == 1
    assert body["objective"] == "profit"


@pytest.mark.parametrize("query, location", [
    ("objective=foo", "objective"), ("objective=REVENUE", "objective"), ("min_margin=1", "min_margin"),
    ("min_margin=-0.1", "min_margin"), ("max_change=0", "max_change"), ("max_change=1.5", "max_change"),
])
def test_bad_pricing_parameters_are_400s(client, fake, query, location):
    problem = assert_problem(client.get(f"/v1/pricing/p1?{query}"), 400)
    assert [e["location"] for e in problem["errors"]] == [location], problem
    assert fake.calls == []


# ------------------------------------------------------------------ analytics


def test_segments_default_to_today_without_samples(client, fake):
    body = ok(client.get("/v1/analytics/segments"))
    request = fake.only("Segments")
    assert (request.as_of, request.sample_size) == ("", 0)
    segment = body["segments"][0]
    assert (segment["name"], segment["customers"], segment["sample_user_ids"]) == ("champions", 120, [])
    assert (body["total_customers"], body["as_of"]) == (1200, "2026-11-28")


def test_reports_say_when_they_were_computed_and_whether_newer_data_waits(client, fake):
    fake.trailing["Segments"] = (("x-shopai-computed-at", "1764320400.250"), ("x-shopai-stale", "1"))
    answer = client.get("/v1/analytics/segments")
    assert answer.status_code == 200
    assert answer.headers["X-ShopAI-Computed-At"] == "2025-11-28T09:00:00Z"
    assert answer.headers["X-ShopAI-Stale"] == "true"


def test_a_report_still_being_computed_is_a_503_that_says_when_to_ask_again(client, fake):
    fake.errors["Cohorts"] = (grpc.StatusCode.UNAVAILABLE, "the cohorts report is being computed; ask again in 2 s")
    fake.trailing["Cohorts"] = (("retry-after", "2"),)
    answer = client.get("/v1/analytics/cohorts?period=week")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "2"
    assert "being computed" in answer.json["detail"]


def test_a_forecast_not_kept_yet_is_a_503_that_says_when_to_ask_again(client, fake):
    fake.errors["Forecast"] = (grpc.StatusCode.UNAVAILABLE, "the forecast of 'p1' is being computed; ask again in 3 s")
    fake.trailing["Forecast"] = (("retry-after", "3"),)
    answer = client.get("/v1/forecasts/p1?horizon=14")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "3"
    assert "being computed" in answer.json["detail"]


def test_segments_forward_the_day_and_sample_size(client, fake):
    body = ok(client.get("/v1/analytics/segments?as_of=2026-10-31&sample_size=100"))
    request = fake.only("Segments")
    assert (request.as_of, request.sample_size) == ("2026-10-31", 100)
    assert body["segments"][0]["sample_user_ids"] == ["c00", "c01"]


def test_the_funnel_forwards_category_and_range(client, fake):
    body = ok(client.get("/v1/analytics/funnel?category=bags&from_date=2026-11-01&to_date=2026-11-01"))
    request = fake.only("Funnel")
    assert (request.category, request.from_date, request.to_date) == ("bags", "2026-11-01", "2026-11-01")
    assert [s["name"] for s in body["steps"]] == ["view", "add_to_cart", "purchase"]
    assert body["categories"][0]["category"] == "bags" and body["steps"][2]["conversion_from_start"] == 0.05
    fake.reset()
    ok(client.get("/v1/analytics/funnel"))
    request = fake.only("Funnel")
    assert (request.from_date, request.to_date, request.category) == ("", "", "")


def test_cohorts_forward_period_count_and_range(client, fake):
    query = "period=week&max_periods=52&from_date=2026-01-05&to_date=2026-11-28"
    body = ok(client.get(f"/v1/analytics/cohorts?{query}"))
    request = fake.only("Cohorts")
    assert (request.period, request.max_periods) == (pb.COHORT_PERIOD_WEEK, 52)
    assert (request.from_date, request.to_date) == ("2026-01-05", "2026-11-28")
    assert body["period"] == "week"
    fake.reset()
    body = ok(client.get("/v1/analytics/cohorts"))
    request = fake.only("Cohorts")
    assert (request.period, request.max_periods, request.from_date, request.to_date) == (
        pb.COHORT_PERIOD_MONTH, 12, "", "")
    assert body == {"period": "month", "cohorts": [
        {"cohort": "2026-10-01", "size": 80, "retention": [1.0, 0.25], "active": [80, 20]},
        {"cohort": "2026-11-01", "size": 60, "retention": [1.0], "active": [60]}]}


BAD_ANALYTICS_QUERIES = [
    pytest.param("segments?as_of=2026-13-01", "as_of", "not a day", id="segments-month-13"),
    pytest.param("segments?as_of=28-11-2026", "as_of", "YYYY-MM-DD", id="segments-day-first"),
    pytest.param("segments?as_of=1764288000", "as_of", "YYYY-MM-DD", id="segments-timestamp"),
    pytest.param("segments?sample_size=101", "sample_size", "100", id="segments-sample-101"),
    pytest.param("segments?sample_size=-1", "sample_size", "0", id="segments-sample--1"),
    pytest.param("funnel?from_date=2026-11-02&to_date=2026-11-01", "to_date", "must not be before from_date",
                 id="funnel-from-after-to"),
    pytest.param("funnel?to_date=2026-02-30", "to_date", "not a day", id="funnel-feb-30"),
    pytest.param("funnel?from_date=yesterday", "from_date", "YYYY-MM-DD", id="funnel-word"),
    pytest.param("cohorts?period=year", "period", "day", id="cohorts-period-year"),
    pytest.param("cohorts?max_periods=0", "max_periods", "1", id="cohorts-0-periods"),
    pytest.param("cohorts?max_periods=53", "max_periods", "52", id="cohorts-53-periods"),
    pytest.param("cohorts?from_date=2026-11-28&to_date=2026-01-01", "to_date", "must not be before from_date",
                 id="cohorts-from-after-to"),
]


@pytest.mark.parametrize("route, location, reason", BAD_ANALYTICS_QUERIES)
def test_bad_analytics_queries_are_400s_naming_the_parameter(client, fake, route, location, reason):
    problem = assert_problem(client.get(f"/v1/analytics/{route}"), 400)
    assert [e["location"] for e in problem["errors"]] == [location], problem
    assert location in problem["detail"] and reason in problem["detail"], problem["detail"]
    assert fake.calls == []


def test_a_customer_profile_is_pseudonymised(client, fake):
    body = ok(client.get("/v1/analytics/users/u42"))
    assert fake.only("UserProfile").user_id == "u42"
    assert "u42" not in json.dumps(body)
    assert body["pseudonymous_id"] == "9f2c51d0" and body["segment"] == "loyal"
    assert body["rfm"] == {"recency_days": 3.0, "frequency": 4, "monetary": 812.0, "r_score": 5, "f_score": 4,
                           "m_score": 4}
    assert body["first_purchase_at"] == "2026-06-01T09:00:00Z"
    assert body["last_purchase_at"] == "2026-11-25T18:30:00Z"
    assert body["event_counts"] == {"view": 31, "purchase": 4}
    assert body["favourite_categories"] == ["bags", "shoes"]


# ------------------------------------------------------------------ errors and retries


@pytest.mark.parametrize("method, path", [
    ("Forecast", "/v1/forecasts/p404"), ("Forecast", "/v1/forecasts/categories/nothing"),
    ("InventoryPlan", "/v1/inventory/p404/plan"), ("PriceRecommendation", "/v1/pricing/p404"),
    ("UserProfile", "/v1/analytics/users/never-seen"),
])
def test_not_found_is_a_404(client, fake, method, path):
    fake.errors[method] = (grpc.StatusCode.NOT_FOUND, "never seen")
    # a shopper's 404 reads like "not yours" whatever the service said (gateway/policy.py)
    expected = NOT_FOUND_DETAIL if "/users/" in path else "never seen"
    assert assert_problem(client.get(path), 404)["detail"] == expected


def test_failed_precondition_keeps_the_gateway_mapping(client, fake):
    status = GRPC_TO_HTTP[grpc.StatusCode.FAILED_PRECONDITION]
    assert status == 400
    fake.errors["Forecast"] = (grpc.StatusCode.FAILED_PRECONDITION, "no forecasting model trained yet")
    problem = assert_problem(client.get("/v1/forecasts/p1"), status)
    assert problem["detail"] == "no forecasting model trained yet"
    assert problem["type"].endswith("/failed-precondition")


@pytest.mark.parametrize("method, path", [
    ("Forecast", "/v1/forecasts/p1"), ("InventoryPlan", "/v1/inventory/p1/plan"),
    ("Segments", "/v1/analytics/segments"),
])
def test_an_unavailable_service_is_a_503_naming_it_after_retries(client, fake, method, path):
    fake.errors[method] = (grpc.StatusCode.UNAVAILABLE, "restarting")
    detail = assert_problem(client.get(path), 503)["detail"]
    assert "forecasting" in detail and "restarting" in detail
    assert fake.methods() == [method] * 3, "a read is retried on UNAVAILABLE (gateway/backends.py)"


def test_the_retry_policy_lists_every_forecasting_read_and_never_train():
    names = [n for config in _RETRY_POLICY["methodConfig"] for n in config["name"]]
    methods = {n["method"] for n in names if n["service"] == FORECASTING}
    # the model registry's listing and pin (serving a version twice serves it once), the alerts desk's listing;
    # never Train nor AcknowledgeAlert (a second call would answer 409 for the first)
    assert methods == {*READS, "GetJob", "ListModels", "ServeModel", "ListAlerts"}
    assert BLUEPRINT_BACKEND["forecasting"] == "forecasting"


def test_deadline_exceeded_is_a_504(client, fake):
    fake.errors["Cohorts"] = (grpc.StatusCode.DEADLINE_EXCEEDED, "slow")
    assert "forecasting" in assert_problem(client.get("/v1/analytics/cohorts"), 504)["detail"]


# ------------------------------------------------------------------ the spec


def test_the_forecasting_routes_are_in_the_spec(client):
    spec = client.get("/openapi.json").json
    paths = spec["paths"]
    schemas = spec["components"]["schemas"]

    def params(path: str) -> set[str]:
        return {p["name"] for p in paths[path]["get"].get("parameters", [])}

    forecast_query = {"horizon", "level", "history"}
    assert params("/v1/forecasts/{product_id}") == {"product_id", *forecast_query}
    assert params("/v1/forecasts/categories/{category}") == {"category", *forecast_query}
    assert params("/v1/forecasts/{product_id}/chart") == {"product_id", *forecast_query}
    assert params("/v1/forecasts/{product_id}/chart.png") == {"product_id", *forecast_query}
    assert params("/v1/inventory/{product_id}/plan") == {
        "product_id", "service_level", "lead_time_days", "ordering_cost", "holding_cost_rate"}
    assert params("/v1/pricing/{product_id}") == {"product_id", "objective", "min_margin", "max_change"}
    assert params("/v1/analytics/segments") == {"as_of", "sample_size"}
    assert params("/v1/analytics/funnel") == {"category", "from_date", "to_date"}
    assert params("/v1/analytics/cohorts") == {"period", "max_periods", "from_date", "to_date"}
    assert params("/v1/analytics/users/{user_id}") == {"user_id"}
    # /v1/analytics/recommendations is the experiments' (gateway/routes/experiments.py: the recommender's counters)
    for path, operation in ((p, o["get"]) for p, o in paths.items() if p.startswith(
            ("/v1/forecasts", "/v1/inventory", "/v1/pricing", "/v1/analytics"))
            and p != "/v1/analytics/recommendations"):
        assert operation["tags"] == ["forecasting"], path
        assert {"200", "400", "404", "503", "504"} <= set(operation["responses"]), path
        assert operation["description"] or operation["summary"], path
    png = paths["/v1/forecasts/{product_id}/chart.png"]["get"]["responses"]["200"]
    assert set(png["content"]) == {"image/png"}
    forecast = paths["/v1/forecasts/{product_id}"]["get"]
    reply_ref = forecast["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    reply = schemas[reply_ref.rsplit("/", 1)[1]]
    assert {"points", "history", "model", "backtest", "interval_level"} <= set(reply["properties"])
    horizon = next(p for p in forecast["parameters"] if p["name"] == "horizon")["schema"]
    assert (horizon["minimum"], horizon["maximum"], horizon["default"]) == (1, 365, 28)
    assert "forecasting" in {t["name"] for t in spec["tags"]}
