"""The forecasting service as a shop meets it: orders, views and stock through the real broker, the
service as its own process, answers over gRPC and through the gateway's REST routes, reorder alerts
on alerts.v1."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

import grpc
import numpy as np
import pytest
from PIL import Image

from gateway.app import close_app, create_app
from protos import common_pb2
from protos import forecasting_pb2 as pb
from protos import forecasting_pb2_grpc as pb_grpc
from services.common import topics
from services.common.bus import EventPublisher
from services.common.events import new_event
from services.common.projection import rebuilding
from services.forecasting.store import ForecastKeys as K
from tests.integration.test_vertical_slice import read_topic
from tests.support import assert_problem, staff, wait_for

pytestmark = pytest.mark.integration
DAYS = 84
# The last Sunday before today: the same weekdays, hence the same series, whatever day the tests run.
_YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)
END = _YESTERDAY - timedelta(days=(_YESTERDAY.weekday() + 1) % 7)
START = END - timedelta(days=DAYS - 1)
USERS = [f"shopper-{i}" for i in range(30)]


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def catalog() -> list:
    def product(pid: str, category: str, price: float, cost: float):
        return new_event("product.upserted", {"product_id": pid, "title": f"Product {pid}", "category": category,
                                              "price": price, "cost": cost, "currency": "CNY"},
                         occurred_at=at(START - timedelta(days=2)))
    return [product("f1", "bags", 100.0, 40.0), product("f2", "bags", 50.0, 20.0), product("f3", "shoes", 80.0, 30.0)]


def shop_history() -> tuple[list, dict[str, np.ndarray]]:
    """Orders and behaviour over DAYS days: f1 sells 3 a weekday and 6 a weekend day (+-1) at 100 (one order
    per unit-pair, different shoppers); f2 one every other day at 50, then daily at 40 for the last
    half (its price cut); every day 3 more views of f1 and 4 of f2 that buy nothing; views, carts and
    purchases for the funnel."""
    rng = np.random.default_rng(3)
    truth = {"f1": np.zeros(DAYS), "f2": np.zeros(DAYS)}
    events = []
    n = 0
    for i in range(DAYS):
        day = START + timedelta(days=i)
        cut = i >= DAYS // 2
        noise = int(rng.integers(-1, 2))  # -1, 0 or +1: real demand is never exactly periodic
        wanted = {"f1": (6 if day.weekday() >= 5 else 3) + noise, "f2": 1 if i % 2 == 0 or cut else 0}
        prices = {"f1": 100.0, "f2": 40.0 if cut else 50.0}
        for pid, extra in (("f1", 3), ("f2", 4)):
            for j in range(extra):
                events.append(new_event("interaction.view", {"user_id": USERS[(i + j) % len(USERS)], "product_id": pid,
                                                             "price": prices[pid]}, occurred_at=at(day, 7)))
        for pid, units in wanted.items():
            price = prices[pid]
            while units > 0:
                q = min(units, 2)
                units -= q
                n += 1
                user = USERS[int(rng.integers(len(USERS)))]
                when = at(day, 9 + n % 10)
                events.append(new_event("interaction.view", {"user_id": user, "product_id": pid, "price": price},
                                        occurred_at=when - timedelta(minutes=5)))
                events.append(new_event("interaction.add_to_cart", {"user_id": user, "product_id": pid},
                                        occurred_at=when - timedelta(minutes=3)))
                events.append(new_event("interaction.purchase", {"user_id": user, "product_id": pid},
                                        occurred_at=when))
                events.append(new_event("order.created", {
                    "order_id": f"o{n}", "user_id": user, "lines": [{"product_id": pid, "quantity": q,
                                                                      "unit_price": price}],
                    "total": q * price, "currency": "CNY"}, occurred_at=when))
                truth[pid][i] += q
        events.append(new_event("interaction.view", {"user_id": USERS[i % len(USERS)], "product_id": "f3",
                                                     "price": 80.0}, occurred_at=at(day, 20)))
    return events, truth


@pytest.fixture
def forecasting(settings, start_service_with, redis_client):
    # A forecast not kept yet is computed by the service's background worker; these calls wait for it (the
    # default wait is 1 s, then 503 + Retry-After: test_forecasting_kept.py).
    service = start_service_with(settings, "forecasting", SHOPAI_FORECAST_AUTO_TRAIN="false",
                                 SHOPAI_FORECAST_REFRESH_SECONDS="1", SHOPAI_RETRAIN_CHECK_SECONDS="1",
                                 SHOPAI_ANALYTICS_REFRESH_SECONDS="1", SHOPAI_FORECAST_WAIT_SECONDS="25")
    settings.forecasting.grpc_port = service.grpc_port
    channel = grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}")
    stub = pb_grpc.ForecastingStub(channel)
    publisher = EventPublisher(settings)
    publisher.publish(catalog())
    wait_for(lambda: redis_client.scard(K.catalog) == 3, 30, what="the catalog projected")
    publisher.publish([new_event("inventory.set", {"product_id": pid, "on_hand": 400},
                                 occurred_at=at(START - timedelta(days=1))) for pid in ("f1", "f2")])
    # Topics are consumed in parallel: the stock-take goes first, as it would in a real shop.
    wait_for(lambda: redis_client.hlen(K.stock_counted_at) == 2, 30, what="the stock counted")
    events, truth = shop_history()
    publisher.publish(events)
    expected = {t: sum(1 for e in events if e.type == t) for t in {e.type for e in events}}
    wait_for(lambda: all(int(redis_client.hget(K.stats, t) or 0) == n for t, n in expected.items()), 60,
             what="every event projected")
    app = create_app(settings)
    yield stub, staff(app.test_client()), publisher, events, truth, settings
    close_app(app)
    channel.close()
    publisher.close()


def history(stub, pid: str) -> np.ndarray:
    reply = stub.Forecast(pb.ForecastRequest(product_id=pid, horizon_days=7, history_days=DAYS), timeout=30)
    assert reply.history[-1].date == END.isoformat()
    days = {date.fromisoformat(h.date): h.y for h in reply.history}
    return np.array([days.get(START + timedelta(days=i), 0.0) for i in range(DAYS)])


def test_sales_build_the_daily_series_exactly_once(forecasting, redis_client):
    stub, _client, publisher, events, truth, _ = forecasting
    assert np.array_equal(history(stub, "f1"), truth["f1"])
    assert np.array_equal(history(stub, "f2")[-60:], truth["f2"][-60:])
    # The whole log again (a replay after a crash, a producer retry): nothing counts twice.
    applied = redis_client.hget(K.stats, "order.created")
    publisher.publish([e for e in events if e.type == "order.created"])
    marker = new_event("interaction.view", {"user_id": "late", "product_id": "f3", "price": 80.0},
                       occurred_at=at(END, 22))
    publisher.publish([marker])
    wait_for(lambda: redis_client.hget(K.user_counts("late"), "view") == "1", 30, what="the replay consumed")
    assert redis_client.hget(K.stats, "order.created") == applied
    assert np.array_equal(history(stub, "f1"), truth["f1"])
    # A cancellation takes the sale back from the day it was made.
    first = next(e for e in events if e.type == "order.created" and e.payload["lines"][0]["product_id"] == "f1")
    publisher.publish([new_event("order.cancelled", {**first.payload, "reason": "changed_mind"},
                                 occurred_at=at(END, 23))])
    expected = truth["f1"].copy()
    expected[(first.occurred_at.date() - START).days] -= first.payload["lines"][0]["quantity"]
    wait_for(lambda: np.array_equal(history(stub, "f1"), expected), 30, what="the cancellation applied")

    # Forecasts are cached, and refreshed when new sales arrive: a burst of 40 units on the last day.
    def total() -> float:
        request = pb.ForecastRequest(product_id="f1", horizon_days=7)
        return sum(p.yhat for p in stub.Forecast(request, timeout=30).points)

    before = total()
    assert total() == before  # served from the cache
    publisher.publish([new_event("order.created", {"order_id": "burst", "user_id": USERS[1], "lines": [
        {"product_id": "f1", "quantity": 40, "unit_price": 100.0}], "total": 4000.0, "currency": "CNY"},
        occurred_at=at(END, 21))])
    wait_for(lambda: total() > before, 30, what="the forecast refreshed after new sales")


def test_forecasts_plans_and_prices(forecasting):
    stub, client, _publisher, _events, truth, _ = forecasting
    reply = stub.Forecast(pb.ForecastRequest(product_id="f1", horizon_days=14, interval_level=0.9), timeout=30)
    assert len(reply.points) == 14 and reply.points[0].date == (END + timedelta(days=1)).isoformat()
    assert all(0 <= p.yhat_lower <= p.yhat <= p.yhat_upper for p in reply.points)
    assert reply.interval_level == pytest.approx(0.9) and reply.model_version == "untrained"
    # A product with no sales gets a clear answer; an unknown one is not found.
    with pytest.raises(grpc.RpcError) as err:
        stub.Forecast(pb.ForecastRequest(product_id="f3"), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "no sales" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.Forecast(pb.ForecastRequest(product_id="nope"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    for bad in (pb.ForecastRequest(product_id="f1", horizon_days=400), pb.ForecastRequest(),
                pb.ForecastRequest(product_id="f1", interval_level=1.0)):
        with pytest.raises(grpc.RpcError) as err:
            stub.Forecast(bad, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    job = stub.Train(common_pb2.TrainRequest(), timeout=10)
    wait_for(lambda: stub.GetJob(common_pb2.GetJobRequest(job_id=job.job_id), timeout=10).state
             in (common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED), 240, interval=1, what="training")
    done = stub.GetJob(common_pb2.GetJobRequest(job_id=job.job_id), timeout=10)
    assert done.state == common_pb2.JOB_STATE_SUCCEEDED, done.message
    trained = stub.Forecast(pb.ForecastRequest(product_id="f1", horizon_days=28), timeout=30)
    assert trained.model_version == done.model_version and trained.backtest.folds >= 1
    # The backtest of the chosen model is on the record, and it learnt the weekly pattern.
    assert 0 < trained.backtest.mae < 0.3 * truth["f1"].mean() and trained.backtest.smape < 0.5, trained.backtest
    weekend = [p.yhat for p in trained.points if date.fromisoformat(p.date).weekday() >= 5]
    weekday = [p.yhat for p in trained.points if date.fromisoformat(p.date).weekday() < 5]
    assert np.mean(weekend) > np.mean(weekday) + 1.5
    assert abs(sum(p.yhat for p in trained.points) - 28 * truth["f1"][-28:].mean()) < 0.25 * 28 * truth["f1"].mean()
    category = client.get("/v1/forecasts/categories/bags?horizon=7")
    assert category.status_code == 200, category.json
    assert category.json["category"] == "bags" and len(category.json["points"]) == 7

    def plan(**fields) -> pb.InventoryPlanResponse:
        return stub.InventoryPlan(pb.InventoryPlanRequest(product_id="f1", **fields), timeout=30)

    base = plan()
    assert base.on_hand == 400 - int(truth["f1"].sum())
    assert plan(lead_time_days=14).reorder_point > base.reorder_point > plan(lead_time_days=2).reorder_point
    assert plan(service_level=0.99).reorder_point > base.reorder_point > plan(service_level=0.8).reorder_point
    assert base.reorder_point == pytest.approx(base.forecast_demand_lead_time + base.safety_stock)
    rest = client.get("/v1/inventory/f1/plan?lead_time_days=3&service_level=0.9")
    assert rest.status_code == 200 and rest.json["lead_time_days"] == 3 and rest.json["order_quantity"] > 0
    assert_problem(client.get("/v1/inventory/f1/plan?service_level=1.5"), 400)

    price = stub.PriceRecommendation(pb.PriceRecommendationRequest(product_id="f1", objective=pb.OBJECTIVE_PROFIT,
                                                                   max_change=0.1), timeout=30)
    assert price.current_price == 100.0 and 90.0 <= price.recommended_price <= 110.0
    assert price.lower_bound == pytest.approx(90.0) and price.upper_bound == pytest.approx(110.0)
    assert price.expected_profit_recommended >= price.expected_profit_current - 1e-9
    assert "category elasticity" in price.note  # f1 never changed its price: f2's price cut speaks for bags
    assert price.elasticity < 0
    chart = client.get("/v1/forecasts/f1/chart.png?horizon=14")
    assert chart.status_code == 200 and chart.content_type == "image/png"
    assert Image.open(io.BytesIO(chart.data)).size[0] >= 400


def test_stock_below_the_reorder_point_raises_an_alert(forecasting):
    stub, _client, publisher, _events, _truth, settings = forecasting
    on_hand = stub.InventoryPlan(pb.InventoryPlanRequest(product_id="f1"), timeout=30).on_hand
    publisher.publish([new_event("inventory.adjusted", {"product_id": "f1", "delta": -(on_hand - 5)}, occurred_at=datetime.now(UTC))])
    wait_for(lambda: stub.InventoryPlan(pb.InventoryPlanRequest(product_id="f1"), timeout=30).on_hand == 5, 30,
             what="the stock change projected")
    plan = stub.InventoryPlan(pb.InventoryPlanRequest(product_id="f1"), timeout=30)
    assert plan.reorder_now and plan.stockout_risk > 0.5
    alerts = [a for a in read_topic(settings.kafka_bootstrap_servers, topics.ALERTS, 1, timeout=30)
              if a["type"] == "alert.reorder_needed"]
    assert alerts and alerts[0]["payload"]["product_id"] == "f1" and alerts[0]["payload"]["on_hand"] == 5


def fresh(client, url: str):
    """The report at ``url`` once it was computed after the last event (reports are computed in the
    background: an answer may say ``X-ShopAI-Stale: true`` while a newer one is on its way)."""
    answers = []

    def ready() -> bool:
        answers.append(client.get(url))
        return answers[-1].status_code == 200 and answers[-1].headers["X-ShopAI-Stale"] == "false"

    wait_for(ready, 30, what=f"{url} computed from every event")
    assert answers[-1].headers["X-ShopAI-Computed-At"].endswith("Z")
    return answers[-1]


def test_behaviour_analytics_are_pseudonymous(forecasting):
    _stub, client, _publisher, events, _truth, _ = forecasting
    segments = fresh(client, "/v1/analytics/segments?sample_size=3")
    body = segments.json
    buyers = {e.payload["user_id"] for e in events if e.type == "order.created"}
    assert body["total_customers"] == len(buyers)
    assert sum(s["customers"] for s in body["segments"]) == len(buyers)
    assert body["total_revenue"] == pytest.approx(sum(e.payload["total"] for e in events if e.type == "order.created"))
    text = segments.get_data(as_text=True)
    assert not any(u in text for u in USERS)

    funnel = fresh(client, f"/v1/analytics/funnel?from_date={START}&to_date={END}")
    steps = {s["name"]: s for s in funnel.json["steps"]}
    assert steps["view"]["users"] >= steps["add_to_cart"]["users"] >= steps["purchase"]["users"] > 0
    assert steps["purchase"]["events"] == sum(1 for e in events if e.type == "interaction.purchase")
    assert {c["category"] for c in funnel.json["categories"]} == {"bags", "shoes"}
    assert_problem(client.get(f"/v1/analytics/funnel?from_date={END}&to_date={START}"), 400)

    cohorts = fresh(client, "/v1/analytics/cohorts?period=week&max_periods=8")
    rows = cohorts.json["cohorts"]
    assert sum(r["size"] for r in rows) == len(buyers) and all(r["retention"][0] == 1 for r in rows)

    profile = client.get(f"/v1/analytics/users/{USERS[0]}")
    assert profile.status_code == 200, profile.json
    p = profile.json
    assert USERS[0] not in profile.get_data(as_text=True) and p["pseudonymous_id"]
    mine = [e for e in events if e.type == "order.created" and e.payload["user_id"] == USERS[0]]
    assert p["orders"] == len(mine) and p["total_spend"] == pytest.approx(sum(e.payload["total"] for e in mine))
    assert p["event_counts"]["purchase"] == len(mine) and p["favourite_categories"][0] == "bags"
    assert 0 <= p["repeat_purchase_probability"] <= 1 and p["predicted_customer_value"] >= 0
    assert_problem(client.get("/v1/analytics/users/never-seen"), 404)


def test_a_product_whose_sales_were_all_cancelled_is_refused_with_the_reason(forecasting):
    """Never a silent zero forecast: f3's only order is cancelled after its forecast was cached, so its
    history has no demand; the refresher drops the cached forecast and the answer is the reason."""
    stub, client, publisher, _events, _truth, _ = forecasting
    order = {"order_id": "only-f3", "user_id": USERS[2], "lines": [{"product_id": "f3", "quantity": 2,
                                                                     "unit_price": 80.0}],
             "total": 160.0, "currency": "CNY"}
    request = pb.ForecastRequest(product_id="f3", horizon_days=7)

    def answer() -> grpc.StatusCode:
        try:
            stub.Forecast(request, timeout=30)
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            return exc.code()

    publisher.publish([new_event("order.created", order, occurred_at=at(END, 10))])
    wait_for(lambda: answer() == grpc.StatusCode.OK, 30, what="f3's first sale projected")
    assert sum(p.yhat for p in stub.Forecast(request, timeout=30).points) > 0
    publisher.publish([new_event("order.cancelled", {**order, "reason": "changed_mind"}, occurred_at=at(END, 11))])
    wait_for(lambda: answer() == grpc.StatusCode.FAILED_PRECONDITION, 30, what="the cached forecast dropped")
    with pytest.raises(grpc.RpcError) as err:
        stub.Forecast(request, timeout=30)
    assert "no demand" in err.value.details()
    problem = assert_problem(client.get("/v1/forecasts/f3?horizon=7"), 400)
    assert "no demand" in problem["detail"]


def test_returns_and_refunds_take_sales_and_spend_back(forecasting):
    """A return takes its units and value off the day of the sale; its refund is the same money, counted
    once; the shopper's spend for RFM and customer value falls with them (services/forecasting/core/returns.py)."""
    stub, client, publisher, _events, _truth, _ = forecasting
    sold_at = at(END - timedelta(days=3), 15)
    order = {"order_id": "ret-1", "user_id": "returner", "currency": "CNY", "total": 300.0,
             "lines": [{"product_id": "f2", "quantity": 3, "unit_price": 100.0}]}
    before = history(stub, "f2")
    publisher.publish([new_event("order.created", order, occurred_at=sold_at)])
    day = (sold_at.date() - START).days
    wait_for(lambda: history(stub, "f2")[day] == before[day] + 3, 30, what="the sale projected")

    def spend() -> float:
        reply = client.get("/v1/analytics/users/returner")
        assert reply.status_code == 200, reply.json
        return reply.json["total_spend"]

    assert spend() == pytest.approx(300.0)
    publisher.publish([
        new_event("order.returned", {"order_id": "ret-1", "user_id": "returner", "reason": "too big",
                                     "lines": [{"product_id": "f2", "quantity": 2, "unit_price": 100.0}]},
                  occurred_at=at(END, 9)),
        new_event("order.refunded", {"order_id": "ret-1", "user_id": "returner", "total": 200.0},
                  occurred_at=at(END, 10)),
    ])
    wait_for(lambda: history(stub, "f2")[day] == before[day] + 1, 30, what="the return applied")
    wait_for(lambda: spend() == pytest.approx(100.0), 30, what="the spend reduced once, not twice")


