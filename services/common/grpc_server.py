"""gRPC server bootstrap shared by the four services.

Every service gets: the standard health service (grpcio-health-checking) whose
status follows the service's readiness, server reflection, an interceptor that
records Prometheus metrics and logs each call, a Prometheus exporter, and a
graceful shutdown on SIGTERM/SIGINT (health goes NOT_SERVING, in-flight calls
finish within the grace period, background consumers stop).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from concurrent import futures
from datetime import UTC, datetime
from typing import Any

import grpc
import redis
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common import metrics
from services.common.logging import configure_logging, get_logger
from services.common.settings import Settings
from services.common.transport import grpc_server_credentials

log = get_logger(__name__)


class MetricsInterceptor(grpc.ServerInterceptor):
    """Counts and times every unary call by method and status code; logs failures; refuses a
    call whose deadline passed while it waited for a worker thread (nobody awaits its answer)."""

    def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        inner = handler.unary_unary

        def observed(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                if context.time_remaining() <= 0:
                    context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the call started")
                response = inner(request, context)
                code = context.code() or grpc.StatusCode.OK
                return response
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                # Redis away (restarting, unreachable): a transient UNAVAILABLE the caller may retry, with the
                # reason, not UNKNOWN (the gateway's 502, "the service failed").
                code = grpc.StatusCode.UNAVAILABLE
                log.warning("grpc_redis_unavailable", method=method, error=str(exc))
                context.abort(code, f"the service's Redis is unreachable ({type(exc).__name__}); retry shortly")
            except Exception:
                code = context.code() or grpc.StatusCode.UNKNOWN
                if code is grpc.StatusCode.UNKNOWN:
                    log.exception("grpc_unhandled_error", method=method)
                raise
            finally:
                elapsed = time.perf_counter() - started
                metrics.GRPC_HANDLED.labels(method, code.name).inc()
                metrics.GRPC_LATENCY.labels(method).observe(elapsed)
                if code is not grpc.StatusCode.OK:
                    log.info("grpc_call", method=method, code=code.name, seconds=round(elapsed, 4))

        return grpc.unary_unary_rpc_method_handler(
            observed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class ServiceRunner:
    """Owns one service process: gRPC server, health, metrics exporter, background workers."""

    def __init__(self, name: str, settings: Settings) -> None:
        self.name = name
        self.settings = settings
        self.endpoint = settings.endpoint(name)
        self.stop_event = threading.Event()
        self.workers = self.endpoint.grpc_workers or settings.grpc_max_workers  # threads serving gRPC calls
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=f"{name}-grpc"),
            interceptors=[MetricsInterceptor()],
            options=[
                ("grpc.max_receive_message_length", settings.gateway_max_body_bytes + 1024 * 1024),
                ("grpc.so_reuseport", 0),
            ],
        )
        self.health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self._service_names: list[str] = []
        self._threads: list[threading.Thread] = []
        self._readiness: list[Callable[[], bool]] = []
        self._on_stop: list[Callable[[], None]] = []
        self.port: int | None = None

    def add_servicer(self, add_to_server: Callable[[Any, grpc.Server], None], servicer: Any, full_name: str) -> None:
        add_to_server(servicer, self.server)
        self._service_names.append(full_name)

    def add_worker(self, target: Callable[[threading.Event], None], name: str) -> None:
        """A background loop (e.g. an event consumer) that runs until the stop event is set."""
        self._threads.append(threading.Thread(target=target, args=(self.stop_event,), name=name, daemon=True))

    def add_readiness(self, check: Callable[[], bool]) -> None:
        self._readiness.append(check)

    def on_stop(self, callback: Callable[[], None]) -> None:
        self._on_stop.append(callback)

    def _set_status(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for service in ("", *self._service_names):
            self.health.set(service, status)

    def _watch_readiness(self, stop: threading.Event) -> None:
        last = None
        while not stop.is_set():
            ready = all(check() for check in self._readiness)
            if ready != last:
                self._set_status(ready)
                log.info("readiness_changed", service=self.name, serving=ready)
                last = ready
            stop.wait(0.5)

    def start(self, port: int | None = None, metrics_port: int | None = None) -> int:
        reflection.enable_server_reflection(
            (*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        port = self.endpoint.grpc_port if port is None else port
        address = f"{self.settings.grpc_bind_host}:{port}"
        credentials = grpc_server_credentials(self.settings)
        self.port = (self.server.add_insecure_port(address) if credentials is None
                     else self.server.add_secure_port(address, credentials))
        if self.port == 0:
            raise RuntimeError(f"{self.name}: cannot bind gRPC port {port}")
        self._set_status(False)
        self.server.start()
        mport = self.endpoint.metrics_port if metrics_port is None else metrics_port
        if mport >= 0:
            metrics.start_metrics_server(mport)
        self.add_worker(self._watch_readiness, f"{self.name}-readiness")
        for thread in self._threads:
            thread.start()
        log.info("service_started", service=self.name, grpc_port=self.port, metrics_port=mport,
                 tls=credentials is not None)
        return self.port

    def stop(self) -> None:
        if self.stop_event.is_set():
            return
        log.info("service_stopping", service=self.name)
        self.health.enter_graceful_shutdown()
        self.server.stop(self.settings.grpc_shutdown_grace_seconds).wait()
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout=10)
        for callback in self._on_stop:
            callback()
        log.info("service_stopped", service=self.name)

    def serve_forever(self) -> None:
        """Block until SIGTERM/SIGINT, then shut down gracefully."""
        done = threading.Event()

        def handle(signum: int, _frame: Any) -> None:
            log.info("signal_received", signal=signal.Signals(signum).name)
            done.set()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
        done.wait()
        self.stop()


def bootstrap(name: str, settings: Settings) -> ServiceRunner:
    configure_logging(settings.log_level, settings.log_json, service=name)
    return ServiceRunner(name, settings)


def run(runner: ServiceRunner) -> None:
    """Start a built service and block until it is told to stop."""
    runner.start()
    runner.serve_forever()


def timestamp(epoch: float | None) -> Timestamp | None:
    """A Unix time as a protobuf ``Timestamp`` (None for 0 or None: the field stays unset)."""
    if not epoch:
        return None
    ts = Timestamp()
    ts.FromDatetime(datetime.fromtimestamp(float(epoch), UTC))
    return ts
