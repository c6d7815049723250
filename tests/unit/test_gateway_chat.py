"""The gateway's assistant routes (POST /v1/chat, POST /v1/nlu/parse) against a fake Assistant gRPC
service (a real server, in process): the body's fields reach the proto unchanged, the reply keeps its
JSON shape, bad input is a 400 that never reaches the service, gRPC codes become the right problems,
Parse is retried on UNAVAILABLE and Chat never is. Who the shopper is comes from the credentials: a
shopper token's subject is sent as the verified user, the body's user_id only as an unverified hint."""

from __future__ import annotations

import json
from types import SimpleNamespace

import grpc
import pytest
from flask import g

from gateway import access
from gateway.app import close_app, create_app
from gateway.backends import _RETRY_POLICY
from gateway.routes.chat import MAX_MESSAGE_CHARS, MIN_CHAT_DEADLINE_SECONDS, chat_identity
from protos import chatbot_pb2 as pb
from protos import chatbot_pb2_grpc
from services.chatbot.server import STARTING
from services.common.settings import SERVICE_NAMES, Settings
from tests.support import TEST_KEYS, RecordingServicer, assert_problem, free_port, serving, staff

ZH = "我的订单 A1234 到哪了？明天能到吗"


def chat_reply(request: pb.ChatRequest) -> pb.ChatResponse:
    return pb.ChatResponse(
        reply="您的订单 A1234 已发货。", intent=pb.Intent(name="order_status", confidence=0.87),
        entities=[pb.Entity(type="order_id", value="A1234", start=5, end=10),
                  pb.Entity(type="date", value="明天", start=15, end=17, normalized="2026-11-29")],
        handoff=True, handoff_reason="asked for a person", session_id=request.session_id or "s-new",
        language="zh", suggestions=["查看物流", "转人工"], product_ids=["p1001"], message_id=request.message_id,
    )


def parse_reply(request: pb.ParseRequest) -> pb.ParseResponse:
    return pb.ParseResponse(
        intent=pb.Intent(name="order_status", confidence=0.75),
        entities=[pb.Entity(type="order_id", value="A1234", start=5, end=10)], language="zh",
        intent_ranking=[pb.Intent(name="order_status", confidence=0.75), pb.Intent(name="shipping", confidence=0.5)],
    )


class FakeAssistant(RecordingServicer, chatbot_pb2_grpc.AssistantServicer):
    """The fake service (tests.support.RecordingServicer records calls and injects errors)."""

    def Chat(self, request, context):
        return self._handle("Chat", request, context, chat_reply)

    def Parse(self, request, context):
        return self._handle("Parse", request, context, parse_reply)



@pytest.fixture(scope="module")
def server():
    with serving(FakeAssistant(), chatbot_pb2_grpc.add_AssistantServicer_to_server) as fake:
        yield fake


@pytest.fixture
def fake(server):
    return server.reset()


@pytest.fixture
def client(fake):
    ports = {name: free_port() for name in SERVICE_NAMES} | {"chatbot": fake.port}  # nothing listens on the others
    settings = Settings(
        gateway_api_keys=TEST_KEYS,
        redis_url=f"redis://127.0.0.1:{free_port()}/0", kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
        grpc_deadline_seconds=2.0, log_json=False,
        **{name: {"grpc_port": port, "metrics_port": free_port()} for name, port in ports.items()},
    )
    app = create_app(settings)
    yield staff(app.test_client())
    close_app(app)


# ------------------------------------------------------------------ POST /v1/chat


def test_chat_sends_every_field_to_the_assistant(client, fake):
    reply = client.post("/v1/chat", json={"message": ZH, "session_id": "s_42-A", "user_id": "u42", "language": "zh"})
    assert reply.status_code == 200, reply.get_data(as_text=True)
    request = fake.only("Chat")
    assert (request.message, request.session_id, request.user_id, request.language) == (ZH, "s_42-A", "u42", "zh")


