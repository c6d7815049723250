"""Forecasts are kept ready, never fitted by a request (issue #21): the refresher's sweep keeps one for every
product and category with sales (again after a retraining), a request of a shorter horizon reads its first
days, and a request for what is not kept is answered by the on-demand worker or told when to come back.
Real Redis; the forecasting store, forecaster, refresher and servicer in process."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import grpc
import numpy as np
import pytest

from protos import forecasting_pb2 as pb
from services.common.settings import Settings
from services.forecasting.forecaster import KEPT_HORIZON, Forecaster
from services.forecasting.refresher import Refresher
from services.forecasting.server import ForecastingServicer
from services.forecasting.store import ForecastKeys as K
from services.forecasting.store import ForecastStore

pytestmark = pytest.mark.integration
END = date(2026, 12, 6)
# A product with a short history asks Prophet, which falls back to the seasonal naive forecast: kept under the
# chosen name all the same, so that requests find it.
CHOSEN = {"p|long": "ets", "p|short": "prophet", "c|bags": "seasonal_naive"}


class Model:
    def __init__(self) -> None:
        self.chosen = dict(CHOSEN)
        self.backtests: dict = {}
        self.trained_at = time.time()


class Holder:
    def __init__(self) -> None:
        self.model = Model()
        self.version = "v1"
        self.meta: dict = {}


class Context:
    """What the servicer reads of a gRPC call: its deadline, the trailing metadata, an abort."""

    def __init__(self, deadline: float = 2.0) -> None:
        self.ends = time.monotonic() + deadline
        self.trailing: dict[str, str] = {}

    def time_remaining(self) -> float:
        return self.ends - time.monotonic()

    def set_trailing_metadata(self, metadata) -> None:
        self.trailing = dict(metadata)

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code


def sales(redis_client, kind: str, target: str, days: int) -> None:
    rng = np.random.default_rng(len(target))
    units = {(END - timedelta(days=i)).isoformat(): float(3 + rng.integers(0, 4)) for i in range(days)}
    redis_client.hset(K.units(kind, target), mapping=units)
    redis_client.hset(K.revenue(kind, target), mapping={d: 10 * v for d, v in units.items()})


@pytest.fixture
def shop(redis_client):
    for pid, days in (("long", 120), ("short", 10)):
        redis_client.sadd(K.catalog, pid)
        redis_client.hset(K.product(pid), mapping={"title": pid, "category": "bags", "price": "10"})
        sales(redis_client, "p", pid, days)
    redis_client.sadd(K.categories, "bags")
    sales(redis_client, "c", "bags", 120)
    redis_client.zadd(K.clock, {"last": datetime(END.year, END.month, END.day, 12, tzinfo=UTC).timestamp()})
    holder = Holder()
    forecaster = Forecaster(ForecastStore(redis_client), holder, None)
    return forecaster, Refresher(forecaster, lambda *a: None, 5.0, 1), holder


def test_the_sweep_keeps_every_target_and_requests_read_its_first_days(shop):
    forecaster, refresher, holder = shop
    assert forecaster.kept("p", "long", 14, 0.8)[1] is None, "nothing kept before the sweep"
    assert refresher.keep_all() == 3
    for kind, target in (("p", "long"), ("p", "short"), ("c", "bags")):
        _, whole = forecaster.kept(kind, target, KEPT_HORIZON, 0.8)
        h, first = forecaster.kept(kind, target, 14, 0.8)
        assert whole is not None and first is not None, (kind, target)
        assert h.end == END and first.dates[0] == END + timedelta(days=1) and len(first.dates) == 14
        assert np.array_equal(first.yhat, whole.yhat[:14]) and np.array_equal(first.upper, whole.upper[:14])
    assert forecaster.kept("p", "short", 14, 0.8)[1].model == "seasonal_naive"
    assert forecaster.kept("p", "long", 14, 0.9)[1] is None, "another level is not the kept one"
    assert forecaster.kept("p", "long", 60, 0.8)[1] is None, "nor a longer horizon"
    assert refresher.keep_all() == 0, "nothing changed: nothing to do"
    holder.version = "v2"  # a retraining: every kept forecast is out of date
    assert forecaster.kept("p", "long", 14, 0.8)[1] is None
    assert refresher.keep_all() == 3 and forecaster.kept("p", "long", 14, 0.8)[1] is not None


def test_no_sweep_before_a_model_is_loaded(shop):
    forecaster, refresher, holder = shop
    holder.model = None
    assert refresher.keep_all() == 0 and forecaster.kept("c", "bags", 28, 0.8)[1] is None


def test_a_request_never_fits_a_model_it_reads_waits_briefly_or_is_told_to_come_back(shop):
    forecaster, refresher, _ = shop
    servicer = ForecastingServicer(Settings(redis_url="redis://unused", forecast_wait_seconds=0.0),
                                   forecaster.store, forecaster.holder, forecaster, None, b"s" * 32, None)
    context = Context()
    with pytest.raises(Aborted) as away:
        servicer.Forecast(pb.ForecastRequest(product_id="long", horizon_days=14), context)
    assert away.value.code is grpc.StatusCode.UNAVAILABLE and "being computed" in str(away.value)
    assert int(context.trailing["retry-after"]) >= 1
    assert servicer.on_demand.step(), "the background worker computes what was asked"
    reply = servicer.Forecast(pb.ForecastRequest(product_id="long", horizon_days=14), Context())
    assert len(reply.points) == 14 and reply.model == "ets"
    assert servicer.on_demand.computations == 1 and not servicer.on_demand.step(), "read, not computed again"
    # Kept by the sweep: read at once, nothing is asked of the worker.
    refresher.keep_all()
    assert len(servicer.Forecast(pb.ForecastRequest(category="bags", horizon_days=7), Context()).points) == 7
    assert servicer.on_demand.computations == 1 and not servicer.on_demand.step()
