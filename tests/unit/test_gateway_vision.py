"""The gateway's vision routes (POST /v1/vision/identify, /search, /verify, /codes, /codes/revocations,
GET /v1/vision/codes/{serial}/scans) against a fake Vision
gRPC service (a real server, in process): multipart and JSON (base64) images reach the service as the
same bytes with the right defaults, replies keep their JSON shape, bad input is a 400 naming the field
that never reaches the service, images too large are 413s, gRPC codes become the right problems, and
Verify and IssueCodes are never retried."""

from __future__ import annotations

import base64
import io
import json

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import REGISTRY

from gateway.app import close_app, create_app
from gateway.backends import _RETRY_POLICY
from gateway.routes.vision import (
    MAX_IMAGE_BYTES,
    MIN_CODES_DEADLINE_SECONDS,
    MIN_VISION_DEADLINE_SECONDS,
    RETRY_AFTER_SECONDS,
)
from protos import vision_pb2 as pb
from protos import vision_pb2_grpc
from services.common.settings import SERVICE_NAMES, Settings
from tests.support import TEST_KEYS, RecordingServicer, assert_problem, free_port, serving, staff

# Every byte value, so that standard base64 holds "+" and "/" and URL-safe base64 "-" and "_".
IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3 + b"\x01"
STANDARD = base64.b64encode(IMAGE).decode()
URLSAFE_UNPADDED = base64.urlsafe_b64encode(IMAGE).decode().rstrip("=")
SCANNED_AT = "2026-11-28T10:00:00Z"
ISSUED_AT = "2026-11-01T08:30:00Z"
PNG = b"\x89PNG\r\n\x1a\nQR-"


def stamp(text: str) -> Timestamp:
    value = Timestamp()
    value.FromJsonString(text)
    return value


def identify_reply(request: pb.ImageRequest) -> pb.IdentifyResponse:
    return pb.IdentifyResponse(
        product_id="p1001", label="Canvas tote", category="bags", confidence=0.93, known=True,
        top_k=[pb.Candidate(product_id="p1001", label="Canvas tote", score=0.93, category="bags"),
               pb.Candidate(product_id="p1002", label="帆布包", score=0.41, category="bags")],
        model_version="vision-v3",
    )


def search_reply(request: pb.ImageRequest) -> pb.SearchResponse:
    return pb.SearchResponse(
        results=[pb.SearchResult(product_id="p1001", score=0.88, label="Canvas tote", category="bags"),
                 pb.SearchResult(product_id="p2001", score=0.5, label="Leather tote", category="bags")],
        model_version="vision-v3",
    )


def verify_reply(request: pb.VerifyRequest) -> pb.VerifyResponse:
    if request.payload == "SAI1.revoked":
        revoked = pb.Revocation(scope="batch", product_id="p1001", batch="B7", reason="recalled", revoked_by="key-1",
                                revoked_at=stamp("2026-12-01T09:00:00Z"))
        return pb.VerifyResponse(verdict=pb.VERDICT_COUNTERFEIT, product_id="p1001", batch="B7", serial="S1",
                                 reasons=["signature valid", "revoked: batch B7 was …"], revocation=revoked)
    if not request.image:  # payload only: a fresh code, first scan, no issue time known to this fake
        return pb.VerifyResponse(verdict=pb.VERDICT_AUTHENTIC, product_id="p1001", batch="B7", serial="S1",
                                 reasons=["signature valid"], scan_count=1)
    return pb.VerifyResponse(
        verdict=pb.VERDICT_SUSPICIOUS, product_id="p1001", batch="B7", serial="S2",
        reasons=["signature valid", "scanned 14 times in 3 cities"], scan_count=14,
        first_scanned_at=stamp(SCANNED_AT), issued_at=stamp(ISSUED_AT),
    )


def codes_reply(request: pb.IssueCodesRequest) -> pb.IssueCodesResponse:
    codes = [pb.AuthenticityCode(serial=f"S{i}", payload=f"SHOPAI1.{request.product_id}.{request.batch}.S{i}.sig{i}",
                                 signature=f"sig{i}", png=b"" if request.skip_png else PNG + bytes([i]))
             for i in range(request.count)]
    return pb.IssueCodesResponse(product_id=request.product_id, batch=request.batch, codes=codes, key_id="k2026",
                                 issued_at=stamp(ISSUED_AT))


REVOKED_AT = "2026-12-01T09:00:00Z"


def revoke_reply(request: pb.RevokeCodesRequest) -> pb.RevokeCodesResponse:
    if request.batch == "B-again":  # revoked before: the first revocation, unchanged
        first = pb.Revocation(scope="batch", product_id="p1001", batch="B-again", reason="recalled",
                              revoked_by="key-00000001", revoked_at=stamp(REVOKED_AT))
        return pb.RevokeCodesResponse(revocation=first, already_revoked=True, codes=40)
    scope = "serial" if request.serial else "batch"
    revocation = pb.Revocation(scope=scope, product_id=request.product_id or "p1001", batch=request.batch or "B7",
                               serial=request.serial, reason=request.reason, revoked_by=request.revoked_by,
                               revoked_at=stamp(REVOKED_AT))
    return pb.RevokeCodesResponse(revocation=revocation, codes=1 if request.serial else 40)


def scans_reply(request: pb.CodeScansRequest) -> pb.CodeScansResponse:
    if request.serial == "FRESH":  # issued, never scanned, not revoked
        return pb.CodeScansResponse(serial="FRESH", product_id="p1001", batch="B7", key_id="k2026",
                                    issued_at=stamp(ISSUED_AT))
    return pb.CodeScansResponse(
        serial=request.serial, product_id="p1001", batch="B7", key_id="k2026", issued_at=stamp(ISSUED_AT),
        scan_count=3, counted_scans=2, places=1, first_scanned_at=stamp(SCANNED_AT), last_scanned_at=stamp(REVOKED_AT),
        revocation=pb.Revocation(scope="serial", product_id="p1001", batch="B7", serial=request.serial,
                                 reason="stolen", revoked_by="key-00000001", revoked_at=stamp(REVOKED_AT)),
        scans=[pb.CodeScan(scanned_at=stamp(REVOKED_AT), place="gh:wtw3", scanned_by="u_0123456789abcdef",
                           client_id="addr-0011223344556677", trusted=False, counted=False),
               pb.CodeScan(scanned_at=stamp(SCANNED_AT), place="", client_id="key-00000002", trusted=True,
                           counted=True)],
        next_before="1796000000123456_0123456789abcdef")


