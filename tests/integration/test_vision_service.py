"""The vision service as a shop meets it: real product pictures through the broker, the service as
its own process, questions over gRPC and through the gateway's REST routes, codes signed with a key
from the environment, alerts on alerts.v1, the code log on vision.codes.v1."""

from __future__ import annotations

import base64
import io
import json
import time

import grpc
import numpy as np
import pytest
from PIL import Image
from pydantic import SecretStr

from gateway.app import close_app, create_app
from protos import common_pb2
from protos import vision_pb2 as pb
from protos import vision_pb2_grpc as pb_grpc
from services.common import topics
from services.common.bus import EventPublisher
from services.common.events import new_event
from services.common.pseudonyms import pseudonymise
from services.vision.core.codes import SigningKey, find_codes
from services.vision.core.distort import label_photo
from services.vision.core.images import encode_image
from services.vision.store import VisionKeys as K
from shopai.demo.catalog import build_catalog
from tests.integration.test_vertical_slice import read_topic
from tests.support import assert_problem, staff, wait_for
from tests.unit.test_vision_images import _png_claiming as png_claiming

pytestmark = pytest.mark.integration
PRODUCTS = 24
ANALYTICS_SECRET = "the-analytics-pseudonym-key-of-this-test"


def catalog() -> list[dict]:
    return build_catalog(PRODUCTS, np.random.default_rng(5), np.zeros(PRODUCTS, bool)).payloads


def picture(product: dict) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(product["image_base64"]))).convert("RGB")


def jpeg(image: Image.Image, size: int = 112) -> bytes:
    return encode_image(image.resize((size, size), Image.BICUBIC), "JPEG", quality=85)


@pytest.fixture
def vision(settings, start_service_with, redis_client):
    key = SigningKey.generate()
    products = catalog()
    service = start_service_with(settings, "vision", SHOPAI_VISION_SIGNING_KEY=key.to_text(),
                                 SHOPAI_VISION_AUTO_TRAIN="false", SHOPAI_RETRAIN_CHECK_SECONDS="1",
                                 SHOPAI_ANALYTICS_SECRET=ANALYTICS_SECRET)
    settings.vision.grpc_port = service.grpc_port
    channel = grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}")
    stub = pb_grpc.VisionStub(channel)
    publisher = EventPublisher(settings)
    publisher.publish([new_event("product.upserted", {k: v for k, v in p.items() if k != "cost"}) for p in products])
    wait_for(lambda: redis_client.hlen(K.fingerprints) == PRODUCTS, 30, what="the pictures projected")
    wait_for(lambda: len(stub.Search(pb.ImageRequest(image=jpeg(picture(products[0])), k=100), timeout=20).results)
             == PRODUCTS, 30, what="every picture in the index")
    app = create_app(settings)
    yield stub, staff(app.test_client()), products, publisher, settings, key
    close_app(app)
    channel.close()
    publisher.close()


def test_a_catalog_picture_is_identified_and_found(vision):
    stub, client, products, _, _, _ = vision
    for product in products[:6]:
        answer = stub.Identify(pb.ImageRequest(image=jpeg(picture(product))), timeout=20)
        assert answer.known and answer.product_id == product["product_id"], (product["product_id"], answer)
        assert answer.category == product["category"] and answer.label == product["title"]
        assert 0.5 <= answer.confidence <= 1.0 and answer.top_k[0].product_id == product["product_id"]
        found = stub.Search(pb.ImageRequest(image=jpeg(picture(product)), k=3), timeout=20)
        assert next(r.product_id for r in found.results) == product["product_id"] and len(found.results) == 3
        assert found.results[0].score >= found.results[1].score
    in_category = stub.Search(pb.ImageRequest(image=jpeg(picture(products[0])), k=50,
                                              category=products[0]["category"]), timeout=20)
    assert {r.category for r in in_category.results} == {products[0]["category"]}

    upload = client.post("/v1/vision/identify", data={"image": (io.BytesIO(jpeg(picture(products[1]))), "p.jpg")},
                         content_type="multipart/form-data")
    assert upload.status_code == 200, upload.json
    assert upload.json["product_id"] == products[1]["product_id"] and upload.json["known"] is True
    search = client.post("/v1/vision/search", json={"image_base64": base64.b64encode(jpeg(picture(products[2]))).decode(),
                                                    "k": 4})
    assert search.status_code == 200 and search.json["results"][0]["product_id"] == products[2]["product_id"]
    assert search.json["model_version"].startswith("pretrained")


