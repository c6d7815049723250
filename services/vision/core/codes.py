"""Signed anti-counterfeit codes: issue, render as QR, find in photos, verify.

A code is the text ``SAI1.<body>.<sig>`` printed as a QR code on a product:

- ``body`` is base64url (no padding) of the canonical JSON
  ``{"b":batch,"k":key_id,"p":product_id,"s":serial,"t":issued_at}`` (sorted keys, no spaces, UTF-8);
- ``sig`` is base64url (no padding) of the Ed25519 signature over the ASCII bytes ``SAI1.<body>``, so the
  signature covers the product, batch, serial, key id and issue time, and the prefix (the format version).

Only the holder of the private key can make a code that verifies; anyone with the public key can check
one, offline. ``key_id`` (first 16 hex characters of the SHA-256 of the raw public key) names the key that
signed, so keys can be rotated: the verifier keeps a map ``key_id -> public key`` of every key it trusts.

Verification is strict on purpose: both base64url parts must be in canonical form (re-encoding the decoded
bytes gives the same text). Without that, the last character of an unpadded base64 string carries unused
bits, and changing it could leave the decoded signature unchanged, so an altered code would still verify.
The body must hold exactly the five fields with the right types. ``verify_payload`` never raises: every
problem is a ``CodeCheck`` with a user-facing reason. ``CodeCheck.claims`` is filled only for a valid code,
so no caller can act on claims that nobody vouched for.

Serials are 12 characters of Crockford base32 (60 random bits from ``secrets``): readable, no I/L/O/U.

QR codes are drawn with segno (error correction M) and read with zxing-cpp. ``find_codes`` tries a few
cheap variants of a photo in turn (as is, autocontrasted greyscale, 2x upscale of a small picture,
sharpened) and stops at the first that yields a code; zxing only reports codes whose error correction
succeeded, so a blurred code gives nothing rather than a wrong text.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import math
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import segno
import zxingcpp
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from PIL import Image, ImageFilter, ImageOps

PREFIX = "SAI1"
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
SERIAL_LENGTH = 12
MAX_ID_LENGTH = 64
MAX_ISSUE_COUNT = 100_000
# A real code is a few hundred characters; anything much longer is rejected before any decoding work.
MAX_PAYLOAD_LENGTH = 4096

_FIELDS = frozenset({"b", "k", "p", "s", "t"})
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_B64_ANY = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_UPSCALE_BELOW = 400


class SigningKeyError(ValueError):
    """A configured key that cannot be read. The message never contains the key text."""


# ----------------------------------------------------------------------------------------------------
# base64url helpers


def _b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_decode_strict(text: str) -> bytes | None:
    """Decode unpadded base64url, only in canonical form; None if it is not exactly that."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if _b64url_encode(raw) == text else None


def _decode_key_bytes(text: str) -> bytes | None:
    """32 raw bytes from 64 hex characters or base64/base64url (padded or not); None otherwise."""
    if _HEX64.fullmatch(text):
        return bytes.fromhex(text)
    if not _B64_ANY.fullmatch(text):
        return None
    body = text.rstrip("=").replace("-", "+").replace("_", "/")
    if len(body) % 4 == 1:
        return None
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


# ----------------------------------------------------------------------------------------------------
# keys


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """First 16 hex characters of the SHA-256 of the raw 32-byte public key."""
    return hashlib.sha256(_raw_public(public_key)).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key; its repr shows only the key id."""

    private: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_text(cls, text: str) -> SigningKey:
        """Read PEM PKCS#8, 64 hex characters of the seed, or base64/base64url (padded or not) of the seed."""
        if not isinstance(text, str):
            raise SigningKeyError("the signing key must be text")
        text = text.strip()
        if not text:
            raise SigningKeyError("the signing key is empty")
        if text.startswith("-----BEGIN"):
            try:
                private = serialization.load_pem_private_key(text.encode("utf-8"), password=None)
            except TypeError:
                raise SigningKeyError("the PEM signing key is encrypted; give it unencrypted") from None
            except Exception:  # noqa: BLE001 - ValueError, UnsupportedAlgorithm, ...: never echo the text
                raise SigningKeyError("the PEM signing key cannot be read") from None
            if not isinstance(private, Ed25519PrivateKey):
                raise SigningKeyError("the PEM signing key is not an Ed25519 private key")
            return cls(private)
        seed = _decode_key_bytes(text)
        if seed is None:
            raise SigningKeyError("the signing key is not a PEM private key, 64 hex characters, "
                                  "or base64 of a 32-byte Ed25519 seed")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def to_text(self) -> str:
        """base64url (no padding) of the raw 32-byte seed: the form ``from_text`` reads."""
        raw = self.private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                         serialization.NoEncryption())
        return _b64url_encode(raw)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def public_text(self) -> str:
        return _b64url_encode(_raw_public(self.public_key))

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r})"


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """Read a public key: base64/base64url/hex of the raw 32 bytes, or a PEM ``PUBLIC KEY``."""
    if not isinstance(text, str):
        raise SigningKeyError("the public key must be text")
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            public = serialization.load_pem_public_key(text.encode("utf-8"))
        except Exception:  # noqa: BLE001
            raise SigningKeyError("the PEM public key cannot be read") from None
        if not isinstance(public, Ed25519PublicKey):
            raise SigningKeyError("the PEM public key is not an Ed25519 key")
        return public
    raw = _decode_key_bytes(text)
    if raw is None:
        raise SigningKeyError("the public key is not 64 hex characters or base64 of a 32-byte Ed25519 key")
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except Exception:  # noqa: BLE001
        raise SigningKeyError("the public key is not a valid Ed25519 key") from None


