"""gunicorn settings for the gateway: one process (so /metrics sees every request), many
threads (the work is waiting on gRPC), bound to SHOPAI_GATEWAY_HOST:SHOPAI_GATEWAY_PORT."""

from services.common.settings import load_settings

_settings = load_settings()

bind = f"{_settings.gateway_host}:{_settings.gateway_port}"
workers = 1
worker_class = "gthread"
threads = 32
timeout = 30
graceful_timeout = 10
accesslog = None  # requests are counted in /metrics; errors are logged by the app
errorlog = "-"