class FakeVision(RecordingServicer, vision_pb2_grpc.VisionServicer):
    """The fake service (tests.support.RecordingServicer records calls and injects errors)."""

    def Identify(self, request, context):
        return self._handle("Identify", request, context, identify_reply)

    def Search(self, request, context):
        return self._handle("Search", request, context, search_reply)

    def Verify(self, request, context):
        return self._handle("Verify", request, context, verify_reply)

    def IssueCodes(self, request, context):
        return self._handle("IssueCodes", request, context, codes_reply)

    def RevokeCodes(self, request, context):
        return self._handle("RevokeCodes", request, context, revoke_reply)

    def CodeScans(self, request, context):
        return self._handle("CodeScans", request, context, scans_reply)



@pytest.fixture(scope="module")
def server():
    with serving(FakeVision(), vision_pb2_grpc.add_VisionServicer_to_server) as fake:
        yield fake


@pytest.fixture
def fake(server):
    return server.reset()


def build_app(fake: FakeVision, **overrides):
    ports = {name: free_port() for name in SERVICE_NAMES} | {"vision": fake.port}  # nothing listens on the others
    settings = Settings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
        grpc_deadline_seconds=2.0, log_json=False,
        **({name: {"grpc_port": port, "metrics_port": free_port()} for name, port in ports.items()}
           | {"gateway_api_keys": TEST_KEYS} | overrides),
    )
    return create_app(settings)


@pytest.fixture
def client(fake):
    app = build_app(fake)
    yield staff(app.test_client())
    close_app(app)


def multipart(client, path: str, image: bytes | None = IMAGE, filename: str = "photo.png", **fields):
    data: dict = dict(fields)
    if image is not None:
        data["image"] = (io.BytesIO(image), filename)
    return client.post(path, data=data, content_type="multipart/form-data")


# ------------------------------------------------------------------ the image reaches the service


@pytest.mark.parametrize("path", ["/v1/vision/identify", "/v1/vision/search"])
def test_a_multipart_image_reaches_the_service_unchanged(client, fake, path):
    reply = multipart(client, path)
    assert reply.status_code == 200, reply.get_data(as_text=True)
    request = fake.only("Identify" if path.endswith("identify") else "Search")
    assert request.image == IMAGE


@pytest.mark.parametrize("encoded", [
    pytest.param(STANDARD, id="standard"),
    pytest.param(STANDARD.rstrip("="), id="standard-unpadded"),
    pytest.param(URLSAFE_UNPADDED, id="urlsafe-unpadded"),
    pytest.param(base64.urlsafe_b64encode(IMAGE).decode(), id="urlsafe-padded"),
    pytest.param(f"data:image/png;base64,{STANDARD}", id="data-url"),
    pytest.param(f"DATA:image/png;name=photo.png;base64,{URLSAFE_UNPADDED}", id="data-url-with-parameter"),
    pytest.param(base64.encodebytes(IMAGE).decode(), id="wrapped-lines"),
])
@pytest.mark.parametrize("path", ["/v1/vision/identify", "/v1/vision/search"])
def test_a_base64_image_reaches_the_service_as_the_same_bytes(client, fake, path, encoded):
    reply = client.post(path, json={"image_base64": encoded})
    assert reply.status_code == 200, reply.get_data(as_text=True)
    assert fake.only("Identify" if path.endswith("identify") else "Search").image == IMAGE


@pytest.mark.parametrize("path, method, default_k", [
    ("/v1/vision/identify", "Identify", 5),
    ("/v1/vision/search", "Search", 10),
])
def test_k_and_category_have_defaults_in_both_forms(client, fake, path, method, default_k):
    assert multipart(client, path).status_code == 200
    assert client.post(path, json={"image_base64": STANDARD}).status_code == 200
    assert [(r.k, r.category) for m, r, _ in fake.calls] == [(default_k, ""), (default_k, "")]
    assert fake.methods() == [method, method]


@pytest.mark.parametrize("path", ["/v1/vision/identify", "/v1/vision/search"])
def test_k_and_category_are_sent_in_both_forms(client, fake, path):
    assert multipart(client, path, k="3", category="bags").status_code == 200
    assert client.post(path, json={"image_base64": STANDARD, "k": 100, "category": "bags"}).status_code == 200
    assert client.post(path, json={"image_base64": STANDARD, "k": 1, "category": "c" * 100}).status_code == 200
    assert [(r.image, r.k, r.category) for _, r, _ in fake.calls] == [
        (IMAGE, 3, "bags"), (IMAGE, 100, "bags"), (IMAGE, 1, "c" * 100)]


def test_a_browser_form_without_a_chosen_file_is_no_image(client, fake):
    problem = assert_problem(multipart(client, "/v1/vision/identify", image=b"", filename=""), 400)
    assert problem["errors"][0]["location"] == "image" and "Field required" in problem["detail"]
    assert fake.calls == []


# ------------------------------------------------------------------ replies


def test_identify_answers_with_the_best_match_and_top_k(client):
    reply = multipart(client, "/v1/vision/identify")
    assert reply.status_code == 200 and reply.content_type == "application/json"
    assert reply.json == {
        "product_id": "p1001", "label": "Canvas tote", "category": "bags", "confidence": 0.93, "known": True,
        "top_k": [{"product_id": "p1001", "label": "Canvas tote", "score": 0.93, "category": "bags"},
                  {"product_id": "p1002", "label": "帆布包", "score": 0.41, "category": "bags"}],
        "model_version": "vision-v3",
    }
    assert "帆布包".encode() in reply.get_data(), "Chinese stays readable, not \\u-escaped"


def test_search_answers_with_the_results(client):
    reply = client.post("/v1/vision/search", json={"image_base64": STANDARD})
    assert reply.status_code == 200
    assert reply.json == {
        "results": [{"product_id": "p1001", "score": 0.88, "label": "Canvas tote", "category": "bags"},
                    {"product_id": "p2001", "score": 0.5, "label": "Leather tote", "category": "bags"}],
        "model_version": "vision-v3",
    }


def test_verify_sends_the_photo_and_the_scan_and_answers_the_verdict(client, fake):
    reply = multipart(client, "/v1/vision/verify", location="31.23,121.47", scanned_by="store-12")
    assert reply.status_code == 200, reply.get_data(as_text=True)
    request = fake.only("Verify")
    assert (request.image, request.payload, request.location, request.scanned_by) == (
        IMAGE, "", "31.23,121.47", "store-12")
    assert reply.json == {
        "verdict": "suspicious", "product_id": "p1001", "batch": "B7", "serial": "S2",
        "reasons": ["signature valid", "scanned 14 times in 3 cities"], "scan_count": 14,
        "first_scanned_at": SCANNED_AT, "issued_at": ISSUED_AT, "counted": False, "revocation": None,
    }


