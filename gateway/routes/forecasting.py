"""Forecasting routes: REST -> forecasting gRPC (demand forecasts and their charts, inventory plans, price
recommendations, customer analytics: RFM segments, funnel, cohorts, one customer's profile).

Every route is a read: the gateway retries it when the service is briefly unavailable
(gateway/backends.py). Dates are UTC days written ``YYYY-MM-DD``; demand is in units per day."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from flask import Response, current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from gateway.json import reply_json
from gateway.problems import ApiProblem, Problem
from gateway.routes import QueryModel
from protos import forecasting_pb2 as pb

forecasting = APIBlueprint(
    "forecasting", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="forecasting",
                  description="Demand forecasts, inventory plans, pricing and customer analytics")],
)

MAX_HORIZON_DAYS = 365
DEFAULT_HORIZON_DAYS = 28
DEFAULT_INTERVAL_LEVEL = 0.8
MAX_HISTORY_DAYS = 3660
DEFAULT_HISTORY_DAYS = 90
MAX_SAMPLE_SIZE = 100
MAX_COHORT_PERIODS = 52
DEFAULT_COHORT_PERIODS = 12
MAX_LEAD_TIME_DAYS = 365
MAX_HOLDING_COST_RATE = 10
# Charts change only when new sales arrive or the model is retrained; browsers may keep one a few minutes.
CHART_CACHE_CONTROL = "private, max-age=300"

OBJECTIVES = {"revenue": pb.OBJECTIVE_REVENUE, "profit": pb.OBJECTIVE_PROFIT}
COHORT_PERIODS = {"day": pb.COHORT_PERIOD_DAY, "week": pb.COHORT_PERIOD_WEEK, "month": pb.COHORT_PERIOD_MONTH}


# ------------------------------------------------------------------ request models


_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_day(value: Any) -> Any:
    """Only ``YYYY-MM-DD``: pydantic alone would also take unix timestamps and other spellings."""
    if isinstance(value, str):
        if not _ISO_DAY.fullmatch(value):
            raise PydanticCustomError("date_format", "must be a day written YYYY-MM-DD, e.g. 2026-11-28")
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise PydanticCustomError("date_value", "{day} is not a day of the calendar",
                                      {"day": value}) from None
    return value


Day = Annotated[date, BeforeValidator(_iso_day)]


def _day(what: str) -> Any:
    return Field(None, description=f"{what}, YYYY-MM-DD (UTC)")


class ProductPath(BaseModel):
    product_id: str = Field(min_length=1, max_length=128, description="the catalog product id")


class CategoryPath(BaseModel):
    category: str = Field(min_length=1, max_length=128, description="the catalog category, e.g. bags")


class CustomerPath(BaseModel):
    user_id: str = Field(min_length=1, max_length=128, description="the shop's user id (never echoed back)")


class ForecastQuery(QueryModel):
    horizon: int = Field(DEFAULT_HORIZON_DAYS, ge=1, le=MAX_HORIZON_DAYS,
                         description=f"days to forecast, starting the day after the last full day observed, "
                                     f"1..{MAX_HORIZON_DAYS}")
    level: float = Field(DEFAULT_INTERVAL_LEVEL, gt=0, lt=1, allow_inf_nan=False,
                         description="coverage of the prediction interval yhat_lower..yhat_upper, strictly "
                                     "between 0 and 1 (0.8: actual demand should fall inside it 80% of days)")
    history: int = Field(DEFAULT_HISTORY_DAYS, ge=-1, le=MAX_HISTORY_DAYS,
                         description=f"days of past sales to return in `history` (to draw beside the "
                                     f"forecast), up to {MAX_HISTORY_DAYS}; -1 for none (0 means the "
                                     f"default, {DEFAULT_HISTORY_DAYS})")

    def request(self, **target: str) -> pb.ForecastRequest:
        return pb.ForecastRequest(horizon_days=self.horizon, interval_level=self.level,
                                  history_days=self.history, **target)


class InventoryPlanQuery(QueryModel):
    service_level: float | None = Field(
        None, gt=0, lt=1, allow_inf_nan=False,
        description="target probability of not running out of stock before a new order arrives, strictly "
                    "between 0 and 1; the service's default is 0.95")
    lead_time_days: float | None = Field(
        None, ge=0, le=MAX_LEAD_TIME_DAYS, allow_inf_nan=False,
        description=f"supplier lead time in days, 0..{MAX_LEAD_TIME_DAYS}; the service's default is 7")
    ordering_cost: float | None = Field(
        None, ge=0, allow_inf_nan=False,
        description="fixed cost of placing one order, in the catalog currency, >= 0; the service's default "
                    "is 50")
    holding_cost_rate: float | None = Field(
        None, gt=0, le=MAX_HOLDING_COST_RATE, allow_inf_nan=False,
        description=f"yearly cost of holding one unit, as a fraction of its unit cost, above 0 and at most "
                    f"{MAX_HOLDING_COST_RATE}; the service's default is 0.25")


class PricingQuery(QueryModel):
    objective: Literal["revenue", "profit"] = Field(
        "revenue", description="maximise revenue (price x demand) or profit ((price - unit cost) x demand)")
    min_margin: float | None = Field(
        None, ge=0, lt=1, allow_inf_nan=False,
        description="smallest margin (price - cost) / price the recommended price must keep, 0 <= x < 1; "
                    "the service's default is 0 (never below cost)")
    max_change: float | None = Field(
        None, gt=0, le=1, allow_inf_nan=False,
        description="largest change from the current price as a fraction of it, 0 < x <= 1; the service's "
                    "default is 0.2 (+-20%)")


class SegmentsQuery(QueryModel):
    as_of: Day | None = _day("analyse the events up to this day; default today")
    sample_size: int = Field(0, ge=0, le=MAX_SAMPLE_SIZE,
                             description=f"pseudonymised example customer ids per segment, "
                                         f"0..{MAX_SAMPLE_SIZE}")


class DateRangeQuery(QueryModel):
    from_date: Day | None = None
    to_date: Day | None = None

    @field_validator("to_date")
    @classmethod
    def _ordered(cls, value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("from_date")
        if value is not None and start is not None and start > value:
            raise PydanticCustomError(
                "date_range", "to_date ({to_date}) must not be before from_date ({from_date})",
                {"to_date": value.isoformat(), "from_date": start.isoformat()},
            )
        return value

    def dates(self) -> dict[str, str]:
        return {name: day.isoformat() for name in ("from_date", "to_date") if (day := getattr(self, name))}


class FunnelQuery(DateRangeQuery):
    category: str | None = Field(None, min_length=1, max_length=128,
                                 description="only this category; absent: every category")
    from_date: Day | None = _day("first day, inclusive; default 30 days before to_date")
    to_date: Day | None = _day("last day, inclusive; default today")


class CohortsQuery(DateRangeQuery):
    period: Literal["day", "week", "month"] = Field(
        "month", description="length of an acquisition period and of each retention step (weeks start "
                             "Monday)")
    max_periods: int = Field(DEFAULT_COHORT_PERIODS, ge=1, le=MAX_COHORT_PERIODS,
                             description=f"periods after acquisition per cohort, 1..{MAX_COHORT_PERIODS}")
    from_date: Day | None = _day("first acquisition day considered; default no limit")
    to_date: Day | None = _day("last day considered; default today")


# ------------------------------------------------------------------ response models (for the spec)


class ForecastPoint(BaseModel):
    date: str = Field(description="YYYY-MM-DD")
    yhat: float = Field(description="expected demand that day, units")
    yhat_lower: float = Field(description="lower bound of the prediction interval (>= 0)")
    yhat_upper: float = Field(description="upper bound of the prediction interval")


class HistoryPoint(BaseModel):
    date: str = Field(description="YYYY-MM-DD")
    y: float = Field(description="units sold that day (0 on days without sales)")


class Backtest(BaseModel):
    mase: float = Field(description="mean absolute scaled error vs. the seasonal-naive forecast "
                                    "(< 1 beats it)")
    smape: float = Field(description="symmetric MAPE, a fraction 0..2")
    mae: float = Field(description="mean absolute error, units per day")
    horizon: int = Field(description="days forecast in each fold")
    folds: int = Field(description="rolling origins evaluated (0: too little history to backtest)")


class Forecast(BaseModel):
    product_id: str | None = Field(None, description="present for a product forecast")
    category: str | None = Field(None, description="present for a category forecast")
    points: list[ForecastPoint] = Field(description="one per day, from the day after the last history day")
    history: list[HistoryPoint] = Field(description="oldest first, ending at the last full day observed")
    model: str = Field(description='the chosen model, e.g. "ets", "seasonal_naive", "croston", "mean"')
    model_version: str
    backtest: Backtest | None = Field(None, description="rolling-origin backtest of the chosen model")
    interval_level: float = Field(description="coverage actually used for yhat_lower / yhat_upper")


class ChartHistory(BaseModel):
    dates: list[str] = Field(description="YYYY-MM-DD, oldest first")
    y: list[float | None] = Field(description="units sold per day")


class ChartForecast(BaseModel):
    dates: list[str] = Field(description="YYYY-MM-DD")
    yhat: list[float | None] = Field(description="expected units per day")
    lower: list[float | None] = Field(description="lower bound of the interval band")
    upper: list[float | None] = Field(description="upper bound of the interval band")


class ForecastChart(BaseModel):
    """A chart description for a web page: history line, forecast line and its interval band."""

    model_config = ConfigDict(extra="allow")

    title: str
    level: float = Field(description="coverage of the band, 0..1")
    interval_label: str = Field(description='legend text, e.g. "80% interval"')
    x: str = Field(description="x axis label")
    y: str = Field(description="y axis label")
    history: ChartHistory
    forecast: ChartForecast
    forecast_start: str | None = Field(description="first forecast day; null without points")


class InventoryPlan(BaseModel):
    product_id: str
    on_hand: int = Field(description="last known stock")
    safety_stock: float = Field(description="units kept against demand above the forecast")
    reorder_point: float = Field(description="order when stock falls to this many units")
    order_quantity: int = Field(description="units to order (economic order quantity)")
    stockout_risk: float = Field(description="probability 0..1 of running out before a new order arrives")
    days_of_cover: float = Field(description="on_hand / forecast daily demand")
    forecast_demand_lead_time: float = Field(description="units expected to sell during the lead time")
    service_level: float = Field(description="parameters actually used")
    lead_time_days: float
    reorder_now: bool = Field(description="on_hand <= reorder_point")
    mean_daily_demand: float
    daily_demand_std: float
    ordering_cost: float
    holding_cost_rate: float
    unit_cost: float
    currency: str


class PriceRecommendation(BaseModel):
    product_id: str
    currency: str
    objective: str = Field(description="revenue | profit: the objective actually used")
    current_price: float
    recommended_price: float = Field(description="within lower_bound..upper_bound")
    elasticity: float = Field(description="price elasticity of demand: -1.5 means +1% price -> -1.5% demand")
    elasticity_ci_low: float = Field(description="95% confidence interval of the elasticity")
    elasticity_ci_high: float
    r_squared: float = Field(description="fit of the demand model, 0..1")
    observations: int = Field(description="(price, demand) observations used in the fit")
    expected_demand_current: float = Field(description="units per day at the current price")
    expected_demand_recommended: float
    expected_revenue_current: float = Field(description="per day, in currency")
    expected_revenue_recommended: float
    expected_profit_current: float
    expected_profit_recommended: float
    lower_bound: float = Field(description="lowest allowed price (max_change and min_margin)")
    upper_bound: float = Field(description="highest allowed price (max_change)")
    unit_cost: float = Field(description="from the catalog (0 when unknown)")
    note: str = Field(description='caveats, e.g. "too few price changes: category elasticity used"; '
                                  '"" when none')


class Segment(BaseModel):
    name: str = Field(description='e.g. "champions", "loyal", "new", "at_risk", "lost"')
    description: str
    customers: int
    customer_share: float = Field(description="0..1")
    revenue: float
    revenue_share: float = Field(description="0..1")
    avg_recency_days: float
    avg_frequency: float
    avg_monetary: float
    sample_user_ids: list[str] = Field(description="pseudonymised ids, as in the customer profile")


class Segments(BaseModel):
    segments: list[Segment] = Field(description="largest revenue first")
    total_customers: int
    total_revenue: float
    currency: str
    as_of: str = Field(description="the day actually used")


class FunnelStep(BaseModel):
    name: str = Field(description="view | add_to_cart | purchase")
    users: int
    events: int
    conversion: float = Field(description="users / users of the previous step, 0..1")
    conversion_from_start: float = Field(description="users / users of the first step, 0..1")


class CategoryFunnel(BaseModel):
    category: str
    steps: list[FunnelStep]


class Funnel(BaseModel):
    steps: list[FunnelStep] = Field(description="overall (or the requested category), in funnel order")
    categories: list[CategoryFunnel] = Field(description="per category, most viewed first")
    from_date: str = Field(description="the range actually used")
    to_date: str


class Cohort(BaseModel):
    cohort: str = Field(description="first day of the acquisition period, YYYY-MM-DD")
    size: int
    retention: list[float] = Field(description="fraction of size who purchased i periods after acquisition")
    active: list[int]


class Cohorts(BaseModel):
    period: str = Field(description="day | week | month: the period actually used")
    cohorts: list[Cohort] = Field(description="oldest first")


class Rfm(BaseModel):
    recency_days: float
    frequency: int
    monetary: float
    r_score: int = Field(description="quintile score 1..5 (5 = best)")
    f_score: int
    m_score: int


class CustomerProfile(BaseModel):
    pseudonymous_id: str = Field(description="keyed hash of the user id; the raw id is never returned")
    rfm: Rfm | None = None
    segment: str
    repeat_purchase_probability: float = Field(description="probability of a purchase in the next 90 days")
    predicted_customer_value: float = Field(description="expected spend in the next 365 days")
    currency: str
    orders: int
    total_spend: float
    average_order_value: float
    first_purchase_at: str | None = Field(None, description="RFC 3339; absent when unset")
    last_purchase_at: str | None = Field(None, description="RFC 3339; absent when unset")
    avg_days_between_purchases: float
    event_counts: dict[str, int]
    cart_to_purchase_rate: float
    favourite_categories: list[str]


# ------------------------------------------------------------------ calling the service


def _forecasting() -> Any:
    return current_app.extensions["shopai.backends"].stub("forecasting")


def _deadline() -> float:
    return current_app.config["GRPC_DEADLINE"]


def _charts() -> Any:
    """The chart renderer (matplotlib), imported on first use so that the gateway starts without it."""
    try:
        from gateway import charts
    except ImportError as exc:
        raise ApiProblem(501, f"charts are not available in this gateway: {exc}",
                         slug="charts-unavailable") from exc
    return charts


def _chart_args(reply: pb.ForecastResponse, title: str) -> dict[str, Any]:
    return {
        "history_dates": [p.date for p in reply.history], "history_y": [p.y for p in reply.history],
        "dates": [p.date for p in reply.points], "yhat": [p.yhat for p in reply.points],
        "lower": [p.yhat_lower for p in reply.points], "upper": [p.yhat_upper for p in reply.points],
        "title": title, "level": reply.interval_level,
    }


def _product_chart_args(product_id: str, query: ForecastQuery) -> dict[str, Any]:
    reply = _forecasting().Forecast(query.request(product_id=product_id), timeout=_deadline())
    return _chart_args(reply, f"{product_id}: daily demand forecast ({reply.model})")


# ------------------------------------------------------------------ routes


READ = {400: Problem, 404: Problem, 501: Problem, 503: Problem, 504: Problem}


@forecasting.get("/forecasts/<product_id>", responses={200: Forecast, **READ})
def product_forecast(path: ProductPath, query: ForecastQuery) -> tuple[dict, int]:
    """Daily demand forecast for a product, with a prediction interval, recent sales and backtest metrics.

    `points` has one entry per day for `horizon` days, starting the day after the last full day observed:
    `yhat` is the expected demand (units), `yhat_lower`..`yhat_upper` the interval that should hold the
    actual demand on `level` of the days. `history` is the daily sales before that (for a chart).
    `backtest` tells how good the chosen `model` was on the product's own past (`mase` < 1 beats
    repeating last week; absent when the model was not backtested). 404 when the product is not in the
    catalog; 400 when it has no sales yet (a forecast starts from its first order)."""
    reply = _forecasting().Forecast(query.request(product_id=path.product_id), timeout=_deadline())
    return reply_json(reply), 200


@forecasting.get("/forecasts/categories/<category>", responses={200: Forecast, **READ})
def category_forecast(path: CategoryPath, query: ForecastQuery) -> tuple[dict, int]:
    """Daily demand forecast for a whole category (the sum over its products).

    The same parameters and answer as the product forecast, with `category` instead of `product_id`.
    404 when the category is not in the catalog."""
    reply = _forecasting().Forecast(query.request(category=path.category), timeout=_deadline())
    return reply_json(reply), 200


@forecasting.get(
    "/forecasts/<product_id>/chart.png",
    responses={200: {"description": "the chart as a PNG image",
                     "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
               **READ},
)
def product_forecast_png(path: ProductPath, query: ForecastQuery) -> Response:
    """The product's forecast as a PNG chart: recent sales, the forecast and its interval band.

    Takes the forecast's parameters; usable directly as `<img src>`. Browsers may cache it for 5 minutes.
    501 when this gateway was deployed without the chart renderer."""
    png = _charts().forecast_chart_png(**_product_chart_args(path.product_id, query))
    response = Response(png, mimetype="image/png")
    response.headers["Cache-Control"] = CHART_CACHE_CONTROL
    return response


@forecasting.get("/forecasts/<product_id>/chart", responses={200: ForecastChart, **READ})
def product_forecast_chart(path: ProductPath, query: ForecastQuery) -> tuple[dict, int]:
    """The product's forecast as a chart description for a web page (the data of the PNG chart).

    Takes the forecast's parameters."""
    return _charts().forecast_chart_json(**_product_chart_args(path.product_id, query)), 200


