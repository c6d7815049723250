"""GET /v1/users/{id}/export against fake services (real gRPC servers, in process) and a real vault: every
service is asked, the orders' personal fields come back opened, a service that knows nothing adds an empty
part, one that cannot answer fails the export, and a destroyed key leaves nothing readable."""

from __future__ import annotations

import base64

import grpc
import pytest

from gateway.app import close_app, create_app
from protos import (
    chatbot_pb2,
    chatbot_pb2_grpc,
    forecasting_pb2,
    forecasting_pb2_grpc,
    recommender_pb2,
    recommender_pb2_grpc,
    vision_pb2,
    vision_pb2_grpc,
)
from services.common.settings import Settings
from tests.support import RecordingServicer, assert_problem, free_port, serving

KEY = "a-long-test-key-0123456789"
HEADERS = {"X-API-Key": KEY}
PERSONAL = {"customer_name": "王芳", "email": "fang.wang@example.com", "phone": "+86 17009876543",
            "shipping_address": {"line1": "12 Huaihai Road", "city": "Shanghai", "country": "CN"}}


class Recommender(RecordingServicer, recommender_pb2_grpc.RecommenderServicer):
    def UserProfile(self, request, context):
        return self._handle("UserProfile", request, context, lambda r: recommender_pb2.UserProfileResponse(
            user_id=r.user_id, orders=2, total_spend=258.0, currency="CNY", event_counts={"view": 5}))


class Forecasting(RecordingServicer, forecasting_pb2_grpc.ForecastingServicer):
    def UserProfile(self, request, context):
        return self._handle("UserProfile", request, context, lambda r: forecasting_pb2.UserProfileResponse(
            pseudonymous_id="c0ffee", segment="loyal", orders=2))


class Vision(RecordingServicer, vision_pb2_grpc.VisionServicer):
    def ScansBy(self, request, context):
        return self._handle("ScansBy", request, context, lambda r: vision_pb2.ScansByResponse(scans=[
            vision_pb2.RecordedScan(serial="S1", product_id="p00001", location="Shanghai", place="name:shanghai",
                                    counted=True)]))


class Assistant(RecordingServicer, chatbot_pb2_grpc.AssistantServicer):
    def __init__(self) -> None:
        super().__init__()
        self.sealed: dict | None = None  # what the projection holds for the order

    def UserData(self, request, context):
        return self._handle("UserData", request, context, self._answer)

    def _answer(self, request) -> chatbot_pb2.UserDataResponse:
        order = chatbot_pb2.OrderRecord(order_id="ORD-20481234", status="shipped", total=129.0, currency="CNY",
                                        history=[chatbot_pb2.StatusChange(status="created", at="2026-11-28T10:00:00Z")])
        order.lines.add(product_id="p00001", quantity=1, unit_price=129.0)
        if self.sealed:
            order.sealed_personal.user_id = self.sealed["user_id"]
            order.sealed_personal.key_id = self.sealed["key_id"]
            order.sealed_personal.nonce = base64.b64decode(self.sealed["nonce"])
            order.sealed_personal.ciphertext = base64.b64decode(self.sealed["ciphertext"])
        talk = chatbot_pb2.Conversation(session_id="s1", language="en",
                                        turns=[chatbot_pb2.Turn(role="user", text="where is my order?")])
        return chatbot_pb2.UserDataResponse(user_id=request.user_id, orders=[order], conversations=[talk])


@pytest.fixture(scope="module")
def fakes():
    with serving(Recommender(), recommender_pb2_grpc.add_RecommenderServicer_to_server) as rec, \
            serving(Forecasting(), forecasting_pb2_grpc.add_ForecastingServicer_to_server) as fc, \
            serving(Assistant(), chatbot_pb2_grpc.add_AssistantServicer_to_server) as chat, \
            serving(Vision(), vision_pb2_grpc.add_VisionServicer_to_server) as vision:
        yield {"recommender": rec, "forecasting": fc, "chatbot": chat, "vision": vision}