def test_verify_with_a_json_image_and_payload(client, fake):
    body = {"image_base64": f"data:image/jpeg;base64,{URLSAFE_UNPADDED}", "payload": "SHOPAI1.p1001.B7.S2.x",
            "location": "Shanghai", "scanned_by": "u42"}
    assert client.post("/v1/vision/verify", json=body).status_code == 200
    request = fake.only("Verify")
    assert (request.image, request.payload, request.location, request.scanned_by) == (
        IMAGE, "SHOPAI1.p1001.B7.S2.x", "Shanghai", "u42")


@pytest.mark.parametrize("form", ["json", "multipart"])
def test_verify_with_only_a_payload(client, fake, form):
    if form == "json":
        reply = client.post("/v1/vision/verify", json={"payload": "SHOPAI1.p1001.B7.S1.x"})
    else:
        reply = multipart(client, "/v1/vision/verify", image=None, payload="SHOPAI1.p1001.B7.S1.x")
    assert reply.status_code == 200, reply.get_data(as_text=True)
    request = fake.only("Verify")
    assert (request.image, request.payload, request.location, request.scanned_by) == (
        b"", "SHOPAI1.p1001.B7.S1.x", "", "")
    assert reply.json == {
        "verdict": "authentic", "product_id": "p1001", "batch": "B7", "serial": "S1",
        "reasons": ["signature valid"], "scan_count": 1, "first_scanned_at": None, "issued_at": None,
        "counted": False, "revocation": None,
    }


def test_codes_are_issued_with_their_pngs_in_base64(client, fake):
    reply = client.post("/v1/vision/codes", json={"product_id": "p1001", "batch": "2026-11-A", "count": 3})
    assert reply.status_code == 201, reply.get_data(as_text=True)
    request = fake.only("IssueCodes")
    assert (request.product_id, request.batch, request.count, request.skip_png) == ("p1001", "2026-11-A", 3, False)
    body = reply.json
    assert {k: v for k, v in body.items() if k != "codes"} == {
        "product_id": "p1001", "batch": "2026-11-A", "key_id": "k2026", "issued_at": ISSUED_AT}
    assert [c["serial"] for c in body["codes"]] == ["S0", "S1", "S2"]
    assert body["codes"][1] == {"serial": "S1", "payload": "SHOPAI1.p1001.2026-11-A.S1.sig1", "signature": "sig1",
                                "png_base64": base64.b64encode(PNG + b"\x01").decode()}
    assert all(base64.b64decode(c["png_base64"], validate=True) == PNG + bytes([i])
               for i, c in enumerate(body["codes"]))


def test_codes_default_to_one_and_skip_png_leaves_png_base64_null(client, fake):
    assert client.post("/v1/vision/codes", json={"product_id": "p1", "batch": "B1"}).json["codes"][0]["png_base64"]
    reply = client.post("/v1/vision/codes", json={"product_id": "p1", "batch": "B1", "count": 1000, "skip_png": True})
    assert reply.status_code == 201
    assert [(r.count, r.skip_png) for _, r, _ in fake.calls] == [(1, False), (1000, True)]
    assert len(reply.json["codes"]) == 1000 and all(c["png_base64"] is None for c in reply.json["codes"])


# ------------------------------------------------------------------ bad input: 400 naming the field


def json_body(body):
    return {"json": body}


def form(image: bytes | None = IMAGE, **fields):
    """A multipart request; files are (bytes, file name) and become streams in ``send`` (a stream is read once,
    and each parameter is sent more than once)."""
    data: dict = dict(fields)
    if image is not None:
        data["image"] = (image, "photo.png")
    return {"data": data, "content_type": "multipart/form-data"}


def send(client, path: str, request_kwargs: dict):
    def stream(value):
        if isinstance(value, tuple):
            return (io.BytesIO(value[0]), value[1])
        return [stream(v) for v in value] if isinstance(value, list) else value

    kwargs = dict(request_kwargs)
    if isinstance(kwargs.get("data"), dict):
        kwargs["data"] = {name: stream(value) for name, value in kwargs["data"].items()}
    return client.post(path, **kwargs)


BAD_IMAGE_REQUESTS = [
    pytest.param(json_body({}), "image_base64", "Field required", id="json-without-image"),
    pytest.param(json_body({"k": 5}), "image_base64", "Field required", id="json-only-k"),
    pytest.param(form(image=None), "image", "Field required", id="multipart-without-image"),
    pytest.param(form(image=None, k="5"), "image", "Field required", id="multipart-only-k"),
    pytest.param({"data": {"image": "not a file"}, "content_type": "multipart/form-data"}, "image", "file part",
                 id="multipart-image-as-text"),
    pytest.param(form(image_base64=STANDARD), "image_base64", "once", id="multipart-both-forms"),
    pytest.param(form(image=None, image_base64=STANDARD), "image_base64", "JSON body", id="base64-in-multipart"),
    pytest.param(json_body({"image": STANDARD}), "image", "image_base64", id="json-image-field"),
    pytest.param(json_body({"image_base64": "not base64!"}), "image_base64", "not base64", id="not-base64"),
    pytest.param(json_body({"image_base64": "aGVsbG8=d29y"}), "image_base64", "not base64", id="padding-inside"),
    pytest.param(json_body({"image_base64": "aGVsbG8==="}), "image_base64", "padding", id="too-much-padding"),
    pytest.param(json_body({"image_base64": "ab+c-d"}), "image_base64", "mixes", id="mixed-alphabets"),
    pytest.param(json_body({"image_base64": "aGVsb"}), "image_base64", "length", id="truncated"),
    pytest.param(json_body({"image_base64": ""}), "image_base64", "empty", id="empty-string"),
    pytest.param(json_body({"image_base64": "  \n"}), "image_base64", "empty", id="blank-string"),
    pytest.param(json_body({"image_base64": "data:image/png;base64,"}), "image_base64", "empty", id="empty-data-url"),
    pytest.param(json_body({"image_base64": "data:image/png,abcd"}), "image_base64", "data URL",
                 id="data-url-not-base64"),
    pytest.param(json_body({"image_base64": 42}), "image_base64", "string", id="number-image"),
    pytest.param(json_body({"image_base64": None}), "image_base64", "string", id="null-image"),
    pytest.param(form(image=b""), "image", "empty", id="empty-file"),
    pytest.param({"data": {"image": [(IMAGE, "a.png"), (IMAGE, "b.png")]},
                  "content_type": "multipart/form-data"}, "image", "one file", id="two-files"),
    pytest.param(form(k="five"), "k", "integer", id="multipart-k-not-integer"),
    pytest.param(form(k="2.5"), "k", "integer", id="multipart-k-fraction"),
    pytest.param(form(k=""), "k", "integer", id="multipart-k-empty"),
    pytest.param(form(k="0"), "k", "greater than or equal to 1", id="multipart-k-0"),
    pytest.param(form(k="101"), "k", "less than or equal to 100", id="multipart-k-101"),
    pytest.param(form(k=["1", "2"]), "k", "more than once", id="multipart-k-twice"),
    pytest.param(json_body({"image_base64": STANDARD, "k": "5"}), "k", "integer", id="json-k-string"),
    pytest.param(json_body({"image_base64": STANDARD, "k": 2.5}), "k", "integer", id="json-k-fraction"),
    pytest.param(json_body({"image_base64": STANDARD, "k": True}), "k", "integer", id="json-k-boolean"),
    pytest.param(json_body({"image_base64": STANDARD, "k": 0}), "k", "greater than or equal to 1", id="json-k-0"),
    pytest.param(json_body({"image_base64": STANDARD, "k": 101}), "k", "less than or equal to 100", id="json-k-101"),
    pytest.param(json_body({"image_base64": STANDARD, "category": "c" * 101}), "category", "100",
                 id="json-long-category"),
    pytest.param(form(category="c" * 101), "category", "100", id="multipart-long-category"),
    pytest.param(json_body({"image_base64": STANDARD, "colour": "red"}), "colour", "not permitted",
                 id="json-unknown-field"),
    pytest.param(form(colour="red"), "colour", "not permitted", id="multipart-unknown-field"),
    pytest.param({"data": {"image": (IMAGE, "a.png"), "photo": (IMAGE, "b.png")},
                  "content_type": "multipart/form-data"}, "photo", "not permitted", id="multipart-unknown-file"),
]


