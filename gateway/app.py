"""The ShopAI REST gateway: an application factory (``create_app``) so that tests and
gunicorn build the app with their own settings."""

from __future__ import annotations

import functools
import threading
import time
import types
from collections.abc import Callable
from typing import Any

import grpc
from flask import Flask, Response, g, redirect, request
from flask_openapi3 import Info, OpenAPI
from kafka.errors import KafkaError
from prometheus_client import Counter, Histogram
from werkzeug.exceptions import HTTPException

from gateway import stale
from gateway.access import current_need, install_access
from gateway.backends import Backends
from gateway.impressions import ImpressionLog
from gateway.policy import NOT_FOUND_DETAIL
from gateway.problems import ApiProblem, from_grpc_error, from_validation_error, problem_response
from gateway.routes import install_query_memo
from gateway.routes.admin import admin
from gateway.routes.alerts import alerts
from gateway.routes.auth import auth, dev_auth
from gateway.routes.catalog import catalog
from gateway.routes.chat import chat
from gateway.routes.console import console
from gateway.routes.deadletters import deadletters
from gateway.routes.events import events
from gateway.routes.experiments import experiments
from gateway.routes.export import export
from gateway.routes.forecasting import forecasting
from gateway.routes.privacy import privacy
from gateway.routes.recommendations import recommendations
from gateway.routes.storefront import storefront
from gateway.routes.support import support
from gateway.routes.system import system
from gateway.routes.vision import vision
from services.common import cache
from services.common.bus import EventPublisher, ensure_topics
from services.common.logging import configure_logging, get_logger
from services.common.metrics import LATENCY_BUCKETS
from services.common.recommendations import AnswerCache
from services.common.settings import Settings, load_settings
from services.common.vault import PersonalDataVault

log = get_logger(__name__)

HTTP_REQUESTS = Counter(
    "shopai_http_requests_total", "HTTP requests answered by the gateway.", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "shopai_http_request_duration_seconds", "Time to answer an HTTP request.", ["method", "route"],
    buckets=LATENCY_BUCKETS,
)

# Which backend a blueprint's routes call, to name it in error messages.
BLUEPRINT_BACKEND = {
    "recommendations": "recommender", "chat": "chatbot", "support": "chatbot", "vision": "vision", "forecasting": "forecasting",
    "alerts": "forecasting", "experiments": "recommender",
}


class LazyPublisher:
    """The Kafka producer is created on first use, so the gateway starts (and reports readiness)
    even while the broker is still coming up."""

    def __init__(self, settings: Settings, vault: PersonalDataVault | None = None) -> None:
        self.settings = settings
        self.vault = vault
        self._lock = threading.Lock()
        self._publisher: EventPublisher | None = None

    def __call__(self) -> EventPublisher:
        with self._lock:
            if self._publisher is None:
                try:
                    ensure_topics(self.settings, wait_seconds=3)  # compose's Kafka does not create topics on first use
                    self._publisher = EventPublisher(self.settings, client_id="gateway", vault=self.vault)
                except KafkaError as exc:
                    raise ApiProblem(503, f"the event broker is unavailable: {exc}") from exc
            return self._publisher

    def close(self) -> None:
        with self._lock:
            if self._publisher is not None:
                self._publisher.close()
                self._publisher = None


