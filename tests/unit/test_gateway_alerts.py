"""The gateway's alerts routes (/v1/admin/alerts) against a fake Forecasting gRPC service (a real server, in
process): query parameters become ListAlerts fields, the reply keeps its JSON shape, bad input is a 400 that
never reaches the service, the acknowledging key's id is sent, NOT_FOUND and ALREADY_EXISTS become 404 and
409 with the service's words, and who may call what."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import struct_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.app import close_app, create_app
from gateway.policy import need_for
from protos import forecasting_pb2 as pb
from protos import forecasting_pb2_grpc
from services.common.settings import SERVICE_NAMES, Settings
from tests.support import (
    TEST_ADMIN_KEY,
    TEST_KEYS,
    RecordingServicer,
    assert_problem,
    free_port,
    key_id_of,
    serving,
)

ANALYST_KEY = "analyst-key-0123456789abcdef"
SUPPORT_KEY = "support-key-0123456789abcdef"
ALERT_ID = "3f2b8c1e-0d7a-4c55-9a43-2f1d6f3f9b10"
OTHER_ID = "0c9d7a51-3b8e-4f0a-8d1c-6a2e5b4f7c39"


def stamp(text: str) -> Timestamp:
    value = Timestamp()
    value.FromJsonString(text)
    return value


def alert(alert_id: str = ALERT_ID, acknowledged: bool = False) -> pb.Alert:
    payload = struct_pb2.Struct()
    payload.update({"product_id": "p1", "on_hand": 2, "reorder_point": 5.5})
    message = pb.Alert(alert_id=alert_id, type="alert.reorder_needed", occurred_at=stamp("2026-12-01T10:00:00Z"),
                       source="forecasting", subject="product:p1", payload=payload, state=pb.ALERT_STATE_OPEN)
    if acknowledged:
        message.state = pb.ALERT_STATE_ACKNOWLEDGED
        message.acknowledged_at.CopyFrom(stamp("2026-12-01T11:00:00Z"))
        message.acknowledged_by = key_id_of(TEST_ADMIN_KEY)
        message.acknowledged_role = "admin"
    return message


class FakeForecasting(RecordingServicer, forecasting_pb2_grpc.ForecastingServicer):
    def ListAlerts(self, request, context):
        return self._handle("ListAlerts", request, context,
                            lambda r: pb.ListAlertsResponse(alerts=[alert(), alert(OTHER_ID, True)], next=OTHER_ID))

    def AcknowledgeAlert(self, request, context):
        return self._handle("AcknowledgeAlert", request, context, lambda r: alert(r.alert_id, True))


@pytest.fixture(scope="module")
def server():
    with serving(FakeForecasting(), forecasting_pb2_grpc.add_ForecastingServicer_to_server) as fake:
        yield fake


@pytest.fixture(scope="module")
def app(server):
    ports = {name: free_port() for name in SERVICE_NAMES} | {"forecasting": server.port}
    settings = Settings(
        gateway_api_keys=f"{TEST_KEYS},{ANALYST_KEY}:analyst,{SUPPORT_KEY}:support",
        redis_url=f"redis://127.0.0.1:{free_port()}/0", kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
        grpc_deadline_seconds=2.0, log_json=False,
        **{name: {"grpc_port": port, "metrics_port": free_port()} for name, port in ports.items()},
    )
    app = create_app(settings)
    yield app
    close_app(app)


@pytest.fixture
def fake(server):
    return server.reset()


@pytest.fixture
def client(app, fake):
    return app.test_client()


ADMIN = {"X-API-Key": TEST_ADMIN_KEY}
ANALYST = {"X-API-Key": ANALYST_KEY}


def test_the_list_asks_with_the_filters_and_answers_alerts_newest_first_with_a_cursor(client, fake):
    reply = client.get(f"/v1/admin/alerts?state=open&type=alert.reorder_needed&limit=2&before={OTHER_ID}",
                       headers=ANALYST)
    assert reply.status_code == 200, reply.json
    request = fake.only("ListAlerts")
    assert (request.state, request.type, request.limit, request.before) == (
        pb.ALERT_STATE_OPEN, "alert.reorder_needed", 2, OTHER_ID)
    first, second = reply.json["alerts"]
    assert first == {"alert_id": ALERT_ID, "type": "alert.reorder_needed", "occurred_at": "2026-12-01T10:00:00Z",
                     "source": "forecasting", "subject": "product:p1", "state": "open",
                     "payload": {"product_id": "p1", "on_hand": 2, "reorder_point": 5.5},
                     "acknowledged_by": "", "acknowledged_role": ""}
    assert second["state"] == "acknowledged" and second["acknowledged_at"] == "2026-12-01T11:00:00Z"
    assert second["acknowledged_by"] == key_id_of(TEST_ADMIN_KEY)
    assert reply.json["next"] == OTHER_ID


def test_without_filters_every_state_and_type_is_asked_for(client, fake):
    assert client.get("/v1/admin/alerts", headers=ADMIN).status_code == 200
    request = fake.only("ListAlerts")
    assert (request.state, request.type, request.limit, request.before) == (pb.ALERT_STATE_UNSPECIFIED, "", 50, "")


@pytest.mark.parametrize(("query", "names"), [
    ("state=closed", "state"), ("type=reorder", "type"), ("limit=0", "limit"), ("limit=501", "limit"),
    ("before=nope", "before"),
])
def test_bad_filters_are_400s_that_never_reach_the_service(client, fake, query, names):
    assert names in assert_problem(client.get(f"/v1/admin/alerts?{query}", headers=ADMIN), 400)["detail"]
    assert fake.calls == []


def test_acknowledging_sends_the_keys_id_and_answers_the_acknowledged_alert(client, fake):
    reply = client.post(f"/v1/admin/alerts/{ALERT_ID}/acknowledge", headers=ADMIN)
    assert reply.status_code == 200, reply.json
    request = fake.only("AcknowledgeAlert")
    assert (request.alert_id, request.acknowledged_by, request.role) == (ALERT_ID, key_id_of(TEST_ADMIN_KEY), "admin")
    assert reply.json["state"] == "acknowledged" and reply.json["acknowledged_role"] == "admin"


def test_an_unknown_alert_is_a_404_and_a_second_acknowledgement_a_409_saying_when_and_by_whom(client, fake):
    fake.errors["AcknowledgeAlert"] = (grpc.StatusCode.NOT_FOUND, f"no alert {ALERT_ID}")
    assert ALERT_ID in assert_problem(client.post(f"/v1/admin/alerts/{ALERT_ID}/acknowledge", headers=ADMIN),
                                      404)["detail"]
    said = f"alert {ALERT_ID} was already acknowledged at 2026-12-01T11:00:00Z by key-1234abcd (admin)"
    fake.errors["AcknowledgeAlert"] = (grpc.StatusCode.ALREADY_EXISTS, said)
    assert assert_problem(client.post(f"/v1/admin/alerts/{ALERT_ID}/acknowledge", headers=ADMIN), 409)["detail"] == said
    assert fake.methods() == ["AcknowledgeAlert", "AcknowledgeAlert"]  # never retried


def test_a_malformed_alert_id_is_a_400_that_never_reaches_the_service(client, fake):
    assert_problem(client.post("/v1/admin/alerts/not-an-id/acknowledge", headers=ADMIN), 400)
    assert fake.calls == []


def test_a_service_that_is_away_is_a_503_naming_it(client, fake):
    fake.errors["ListAlerts"] = (grpc.StatusCode.UNAVAILABLE, "connection refused")
    assert "forecasting" in assert_problem(client.get("/v1/admin/alerts", headers=ADMIN), 503)["detail"]


def test_analysts_read_alerts_and_only_admins_acknowledge_them(client, fake):
    assert need_for("GET", "/v1/admin/alerts").roles == ("analyst",)
    assert need_for("POST", "/v1/admin/alerts/<alert_id>/acknowledge").roles == ("admin",)
    assert_problem(client.get("/v1/admin/alerts"), 401)
    assert_problem(client.get("/v1/admin/alerts", headers={"X-API-Key": SUPPORT_KEY}), 403)
    assert client.get("/v1/admin/alerts", headers=ANALYST).status_code == 200
    assert_problem(client.post(f"/v1/admin/alerts/{ALERT_ID}/acknowledge", headers=ANALYST), 403)
    assert fake.methods() == ["ListAlerts"]
