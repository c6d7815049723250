"""gRPC channels to the four services: created once, reused by every request, with deadlines."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos import chatbot_pb2_grpc, forecasting_pb2_grpc, recommender_pb2_grpc, vision_pb2_grpc
from services.common.settings import SERVICE_NAMES, Settings
from services.common.transport import open_channel

STUBS = {
    "recommender": recommender_pb2_grpc.RecommenderStub,
    "chatbot": chatbot_pb2_grpc.AssistantStub,
    "vision": vision_pb2_grpc.VisionStub,
    "forecasting": forecasting_pb2_grpc.ForecastingStub,
}

# Idempotent reads may be retried by gRPC itself when a backend is briefly unreachable, and so may the
# assistant's Chat: the gateway sends every turn with a message id, and a turn sent again with its id is
# answered from memory, not applied twice (services/chatbot/core/turns.py).
# Train is not idempotent (each call queues a job), nor is AcknowledgeAlert (a second call answers 409 for
# the first): they are never listed here.
_RETRY_POLICY = {
    "methodConfig": [
        {
            "name": [{"service": "shopai.recommender.v1.Recommender", "method": m}
                     for m in ("Recommend", "BatchRecommend", "Similar", "UserProfile", "ItemProfile", "GetJob")]
                    + [{"service": "shopai.chatbot.v1.Assistant", "method": m}
                       for m in ("Parse", "UserData", "Chat")]
                    + [{"service": "shopai.vision.v1.Vision", "method": m}
                       for m in ("Identify", "Search", "ScansBy", "CodeScans")]
                    + [{"service": "shopai.forecasting.v1.Forecasting", "method": m}
                       for m in ("Forecast", "InventoryPlan", "PriceRecommendation", "Segments", "Funnel",
                                 "Cohorts", "UserProfile", "ListAlerts")]
                    + [{"service": s, "method": "GetJob"}
                       for s in ("shopai.chatbot.v1.Assistant", "shopai.vision.v1.Vision",
                                 "shopai.forecasting.v1.Forecasting")]
                    # The model registry: a listing, and serving a version twice serves it once.
                    + [{"service": s, "method": m} for m in ("ListModels", "ServeModel")
                       for s in ("shopai.recommender.v1.Recommender", "shopai.chatbot.v1.Assistant",
                                 "shopai.vision.v1.Vision", "shopai.forecasting.v1.Forecasting")],
            "retryPolicy": {
                "maxAttempts": 3,
                "initialBackoff": "0.05s",
                "maxBackoff": "0.2s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}


class Backends:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.deadline = settings.grpc_deadline_seconds
        # Calls never set wait_for_ready: while a backend is down they fail at once with UNAVAILABLE (after
        # the retries above), and a backend that accepts but does not answer costs at most the deadline.
        # Reconnection attempts back off to at most 2 s (gRPC's default grows to 120 s), so a restarted
        # backend is used again within seconds however long it was down.
        options = [("grpc.service_config", json.dumps(_RETRY_POLICY)), ("grpc.enable_retries", 1),
                   ("grpc.initial_reconnect_backoff_ms", 250), ("grpc.max_reconnect_backoff_ms", 2000),
                   # IssueCodes answers up to 1,000 QR PNGs in one message.
                   ("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        self.channels: dict[str, grpc.Channel] = {
            name: open_channel(settings.endpoint(name).target, settings, options) for name in SERVICE_NAMES
        }
        self.stubs: dict[str, Any] = {name: STUBS[name](self.channels[name]) for name in SERVICE_NAMES}
        self._pool = ThreadPoolExecutor(max_workers=4 * len(SERVICE_NAMES), thread_name_prefix="readyz")

    def stub(self, name: str) -> Any:
        return self.stubs[name]

    def health(self, name: str, timeout: float = 1.0) -> str:
        """The backend's health status name (SERVING, NOT_SERVING, ...) or UNAVAILABLE."""
        try:
            reply = health_pb2_grpc.HealthStub(self.channels[name]).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        except grpc.RpcError as exc:
            return exc.code().name if hasattr(exc, "code") else "UNAVAILABLE"
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def health_all(self, timeout: float = 1.0) -> dict[str, str]:
        """Every backend's health, checked in parallel; answers within ``timeout`` (+0.5 s) even when the
        checks queue behind other readiness requests' (a check still waiting is DEADLINE_EXCEEDED)."""
        futures = {name: self._pool.submit(self.health, name, timeout) for name in SERVICE_NAMES}
        answer_by = time.monotonic() + timeout + 0.5
        states: dict[str, str] = {}
        for name, future in futures.items():
            try:
                states[name] = future.result(timeout=max(0.0, answer_by - time.monotonic()))
            except FutureTimeout:
                future.cancel()
                states[name] = grpc.StatusCode.DEADLINE_EXCEEDED.name
        return states

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()
        self._pool.shutdown(wait=False)