@forecasting.get("/inventory/<product_id>/plan", responses={200: InventoryPlan, **READ})
def inventory_plan(path: ProductPath, query: InventoryPlanQuery) -> tuple[dict, int]:
    """When and how much to reorder a product: safety stock, reorder point, order quantity, stock-out risk.

    Every parameter is optional; the answer repeats the values actually used. `reorder_now` is true when
    the stock on hand is at or below the reorder point; `order_quantity` is the economic order quantity.
    404 when the product is not in the catalog; 400 when its stock was never counted (no inventory event)."""
    given = {name: value for name, value in query.model_dump().items() if value is not None}
    reply = _forecasting().InventoryPlan(pb.InventoryPlanRequest(product_id=path.product_id, **given),
                                         timeout=_deadline())
    return reply_json(reply), 200


@forecasting.get("/pricing/<product_id>", responses={200: PriceRecommendation, **READ})
def price_recommendation(path: ProductPath, query: PricingQuery) -> tuple[dict, int]:
    """The price that maximises revenue or profit, from the product's estimated price elasticity.

    The recommended price stays within `lower_bound`..`upper_bound` (`max_change` around the current price,
    and never below the margin `min_margin`). The answer compares expected daily demand, revenue and profit
    at the current and the recommended price; `note` carries caveats (e.g. a category elasticity was used
    because the product's price rarely changed). 404 when the product is not in the catalog; 400 when no
    elasticity can be estimated yet (no trained model, no price, or no price history)."""
    bounds = query.model_dump(exclude={"objective"})
    given = {name: value for name, value in bounds.items() if value is not None}
    reply = _forecasting().PriceRecommendation(
        pb.PriceRecommendationRequest(product_id=path.product_id, objective=OBJECTIVES[query.objective],
                                      **given),
        timeout=_deadline(),
    )
    return reply_json(reply), 200


