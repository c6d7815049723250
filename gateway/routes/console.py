"""The staff console at ``/console``: one page (gateway/console: index.html, console.js, console.css; it
loads the storefront's /storefront/dom.js first, the helpers both pages share) over the staff REST routes: the support inbox, alerts, dead letters, models, experiments, authenticity codes and
analytics. Staff sign in by pasting an API key; the page keeps it in session storage and sends it as
``X-API-Key`` on every call, so the routes' own policy (gateway/policy.py) decides what each key may do.

Served like the storefront (gateway/routes/storefront.py): package data read once per process, an ETag and
``Cache-Control: no-cache``, the same Content-Security-Policy (scripts, styles and requests to this origin
only, no inline script or style; charts are SVG drawn by the script). A plain Flask blueprint, so it stays
out of the OpenAPI spec."""

from __future__ import annotations

from flask import Blueprint, Response

from gateway.routes.storefront import serve_listed, serve_page_file

console = Blueprint("console", __name__)

PACKAGE = "gateway.console"
PAGE = "index.html"
PREFIX = "/console"
# The files under /console/ and their media types; nothing else in the package is served.
STATIC_FILES = {"console.js": "text/javascript", "console.css": "text/css"}


@console.get(PREFIX)
def index() -> Response:
    """The console page (its sections are fragments: /console#alerts)."""
    return serve_page_file(PACKAGE, PAGE, "text/html")


@console.get(f"{PREFIX}/<path:filename>")
def static_file(filename: str) -> Response:
    """The page's script and stylesheet; any other name is a 404 problem."""
    return serve_listed("console", PACKAGE, STATIC_FILES, filename)
