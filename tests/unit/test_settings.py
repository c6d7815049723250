"""Settings come from the environment; a partial nested override keeps the other defaults."""

from __future__ import annotations

import pytest

from services.common.settings import SERVICE_NAMES, Settings


def test_defaults_follow_the_design_ports():
    s = Settings()
    assert [s.endpoint(n).grpc_port for n in SERVICE_NAMES] == [50051, 50052, 50053, 50054]
    assert [s.endpoint(n).metrics_port for n in SERVICE_NAMES] == [9101, 9102, 9103, 9104]
    assert s.gateway_port == 8080 and s.kafka_bootstrap_servers.endswith(":9092")


def test_a_host_override_keeps_the_default_ports(monkeypatch):
    monkeypatch.setenv("SHOPAI_RECOMMENDER__HOST", "recommender")
    monkeypatch.setenv("SHOPAI_KAFKA_TOPIC_PARTITIONS", "8")
    s = Settings()
    assert s.recommender.target == "recommender:50051"
    assert s.kafka_topic_partitions == 8


def test_unknown_service_names_are_refused():
    with pytest.raises(KeyError):
        Settings().endpoint("payments")


def test_the_assistant_serves_on_four_grpc_threads_unless_told(monkeypatch):
    # issue #22 item 4: a turn is CPU under the GIL; the other services keep the shared pool size
    s = Settings()
    assert s.chatbot.grpc_workers == 4
    assert s.recommender.grpc_workers is None and s.grpc_max_workers == 16
    monkeypatch.setenv("SHOPAI_CHATBOT__HOST", "chatbot")  # a partial override keeps the thread count
    assert Settings().chatbot.grpc_workers == 4
    monkeypatch.setenv("SHOPAI_CHATBOT__GRPC_WORKERS", "8")
    monkeypatch.setenv("SHOPAI_VISION__GRPC_WORKERS", "2")
    s = Settings()
    assert (s.chatbot.grpc_workers, s.vision.grpc_workers, s.chatbot.target) == (8, 2, "chatbot:50052")
    monkeypatch.setenv("SHOPAI_CHATBOT__GRPC_WORKERS", "0")
    with pytest.raises(ValueError):
        Settings()


def test_a_service_runner_takes_its_own_thread_count():
    from services.common.grpc_server import ServiceRunner

    settings = Settings()
    runners = [ServiceRunner(name, settings) for name in ("chatbot", "recommender")]
    try:
        assert [r.workers for r in runners] == [4, 16]
    finally:
        for runner in runners:
            runner.server.stop(None)