def test_chat_without_the_optional_fields_sends_empty_ones(client, fake):
    assert client.post("/v1/chat", json={"message": "hello"}).status_code == 200
    request = fake.only("Chat")
    assert (request.message, request.session_id, request.user_id, request.language) == ("hello", "", "", "")


# ------------------------------------------------------------------ POST /v1/chat: who the shopper is

STAFF_KEY = "a-long-test-key-0123456789"


def gateway_settings(fake, **extra) -> Settings:
    ports = {name: free_port() for name in SERVICE_NAMES} | {"chatbot": fake.port}
    return Settings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
        grpc_deadline_seconds=2.0, log_json=False,
        **{name: {"grpc_port": port, "metrics_port": free_port()} for name, port in ports.items()}, **extra,
    )


def signed_in(shopper: str):
    """The caller the gateway's identification makes of a valid shopper token (gateway/access.py Client)."""
    try:
        return access.Client("127.0.0.1", shopper=shopper)
    except TypeError:  # an access.Client from before the shopper tokens
        return SimpleNamespace(address="127.0.0.1", key=None, shopper=shopper, refused=None)


@pytest.fixture
def anonymous_client(fake):
    app = create_app(gateway_settings(fake))
    yield app.test_client()
    close_app(app)


@pytest.fixture
def shopper_client(fake):
    """A gateway whose every caller is signed in as shopper u1 (set after the real identification)."""
    app = create_app(gateway_settings(fake))
    app.before_request(lambda: setattr(g, "shopai_client", signed_in("u1")))
    yield app.test_client()
    close_app(app)


class RecordingAudit:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, str, str]] = []

    def record(self, key_id: str, method: str, route: str, subject: str) -> None:
        self.records.append((key_id, method, route, subject))


@pytest.fixture
def staff_client(fake):
    """A gateway with a support key and an ingest key, and the audit log it writes staff reads to."""
    keys = f"{STAFF_KEY}-support:support,{STAFF_KEY}-ingest:ingest"
    app = create_app(gateway_settings(fake, env="prod", gateway_api_keys=keys))
    audit = app.extensions["shopai.access"].audit = RecordingAudit()
    yield app.test_client(), audit
    close_app(app)


def test_without_a_token_the_body_user_id_is_only_a_hint(anonymous_client, fake):
    assert anonymous_client.post("/v1/chat", json={"message": "where is my order?", "user_id": "u2"}).status_code == 200
    assert anonymous_client.post("/v1/chat", json={"message": "where is my order?"}).status_code == 200
    assert [(r.user_id, r.user_verified) for _, r, _ in fake.calls] == [("u2", False), ("", False)]


def test_a_signed_in_shopper_is_sent_verified_and_the_body_user_id_is_ignored(shopper_client, fake):
    assert shopper_client.post("/v1/chat", json={"message": "where is my order?", "user_id": "u2"}).status_code == 200
    assert shopper_client.post("/v1/chat", json={"message": "where is my order?"}).status_code == 200
    assert [(r.user_id, r.user_verified) for _, r, _ in fake.calls] == [("u1", True), ("u1", True)]


def test_a_support_key_acts_for_the_shopper_it_names_and_is_audited(staff_client, fake):
    client, audit = staff_client
    reply = client.post("/v1/chat", json={"message": "where is ORD-10001788?", "user_id": "u7"},
                        headers={"X-API-Key": f"{STAFF_KEY}-support"})
    assert reply.status_code == 200, reply.get_data(as_text=True)
    request = fake.only("Chat")
    assert (request.user_id, request.user_verified) == ("u7", True)
    assert [(method, route, subject) for _, method, route, subject in audit.records] == [("POST", "/v1/chat", "u7")]


def test_a_key_without_the_support_role_does_not_vouch_for_a_user_id(staff_client, fake):
    client, audit = staff_client
    reply = client.post("/v1/chat", json={"message": "where is ORD-10001788?", "user_id": "u7"},
                        headers={"X-API-Key": f"{STAFF_KEY}-ingest"})
    assert reply.status_code == 200, reply.get_data(as_text=True)
    request = fake.only("Chat")
    assert (request.user_id, request.user_verified) == ("u7", False) and audit.records == []


