"""Every service answers the gRPC health check and reflection, and shuts down gracefully."""

from __future__ import annotations

import shutil

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from protos import (
    chatbot_pb2,
    chatbot_pb2_grpc,
    forecasting_pb2,
    forecasting_pb2_grpc,
    recommender_pb2,
    recommender_pb2_grpc,
    vision_pb2,
    vision_pb2_grpc,
)
from services.common.settings import SERVICE_NAMES

pytestmark = pytest.mark.integration

FULL_NAMES = {
    "recommender": "shopai.recommender.v1.Recommender",
    "chatbot": "shopai.chatbot.v1.Assistant",
    "vision": "shopai.vision.v1.Vision",
    "forecasting": "shopai.forecasting.v1.Forecasting",
}


def reflected_services(target: str) -> set[str]:
    with grpc.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        return {s.name for reply in replies for s in reply.list_services_response.service}


def test_every_service_serves_health_and_reflection(start_service, settings, chatbot_model_dir):
    # The assistant is ready once it has an intent model: give it the session's (training takes minutes).
    shutil.copytree(chatbot_model_dir[0] / "models", settings.data_dir / "models")
    procs = {name: start_service(name) for name in SERVICE_NAMES}
    for name, proc in procs.items():
        with grpc.insecure_channel(proc.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", FULL_NAMES[name]):
                reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING, (name, service)
        listed = reflected_services(proc.target)
        assert {FULL_NAMES[name], "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= listed
        assert proc.metric("process_cpu_seconds_total") >= 0  # the Prometheus exporter answers

    # A request without its target gets a reason, not a hang or a crash.
    with grpc.insecure_channel(procs["forecasting"].target) as channel:
        with pytest.raises(grpc.RpcError) as err:
            forecasting_pb2_grpc.ForecastingStub(channel).Forecast(forecasting_pb2.ForecastRequest(), timeout=5)
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "product_id" in err.value.details()
    with grpc.insecure_channel(procs["vision"].target) as channel:
        with pytest.raises(grpc.RpcError) as err:
            vision_pb2_grpc.VisionStub(channel).Identify(vision_pb2.ImageRequest(), timeout=10)
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "image" in err.value.details()
    with grpc.insecure_channel(procs["chatbot"].target) as channel:
        reply = chatbot_pb2_grpc.AssistantStub(channel).Chat(chatbot_pb2.ChatRequest(message="hi"), timeout=10)
        assert reply.intent.name == "greeting" and reply.reply and reply.session_id
    # Calls are counted by method and code.
    with grpc.insecure_channel(procs["recommender"].target) as channel:
        stub = recommender_pb2_grpc.RecommenderStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.Recommend(recommender_pb2.RecommendRequest(user_id="u1", k=1000, strategy="popular"), timeout=5)
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert procs["recommender"].metric(
        "shopai_grpc_server_handled_total", method="Recommend", code="INVALID_ARGUMENT"
    ) == 1

    for name, proc in procs.items():
        assert proc.stop() == 0, f"{name} did not shut down cleanly on SIGTERM:\n{proc.log()}"
