"""The gRPC / event schemas: stubs are fresh, services expose what the gateway needs, messages round-trip."""

from __future__ import annotations

import importlib
import re
import shutil
from pathlib import Path

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor

from protos import (
    chatbot_pb2,
    chatbot_pb2_grpc,
    common_pb2,
    events_pb2,
    forecasting_pb2,
    forecasting_pb2_grpc,
    recommender_pb2,
    recommender_pb2_grpc,
    vision_pb2,
    vision_pb2_grpc,
)
from shopai import protogen

# ------------------------------------------------------------------ generated stubs


def test_checked_in_stubs_are_fresh():
    result = protogen.check()
    assert result.ok, (
        "protos/ stubs do not match the .proto files; run `make proto` "
        "(python -m shopai.protogen):\n" + "\n".join(result.lines())
    )


def _copy_protos(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(protogen.REPO_ROOT / "protos", root / "protos")
    return root


def test_check_detects_an_edited_proto(tmp_path):
    root = _copy_protos(tmp_path)
    assert protogen.check(root).ok
    proto = root / "protos" / "recommender.proto"
    text = proto.read_text()
    # A new field in a request, as someone might add without regenerating.
    edited = text.replace("message SimilarRequest {\n", "message SimilarRequest {\n  string extra = 99;\n", 1)
    assert edited != text
    proto.write_text(edited)
    result = protogen.check(root)
    assert not result.ok
    assert "protos/recommender_pb2.py" in result.stale
    assert "protos/recommender_pb2.pyi" in result.stale


def test_check_detects_missing_and_orphaned_stubs(tmp_path):
    root = _copy_protos(tmp_path)
    (root / "protos" / "vision_pb2_grpc.py").unlink()
    (root / "protos" / "gone_pb2.py").write_text("# a stub whose .proto was deleted\n")
    result = protogen.check(root)
    assert result.missing == ["protos/vision_pb2_grpc.py"]
    assert result.orphaned == ["protos/gone_pb2.py"]
    assert protogen.main(["--check", "--root", str(root)]) == 1
    # Regenerating repairs both, and is then a no-op.
    protogen.generate(root)
    assert protogen.check(root).ok
    assert protogen.generate(root) == []


def test_generation_is_deterministic_and_location_independent(tmp_path):
    first = tmp_path / "a"
    second = tmp_path / "b"
    files = protogen.generate_into(first)
    assert files == protogen.generate_into(second, _copy_protos(tmp_path))
    assert files == protogen.expected_stubs()
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel


def test_generated_code_imports_from_the_protos_package():
    for name in ("recommender", "chatbot", "vision", "forecasting"):
        grpc_code = (protogen.REPO_ROOT / "protos" / f"{name}_pb2_grpc.py").read_text()
        assert f"from protos import {name}_pb2 as" in grpc_code
        assert "from protos import common_pb2 as" in grpc_code
        pb2_code = (protogen.REPO_ROOT / "protos" / f"{name}_pb2.py").read_text()
        assert "from protos import common_pb2 as" in pb2_code


# ------------------------------------------------------------------ services the gateway needs

# service proto module -> (service name, RPC -> (input type, output type))
COMMON = "shopai.common.v1"
ADMIN = {
    "Train": (f"{COMMON}.TrainRequest", f"{COMMON}.Job"),
    "GetJob": (f"{COMMON}.GetJobRequest", f"{COMMON}.Job"),
    # GET /v1/admin/models, POST /v1/admin/models/{service}/{version}/serve
    "ListModels": (f"{COMMON}.ListModelsRequest", f"{COMMON}.ListModelsResponse"),
    "ServeModel": (f"{COMMON}.ServeModelRequest", f"{COMMON}.ModelVersion"),
}
SERVICES = {
    recommender_pb2: (
        "Recommender",
        {
            "Recommend": ("RecommendRequest", "RecommendResponse"),  # GET /v1/users/{id}/recommendations
            "BatchRecommend": ("BatchRecommendRequest", "BatchRecommendResponse"),
            "Similar": ("SimilarRequest", "SimilarResponse"),  # GET /v1/products/{id}/similar
            "UserProfile": ("UserProfileRequest", "UserProfileResponse"),
            "ItemProfile": ("ItemProfileRequest", "ItemProfileResponse"),
            **ADMIN,  # POST /v1/admin/train/{service}, GET /v1/admin/jobs/{id}
        },
    ),
    chatbot_pb2: (
        "Assistant",
        {
            "Chat": ("ChatRequest", "ChatResponse"),  # POST /v1/chat
            "Parse": ("ParseRequest", "ParseResponse"),  # POST /v1/nlu/parse
            "UserData": ("UserDataRequest", "UserDataResponse"),  # GET /v1/users/{id}/export
            "ListHandoffs": ("ListHandoffsRequest", "ListHandoffsResponse"),  # GET /v1/support/handoffs
            "GetHandoff": ("HandoffRequest", "Handoff"),  # GET /v1/support/handoffs/{id}
            "ClaimHandoff": ("HandoffRequest", "Handoff"),  # POST .../{id}/claim
            "ReplyHandoff": ("HandoffRequest", "Handoff"),  # POST .../{id}/messages
            "CloseHandoff": ("HandoffRequest", "Handoff"),  # POST .../{id}/close
            # GET /v1/chat/conversations/{session_id}/messages
            "ConversationMessages": ("ConversationMessagesRequest", "ConversationMessagesResponse"),
            **ADMIN,
        },
    ),
    vision_pb2: (
        "Vision",
        {
            "Identify": ("ImageRequest", "IdentifyResponse"),  # POST /v1/vision/identify
            "Search": ("ImageRequest", "SearchResponse"),  # POST /v1/vision/search
            "Verify": ("VerifyRequest", "VerifyResponse"),  # POST /v1/vision/verify
            "IssueCodes": ("IssueCodesRequest", "IssueCodesResponse"),  # POST /v1/vision/codes
            "ScansBy": ("ScansByRequest", "ScansByResponse"),  # GET /v1/users/{id}/export
            "RevokeCodes": ("RevokeCodesRequest", "RevokeCodesResponse"),  # POST /v1/vision/codes/revocations
            "CodeScans": ("CodeScansRequest", "CodeScansResponse"),  # GET /v1/vision/codes/{serial}/scans
            **ADMIN,
        },
    ),
    forecasting_pb2: (
        "Forecasting",
        {
            "Forecast": ("ForecastRequest", "ForecastResponse"),  # GET /v1/forecasts/{id}
            "InventoryPlan": ("InventoryPlanRequest", "InventoryPlanResponse"),  # GET /v1/inventory/{id}/plan
            "PriceRecommendation": (  # GET /v1/pricing/{id}
                "PriceRecommendationRequest",
                "PriceRecommendationResponse",
            ),
            "Segments": ("SegmentsRequest", "SegmentsResponse"),  # GET /v1/analytics/...
            "Funnel": ("FunnelRequest", "FunnelResponse"),
            "Cohorts": ("CohortsRequest", "CohortsResponse"),
            "UserProfile": ("UserProfileRequest", "UserProfileResponse"),
            "ListAlerts": ("ListAlertsRequest", "ListAlertsResponse"),  # GET /v1/admin/alerts
            "AcknowledgeAlert": ("AcknowledgeAlertRequest", "Alert"),  # POST /v1/admin/alerts/{id}/acknowledge
            **ADMIN,
        },
    ),
}
GRPC_MODULES = {
    "Recommender": recommender_pb2_grpc,
    "Assistant": chatbot_pb2_grpc,
    "Vision": vision_pb2_grpc,
    "Forecasting": forecasting_pb2_grpc,
}


@pytest.mark.parametrize("module", list(SERVICES), ids=lambda m: m.__name__)
def test_service_defines_the_rpcs_the_gateway_needs(module):
    service_name, rpcs = SERVICES[module]
    package = module.DESCRIPTOR.package
    service = module.DESCRIPTOR.services_by_name[service_name]
    assert service.full_name == f"{package}.{service_name}"
    assert set(service.methods_by_name) == set(rpcs), "RPCs added or removed: update this test and docs"
    for name, (req, resp) in rpcs.items():
        method = service.methods_by_name[name]
        assert not method.client_streaming and not method.server_streaming, name
        want_in = req if "." in req else f"{package}.{req}"
        want_out = resp if "." in resp else f"{package}.{resp}"
        assert method.input_type.full_name == want_in, name
        assert method.output_type.full_name == want_out, name
    grpc_module = GRPC_MODULES[service_name]
    assert hasattr(grpc_module, f"{service_name}Stub")
    assert hasattr(grpc_module, f"{service_name}Servicer")
    assert hasattr(grpc_module, f"add_{service_name}Servicer_to_server")


def test_job_messages_are_shared_not_copied():
    for module in SERVICES:
        assert "Job" not in module.DESCRIPTOR.message_types_by_name
        assert "TrainRequest" not in module.DESCRIPTOR.message_types_by_name
        assert "protos/common.proto" in [d.name for d in module.DESCRIPTOR.dependencies]


# Every protos/*.proto, including ones added later.
ALL_FILES = [importlib.import_module(f"protos.{proto.stem}_pb2") for proto in protogen.proto_files()]


def test_every_service_proto_is_covered():
    services = {m.DESCRIPTOR.name for m in ALL_FILES if m.DESCRIPTOR.services_by_name}
    assert services == {m.DESCRIPTOR.name for m in SERVICES}, "add the new service to SERVICES above"


@pytest.mark.parametrize("module", ALL_FILES, ids=lambda m: m.__name__)
def test_naming_conventions(module):
    fd = module.DESCRIPTOR
    # protos/<name>.proto holds package shopai.<name>.v1; a breaking revision
    # goes to protos/<name>_v<N>.proto with package shopai.<name>.v<N>.
    match = re.fullmatch(r"protos/([a-z][a-z0-9]*(?:_[a-z][a-z0-9]*)*?)(?:_v(\d+))?\.proto", fd.name)
    assert match, fd.name
    assert fd.package == f"shopai.{match[1]}.v{match[2] or 1}"

    def messages(types):
        for m in types:
            yield m
            yield from messages(m.nested_types)

    enums = list(fd.enum_types_by_name.values())
    for message in messages(fd.message_types_by_name.values()):
        enums.extend(message.enum_types)
        for f in message.fields:
            assert re.fullmatch(r"[a-z][a-z0-9_]*", f.name), f"{message.full_name}.{f.name}"
            if f.name.endswith("_id") and f.type != FieldDescriptor.TYPE_STRING:
                pytest.fail(f"ids are strings: {message.full_name}.{f.name}")
    for enum in enums:
        prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"
        assert enum.values_by_number[0].name == prefix + "UNSPECIFIED", enum.full_name
        for value in enum.values:
            assert value.name.startswith(prefix), value.name


# ------------------------------------------------------------------ round trips


def _round_trip(message):
    again = type(message).FromString(message.SerializeToString())
    assert again == message
    as_json = json_format.MessageToJson(message, preserving_proto_field_name=True)
    assert json_format.Parse(as_json, type(message)()) == message
    return again


def test_recommender_round_trip():
    resp = recommender_pb2.RecommendResponse(
        user_id="u42",
        items=[
            recommender_pb2.RecommendedItem(
                product_id="p1001",
                score=0.93,
                reason="bought together with p1002",
                title="Phone",
                category="phones",
                price=1999.0,
                currency="CNY",
            ),
            recommender_pb2.RecommendedItem(product_id="p7", score=0.5, reason="popular in phones"),
        ],
        model_version="als-20261128-1",
        strategy="hybrid",
        cold_start=True,
    )
    assert [i.product_id for i in _round_trip(resp).items] == ["p1001", "p7"]

    req = recommender_pb2.RecommendRequest(
        user_id="u42",
        k=5,
        strategy="item_knn",
        filters=recommender_pb2.Filters(exclude_purchased=True, exclude_categories=["books"], min_price=0.0),
        session_product_ids=["p1", "p2"],
    )
    again = _round_trip(req)
    # optional fields keep presence: an explicit 0 differs from "not set".
    assert again.filters.HasField("min_price") and again.filters.min_price == 0.0
    assert not again.filters.HasField("max_price")


def test_chatbot_round_trip():
    message = "我的订单O123到哪了"  # offsets are code points: message[start:end] == value
    resp = chatbot_pb2.ChatResponse(
        reply="您的订单 O123 已发货。",
        intent=chatbot_pb2.Intent(name="order_status", confidence=0.97),
        entities=[chatbot_pb2.Entity(type="order_id", value="O123", start=4, end=8, normalized="O123")],
        handoff=False,
        session_id="s-1",
        language="zh",
        suggestions=["查看物流", "联系人工客服"],
        product_ids=["p1001"],
    )
    entity = _round_trip(resp).entities[0]
    assert message[entity.start : entity.end] == entity.value


def test_vision_round_trip():
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    resp = vision_pb2.IssueCodesResponse(
        product_id="p1001",
        batch="B2026-11",
        codes=[
            vision_pb2.AuthenticityCode(
                serial="S1", payload="SHOPAI1|p1001|B2026-11|S1|sig", signature="c2ln", png=png
            )
        ],
        key_id="k1",
    )
    resp.issued_at.FromJsonString("2026-11-28T10:00:00Z")
    assert _round_trip(resp).codes[0].png == png

    verdict = vision_pb2.VerifyResponse(
        verdict=vision_pb2.VERDICT_SUSPICIOUS,
        product_id="p1001",
        serial="S1",
        reasons=["scanned 14 times"],
        scan_count=14,
    )
    assert _round_trip(verdict).verdict == vision_pb2.VERDICT_SUSPICIOUS
    assert json_format.MessageToDict(verdict)["verdict"] == "VERDICT_SUSPICIOUS"


def test_forecasting_round_trip():
    resp = forecasting_pb2.ForecastResponse(
        product_id="p1001",
        points=[forecasting_pb2.ForecastPoint(date="2026-11-29", yhat=3.2, yhat_lower=1.0, yhat_upper=5.5)],
        history=[forecasting_pb2.HistoryPoint(date="2026-11-28", y=4.0)],
        model="ets",
        model_version="demand-3",
        backtest=forecasting_pb2.Backtest(mase=0.81, smape=0.32, mae=1.1, horizon=28, folds=3),
        interval_level=0.8,
    )
    again = _round_trip(resp)
    assert again.WhichOneof("target") == "product_id"

    req = forecasting_pb2.ForecastRequest(category="phones", horizon_days=14)
    assert _round_trip(req).WhichOneof("target") == "category"
    assert not req.HasField("interval_level")


def test_job_round_trip():
    job = common_pb2.Job(
        job_id="recommender-0001",
        service="recommender",
        model="als",
        state=common_pb2.JOB_STATE_RUNNING,
        progress=0.25,
        metrics={"ndcg_at_10": 0.31},
    )
    job.created_at.FromJsonString("2026-11-28T10:00:00Z")
    as_dict = json_format.MessageToDict(job, preserving_proto_field_name=True)
    assert as_dict["state"] == "JOB_STATE_RUNNING"
    assert as_dict["created_at"] == "2026-11-28T10:00:00Z"
    assert _round_trip(job).job_id.split("-", 1)[0] == job.service


def test_event_envelope_json_mapping():
    """The event example of the design parses with the JSON mapping documented in docs/protos.md."""
    wire = {
        "event_id": "7d0c2e1a-0000-4000-8000-000000000001",
        "type": "interaction.purchase",
        "schema_version": 1,
        "occurred_at": "2026-11-28T10:00:00Z",
        "source": "shop-web",
        "payload": {"user_id": "u42", "product_id": "p1001", "quantity": 1, "price": 199.0},
    }
    envelope = json_format.ParseDict(wire, events_pb2.Envelope())
    assert envelope.occurred_at.ToJsonString() == "2026-11-28T10:00:00Z"
    payload = json_format.ParseDict(
        json_format.MessageToDict(envelope.payload), events_pb2.Interaction(), ignore_unknown_fields=True
    )
    assert (payload.user_id, payload.quantity, payload.price) == ("u42", 1, 199.0)
    back = json_format.MessageToDict(envelope, preserving_proto_field_name=True)
    assert back["payload"]["quantity"] == 1  # a JSON number (Struct values are doubles)
    assert json_format.ParseDict(back, events_pb2.Envelope()) == envelope


def test_rest_mapping_options_documented_in_docs():
    """docs/protos.md: REST bodies print every field, int64 as numbers, field names as in the .proto."""
    reply = vision_pb2.VerifyResponse(verdict=vision_pb2.VERDICT_AUTHENTIC, product_id="p1001", scan_count=3)
    body = json_format.MessageToDict(
        reply,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        unquote_int64_if_possible=True,
    )
    assert body["scan_count"] == 3
    assert body["reasons"] == [] and body["batch"] == ""
    assert body["verdict"].removeprefix("VERDICT_").lower() == "authentic"