def test_bad_images_get_a_reason_never_a_crash(vision):
    stub, client, products, _, _, _ = vision
    good = jpeg(picture(products[0]))
    cases = [b"not an image at all", good[: len(good) // 2], b"GIF89a" + b"\x00" * 10]
    for data in cases:
        reply = client.post("/v1/vision/identify", data={"image": (io.BytesIO(data), "x.jpg")},
                            content_type="multipart/form-data")
        assert_problem(reply, 400)
    # A PNG whose header claims 30000 x 30000 pixels: refused before decoding (a decompression bomb).
    reply = client.post("/v1/vision/search", data={"image": (io.BytesIO(png_claiming(30000, 30000)), "bomb.png")},
                        content_type="multipart/form-data")
    problem = assert_problem(reply, 413)
    assert "pixels" in problem["detail"]
    with pytest.raises(grpc.RpcError) as err:
        stub.Identify(pb.ImageRequest(image=good, k=101), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for fmt in ("PNG", "WEBP"):
        reply = client.post("/v1/vision/identify", json={"image_base64": base64.b64encode(
            encode_image(picture(products[3]).resize((90, 90)), fmt)).decode()})
        assert reply.status_code == 200 and reply.json["product_id"] == products[3]["product_id"], fmt


def test_codes_are_issued_and_verified(vision):
    _stub, client, products, _, settings, key = vision
    product = products[4]
    issued = client.post("/v1/vision/codes", json={"product_id": product["product_id"], "batch": "B-2026-11", "count": 3})
    assert issued.status_code == 201, issued.json
    assert issued.json["key_id"] == key.key_id and len(issued.json["codes"]) == 3
    code = issued.json["codes"][0]
    png = base64.b64decode(code["png_base64"])
    assert [f.text for f in find_codes(Image.open(io.BytesIO(png)))] == [code["payload"]]
    log = read_topic(settings.kafka_bootstrap_servers, topics.CODES, expect=1)
    assert log[0]["type"] == "code.issued" and len(log[0]["payload"]["serials"]) == 3

    def verify(photo: Image.Image | None = None, **fields) -> dict:
        if photo is not None:
            fields["image_base64"] = base64.b64encode(encode_image(photo, "JPEG", quality=90)).decode()
        reply = client.post("/v1/vision/verify", json=fields)
        assert reply.status_code == 200, reply.json
        return reply.json

    genuine = verify(label_photo(picture(product), png), location="Shanghai", scanned_by="u1")
    assert genuine["verdict"] == "authentic", genuine
    assert genuine["serial"] == code["serial"] and genuine["product_id"] == product["product_id"]
    assert genuine["scan_count"] == 1 and genuine["issued_at"] and genuine["first_scanned_at"]
    assert any("looks like the product of the code" in r for r in genuine["reasons"]), genuine["reasons"]

    # One byte of the payload altered: the signature no longer holds.
    payload = code["payload"]
    i = len(payload) // 3
    altered = payload[:i] + ("A" if payload[i] != "A" else "B") + payload[i + 1:]
    fake = verify(payload=altered, location="Shenzhen")
    assert fake["verdict"] == "counterfeit" and any("forged or altered" in r or "malformed" in r for r in fake["reasons"])
    alerts = read_topic(settings.kafka_bootstrap_servers, topics.ALERTS, expect=1)
    assert alerts[0]["type"] == "alert.counterfeit_detected" and alerts[0]["payload"]["location"] == "Shenzhen"

    # The same altered code, printed and photographed.
    forged_photo = label_photo(picture(product), png_of(altered))
    assert verify(forged_photo)["verdict"] == "counterfeit"
    # No code in the photo.
    nothing = verify(label_photo(picture(product), None))
    assert nothing["verdict"] == "unreadable" and nothing["reasons"] and nothing["scan_count"] == 0

    # A copied label: the second code turns up, with three shoppers (no key), in more places than one label can be.
    second = issued.json["codes"][1]
    shoppers = client.application.test_client()
    verdicts = [shoppers.post("/v1/vision/verify", json={"payload": second["payload"], "location": city},
                              environ_base={"REMOTE_ADDR": address}).json["verdict"]
                for city, address in (("Beijing", "198.51.100.1"), ("Lagos", "198.51.100.2"), ("Lima", "198.51.100.3"))]
    assert verdicts[:2] == ["authentic", "authentic"] and verdicts[2] == "suspicious"
    alerts = read_topic(settings.kafka_bootstrap_servers, topics.ALERTS, expect=3)  # two counterfeits, then this
    assert sorted(a["type"] for a in alerts) == ["alert.code_suspicious"] + ["alert.counterfeit_detected"] * 2

    unknown = client.post("/v1/vision/codes", json={"product_id": "no-such-product", "batch": "B1"})
    assert_problem(unknown, 404)


def png_of(payload: str) -> bytes:
    from services.vision.core.codes import render_png

    return render_png(payload)


def test_the_code_registry_is_rebuilt_from_its_log(vision, redis_client):
    stub, _client, products, _, _, _ = vision
    issued = stub.IssueCodes(pb.IssueCodesRequest(product_id=products[5]["product_id"], batch="B7", count=1,
                                                  skip_png=True), timeout=30)
    payload = issued.codes[0].payload
    assert stub.Verify(pb.VerifyRequest(payload=payload, location="Paris"), timeout=20).scan_count == 1
    redis_client.flushdb()  # the registry and the scan history are gone ...
    wait_for(lambda: redis_client.exists(K.code(issued.codes[0].serial)), 60, what="the registry replayed")
    wait_for(lambda: redis_client.hget(K.scans(issued.codes[0].serial), "count") == "1", 30, what="scans replayed")
    # ... and so is what the counting decided: the client's place (Paris's geohash cell) and the counted scan.
    assert redis_client.smembers(K.client_places(issued.codes[0].serial, "anonymous")) == {"gh:u09t"}
    assert redis_client.hget(K.scans(issued.codes[0].serial), "counted") == "1"
    again = stub.Verify(pb.VerifyRequest(payload=payload, location="paris "), timeout=20)
    assert again.verdict == pb.VERDICT_AUTHENTIC and again.scan_count == 2 and not again.counted


def test_revoked_codes_verify_as_counterfeit_and_staff_read_a_codes_scans(vision, redis_client):
    _stub, client, products, _, settings, _ = vision
    codes_key = {"X-API-Key": CODES_KEY}
    app = create_app(settings.model_copy(update={"gateway_api_keys": SecretStr(f"{CODES_KEY}:codes")}))
    staff_client = app.test_client()

    def issue(product: dict, batch: str) -> list[str]:
        reply = staff_client.post("/v1/vision/codes", json={"product_id": product["product_id"], "batch": batch,
                                                            "count": 3, "skip_png": True}, headers=codes_key)
        assert reply.status_code == 201, reply.json
        return [code["payload"] for code in reply.json["codes"]]

    def verify(payload: str, **fields) -> dict:
        reply = client.post("/v1/vision/verify", json={"payload": payload} | fields)
        assert reply.status_code == 200, reply.json
        return reply.json

    def revoke(body: dict) -> tuple[int, dict]:
        reply = staff_client.post("/v1/vision/codes/revocations", json=body, headers=codes_key)
        return reply.status_code, reply.json

    recalled, mixed = issue(products[7], "R-recalled"), issue(products[8], "R-mixed")
    first = verify(recalled[0], location="Shanghai", scanned_by="u1")
    assert first["verdict"] == "authentic" and first["revocation"] is None

    # The whole batch: every code of it is counterfeit from now on, saying when and why.
    status, revoked = revoke({"batch": "R-recalled", "reason": "stolen from the depot"})
    assert status == 201 and revoked["codes"] == 3 and not revoked["already_revoked"], revoked
    assert revoked["revocation"]["scope"] == "batch" and revoked["revocation"]["revoked_by"].startswith("key-")
    for payload in recalled:
        after = verify(payload, location="Lagos", scanned_by="u2")
        assert after["verdict"] == "counterfeit" and after["revocation"]["reason"] == "stolen from the depot", after
        assert after["reasons"][1].startswith("revoked: batch R-recalled was revoked ")
        assert after["reasons"][1].endswith("UTC: stolen from the depot")
    again_status, again = revoke({"batch": "R-recalled", "reason": "another reason"})
    assert again_status == 200 and again["already_revoked"] and again["revocation"] == revoked["revocation"]

    # One serial of another batch: only that code.
    serials = [verify(payload)["serial"] for payload in mixed]
    status, one = revoke({"serial": serials[1], "reason": "label torn off a display unit"})
    assert status == 201 and one["codes"] == 1 and one["revocation"]["scope"] == "serial"
    assert [verify(payload)["verdict"] for payload in mixed] == ["authentic", "counterfeit", "authentic"]

    # What was never issued.
    assert_problem(staff_client.post("/v1/vision/codes/revocations", json={"batch": "R-none", "reason": "x"},
                                     headers=codes_key), 404)
    assert_problem(staff_client.post("/v1/vision/codes/revocations", json={"serial": "0000NEVER000", "reason": "x"},
                                     headers=codes_key), 404)
    assert_problem(staff_client.get("/v1/vision/codes/0000NEVER000/scans", headers=codes_key), 404)

    # The first code's history: two scans, newest first, one a page; places, pseudonyms, the revocation.
    serial = first["serial"]
    page = staff_client.get(f"/v1/vision/codes/{serial}/scans?limit=1", headers=codes_key)
    assert page.status_code == 200, page.json
    body = page.json
    assert (body["product_id"], body["batch"], body["scan_count"], body["revoked"]) == (
        products[7]["product_id"], "R-recalled", 2, True)
    assert body["revocation"] == revoked["revocation"] and body["issued_at"] and body["last_scanned_at"]
    (latest,) = body["scans"]  # Lagos, after the revocation
    assert latest["place"].startswith("gh:") and latest["place"] != "gh:wtw3" and latest["trusted"]
    assert latest["scanned_by"] == pseudonymise("u2", ANALYTICS_SECRET.encode())
    older = staff_client.get(f"/v1/vision/codes/{serial}/scans?limit=1&before={body['next_before']}",
                             headers=codes_key).json
    assert [(s["place"], s["scanned_by"], s["counted"]) for s in older["scans"]] == [
        ("gh:wtw3", pseudonymise("u1", ANALYTICS_SECRET.encode()), True)]  # Shanghai, before it
    assert older["next_before"] is None and "u1" not in json.dumps(older) and "Shanghai" not in json.dumps(older)
    assert_problem(client.application.test_client().get(f"/v1/vision/codes/{serial}/scans"), 401)

    # The revocations are in the code log, and a Redis rebuilt from it holds them again.
    log = read_topic(settings.kafka_bootstrap_servers, topics.CODES, expect=100, timeout=5)
    assert [e["payload"].get("serial", "") for e in log if e["type"] == "code.revoked"] == ["", serials[1]]
    redis_client.flushdb()
    wait_for(lambda: redis_client.exists(K.batch_revocations("R-recalled")) and redis_client.exists(K.code(serials[1]))
             and redis_client.hexists(K.code(serials[1]), "revoked"), 60, what="the revocations replayed")
    assert [verify(payload)["verdict"] for payload in mixed] == ["authentic", "counterfeit", "authentic"]
    assert verify(recalled[2])["revocation"]["revoked_at"] == revoked["revocation"]["revoked_at"]
    close_app(app)


CODES_KEY = "a-long-codes-test-key-0123456789"
# Fifty places a caller might claim: real cities in two languages, coordinates around the world, made-up names
# and garbage.
MADE_UP_LOCATIONS = (
    ["Beijing", "Lagos", "Lima", "Paris", "Sydney", "Toronto", "Cairo", "Moscow", "Mumbai", "Mexico City",
     "上海", "北京市", "广州", "深圳", "Tokyo", "Seoul", "Berlin", "Madrid", "Rome", "Nairobi"]
    + [f"{lat},{lon}" for lat, lon in ((10, 10), (-33.9, 18.4), (51.5, -0.1), (40.7, -74), (35.7, 139.7),
                                       (-23.5, -46.6), (55.7, 37.6), (1.35, 103.8), (19.4, -99.1), (-1.3, 36.8))]
    + ["Qzxvil", "Frobnitz", "Nowhere Land", "Atlantis", "Zzyzx Road", "Mordor", "Gotham", "Springfield",
       "Shire", "Narnia", "fake place 17", "!!!", "a b c d e f g", "Lorem ipsum", "Xanadu",
       "El Dorado", "Shangri La", "Oz", "Wakanda", "Camelot"]
)


def test_one_caller_with_made_up_locations_cannot_make_a_genuine_code_suspicious(vision):
    _stub, _client, products, _, settings, _ = vision
    assert len(MADE_UP_LOCATIONS) == 50
    app = create_app(settings.model_copy(update={"gateway_api_keys": SecretStr(f"{CODES_KEY}:codes"), "env": "prod"}))
    client = app.test_client()
    inspector = {"X-API-Key": CODES_KEY}
    issued = client.post("/v1/vision/codes", json={"product_id": products[6]["product_id"], "batch": "B-scan",
                                                   "count": 2, "skip_png": True}, headers=inspector)
    assert issued.status_code == 201, issued.json
    genuine, inspected = (code["payload"] for code in issued.json["codes"])

    def verify(payload: str, location: str, address: str = "203.0.113.66", headers: dict | None = None) -> dict:
        reply = client.post("/v1/vision/verify", json={"payload": payload, "location": location},
                            headers=headers or {}, environ_base={"REMOTE_ADDR": address})
        assert reply.status_code == 200, reply.json
        return reply.json

    attack = [verify(genuine, location) for location in MADE_UP_LOCATIONS]
    assert {a["verdict"] for a in attack} == {"authentic"}, [a["reasons"] for a in attack if a["verdict"] != "authentic"]
    assert [a["counted"] for a in attack] == [True] + [False] * 49
    assert any("leaves the code's history as it was" in r for r in attack[-1]["reasons"])
    # The owner, from another address, still finds the code authentic, and their scan counts.
    owner = verify(genuine, "Shanghai", address="198.51.100.9")
    assert owner["verdict"] == "authentic" and owner["counted"] and owner["scan_count"] == 51, owner
    assert "location read as Shanghai, area wtw3" in owner["reasons"]

    # The brand's inspector (a codes key) finds the other code in three cities far apart: that counts fully.
    trips = [verify(inspected, city, headers=inspector)["verdict"] for city in ("Beijing", "-12.05,-77.04", "Lagos")]
    assert trips == ["authentic", "authentic", "suspicious"]
    # A location that is a client's bug, not a place, is a 400 and records nothing.
    refused = client.post("/v1/vision/verify", json={"payload": genuine, "location": "91,200"})
    assert "out of range" in assert_problem(refused, 400)["detail"]
    assert verify(genuine, "Beijing", address="198.51.100.10")["scan_count"] == 52
    close_app(app)


def test_a_new_product_is_searchable_at_once_and_a_removed_one_is_gone(vision):
    stub, _, _products, publisher, _, _ = vision
    extra = build_catalog(PRODUCTS + 1, np.random.default_rng(99), np.zeros(PRODUCTS + 1, bool)).payloads[-1]
    extra = {k: v for k, v in extra.items() if k != "cost"} | {"product_id": "new-arrival-1"}
    started = time.monotonic()
    publisher.publish([new_event("product.upserted", extra)])

    def found() -> bool:
        answer = stub.Search(pb.ImageRequest(image=jpeg(picture(extra)), k=1), timeout=10)
        return answer.results[0].product_id == "new-arrival-1"

    wait_for(found, 15, what="the new product in the index")
    assert time.monotonic() - started < 15
    publisher.publish([new_event("product.removed", {"product_id": "new-arrival-1"})])
    wait_for(lambda: not found(), 15, what="the removed product gone from the index")


def test_a_training_job_fine_tunes_and_swaps_the_model(vision):
    stub, client, products, _, settings, _ = vision
    # One short epoch scores below the pretrained model on the held-out photos: its quality gate would keep
    # it back, force_serve serves it (the gate's figures are on the job either way).
    job = client.post("/v1/admin/train/vision", json={"params": {"epochs": "1", "views": "2", "image_size": "48",
                                                                 "force_serve": "true"}})
    assert job.status_code == 202, job.json
    job_id = job.json["job_id"]

    def done() -> dict | None:
        state = client.get(f"/v1/admin/jobs/{job_id}").json
        return state if state["state"] in ("succeeded", "failed") else None

    final = wait_for(done, 240, interval=1.0, what="the training job")
    assert final["state"] == "succeeded", final
    assert final["model_version"].startswith("vision-") and 0 <= final["metrics"]["recall_at_1"] <= 1
    assert final["metrics"]["served"] == 1.0 and "gate_serving_recall_at_1" in final["metrics"], final
    assert "pretrained-efficientnet-lite0" in final["message"], final["message"]
    answer = stub.Identify(pb.ImageRequest(image=jpeg(picture(products[0]))), timeout=20)
    assert answer.model_version == final["model_version"]
    assert answer.top_k[0].product_id == products[0]["product_id"]
    models = read_topic(settings.kafka_bootstrap_servers, topics.MODELS, expect=1)
    assert models[-1]["payload"]["service"] == "vision"
    assert models[-1]["payload"]["served"] is True
    with pytest.raises(grpc.RpcError) as err:
        stub.Train(common_pb2.TrainRequest(params={"epochs": "0"}), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        stub.Train(common_pb2.TrainRequest(params={"force_serve": "maybe"}), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "force_serve" in err.value.details()