class GatewayApp(OpenAPI):
    """flask-openapi3's app, with Flask's check of whether a view or hook is a coroutine function made once per
    function instead of on every call (Flask asks it seven times a request, ``inspect`` each time)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._synced: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if type(func) is not types.FunctionType:  # bound methods are made anew on each access
            return super().ensure_sync(func)
        synced = self._synced.get(func)
        if synced is None:
            synced = self._synced[func] = super().ensure_sync(func)
        return synced


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    settings = settings or load_settings(**overrides)
    configure_logging(settings.log_level, settings.log_json, service="gateway")
    app = GatewayApp(
        __name__,
        info=Info(title="ShopAI", version="1.0.0", description="Recommendations, assistant, vision and analytics for a shop."),
        doc_prefix="/docs",
        validation_error_status=400,
        validation_error_callback=from_validation_error,
    )
    app.config["MAX_CONTENT_LENGTH"] = settings.gateway_max_body_bytes
    app.config["GRPC_DEADLINE"] = settings.grpc_deadline_seconds
    app.json.ensure_ascii = False  # Chinese text stays readable
    app.extensions["shopai.settings"] = settings
    app.extensions["shopai.backends"] = Backends(settings)
    app.extensions["shopai.redis"] = cache.connect(settings)
    if settings.gateway_answer_cache:
        # its lookups batched on a connection of their own (services/common/cache.py, BatchedScript)
        app.extensions["shopai.answers"] = AnswerCache(cache.connect(settings), batched=True)
    # Personal fields of orders are sealed per shopper before Kafka; the erasure destroys the key, the export opens them.
    app.extensions["shopai.vault"] = PersonalDataVault.from_settings(settings)
    app.extensions["shopai.publisher"] = LazyPublisher(settings, app.extensions["shopai.vault"])
    # Every recommendation answer, published as served without waiting (gateway/impressions.py).
    app.extensions["shopai.impressions"] = ImpressionLog(app.extensions["shopai.publisher"])

    install_query_memo()  # validated query strings remembered (gateway/routes/__init__.py)
    app.register_api(system)
    app.register_api(events)
    app.register_api(export)
    app.register_api(recommendations)
    app.register_api(catalog)
    app.register_api(chat)
    app.register_api(support)
    app.register_api(vision)
    app.register_api(forecasting)
    app.register_api(admin)
    app.register_api(alerts)
    app.register_api(experiments)
    app.register_api(deadletters)
    app.register_api(privacy)
    app.register_api(auth)
    if settings.env.strip().lower() == "dev":
        app.register_api(dev_auth)  # the storefront's demo sign-in (make run); never elsewhere
    app.register_blueprint(storefront)
    app.register_blueprint(console)  # the staff console at /console (gateway/routes/console.py)

    @app.get("/openapi.json", doc_ui=False)
    def openapi_json() -> dict:
        return app.api_doc

    @app.get("/docs", doc_ui=False)
    def docs() -> Response:
        return redirect("/docs/swagger")

    _install_error_handlers(app)
    stale.install(app)
    _install_metrics(app)
    install_access(app, settings)  # keys, rate limits, CORS (gateway/access.py); after every blueprint
    return app


def close_app(app: Flask) -> None:
    """Release the app's connections (tests build many apps in one process)."""
    app.extensions["shopai.impressions"].close()
    app.extensions["shopai.publisher"].close()
    app.extensions["shopai.vault"].close()
    app.extensions["shopai.backends"].close()
    app.extensions["shopai.redis"].close()
    if (answers := app.extensions.get("shopai.answers")) is not None:
        answers.close()
        answers.redis.close()


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiProblem)
    def api_problem(exc: ApiProblem) -> Response:
        return problem_response(exc.status, exc.detail, exc.slug, exc.errors, exc.headers)

    @app.errorhandler(grpc.RpcError)
    def rpc_error(exc: grpc.RpcError) -> Response:
        code = exc.code() if hasattr(exc, "code") else None
        if code == grpc.StatusCode.NOT_FOUND and current_need().kind == "shopper":
            # "no such user" reads exactly like "not yours" (gateway/policy.py): ids cannot be probed
            return problem_response(404, NOT_FOUND_DETAIL, slug="not-found")
        service = BLUEPRINT_BACKEND.get(request.blueprint or "", "backend")
        kept = stale.answer(app, exc, service)  # a staff read's last good answer while its service is away
        return kept if kept is not None else from_grpc_error(exc, service)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        if exc.code == 413:
            detail = f"the request body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes"
        else:
            detail = exc.description or exc.name
        return problem_response(exc.code or 500, detail)

    @app.errorhandler(RecursionError)
    def too_deep(exc: RecursionError) -> Response:
        # json.loads recurses per nesting level: "[[[[…" a few thousand deep is refused, not a 500.
        return problem_response(400, "the JSON body is nested too deeply")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled_error", path=request.path)
        return problem_response(500, "the gateway failed to answer; the error is logged")


@functools.lru_cache(maxsize=1024)
def _request_metrics(method: str, route: str, status: int) -> tuple[Any, Any]:
    """The counter and histogram children of one (method, route, status): looked up once, not per request."""
    return HTTP_REQUESTS.labels(method, route, str(status)), HTTP_LATENCY.labels(method, route)


def _install_metrics(app: Flask) -> None:
    @app.before_request
    def started() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def observed(response: Response) -> Response:
        rule = request.url_rule
        count, latency = _request_metrics(request.method, rule.rule if rule else "unmatched", response.status_code)
        count.inc()
        latency.observe(time.perf_counter() - g.get("started", time.perf_counter()))
        return response
