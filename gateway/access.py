"""Who may call what, how often, and from which web origins (issue #7, access).

``install_access(app, settings)`` wires four things into the gateway, after its blueprints are registered:

- **API keys with roles.** ``SHOPAI_GATEWAY_API_KEYS`` (and/or ``SHOPAI_GATEWAY_API_KEYS_FILE``) holds
  comma-separated ``key:role[+role]`` entries. Keys are kept only as sha256 digests and compared in
  constant time. ``PROTECTED`` below is the one table that says which routes need which role; every other
  route is public. A key is sent as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; a missing key on
  a protected route is a 401 (``WWW-Authenticate: Bearer``), a key without the role a 403, an unknown key a
  401 on any route. With no key configured, protected routes are open when ``env`` is ``dev`` (``make run``)
  and answer 401 otherwise.
- **Rate limits** per client in Redis (fixed one-minute windows, ``gateway/ratelimit.py``): a client with a
  valid key is counted by key, any other by IP address. Over the limit is a 429 problem with ``Retry-After``; every
  limited response carries ``RateLimit-*`` and ``X-RateLimit-*``. A Redis that does not answer turns the
  limits off (one warning a minute), it never fails a request.
- **CORS** (flask-cors) for the origins in ``SHOPAI_GATEWAY_CORS_ORIGINS``; ``*`` opens only the public
  GET routes to every origin.
- **The OpenAPI spec** shows the security schemes, the role each protected operation needs, and the
  401/403/429 answers.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import logging
import math
import re
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from flask import Flask, Response, g, request
from flask_cors import CORS

from gateway.problems import ApiProblem, problem_response
from gateway.ratelimit import FixedWindowLimiter, RateLimited, Window
from services.common.logging import get_logger
from services.common.settings import Settings

log = get_logger(__name__)

# ----------------------------------------------------------------------------------------- the tables

ROLES: tuple[str, ...] = ("ingest", "codes", "admin")
ADMIN = "admin"  # implies every other role
EVERY_METHOD: frozenset[str] = frozenset()  # a rule with no methods covers every method (OPTIONS never)


@dataclass(frozen=True)
class Protected:
    """A group of routes that needs a key with ``role``: the requests with one of ``methods`` (empty:
    any) whose path is ``prefix`` or below it. ``blueprint`` names the blueprint that serves them; the
    install checks that it still does, so a moved route cannot silently become public."""

    blueprint: str
    methods: frozenset[str]
    prefix: str
    role: str

    def covers(self, method: str, path: str) -> bool:
        if self.methods and method.upper() not in self.methods:
            return False
        return path == self.prefix or path.startswith(self.prefix.rstrip("/") + "/")


PROTECTED: tuple[Protected, ...] = (
    Protected("events", frozenset({"POST"}), "/v1/events", "ingest"),
    Protected("vision", frozenset({"POST"}), "/v1/vision/codes", "codes"),
    Protected("admin", EVERY_METHOD, "/v1/admin", ADMIN),
)

# Probes and scrapes are never rate limited (a busy load balancer must not take the gateway out).
RATE_LIMIT_EXEMPT: tuple[str, ...] = ("/healthz", "/readyz", "/metrics")

CORS_ALLOW_HEADERS = ["Authorization", "X-API-Key", "Content-Type"]
RATE_LIMIT_HEADERS = ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy",
                      "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]
CORS_EXPOSE_HEADERS = ["Retry-After", *RATE_LIMIT_HEADERS, "Location", "WWW-Authenticate"]
CORS_MAX_AGE_SECONDS = 600
MIN_KEY_LENGTH = 16
STORAGE_WARNING_INTERVAL_SECONDS = 60.0


def required_role(method: str, path: str) -> str | None:
    """The role a request needs, or None for a public route. OPTIONS (CORS preflight) is always public."""
    if method.upper() == "OPTIONS":
        return None
    for rule in PROTECTED:
        if rule.covers(method, path):
            return rule.role
    return None


# ----------------------------------------------------------------------------------------- API keys


@dataclass(frozen=True)
class ApiKey:
    key_id: str  # "key-" + the first 8 hex digits of the key's sha256: safe to log, names the key
    digest: bytes
    roles: frozenset[str]

    def allows(self, role: str) -> bool:
        return role in self.roles or ADMIN in self.roles


class KeyRing:
    """The configured keys, as sha256 digests only."""

    def __init__(self, keys: Iterable[ApiKey] = ()) -> None:
        self.keys: tuple[ApiKey, ...] = tuple(keys)

    def __bool__(self) -> bool:
        return bool(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, presented: str) -> ApiKey | None:
        """The key matching ``presented``: every configured digest is compared, in constant time, without
        stopping at a match."""
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.digest):
                found = key
        return found

    @classmethod
    def parse(cls, text: str, source: str = "SHOPAI_GATEWAY_API_KEYS") -> KeyRing:
        """``key:role[+role]`` entries separated by commas or new lines; ``#`` starts a comment line.
        Errors name the entry by position, never by its key."""
        keys: list[ApiKey] = []
        seen: set[bytes] = set()
        entries = [e.strip() for line in text.splitlines() if not line.strip().startswith("#")
                   for e in line.split(",")]
        for number, entry in enumerate((e for e in entries if e), start=1):
            secret, sep, roles_text = entry.rpartition(":")
            secret = secret.strip()
            roles = frozenset(r.strip().lower() for r in roles_text.split("+") if r.strip())
            where = f"{source}: entry {number}"
            if not sep or not secret or not roles:
                raise ValueError(f"{where} is not key:role[+role] (roles: {', '.join(ROLES)})")
            unknown = sorted(roles - set(ROLES))
            if unknown:
                raise ValueError(f"{where} has unknown role(s) {', '.join(unknown)}; roles are {', '.join(ROLES)}")
            if len(secret) < MIN_KEY_LENGTH or any(c.isspace() for c in secret):
                raise ValueError(f"{where}: a key is at least {MIN_KEY_LENGTH} characters without spaces "
                                 "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
            digest = hashlib.sha256(secret.encode()).digest()
            if digest in seen:
                raise ValueError(f"{where} repeats a key given earlier")
            seen.add(digest)
            keys.append(ApiKey(key_id=f"key-{digest.hex()[:8]}", digest=digest, roles=roles))
        return cls(keys)


def load_key_ring(settings: Settings) -> KeyRing:
    parts: list[KeyRing] = []
    if settings.gateway_api_keys is not None and settings.gateway_api_keys.get_secret_value().strip():
        parts.append(KeyRing.parse(settings.gateway_api_keys.get_secret_value()))
    if settings.gateway_api_keys_file is not None:
        path = Path(settings.gateway_api_keys_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"SHOPAI_GATEWAY_API_KEYS_FILE: cannot read {path}: {exc.strerror}") from exc
        parts.append(KeyRing.parse(text, source=str(path)))
    keys = [key for ring in parts for key in ring.keys]
    if len({key.digest for key in keys}) != len(keys):
        raise ValueError("SHOPAI_GATEWAY_API_KEYS and SHOPAI_GATEWAY_API_KEYS_FILE repeat a key")
    return KeyRing(keys)


# ----------------------------------------------------------------------------------------- the client


@dataclass(frozen=True)
class Client:
    """Who sent the current request: a valid key, refused credentials (``refused`` says why), or
    nobody known, and from which address."""

    address: str
    key: ApiKey | None = None
    refused: str | None = None

    @property
    def rate_key(self) -> str:
        return f"key:{self.key.key_id}" if self.key else f"ip:{self.address}"


def current_client() -> Client | None:
    """The caller of the current request (None outside a request or before identification)."""
    return g.get("shopai_client")


def current_key_id() -> str | None:
    """The id of the API key that authenticated the current request (e.g. for a job's ``requested_by``)."""
    client = current_client()
    return client.key.key_id if client and client.key else None


def _client_address(trust_proxy: bool) -> str:
    address = request.remote_addr or "unknown"
    if trust_proxy:
        # The last entry is the address our own proxy saw; the ones before it are the client's word.
        hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
        if hops:
            address = hops[-1]
    return _normalised_address(address)


@functools.lru_cache(maxsize=4096)
def _normalised_address(address: str) -> str:
    """The address a client is counted under (remembered: a client sends many requests)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        # One IPv6 client usually owns a whole /64: counting single addresses would be trivial to evade.
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _presented_key() -> tuple[str | None, str | None]:
    """(key, problem): the key sent with the request, or why the credentials are unusable."""
    header_key = request.headers.get("X-API-Key")
    bearer = None
    authorization = request.headers.get("Authorization", "")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer":
            bearer = value.strip()
            if not bearer:
                return None, "the Authorization header has no key after Bearer"
    if header_key is not None and not header_key.strip():
        return None, "the X-API-Key header is empty"
    header_key = header_key.strip() if header_key is not None else None
    if header_key and bearer and not hmac.compare_digest(header_key.encode(), bearer.encode()):
        return None, "Authorization and X-API-Key carry two different keys"
    return header_key or bearer, None


# ----------------------------------------------------------------------------------------- install


class Access:
    """The access state of one app (``app.extensions["shopai.access"]``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = load_key_ring(settings)
        self.open = not self.keys and settings.env.strip().lower() == "dev"
        # Browsers send an origin without a trailing slash.
        self.cors_origins = [o.strip().rstrip("/") for o in settings.gateway_cors_origins.split(",") if o.strip()]
        self.limiter: FixedWindowLimiter | None = None

    def identify(self) -> Client:
        address = _client_address(self.settings.gateway_trust_proxy)
        if not self.keys:  # nothing to check a key against: every caller is anonymous
            return Client(address)
        presented, problem = _presented_key()
        if problem:
            return Client(address, refused=problem)
        if presented is None:
            return Client(address)
        key = self.keys.find(presented)
        if key is None:
            return Client(address, refused="the API key is not valid")
        return Client(address, key=key)

    def per_minute(self, client: Client | None) -> int:
        if client is not None and client.key is not None:
            return self.settings.gateway_key_rate_limit_per_minute
        return self.settings.gateway_rate_limit_per_minute

    def authorize(self, client: Client) -> None:
        """Raise the 401/403 problem the current request deserves, if any."""
        if request.method == "OPTIONS":  # CORS preflights carry no credentials
            return
        role = required_role(request.method, request.path)
        if client.refused:
            raise _unauthorized(client.refused, invalid=True)
        if role is None or self.open:
            return
        if not self.keys:
            raise ApiProblem(401, "no API keys are configured on this gateway (SHOPAI_GATEWAY_API_KEYS), so "
                                  f"routes that need a key are closed; this one needs the {role!r} role",
                             slug="api-keys-not-configured", headers={"WWW-Authenticate": 'Bearer realm="shopai"'})
        if client.key is None:
            raise _unauthorized(f"this route needs an API key with the {role!r} role"
                                + ("" if role == ADMIN else " (or 'admin')")
                                + ": send Authorization: Bearer <key> or X-API-Key: <key>")
        if not client.key.allows(role):
            have = ", ".join(sorted(client.key.roles))
            raise ApiProblem(403, f"this route needs an API key with the {role!r} role"
                                  + ("" if role == ADMIN else " (or 'admin')") + f"; this key has: {have}",
                             slug="missing-role")


def _unauthorized(detail: str, invalid: bool = False) -> ApiProblem:
    challenge = 'Bearer realm="shopai"' + (', error="invalid_token"' if invalid else "")
    return ApiProblem(401, detail, slug="invalid-api-key" if invalid else "missing-api-key",
                      headers={"WWW-Authenticate": challenge})


def install_access(app: Flask, settings: Settings) -> Access:
    """Install keys, rate limits, CORS and the spec's security on ``app``. Call it after every blueprint
    is registered (the install checks the table against the routes and derives CORS's public routes)."""
    access = Access(settings)
    app.extensions["shopai.access"] = access
    _check_table(app)
    _announce(access)

    @app.before_request
    def identify() -> None:
        g.shopai_client = access.identify()

    access.limiter = _install_rate_limits(app, access)  # its check runs between identify and authorize

    @app.before_request
    def authorize() -> None:
        client = g.get("shopai_client")
        if client is not None:
            access.authorize(client)

    _install_cors(app, access)
    _install_spec(app)
    return access


def _check_table(app: Flask) -> None:
    for rule in PROTECTED:
        served = [r for r in app.url_map.iter_rules() if r.endpoint.startswith(f"{rule.blueprint}.")
                  and (r.rule == rule.prefix or r.rule.startswith(rule.prefix.rstrip("/") + "/"))
                  and (not rule.methods or rule.methods & (r.methods or set()))]
        if not served:
            raise RuntimeError(f"gateway/access.py PROTECTED: blueprint {rule.blueprint!r} serves no "
                               f"{'/'.join(sorted(rule.methods)) or 'route'} under {rule.prefix}; update the table")


_announced: set[str] = set()


def _announce(access: Access) -> None:
    """One line per process about how protected routes behave (each gunicorn worker builds one app)."""
    state = "keys" if access.keys else "open" if access.open else "closed"
    if state in _announced:
        return
    _announced.add(state)
    routes = ", ".join(f"{'/'.join(sorted(r.methods)) or '*'} {r.prefix} ({r.role})" for r in PROTECTED)
    if access.open:
        log.warning("api_keys_not_configured", protected_routes=routes,
                    detail="env is dev: routes that need a key are OPEN; set SHOPAI_GATEWAY_API_KEYS to close them")
    elif not access.keys:
        log.warning("api_keys_not_configured", protected_routes=routes,
                    detail=f"env is {access.settings.env}: routes that need a key answer 401")
    else:
        log.info("api_keys_loaded", keys=len(access.keys), protected_routes=routes)


# ----------------------------------------------------------------------------------------- rate limits

class _StorageHealth:
    """Fail-open bookkeeping: while Redis does not answer, requests go unlimited and one warning a
    minute says so; the first answer again is logged once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_warning = 0.0
        self.down = False

    def failed(self, error: object) -> None:
        with self._lock:
            self.down = True
            now = time.monotonic()
            if now - self._last_warning < STORAGE_WARNING_INTERVAL_SECONDS:
                return
            self._last_warning = now
        log.warning("rate_limit_storage_unavailable", error=str(error),
                    detail="requests are answered without rate limits until Redis answers again")

    def recovered(self) -> None:
        if self.down:
            with self._lock:
                was_down, self.down, self._last_warning = self.down, False, 0.0
            if was_down:
                log.info("rate_limit_storage_recovered")


def _install_rate_limits(app: Flask, access: Access) -> FixedWindowLimiter:
    settings = access.settings
    health = _StorageHealth()
    limiter = FixedWindowLimiter(settings.redis_url, settings.gateway_rate_limit_prefix)
    weakref.finalize(app, limiter.close)

    @app.before_request
    def count_the_request() -> None:
        if request.method == "OPTIONS" or request.path in RATE_LIMIT_EXEMPT:
            return
        client = current_client()
        per_minute = access.per_minute(client)
        if per_minute == 0:  # no limit
            return
        rate_key = client.rate_key if client else f"ip:{_client_address(settings.gateway_trust_proxy)}"
        try:
            window = limiter.hit(rate_key, per_minute)
        except redis.RedisError as exc:  # fail open: no counts, no headers, one warning a minute
            health.failed(exc)
            return
        health.recovered()
        g.shopai_rate_window = window
        if window.exceeded:
            raise RateLimited

    @app.errorhandler(RateLimited)
    def too_many_requests(exc: RateLimited) -> Response:
        client = current_client()
        per_minute = access.per_minute(client)
        who = "API key" if client and client.key else "client address"
        # debug: a client over its limit is no fault of the gateway's, and /metrics counts the 429s
        log.debug("rate_limited", path=request.path, key_id=client.key.key_id if client and client.key else None,
                  client_ip=None if client and client.key else (client.address if client else None),
                  per_minute=per_minute)
        return problem_response(429, f"too many requests: this {who} may send {per_minute} requests a minute; "
                                     "retry after the number of seconds in Retry-After", slug="rate-limited")

    @functools.lru_cache(maxsize=64)
    def constant_headers(limit: int, window_seconds: int) -> tuple[tuple[str, str], ...]:
        return (("RateLimit-Limit", str(limit)), ("RateLimit-Policy", f"{limit};w={window_seconds}"),
                ("X-RateLimit-Limit", str(limit)))

    @app.after_request
    def rate_limit_headers(response: Response) -> Response:
        window: Window | None = g.get("shopai_rate_window")
        if window is None:
            return response
        reset_in = max(1, math.ceil(window.reset_in_ms / 1000))
        remaining = str(window.remaining)
        headers = response.headers  # add, not set: a fresh response has none of these (the cost is per request)
        for name, value in constant_headers(window.limit, window.window_seconds):
            headers.add(name, value)
        headers.add("RateLimit-Remaining", remaining)
        headers.add("RateLimit-Reset", str(reset_in))
        headers.add("X-RateLimit-Remaining", remaining)
        headers.add("X-RateLimit-Reset", str(math.ceil(time.time() + window.reset_in_ms / 1000)))  # epoch s
        if response.status_code == 429 and window.exceeded:
            headers["Retry-After"] = str(reset_in)
        return response

    return limiter


# ----------------------------------------------------------------------------------------- CORS


def _rule_pattern(rule: str) -> re.Pattern[str]:
    """A werkzeug rule (``/v1/users/<user_id>/profile``) as a regex for flask-cors's resources."""
    parts = []
    for piece in re.split(r"(<[^>]+>)", rule):
        if piece.startswith("<") and piece.endswith(">"):
            parts.append(".+" if piece.startswith("<path:") else "[^/]+")
        else:
            parts.append(re.escape(piece))
    return re.compile("^" + "".join(parts) + "$")


def _install_cors(app: Flask, access: Access) -> None:
    if not access.cors_origins:
        return
    logging.getLogger("flask_cors").setLevel(logging.WARNING)  # it logs every refused preflight at INFO
    common: dict[str, Any] = {
        "allow_headers": CORS_ALLOW_HEADERS, "expose_headers": CORS_EXPOSE_HEADERS,
        "max_age": CORS_MAX_AGE_SECONDS, "supports_credentials": False, "always_send": False,
    }
    explicit = [origin for origin in access.cors_origins if origin != "*"]
    # after_request hooks run last-registered first, and flask-cors leaves a response that already has
    # Access-Control-Allow-Origin alone: the explicit origins are registered last, so they decide first.
    if "*" in access.cors_origins:
        public_get = sorted({rule.rule for rule in app.url_map.iter_rules()
                             if "GET" in (rule.methods or set()) and required_role("GET", rule.rule) is None})
        CORS(app, resources={_rule_pattern(rule): {} for rule in public_get}, origins="*", send_wildcard=True,
             methods=["GET", "HEAD", "OPTIONS"], **common)
    if explicit:
        CORS(app, resources={r"/*": {}}, origins=explicit,
             methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], **common)

    @app.after_request
    def vary_on_origin(response: Response) -> Response:
        response.vary.add("Origin")  # the CORS headers depend on it, whatever flask-cors decided
        return response


# ----------------------------------------------------------------------------------------- OpenAPI

SECURITY_SCHEMES = {
    "bearerKey": {"type": "http", "scheme": "bearer",
                  "description": "An API key as `Authorization: Bearer <key>` (see docs/api.md, Access)"},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                     "description": "The same API key as `X-API-Key: <key>`"},
}