def _report(rpc: Any, request: Any) -> tuple[dict, int, dict[str, str]]:
    """A report the service computes in the background and answers from what it kept: the answer says when
    it was computed (`X-ShopAI-Computed-At`) and, with `X-ShopAI-Stale: true`, that events arrived since and
    a newer one is on its way. A first request of new parameters that is not ready within the deadline gets
    a 503 with `Retry-After`."""
    reply, call = rpc.with_call(request, timeout=_deadline())
    meta = dict(call.trailing_metadata() or ())
    headers = {}
    if meta.get("x-shopai-computed-at"):
        when = datetime.fromtimestamp(float(meta["x-shopai-computed-at"]), UTC)
        headers["X-ShopAI-Computed-At"] = when.isoformat(timespec="seconds").replace("+00:00", "Z")
        headers["X-ShopAI-Stale"] = "true" if meta.get("x-shopai-stale") == "1" else "false"
    return reply_json(reply), 200, headers


@forecasting.get("/analytics/segments", responses={200: Segments, **READ})
def segments(query: SegmentsQuery) -> tuple[dict, int]:
    """Customers grouped into RFM segments (recency, frequency, monetary value), largest revenue first.

    Each segment says how it is defined, how many customers and how much revenue it holds, and, with
    `sample_size`, a few pseudonymised customer ids to look up with the customer profile route."""
    return _report(_forecasting().Segments, pb.SegmentsRequest(
        as_of=query.as_of.isoformat() if query.as_of else "", sample_size=query.sample_size))


