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
