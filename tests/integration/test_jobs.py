"""Admin retraining jobs on the real Redis: lifecycle, failure, and a job whose process died."""

from __future__ import annotations

import json
import threading
import time

import pytest

from protos import common_pb2
from services.common.cache import key
from services.common.jobs import JobRunner, TrainResult
from tests.support import wait_for

pytestmark = pytest.mark.integration
S = common_pb2.JobState


@pytest.fixture
def worker():
    stops = []

    def start(runner: JobRunner) -> JobRunner:
        stop = threading.Event()
        threading.Thread(target=runner.run, args=(stop,), daemon=True).start()
        stops.append(stop)
        return runner

    yield start
    for stop in stops:
        stop.set()


def test_a_job_moves_from_queued_to_succeeded_with_progress(redis_client, worker):
    gate = threading.Event()

    def train(model, params, progress):
        progress(0.5, "half way")
        gate.wait(10)
        return TrainResult("v-7", {"ndcg_at_10": 0.42}, "done")

    runner = worker(JobRunner("recommender", redis_client, train))
    job = runner.submit("", {"factors": "8"}, "alice")
    assert job.job_id.startswith("recommender-") and job.state == S.JOB_STATE_QUEUED
    running = wait_for(lambda: (j := runner.get(job.job_id)).state == S.JOB_STATE_RUNNING and j.progress == 0.5
                       and j, 5, what="running at 50%")
    assert running.message == "half way" and running.HasField("started_at") and runner.busy
    gate.set()
    done = wait_for(lambda: (j := runner.get(job.job_id)).state == S.JOB_STATE_SUCCEEDED and j, 5, what="success")
    assert done.model_version == "v-7" and done.progress == 1.0 and dict(done.metrics) == {"ndcg_at_10": 0.42}
    assert done.requested_by == "alice" and done.HasField("finished_at")
    assert runner.get("recommender-unknown") is None


def test_a_failing_training_fails_the_job_with_the_reason(redis_client, worker):
    def train(model, params, progress):
        raise ValueError("only 3 users")

    runner = worker(JobRunner("recommender", redis_client, train))
    job = runner.submit("", {}, "scheduler")
    failed = wait_for(lambda: (j := runner.get(job.job_id)).state == S.JOB_STATE_FAILED and j, 5, what="failure")
    assert "only 3 users" in failed.message


def test_another_replicas_job_that_stopped_reporting_is_failed(redis_client):
    runner = JobRunner("recommender", redis_client, lambda *a: TrainResult("x"))
    job = runner.submit("", {}, "bob")  # queued here, but this runner's worker never runs
    other = JobRunner("recommender", redis_client, lambda *a: TrainResult("x"))
    assert other.get(job.job_id).state == S.JOB_STATE_QUEUED, "fresh: still alive"
    stored = json.loads(redis_client.get(key("jobs", "recommender", job.job_id)))
    stored["created_at"] = time.time() - 600
    redis_client.set(key("jobs", "recommender", job.job_id), json.dumps(stored))
    assert other.get(job.job_id).state == S.JOB_STATE_FAILED


def test_training_runs_at_lower_cpu_priority_than_serving_and_so_do_its_threads(redis_client, worker):
    import os

    def priority() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    seen: dict[str, int] = {}

    def train(model, params, progress):
        seen["job"] = priority()
        helper = threading.Thread(target=lambda: seen.setdefault("its_thread", priority()))
        helper.start()
        helper.join()
        return TrainResult("v-1", {}, "done")

    serving = priority()
    runner = worker(JobRunner("recommender", redis_client, train, nice=5))
    job = runner.submit("", {}, "ops")
    wait_for(lambda: runner.get(job.job_id).state == S.JOB_STATE_SUCCEEDED, 5, what="success")
    assert seen == {"job": min(19, serving + 5), "its_thread": min(19, serving + 5)}
    assert priority() == serving  # the caller's (serving) threads keep theirs