@forecasting.get("/analytics/funnel", responses={200: Funnel, **READ})
def funnel(query: FunnelQuery) -> tuple[dict, int]:
    """The view -> add_to_cart -> purchase funnel over a range of days, overall and per category.

    `users` counts distinct users who reached a step; `conversion` is relative to the previous step and
    `conversion_from_start` to the first. Defaults to the last 30 days; the answer gives the range used."""
    return _report(_forecasting().Funnel, pb.FunnelRequest(category=query.category or "", **query.dates()))


@forecasting.get("/analytics/cohorts", responses={200: Cohorts, **READ})
def cohorts(query: CohortsQuery) -> tuple[dict, int]:
    """Retention of customers grouped by the period of their first purchase, oldest cohort first.

    `retention[i]` is the fraction of the cohort who purchased again `i` periods after acquisition
    (`retention[0]` is 1); only periods already observed are listed."""
    return _report(_forecasting().Cohorts, pb.CohortsRequest(
        period=COHORT_PERIODS[query.period], max_periods=query.max_periods, **query.dates()))


@forecasting.get("/analytics/users/<user_id>", responses={200: CustomerProfile, **READ})
def customer_profile(path: CustomerPath) -> tuple[dict, int]:
    """One customer's purchase behaviour: RFM scores, segment, repeat-purchase probability and predicted
    value, order statistics, event counts and favourite categories.

    The answer is pseudonymised (`pseudonymous_id`, never the user id). 404 when the user was never seen."""
    reply = _forecasting().UserProfile(pb.UserProfileRequest(user_id=path.user_id), timeout=_deadline())
    return reply_json(reply), 200