# ----------------------------------------------------------------------------------------------------
# claims and codes


@dataclass(frozen=True)
class Claims:
    product_id: str
    batch: str
    serial: str
    key_id: str
    issued_at: int  # unix seconds


@dataclass(frozen=True)
class Code:
    serial: str
    payload: str  # the exact text of the QR code
    signature: str  # base64url, no padding


@dataclass(frozen=True)
class CodeCheck:
    valid: bool
    claims: Claims | None  # only when valid
    reason: str
    ours: bool  # it starts with our prefix (even when it is malformed or the signature is bad)


def check_id(name: str, value: object) -> str:
    """``value`` must be 1..64 printable characters without whitespace; returns it or raises ValueError."""
    if (not isinstance(value, str) or not 1 <= len(value) <= MAX_ID_LENGTH or not value.isprintable()
            or any(ch.isspace() for ch in value)):
        raise ValueError(f"{name} must be 1..{MAX_ID_LENGTH} printable characters without spaces")
    return value


def check_product_id(product_id: object) -> str:
    return check_id("product_id", product_id)


def check_batch_name(batch: object) -> str:
    return check_id("batch", batch)


def new_serial() -> str:
    """12 Crockford base32 characters holding 60 random bits."""
    bits = secrets.randbits(5 * SERIAL_LENGTH)
    return "".join(CROCKFORD[(bits >> (5 * i)) & 31] for i in range(SERIAL_LENGTH))


def _body_text(claims: Claims) -> str:
    document = {"b": claims.batch, "k": claims.key_id, "p": claims.product_id, "s": claims.serial,
                "t": claims.issued_at}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return _b64url_encode(canonical.encode("utf-8"))


def sign(key: SigningKey, claims: Claims) -> Code:
    """Sign ``claims`` with ``key``; ``claims.key_id`` must be that key's id."""
    check_product_id(claims.product_id)
    check_batch_name(claims.batch)
    check_id("serial", claims.serial)
    if claims.key_id != key.key_id:
        raise ValueError(f"claims.key_id {claims.key_id!r} is not the signing key's id {key.key_id!r}")
    if not isinstance(claims.issued_at, int) or isinstance(claims.issued_at, bool) or claims.issued_at < 0:
        raise ValueError("issued_at must be a non-negative integer (unix seconds)")
    signed = f"{PREFIX}.{_body_text(claims)}"
    signature = _b64url_encode(key.private.sign(signed.encode("ascii")))
    return Code(serial=claims.serial, payload=f"{signed}.{signature}", signature=signature)


def issue(key: SigningKey, product_id: str, batch: str, count: int, issued_at: int) -> list[Code]:
    """``count`` codes with distinct fresh serials for one product batch."""
    check_product_id(product_id)
    check_batch_name(batch)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_ISSUE_COUNT:
        raise ValueError(f"count must be 1..{MAX_ISSUE_COUNT}")
    serials: dict[str, None] = {}
    while len(serials) < count:
        serials[new_serial()] = None
    return [sign(key, Claims(product_id, batch, serial, key.key_id, issued_at)) for serial in serials]


def _malformed(what: str) -> CodeCheck:
    return CodeCheck(valid=False, claims=None, reason=f"malformed code: {what}", ours=True)


def _claims_from(document: Any) -> Claims | str:
    """The five fields with their types, or what is wrong with them."""
    if not isinstance(document, dict):
        return "the body is not a JSON object"
    if set(document) != _FIELDS:
        missing = sorted(_FIELDS - set(document))
        return f"missing fields {', '.join(missing)}" if missing else "unexpected fields"
    for name in ("b", "k", "p", "s"):
        if not isinstance(document[name], str):
            return f"field {name} is not a string"
    if not isinstance(document["t"], int) or isinstance(document["t"], bool):
        return "field t is not an integer"
    if not _KEY_ID.fullmatch(document["k"]):
        return "the key id is not 16 hex characters"
    return Claims(product_id=document["p"], batch=document["b"], serial=document["s"], key_id=document["k"],
                  issued_at=document["t"])


