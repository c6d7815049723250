"""The storefront page served by the gateway: the files, their headers, and that the script only calls
routes the gateway has. tests/e2e/storefront.py clicks through it in a real browser."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from gateway.app import close_app, create_app
from gateway.routes.storefront import CONTENT_SECURITY_POLICY
from services.common.settings import SERVICE_NAMES, Settings
from tests.support import TEST_KEYS, assert_problem, free_port, staff


@pytest.fixture(scope="module")
def app():
    dead = {name: {"grpc_port": free_port(), "metrics_port": free_port()} for name in SERVICE_NAMES}
    settings = Settings(
        gateway_api_keys=TEST_KEYS,
        redis_url=f"redis://127.0.0.1:{free_port()}/0", kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
        grpc_deadline_seconds=0.5, log_json=False, **dead,
    )
    app = create_app(settings)
    yield app
    close_app(app)


@pytest.fixture
def client(app):
    return staff(app.test_client())


def storefront_file(name: str) -> str:
    return resources.files("gateway.storefront").joinpath(name).read_text(encoding="utf-8")


def test_the_page_is_served_at_the_root_with_a_content_security_policy(client):
    reply = client.get("/")
    assert reply.status_code == 200
    assert reply.content_type == "text/html; charset=utf-8"
    csp = reply.headers["Content-Security-Policy"]
    assert csp == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in csp and "img-src 'self' data: blob:" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Cache-Control"] == "no-cache" and reply.headers["ETag"]
    html = reply.get_data(as_text=True)
    # the shared helpers first (dom.js: the console loads them too), then the page's own script
    assert html.index('<script src="/storefront/dom.js" defer></script>') < html.index(
        '<script src="/storefront/app.js" defer></script>')
    assert '<link rel="stylesheet" href="/storefront/style.css">' in html


def test_the_page_has_no_inline_script_or_style_the_policy_would_block():
    html = storefront_file("index.html")
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.DOTALL)
    assert scripts == ["", "", ""], "scripts belong in dom.js, app.js and readiness.js (the notice of what is down)"
    assert "<style" not in html and not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html), "no inline event handlers"
    assert not re.search(r"""(src|href)=["']https?:""", html), "no CDN: everything comes from the gateway"


@pytest.mark.parametrize(("path", "mimetype", "marker"), [
    ("/storefront/app.js", "text/javascript", "const API"),
    ("/storefront/style.css", "text/css", ":root"),
    ("/storefront/readiness.js", "text/javascript", "/readyz"),
    ("/storefront/dom.js", "text/javascript", "class ApiError"),
])
def test_the_script_and_the_stylesheet_are_served(client, path, mimetype, marker):
    reply = client.get(path)
    assert reply.status_code == 200
    assert reply.mimetype == mimetype
    assert marker in reply.get_data(as_text=True)
    assert reply.headers["Cache-Control"] == "no-cache"
    # Revalidation: the same ETag gives a 304 without a body.
    again = client.get(path, headers={"If-None-Match": reply.headers["ETag"]})
    assert again.status_code == 304 and not again.get_data()


@pytest.mark.parametrize("path", [
    "/storefront/nothing.js", "/storefront/index.html", "/storefront/__init__.py", "/storefront/../app.py",
    "/storefront/%2e%2e/routes/storefront.py", "/storefront/",
])
def test_an_unknown_storefront_file_is_a_404_problem(client, path):
    assert_problem(client.get(path), 404)


def test_the_storefront_is_not_in_the_api_spec(client):
    paths = client.get("/openapi.json").json["paths"]
    assert "/" not in paths and not any(path.startswith("/storefront") for path in paths)


def test_api_answers_do_not_get_the_page_headers(client):
    reply = client.get("/healthz")
    assert "Content-Security-Policy" not in reply.headers


def script_routes() -> dict[str, tuple[str, str]]:
    """The API table at the top of app.js: name -> (method, path)."""
    script = storefront_file("app.js")
    table = re.search(r"const API = Object\.freeze\(\{(.*?)\n\}\);", script, re.DOTALL)
    assert table, "app.js keeps the routes it calls in `const API = Object.freeze({...});`"
    entries = re.findall(r'(\w+): \{ method: "([A-Z]+)", path: "([^"]+)" \}', table.group(1))
    assert len(entries) == table.group(1).count("method:"), "every API entry must be parsed"
    return {name: (method, path) for name, method, path in entries}


def test_the_script_calls_only_routes_the_gateway_has(app):
    routes = script_routes()
    assert {"recommendations", "chat", "identify", "search", "verify", "forecastChartPng", "inventoryPlan",
            "pricing", "productProfile", "similar"} <= set(routes)
    rules = {(rule.rule, method) for rule in app.url_map.iter_rules() for method in rule.methods}
    for name, (method, path) in routes.items():
        rule = re.sub(r"\{(\w+)\}", r"<\1>", path)
        assert path.startswith("/v1/"), name
        assert (rule, method) in rules, f"app.js {name}: {method} {path} is not a route of the gateway"


def test_the_script_reaches_the_api_only_through_its_table():
    script = storefront_file("app.js")
    table_end = script.index("\n});", script.index("const API"))
    # Every /v1 path is in the table; fetch is called in one place, with a URL built from a table entry.
    assert "/v1/" not in script[table_end:]
    assert re.findall(r"\bfetch\(([^,)]*)", script) == ["apiUrl(route"]
    assert not re.search(r"https?://", script)


def test_the_script_never_parses_api_text_as_html():
    script = storefront_file("dom.js") + storefront_file("app.js")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, f"app.js must not use {sink}: put text in with textContent"