def test_a_real_shopper_token_is_sent_as_the_verified_user(fake):
    identity = pytest.importorskip("gateway.identity", reason="shopper tokens not landed yet")
    settings = gateway_settings(fake, gateway_shopper_token_secrets="a-shopper-token-secret-" + "x" * 40)
    token = identity.ShopperTokens(settings).mint("u1").token
    app = create_app(settings)
    try:
        reply = app.test_client().post("/v1/chat", json={"message": "where is my order?", "user_id": "u2"},
                                       headers={"Authorization": f"Bearer {token}"})
    finally:
        close_app(app)
    assert reply.status_code == 200, reply.get_data(as_text=True)
    assert (fake.only("Chat").user_id, fake.only("Chat").user_verified) == ("u1", True)


SUPPORT = SimpleNamespace(key_id="key-1", allows=lambda role: role == "support")
ANALYST = SimpleNamespace(key_id="key-2", allows=lambda role: role == "analyst")


@pytest.mark.parametrize("caller, claimed, expected", [
    pytest.param(None, "u2", ("u2", False), id="nobody-known"),
    pytest.param(SimpleNamespace(key=None, shopper=None), "u2", ("u2", False), id="anonymous"),
    pytest.param(SimpleNamespace(key=None, shopper="u1"), "u2", ("u1", True), id="shopper-token-wins"),
    pytest.param(SimpleNamespace(key=None, shopper="u1"), "", ("u1", True), id="shopper-token"),
    pytest.param(SimpleNamespace(key=SUPPORT, shopper="u1"), "u2", ("u1", True), id="token-and-key"),
    pytest.param(SimpleNamespace(key=SUPPORT, shopper=None), "u2", ("u2", True), id="support-key"),
    pytest.param(SimpleNamespace(key=SUPPORT, shopper=None), "", ("", False), id="support-key-no-user"),
    pytest.param(SimpleNamespace(key=ANALYST, shopper=None), "u2", ("u2", False), id="other-key"),
    pytest.param(SimpleNamespace(key=None), "u2", ("u2", False), id="client-without-shopper-field"),
])
def test_chat_identity(caller, claimed, expected):
    assert chat_identity(caller, claimed) == expected


def test_the_message_is_sent_as_written_so_offsets_match(client, fake):
    message = "  hi\tthere\r\nline two  "
    assert client.post("/v1/chat", json={"message": message}).status_code == 200
    assert fake.only("Chat").message == message


def test_chat_answers_with_the_reply(client):
    reply = client.post("/v1/chat", json={"message": ZH, "session_id": "s1", "message_id": "m-0123456789abcdef"})
    assert reply.status_code == 200 and reply.content_type == "application/json"
    assert reply.json == {
        "reply": "您的订单 A1234 已发货。",
        "intent": {"name": "order_status", "confidence": 0.87},
        "entities": [
            {"type": "order_id", "value": "A1234", "start": 5, "end": 10, "normalized": ""},
            {"type": "date", "value": "明天", "start": 15, "end": 17, "normalized": "2026-11-29"},
        ],
        "handoff": True, "handoff_reason": "asked for a person", "session_id": "s1", "language": "zh",
        "suggestions": ["查看物流", "转人工"], "product_ids": ["p1001"], "relayed_to_agent": False, "handoff_id": "",
        "message_id": "m-0123456789abcdef",
    }
    assert isinstance(reply.json["intent"]["confidence"], float)
    assert "您的订单".encode() in reply.get_data(), "Chinese stays readable, not \\u-escaped"


def test_a_new_conversation_gets_the_id_the_assistant_chose(client):
    assert client.post("/v1/chat", json={"message": "hi"}).json["session_id"] == "s-new"


