"""The staff console served by the gateway at /console: the files, their headers (the storefront's
Content-Security-Policy), that the page needs no inline script, style or CDN, and that the script only
calls routes the gateway has, with the key in the X-API-Key header. tests/e2e/console.py clicks through
each section in a real browser."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from gateway.app import close_app, create_app
from gateway.routes.storefront import CONTENT_SECURITY_POLICY
from services.common.deadletters import DLQ_SUFFIX, DLQ_TOPICS
from services.common.recommendations import STRATEGIES
from services.common.settings import SERVICE_NAMES, Settings
from tests.support import TEST_KEYS, assert_problem, free_port


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
    return app.test_client()  # no key: the page itself is public, its API calls are not


def console_file(name: str) -> str:
    return resources.files("gateway.console").joinpath(name).read_text(encoding="utf-8")


def test_the_console_is_served_with_the_storefronts_content_security_policy(client):
    reply = client.get("/console")
    assert reply.status_code == 200
    assert reply.content_type == "text/html; charset=utf-8"
    assert reply.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY and "unsafe-eval" not in CONTENT_SECURITY_POLICY
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Referrer-Policy"] == "same-origin"
    assert reply.headers["Cache-Control"] == "no-cache" and reply.headers["ETag"]
    html = reply.get_data(as_text=True)
    # the storefront's shared helpers (h, apiUrl, ApiError, …) first, then the console's own script
    assert html.index('<script src="/storefront/dom.js" defer></script>') < html.index(
        '<script src="/console/console.js" defer></script>')
    assert client.get("/storefront/dom.js").status_code == 200
    assert '<link rel="stylesheet" href="/console/console.css">' in html


def test_the_page_has_no_inline_script_style_or_cdn():
    html = console_file("index.html")
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.DOTALL)
    assert scripts == ["", ""], "scripts belong in console.js (and the shared dom.js)"
    assert "<style" not in html and not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html), "no inline event handlers"
    assert not re.search(r"""(src|href)=["']https?:""", html), "no CDN: everything comes from the gateway"


def test_every_section_is_a_labelled_tab_panel():
    html = console_file("index.html")
    tabs = re.findall(r'role="tab" id="tab-(\w+)"', html)
    assert tabs == ["support", "alerts", "deadletters", "models", "experiments", "codes", "analytics"]
    for tab in tabs:
        assert f'id="panel-{tab}" class="panel-page" role="tabpanel" aria-labelledby="tab-{tab}"' in html
    script = console_file("console.js")
    assert f"const TABS = {str(tabs).replace(chr(39), chr(34))};" in script.replace(", ", ",").replace(",", ", ")
    # Every input, select and textarea of the page sits in a label (or names itself with aria-label).
    for control in re.finditer(r"<(input|select|textarea)\b[^>]*>", html):
        before = html[:control.start()]
        assert before.rfind("<label") > before.rfind("</label>") or "aria-label" in control.group(0), control.group(0)


@pytest.mark.parametrize(("path", "mimetype", "marker"), [
    ("/console/console.js", "text/javascript", "const API"),
    ("/console/console.css", "text/css", ":root"),
])
def test_the_script_and_the_stylesheet_are_served(client, path, mimetype, marker):
    reply = client.get(path)
    assert reply.status_code == 200
    assert reply.mimetype == mimetype
    assert marker in reply.get_data(as_text=True)
    assert reply.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    again = client.get(path, headers={"If-None-Match": reply.headers["ETag"]})
    assert again.status_code == 304 and not again.get_data()


@pytest.mark.parametrize("path", [
    "/console/nothing.js", "/console/index.html", "/console/__init__.py", "/console/../app.py",
    "/console/%2e%2e/routes/console.py", "/console/app.js",
])
def test_an_unknown_console_file_is_a_404_problem(client, path):
    assert_problem(client.get(path), 404)


def test_the_console_is_not_in_the_api_spec(client):
    paths = client.get("/openapi.json").json["paths"]
    assert not any(path.startswith("/console") for path in paths)


def script_routes() -> dict[str, tuple[str, str]]:
    """The API table at the top of console.js: name -> (method, path)."""
    script = console_file("console.js")
    table = re.search(r"const API = Object\.freeze\(\{(.*?)\n\}\);", script, re.DOTALL)
    assert table, "console.js keeps the routes it calls in `const API = Object.freeze({...});`"
    entries = re.findall(r'(\w+): \{ method: "([A-Z]+)", path: "([^"]+)" \}', table.group(1))
    assert len(entries) == table.group(1).count("method:"), "every API entry must be parsed"
    return {name: (method, path) for name, method, path in entries}


def test_the_script_calls_only_routes_the_gateway_has(app):
    routes = script_routes()
    rules = {(rule.rule, method) for rule in app.url_map.iter_rules() for method in rule.methods}
    for name, (method, path) in routes.items():
        rule = re.sub(r"\{(\w+)\}", r"<\1>", path)
        assert path.startswith("/v1/"), name
        assert (rule, method) in rules, f"console.js {name}: {method} {path} is not a route of the gateway"


def test_the_script_reaches_the_api_only_through_its_table_with_the_key_header():
    script = console_file("console.js")
    table_end = script.index("\n});", script.index("const API"))
    assert "/v1/" not in script[table_end:]
    assert re.findall(r"\bfetch\(([^,)]*)", script) == ["apiUrl(route"]
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", script)
    assert '"X-API-Key": state.key' in script  # gateway/access.py reads the key from this header
    # The key lives in session storage only (never localStorage or a cookie).
    assert "localStorage" not in script and "document.cookie" not in script
    assert "sessionStorage.setItem(KEY_STORAGE" in script


def test_the_script_never_parses_api_text_as_html():
    script = console_file("console.js") + resources.files("gateway.storefront").joinpath("dom.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, f"console.js must not use {sink}: put text in with textContent"
    assert not re.search(r"setAttribute\(\s*[\"']style", script), "the policy blocks inline style attributes"


def test_the_scripts_topic_and_strategy_lists_are_the_services():
    script = console_file("console.js")
    topics = re.search(r"const DEAD_LETTER_TOPICS = \[(.*?)\];", script, re.DOTALL).group(1)
    assert re.findall(r'"([^"]+)"', topics) == [t.removesuffix(DLQ_SUFFIX) for t in DLQ_TOPICS]
    strategies = re.search(r"const STRATEGIES = \[(.*?)\];", script, re.DOTALL).group(1)
    assert tuple(re.findall(r'"([^"]+)"', strategies)) == STRATEGIES
