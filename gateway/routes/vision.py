"""Vision routes: REST -> vision gRPC (identify a product in a photo, search by image, verify, issue and
revoke authenticity codes, and a code's scan history for staff).

An image arrives either as ``multipart/form-data`` (file field ``image``) or as JSON
``{"image_base64": …}`` (standard or URL-safe alphabet, padding optional, an optional
``data:image/…;base64,`` prefix). flask-openapi3 validates one content type per view, so these views
read the request themselves with the same pydantic models, and ``_document_request_body`` puts both
content types in the spec. Bad input is a 400 naming the field and never reaches the service.

While the vision service cannot answer (gRPC ``UNAVAILABLE`` or ``DEADLINE_EXCEEDED``: restarting, still
loading its model, too busy), the shopper-facing routes answer a degraded 200 rather than a 503, marked as
every degraded answer of the gateway is (``X-ShopAI-Degraded: vision``, ``shopai_gateway_degraded_answers_total``)
with ``Retry-After`` and, in the body, ``degraded: true`` and a ``notice`` saying why: identify and search
with no match (never an invented one), verify with the verdict ``unchecked`` (no verdict is claimed; the
reason says whether the scan may have been recorded). The staff writes (codes, revocations) and the scan
history keep their 503 / 504, with ``Retry-After``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
from typing import Annotated, Any, Literal

import grpc
from flask import abort, current_app, request
from flask_openapi3 import APIBlueprint, FileStorage, RequestBody, Tag
from flask_openapi3.utils import parse_body, parse_form
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from gateway import access
from gateway.json import reply_json
from gateway.problems import ApiProblem, Problem, from_validation_error, require_json_object
from gateway.routes import QueryModel
from gateway.routes.recommendations import DEGRADED_ANSWERS, DEGRADED_HEADER
from protos import vision_pb2 as pb
from services.common.keyfile import persistent_secret

vision = APIBlueprint(
    "vision", __name__, url_prefix="/v1/vision",
    abp_tags=[Tag(name="vision", description="Identify products in photos, search by image, authenticity codes")],
)

MAX_K = 100
DEFAULT_IDENTIFY_K = 5
DEFAULT_SEARCH_K = 10
MAX_CATEGORY_CHARS = 100
MAX_SCAN_FIELD_CHARS = 200  # location, scanned_by
MAX_PAYLOAD_CHARS = 2000
MAX_CODES = 1000
# Below the service's own 10 MiB limit (vision.proto) and within its gRPC receive limit (body limit + 1 MiB).
MAX_IMAGE_BYTES = 8 * 1024 * 1024
# The model runs on CPU; issuing 1000 codes renders 1000 PNGs.
MIN_VISION_DEADLINE_SECONDS = 10.0
MIN_CODES_DEADLINE_SECONDS = 30.0
# The service answers OUT_OF_RANGE with these details for an image too large in bytes or pixels: a 413.
TOO_LARGE_PREFIX = "too large:"

IMAGE_EXAMPLE = 'curl -F image=@photo.jpg, or {"image_base64": "iVBORw0KGgo…"}'
CODES_EXAMPLE = '{"product_id": "p1001", "batch": "2026-11-A", "count": 10}'
REVOKE_EXAMPLE = '{"batch": "2026-11-A", "reason": "stolen from the warehouse"}'
MAX_REASON_CHARS = 500
DEFAULT_SCANS = 20
MAX_SCANS = 100
# A restart reloads torch and the model (~50 s on two cores): the hint of a degraded answer and of a 503.
RETRY_AFTER_SECONDS = 30
UNREACHABLE_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


# ------------------------------------------------------------------ base64 images


_DATA_URL = re.compile(r"data:[^,;]*(?:;[^,;]*)*;base64,", re.IGNORECASE)
_BASE64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_")
_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")


def decode_base64_image(value: Any) -> bytes:
    """The bytes of a base64 image: standard or URL-safe alphabet, with or without padding, line breaks
    allowed, optionally behind a ``data:<type>;base64,`` prefix."""
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "Input should be a valid string (base64)")
    text = value.strip()
    if text[:5].lower() == "data:":
        prefix = _DATA_URL.match(text)
        if prefix is None:
            raise PydanticCustomError("data_url", "a data URL must look like data:image/png;base64,<data>")
        text = text[prefix.end():]
    text = "".join(text.split())  # `base64` wraps its output at 76 characters
    data = text.rstrip("=")
    if not data:
        raise PydanticCustomError("empty_image", "the image is empty")
    bad = next((char for char in data if char not in _BASE64_CHARS), None)
    if bad is not None:
        raise PydanticCustomError("base64", "is not base64: it contains {char}", {"char": repr(bad)})
    if len(text) - len(data) > 2:
        raise PydanticCustomError("base64", "is not base64: too much = padding")
    if set(data) & set("+/") and set(data) & set("-_"):
        raise PydanticCustomError("base64", "is not base64: it mixes the standard (+/) and URL-safe (-_) alphabets")
    if len(data) % 4 == 1:
        raise PydanticCustomError("base64", "is not base64: its length does not fit (truncated?)")
    return base64.b64decode(data.translate(_URLSAFE_TO_STANDARD) + "=" * (-len(data) % 4), validate=True)


Base64Image = Annotated[
    bytes,
    BeforeValidator(decode_base64_image),
    WithJsonSchema({
        "type": "string", "format": "byte",
        "description": "the image file (JPEG, PNG, WebP, GIF or BMP) in base64, standard or URL-safe, padding "
                       "optional, optionally as a data URL (data:image/jpeg;base64,…); at most 8 MiB decoded, and the "
                       "whole JSON body is limited to 8 MiB (about 6 MiB of image)",
    }),
]


# ------------------------------------------------------------------ request models

ImageFile = Field(description="the image file (JPEG, PNG, WebP, GIF or BMP), at most 8 MiB")
Category = Field(None, max_length=MAX_CATEGORY_CHARS, description="only consider products of this category")


def _k(default: int, what: str) -> Any:
    return Field(default, ge=1, le=MAX_K, description=f"{what}, 1..{MAX_K}")


class IdentifyForm(BaseModel):
    """multipart/form-data: the photo as the file field ``image``."""

    model_config = ConfigDict(extra="forbid")

    image: FileStorage = ImageFile
    k: int = _k(DEFAULT_IDENTIFY_K, "how many candidates in top_k")
    category: str | None = Category


class SearchForm(IdentifyForm):
    k: int = _k(DEFAULT_SEARCH_K, "how many results")


class IdentifyJson(BaseModel):
    """application/json: the photo in base64."""

    model_config = ConfigDict(extra="forbid", strict=True)

    image_base64: Base64Image
    k: int = _k(DEFAULT_IDENTIFY_K, "how many candidates in top_k")
    category: str | None = Category


class SearchJson(IdentifyJson):
    k: int = _k(DEFAULT_SEARCH_K, "how many results")


_REFUSED_IN_LOCATION = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _printable_location(value: str | None) -> str | None:
    """Control and format characters are a client's bug, not a place (as the service refuses them)."""
    bad = next((ch for ch in value or "" if unicodedata.category(ch) in _REFUSED_IN_LOCATION), None)
    if bad is not None:
        raise PydanticCustomError("location_characters", "contains the control or format character {char}",
                                  {"char": f"U+{ord(bad):04X}"})
    return value