@pytest.fixture
def app(fakes, redis_client, redis_url, tmp_path):
    for fake in fakes.values():
        fake.reset()
    fakes["chatbot"].sealed = None
    ports = {name: {"grpc_port": fake.port, "metrics_port": free_port()} for name, fake in fakes.items()}
    settings = Settings(gateway_api_keys=f"{KEY}:privacy", env="prod", redis_url=redis_url, data_dir=tmp_path,
                        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", log_json=False, **ports)
    app = create_app(settings)
    yield app
    close_app(app)


@pytest.mark.integration
def test_the_export_gathers_every_service_and_opens_the_personal_fields(app, fakes):
    vault = app.extensions["shopai.vault"]
    fakes["chatbot"].sealed = vault.seal("u7", PERSONAL)
    reply = app.test_client().get("/v1/users/u7/export", headers=HEADERS)
    assert reply.status_code == 200, reply.json
    assert reply.headers["Cache-Control"] == "no-store"
    body = reply.json
    assert body["user_id"] == "u7" and body["exported_at"].endswith("Z")
    assert body["recommender_profile"]["total_spend"] == 258.0
    assert body["behaviour_profile"]["segment"] == "loyal"
    (order,) = body["orders"]
    assert order["order_id"] == "ORD-20481234" and order["lines"][0]["product_id"] == "p00001"
    assert order["personal"] == PERSONAL and "sealed_personal" not in order
    assert body["conversations"][0]["turns"] == [{"role": "user", "text": "where is my order?"}]
    assert body["scans"] == [{"serial": "S1", "product_id": "p00001", "location": "Shanghai",
                              "place": "name:shanghai", "counted": True}]
    for name in ("recommender", "forecasting", "chatbot", "vision"):
        (_, request, deadline), = fakes[name].calls
        asked = request.scanned_by if name == "vision" else request.user_id
        assert asked == "u7" and deadline is not None, name


@pytest.mark.integration
def test_a_destroyed_key_leaves_the_order_without_personal_fields(app, fakes):
    vault = app.extensions["shopai.vault"]
    fakes["chatbot"].sealed = vault.seal("u7", PERSONAL)
    assert vault.destroy("u7")
    body = app.test_client().get("/v1/users/u7/export", headers=HEADERS).json
    assert body["orders"][0]["personal"] is None
    assert "fang.wang" not in str(body)


@pytest.mark.integration
def test_a_shopper_nobody_knows_gets_an_empty_export(app, fakes):
    for name, method in (("recommender", "UserProfile"), ("forecasting", "UserProfile"), ("chatbot", "UserData"),
                         ("vision", "ScansBy")):
        fakes[name].errors[method] = (grpc.StatusCode.NOT_FOUND, "never seen")
    reply = app.test_client().get("/v1/users/u404/export", headers=HEADERS)
    assert reply.status_code == 200, reply.json
    body = reply.json
    assert body["recommender_profile"] == {} and body["behaviour_profile"] == {}
    assert body["orders"] == [] and body["conversations"] == [] and body["scans"] == []


@pytest.mark.parametrize(("service", "method", "code", "status"), [
    ("chatbot", "UserData", grpc.StatusCode.UNAVAILABLE, 503),
    ("recommender", "UserProfile", grpc.StatusCode.INTERNAL, 503),
    ("forecasting", "UserProfile", grpc.StatusCode.DEADLINE_EXCEEDED, 504),
    ("vision", "ScansBy", grpc.StatusCode.UNAVAILABLE, 503),
])
@pytest.mark.integration
def test_a_service_that_cannot_answer_fails_the_whole_export(app, fakes, service, method, code, status):
    fakes[service].errors[method] = (code, "down")
    body = assert_problem(app.test_client().get("/v1/users/u7/export", headers=HEADERS), status)
    assert service in body["detail"] and "complete" in body["detail"]


@pytest.mark.integration
def test_a_bad_user_id_is_a_400_before_any_call(app, fakes):
    assert_problem(app.test_client().get(f"/v1/users/{'u' * 129}/export", headers=HEADERS), 400)
    assert all(not fake.calls for fake in fakes.values())