@pytest.mark.parametrize("path", ["/v1/vision/identify", "/v1/vision/search"])
@pytest.mark.parametrize("request_kwargs, location, reason", BAD_IMAGE_REQUESTS)
def test_bad_image_requests_are_400s_naming_the_field(client, fake, path, request_kwargs, location, reason):
    problem = assert_problem(send(client, path, request_kwargs), 400)
    assert [e["location"] for e in problem["errors"]] == [location], problem
    assert location in problem["detail"] and reason in problem["detail"], problem["detail"]
    assert fake.calls == []


BAD_VERIFY_REQUESTS = [
    pytest.param(json_body({}), "image_base64", "payload", id="json-nothing"),
    pytest.param(json_body({"location": "Shanghai", "scanned_by": "u1"}), "image_base64", "payload",
                 id="json-only-scan-fields"),
    pytest.param(json_body({"payload": ""}), "image_base64", "payload", id="json-empty-payload"),
    pytest.param(json_body({"payload": "  "}), "image_base64", "payload", id="json-blank-payload"),
    pytest.param(form(image=None, location="Shanghai"), "image", "payload", id="multipart-nothing"),
    pytest.param(form(image=b"", payload="SHOPAI1.x"), "image", "empty", id="multipart-empty-file"),
    pytest.param(json_body({"payload": "p" * 2001}), "payload", "2000", id="long-payload"),
    pytest.param(json_body({"payload": "x", "location": "l" * 201}), "location", "200", id="long-location"),
    pytest.param(json_body({"payload": "x", "scanned_by": "s" * 201}), "scanned_by", "200", id="long-scanned-by"),
    pytest.param(form(image=None, payload="x", location="l" * 201), "location", "200", id="multipart-long-location"),
    pytest.param(json_body({"payload": "x", "location": "Shang\nhai"}), "location", "U+000A", id="location-newline"),
    pytest.param(form(image=None, payload="x", location="Shang\u202ehai"), "location", "U+202E",
                 id="multipart-location-bidi-override"),
    pytest.param(json_body({"payload": 42}), "payload", "string", id="numeric-payload"),
    pytest.param(json_body({"image_base64": "%%%"}), "image_base64", "not base64", id="not-base64"),
    pytest.param(json_body({"payload": "x", "verdict": "authentic"}), "verdict", "not permitted", id="unknown-field"),
]


@pytest.mark.parametrize("request_kwargs, location, reason", BAD_VERIFY_REQUESTS)
def test_bad_verify_requests_are_400s_naming_the_field(client, fake, request_kwargs, location, reason):
    problem = assert_problem(send(client, "/v1/vision/verify", request_kwargs), 400)
    assert [e["location"] for e in problem["errors"]] == [location], problem
    assert reason in problem["detail"], problem["detail"]
    assert fake.calls == []


BAD_CODES_BODIES = [
    pytest.param({"batch": "B1"}, "product_id", "Field required", id="missing-product"),
    pytest.param({"product_id": "p1"}, "batch", "Field required", id="missing-batch"),
    pytest.param({"product_id": "", "batch": "B1"}, "product_id", "at least 1", id="empty-product"),
    pytest.param({"product_id": "p" * 65, "batch": "B1"}, "product_id", "64", id="long-product"),
    pytest.param({"product_id": "p1", "batch": ""}, "batch", "at least 1", id="empty-batch"),
    pytest.param({"product_id": "p1", "batch": "b" * 65}, "batch", "64", id="long-batch"),
    pytest.param({"product_id": "p1", "batch": "B 1"}, "batch", "pattern", id="batch-with-space"),
    pytest.param({"product_id": "p1", "batch": "B1\n"}, "batch", "pattern", id="batch-with-newline"),
    pytest.param({"product_id": "p1", "batch": "B1", "count": 0}, "count", "greater than or equal to 1", id="count-0"),
    pytest.param({"product_id": "p1", "batch": "B1", "count": 1001}, "count", "1000", id="count-1001"),
    pytest.param({"product_id": "p1", "batch": "B1", "count": "5"}, "count", "integer", id="count-string"),
    pytest.param({"product_id": "p1", "batch": "B1", "skip_png": "yes"}, "skip_png", "boolean", id="skip-png-string"),
    pytest.param({"product_id": 1001, "batch": "B1"}, "product_id", "string", id="numeric-product"),
    pytest.param({"product_id": "p1", "batch": "B1", "serial": "S1"}, "serial", "not permitted", id="unknown-field"),
]


@pytest.mark.parametrize("body, location, reason", BAD_CODES_BODIES)
def test_bad_codes_bodies_are_400s_naming_the_field(client, fake, body, location, reason):
    problem = assert_problem(client.post("/v1/vision/codes", json=body), 400)
    assert [e["location"] for e in problem["errors"]] == [location], problem
    assert reason in problem["detail"], problem["detail"]
    assert fake.calls == []


