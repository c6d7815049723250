"""Who may call what, how often, and from which web origins (issues #7 and #17).

``install_access(app, settings)`` wires these into the gateway, after its blueprints are registered:

- **Who is calling.** Shop systems and staff send an API key (``SHOPAI_GATEWAY_API_KEYS`` and/or
  ``SHOPAI_GATEWAY_API_KEYS_FILE``: comma-separated ``key:role[+role]`` entries, kept only as sha256 digests,
  compared in constant time) as ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``. A signed-in shopper
  sends a token (gateway/identity.py) as ``Authorization: Bearer <token>``. Anyone else is anonymous. A key or
  token that is not valid is a 401 with the reason on every route.
- **The route policy** (gateway/policy.py ``POLICY``): each route is public, needs a role, or is a shopper's
  own (their token, or a key with the fitting staff role; anyone else a 404 like "no such user"). The gateway
  refuses to start while a ``/v1`` route is missing from the table. A staff key's read of a shopper's data is
  written to the audit log (gateway/audit.py) before it is served.
- **Rate limits** per client in Redis (fixed one-minute windows, ``gateway/ratelimit.py``): a client with a
  valid key is counted by key, a shopper by user id, any other by IP address. Over the limit is a 429 problem
  with ``Retry-After``; every limited response carries ``RateLimit-*`` and ``X-RateLimit-*``. A Redis that does
  not answer turns the limits off (one warning a minute), it never fails a request.
- **CORS** (flask-cors) for the origins in ``SHOPAI_GATEWAY_CORS_ORIGINS``; ``*`` opens only the public
  GET routes to every origin.
- **The OpenAPI spec** shows the security schemes and each operation's policy entry (``security``,
  ``x-shopai-access``) with its 401/403/404/429 answers.
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

from gateway.audit import AuditLog
from gateway.identity import ShopperTokens, TokenRefused, looks_like_token
from gateway.policy import ADMIN, ROLES, Caller, Need, decide, need_for, uncovered
from gateway.problems import ApiProblem, problem_response
from gateway.ratelimit import FixedWindowLimiter, RateLimited, Window
from services.common.logging import get_logger
from services.common.settings import Settings

log = get_logger(__name__)

# ----------------------------------------------------------------------------------------- the tables

# Probes and scrapes are never rate limited (a busy load balancer must not take the gateway out).
RATE_LIMIT_EXEMPT: tuple[str, ...] = ("/healthz", "/readyz", "/metrics")

CORS_ALLOW_HEADERS = ["Authorization", "X-API-Key", "Content-Type"]
RATE_LIMIT_HEADERS = ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy",
                      "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]
# A shop's page on another origin reads these: a degraded or kept (stale) answer says so in its headers, and Age
# says how old a kept one is.
CORS_EXPOSE_HEADERS = ["Retry-After", *RATE_LIMIT_HEADERS, "Location", "WWW-Authenticate", "X-ShopAI-Computed-At",
                       "X-ShopAI-Stale", "X-ShopAI-Degraded", "X-ShopAI-Cache", "Age"]
CORS_MAX_AGE_SECONDS = 600
MIN_KEY_LENGTH = 16
STORAGE_WARNING_INTERVAL_SECONDS = 60.0


def current_need() -> Need:
    """What the current request needs (gateway/policy.py), by its matched route."""
    rule = request.url_rule
    return need_for(request.method, rule.rule if rule is not None else None)


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
    """Who sent the current request: a valid key and/or a verified shopper, refused credentials
    (``refused`` says why), or nobody known; and from which address."""

    address: str
    key: ApiKey | None = None
    shopper: str | None = None  # the subject of a verified shopper token
    refused: str | None = None

    @property
    def rate_key(self) -> str:
        if self.key:
            return f"key:{self.key.key_id}"
        return f"shopper:{self.shopper}" if self.shopper else f"ip:{self.address}"

    @property
    def caller(self) -> Caller:
        return Caller(self.key.roles if self.key else None, self.shopper)


def current_client() -> Client | None:
    """The caller of the current request (None outside a request or before identification)."""
    return g.get("shopai_client")


def current_shopper() -> str | None:
    """The user id of the signed-in shopper who sent the current request (from a verified token), or None."""
    client = current_client()
    return client.shopper if client else None


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


@dataclass(frozen=True)
class Presented:
    key: str | None = None
    token: str | None = None
    problem: str | None = None


def _presented() -> Presented:
    """The key and/or shopper token sent with the request, or why the credentials are unusable. A bearer
    value shaped like a JWT is a shopper token; any other bearer value is an API key."""
    header_key = request.headers.get("X-API-Key")
    bearer = None
    authorization = request.headers.get("Authorization", "")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return Presented(problem=f"the Authorization scheme {scheme[:20]!r} is not supported: send Bearer")
        bearer = value.strip()
        if not bearer:
            return Presented(problem="the Authorization header has nothing after Bearer")
    if header_key is not None and not header_key.strip():
        return Presented(problem="the X-API-Key header is empty")
    header_key = header_key.strip() if header_key is not None else None
    if bearer and looks_like_token(bearer):
        return Presented(key=header_key, token=bearer)
    if header_key and bearer and not hmac.compare_digest(header_key.encode(), bearer.encode()):
        return Presented(problem="Authorization and X-API-Key carry two different keys")
    return Presented(key=header_key or bearer)


# ----------------------------------------------------------------------------------------- install


class Access:
    """The access state of one app (``app.extensions["shopai.access"]``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = load_key_ring(settings)
        self.tokens = ShopperTokens(settings)
        # Browsers send an origin without a trailing slash.
        self.cors_origins = [o.strip().rstrip("/") for o in settings.gateway_cors_origins.split(",") if o.strip()]
        self.limiter: FixedWindowLimiter | None = None
        self.audit: AuditLog | None = None

    def identify(self) -> Client:
        address = _client_address(self.settings.gateway_trust_proxy)
        presented = _presented()
        if presented.problem:
            return Client(address, refused=presented.problem)
        key = shopper = None
        if presented.key is not None:
            key = self.keys.find(presented.key) if self.keys else None
            if key is None:
                return Client(address, refused="the API key is not valid")
        if presented.token is not None:
            try:
                shopper = self.tokens.verify(presented.token)
            except TokenRefused as exc:
                return Client(address, key=key, refused=f"the shopper token is refused: {exc}")
        return Client(address, key=key, shopper=shopper)

    def per_minute(self, client: Client | None) -> int:
        if client is not None and client.key is not None:
            return self.settings.gateway_key_rate_limit_per_minute
        return self.settings.gateway_rate_limit_per_minute

    def authorize(self, client: Client) -> None:
        """Raise the 401/403/404 problem the current request deserves, if any; record a staff read of a
        shopper's data in the audit log before it is served."""
        if request.method == "OPTIONS":  # CORS preflights carry no credentials
            return
        if client.refused:
            raise _unauthorized(client.refused, invalid=True)
        need = current_need()
        if need.kind == "public":
            return
        verdict = decide(need, client.caller, request.view_args or {})
        if verdict.status == 401:
            if not self.keys and need.kind == "role":
                raise ApiProblem(401, "no API keys are configured on this gateway (SHOPAI_GATEWAY_API_KEYS), so "
                                      f"routes that need one are closed; {verdict.detail}",
                                 slug="api-keys-not-configured", headers={"WWW-Authenticate": 'Bearer realm="shopai"'})
            raise _unauthorized(verdict.detail)
        if not verdict.allowed:
            raise ApiProblem(verdict.status, verdict.detail, slug=verdict.slug)
        if verdict.staff_read_of is not None and self.audit is not None and client.key is not None:
            self.audit.record(client.key.key_id, request.method, request.url_rule.rule, verdict.staff_read_of)


def _unauthorized(detail: str, invalid: bool = False) -> ApiProblem:
    challenge = 'Bearer realm="shopai"' + (', error="invalid_token"' if invalid else "")
    return ApiProblem(401, detail, slug="invalid-credentials" if invalid else "missing-credentials",
                      headers={"WWW-Authenticate": challenge})


def install_access(app: Flask, settings: Settings) -> Access:
    """Install keys, tokens, the route policy, the audit log, rate limits, CORS and the spec's security on
    ``app``. Call it after every blueprint is registered (the install checks that the policy covers every
    route and derives CORS's public routes)."""
    access = Access(settings)
    access.audit = AuditLog(app.extensions["shopai.redis"], settings.gateway_audit_max_entries)
    app.extensions["shopai.access"] = access
    _check_policy(app)
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


def _check_policy(app: Flask) -> None:
    routes = [(method, rule.rule) for rule in app.url_map.iter_rules() for method in (rule.methods or ())]
    missing = uncovered(routes)
    if missing:
        raise RuntimeError(f"gateway/policy.py POLICY covers no entry for: {', '.join(missing)}; add them")


_announced: set[str] = set()


def _announce(access: Access) -> None:
    """One line per process about the credentials this gateway accepts (each gunicorn worker builds one app)."""
    state = f"{len(access.keys)}:{len(access.tokens.keys)}"
    if state in _announced:
        return
    _announced.add(state)
    if not access.keys:
        log.warning("api_keys_not_configured",
                    detail="routes that need a staff or system role answer 401; set SHOPAI_GATEWAY_API_KEYS")
    if not access.tokens:
        log.warning("shopper_tokens_not_configured",
                    detail="shoppers cannot sign in; set SHOPAI_GATEWAY_SHOPPER_TOKEN_SECRETS or _PUBLIC_KEYS_FILE")
    log.info("access_loaded", keys=len(access.keys), shopper_token_keys=len(access.tokens.keys))


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
    limiter = FixedWindowLimiter(settings, settings.gateway_rate_limit_prefix)
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
                             if "GET" in (rule.methods or set()) and need_for("GET", rule.rule).kind == "public"})
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
                  "description": "An API key of a shop system or staff member as `Authorization: Bearer <key>` "
                                 "(see docs/api.md, Access)"},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                     "description": "The same API key as `X-API-Key: <key>`"},
    "shopperToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                     "description": "A signed-in shopper's short-lived token (subject = user id) as "
                                    "`Authorization: Bearer <token>`"},
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
    """Add the security schemes and, to every operation, the policy's entry: ``security`` (empty for a public
    route), ``x-shopai-access`` (kind, roles, the shopper's path parameter), a line in the description, and
    the 401/403/404/429 answers."""
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
            need = need_for(method, path)
            operation["x-shopai-access"] = {"kind": need.kind, "roles": list(need.roles),
                                            **({"shopper": need.param} if need.param else {})}
            note = f"**Access:** {need.describe()}."
            if note not in operation.get("description", ""):
                operation["description"] = (operation.get("description", "").rstrip() + "\n\n" + note).strip()
            if need.kind == "public":
                operation["security"] = []
                continue
            roles = list(need.roles)
            # OpenAPI 3.1 allows role names in non-OAuth requirements.
            operation["security"] = ([{"shopperToken": []}] if need.kind == "shopper" else []) + [
                {"bearerKey": roles}, {"apiKeyHeader": roles}]
            responses.setdefault("401", _problem("No credentials, or a key or token that is not valid", spec, {
                "WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}))
            responses.setdefault("403", _problem(f"The API key lacks the {' or '.join(roles)} role", spec))
            if need.kind == "shopper":
                responses.setdefault("404", _problem("Not this caller's shopper, or no such shopper (the same answer)",
                                                     spec))
    return spec


def _install_spec(app: Flask) -> None:
    generate = app.generate_spec_json  # flask-openapi3 builds the spec once, on first use

    def generate_with_security() -> None:
        generate()
        patch_spec(app.spec_json)

    app.generate_spec_json = generate_with_security  # type: ignore[method-assign]
