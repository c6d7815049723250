"""Shopper tokens (gateway/identity.py) and the route policy's answers to each kind of caller (gateway/policy.py).

The backends are dead ports here: a request that passes the policy reaches the backend and is a 503, so the
status tells "refused by the policy" (401/403/404) from "let through" (503)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.app import close_app, create_app
from gateway.identity import ShopperTokens, TokenRefused
from gateway.policy import NOT_FOUND_DETAIL, Caller, decide, shopper
from services.common.settings import SERVICE_NAMES, Settings
from tests.support import MemoryAudit, assert_problem, free_port

SECRET = "first-shopper-token-secret-0123456789abcdef"
OLD_SECRET = "older-shopper-token-secret-0123456789abcdef"
SUPPORT = "support-key-0123456789abcdef"
ANALYST = "analyst-key-0123456789abcdef"
SESSIONS = "sessions-key-0123456789abcdef"
PRIVACY = "privacy-key-0123456789abcdef"
KEYS = f"{SUPPORT}:support,{ANALYST}:analyst,{SESSIONS}:sessions,{PRIVACY}:privacy"


def _segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_by_hand(payload: dict, secret: bytes) -> str:
    """An HS256 token signed with any bytes (PyJWT itself refuses to use a public key as an HMAC secret)."""
    signing_input = f"{_segment(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{_segment(json.dumps(payload).encode())}"
    return f"{signing_input}.{_segment(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


def tokens(**values) -> ShopperTokens:
    return ShopperTokens(Settings(**({"gateway_shopper_token_secrets": SECRET} | values)))


def claims(subject: str = "u1", lifetime: int = 600, **extra) -> dict:
    now = int(time.time())
    return {"sub": subject, "iat": now, "exp": now + lifetime, "aud": "shopai", "iss": "shopai"} | extra


# ------------------------------------------------------------------ tokens


def test_a_minted_token_proves_its_subject_and_names_its_key():
    minted = tokens().mint("u42")
    assert tokens().verify(minted.token) == "u42"
    assert jwt.get_unverified_header(minted.token)["kid"].startswith("k-")
    assert minted.expires_at - time.time() == pytest.approx(900, abs=5)


def _hs256(**changes) -> str:
    payload = claims(**{k: v for k, v in changes.items() if k in ("subject", "lifetime")})
    payload |= {k: v for k, v in changes.items() if k not in ("subject", "lifetime", "secret", "algorithm")}
    return jwt.encode(payload, changes.get("secret", SECRET), algorithm=changes.get("algorithm", "HS256"))


# Made when the test runs (not at collection, which may be long before): factories, not tokens.
BAD_TOKENS = {
    "expired": (lambda: _hs256(lifetime=-100), "expired"),
    "future": (lambda: _hs256(iat=int(time.time()) + 600, nbf=int(time.time()) + 600), "not valid yet"),
    "foreign-secret": (lambda: _hs256(secret="another-secret-nobody-configured-0123456789"), "signature"),
    "audience": (lambda: _hs256(aud="another-app"), "audience"),
    "issuer": (lambda: _hs256(iss="someone-else"), "issuer"),
    "long-lived": (lambda: _hs256(lifetime=30 * 86400), "short-lived"),
    "no-subject": (lambda: jwt.encode({k: v for k, v in claims().items() if k != "sub"}, SECRET, algorithm="HS256"),
                   "'sub'"),
    "bad-subject": (lambda: _hs256(subject="has a space"), "subject"),
    "other-alg": (lambda: _hs256(algorithm="HS512"), "HS512"),
    "garbage": (lambda: "not.a.token", "malformed"),
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_bad_tokens_are_refused_with_the_reason(case):
    make, reason = BAD_TOKENS[case]
    with pytest.raises(TokenRefused, match=reason):
        tokens().verify(make())


def test_unsigned_tokens_are_refused():
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenRefused, match="alg: none"):
        tokens().verify(f"{header}.{body}.")


def test_clocks_may_disagree_by_the_leeway_only():
    late = jwt.encode(claims(lifetime=-10), SECRET, algorithm="HS256")  # expired 10 s ago
    assert tokens().verify(late) == "u1"  # leeway 30 s
    with pytest.raises(TokenRefused, match="expired"):
        tokens(gateway_shopper_token_leeway_seconds=0).verify(late)


def test_rotation_keeps_two_secrets_valid_and_signs_with_the_first():
    old_token = ShopperTokens(Settings(gateway_shopper_token_secrets=OLD_SECRET)).mint("u1").token
    rotating = tokens(gateway_shopper_token_secrets=f"{SECRET},{OLD_SECRET}")
    assert rotating.verify(old_token) == "u1"
    assert tokens().verify(rotating.mint("u2").token) == "u2"  # signed with the first secret
    with pytest.raises(TokenRefused):
        tokens().verify(old_token)  # once the old secret is gone


def test_a_remembered_token_still_expires_and_a_changed_one_is_checked_again():
    verifier = tokens()
    minted = verifier.mint("u1", ttl_seconds=60)
    assert verifier.verify(minted.token) == "u1"
    assert verifier.verify(minted.token, now=minted.expires_at + 29) == "u1"  # within the leeway
    with pytest.raises(TokenRefused, match="expired"):
        verifier.verify(minted.token, now=minted.expires_at + 31)
    with pytest.raises(TokenRefused, match="not valid yet"):
        verifier.verify(minted.token, now=minted.expires_at - 60 - 31)
    head, _, signature = minted.token.split(".")
    forged_body = _segment(json.dumps(claims("u2")).encode())
    with pytest.raises(TokenRefused, match="signature"):
        verifier.verify(f"{head}.{forged_body}.{signature}")


def test_short_secrets_are_refused_at_start():
    with pytest.raises(ValueError, match="shorter than 32"):
        tokens(gateway_shopper_token_secrets="short")


@pytest.mark.parametrize("algorithm, private", [
    ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    ("ES256", ec.generate_private_key(ec.SECP256R1())),
    ("EdDSA", ed25519.Ed25519PrivateKey.generate()),
], ids=["rsa", "ec", "ed25519"])
def test_a_shop_backend_signs_with_its_own_key(tmp_path, algorithm, private):
    pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    other = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    path = tmp_path / "shop-backend.pem"
    path.write_bytes(other + pem)  # two keys: a rotation
    verifier = ShopperTokens(Settings(gateway_shopper_token_public_keys_file=path))
    assert verifier.verify(jwt.encode(claims("u7"), private, algorithm=algorithm)) == "u7"
    assert not verifier.can_mint
    # The public key used as an HMAC secret (the classic algorithm confusion) is refused.
    with pytest.raises(TokenRefused, match="HS256"):
        verifier.verify(hs256_by_hand(claims(), pem))


# ------------------------------------------------------------------ the policy, pure


def test_a_shoppers_route_answers_other_shoppers_as_if_nobody_were_there():
    need = shopper("user_id", "support")
    assert decide(need, Caller(shopper="u1"), {"user_id": "u1"}).allowed
    assert decide(need, Caller(shopper="u2"), {"user_id": "u1"}).detail == NOT_FOUND_DETAIL
    staff = decide(need, Caller(roles=frozenset({"support"})), {"user_id": "u1"})
    assert staff.allowed and staff.staff_read_of == "u1"
    assert decide(need, Caller(roles=frozenset({"analyst"})), {"user_id": "u1"}).status == 403
    assert decide(need, Caller(), {"user_id": "u1"}).status == 401


# ------------------------------------------------------------------ the gateway


@pytest.fixture
def make_client():
    apps = []

    def build(**overrides):
        values = dict(
            redis_url=f"redis://127.0.0.1:{free_port()}/0", kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
            grpc_deadline_seconds=0.3, log_json=False, gateway_api_keys=KEYS, gateway_shopper_token_secrets=SECRET,
            **{name: {"grpc_port": free_port(), "metrics_port": free_port()} for name in SERVICE_NAMES},
        ) | overrides
        app = create_app(Settings(**values))
        app.extensions["shopai.access"].audit = MemoryAudit()
        apps.append(app)
        return app.test_client()

    yield build
    for app in apps:
        close_app(app)


def bearer(subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens().mint(subject).token}"}


@pytest.mark.parametrize("path", ["/v1/users/u1/profile", "/v1/users/u1/recommendations",
                                  "/v1/analytics/users/u1"])
def test_a_shopper_sees_their_own_data_only(make_client, path):
    client = make_client()
    assert client.get(path, headers=bearer("u1")).status_code == 503  # let through to the (dead) backend
    body = assert_problem(client.get(path, headers=bearer("u2")), 404)
    assert body["detail"] == NOT_FOUND_DETAIL and "u1" not in json.dumps(body)
    assert_problem(client.get(path), 401)


def test_staff_reads_need_the_role_and_are_audited(make_client):
    client = make_client()
    audit = client.application.extensions["shopai.access"].audit
    assert client.get("/v1/users/u1/profile", headers={"X-API-Key": SUPPORT}).status_code == 503
    assert audit.records == [("key-" + hashlib.sha256(SUPPORT.encode()).hexdigest()[:8], "GET",
                              "/v1/users/<user_id>/profile", "u1")]
    assert_problem(client.get("/v1/users/u1/profile", headers={"X-API-Key": ANALYST}), 403)
    assert client.get("/v1/analytics/users/u1", headers={"X-API-Key": ANALYST}).status_code == 503
    assert len(audit.records) == 2
    client.get("/v1/users/u1/profile", headers=bearer("u1"))  # a shopper's own read is not a staff read
    assert len(audit.records) == 2


def test_business_data_needs_the_analyst_role(make_client):
    client = make_client()
    for path in ("/v1/pricing/p1?objective=profit", "/v1/forecasts/p1", "/v1/inventory/p1/plan",
                 "/v1/analytics/segments"):
        assert_problem(client.get(path), 401)
        assert_problem(client.get(path, headers=bearer("u1")), 403)
        assert_problem(client.get(path, headers={"X-API-Key": SUPPORT}), 403)
        assert client.get(path, headers={"X-API-Key": ANALYST}).status_code == 503, path


@pytest.mark.parametrize("headers, reason", [
    (lambda: {"Authorization": "Bearer " + _hs256(lifetime=-100)}, "expired"),
    (lambda: {"Authorization": "Bearer " + _hs256(secret="a-foreign-secret-0123456789abcdefgh")}, "signature"),
    (lambda: {"Authorization": "Basic dTE6cGFzcw=="}, "Bearer"),
], ids=["expired", "foreign", "basic"])
def test_a_bad_token_is_a_401_with_the_reason_on_every_route(make_client, headers, reason):
    client = make_client()
    for path in ("/v1/users/u1/profile", "/v1/recommendations"):
        reply = client.get(path, headers=headers())
        assert reason in assert_problem(reply, 401)["detail"]
        assert 'error="invalid_token"' in reply.headers["WWW-Authenticate"]


def test_the_shop_backend_mints_tokens_with_a_sessions_key(make_client):
    client = make_client()
    reply = client.post("/v1/auth/shopper-tokens", json={"user_id": "u9", "ttl_seconds": 120},
                        headers={"X-API-Key": SESSIONS})
    assert reply.status_code == 201, reply.json
    assert tokens().verify(reply.json["token"]) == "u9" and 100 <= reply.json["expires_in"] <= 120
    assert_problem(client.post("/v1/auth/shopper-tokens", json={"user_id": "u9"}), 401)
    assert_problem(client.post("/v1/auth/shopper-tokens", json={"user_id": "u9"}, headers=bearer("u9")), 403)
    assert_problem(client.post("/v1/auth/shopper-tokens", json={"user_id": "u9"},
                               headers={"X-API-Key": SUPPORT}), 403)
    assert_problem(client.post("/v1/auth/shopper-tokens", json={"user_id": "a b"},
                               headers={"X-API-Key": SESSIONS}), 400)


def test_the_dev_sign_in_exists_in_dev_only(make_client):
    dev = make_client(env="dev").post("/v1/auth/dev-session", json={})
    assert dev.status_code == 201 and tokens().verify(dev.json["token"]) == "u1"
    assert_problem(make_client(env="prod").post("/v1/auth/dev-session", json={}), 404)
    prod_spec = make_client(env="prod").get("/openapi.json").json
    assert "/v1/auth/dev-session" not in prod_spec["paths"]