def _problem(description: str, spec: dict, headers: dict | None = None) -> dict:
    answer: dict[str, Any] = {"description": description}
    if "Problem" in spec.get("components", {}).get("schemas", {}):
        answer["content"] = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    if headers:
        answer["headers"] = headers
    return answer


def _int_header(description: str) -> dict:
    return {"description": description, "schema": {"type": "integer"}}


def patch_spec(spec: dict) -> dict:
    """Add the security schemes, each protected operation's requirement and the 401/403/429 answers."""
    spec.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    too_many = {
        "Retry-After": _int_header("seconds until the client's window resets"),
        "RateLimit-Limit": _int_header("requests allowed per window"),
        "RateLimit-Remaining": _int_header("requests left in this window"),
        "RateLimit-Reset": _int_header("seconds until the window resets"),
    }
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or method.upper() not in {
                    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}:
                continue
            responses = operation.setdefault("responses", {})
            if path not in RATE_LIMIT_EXEMPT:
                responses.setdefault("429", _problem("Too many requests from this client", spec, too_many))
            role = required_role(method, path)
            if role is None:
                continue
            # OpenAPI 3.1 allows role names in non-OAuth requirements.
            operation["security"] = [{"bearerKey": [role]}, {"apiKeyHeader": [role]}]
            needs = f"`{role}`" + ("" if role == ADMIN else " (or `admin`)")
            note = f"**Access:** needs an API key with the {needs} role."
            operation["description"] = (operation.get("description", "").rstrip() + "\n\n" + note).strip()
            responses.setdefault("401", _problem("No API key, or one that is not valid", spec, {
                "WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}))
            responses.setdefault("403", _problem(f"The API key lacks the {role} role", spec))
    return spec


def _install_spec(app: Flask) -> None:
    generate = app.generate_spec_json  # flask-openapi3 builds the spec once, on first use

    def generate_with_security() -> None:
        generate()
        patch_spec(app.spec_json)

    app.generate_spec_json = generate_with_security  # type: ignore[method-assign]