def test_the_limits_are_inclusive_and_count_characters_not_bytes(client, fake):
    assert client.post("/v1/chat", json={"message": "a" * MAX_MESSAGE_CHARS}).status_code == 200
    assert client.post("/v1/chat", json={"message": "订" * MAX_MESSAGE_CHARS}).status_code == 200
    assert client.post("/v1/chat", json={"message": "x", "session_id": "s" * 128, "user_id": "u" * 128}).status_code == 200
    assert fake.methods() == ["Chat", "Chat", "Chat"]


def test_the_gateway_limit_is_the_assistants_own():
    from services.chatbot.core.nlu import MAX_CHARS

    assert MAX_MESSAGE_CHARS == MAX_CHARS == 2000


BAD_CHAT_BODIES = [
    pytest.param({}, "message", "Field required", id="missing-message"),
    pytest.param({"session_id": "s1"}, "message", "Field required", id="only-session"),
    pytest.param({"message": ""}, "message", "at least 1", id="empty"),
    pytest.param({"message": "   \n\t "}, "message", "whitespace", id="whitespace-only"),
    pytest.param({"message": "a" * 2001}, "message", "2000", id="2001-characters"),
    pytest.param({"message": "订" * 2001}, "message", "2000", id="2001-chinese-characters"),
    pytest.param({"message": "a" * 10_000}, "message", "2000", id="10000-characters"),
    pytest.param({"message": "hi\x00there"}, "message", "U+0000", id="nul"),
    pytest.param({"message": "hi\x1bthere"}, "message", "U+001B", id="escape"),
    pytest.param({"message": "hi\x7f"}, "message", "U+007F", id="delete"),
    pytest.param({"message": "hi\x85"}, "message", "U+0085", id="c1-control"),
    pytest.param({"message": 42}, "message", "string", id="number"),
    pytest.param({"message": ["hi"]}, "message", "string", id="list"),
    pytest.param({"message": None}, "message", "string", id="null"),
    pytest.param({"message": "hi", "session_id": 7}, "session_id", "string", id="numeric-session"),
    pytest.param({"message": "hi", "session_id": "a b"}, "session_id", "pattern", id="session-with-space"),
    pytest.param({"message": "hi", "session_id": "../x"}, "session_id", "pattern", id="session-with-slash"),
    pytest.param({"message": "hi", "session_id": "s" * 129}, "session_id", "128", id="long-session"),
    pytest.param({"message": "hi", "user_id": "u" * 129}, "user_id", "128", id="long-user"),
    pytest.param({"message": "hi", "user_id": "u\x001"}, "user_id", "control", id="user-with-nul"),
    pytest.param({"message": "hi", "user_id": 42}, "user_id", "string", id="numeric-user"),
    pytest.param({"message": "hi", "language": "fr"}, "language", "'en' or 'zh'", id="unknown-language"),
    pytest.param({"message": "hi", "mesage": "typo"}, "mesage", "not permitted", id="unknown-field"),
]


@pytest.mark.parametrize("body, location, reason", BAD_CHAT_BODIES)
def test_bad_chat_bodies_are_400s_that_never_reach_the_assistant(client, fake, body, location, reason):
    problem = assert_problem(client.post("/v1/chat", json=body), 400)
    assert [e["location"] for e in problem["errors"]] == [location]
    assert location in problem["detail"] and reason in problem["detail"], problem["detail"]
    assert fake.calls == []