Location = Annotated[str | None, AfterValidator(_printable_location)]
ScanLocation = Field(
    None, max_length=MAX_SCAN_FIELD_CHARS,
    description='where it was scanned: "lat,lon" in decimal degrees, or a city name (any language). The service '
                "reads it as a place (a ~30 km geohash cell; a known city is its centre's cell; other names a "
                "normalised token; text naming no place counts as an unknown place); no control characters")
ScannedBy = Field(None, max_length=MAX_SCAN_FIELD_CHARS,
                  description="who scanned (user id, store id, app name); recorded with the scan")
Payload = Field(None, max_length=MAX_PAYLOAD_CHARS,
                description="the code's decoded text, when the client already decoded the QR code")


class VerifyForm(BaseModel):
    """multipart/form-data: a photo of the code (file field ``image``) and/or its decoded ``payload``."""

    model_config = ConfigDict(extra="forbid")

    image: FileStorage | None = Field(None, description="a photo of the product's code / label")
    payload: str | None = Payload
    location: Location = ScanLocation
    scanned_by: str | None = ScannedBy


class VerifyJson(BaseModel):
    """application/json: ``image_base64`` and/or ``payload``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    image_base64: Base64Image | None = None
    payload: str | None = Payload
    location: Location = ScanLocation
    scanned_by: str | None = ScannedBy


class IssueCodesBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    product_id: str = Field(min_length=1, max_length=64, description="a catalog product (404 otherwise)")
    batch: str = Field(min_length=1, max_length=64, pattern=r"^\S+$",
                       description="production / shipment batch id chosen by the caller, no whitespace")
    count: int = Field(1, ge=1, le=MAX_CODES, description=f"how many codes, 1..{MAX_CODES}")
    skip_png: bool = Field(False, description="true: payloads and signatures only, no QR PNGs")


class RevokeCodesBody(BaseModel):
    """Exactly one of ``batch`` and ``serial``, and a reason."""

    model_config = ConfigDict(extra="forbid", strict=True)

    batch: str | None = Field(None, min_length=1, max_length=64, pattern=r"^\S+$",
                              description="revoke every code of this batch")
    serial: str | None = Field(None, min_length=1, max_length=64, pattern=r"^\S+$",
                               description="revoke this one code")
    product_id: str | None = Field(None, min_length=1, max_length=64,
                                   description="with batch: the product whose batch it is, needed only when a batch "
                                               "of that name was issued for several products")
    reason: str = Field(min_length=1, max_length=MAX_REASON_CHARS, description="why, recorded with the revocation")


class SerialPath(BaseModel):
    serial: str = Field(min_length=1, max_length=64, pattern=r"^\S+$", description="the code's serial")


class ScansQuery(QueryModel):
    limit: int = Field(DEFAULT_SCANS, ge=1, le=MAX_SCANS, description=f"scans per page, 1..{MAX_SCANS}")
    before: str | None = Field(None, pattern=r"^\d{1,19}_[0-9a-f]{16}$",
                               description="the `next_before` of the previous page: the scans older than its last")


# ------------------------------------------------------------------ response models (for the spec)


class Candidate(BaseModel):
    product_id: str
    label: str = Field(description="the product's title")
    score: float = Field(description="0..1, higher is more likely")
    category: str


DEGRADED_HEADERS = {
    DEGRADED_HEADER: {"description": "`vision` when the vision service could not answer and this is the degraded "
                                     "answer (`degraded: true`); absent otherwise",
                      "schema": {"type": "string", "enum": ["vision"]}},
    "Retry-After": {"description": "with a degraded answer: seconds after which asking again is worth it",
                    "schema": {"type": "integer"}},
}
Degraded = Field(False, description="true only in the degraded answer given while the vision service cannot "
                                    "answer (header X-ShopAI-Degraded: vision); absent otherwise")


class Identification(BaseModel):
    model_config = ConfigDict(openapi_extra={"headers": DEGRADED_HEADERS})  # type: ignore[typeddict-unknown-key]

    product_id: str = Field(description='the best match; "" when known is false')
    label: str = Field(description="title of the best match (or the generic class when unknown)")
    category: str
    confidence: float = Field(description="0..1, the calibrated score of the best match")
    known: bool = Field(description="confidence reached the service's acceptance threshold")
    top_k: list[Candidate] = Field(description="best first, includes the best match")
    model_version: str
    degraded: bool = Degraded
    notice: str | None = Field(None, description="with degraded: why nothing was identified and when to try again, "
                                                 "for the shopper to read")


class SearchResult(BaseModel):
    product_id: str
    score: float = Field(description="cosine similarity mapped to 0..1, higher is more similar")
    label: str = Field(description="the product's title")
    category: str


class SearchResults(BaseModel):
    model_config = ConfigDict(openapi_extra={"headers": DEGRADED_HEADERS})  # type: ignore[typeddict-unknown-key]

    results: list[SearchResult] = Field(description="most similar first, at most k; empty in a degraded answer")
    model_version: str
    degraded: bool = Degraded
    notice: str | None = Field(None, description="with degraded: why there are no results and when to try again, "
                                                 "for the shopper to read")


class Verification(BaseModel):
    model_config = ConfigDict(openapi_extra={"headers": DEGRADED_HEADERS})  # type: ignore[typeddict-unknown-key]

    verdict: Literal["authentic", "counterfeit", "suspicious", "unreadable", "unchecked"] = Field(
        description="suspicious: a valid code whose scan history looks copied (see reasons); "
                    "unreadable: no code found or decoded in the image; unchecked: the vision service could not "
                    "check the code now (degraded: true; reasons say why and whether the scan was recorded): "
                    "neither authentic nor counterfeit, ask again after Retry-After")
    product_id: str = Field(description='from the code; "" when unreadable')
    batch: str
    serial: str
    reasons: list[str] = Field(description='human-readable findings, e.g. "signature valid"')
    scan_count: int = Field(description="scans of this serial so far, including this one (0 when unreadable)")
    counted: bool = Field(description="this scan moved the code's shared history; false: recorded, but this "
                                      "client's scans of the code already count here or in as many places as one "
                                      "client's may (an API key with the codes role always counts)")
    first_scanned_at: str | None = Field(description="RFC 3339; null when unknown")
    issued_at: str | None = Field(description="RFC 3339; null when unknown")
    revocation: RevocationReply | None = Field(
        description="when the code's batch or serial was revoked (the verdict is then counterfeit): when, why, by "
                    "which key; null otherwise")
    degraded: bool = Degraded


class RevocationReply(BaseModel):
    scope: str = Field(description="batch (every code of the product's batch) or serial (one code)")
    product_id: str
    batch: str
    serial: str = Field(description='the revoked serial; "" for a batch')
    reason: str
    revoked_by: str = Field(description="the API key id that revoked")
    revoked_at: str | None = Field(description="RFC 3339")


class RevokedCodes(BaseModel):
    revocation: RevocationReply = Field(description="the revocation in force: this one, or the first one")
    already_revoked: bool = Field(description="the codes were already revoked (by this batch or serial, or the "
                                              "serial's batch): nothing changed, the first revocation is answered")
    codes: int = Field(description="how many issued codes the revocation covers")


class StaffScan(BaseModel):
    scanned_at: str | None = Field(description="RFC 3339")
    place: str = Field(description='the normalised place: "gh:<geohash of ~39 km>", "name:<token>", "" unknown')
    scanned_by: str = Field(description='who scanned, pseudonymised ("u_" + 16 hex digits, the pseudonyms analytics '
                                        'show); "" when the scan named nobody')
    client_id: str = Field(description='the API key id, or "addr-" and a keyed hash of the address, it was counted for')
    trusted: bool = Field(description="the scanner's key had the codes role: its scans count fully")
    counted: bool = Field(description="the scan moved the code's shared history")


class CodeScans(BaseModel):
    serial: str
    product_id: str
    batch: str
    key_id: str = Field(description="the key that signed the code")
    issued_at: str | None = Field(description="RFC 3339")
    scan_count: int = Field(description="every recorded scan")
    counted_scans: int = Field(description="the scans that count toward the verdict")
    places: int = Field(description="distinct known places of counted scans")
    first_scanned_at: str | None = Field(description="RFC 3339; null before the first scan")
    last_scanned_at: str | None = Field(description="RFC 3339; null before the first scan")
    revoked: bool
    revocation: RevocationReply | None = Field(description="the serial's or its batch's revocation; null when none")
    scans: list[StaffScan] = Field(description="newest first; the last 500 scans of a code are kept")
    next_before: str | None = Field(description="pass as `before` for the next (older) page; null on the last")


class AuthenticityCode(BaseModel):
    serial: str
    payload: str = Field(description="the exact text in the QR code; POST /v1/vision/verify accepts it as payload")
    signature: str = Field(description="base64url signature over product, batch and serial")
    png_base64: str | None = Field(description="the QR code as a PNG, standard base64; null with skip_png")


class IssuedCodes(BaseModel):
    product_id: str
    batch: str
    key_id: str = Field(description="id of the signing key (for key rotation)")
    issued_at: str | None = Field(description="RFC 3339")
    codes: list[AuthenticityCode]


# ------------------------------------------------------------------ reading the request


@vision.before_request
def _json_object_or_multipart() -> None:
    """The image routes take multipart/form-data or a JSON object, the codes route only a JSON object;
    anything else is a 400 with its reason before validation (as in gateway/routes/chat.py)."""
    if request.method != "POST":
        return
    codes = request.endpoint in ("vision.issue_codes", "vision.revoke_codes")
    if request.mimetype == "multipart/form-data" and not codes:
        return
    example = {"vision.issue_codes": CODES_EXAMPLE, "vision.revoke_codes": REVOKE_EXAMPLE}.get(request.endpoint,
                                                                                            IMAGE_EXAMPLE)
    expected = ("JSON with Content-Type: application/json" if codes else
                "multipart/form-data with the file field image, or JSON with Content-Type: application/json")
    require_json_object(example, expected)


def _invalid(location: str, message: str, kind: str) -> ApiProblem:
    """A 400 in the shape of a validation error (gateway/problems.py ``from_validation_error``)."""
    return ApiProblem(400, f"{location}: {message}", slug="validation-error",
                      errors=[{"location": location, "message": message, "type": kind}])


def _validated(model: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        abort(from_validation_error(exc))  # as flask-openapi3 answers its own validation errors


def _form_fields() -> dict[str, Any]:
    """The multipart fields, each once: text fields as strings, the file as a FileStorage."""
    fields: dict[str, Any] = {}
    for name in request.form:
        if name == "image":
            raise _invalid("image", "must be a file part (curl -F image=@photo.jpg), not a text field",
                           "file_expected")
        if name == "image_base64":
            raise _invalid("image_base64", "send the image once: as the file field image in a multipart form, "
                                           "or as image_base64 in a JSON body", "both_image_forms")
        values = request.form.getlist(name)
        if len(values) > 1:
            raise _invalid(name, "is given more than once", "repeated")
        fields[name] = values[0]
    for name in request.files:
        files = [file for file in request.files.getlist(name) if not _no_file_chosen(file)]
        if len(files) > 1:
            raise _invalid(name, "send one file", "repeated")
        if files:
            fields[name] = files[0]
    return fields


def _no_file_chosen(file: FileStorage) -> bool:
    """A browser form sends an empty part without a file name when no file was chosen."""
    if file.filename:
        return False
    empty = not file.stream.read(1)
    file.stream.seek(0)
    return empty


def _json_fields() -> dict[str, Any]:
    body = request.get_json()  # a JSON object: checked in _json_object_or_multipart
    if "image" in body:
        raise _invalid("image", "in a JSON body send the image as image_base64 (image is the multipart file field)",
                       "json_image_field")
    return body


def _read_image(form_or_body: Any, location: str) -> bytes:
    """The decoded image bytes (b"" when none was sent), at most MAX_IMAGE_BYTES."""
    if location == "image":
        image = form_or_body.image.read() if form_or_body.image is not None else b""
        if form_or_body.image is not None and not image:
            raise _invalid("image", "the file is empty", "empty_image")
    else:
        image = form_or_body.image_base64 or b""
    if len(image) > MAX_IMAGE_BYTES:
        raise ApiProblem(413, f"the image is {len(image)} bytes; at most {MAX_IMAGE_BYTES} bytes (8 MiB) are accepted",
                         slug="image-too-large")
    return image


def _image_request(form_model: type[BaseModel], json_model: type[BaseModel]) -> pb.ImageRequest:
    if request.mimetype == "multipart/form-data":
        fields, location = _validated(form_model, _form_fields()), "image"
    else:
        fields, location = _validated(json_model, _json_fields()), "image_base64"
    return pb.ImageRequest(image=_read_image(fields, location), k=fields.k, category=fields.category or "")


# ------------------------------------------------------------------ calling the service


def _deadline(minimum: float) -> float:
    # CPU inference (and PNG rendering for codes) can take longer than the gateway's default deadline
    # for cheap reads: at least `minimum`, so that a busy service is not reported as a 504.
    return max(float(current_app.config["GRPC_DEADLINE"]), minimum)


def _call(method: str, message: Any, minimum_deadline: float) -> Any:
    """One Vision RPC. OUT_OF_RANGE "too large: …" (an image too large in bytes or pixels) is a 413 here;
    every other gRPC error goes to the app's handler (GRPC_TO_HTTP)."""
    stub = current_app.extensions["shopai.backends"].stub("vision")
    try:
        return getattr(stub, method)(message, timeout=_deadline(minimum_deadline))
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else None
        details = (exc.details() if hasattr(exc, "details") else "") or ""
        if code is grpc.StatusCode.OUT_OF_RANGE and details.startswith(TOO_LARGE_PREFIX):
            raise ApiProblem(413, details, slug="image-too-large") from exc
        raise


