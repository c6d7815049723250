"""Shopper tokens: who a signed-in shopper is (issue #17).

A shopper token is a JWT (PyJWT) whose subject (``sub``) is the shopper's user id. The shop's backend mints
it when a shopper signs in — with a shared HS256 secret or with its own private key (RS256, ES256, EdDSA),
whose public key the gateway is given — or asks the gateway to mint one at ``POST /v1/auth/shopper-tokens``
with a key that has the ``sessions`` role.

Checked on every request that carries one: the signature (with the key named by ``kid``, or each configured
key of the token's family), the algorithm (only those configured; ``alg: none`` never), ``exp``, ``iat``,
``sub``, ``aud`` and ``iss`` required and matching, a lifetime no longer than the configured maximum, and a
small leeway for clocks that disagree. Every failure is a :class:`TokenRefused` whose message says why,
which the gateway answers with a 401.

Rotation: several secrets and public keys are valid at once. The first secret signs what the gateway mints;
a token names its key in the ``kid`` header (the key's fingerprint, or whatever the shop's backend chose
for its public keys), so verification tries one key, not all.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from services.common.settings import Settings

HMAC_ALGORITHMS = ("HS256",)
MIN_SECRET_LENGTH = 32
MAX_TOKEN_LENGTH = 4096
VERIFIED_CACHE_SIZE = 50_000  # tokens remembered as verified (~300 bytes each)
# A user id as the REST routes accept it (gateway/routes: 1..64 characters of this alphabet).
SUBJECT = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")
# Three base64url segments: what tells a token from an API key in `Authorization: Bearer`.
JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
PEM_BLOCK = re.compile(r"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)


class TokenRefused(Exception):
    """A token that is malformed, badly signed, expired, not yet valid, too long-lived or not ours."""


def looks_like_token(value: str) -> bool:
    return len(value) <= MAX_TOKEN_LENGTH and JWT_SHAPE.match(value) is not None


@dataclass(frozen=True)
class VerifyingKey:
    kid: str
    key: Any  # a secret (bytes) or a public key object
    algorithms: tuple[str, ...]


@dataclass(frozen=True)
class ShopperToken:
    token: str
    subject: str
    expires_at: int


def _fingerprint(material: bytes) -> str:
    return "k-" + hashlib.sha256(material).hexdigest()[:12]


def _secrets(settings: Settings) -> list[bytes]:
    text = ""
    if settings.gateway_shopper_token_secrets is not None:
        text += settings.gateway_shopper_token_secrets.get_secret_value()
    if settings.gateway_shopper_token_secrets_file is not None:
        path = Path(settings.gateway_shopper_token_secrets_file)
        try:
            text += "," + path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"SHOPAI_GATEWAY_SHOPPER_TOKEN_SECRETS_FILE: cannot read {path}: {exc.strerror}") from exc
    secrets = [s.strip() for line in text.splitlines() for s in line.split(",") if s.strip()]
    for number, secret in enumerate(secrets, start=1):
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"SHOPAI_GATEWAY_SHOPPER_TOKEN_SECRETS: secret {number} is shorter than "
                             f"{MIN_SECRET_LENGTH} characters (python -c 'import secrets; print(secrets.token_urlsafe(48))')")
    return [s.encode() for s in secrets]


def _algorithm_of(public: Any) -> str | None:
    """The one algorithm a public key verifies: a key is never tried with another family's algorithm."""
    if isinstance(public, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1":
        return "ES256"
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "EdDSA"
    return None


def _public_keys(path: Path | None) -> list[VerifyingKey]:
    if path is None:
        return []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"SHOPAI_GATEWAY_SHOPPER_TOKEN_PUBLIC_KEYS_FILE: cannot read {path}: {exc.strerror}") from exc
    keys = []
    for number, block in enumerate(PEM_BLOCK.findall(text), start=1):
        try:
            public = serialization.load_pem_public_key(block.encode())
        except ValueError as exc:
            raise ValueError(f"SHOPAI_GATEWAY_SHOPPER_TOKEN_PUBLIC_KEYS_FILE: key {number} is not a PEM public key") from exc
        algorithm = _algorithm_of(public)
        if algorithm is None:
            raise ValueError(f"SHOPAI_GATEWAY_SHOPPER_TOKEN_PUBLIC_KEYS_FILE: key {number} is not an RSA, P-256 or "
                             "Ed25519 key")
        der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        keys.append(VerifyingKey(_fingerprint(der), public, (algorithm,)))
    if not keys:
        raise ValueError(f"SHOPAI_GATEWAY_SHOPPER_TOKEN_PUBLIC_KEYS_FILE: {path} holds no PEM public key")
    return keys


