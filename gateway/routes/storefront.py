"""The storefront demo page at ``/``: one page (gateway/storefront: index.html, app.js, readiness.js, style.css, and
dom.js: the helpers it shares with the staff console) over the REST API: browse, recommendations, the assistant, photos, a product's forecast, stock and price.

A plain Flask blueprint, so it stays out of the OpenAPI spec. The files are package data read with
importlib.resources (found in a wheel as in a checkout), once per process. Every answer carries an
ETag and ``Cache-Control: no-cache``: a browser revalidates and gets a 304 until the files change, so
a new deployment is never mixed with a cached old script. The Content-Security-Policy allows scripts,
styles and requests to this origin only (no inline script or style) and images from this origin,
``data:`` and ``blob:`` (the forecast chart and the photo preview are blob URLs)."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources

from flask import Blueprint, Response, request

from gateway.problems import ApiProblem

storefront = Blueprint("storefront", __name__)

PACKAGE = "gateway.storefront"
PAGE = "index.html"
# The files under /storefront/ and their media types; nothing else in the package is served.
STATIC_FILES = {"dom.js": "text/javascript", "app.js": "text/javascript", "readiness.js": "text/javascript", "style.css": "text/css"}
STATIC_PREFIX = "/storefront"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
CACHE_CONTROL = "no-cache"


@cache
def _file(package: str, name: str) -> tuple[bytes, str]:
    """The file's bytes and its ETag (a hash of the content)."""
    data = resources.files(package).joinpath(name).read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:32]


def serve_page_file(package: str, name: str, mimetype: str) -> Response:
    """One file of a page's package (the storefront's, the console's) with its ETag, ``no-cache`` and the
    page's security headers; a 304 when the browser's copy is current."""
    data, etag = _file(package, name)
    response = Response(data, mimetype=mimetype)
    response.set_etag(etag)
    response.headers["Cache-Control"] = CACHE_CONTROL
    response.headers.update(SECURITY_HEADERS)
    return response.make_conditional(request)


def serve_listed(page: str, package: str, files: dict[str, str], filename: str) -> Response:
    """``filename`` when ``files`` (name -> media type) lists it; any other name is a 404 problem."""
    mimetype = files.get(filename)
    if mimetype is None:
        raise ApiProblem(404, f"the {page} has no file {filename!r}; it serves {', '.join(sorted(files))}")
    return serve_page_file(package, filename, mimetype)


@storefront.get("/")
def index() -> Response:
    """The storefront page."""
    return serve_page_file(PACKAGE, PAGE, "text/html")


@storefront.get(f"{STATIC_PREFIX}/<path:filename>")
def static_file(filename: str) -> Response:
    """The page's script and stylesheet; any other name is a 404 problem."""
    return serve_listed("storefront", PACKAGE, STATIC_FILES, filename)