def verify_payload(text: str, public_keys: Mapping[str, Ed25519PublicKey]) -> CodeCheck:
    """Check a scanned or typed code against the trusted keys. Never raises."""
    try:
        return _verify(text, public_keys)
    except Exception:  # noqa: BLE001 - the contract: never raise, whatever the input
        return _malformed("it cannot be read")


def _verify(text: str, public_keys: Mapping[str, Ed25519PublicKey]) -> CodeCheck:
    if not isinstance(text, str):
        return CodeCheck(valid=False, claims=None, reason="not a ShopAI authenticity code", ours=False)
    text = text.strip()
    if not text.startswith(PREFIX + "."):
        return CodeCheck(valid=False, claims=None, reason="not a ShopAI authenticity code", ours=False)
    if len(text) > MAX_PAYLOAD_LENGTH:
        return _malformed("too long")
    parts = text.split(".")
    if len(parts) != 3:
        return _malformed(f"expected 3 parts separated by dots, found {len(parts)}")
    _, body, sig_text = parts
    raw_body = _b64url_decode_strict(body)
    if raw_body is None or not raw_body:
        return _malformed("the body is not base64url")
    signature = _b64url_decode_strict(sig_text)
    if signature is None or len(signature) != 64:
        return _malformed("the signature is not 64 bytes of base64url")
    try:
        document = json.loads(raw_body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _malformed("the body is not UTF-8 JSON")
    claims = _claims_from(document)
    if isinstance(claims, str):
        return _malformed(claims)
    public_key = public_keys.get(claims.key_id)
    if public_key is None:
        return CodeCheck(valid=False, claims=None, reason=f"signed with an unknown key {claims.key_id}",
                         ours=True)
    try:
        public_key.verify(signature, f"{PREFIX}.{body}".encode("ascii"))
    except InvalidSignature:
        return CodeCheck(valid=False, claims=None, reason="signature invalid: the code was forged or altered",
                         ours=True)
    return CodeCheck(valid=True, claims=claims, reason=f"signature valid (key {claims.key_id})", ours=True)


# ----------------------------------------------------------------------------------------------------
# QR codes


def render_png(payload: str, scale: int = 4, border: int = 4) -> bytes:
    """The payload as a black-on-white QR code (error correction M) in PNG bytes."""
    if scale < 1 or border < 0:
        raise ValueError("scale must be >= 1 and border >= 0")
    qr = segno.make_qr(payload, error="M", boost_error=False)
    out = io.BytesIO()
    qr.save(out, kind="png", scale=scale, border=border)
    return out.getvalue()


@dataclass(frozen=True)
class FoundCode:
    text: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the given image's pixels


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, with any transparency on white (a transparent QR background must read as light)."""
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _variants(image: Image.Image) -> Iterator[tuple[Image.Image, int]]:
    """The pictures to try, in order, each with its scale factor relative to ``image``."""
    rgb = _flatten(image)
    yield rgb, 1
    gray = ImageOps.autocontrast(rgb.convert("L"))
    yield gray, 1
    if min(gray.size) < _UPSCALE_BELOW:
        yield gray.resize((gray.width * 2, gray.height * 2), Image.Resampling.NEAREST), 2
    yield gray.filter(ImageFilter.UnsharpMask(radius=2, percent=150, threshold=3)), 1


def _box(barcode: zxingcpp.Barcode, factor: int, width: int, height: int) -> tuple[int, int, int, int]:
    position = barcode.position
    corners = (position.top_left, position.top_right, position.bottom_right, position.bottom_left)
    xs = [point.x / factor for point in corners]
    ys = [point.y / factor for point in corners]
    x0 = min(max(math.floor(min(xs)), 0), width)
    y0 = min(max(math.floor(min(ys)), 0), height)
    x1 = min(max(math.ceil(max(xs)), 0), width)
    y1 = min(max(math.ceil(max(ys)), 0), height)
    return x0, y0, x1, y1


def find_codes(image: Image.Image) -> list[FoundCode]:
    """QR codes in ``image``: unique texts (first occurrence) with their boxes; only fully decoded codes."""
    if image.width < 1 or image.height < 1:
        return []
    for variant, factor in _variants(image):
        barcodes = zxingcpp.read_barcodes(variant, formats=zxingcpp.BarcodeFormat.QRCode)
        found: dict[str, FoundCode] = {}
        for barcode in barcodes:
            if not barcode.valid or barcode.text in found:
                continue
            found[barcode.text] = FoundCode(barcode.text, _box(barcode, factor, image.width, image.height))
        if found:
            return list(found.values())
    return []
