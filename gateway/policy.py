"""Who may call what: the gateway's one route policy (issue #17), pure — no Flask, no I/O.

Three kinds of caller (docs/api.md, "Access"):
- **shop systems and staff** send an API key; a key has roles (``ROLES``), ``admin`` holds them all;
- **shoppers** send a signed token whose subject is their user id (gateway/identity.py);
- **anonymous visitors** send neither.

``POLICY`` is the table: each entry names a method (or every method) and a route as Flask writes it
(``/v1/users/<user_id>/profile``; a trailing ``/*`` covers every route below), and what it needs:

- ``PUBLIC``: anyone;
- ``role(r)``: a key with role ``r``;
- ``shopper(param, *roles)``: the shopper whose id is the route's ``param`` (their own token), or a key with
  one of ``roles``. Anyone else gets a 404 that reads exactly like "no such user", so ids cannot be probed.

The first entry that covers a request decides. Every ``/v1`` route must be covered (``uncovered`` finds the
ones that are not; the gateway refuses to start with any), so a new route is never public by accident.
The OpenAPI spec shows each operation's entry (gateway/access.py ``patch_spec``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

ROLES: tuple[str, ...] = ("ingest", "codes", "analyst", "support", "privacy", "sessions", "admin")
ADMIN = "admin"  # holds every other role
ANY = "*"

# The one answer to "not yours" and "does not exist" on a shopper's routes.
NOT_FOUND_DETAIL = "no such user, or not one this caller may see"


@dataclass(frozen=True)
class Need:
    kind: str  # "public" | "role" | "shopper"
    roles: tuple[str, ...] = ()
    param: str = ""

    def describe(self) -> str:
        if self.kind == "public":
            return "public: no key or token needed"
        staff = " or ".join(f"`{r}`" for r in self.roles)
        staff += "" if ADMIN in self.roles else " (or `admin`)"
        if self.kind == "role":
            return f"needs an API key with the {staff}"
        return (f"the shopper `{{{self.param}}}` with their own shopper token, or an API key with the {staff} "
                f"role (staff reads are audited); anyone else gets 404")


PUBLIC = Need("public")


def role(name: str) -> Need:
    return Need("role", (name,))


def shopper(param: str, *staff_roles: str) -> Need:
    return Need("shopper", staff_roles, param)


@dataclass(frozen=True)
class Entry:
    method: str  # an HTTP method or ANY
    route: str  # a Flask rule, or a prefix followed by "/*"
    need: Need

    def covers(self, method: str, route: str) -> bool:
        if self.method != ANY and self.method != method:
            return False
        if self.route.endswith("/*"):
            prefix = self.route[:-2]
            return route == prefix or route.startswith(prefix + "/")
        return route == self.route


POLICY: tuple[Entry, ...] = (
    # shop systems
    Entry("POST", "/v1/events", role("ingest")),
    Entry("POST", "/v1/vision/codes", role("codes")),
    Entry("POST", "/v1/vision/codes/revocations", role("codes")),
    Entry("GET", "/v1/vision/codes/<serial>/scans", role("codes")),  # scanners pseudonymised
    Entry("POST", "/v1/auth/shopper-tokens", role("sessions")),
    Entry("POST", "/v1/auth/dev-session", PUBLIC),  # registered only when env is dev (make run)
    # operators
    # the alerts desk: analysts read alerts (reorder points are their work); acknowledging is the admin's
    Entry("GET", "/v1/admin/alerts", role("analyst")),
    Entry(ANY, "/v1/admin/*", role(ADMIN)),
    Entry(ANY, "/v1/privacy/*", role("privacy")),
    Entry(ANY, "/v1/support/*", role("support")),  # the hand-off inbox (gateway/routes/support.py)
    # a shopper's own data
    Entry("DELETE", "/v1/users/<user_id>", role("privacy")),
    Entry("GET", "/v1/users/<user_id>/export", shopper("user_id", "privacy")),
    Entry(ANY, "/v1/users/<user_id>/*", shopper("user_id", "support")),
    Entry("GET", "/v1/analytics/users/<user_id>", shopper("user_id", "analyst", "support")),
    # the shop's business data: sales, stock, costs, margins, customers in aggregate
    Entry(ANY, "/v1/forecasts/*", role("analyst")),
    Entry(ANY, "/v1/inventory/*", role("analyst")),
    Entry(ANY, "/v1/pricing/*", role("analyst")),
    Entry(ANY, "/v1/analytics/*", role("analyst")),
    # what every visitor of the shop may ask
    Entry(ANY, "/v1/products/*", PUBLIC),
    Entry("GET", "/v1/recommendations", PUBLIC),
    Entry("POST", "/v1/vision/identify", PUBLIC),
    Entry("POST", "/v1/vision/search", PUBLIC),
    Entry("POST", "/v1/vision/verify", PUBLIC),
    Entry("POST", "/v1/chat", PUBLIC),  # orders only for the token's subject (services/chatbot)
    # The conversation's own shopper: the assistant checks (their token when they were signed in, else the
    # session id itself) and answers anyone else 404, as for a conversation never handed over.
    Entry("GET", "/v1/chat/conversations/<session_id>/messages", PUBLIC),
    Entry("POST", "/v1/nlu/parse", PUBLIC),
)


def canonical(route: str) -> str:
    """``/v1/users/{user_id}`` (OpenAPI) and ``/v1/users/<user_id>`` / ``<string:user_id>`` (Flask) alike
    become ``/v1/users/<user_id>``."""
    route = re.sub(r"\{([^}]+)\}", r"<\1>", route)
    return re.sub(r"<(?:[a-z]+:)?([^>]+)>", r"<\1>", route)


@functools.lru_cache(maxsize=1024)
def need_of(method: str, route: str) -> Need | None:
    """The entry that decides ``method`` on ``route``; None when no entry covers it."""
    method, route = method.upper(), canonical(route)
    if method == "HEAD":
        method = "GET"
    for entry in POLICY:
        if entry.covers(method, route):
            return entry.need
    return None


def need_for(method: str, route: str | None) -> Need:
    """What a request needs. Routes outside ``/v1`` (health, metrics, the spec, the storefront) and paths no
    route matches (a 404 anyway) are public; CORS preflights carry no credentials and are public too."""
    if route is None or method.upper() == "OPTIONS":
        return PUBLIC
    found = need_of(method, route)
    if found is None:
        return PUBLIC if not canonical(route).startswith("/v1/") else Need("role", (ADMIN,))
    return found


def uncovered(routes: list[tuple[str, str]]) -> list[str]:
    """The ``/v1`` (method, route) pairs no entry covers."""
    return sorted(f"{m} {r}" for m, r in routes
                  if canonical(r).startswith("/v1/") and m not in ("OPTIONS", "HEAD") and need_of(m, r) is None)


@dataclass(frozen=True)
class Caller:
    roles: frozenset[str] | None = None  # the API key's roles; None: no key
    shopper: str | None = None  # the verified token's subject

    def has(self, wanted: tuple[str, ...]) -> bool:
        return self.roles is not None and (ADMIN in self.roles or any(r in self.roles for r in wanted))


@dataclass(frozen=True)
class Verdict:
    status: int  # 200: allowed
    detail: str = ""
    slug: str = ""
    staff_read_of: str | None = None  # a staff key reading this shopper's data: audited

    @property
    def allowed(self) -> bool:
        return self.status == 200


ALLOWED = Verdict(200)


def decide(need: Need, caller: Caller, path_args: dict[str, str]) -> Verdict:
    """Whether ``caller`` may make a request that needs ``need``, and if not the status and reason."""
    if need.kind == "public":
        return ALLOWED
    staff = " or ".join(repr(r) for r in need.roles) + " role" + ("" if ADMIN in need.roles else " (or 'admin')")
    if need.kind == "role":
        if caller.has(need.roles):
            return ALLOWED
        if caller.roles is not None:
            have = ", ".join(sorted(caller.roles))
            return Verdict(403, f"this route needs an API key with the {staff}; this key has: {have}",
                           "missing-role")
        if caller.shopper is not None:
            return Verdict(403, f"a shopper token does not open this route: it needs an API key with the {staff}",
                           "missing-role")
        return Verdict(401, f"this route needs an API key with the {staff}: send "
                            "Authorization: Bearer <key> or X-API-Key: <key>", "missing-credentials")
    subject = path_args.get(need.param, "")
    if caller.shopper is not None and caller.shopper == subject:
        return ALLOWED
    if caller.has(need.roles):
        return Verdict(200, staff_read_of=subject)
    if caller.shopper is not None:
        return Verdict(404, NOT_FOUND_DETAIL, "not-found")  # another shopper's: as if it did not exist
    if caller.roles is not None:
        have = ", ".join(sorted(caller.roles))
        return Verdict(403, f"a shopper's data needs their own shopper token or an API key with the {staff} "
                            f"role; this key has: {have}", "missing-role")
    return Verdict(401, "a shopper's data needs their shopper token (Authorization: Bearer <token>) or a staff "
                        f"API key with the {staff}", "missing-credentials")
