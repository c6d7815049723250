"""Training sees what was accepted (services/common/catchup.py): the pure parts, and the job runner waiting
for a consumer before it trains."""

from __future__ import annotations

import threading

import pytest

from protos import common_pb2
from services.common.catchup import behind, catchup_metrics
from services.common.jobs import JobRunner, TrainResult


def test_behind_counts_what_the_group_has_not_committed():
    ends = {"orders.v1:0": 10, "orders.v1:1": 4, "catalog.products.v1:0": 3}
    assert behind(ends, {}) == 17  # never committed: everything
    assert behind(ends, {"orders.v1:0": 10, "orders.v1:1": 2, "catalog.products.v1:0": 5}) == 2
    assert behind({}, {"orders.v1:0": 1}) == 0


def test_the_metrics_say_what_the_job_waited_for():
    assert catchup_metrics({"a:0": 7, "b:0": 3}, 4, 0, 1.23456) == {
        "events_in_log_at_request": 10.0, "events_not_applied_at_start": 4.0,
        "events_not_applied_at_training": 0.0, "catchup_seconds": 1.235}


class _Consumer:
    """A consumer group that applies one event each time it is asked (a fake of the broker's answers)."""

    def __init__(self, ends: dict[str, int]) -> None:
        self._ends = ends
        self.done: dict[str, int] = {}
        self.trained_at: dict[str, int] | None = None

    def ends(self):
        return dict(self._ends)

    def wait(self, ends, progress, stop=None):
        from services.common.catchup import LogCatchUp

        waiter = LogCatchUp.__new__(LogCatchUp)
        waiter.group, waiter.timeout_seconds, waiter.poll_seconds = "test", 5.0, 0.0
        waiter.committed = self.committed
        return LogCatchUp.wait(waiter, ends, progress, stop)

    def committed(self):
        for tp, end in self._ends.items():
            if self.done.get(tp, 0) < end:
                self.done[tp] = self.done.get(tp, 0) + 1
                break
        return dict(self.done)


@pytest.mark.integration  # the job store is Redis
def test_a_job_trains_only_after_the_consumer_applied_what_was_accepted_before_it(redis_client):
    consumer = _Consumer({"orders.v1:0": 3, "orders.v1:1": 2})
    messages = []

    def train(model, params, progress):
        consumer.trained_at = dict(consumer.done)
        return TrainResult("v1", {"ndcg": 0.5})

    jobs = JobRunner("testsvc", redis_client, train, catchup=consumer)
    job = jobs.submit("", {}, "test")
    original = jobs._save

    def save(job_dict):
        messages.append(job_dict["message"])
        original(job_dict)

    jobs._save = save
    stop = threading.Event()
    worker = threading.Thread(target=jobs.run, args=(stop,))
    worker.start()
    try:
        for _ in range(200):
            done = jobs.get(job.job_id)
            if done.state in (common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED):
                break
            stop.wait(0.05)
    finally:
        stop.set()
        worker.join(5)
    assert done.state == common_pb2.JOB_STATE_SUCCEEDED, done.message
    assert consumer.trained_at == {"orders.v1:0": 3, "orders.v1:1": 2}  # everything applied before training
    assert dict(done.metrics)["events_in_log_at_request"] == 5.0
    assert dict(done.metrics)["events_not_applied_at_training"] == 0.0 and dict(done.metrics)["ndcg"] == 0.5
    assert any("waiting for the test consumer to apply" in m for m in messages)


@pytest.mark.integration
def test_without_a_broker_the_job_trains_on_what_is_applied(redis_client):
    class Away:
        def ends(self):
            raise OSError("no broker")

    jobs = JobRunner("testsvc", redis_client, lambda *a: TrainResult("v1", {}), catchup=Away())
    job = jobs.submit("", {}, "test")
    assert jobs._load(job.job_id)["log_ends"] is None
