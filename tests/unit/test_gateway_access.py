"""Access to the gateway (gateway/access.py): API keys with roles, rate limits in the real Redis, CORS, the
spec's security, and personal data masked in logs. Backends are dead ports except a fake vision service;
a request that passes the key check but has a bad body is a 400, which proves the check passed without
a broker."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import uuid
from pathlib import Path

import pytest
import redis
import structlog
from google.protobuf.timestamp_pb2 import Timestamp

import gateway
from gateway.access import KeyRing, patch_spec
from gateway.app import close_app, create_app
from gateway.policy import POLICY, need_for
from protos import vision_pb2 as pb
from protos import vision_pb2_grpc
from services.common.logging import configure_logging, get_logger, mask_personal_data, mask_text
from services.common.settings import SERVICE_NAMES, Settings
from tests.support import RecordingServicer, assert_problem, free_port, serving

INGEST = "ingest-key-0123456789abcdef"
CODES = "codes-key-0123456789abcdef"
ADMIN = "admin-key-0123456789abcdef"
BOTH = "both-key-0123456789abcdef"
KEYS = f"{INGEST}:ingest, {CODES}:codes,{ADMIN}:admin,{BOTH}:ingest+codes"
SHOP = "https://shop.example.com"

EVENTS = ("POST", "/v1/events", {"events": [{"type": "x"}]})  # passes the key check, then a 400
CODES_ROUTE = ("POST", "/v1/vision/codes", {"product_id": "p1", "batch": "B1", "count": 1, "skip_png": True})
TRAIN = ("POST", "/v1/admin/train/recommender", None)


class FakeVision(RecordingServicer, vision_pb2_grpc.VisionServicer):
    def IssueCodes(self, request, context):
        def reply(r: pb.IssueCodesRequest) -> pb.IssueCodesResponse:
            issued = Timestamp()
            issued.FromJsonString("2026-11-01T08:30:00Z")
            return pb.IssueCodesResponse(product_id=r.product_id, batch=r.batch, key_id="k1", issued_at=issued,
                                         codes=[pb.AuthenticityCode(serial="S1", payload="P", signature="sig")])
        return self._handle("IssueCodes", request, context, reply)


@pytest.fixture(scope="module")
def vision():
    with serving(FakeVision(), vision_pb2_grpc.add_VisionServicer_to_server) as fake:
        yield fake


@pytest.fixture
def make_client(vision):
    """Build a gateway with these settings (dead Redis, Kafka and backends unless given; the fake vision)."""
    apps = []

    def build(**overrides):
        ports = {name: free_port() for name in SERVICE_NAMES} | {"vision": vision.port}
        values = dict(
            redis_url=f"redis://127.0.0.1:{free_port()}/0", kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
            grpc_deadline_seconds=0.5, log_json=False,
            **{name: {"grpc_port": port, "metrics_port": free_port()} for name, port in ports.items()},
        )
        values.update(overrides)
        app = create_app(Settings(**values))
        apps.append(app)
        return app.test_client()

    yield build
    for app in apps:
        close_app(app)


@pytest.fixture
def client(make_client):
    return make_client(gateway_api_keys=KEYS)


def call(client, route, key: str | None = None, header: str = "bearer", **kwargs):
    method, path, body = route
    headers = kwargs.pop("headers", {})
    if key is not None:
        headers["Authorization" if header == "bearer" else "X-API-Key"] = (
            f"Bearer {key}" if header == "bearer" else key)
    return client.open(path, method=method, json=body, headers=headers, **kwargs)


# ------------------------------------------------------------------ keys and roles


@pytest.mark.parametrize("route", [EVENTS, CODES_ROUTE, TRAIN], ids=["events", "codes", "admin"])
def test_protected_routes_without_a_key_are_401s(client, vision, route):
    reply = call(client, route)
    body = assert_problem(reply, 401)
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert "X-API-Key" in body["detail"] and "Bearer" in body["detail"]
    assert vision.reset().calls == []


@pytest.mark.parametrize("route, key, role", [
    (EVENTS, CODES, "ingest"), (CODES_ROUTE, INGEST, "codes"), (TRAIN, BOTH, "admin"),
    (("GET", "/v1/admin/jobs/recommender-1", None), INGEST, "admin"),
], ids=["events", "codes", "train", "jobs"])
def test_a_key_without_the_role_is_a_403_naming_the_role(client, route, key, role):
    body = assert_problem(call(client, route, key), 403)
    assert f"'{role}' role" in body["detail"]


def test_the_right_role_passes_with_either_header(client, vision):
    vision.reset()
    for header in ("bearer", "x-api-key"):
        body = assert_problem(call(client, EVENTS, INGEST, header), 400)  # the events are checked: auth passed
        assert body["errors"][0]["status"] == "rejected"
        assert call(client, CODES_ROUTE, CODES, header).status_code == 201
    assert vision.methods() == ["IssueCodes", "IssueCodes"]
    assert_problem(call(client, ("POST", "/v1/admin/train/nothing", None), ADMIN), 404)  # past the check


def test_admin_and_combined_keys_hold_every_role_they_name(client):
    assert_problem(call(client, EVENTS, ADMIN), 400)
    assert call(client, CODES_ROUTE, ADMIN).status_code == 201
    assert_problem(call(client, EVENTS, BOTH), 400)
    assert call(client, CODES_ROUTE, BOTH).status_code == 201


@pytest.mark.parametrize("headers", [
    {"X-API-Key": "not-a-key-0123456789"},
    {"Authorization": "Bearer not-a-key-0123456789"},
    {"Authorization": "Bearer "},
    {"X-API-Key": INGEST, "Authorization": f"Bearer {CODES}"},
], ids=["unknown", "unknown-bearer", "empty-bearer", "two-keys"])
def test_unusable_credentials_are_401s_on_every_route(client, headers):
    for route in (EVENTS, ("GET", "/v1/recommendations?k=0", None)):
        reply = call(client, route, headers=dict(headers))
        assert_problem(reply, 401)
        assert 'error="invalid_token"' in reply.headers["WWW-Authenticate"]


@pytest.mark.parametrize("route", [
    ("GET", "/v1/recommendations?k=0", None),  # bad query: a 400 without calling the backend
    ("GET", "/v1/products/p1/similar?k=0", None),
    ("POST", "/v1/chat", {"message": ""}),
    ("POST", "/v1/vision/identify", {"k": 1}),
    ("POST", "/v1/vision/verify", {}),
])
def test_public_routes_need_no_key(client, route):
    assert_problem(call(client, route), 400)


def test_public_routes_accept_a_valid_key_of_any_role(client):
    assert_problem(call(client, ("GET", "/v1/recommendations?k=0", None), CODES), 400)
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("env", ["dev", "prod", "compose"])
def test_without_keys_protected_routes_are_closed_in_every_env(make_client, env):
    client = make_client(env=env)
    for route in (EVENTS, CODES_ROUTE, TRAIN, ("GET", "/v1/pricing/p1?objective=profit", None)):
        body = assert_problem(call(client, route), 401)
        assert "no API keys are configured" in body["detail"]
    body = assert_problem(call(client, ("GET", "/v1/users/u1/profile", None)), 401)  # a shopper's data
    assert "shopper token" in body["detail"]
    # a key sent anyway is refused: there is nothing to check it against
    assert_problem(call(client, EVENTS, "whatever-key-0123456789"), 401)
    assert_problem(call(client, ("GET", "/v1/recommendations?k=0", None)), 400)  # public stays public


def test_keys_come_from_a_file_too(make_client, tmp_path):
    path = tmp_path / "keys"
    path.write_text(f"# the shop backend\n{INGEST}:ingest\n\n# ops\n{ADMIN}:admin\n")
    client = make_client(gateway_api_keys_file=path, env="prod")
    assert_problem(call(client, EVENTS, INGEST), 400)
    assert_problem(call(client, CODES_ROUTE, INGEST), 403)
    assert call(client, CODES_ROUTE, ADMIN).status_code == 201


def test_keys_are_kept_as_digests_only():
    ring = KeyRing.parse(KEYS)
    assert len(ring) == 4
    assert all(len(key.digest) == 32 and key.key_id.startswith("key-") for key in ring.keys)
    assert INGEST not in repr(ring.keys)
    assert ring.find(INGEST).roles == {"ingest"} and ring.find(BOTH).roles == {"ingest", "codes"}
    assert ring.find(INGEST + "x") is None


@pytest.mark.parametrize("text, message", [
    ("just-a-key-0123456789", "not key:role"),
    (f"{INGEST}:", "not key:role"),
    (f"{INGEST}:ingest+root", r"unknown role\(s\) root"),
    ("short:ingest", "at least 16 characters"),
    (f"{INGEST}:ingest,{INGEST}:codes", "repeats a key"),
])
def test_bad_key_entries_fail_at_start_without_echoing_the_key(make_client, text, message):
    with pytest.raises(ValueError, match=message) as error:
        make_client(gateway_api_keys=text)
    assert text.split(":")[0] not in str(error.value)


def test_the_policy_protects_writes_business_data_and_shoppers_data():
    assert need_for("POST", "/v1/events").roles == ("ingest",)
    assert need_for("POST", "/v1/vision/codes").roles == ("codes",)
    assert need_for("GET", "/v1/admin/jobs/<job_id>").roles == need_for("POST", "/v1/admin/train/<service>").roles
    for route in ("/v1/forecasts/<product_id>", "/v1/inventory/<product_id>/plan", "/v1/pricing/<product_id>",
                  "/v1/analytics/segments", "/v1/analytics/funnel"):
        assert need_for("GET", route).roles == ("analyst",), route
    for route in ("/v1/users/<user_id>/profile", "/v1/users/{user_id}/recommendations", "/v1/analytics/users/<user_id>"):
        assert need_for("GET", route).kind == "shopper", route
    assert need_for("DELETE", "/v1/users/<user_id>").roles == ("privacy",)
    for method, path in [("OPTIONS", "/v1/events"), ("OPTIONS", "/v1/admin/jobs/<job_id>"), ("POST", "/v1/chat"),
                         ("POST", "/v1/vision/verify"), ("GET", "/v1/products/<product_id>/similar"),
                         ("GET", "/v1/recommendations"), ("GET", "/healthz"), ("GET", None)]:
        assert need_for(method, path).kind == "public", (method, path)
    # a /v1 route nobody put in the table is closed to all but admin, never public
    assert need_for("GET", "/v1/something/new").roles == ("admin",)
    assert {role for entry in POLICY for role in entry.need.roles} == {
        "ingest", "codes", "admin", "analyst", "support", "privacy", "sessions"}


# ------------------------------------------------------------------ rate limits (the real Redis)


@pytest.fixture
def limited(make_client, redis_url):
    """A factory of gateways counting in the suite's Redis under a prefix of this test's own."""
    prefix = f"test-access-{uuid.uuid4().hex}"
    yield lambda **overrides: make_client(redis_url=redis_url, gateway_rate_limit_prefix=prefix, **overrides)
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.mark.integration
def test_a_client_over_its_limit_gets_a_429_with_retry_after(limited):
    client = limited(gateway_rate_limit_per_minute=2)
    route = ("GET", "/v1/recommendations?k=0", None)
    first = call(client, route)
    assert first.status_code == 400
    assert first.headers["RateLimit-Limit"] == first.headers["X-RateLimit-Limit"] == "2"
    assert first.headers["RateLimit-Remaining"] == "1" and first.headers["RateLimit-Policy"] == "2;w=60"
    assert call(client, route).status_code == 400
    reply = call(client, route)
    body = assert_problem(reply, 429)
    assert body["type"].endswith("/rate-limited") and "2 requests a minute" in body["detail"]
    assert 1 <= int(reply.headers["Retry-After"]) <= 60
    assert reply.headers["RateLimit-Remaining"] == "0" and 1 <= int(reply.headers["RateLimit-Reset"]) <= 60
    assert int(reply.headers["X-RateLimit-Reset"]) > 1_700_000_000  # epoch seconds
    # another address has its own budget; probes and metrics are never limited
    assert call(client, route, environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code == 400
    for path in ("/healthz", "/metrics", "/healthz"):
        assert client.get(path).status_code == 200


@pytest.mark.integration
def test_keyed_clients_are_counted_by_key_with_their_own_limit(limited):
    client = limited(gateway_api_keys=KEYS, gateway_rate_limit_per_minute=1, gateway_key_rate_limit_per_minute=3)
    route = ("GET", "/v1/recommendations?k=0", None)
    assert call(client, route).status_code == 400
    assert_problem(call(client, route), 429)  # the address is spent...
    for _ in range(3):  # ...the key, from the same address, is not
        reply = call(client, route, INGEST)
        assert reply.status_code == 400 and reply.headers["RateLimit-Limit"] == "3"
    body = assert_problem(call(client, route, INGEST), 429)
    assert "API key" in body["detail"]
    assert call(client, route, CODES).status_code == 400  # a different key


@pytest.mark.integration
def test_unknown_keys_are_counted_against_the_address(limited):
    client = limited(gateway_api_keys=KEYS, gateway_rate_limit_per_minute=2)
    for n in range(2):
        assert_problem(call(client, EVENTS, f"guess-{n}-0123456789abcdef"), 401)
    assert_problem(call(client, EVENTS, "guess-2-0123456789abcdef"), 429)


@pytest.mark.integration
def test_x_forwarded_for_counts_only_behind_a_trusted_proxy(limited):
    route = ("GET", "/v1/recommendations?k=0", None)
    direct = limited(gateway_rate_limit_per_minute=1)
    assert call(direct, route, headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 400
    assert_problem(call(direct, route, headers={"X-Forwarded-For": "198.51.100.2"}), 429)

    proxied = limited(gateway_rate_limit_per_minute=1, gateway_trust_proxy=True)
    for n in range(3):  # the last hop is the one the proxy saw; the first ones are the client's word
        assert call(proxied, route, headers={"X-Forwarded-For": f"6.6.6.6, 203.0.113.{n}"}).status_code == 400
    assert_problem(call(proxied, route, headers={"X-Forwarded-For": "7.7.7.7, 203.0.113.0"}), 429)


@pytest.mark.integration
def test_zero_means_no_limit(limited):
    client = limited(gateway_rate_limit_per_minute=0)
    route = ("GET", "/v1/recommendations?k=0", None)
    for _ in range(5):
        reply = call(client, route)
        assert reply.status_code == 400 and "RateLimit-Limit" not in reply.headers


def test_an_unreachable_redis_turns_the_limits_off_not_the_gateway(make_client):
    client = make_client(redis_url=f"redis://127.0.0.1:{free_port()}/0", gateway_rate_limit_per_minute=1,
                         gateway_api_keys=KEYS)
    for _ in range(4):
        reply = call(client, ("GET", "/v1/recommendations?k=0", None))
        assert reply.status_code == 400 and "RateLimit-Limit" not in reply.headers
        assert_problem(call(client, EVENTS), 401)
        assert_problem(call(client, EVENTS, INGEST), 400)


# ------------------------------------------------------------------ CORS


def preflight(client, path: str, origin: str, method: str = "POST", headers: str = "X-API-Key, Content-Type"):
    return client.options(path, headers={"Origin": origin, "Access-Control-Request-Method": method,
                                         "Access-Control-Request-Headers": headers})


def test_cors_preflight_and_headers_for_the_shop(make_client):
    client = make_client(gateway_api_keys=KEYS, gateway_cors_origins=f"{SHOP}, https://admin.example.com")
    reply = preflight(client, "/v1/events", SHOP, headers="Authorization, X-API-Key, Content-Type")
    assert reply.status_code == 200, "a preflight needs no key"
    assert reply.headers["Access-Control-Allow-Origin"] == SHOP
    assert {"authorization", "x-api-key", "content-type"} <= {
        h.strip().lower() for h in reply.headers["Access-Control-Allow-Headers"].split(",")}
    assert "POST" in reply.headers["Access-Control-Allow-Methods"]
    assert "Origin" in reply.headers["Vary"]

    answer = call(client, EVENTS, INGEST, headers={"Origin": SHOP})
    assert answer.status_code == 400 and answer.headers["Access-Control-Allow-Origin"] == SHOP
    exposed = {h.strip() for h in answer.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Retry-After", "RateLimit-Remaining", "X-RateLimit-Remaining"} <= exposed
    # every X-ShopAI-* header the gateway sets on an answer is readable by the shop's page
    set_here = {name for path in Path(gateway.__file__).parent.rglob("*.py")
                for name in re.findall(r'"(X-ShopAI-[A-Za-z-]+)"', path.read_text())}
    assert {"X-ShopAI-Degraded", "X-ShopAI-Stale", "X-ShopAI-Computed-At"} <= set_here <= exposed
    assert "Age" in exposed
    refused = call(client, EVENTS, headers={"Origin": SHOP})  # a 401 is readable by the shop's page too
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == SHOP


def test_no_cors_headers_for_other_origins_or_without_configuration(make_client):
    client = make_client(gateway_cors_origins=SHOP)
    for reply in (preflight(client, "/v1/events", "https://evil.example"),
                  client.get("/healthz", headers={"Origin": "https://evil.example"}),
                  client.get("/healthz")):
        assert "Access-Control-Allow-Origin" not in reply.headers
    bare = make_client()
    reply = preflight(bare, "/v1/chat", SHOP)
    assert "Access-Control-Allow-Origin" not in reply.headers and "Vary" not in reply.headers


def test_a_wildcard_opens_only_the_public_get_routes(make_client):
    client = make_client(gateway_api_keys=KEYS, gateway_cors_origins=f"*,{SHOP}")
    anyone = "https://blog.example.org"
    reply = client.get("/v1/recommendations?k=0", headers={"Origin": anyone})
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert preflight(client, "/v1/products/p1/similar", anyone, "GET").headers["Access-Control-Allow-Origin"] == "*"
    for path, method in [("/v1/events", "POST"), ("/v1/chat", "POST"), ("/v1/admin/jobs/x", "GET")]:
        assert "Access-Control-Allow-Origin" not in preflight(client, path, anyone, method).headers, path
    assert preflight(client, "/v1/chat", SHOP).headers["Access-Control-Allow-Origin"] == SHOP


# ------------------------------------------------------------------ the spec


def test_the_spec_shows_the_security_schemes_and_answers(client):
    spec = client.get("/openapi.json").json
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerKey"]["scheme"] == "bearer" and schemes["apiKeyHeader"]["name"] == "X-API-Key"
    for path, method, role in [("/v1/events", "post", "ingest"), ("/v1/vision/codes", "post", "codes"),
                               ("/v1/admin/train/{service}", "post", "admin"), ("/v1/admin/jobs/{job_id}", "get", "admin")]:
        operation = spec["paths"][path][method]
        assert operation["security"] == [{"bearerKey": [role]}, {"apiKeyHeader": [role]}]
        assert {"401", "403", "429"} <= set(operation["responses"]) and f"`{role}`" in operation["description"]
    public = spec["paths"]["/v1/recommendations"]["get"]
    assert public["security"] == [] and "Retry-After" in public["responses"]["429"]["headers"]
    own = spec["paths"]["/v1/users/{user_id}/recommendations"]["get"]
    assert own["security"][0] == {"shopperToken": []} and own["x-shopai-access"]["shopper"] == "user_id"
    assert {"401", "403", "404"} <= set(own["responses"])
    assert "429" not in spec["paths"]["/healthz"]["get"]["responses"]
    referenced = {name for item in spec["paths"].values() for op in item.values()
                  for requirement in op.get("security", []) for name in requirement}
    assert referenced <= set(schemes)


def test_patching_a_spec_twice_changes_nothing_more():
    spec = {"paths": {"/v1/events": {"post": {"responses": {}}}}, "components": {"schemas": {"Problem": {}}}}
    once = json.loads(json.dumps(patch_spec(spec)))
    assert once["paths"]["/v1/events"]["post"]["responses"]["401"]["content"]
    assert patch_spec(json.loads(json.dumps(once))) == once


# ------------------------------------------------------------------ personal data in logs


def test_the_processor_masks_personal_fields_and_free_text():
    event = mask_personal_data(None, "info", {
        "event": "chat_turn", "user_id": "u42", "message": "我的手机是13812345678，邮件 bob@example.com",
        "headers": {"Authorization": "Bearer abc", "X-API-Key": INGEST, "Accept": "*/*"},
        "phone": "+86 138 1234 5678", "email": "alice@example.com", "name": "张三", "address": "1 Main St",
        "client_ip": "203.0.113.9", "key_id": "key-1a2b3c4d", "path": "/v1/users/u42/profile", "count": 3,
        "token": "t0k3n", "timestamp": "2026-11-28T10:00:00Z",
    })
    text = json.dumps(event, ensure_ascii=False)
    for secret in ("u42", "13812345678", "bob@", "alice@", "abc", INGEST, "张三", "Main", "203.0.113.9", "t0k3n"):
        assert secret not in text, secret
    assert event["user_id"].startswith("h:") and event["user_id"] == mask_personal_data(None, "info", {
        "user_id": "u42"})["user_id"], "the same id gives the same hash, so a user's lines can be followed"
    assert event["message"] == "我的手机是138****5678，邮件 b***@example.com"
    assert event["email"] == "a***@example.com" and event["phone"].endswith("5678")
    assert event["headers"]["Accept"] == "*/*" and event["key_id"] == "key-1a2b3c4d" and event["count"] == 3
    assert event["path"].startswith("/v1/users/h:")


@pytest.mark.parametrize("text", [
    "order A1234 shipped 2026-11-28T10:00:00+08:00", "event 7d0c2a4e-5b1f-4a7e-9a53-0f5c2f7b9e12",
    "offset 113812345678", "p00001 costs 199.0 CNY", "http://127.0.0.1:8080/readyz",
])
def test_free_text_without_personal_data_is_unchanged(text):
    assert mask_text(text) == text


@pytest.fixture
def log_buffer():
    """The project's logging configuration (JSON), writing to a buffer; restored afterwards."""
    buffer = io.StringIO()
    configure_logging("INFO", json=True)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(buffer))
    logging.getLogger().handlers[0].setStream(buffer)
    yield buffer
    configure_logging("INFO", json=False)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))


def test_structlog_and_stdlib_lines_are_masked_when_written(log_buffer):
    get_logger("test").info("chat_message", user_id="u-secret-42", message="call me on 13912345678 tonight")
    logging.getLogger("werkzeug").warning("mail from carol@example.com about /v1/users/u-secret-42/profile")
    try:
        raise RuntimeError("no order for 13912345678")
    except RuntimeError:
        get_logger("test").exception("unhandled_error", path="/v1/users/u-secret-42/recommendations")
    lines = [json.loads(line) for line in log_buffer.getvalue().splitlines()]
    assert len(lines) == 3
    written = log_buffer.getvalue()
    for secret in ("u-secret-42", "13912345678", "carol@"):
        assert secret not in written, secret
    assert lines[0]["message"] == "call me on 139****5678 tonight" and lines[0]["user_id"].startswith("h:")
    assert "c***@example.com" in lines[1]["event"] and "RuntimeError" in lines[2]["exception"]
