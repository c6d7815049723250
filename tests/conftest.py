"""Fixtures: a fresh real broker per test, the machine's real Redis (or a private one).

Markers (pyproject.toml): ``integration`` for tests that talk to the real broker or Redis, ``e2e`` for the
whole stack as ``make run`` starts it, ``slow`` for tests that train a model. ``make test`` runs them all;
``pytest_collection_modifyitems`` below refuses a test that uses the broker or Redis without saying so.
"""

from __future__ import annotations

import fcntl
import os

import pytest
import redis

from services.common.settings import Settings
from tests.support import TEST_KEYS, Broker, PrivateRedis, ServiceProcess, machine_redis_url

# Fixtures that reach the real broker or Redis: a test using one is an integration (or e2e) test.
INFRASTRUCTURE_FIXTURES = frozenset({"broker", "redis_url", "redis_client", "settings", "start_service",
                                     "start_service_with"})


def pytest_collection_modifyitems(config, items):
    """Keep the markers true: ``make test-unit`` (``-m "not integration and not e2e and not slow"``) must
    never need a broker or Redis."""
    wrong = [item.nodeid for item in items
             if INFRASTRUCTURE_FIXTURES & set(getattr(item, "fixturenames", ()))
             and not ({"integration", "e2e"} & {m.name for m in item.iter_markers()})]
    if wrong:
        raise pytest.UsageError("tests using the broker or Redis must be marked integration or e2e: "
                                + ", ".join(wrong))
    _order_for_workers(items)
    for item in items:
        if "chatbot_model_dir" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("timeout"):
            # The first such test of a worker trains the intent model (or waits for the other worker to):
            # minutes beyond the suite's 300 s per test when both cores are busy.
            item.add_marker(pytest.mark.timeout(900))


def _order_for_workers(items: list[pytest.Item]) -> None:
    """The order ``make test`` hands test files to its workers (pytest-xdist ``--dist loadfile
    --no-loadscope-reorder``: a file at a time to whichever worker has run out): the longest first (the e2e
    walk of the whole stack, on the worker that also trains the assistant's intent model for it), then the
    integration files that start services, then those that need the intent model (trained by then), then
    the model-training unit files, then the rest. The order within a file is kept."""
    def rank(item: pytest.Item) -> int:
        markers = {m.name for m in item.iter_markers()}
        if "e2e" in markers:
            return 0
        needs_model = any("chatbot_model_dir" in getattr(other, "fixturenames", ())
                          for other in by_file[item.path])
        if "integration" in markers:
            return 2 if needs_model else 1
        return 3 if "slow" in markers or needs_model else 4

    by_file: dict = {}
    for item in items:
        by_file.setdefault(item.path, []).append(item)
    file_rank = {path: min(rank(item) for item in group) for path, group in by_file.items()}
    items.sort(key=lambda item: file_rank[item.path])  # stable: files stay whole and in their own order


@pytest.fixture(scope="session")
def redis_url():
    url = machine_redis_url()
    if url:
        yield url
        return
    private = PrivateRedis()
    yield private.url
    private.stop()


@pytest.fixture
def redis_client(redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def broker():
    b = Broker()
    yield b
    b.stop()


@pytest.fixture
def settings(broker, redis_client, redis_url, tmp_path) -> Settings:
    return Settings(
        kafka_bootstrap_servers=broker.bootstrap, redis_url=redis_url, data_dir=tmp_path / "data", log_json=False,
        gateway_api_keys=TEST_KEYS,  # the gateway's routes are called with the test admin key (tests.support.staff)
    )


@pytest.fixture
def start_service_with(tmp_path):
    """Start ``python -m services.<name>`` processes with the given settings; all are stopped
    at the end of the test."""
    started: list[ServiceProcess] = []

    def start(settings: Settings, name: str, wait: bool = True, **env: str) -> ServiceProcess:
        proc = ServiceProcess(name, settings, tmp_path, **env)
        started.append(proc)
        return proc.wait_serving() if wait else proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def start_service(settings, start_service_with):
    """start_service_with, on the test's broker and Redis."""
    return lambda name, wait=True, **env: start_service_with(settings, name, wait, **env)


@pytest.fixture(scope="session")
def chatbot_model_dir(tmp_path_factory):
    """The assistant's intent model, trained once per test run (the embedding of the data set takes
    about two minutes on two cores); tests copy it into a service's data directory. Under pytest-xdist
    (``make test`` runs several workers) the first worker to ask trains it into a directory of the run's
    own, under a file lock, and the other loads it from there."""
    from services.chatbot.core.embeddings import Embedders
    from services.chatbot.trainer import IntentTrainer
    from services.common.models import ModelHolder, ModelRegistry

    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    root = (tmp_path_factory.getbasetemp().parent / f"chatbot-{run}" if run
            else tmp_path_factory.mktemp("chatbot"))
    root.mkdir(parents=True, exist_ok=True)
    embedders = Embedders()
    with open(root.parent / f"{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        holder = ModelHolder(ModelRegistry(root / "models" / "chatbot"))
        if not holder.refresh():  # nobody trained it yet in this run
            IntentTrainer(embedders, holder.registry, holder, root / "cache").train("", {}, lambda *_: None)
    return root, holder, embedders
