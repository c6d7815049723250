"""Prometheus metrics shared by every process, named by the Prometheus conventions.

Labels carry bounded values only (method, code, topic, outcome): never a user or
product id, which would explode the series count.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

GRPC_HANDLED = Counter(
    "shopai_grpc_server_handled_total", "gRPC calls completed, by method and status code.", ["method", "code"]
)
GRPC_LATENCY = Histogram(
    "shopai_grpc_server_handling_seconds", "Time to answer a gRPC call.", ["method"], buckets=LATENCY_BUCKETS
)
EVENTS_CONSUMED = Counter(
    "shopai_events_consumed_total",
    "Events read by a consumer group, by topic and outcome (applied, duplicate, dead_lettered).",
    ["group", "topic", "outcome"],
)
EVENTS_PUBLISHED = Counter("shopai_events_published_total", "Events acknowledged by the broker.", ["topic"])
CONSUMER_BATCH_SECONDS = Histogram(
    "shopai_consumer_batch_seconds", "Time to apply one polled batch and commit it.", ["group"],
    buckets=LATENCY_BUCKETS,
)
CONSUMER_LAG = Gauge("shopai_consumer_lag_events", "Events not yet consumed, per topic.", ["group", "topic"])
CONSUMER_ASSIGNED = Gauge(
    "shopai_consumer_assigned_partitions", "Partitions this process owns in its consumer group.", ["group"]
)
CONSUMER_RETRIES = Counter(
    "shopai_consumer_retries_total", "Retries of a batch after an infrastructure error.", ["group"]
)
PROJECTION_REBUILDS = Counter(
    "shopai_projection_rebuilds_total", "Redis projections rebuilt by replaying topics.", ["group"]
)
# The model version a process serves: 1 on the (service, version) series of the serving version; the
# previous version's series is removed at a swap (services.common.models.ModelHolder.swap sets both).
MODEL_INFO = Gauge("shopai_model_info", "The model version this process serves (value 1).", ["service", "version"])
MODEL_TRAINED = Gauge(
    "shopai_model_trained_timestamp_seconds", "When the serving model was trained (Unix time).", ["service"]
)

# The alerts desk's webhooks (services/forecasting/webhooks.py); `webhook` is "<n>:<host>" of a configured URL.
ALERT_WEBHOOK_DELIVERIES = Counter(
    "shopai_alert_webhook_deliveries_total",
    "Alert webhook attempts by outcome: delivered, retried (failed, another try scheduled), dead_lettered "
    "(refused by the receiver or out of attempts: sent to alerts.v1.dlq).",
    ["webhook", "outcome"],
)
ALERT_WEBHOOK_PENDING = Gauge("shopai_alert_webhook_pending", "Alert deliveries waiting in the queue.", [])


def start_metrics_server(port: int, host: str = "0.0.0.0") -> None:
    """Expose /metrics for Prometheus on its own port (one per service)."""
    start_http_server(port, addr=host)