BAD_RAW_BODIES = [
    pytest.param(b"\xff\xfe\x00\x9c\x01garbage\x00\xc3", "application/json", "not valid JSON", id="binary-garbage"),
    pytest.param(b'{"message": "hi"', "application/json", "not valid JSON", id="truncated-json"),
    pytest.param(b"message=hi", "application/json", "not valid JSON", id="form-as-json"),
    pytest.param(b'{"message": "\xff\xfe"}', "application/json", "not valid JSON", id="invalid-utf8"),
    pytest.param(b"[" * 100_000, "application/json", "nested too deeply", id="deeply-nested"),
    pytest.param(b"", "application/json", "empty", id="empty-body"),
    pytest.param(b'{"message": "hi"}', None, "Content-Type", id="no-content-type"),
    pytest.param(b'{"message": "hi"}', "text/plain", "Content-Type", id="text-plain"),
    pytest.param(b"message=hi", "application/x-www-form-urlencoded", "Content-Type", id="form"),
    pytest.param(b'["hi"]', "application/json", "an array", id="array"),
    pytest.param(b"null", "application/json", "null", id="null"),
    pytest.param(b'"{\\"message\\": \\"hi\\"}"', "application/json", "a string", id="json-in-a-string"),
    pytest.param(b'{"message": "a\\ud800b"}', "application/json", "message", id="lone-surrogate"),
]


@pytest.mark.parametrize("path", ["/v1/chat", "/v1/nlu/parse"])
@pytest.mark.parametrize("data, content_type, reason", BAD_RAW_BODIES)
def test_bodies_that_are_not_json_objects_are_400s_with_a_reason(client, fake, path, data, content_type, reason):
    if b"message" in data and path.endswith("parse"):
        data = data.replace(b"message", b"text")
        reason = reason.replace("message", "text")
    problem = assert_problem(client.post(path, data=data, content_type=content_type), 400)
    assert reason in problem["detail"], problem["detail"]
    assert fake.calls == []


def test_unavailable_is_a_503_naming_the_assistant(client, fake):
    fake.errors["Chat"] = (grpc.StatusCode.UNAVAILABLE, "the assistant is still training its first model")
    problem = assert_problem(client.post("/v1/chat", json={"message": "hi"}), 503)
    assert "chatbot" in problem["detail"] and "training its first model" in problem["detail"]


