"""The gateway on its own: validation, problem documents, the spec, degraded backends."""

from __future__ import annotations

import time

import grpc
import pytest

from gateway.app import close_app, create_app
from gateway.problems import GRPC_TO_HTTP
from services.common.settings import SERVICE_NAMES, Settings
from tests.support import TEST_KEYS, assert_problem, free_port, staff


@pytest.fixture
def client():
    dead = {name: {"grpc_port": free_port(), "metrics_port": free_port()} for name in SERVICE_NAMES}
    settings = Settings(
        gateway_api_keys=TEST_KEYS,
        redis_url=f"redis://127.0.0.1:{free_port()}/0", kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
        grpc_deadline_seconds=0.5, gateway_max_body_bytes=10_000, log_json=False, **dead,
    )
    app = create_app(settings)
    yield staff(app.test_client())
    close_app(app)



def test_liveness_does_not_depend_on_backends(client):
    assert client.get("/healthz").json == {"status": "ok"}


def test_readiness_names_each_backend_that_is_down(client):
    reply = client.get("/readyz")
    assert reply.status_code == 503
    assert set(reply.json["backends"]) == set(SERVICE_NAMES)
    assert all(state != "SERVING" for state in reply.json["backends"].values())
    assert reply.json["redis"].startswith("unavailable")
    # Everything down is named, the broker too (the storefront shows a notice from this list).
    assert reply.json["status"] == "degraded" and reply.json["broker"].startswith("unavailable: 127.0.0.1:")
    assert reply.json["down"] == [*SERVICE_NAMES, "redis", "broker"]


@pytest.mark.parametrize("query", ["k=0", "k=101", "k=ten", "strategy=magic", "exclude_purchased=maybe"])
def test_bad_query_is_a_400_with_the_reason(client, query):
    body = assert_problem(client.get(f"/v1/users/u1/recommendations?{query}"), 400)
    assert body["errors"][0]["location"] in query


def test_a_backend_that_is_down_is_a_503_not_a_hang(client):
    body = assert_problem(client.get("/v1/users/u1/recommendations?strategy=popular"), 503)
    assert "recommender" in body["detail"]


def test_events_need_a_json_body_and_valid_events(client):
    assert_problem(client.post("/v1/events", data="nope", content_type="text/plain"), 400)
    assert_problem(client.post("/v1/events", json={"events": []}), 400)
    body = assert_problem(client.post("/v1/events", json={"events": [{"type": "x"}]}), 400)
    assert body["errors"][0]["status"] == "rejected"
    assert_problem(client.post("/v1/events", data=b"x" * 20_000, content_type="application/json"), 413)


def test_code_events_are_written_by_the_vision_service_only(client):
    forged = {"event_id": "7d0c2a4e-5b1f-4a7e-9a53-0f5c2f7b9e12", "type": "code.issued", "schema_version": 1,
              "occurred_at": "2026-11-28T10:00:00Z",
              "payload": {"product_id": "p1", "batch": "B1", "key_id": "k", "serials": ["S1"]}}
    body = assert_problem(client.post("/v1/events", json=forged), 400)
    assert "vision service only" in body["errors"][0]["reason"]


def test_payloads_that_crashed_the_proto_parser_are_400s(client):
    base = '{"event_id": "7d0c2a4e-5b1f-4a7e-9a53-0f5c2f7b9e13", "schema_version": 1, "occurred_at": "2026-11-28T10:00:00Z", '
    huge = base + '"type": "product.upserted", "payload": {"product_id": "p", "title": "t", "category": "c", "price": 1' + "0" * 400 + "}}"
    surrogate = base + '"type": "order.created", "payload": {"order_id": "o", "user_id": "u", "sealed_personal": "\\ud800"}}'
    for raw in (huge, surrogate):
        body = assert_problem(client.post("/v1/events", data=raw, content_type="application/json"), 400)
        assert body["errors"][0]["reason"].startswith("payload: "), body


def test_a_broker_that_is_down_is_a_503_not_a_hang(client):
    event = {"event_id": "7d0c2a4e-5b1f-4a7e-9a53-0f5c2f7b9e11", "type": "interaction.view", "schema_version": 1,
             "occurred_at": "2026-11-28T10:00:00Z", "payload": {"user_id": "u1", "product_id": "p1"}}
    started = time.monotonic()
    body = assert_problem(client.post("/v1/events", json=event), 503)
    assert "broker" in body["detail"]
    assert time.monotonic() - started < 15


def test_unknown_routes_and_methods_are_problems_too(client):
    assert_problem(client.get("/v1/nothing-here"), 404)
    assert_problem(client.delete("/healthz"), 405)


def test_the_openapi_spec_and_docs_are_served(client):
    spec = client.get("/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert {"/v1/events", "/v1/users/{user_id}/recommendations", "/healthz", "/readyz"} <= set(spec["paths"])
    params = {p["name"] for p in spec["paths"]["/v1/users/{user_id}/recommendations"]["get"]["parameters"]}
    assert {"user_id", "k", "strategy", "category"} <= params
    assert client.get("/docs").status_code in (301, 302, 308)
    assert client.get("/docs/swagger").status_code == 200
    assert client.get("/docs/swagger/js/swagger-ui-bundle.js").status_code == 200, "the UI must not need a CDN"


def test_metrics_count_requests_by_route_not_by_id(client):
    client.get("/v1/users/u-secret-42/recommendations?k=0")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'route="/v1/users/<user_id>/recommendations"' in text
    assert "u-secret-42" not in text


def test_grpc_codes_map_to_the_design_statuses():
    expected = {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403,
                "RESOURCE_EXHAUSTED": 429, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504}
    assert {code: GRPC_TO_HTTP[getattr(grpc.StatusCode, code)] for code in expected} == expected


def test_deeply_nested_json_is_a_400_not_a_500(client):
    reply = client.post("/v1/events", data="[" * 4000 + "]" * 4000, content_type="application/json")
    body = assert_problem(reply, 400)
    assert "nested too deeply" in body["detail"]


def test_a_remembered_query_is_the_validated_one_and_bad_ones_stay_400s(client):
    from gateway.routes import QUERY_MEMO_MAX_BYTES, _query_memo
    from gateway.routes.recommendations import RecommendQuery

    _query_memo.clear()
    for _ in range(3):  # invalid strings are never remembered: the same 400 every time
        body = assert_problem(client.get("/v1/users/u1/recommendations?k=0"), 400)
        assert body["errors"][0]["location"] == "k"
    assert not _query_memo
    for _ in range(2):
        client.get("/v1/users/u1/recommendations?k=7&strategy=popular&exclude=a,b")
    remembered = _query_memo[(RecommendQuery, b"k=7&strategy=popular&exclude=a,b")]
    assert (remembered.k, remembered.strategy, remembered.exclude) == (7, "popular", ["a", "b"])
    with pytest.raises(ValueError):  # frozen: one request cannot change what the next one is given
        remembered.k = 8
    long_query = "exclude=" + ",".join(f"p{i}" for i in range(QUERY_MEMO_MAX_BYTES // 3))
    client.get(f"/v1/users/u1/recommendations?{long_query}")
    assert len(_query_memo) == 1  # long strings are validated each time, not remembered