def test_reports_are_answered_from_the_background_worker_and_follow_new_orders(forecasting):
    """Issue #21: the request reads what the reports worker computed; a new order makes the kept answer stale
    (still served, marked) until the worker has computed it again."""
    _stub, client, publisher, events, _truth, _ = forecasting
    buyers = {e.payload["user_id"] for e in events if e.type == "order.created"}
    first = fresh(client, "/v1/analytics/segments")
    assert first.json["total_customers"] == len(buyers)
    publisher.publish([new_event("order.created", {
        "order_id": "report-1", "user_id": "new-buyer", "currency": "CNY", "total": 50.0,
        "lines": [{"product_id": "f1", "quantity": 1, "unit_price": 50.0}]}, occurred_at=at(END, 12))])
    later = {}

    def counted() -> bool:
        later["answer"] = fresh(client, "/v1/analytics/segments")
        return later["answer"].json["total_customers"] == len(buyers) + 1

    wait_for(counted, 30, what="the new buyer in the recomputed segments")
    assert later["answer"].headers["X-ShopAI-Computed-At"] >= first.headers["X-ShopAI-Computed-At"]


def test_a_product_looked_up_while_redis_is_rebuilt_is_retry_later_not_a_wrong_404(forecasting, redis_client):
    """Redis lost everything (a restart without its data): until the consumer has replayed the event log, the
    catalog only looks empty. A forecast of a real product then is UNAVAILABLE with retry-after (the gateway's
    503 or its kept answer), never NOT_FOUND; once rebuilt it is answered again, and an unknown one is 404."""
    stub, _client, _publisher, _events, _truth, _ = forecasting
    redis_client.flushdb()
    with pytest.raises(grpc.RpcError) as err:
        stub.Forecast(pb.ForecastRequest(product_id="f1", horizon_days=7), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "rebuilding" in err.value.details()
    assert dict(err.value.trailing_metadata() or ())["retry-after"] == "10"

    def answered() -> bool:
        try:
            return len(stub.Forecast(pb.ForecastRequest(product_id="f1", horizon_days=7), timeout=10).points) == 7
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc  # rebuilding, or the forecast being made
            return False

    wait_for(answered, 60, what="the catalog rebuilt from the event log and f1 forecast again")
    wait_for(lambda: not rebuilding(redis_client, "forecasting"), 60, what="the rebuild to finish")
    with pytest.raises(grpc.RpcError) as err:
        stub.Forecast(pb.ForecastRequest(product_id="nope"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