@pytest.mark.parametrize("path, data, content_type, reason", [
    ("/v1/vision/identify", STANDARD, "text/plain", "multipart/form-data"),
    ("/v1/vision/identify", IMAGE, "image/png", "multipart/form-data"),
    ("/v1/vision/search", b"image_base64=abc", "application/x-www-form-urlencoded", "multipart/form-data"),
    ("/v1/vision/verify", b"", None, "multipart/form-data"),
    ("/v1/vision/identify", b"", "application/json", "empty"),
    ("/v1/vision/identify", b'{"image_base64": ', "application/json", "not valid JSON"),
    ("/v1/vision/search", b'["abc"]', "application/json", "JSON object"),
    ("/v1/vision/verify", b'"abc"', "application/json", "JSON object"),
    ("/v1/vision/codes", b'{"product_id": "p1", "batch": "B1"}', "text/plain", "application/json"),
    ("/v1/vision/codes", b"product_id=p1&batch=B1", "multipart/form-data; boundary=x", "application/json"),
    ("/v1/vision/codes", b"null", "application/json", "JSON object"),
])
def test_bodies_of_the_wrong_kind_are_400s_with_a_reason(client, fake, path, data, content_type, reason):
    problem = assert_problem(client.post(path, data=data, content_type=content_type), 400)
    assert reason in problem["detail"], problem["detail"]
    assert fake.calls == []


def test_other_methods_are_405_problems(client, fake):
    assert_problem(client.get("/v1/vision/identify"), 405)
    assert_problem(client.put("/v1/vision/codes", json={"product_id": "p1", "batch": "B1"}), 405)
    assert fake.calls == []


# ------------------------------------------------------------------ too large: 413


def test_an_image_over_the_body_limit_is_a_413(client, fake):
    big = b"\xff" * (9 * 1024 * 1024)
    problem = assert_problem(multipart(client, "/v1/vision/identify", image=big), 413)
    assert "larger than" in problem["detail"]
    assert fake.calls == []


@pytest.mark.parametrize("form_kind", ["json", "multipart"])
def test_a_decoded_image_over_8_mib_is_a_413_even_under_a_larger_body_limit(fake, form_kind):
    app = build_app(fake, gateway_max_body_bytes=16 * 1024 * 1024)
    try:
        client = staff(app.test_client())
        big = b"\xff" * (9 * 1024 * 1024)
        if form_kind == "json":
            reply = client.post("/v1/vision/search", json={"image_base64": base64.b64encode(big).decode()})
        else:
            reply = multipart(client, "/v1/vision/search", image=big)
        problem = assert_problem(reply, 413)
        assert str(len(big)) in problem["detail"] and str(MAX_IMAGE_BYTES) in problem["detail"]
        assert fake.calls == []
    finally:
        close_app(app)


@pytest.mark.parametrize("method, path, request_kwargs", [
    ("Identify", "/v1/vision/identify", form()),
    ("Search", "/v1/vision/search", json_body({"image_base64": STANDARD})),
    ("Verify", "/v1/vision/verify", form()),
])
def test_the_services_too_large_is_a_413_with_its_detail(client, fake, method, path, request_kwargs):
    detail = "too large: 20000×20000 = 400000000 pixels is more than the limit of 40000000 (decompression bomb?)"
    fake.errors[method] = (grpc.StatusCode.OUT_OF_RANGE, detail)
    problem = assert_problem(send(client, path, request_kwargs), 413)
    assert problem["detail"] == detail
    assert fake.methods() == [method]


def test_other_out_of_range_errors_keep_the_usual_400(client, fake):
    fake.errors["Identify"] = (grpc.StatusCode.OUT_OF_RANGE, "k must be 1..100")
    assert assert_problem(multipart(client, "/v1/vision/identify"), 400)["detail"] == "k must be 1..100"


# ------------------------------------------------------------------ gRPC errors


@pytest.mark.parametrize("method, path, request_kwargs", [
    ("Identify", "/v1/vision/identify", form()),
    ("Search", "/v1/vision/search", form()),
    ("Verify", "/v1/vision/verify", json_body({"image_base64": STANDARD})),
])
def test_an_undecodable_image_is_a_400_with_the_services_reason(client, fake, method, path, request_kwargs):
    fake.errors[method] = (grpc.StatusCode.INVALID_ARGUMENT, "not an image: send JPEG, PNG, WebP, GIF or BMP")
    problem = assert_problem(send(client, path, request_kwargs), 400)
    assert problem["detail"] == "not an image: send JPEG, PNG, WebP, GIF or BMP"
    assert fake.methods() == [method]


def test_codes_for_an_unknown_product_are_a_404(client, fake):
    fake.errors["IssueCodes"] = (grpc.StatusCode.NOT_FOUND, "unknown product p404")
    problem = assert_problem(client.post("/v1/vision/codes", json={"product_id": "p404", "batch": "B1"}), 404)
    assert problem["detail"] == "unknown product p404"


def test_codes_without_a_signing_key_keep_the_usual_mapping(client, fake):
    fake.errors["IssueCodes"] = (grpc.StatusCode.FAILED_PRECONDITION, "no signing key configured")
    problem = assert_problem(client.post("/v1/vision/codes", json={"product_id": "p1", "batch": "B1"}), 400)
    assert problem["detail"] == "no signing key configured"


