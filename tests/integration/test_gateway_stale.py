"""gateway/stale.py: a staff read's last good answer, kept in the real Redis, answers while its service is away
(issue #21: during make chaos a restarting forecasting service made every forecast a 503)."""

from __future__ import annotations

import grpc
import pytest

from gateway.app import close_app, create_app
from protos import forecasting_pb2_grpc
from services.common.settings import SERVICE_NAMES, Settings
from tests.support import TEST_KEYS, assert_problem, free_port, serving, staff
from tests.unit.test_gateway_forecasting import FakeForecasting

pytestmark = pytest.mark.integration


@pytest.fixture
def setup(redis_url, redis_client):
    with serving(FakeForecasting(), forecasting_pb2_grpc.add_ForecastingServicer_to_server) as fake:
        ports = {name: free_port() for name in SERVICE_NAMES} | {"forecasting": fake.port}
        settings = Settings(gateway_api_keys=TEST_KEYS, redis_url=redis_url,
                            kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", grpc_deadline_seconds=2.0,
                            log_json=False,
                            **{name: {"grpc_port": port, "metrics_port": free_port()} for name, port in ports.items()})
        app = create_app(settings)
        yield staff(app.test_client()), fake
        close_app(app)


def test_a_forecast_answered_before_is_served_marked_while_the_service_is_away(setup):
    client, fake = setup
    fresh = client.get("/v1/forecasts/p1?horizon=7")
    assert fresh.status_code == 200 and "X-ShopAI-Degraded" not in fresh.headers
    fake.errors["Forecast"] = (grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")
    kept = client.get("/v1/forecasts/p1?horizon=7")
    assert kept.status_code == 200 and kept.json == fresh.json
    assert kept.headers["X-ShopAI-Degraded"] == "forecasting" and kept.headers["X-ShopAI-Stale"] == "true"
    assert int(kept.headers["Age"]) >= 0
    # Another question was never answered: nothing to serve, the error stands.
    assert "forecasting" in assert_problem(client.get("/v1/forecasts/p1?horizon=14"), 503)["detail"]
    # A refusal is not an outage: the service's own 4xx is never papered over.
    fake.errors["Forecast"] = (grpc.StatusCode.NOT_FOUND, "product 'p1' is not in the catalog")
    assert_problem(client.get("/v1/forecasts/p1?horizon=7"), 404)


def test_one_shoppers_own_analytics_are_never_kept(setup):
    client, fake = setup
    assert client.get("/v1/analytics/users/u1").status_code == 200
    fake.errors["UserProfile"] = (grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")
    assert_problem(client.get("/v1/analytics/users/u1"), 503)


def test_only_good_answers_are_kept(setup, redis_client):
    client, fake = setup
    before = set(redis_client.scan_iter("*stale*"))
    assert client.get("/v1/analytics/segments?sample_size=2").status_code == 200
    assert len(set(redis_client.scan_iter("*stale*")) - before) == 1
    fake.errors["Cohorts"] = (grpc.StatusCode.INVALID_ARGUMENT, "max_periods must be 1..52")
    assert_problem(client.get("/v1/analytics/cohorts?period=week"), 400)
    assert len(set(redis_client.scan_iter("*stale*")) - before) == 1


def test_a_redis_restarted_empty_leaves_the_gateways_own_copy(setup, redis_client):
    """Redis killed and back without its data (make chaos): the copies kept there are gone, and the service,
    rebuilding its own state from the log, answers UNAVAILABLE; the gateway process's own copy answers."""
    client, fake = setup
    fresh = client.get("/v1/forecasts/p2?horizon=7")
    assert fresh.status_code == 200
    kept_in_redis = [k for k in redis_client.scan_iter("*stale*")]
    assert kept_in_redis
    redis_client.delete(*kept_in_redis)
    fake.errors["Forecast"] = (grpc.StatusCode.UNAVAILABLE, "rebuilding its data from the event log; retry shortly")
    kept = client.get("/v1/forecasts/p2?horizon=7")
    assert kept.status_code == 200 and kept.json == fresh.json
    assert kept.headers["X-ShopAI-Degraded"] == "forecasting" and kept.headers["X-ShopAI-Stale"] == "true"
    # Another process (a fresh gateway) has no copy of its own: the error stands.
    assert_problem(client.get("/v1/forecasts/p2?horizon=14"), 503)


def test_the_local_copies_stay_within_their_budget():
    from gateway.stale import LocalCopies

    copies = LocalCopies(max_bytes=100, ttl=60)
    copies.put("a", "x" * 60)
    copies.put("b", "y" * 30)
    assert copies.get("a") == "x" * 60 and copies.get("b") == "y" * 30
    copies.put("c", "z" * 40)  # over budget: the oldest goes
    assert copies.get("a") is None and copies.get("c") == "z" * 40
    copies.put("huge", "h" * 101)  # larger than the whole budget: not kept, nothing else lost
    assert copies.get("huge") is None and copies.get("b") == "y" * 30
