"""The storefront's notice of what is down (issue #21 item 5), in a real headless Chromium: with the recommender
not serving, the page says recommendations are unavailable (and names nothing else), the script reports no
error, and the notice is gone once the recommender serves again. The gateway runs in this process on the real
broker and Redis; each backend is a gRPC health service of the test's, so what is down is the test's choice."""

from __future__ import annotations

import shutil
import threading
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from playwright.sync_api import expect, sync_playwright
from werkzeug.serving import make_server

from gateway.app import close_app, create_app
from services.common.settings import SERVICE_NAMES
from tests.e2e.storefront import CHROMIUM_ARGS
from tests.support import free_port

pytestmark = pytest.mark.integration

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def health_server(status: int) -> tuple[grpc.Server, health.HealthServicer, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    servicer.set("", status)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, servicer, port


@pytest.fixture
def gateway(settings):
    """The gateway on a free port: the recommender's health service says NOT_SERVING, the others SERVING."""
    healthy, _, healthy_port = health_server(SERVING)
    recommender, switch, recommender_port = health_server(NOT_SERVING)
    for name in SERVICE_NAMES:
        settings.endpoint(name).grpc_port = recommender_port if name == "recommender" else healthy_port
    app = create_app(settings)
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}", switch
    server.shutdown()
    close_app(app)
    healthy.stop(grace=None)
    recommender.stop(grace=None)


def test_the_storefront_names_what_is_down_and_clears_the_notice_when_it_is_back(gateway):
    base, recommender_health = gateway
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is not installed (make sysdeps installs it)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(base)
            banner = page.get_by_test_id("readiness-banner")
            expect(banner).to_be_visible(timeout=15_000)
            expect(banner).to_contain_text("Part of the shop is unavailable right now (recommendations)")
            for other in ("the assistant", "photo search", "forecasts", "the event log", "the shop's cache"):
                expect(banner).not_to_contain_text(other)
            expect(page.locator("#panel-shop")).to_be_visible()  # the shop itself is still there

            # The page asks /readyz again every 15 s: the notice goes without a reload.
            recommender_health.set("", SERVING)
            expect(banner).to_have_count(0, timeout=25_000)
            assert not errors, f"the page reported errors: {errors}"
        finally:
            browser.close()