class ShopperTokens:
    """Verifies shopper tokens, and mints them when a secret is configured."""

    def __init__(self, settings: Settings) -> None:
        secrets = _secrets(settings)
        self.keys: tuple[VerifyingKey, ...] = (
            *(VerifyingKey(_fingerprint(s), s, HMAC_ALGORITHMS) for s in secrets),
            *_public_keys(settings.gateway_shopper_token_public_keys_file),
        )
        self._by_kid = {key.kid: key for key in self.keys}
        self._signing = self.keys[0] if secrets else None
        self.issuer = settings.gateway_shopper_token_issuer
        self.audience = settings.gateway_shopper_token_audience
        self.ttl = settings.gateway_shopper_token_ttl_seconds
        self.max_ttl = settings.gateway_shopper_token_max_ttl_seconds
        self.leeway = settings.gateway_shopper_token_leeway_seconds
        self._verified: dict[str, tuple[str, float, float]] = {}  # token -> (subject, not before, expires)

    def __bool__(self) -> bool:
        return bool(self.keys)

    @property
    def can_mint(self) -> bool:
        return self._signing is not None

    def mint(self, subject: str, ttl_seconds: int | None = None, now: float | None = None) -> ShopperToken:
        if self._signing is None:
            raise TokenRefused("no shopper-token secret is configured (SHOPAI_GATEWAY_SHOPPER_TOKEN_SECRETS)")
        if not SUBJECT.match(subject):
            raise TokenRefused("the subject is not a user id (1-64 of A-Z a-z 0-9 _ . : @ -)")
        issued = int(now if now is not None else time.time())
        expires = issued + min(ttl_seconds or self.ttl, self.max_ttl)
        claims = {"sub": subject, "iat": issued, "nbf": issued, "exp": expires, "iss": self.issuer,
                  "aud": self.audience}
        token = jwt.encode(claims, self._signing.key, algorithm="HS256", headers={"kid": self._signing.kid})
        return ShopperToken(token, subject, expires)

    def verify(self, token: str, now: float | None = None) -> str:
        """The shopper id the token proves, or :class:`TokenRefused` with the reason.

        A token verified once is remembered (its exact text, at most ``VERIFIED_CACHE_SIZE`` of them) with its
        subject and validity, so a shopper's next requests cost a dictionary lookup instead of an HMAC or a
        signature check and the claims' validation; the times are checked again on every use."""
        remembered = self._verified.get(token)
        if remembered is not None:
            subject, not_before, expires = remembered
            moment = time.time() if now is None else now
            if moment + self.leeway < not_before:
                raise TokenRefused("the token is not valid yet (iat or nbf lies in the future)")
            if moment - self.leeway >= expires:
                raise TokenRefused("the token has expired")
            return subject
        subject, not_before, expires = self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()  # a burst of new shoppers: start over rather than track ages
        self._verified[token] = (subject, not_before, expires)
        return subject

    def _verify(self, token: str) -> tuple[str, float, float]:
        if not self.keys:
            raise TokenRefused("this gateway accepts no shopper tokens (none of SHOPAI_GATEWAY_SHOPPER_TOKEN_* is set)")
        if not looks_like_token(token):
            raise TokenRefused("the bearer credential is neither a valid API key nor a well-formed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRefused(f"the token is malformed: {exc}") from exc
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm.lower() == "none":
            raise TokenRefused("unsigned tokens (alg: none) are refused")
        candidates = self._candidates(header.get("kid"), algorithm)
        if not candidates:
            raise TokenRefused(f"no configured key verifies {algorithm} tokens"
                               + (f" with kid {header.get('kid')!r}" if header.get("kid") else ""))
        claims = None
        problem = "the token's signature does not verify"
        for key in candidates:
            try:
                claims = jwt.decode(
                    token, key.key, algorithms=[algorithm], audience=self.audience, issuer=self.issuer or None,
                    leeway=self.leeway, options={"require": ["exp", "iat", "sub", "aud"]
                                                 + (["iss"] if self.issuer else [])})
                break
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError as exc:
                raise TokenRefused("the token has expired") from exc
            except jwt.ImmatureSignatureError as exc:
                raise TokenRefused("the token is not valid yet (iat or nbf lies in the future)") from exc
            except jwt.InvalidAudienceError as exc:
                raise TokenRefused(f"the token is for another audience (expected {self.audience!r})") from exc
            except jwt.InvalidIssuerError as exc:
                raise TokenRefused(f"the token comes from another issuer (expected {self.issuer!r})") from exc
            except jwt.MissingRequiredClaimError as exc:
                raise TokenRefused(f"the token lacks the {exc.claim!r} claim") from exc
            except jwt.PyJWTError as exc:
                problem = f"the token is not valid: {exc}"
                break
        if claims is None:
            raise TokenRefused(problem)
        subject = self._subject(claims)
        return subject, float(max(claims["iat"], claims.get("nbf") or 0)), float(claims["exp"])

    def _candidates(self, kid: object, algorithm: str) -> list[VerifyingKey]:
        if isinstance(kid, str) and kid in self._by_kid:
            key = self._by_kid[kid]
            return [key] if algorithm in key.algorithms else []
        return [key for key in self.keys if algorithm in key.algorithms]

    def _subject(self, claims: dict[str, Any]) -> str:
        subject, issued, expires = claims.get("sub"), claims.get("iat"), claims.get("exp")
        if not isinstance(subject, str) or not SUBJECT.match(subject):
            raise TokenRefused("the token's subject is not a user id")
        if not isinstance(issued, int | float) or not isinstance(expires, int | float):
            raise TokenRefused("the token's iat and exp must be numbers")
        if expires - issued > self.max_ttl:
            raise TokenRefused(f"the token lives longer than {self.max_ttl} s: shopper tokens are short-lived")
        return subject
