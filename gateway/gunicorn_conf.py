"""gunicorn settings for the gateway: one process (so /metrics sees every request) serving each request in
a gevent greenlet, bound to SHOPAI_GATEWAY_HOST:SHOPAI_GATEWAY_PORT.

The gateway's work is waiting on gRPC and Redis. With OS threads (gthread) every wait handed the GIL to
another thread, and that cost more CPU than the route's own code: in the gateway benchmark, a cached
recommendation took ~1.7 ms of CPU under 32 threads and ~0.9 ms under gevent (docs/architecture.md,
"gateway server"). gRPC's C core cooperates with gevent once told to (``grpc.experimental.gevent``), which
must happen after gevent has patched the standard library and before the first channel exists."""

from services.common.settings import load_settings

_settings = load_settings()

bind = f"{_settings.gateway_host}:{_settings.gateway_port}"
workers = 1
worker_class = "gevent"
worker_connections = 1000  # requests in flight at once (greenlets)
timeout = 30
graceful_timeout = 10
accesslog = None  # requests are counted in /metrics; errors are logged by the app
errorlog = "-"


def post_fork(server, worker):
    """In the worker, before the app (and its gRPC channels) is loaded."""
    from gevent import monkey

    monkey.patch_all()
    from grpc.experimental import gevent as grpc_gevent

    grpc_gevent.init_gevent()