def test_other_service_errors_keep_the_usual_mapping(client, fake):
    fake.errors["Identify"] = (grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")
    assert_problem(multipart(client, "/v1/vision/identify"), 501)
    fake.errors["Search"] = (grpc.StatusCode.INTERNAL, "boom")
    assert "vision" in assert_problem(multipart(client, "/v1/vision/search"), 502)["detail"]


def degraded_count() -> float:
    return REGISTRY.get_sample_value("shopai_gateway_degraded_answers_total", {"backend": "vision"}) or 0.0


def assert_degraded(reply) -> dict:
    """A degraded 200: the gateway's marker, a Retry-After hint, and a body that says so."""
    assert reply.status_code == 200, reply.get_data(as_text=True)
    assert reply.headers["X-ShopAI-Degraded"] == "vision"
    assert int(reply.headers["Retry-After"]) == RETRY_AFTER_SECONDS
    body = reply.get_json()
    assert body["degraded"] is True
    return body


@pytest.mark.parametrize("code, why", [(grpc.StatusCode.UNAVAILABLE, "restarting"),
                                       (grpc.StatusCode.DEADLINE_EXCEEDED, "too busy")])
def test_search_while_the_service_is_away_is_a_degraded_answer_with_no_results(client, fake, code, why):
    fake.errors["Search"] = (code, "the vision model is still loading")
    before = degraded_count()
    body = assert_degraded(multipart(client, "/v1/vision/search"))
    assert body["results"] == [], "never an invented match"
    assert why in body["notice"] and f"{RETRY_AFTER_SECONDS} seconds" in body["notice"]
    assert degraded_count() == before + 1


def test_identify_while_the_service_is_away_identifies_nothing(client, fake):
    fake.errors["Identify"] = (grpc.StatusCode.UNAVAILABLE, "the vision model is still loading")
    body = assert_degraded(send(client, "/v1/vision/identify", json_body({"image_base64": STANDARD})))
    assert (body["known"], body["product_id"], body["top_k"], body["confidence"]) == (False, "", [], 0.0)
    assert "restarting" in body["notice"]


def test_normal_answers_carry_no_degraded_marker(client, fake):
    reply = multipart(client, "/v1/vision/search")
    assert reply.status_code == 200 and "X-ShopAI-Degraded" not in reply.headers
    assert "degraded" not in reply.get_json() and "Retry-After" not in reply.headers


@pytest.mark.parametrize("code, details, fate", [
    (grpc.StatusCode.UNAVAILABLE, "the scan could not be recorded: broker away", "was not recorded"),
    (grpc.StatusCode.UNAVAILABLE, "Socket closed", "may have been recorded"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", "may still be recorded"),
])
def test_verify_while_the_service_is_away_claims_no_verdict(client, fake, code, details, fate):
    fake.errors["Verify"] = (code, details)
    body = assert_degraded(client.post("/v1/vision/verify", json={"payload": "SHOPAI1.x"}))
    assert body["verdict"] == "unchecked"
    assert (body["product_id"], body["serial"], body["scan_count"], body["counted"]) == ("", "", 0, False)
    assert body["revocation"] is None
    assert "not checked" in body["reasons"][0] and fate in body["reasons"][1], body["reasons"]
    assert fake.methods() == ["Verify"], "a scan is recorded: never sent twice"


def test_a_vision_service_not_listening_gives_degraded_answers_saying_the_scan_did_not_arrive(fake):
    app = build_app(fake, vision={"grpc_port": free_port(), "metrics_port": free_port()})
    client = staff(app.test_client())
    try:
        assert assert_degraded(multipart(client, "/v1/vision/search"))["results"] == []
        body = assert_degraded(client.post("/v1/vision/verify", json={"payload": "SHOPAI1.x"}))
        assert "did not reach the service and was not recorded" in body["reasons"][1], body["reasons"]
    finally:
        close_app(app)
    assert fake.calls == []


@pytest.mark.parametrize("method, path, request_kwargs", [
    ("IssueCodes", "/v1/vision/codes", json_body({"product_id": "p1", "batch": "B1"})),
    ("RevokeCodes", "/v1/vision/codes/revocations", json_body({"batch": "B1", "reason": "x"})),
])
def test_staff_writes_stay_503s_saying_when_to_ask_again(client, fake, method, path, request_kwargs):
    fake.errors[method] = (grpc.StatusCode.UNAVAILABLE, "restarting")
    reply = send(client, path, request_kwargs)
    problem = assert_problem(reply, 503)
    assert "vision" in problem["detail"] and "restarting" in problem["detail"]
    assert int(reply.headers["Retry-After"]) == RETRY_AFTER_SECONDS
    assert "X-ShopAI-Degraded" not in reply.headers
    assert fake.methods() == [method], "serials are issued / codes revoked: never sent twice"


def test_a_slow_codes_call_is_a_504_naming_it(client, fake):
    fake.errors["IssueCodes"] = (grpc.StatusCode.DEADLINE_EXCEEDED, "too slow")
    assert "vision" in assert_problem(client.post("/v1/vision/codes", json={"product_id": "p1", "batch": "B1"}),
                                      504)["detail"]


@pytest.mark.parametrize("method, path", [("Identify", "/v1/vision/identify"), ("Search", "/v1/vision/search")])
def test_identify_and_search_are_retried_while_the_service_is_unavailable(client, fake, method, path):
    fake.errors[method] = (grpc.StatusCode.UNAVAILABLE, "restarting")
    assert_degraded(multipart(client, path))
    assert fake.methods() == [method] * 3, "an idempotent read: gRPC retries it (maxAttempts 3)"


def test_the_retry_policy_never_retries_verify_or_codes():
    names = [n for config in _RETRY_POLICY["methodConfig"] for n in config["name"]]
    assert {"service": "shopai.vision.v1.Vision"} not in names
    for method in ("Verify", "IssueCodes"):
        assert {"service": "shopai.vision.v1.Vision", "method": method} not in names


# ------------------------------------------------------------------ deadlines


def test_image_routes_get_at_least_ten_seconds_and_codes_thirty(client, fake):
    assert client.application.config["GRPC_DEADLINE"] < MIN_VISION_DEADLINE_SECONDS
    assert multipart(client, "/v1/vision/identify").status_code == 200
    assert multipart(client, "/v1/vision/search").status_code == 200
    assert client.post("/v1/vision/verify", json={"payload": "x"}).status_code == 200
    assert client.post("/v1/vision/codes", json={"product_id": "p1", "batch": "B1"}).status_code == 201
    remaining = {method: left for method, _, left in fake.calls}
    for method in ("Identify", "Search", "Verify"):
        assert MIN_VISION_DEADLINE_SECONDS - 1.0 < remaining[method] < MIN_VISION_DEADLINE_SECONDS + 0.5, remaining
    assert MIN_CODES_DEADLINE_SECONDS - 1.0 < remaining["IssueCodes"] < MIN_CODES_DEADLINE_SECONDS + 0.5, remaining
    assert MIN_VISION_DEADLINE_SECONDS >= 10 and MIN_CODES_DEADLINE_SECONDS >= 30


def test_a_longer_gateway_deadline_is_kept(client, fake):
    client.application.config["GRPC_DEADLINE"] = 45.0
    assert multipart(client, "/v1/vision/identify").status_code == 200
    assert client.post("/v1/vision/codes", json={"product_id": "p1", "batch": "B1"}).status_code == 201
    assert all(44.0 < left < 45.5 for _, _, left in fake.calls), fake.calls


# ------------------------------------------------------------------ the spec


def test_the_vision_routes_are_in_the_spec(client):
    spec = client.get("/openapi.json").json
    json.dumps(spec)  # serialisable
    schemas = spec["components"]["schemas"]

    def schema(ref: str) -> dict:
        return schemas[ref.rsplit("/", 1)[1]]

    paths = {"/v1/vision/identify", "/v1/vision/search", "/v1/vision/verify", "/v1/vision/codes"}
    assert paths <= set(spec["paths"])
    for path in paths:
        operation = spec["paths"][path]["post"]
        assert operation["tags"] == ["vision"]
        assert {"400", "503", "504"} <= set(operation["responses"])
    for path in ("/v1/vision/identify", "/v1/vision/search", "/v1/vision/verify"):
        content = spec["paths"][path]["post"]["requestBody"]["content"]
        assert set(content) == {"multipart/form-data", "application/json"}
        image = schema(content["multipart/form-data"]["schema"]["$ref"])["properties"]["image"]
        assert "binary" in json.dumps(image)
        assert "image_base64" in schema(content["application/json"]["schema"]["$ref"])["properties"]
    identify = spec["paths"]["/v1/vision/identify"]["post"]
    assert "413" in identify["responses"]
    json_body_schema = schema(identify["requestBody"]["content"]["application/json"]["schema"]["$ref"])
    assert json_body_schema["required"] == ["image_base64"]
    assert json_body_schema["properties"]["k"]["default"] == 5 and json_body_schema["properties"]["k"]["maximum"] == 100
    search_form = schema(spec["paths"]["/v1/vision/search"]["post"]["requestBody"]["content"]["multipart/form-data"]
                         ["schema"]["$ref"])
    assert search_form["properties"]["k"]["default"] == 10 and search_form["required"] == ["image"]
    reply = schema(identify["responses"]["200"]["content"]["application/json"]["schema"]["$ref"])
    assert set(reply["properties"]) == {"product_id", "label", "category", "confidence", "known", "top_k",
                                        "model_version", "degraded", "notice"}
    for path in ("/v1/vision/identify", "/v1/vision/search", "/v1/vision/verify"):
        headers = spec["paths"][path]["post"]["responses"]["200"]["headers"]
        assert {"X-ShopAI-Degraded", "Retry-After"} <= set(headers), path
    codes = spec["paths"]["/v1/vision/codes"]["post"]
    assert {"201", "404"} <= set(codes["responses"])
    codes_body = schema(codes["requestBody"]["content"]["application/json"]["schema"]["$ref"])
    assert set(codes_body["properties"]) == {"product_id", "batch", "count", "skip_png"}
    verification = schema(spec["paths"]["/v1/vision/verify"]["post"]["responses"]["200"]["content"]
                          ["application/json"]["schema"]["$ref"])
    assert set(verification["properties"]["verdict"]["enum"]) == {"authentic", "counterfeit", "suspicious",
                                                                  "unreadable", "unchecked"}
    assert "vision" in {t["name"] for t in spec["tags"]}


# ------------------------------------------------------------------ who scans (services/vision/core/scans.py)

CODES_KEY = "a-long-codes-key-0123456789"
INGEST_KEY = "a-long-ingest-key-0123456789"


@pytest.fixture
def keyed_app(fake, tmp_path):
    app = build_app(fake, gateway_api_keys=f"{TEST_KEYS},{CODES_KEY}:codes,{INGEST_KEY}:ingest", data_dir=tmp_path)
    yield app
    close_app(app)


def scanner_of(app, fake, headers: dict | None = None, address: str = "203.0.113.7") -> tuple[str, bool]:
    reply = app.test_client().post("/v1/vision/verify", json={"payload": "SAI1.x"}, headers=headers or {},
                                   environ_base={"REMOTE_ADDR": address})
    assert reply.status_code == 200, reply.get_data(as_text=True)
    request = fake.calls.pop()[1]
    return request.client_id, request.trusted


def test_a_codes_key_scans_as_a_trusted_scanner(keyed_app, fake):
    client_id, trusted = scanner_of(keyed_app, fake, {"X-API-Key": CODES_KEY})
    assert trusted and client_id.startswith("key-")
    assert scanner_of(keyed_app, fake, {"X-API-Key": TEST_KEYS.split(":")[0]})[1]  # admin holds every role


def test_a_key_without_the_codes_role_is_a_client_like_any_other(keyed_app, fake):
    client_id, trusted = scanner_of(keyed_app, fake, {"X-API-Key": INGEST_KEY})
    assert not trusted and client_id.startswith("key-")
    assert client_id != scanner_of(keyed_app, fake, {"X-API-Key": CODES_KEY})[0]


def test_a_visitor_is_named_by_a_keyed_hash_of_its_address_never_the_address(keyed_app, fake, tmp_path):
    first, trusted = scanner_of(keyed_app, fake, address="203.0.113.7")
    assert not trusted and first.startswith("addr-") and "203.0.113" not in first
    assert scanner_of(keyed_app, fake, address="203.0.113.7")[0] == first
    assert scanner_of(keyed_app, fake, address="198.51.100.2")[0] != first
    secret = tmp_path / "secrets" / "scanner-secret"
    assert secret.stat().st_mode & 0o777 == 0o600  # made on the first scan, kept for the next start


def test_the_configured_scanner_secret_names_visitors_the_same_on_every_replica(fake, tmp_path):
    names = []
    for replica in ("a", "b"):
        app = build_app(fake, gateway_scanner_secret="one-secret-for-every-replica", data_dir=tmp_path / replica)
        names.append(scanner_of(app, fake)[0])
        close_app(app)
    assert names[0] == names[1]
    assert not (tmp_path / "a" / "secrets").exists()


# ------------------------------------------------------------------ revocations and a code's scans (staff)


def test_a_batch_is_revoked_with_the_callers_key_and_answers_201(keyed_app, fake):
    client = keyed_app.test_client()
    reply = client.post("/v1/vision/codes/revocations", json={"batch": "B7", "reason": "  stolen from the depot "},
                        headers={"X-API-Key": CODES_KEY})
    assert reply.status_code == 201, reply.get_data(as_text=True)
    request = fake.only("RevokeCodes")
    assert (request.batch, request.serial, request.product_id, request.reason) == ("B7", "", "", "stolen from the depot")
    assert request.revoked_by.startswith("key-")
    assert reply.json == {
        "revocation": {"scope": "batch", "product_id": "p1001", "batch": "B7", "serial": "",
                       "reason": "stolen from the depot", "revoked_by": request.revoked_by, "revoked_at": REVOKED_AT},
        "already_revoked": False, "codes": 40}


def test_one_serial_is_revoked_and_a_product_names_the_batch(client, fake):
    reply = client.post("/v1/vision/codes/revocations", json={"serial": "S1", "reason": "label torn off"})
    assert reply.status_code == 201 and reply.json["revocation"]["scope"] == "serial" and reply.json["codes"] == 1
    assert client.post("/v1/vision/codes/revocations",
                       json={"batch": "B7", "product_id": "p2", "reason": "recalled"}).status_code == 201
    assert [(r.serial, r.batch, r.product_id) for _, r, _ in fake.calls] == [("S1", "", ""), ("", "B7", "p2")]


def test_revoking_again_is_a_200_with_the_first_revocation(client, fake):
    reply = client.post("/v1/vision/codes/revocations", json={"batch": "B-again", "reason": "a second time"})
    assert reply.status_code == 200
    assert reply.json["already_revoked"] is True and reply.json["revocation"]["reason"] == "recalled"


BAD_REVOCATIONS = [
    pytest.param({"reason": "why"}, "batch", "exactly one", id="neither"),
    pytest.param({"batch": "B1", "serial": "S1", "reason": "why"}, "batch", "exactly one", id="both"),
    pytest.param({"batch": "B1"}, "reason", "Field required", id="no-reason"),
    pytest.param({"batch": "B1", "reason": ""}, "reason", "at least 1", id="empty-reason"),
    pytest.param({"batch": "B1", "reason": "   "}, "reason", "why", id="blank-reason"),
    pytest.param({"batch": "B1", "reason": "r" * 501}, "reason", "500", id="long-reason"),
    pytest.param({"batch": "B 1", "reason": "why"}, "batch", "pattern", id="batch-with-space"),
    pytest.param({"serial": "s" * 65, "reason": "why"}, "serial", "64", id="long-serial"),
    pytest.param({"serial": "S1", "product_id": "p1", "reason": "why"}, "product_id", "batch only",
                 id="product-with-serial"),
    pytest.param({"batch": 7, "reason": "why"}, "batch", "string", id="numeric-batch"),
    pytest.param({"batch": "B1", "reason": "why", "count": 3}, "count", "not permitted", id="unknown-field"),
]


@pytest.mark.parametrize("body, location, reason", BAD_REVOCATIONS)
def test_bad_revocations_are_400s_naming_the_field(client, fake, body, location, reason):
    problem = assert_problem(client.post("/v1/vision/codes/revocations", json=body), 400)
    assert [e["location"] for e in problem["errors"]] == [location], problem
    assert reason in problem["detail"], problem["detail"]
    assert fake.calls == []


def test_a_revocation_is_json_only(client, fake):
    problem = assert_problem(client.post("/v1/vision/codes/revocations", data=b"batch=B1",
                                         content_type="application/x-www-form-urlencoded"), 400)
    assert "application/json" in problem["detail"] and "reason" in problem["detail"]
    assert fake.calls == []


@pytest.mark.parametrize("code, status", [(grpc.StatusCode.NOT_FOUND, 404), (grpc.StatusCode.FAILED_PRECONDITION, 400)])
def test_the_services_refusals_keep_their_reason(client, fake, code, status):
    fake.errors["RevokeCodes"] = (code, "no codes were issued in batch B404")
    problem = assert_problem(client.post("/v1/vision/codes/revocations", json={"batch": "B404", "reason": "x"}), status)
    assert problem["detail"] == "no codes were issued in batch B404"


def test_a_revocation_is_never_retried(client, fake):
    fake.errors["RevokeCodes"] = (grpc.StatusCode.UNAVAILABLE, "restarting")
    assert_problem(client.post("/v1/vision/codes/revocations", json={"batch": "B1", "reason": "x"}), 503)
    assert fake.methods() == ["RevokeCodes"], "a second attempt would answer already_revoked for this request"


def test_a_codes_scans_with_its_revocation_and_pseudonymised_scanners(client, fake):
    reply = client.get("/v1/vision/codes/S9/scans?limit=2")
    assert reply.status_code == 200, reply.get_data(as_text=True)
    request = fake.only("CodeScans")
    assert (request.serial, request.limit, request.before) == ("S9", 2, "")
    assert reply.json == {
        "serial": "S9", "product_id": "p1001", "batch": "B7", "key_id": "k2026", "issued_at": ISSUED_AT,
        "scan_count": 3, "counted_scans": 2, "places": 1, "first_scanned_at": SCANNED_AT,
        "last_scanned_at": REVOKED_AT, "revoked": True,
        "revocation": {"scope": "serial", "product_id": "p1001", "batch": "B7", "serial": "S9", "reason": "stolen",
                       "revoked_by": "key-00000001", "revoked_at": REVOKED_AT},
        "scans": [{"scanned_at": REVOKED_AT, "place": "gh:wtw3", "scanned_by": "u_0123456789abcdef",
                   "client_id": "addr-0011223344556677", "trusted": False, "counted": False},
                  {"scanned_at": SCANNED_AT, "place": "", "scanned_by": "", "client_id": "key-00000002",
                   "trusted": True, "counted": True}],
        "next_before": "1796000000123456_0123456789abcdef"}


def test_a_fresh_codes_scans_are_empty_with_nulls(client, fake):
    reply = client.get("/v1/vision/codes/FRESH/scans?before=1796000000123456_0123456789abcdef")
    assert reply.status_code == 200
    request = fake.only("CodeScans")
    assert (request.limit, request.before) == (20, "1796000000123456_0123456789abcdef")
    body = reply.json
    assert body["scans"] == [] and body["revoked"] is False and body["revocation"] is None
    assert body["next_before"] is None and body["first_scanned_at"] is None and body["scan_count"] == 0


@pytest.mark.parametrize("query, location", [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=ten", "limit"), ("before=yesterday", "before"),
    ("before=1796000000123456_XYZ", "before"),
])
def test_bad_scan_queries_are_400s(client, fake, query, location):
    problem = assert_problem(client.get(f"/v1/vision/codes/S9/scans?{query}"), 400)
    assert [e["location"] for e in problem["errors"]] == [location], problem
    assert fake.calls == []


def test_an_unknown_serial_has_no_scans(client, fake):
    fake.errors["CodeScans"] = (grpc.StatusCode.NOT_FOUND, "serial NOPE was never issued")
    assert assert_problem(client.get("/v1/vision/codes/NOPE/scans"), 404)["detail"] == "serial NOPE was never issued"


def test_a_verdict_on_a_revoked_code_carries_the_revocation(client, fake):
    body = client.post("/v1/vision/verify", json={"payload": "SAI1.revoked"}).json
    assert body["verdict"] == "counterfeit" and body["reasons"][1].startswith("revoked")
    assert body["revocation"] == {"scope": "batch", "product_id": "p1001", "batch": "B7", "serial": "",
                                  "reason": "recalled", "revoked_by": "key-1", "revoked_at": REVOKED_AT}


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/v1/vision/codes/revocations", {"batch": "B1", "reason": "x"}),
    ("GET", "/v1/vision/codes/S1/scans", None),
])
def test_revocations_and_scans_need_a_codes_key(keyed_app, fake, method, path, body):
    client = keyed_app.test_client()
    assert_problem(client.open(path, method=method, json=body), 401)
    assert_problem(client.open(path, method=method, json=body, headers={"X-API-Key": INGEST_KEY}), 403)
    assert client.open(path, method=method, json=body, headers={"X-API-Key": CODES_KEY}).status_code in (200, 201)
    assert len(fake.calls) == 1


def test_the_revocation_and_scans_routes_are_in_the_spec(client):
    spec = client.get("/openapi.json").json
    revoke = spec["paths"]["/v1/vision/codes/revocations"]["post"]
    assert {"200", "201", "400", "404"} <= set(revoke["responses"]) and revoke["x-shopai-access"]["roles"] == ["codes"]
    scans = spec["paths"]["/v1/vision/codes/{serial}/scans"]["get"]
    assert {"200", "404"} <= set(scans["responses"]) and scans["x-shopai-access"]["roles"] == ["codes"]
    assert {p["name"] for p in scans["parameters"]} == {"serial", "limit", "before"}
