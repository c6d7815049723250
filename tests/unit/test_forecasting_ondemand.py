"""The on-demand forecaster (services/forecasting/ondemand.py): a request waits a bounded time for the one
background worker, is told when to ask again past it, and the computation goes on; the worker computes one
forecast at a time, in the order asked, once however many requests wait for it, and raises its error to
every one of them."""

from __future__ import annotations

import threading

import pytest

from services.forecasting.ondemand import MAX_ASKED, ForecastPending, OnDemand


class Gate:
    """A computation that finishes when the test lets it (no timing in the assertions)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.asked: list[tuple] = []

    def __call__(self, kind, target, horizon, level):
        self.asked.append((kind, target, horizon, level))
        self.release.wait(10)
        if target == "refused":
            raise ValueError("no demand")
        return f"forecast of {target} for {horizon} days"


@pytest.fixture
def running():
    gate = Gate()
    on_demand = OnDemand(gate)
    stop = threading.Event()
    worker = threading.Thread(target=on_demand.run, args=(stop,), daemon=True)
    worker.start()
    yield on_demand, gate
    gate.release.set()
    stop.set()
    worker.join(5)


def test_a_request_gets_the_workers_forecast_when_it_is_ready_in_time(running):
    on_demand, gate = running
    gate.release.set()
    assert on_demand.get("p", "p1", 14, 0.8, wait=10) == "forecast of p1 for 14 days"
    assert gate.asked == [("p", "p1", 14, 0.8)]


def test_past_the_wait_the_request_is_told_when_to_ask_again_and_the_work_goes_on(running):
    on_demand, gate = running
    with pytest.raises(ForecastPending, match="'p1' is being computed; ask again in") as pending:
        on_demand.get("p", "p1", 28, 0.8, wait=0.05)
    assert pending.value.retry_after >= 1
    gate.release.set()
    assert on_demand.get("p", "p1", 28, 0.8, wait=10) == "forecast of p1 for 28 days"
    assert gate.asked == [("p", "p1", 28, 0.8)], "the request that came back waited for the same computation"


def test_many_requests_for_one_forecast_compute_it_once(running):
    on_demand, gate = running
    answers: list[str] = []
    threads = [threading.Thread(target=lambda: answers.append(on_demand.get("c", "bags", 28, 0.8, wait=10)))
               for _ in range(5)]
    for thread in threads:
        thread.start()
    gate.release.set()
    for thread in threads:
        thread.join(10)
    assert answers == ["forecast of bags for 28 days"] * 5
    assert on_demand.computations == 1


def test_the_error_of_a_computation_reaches_the_request(running):
    on_demand, gate = running
    gate.release.set()
    with pytest.raises(ValueError, match="no demand"):
        on_demand.get("p", "refused", 28, 0.8, wait=10)


def test_forecasts_are_computed_one_at_a_time_in_the_order_asked():
    order: list[str] = []
    on_demand = OnDemand(lambda kind, target, horizon, level: order.append(target))
    for target in ("p3", "p1", "p2"):
        with pytest.raises(ForecastPending):
            on_demand.get("p", target, 28, 0.8, wait=0)
    with pytest.raises(ForecastPending) as third:
        on_demand.get("p", "p2", 28, 0.8, wait=0)
    assert third.value.retry_after >= 3, "two forecasts are ahead of it"
    while on_demand.step():
        pass
    assert order == ["p3", "p1", "p2"] and not on_demand.step()


def test_a_full_queue_refuses_without_queueing(monkeypatch):
    on_demand = OnDemand(lambda *spec: None)
    monkeypatch.setattr("services.forecasting.ondemand.MAX_ASKED", 2)
    for target in ("p1", "p2"):
        with pytest.raises(ForecastPending):
            on_demand.get("p", target, 28, 0.8, wait=0)
    with pytest.raises(ForecastPending):
        on_demand.get("p", "p3", 28, 0.8, wait=0)
    assert on_demand.step() and on_demand.step() and not on_demand.step(), "p3 was never queued"
    assert MAX_ASKED >= 100