def _staff_call(method: str, message: Any, minimum_deadline: float) -> Any:
    """A staff route's RPC: while the service is away, its 503 says when to ask again (Retry-After)."""
    try:
        return _call(method, message, minimum_deadline)
    except grpc.RpcError as exc:
        if _away(exc) is not grpc.StatusCode.UNAVAILABLE:
            raise
        details = (exc.details() if hasattr(exc, "details") else "") or "UNAVAILABLE"
        raise ApiProblem(503, f"the vision service is unavailable: {details}", slug="unavailable",
                         headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from exc


# ------------------------------------------------------------------ degraded answers


def _away(exc: grpc.RpcError) -> grpc.StatusCode | None:
    """UNAVAILABLE or DEADLINE_EXCEEDED (the service is restarting, loading its model or too busy), else None."""
    code = exc.code() if hasattr(exc, "code") else None
    return code if code in UNREACHABLE_CODES else None


def _degraded(body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
    DEGRADED_ANSWERS.labels("vision").inc()
    return {**body, "degraded": True}, 200, {DEGRADED_HEADER: "vision", "Retry-After": str(RETRY_AFTER_SECONDS)}


def _notice(code: grpc.StatusCode, outcome: str) -> str:
    why = "is restarting" if code is grpc.StatusCode.UNAVAILABLE else "is too busy to answer in time"
    return f"Photo recognition {why}: {outcome}. Please try again in about {RETRY_AFTER_SECONDS} seconds."


def _nothing_identified(code: grpc.StatusCode) -> tuple[dict[str, Any], int, dict[str, str]]:
    return _degraded({"product_id": "", "label": "", "category": "", "confidence": 0.0, "known": False,
                      "top_k": [], "model_version": "",
                      "notice": _notice(code, "the photo was not compared with the catalog")})


def _no_results(code: grpc.StatusCode) -> tuple[dict[str, Any], int, dict[str, str]]:
    return _degraded({"results": [], "model_version": "",
                      "notice": _notice(code, "the photo was not compared with the catalog")})


def _scan_fate(exc: grpc.RpcError, code: grpc.StatusCode) -> str:
    """Whether the scan the request carried was recorded, as far as the gateway can know."""
    details = ((exc.details() if hasattr(exc, "details") else "") or "").lower()
    if "could not be recorded" in details:  # the service's own refusal: its code log did not take the scan
        return "this scan was not recorded: the scan log is unavailable"
    if code is grpc.StatusCode.UNAVAILABLE and ("failed to connect" in details or "connection refused" in details):
        return "this scan did not reach the service and was not recorded: it is restarting"
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return "the service did not answer in time: this scan may still be recorded"
    return "the service is unavailable: this scan may have been recorded"


def _unchecked(exc: grpc.RpcError, code: grpc.StatusCode) -> tuple[dict[str, Any], int, dict[str, str]]:
    """No verdict is claimed: the code was not checked, and the reasons say why and what became of the scan."""
    reasons = ["the code was not checked: it is neither confirmed authentic nor found counterfeit",
               _scan_fate(exc, code), f"please scan again in about {RETRY_AFTER_SECONDS} seconds"]
    return _degraded({"verdict": "unchecked", "product_id": "", "batch": "", "serial": "", "reasons": reasons,
                      "scan_count": 0, "counted": False, "first_scanned_at": None, "issued_at": None,
                      "revocation": None})


# ------------------------------------------------------------------ who scans


SCANNER_SECRET = "shopai.scanner_secret"


def _scanner_secret() -> bytes:
    """The key of the address hash, read (or made) on the first scan without an API key."""
    secret = current_app.extensions.get(SCANNER_SECRET)
    if secret is None:
        settings = current_app.extensions["shopai.settings"]
        secret = current_app.extensions[SCANNER_SECRET] = persistent_secret(
            settings.gateway_scanner_secret, settings.data_dir / "secrets" / "scanner-secret")
    return secret


def _scanner() -> tuple[str, bool]:
    """(client_id, trusted) for the vision service's scan counting: the API key's id, trusted when it has
    the codes role; without a key the client address under a keyed hash (the raw address never leaves
    the gateway). A shopper's token is not used: it would put a pseudonym of the shopper in the code log."""
    who = getattr(access, "current_client", lambda: None)()
    key = getattr(who, "key", None)
    if key is not None:
        return key.key_id, key.allows("codes")
    address = getattr(who, "address", None) or request.remote_addr or "unknown"
    digest = hmac.new(_scanner_secret(), address.encode(), hashlib.sha256).hexdigest()
    return f"addr-{digest[:16]}", False


# ------------------------------------------------------------------ routes


RESPONSES: dict[int, type[BaseModel]] = {400: Problem, 413: Problem, 501: Problem, 503: Problem, 504: Problem}
Answer = tuple[dict, int] | tuple[dict, int, dict[str, str]]


@vision.post("/identify", responses={200: Identification, **RESPONSES})
def identify() -> Answer:
    """Which catalog product is in a photo.

    Send the photo as multipart/form-data (file field `image`, optional fields `k` and `category`) or
    as JSON `{"image_base64": "…", "k": 5, "category": "bags"}` (standard or URL-safe base64, padding
    optional, a `data:image/…;base64,` prefix allowed). `k` (1..100, default 5) is the size of `top_k`.
    `known` is false when nothing in the catalog matches well enough (then `product_id` is empty).
    400 for an image the service cannot decode, 413 for one larger than 8 MiB or with too many pixels.
    While the vision service cannot answer (restarting, too busy): a 200 with nothing identified, `degraded:
    true`, a `notice` for the shopper, `X-ShopAI-Degraded: vision` and `Retry-After`."""
    image = _image_request(IdentifyForm, IdentifyJson)
    try:
        reply = _call("Identify", image, MIN_VISION_DEADLINE_SECONDS)
    except grpc.RpcError as exc:
        if (code := _away(exc)) is None:
            raise
        return _nothing_identified(code)
    return reply_json(reply), 200


@vision.post("/search", responses={200: SearchResults, **RESPONSES})
def search() -> Answer:
    """Catalog products that look like a photo, most similar first.

    The same body as `POST /v1/vision/identify` (multipart file field `image`, or JSON `image_base64`);
    `k` (1..100, default 10) is the number of results. While the vision service cannot answer (restarting,
    too busy): a 200 with no results, `degraded: true`, a `notice` for the shopper, `X-ShopAI-Degraded:
    vision` and `Retry-After`."""
    image = _image_request(SearchForm, SearchJson)
    try:
        reply = _call("Search", image, MIN_VISION_DEADLINE_SECONDS)
    except grpc.RpcError as exc:
        if (code := _away(exc)) is None:
            raise
        return _no_results(code)
    return reply_json(reply), 200


@vision.post("/verify", responses={200: Verification, **RESPONSES})
def verify() -> Answer:
    """Check a product's authenticity code: a photo of the code / label, or its decoded text.

    multipart/form-data (file field `image`, optional fields `payload`, `location`, `scanned_by`) or JSON
    `{"image_base64": "…", "payload": "…", "location": "…", "scanned_by": "…"}`; an image or a payload
    is required. Each call records a scan, so the gateway never retries it. `location` is `"lat,lon"` or a
    city name; a caller without a `codes` key counts once per place, in at most 2 places per code
    (`counted` says whether this scan did), so no single caller can make a genuine code suspicious.
    While the vision service cannot answer (restarting, too busy, its scan log away): a 200 with the verdict
    `unchecked` (neither authentic nor counterfeit), `degraded: true`, `reasons` saying whether the scan was
    recorded, `X-ShopAI-Degraded: vision` and `Retry-After`."""
    if request.mimetype == "multipart/form-data":
        fields, location = _validated(VerifyForm, _form_fields()), "image"
    else:
        fields, location = _validated(VerifyJson, _json_fields()), "image_base64"
    image = _read_image(fields, location)
    payload = fields.payload or ""
    if not image and not payload.strip():
        raise _invalid(location, "send a photo of the code or its decoded text (payload)", "missing_image_or_payload")
    client_id, trusted = _scanner()
    try:
        reply = _call(
            "Verify",
            pb.VerifyRequest(image=image, payload=payload, location=fields.location or "",
                             scanned_by=fields.scanned_by or "", client_id=client_id, trusted=trusted),
            MIN_VISION_DEADLINE_SECONDS,
        )
    except grpc.RpcError as exc:
        if (code := _away(exc)) is None:
            raise
        return _unchecked(exc, code)
    body = reply_json(reply)
    for stamp in ("first_scanned_at", "issued_at"):
        body.setdefault(stamp, None)
    body["revocation"] = _revocation(reply.revocation) if reply.HasField("revocation") else None
    return body, 200


@vision.post("/codes", responses={201: IssuedCodes, 400: Problem, 404: Problem, 501: Problem, 503: Problem,
                                  504: Problem})
def issue_codes(body: IssueCodesBody) -> tuple[dict, int]:
    """Issue signed authenticity codes (QR PNGs) for a product batch.

    Answers 201 with one code per `count`: its `serial`, the `payload` encoded in the QR code (verify
    accepts it), the `signature`, and the QR code as `png_base64` (null with `skip_png`). 404 when the
    product is not in the catalog, 400 when the service has no signing key. Never retried by the
    gateway: each call issues new serials."""
    reply = _staff_call(
        "IssueCodes",
        pb.IssueCodesRequest(product_id=body.product_id, batch=body.batch, count=body.count, skip_png=body.skip_png),
        MIN_CODES_DEADLINE_SECONDS,
    )
    issued = reply_json(reply)
    issued.setdefault("issued_at", None)
    issued["codes"] = [
        {"serial": code.serial, "payload": code.payload, "signature": code.signature,
         "png_base64": base64.b64encode(code.png).decode("ascii") if code.png else None}
        for code in reply.codes
    ]
    return issued, 201


def _revocation(message: pb.Revocation) -> dict:
    body = reply_json(message)
    body.setdefault("revoked_at", None)
    return body


@vision.post("/codes/revocations", responses={200: RevokedCodes, 201: RevokedCodes, 400: Problem, 404: Problem,
                                              503: Problem, 504: Problem})
def revoke_codes(body: RevokeCodesBody) -> tuple[dict, int]:
    """Revoke authenticity codes: a whole batch (`batch`) or one code (`serial`), with a `reason`.

    From then on `POST /v1/vision/verify` answers `counterfeit` for those codes, with the revocation (when, why)
    in `reasons` and `revocation`. Answers **201** with the revocation and how many issued codes it covers;
    **200** with `already_revoked: true` and the first revocation, unchanged, when they were already revoked
    (a retry is harmless). 404 for a batch or serial never issued; 400 for a batch name issued for several
    products without `product_id`, naming them."""
    if (body.batch is None) == (body.serial is None):
        raise _invalid("batch", "name exactly one of batch (every code of the batch) and serial (one code)",
                       "batch_or_serial")
    if not body.reason.strip():
        raise _invalid("reason", "say why the codes are revoked", "blank_reason")
    if body.serial is not None and body.product_id is not None:
        raise _invalid("product_id", "goes with batch only: a serial names its product", "product_with_serial")
    reply = _staff_call("RevokeCodes",
                        pb.RevokeCodesRequest(batch=body.batch or "", serial=body.serial or "",
                                              product_id=body.product_id or "", reason=body.reason.strip(),
                                              revoked_by=access.current_key_id() or ""),
                        MIN_VISION_DEADLINE_SECONDS)
    answer = {"revocation": _revocation(reply.revocation), "already_revoked": reply.already_revoked,
              "codes": reply.codes}
    return answer, 200 if reply.already_revoked else 201


@vision.get("/codes/<serial>/scans", responses={200: CodeScans, 400: Problem, 404: Problem, 503: Problem,
                                                504: Problem})
def code_scans(path: SerialPath, query: ScansQuery) -> tuple[dict, int]:
    """One code's scan history, for staff: newest first, `limit` (1..100, default 20) a page, `before` the
    `next_before` of the previous page.

    Each scan: when, the normalised place (never the raw location), `scanned_by` pseudonymised as analytics
    show shoppers, the client it was counted for, whether that client was trusted and whether the scan counted.
    With the code's product, batch, key, issue time, scan totals and revocation. 404 for a serial never issued."""
    reply = _staff_call("CodeScans",
                        pb.CodeScansRequest(serial=path.serial, limit=query.limit, before=query.before or ""),
                        MIN_VISION_DEADLINE_SECONDS)
    body = reply_json(reply)
    for stamp in ("issued_at", "first_scanned_at", "last_scanned_at"):
        body.setdefault(stamp, None)
    for scan in body["scans"]:
        scan.setdefault("scanned_at", None)
    body["revoked"] = reply.HasField("revocation")
    body["revocation"] = _revocation(reply.revocation) if reply.HasField("revocation") else None
    body["next_before"] = reply.next_before or None
    return body, 200


# ------------------------------------------------------------------ both content types in the spec


def _document_request_body(rule: str, form_model: type[BaseModel], json_model: type[BaseModel],
                           description: str) -> None:
    """flask-openapi3 documents one body model per view (a ``form`` or a ``body`` parameter, each also
    validated); these views read both content types themselves, so both are added to the spec here."""
    form_content, form_schemas = parse_form(form_model)
    json_content, json_schemas = parse_body(json_model)
    vision.components_schemas.update(**form_schemas, **json_schemas)
    vision.paths[f"{vision.url_prefix}{rule}"].post.requestBody = RequestBody(
        content={**form_content, **json_content}, required=True, description=description,
    )


_IMAGE_BODY = "multipart/form-data with the file field image, or JSON with image_base64"
_document_request_body("/identify", IdentifyForm, IdentifyJson, _IMAGE_BODY)
_document_request_body("/search", SearchForm, SearchJson, _IMAGE_BODY)
_document_request_body("/verify", VerifyForm, VerifyJson,
                       "multipart/form-data (file field image and/or field payload), or JSON with image_base64 "
                       "and/or payload")