@pytest.mark.parametrize(("error", "message", "language"), [
    ((grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses; last error: Connection refused"), "hi", "en"),
    ((grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:50052"),
     "我想退货", "zh"),
    ((grpc.StatusCode.UNAVAILABLE, "Socket closed"), "where is my order?", "en"),  # killed during the turn
    ((grpc.StatusCode.UNAVAILABLE, "recvmsg:Connection reset by peer"), "运费怎么算？", "zh"),
    ((grpc.StatusCode.UNAVAILABLE, STARTING), "hello", "en"),  # restarted, loading its models
], ids=["refused-en", "refused-zh", "lost-en", "lost-zh", "starting"])
def test_an_assistant_that_cannot_be_reached_asks_the_shopper_to_send_again(client, fake, error, message, language):
    fake.errors["Chat"] = error
    reply = client.post("/v1/chat", json={"message": message, "session_id": "s1"})
    assert reply.status_code == 200 and reply.headers["X-ShopAI-Degraded"] == "chatbot"
    body = reply.json
    assert body["intent"]["name"] == "assistant_unavailable" and body["language"] == language
    assert body["session_id"] == "s1" and not body["handoff"] and not body["relayed_to_agent"]
    assert ("send it again" in body["reply"]) if language == "en" else ("再发送" in body["reply"])
    # gRPC tried it three times (backends.py), every time as the same message: the id the answer gives back
    assert fake.methods() == ["Chat"] * 3
    assert {request.message_id for _, request, _ in fake.calls} == {body["message_id"]}
    assert len(body["message_id"]) == 32


def test_a_retried_turn_is_sent_with_one_message_id_and_the_services_refusal_stays_a_503(client, fake):
    fake.errors["Chat"] = (grpc.StatusCode.UNAVAILABLE, "the assistant is still training its first model")
    problem = assert_problem(client.post("/v1/chat", json={"message": "hi", "message_id": "m-0123456789abcdef"}), 503)
    assert "training its first model" in problem["detail"]
    assert fake.methods() == ["Chat"] * 3
    assert {request.message_id for _, request, _ in fake.calls} == {"m-0123456789abcdef"}


def test_the_shoppers_message_id_goes_to_the_assistant_and_comes_back(client, fake):
    reply = client.post("/v1/chat", json={"message": "hi", "message_id": "5f0c1d2e-aaaa-4bbb-8ccc-0123456789ab"})
    assert reply.status_code == 200, reply.get_data(as_text=True)
    assert fake.calls[0][1].message_id == "5f0c1d2e-aaaa-4bbb-8ccc-0123456789ab"


@pytest.mark.parametrize("message_id", ["short", "x" * 65, "has space in it 123", "ünïcödé-0123456789"])
def test_a_bad_message_id_is_a_400(client, fake, message_id):
    problem = assert_problem(client.post("/v1/chat", json={"message": "hi", "message_id": message_id}), 400)
    assert "message_id" in json.dumps(problem)
    assert fake.calls == []


def test_a_message_id_used_for_another_message_is_a_409(client, fake):
    fake.errors["Chat"] = (grpc.StatusCode.ALREADY_EXISTS, "this message_id was already sent with another message")
    problem = assert_problem(client.post("/v1/chat", json={"message": "hi", "message_id": "m-0123456789abcdef"}), 409)
    assert "another message" in problem["detail"]


def test_the_services_invalid_argument_is_a_400_with_its_reason(client, fake):
    fake.errors["Chat"] = (grpc.StatusCode.INVALID_ARGUMENT, "message contains control characters")
    problem = assert_problem(client.post("/v1/chat", json={"message": "hi"}), 400)
    assert problem["detail"] == "message contains control characters"


def test_a_slow_assistant_is_a_504(client, fake):
    fake.errors["Chat"] = (grpc.StatusCode.DEADLINE_EXCEEDED, "too slow")
    problem = assert_problem(client.post("/v1/chat", json={"message": "hi"}), 504)
    assert "chatbot" in problem["detail"]


def test_chat_gets_at_least_five_seconds(client, fake):
    assert client.application.config["GRPC_DEADLINE"] < MIN_CHAT_DEADLINE_SECONDS
    assert client.post("/v1/chat", json={"message": "hi"}).status_code == 200
    remaining = fake.calls[0][2]
    assert MIN_CHAT_DEADLINE_SECONDS - 1.0 < remaining < MIN_CHAT_DEADLINE_SECONDS + 0.5  # clocks differ a little


def test_a_longer_gateway_deadline_is_kept(client, fake):
    client.application.config["GRPC_DEADLINE"] = 9.0
    assert client.post("/v1/chat", json={"message": "hi"}).status_code == 200
    assert client.post("/v1/nlu/parse", json={"text": "hi"}).status_code == 200
    assert all(8.0 < remaining < 9.5 for _, _, remaining in fake.calls), fake.calls


# ------------------------------------------------------------------ POST /v1/nlu/parse


def test_parse_sends_the_text_and_language(client, fake):
    reply = client.post("/v1/nlu/parse", json={"text": ZH, "language": "zh"})
    assert reply.status_code == 200, reply.get_data(as_text=True)
    request = fake.only("Parse")
    assert (request.text, request.language) == (ZH, "zh")
    assert MIN_CHAT_DEADLINE_SECONDS - 1.0 < fake.calls[0][2] < MIN_CHAT_DEADLINE_SECONDS + 0.5, \
        "Parse embeds the text too"


def test_parse_answers_with_intent_and_entities_only(client):
    body = client.post("/v1/nlu/parse", json={"text": ZH}).json
    assert body == {
        "intent": {"name": "order_status", "confidence": 0.75},
        "entities": [{"type": "order_id", "value": "A1234", "start": 5, "end": 10, "normalized": ""}],
        "language": "zh",
        "intent_ranking": [{"name": "order_status", "confidence": 0.75}, {"name": "shipping", "confidence": 0.5}],
    }


@pytest.mark.parametrize("body, location, reason", [
    pytest.param({}, "text", "Field required", id="missing"),
    pytest.param({"message": "hi"}, "text", "Field required", id="chat-field"),
    pytest.param({"text": " \u3000 "}, "text", "whitespace", id="ideographic-space-only"),
    pytest.param({"text": "a" * 2001}, "text", "2000", id="2001-characters"),
    pytest.param({"text": "a" * 10_000}, "text", "2000", id="10000-characters"),
    pytest.param({"text": "a\x00"}, "text", "U+0000", id="nul"),
    pytest.param({"text": 3.5}, "text", "string", id="number"),
    pytest.param({"text": "hi", "language": "de"}, "language", "'en' or 'zh'", id="unknown-language"),
])
def test_bad_parse_bodies_are_400s_that_never_reach_the_assistant(client, fake, body, location, reason):
    problem = assert_problem(client.post("/v1/nlu/parse", json=body), 400)
    assert location in [e["location"] for e in problem["errors"]]
    assert reason in problem["detail"], problem["detail"]
    assert fake.calls == []


def test_parse_is_retried_while_the_assistant_is_unavailable(client, fake):
    fake.errors["Parse"] = (grpc.StatusCode.UNAVAILABLE, "the assistant is still training its first model")
    problem = assert_problem(client.post("/v1/nlu/parse", json={"text": "hi"}), 503)
    assert "chatbot" in problem["detail"]
    assert fake.methods() == ["Parse"] * 3, "an idempotent read: gRPC retries it (maxAttempts 3)"


def test_parse_invalid_argument_is_a_400(client, fake):
    fake.errors["Parse"] = (grpc.StatusCode.INVALID_ARGUMENT, "message must not be empty")
    assert assert_problem(client.post("/v1/nlu/parse", json={"text": "hi"}), 400)["detail"] == "message must not be empty"
    assert fake.methods() == ["Parse"], "INVALID_ARGUMENT is not retried"


def test_other_methods_are_405_problems(client, fake):
    assert_problem(client.get("/v1/chat"), 405)
    assert_problem(client.put("/v1/nlu/parse", json={"text": "hi"}), 405)
    assert fake.calls == []


# ------------------------------------------------------------------ retries and the spec


def test_the_retry_policy_retries_parse_and_chat_which_carries_a_message_id():
    names = [(n["service"], n["method"]) for config in _RETRY_POLICY["methodConfig"] for n in config["name"]]
    assert ("shopai.chatbot.v1.Assistant", "Parse") in names
    assert ("shopai.chatbot.v1.Assistant", "Chat") in names  # the assistant answers a retry from memory
    assert ("shopai.chatbot.v1.Assistant", "ReplyHandoff") not in names  # a reply twice is two replies
    assert {"service": "shopai.chatbot.v1.Assistant"} not in [n for c in _RETRY_POLICY["methodConfig"] for n in c["name"]]
    assert json.loads(json.dumps(_RETRY_POLICY)) == _RETRY_POLICY


def test_the_assistant_routes_are_in_the_spec(client):
    spec = client.get("/openapi.json").json
    schemas = spec["components"]["schemas"]

    def body_schema(path: str) -> dict:
        operation = spec["paths"][path]["post"]
        assert operation["tags"] == ["assistant"]
        assert {"200", "400", "503", "504"} <= set(operation["responses"])
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        return schemas[ref.rsplit("/", 1)[1]]

    chat = body_schema("/v1/chat")
    assert chat["required"] == ["message"]
    assert set(chat["properties"]) == {"message", "session_id", "user_id", "language", "message_id"}
    assert chat["properties"]["message"]["maxLength"] == 2000
    parse = body_schema("/v1/nlu/parse")
    assert parse["required"] == ["text"] and set(parse["properties"]) == {"text", "language"}
    reply_ref = spec["paths"]["/v1/chat"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert set(schemas[reply_ref.rsplit("/", 1)[1]]["properties"]) == {
        "reply", "intent", "entities", "handoff", "handoff_reason", "session_id", "language", "suggestions",
        "product_ids", "relayed_to_agent", "handoff_id", "message_id"}
    assert "assistant" in {t["name"] for t in spec["tags"]}
