"""The gateway's support inbox (/v1/support/handoffs...) and the shopper's conversation feed
(GET /v1/chat/conversations/{session_id}/messages) against a fake Assistant gRPC service (a real server, in
process): the agent is the calling key, the routes need the support role, bad input is a 400 that never
reaches the service, NOT_FOUND and ABORTED become 404 and 409 problems with the service's reason, and the
feed is asked for with who the caller is (a shopper token's subject, verified; a support key as staff)."""

from __future__ import annotations

import grpc
import pytest
from flask import g

from gateway.app import close_app, create_app
from protos import chatbot_pb2 as pb
from protos import chatbot_pb2_grpc
from services.common.settings import SERVICE_NAMES, Settings
from tests.support import RecordingServicer, assert_problem, free_port, key_id_of, serving
from tests.unit.test_gateway_chat import signed_in

SUPPORT_KEY = "a-long-support-key-0123456789"
ANALYST_KEY = "a-long-analyst-key-0123456789"
HID = "5b0e7c1e-6c3a-4c1e-9f0e-2f8d7a1b9c01"


def handoff(request: pb.HandoffRequest) -> pb.Handoff:
    return pb.Handoff(
        handoff_id=request.handoff_id or HID, session_id="s1", user_id="u7",
        state="claimed" if request.agent else "open", created_at="2026-12-01T09:00:00Z",
        reason="asked for a person", last_intent="human_agent", language="en",
        transcript=[pb.Turn(role="user", text="a person please, [phone]"), pb.Turn(role="assistant", text="OK")],
        claimed_by=request.agent, claimed_at="2026-12-01T09:01:00Z" if request.agent else "",
        message_count=1, messages=[pb.HandoffMessage(id="m1", role="user", text="hello?", at="2026-12-01T09:00:30Z")],
    )


class FakeAssistant(RecordingServicer, chatbot_pb2_grpc.AssistantServicer):
    def ListHandoffs(self, request, context):
        return self._handle("ListHandoffs", request, context,
                            lambda r: pb.ListHandoffsResponse(handoffs=[handoff(pb.HandoffRequest())]))

    def GetHandoff(self, request, context):
        return self._handle("GetHandoff", request, context, handoff)

    def ClaimHandoff(self, request, context):
        return self._handle("ClaimHandoff", request, context, handoff)

    def ReplyHandoff(self, request, context):
        return self._handle("ReplyHandoff", request, context, handoff)

    def CloseHandoff(self, request, context):
        return self._handle("CloseHandoff", request, context, handoff)

    def ConversationMessages(self, request, context):
        return self._handle("ConversationMessages", request, context, lambda r: pb.ConversationMessagesResponse(
            session_id=r.session_id, next=r.after + 1, handoff_id=HID, handoff_state="claimed",
            entries=[pb.ConversationEntry(seq=r.after, kind="message", role="agent", text="Hi, I'm Ana.",
                                          at="2026-12-01T09:02:00Z", handoff_id=HID)]))


@pytest.fixture(scope="module")
def server():
    with serving(FakeAssistant(), chatbot_pb2_grpc.add_AssistantServicer_to_server) as fake:
        yield fake


@pytest.fixture
def fake(server):
    return server.reset()


@pytest.fixture
def app(fake):
    ports = {name: free_port() for name in SERVICE_NAMES} | {"chatbot": fake.port}
    settings = Settings(
        gateway_api_keys=f"{SUPPORT_KEY}:support,{ANALYST_KEY}:analyst", env="prod",
        redis_url=f"redis://127.0.0.1:{free_port()}/0", kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
        grpc_deadline_seconds=2.0, log_json=False,
        **{name: {"grpc_port": port, "metrics_port": free_port()} for name, port in ports.items()},
    )
    app = create_app(settings)
    yield app
    close_app(app)


@pytest.fixture
def agent(app):
    client = app.test_client()
    client.environ_base["HTTP_X_API_KEY"] = SUPPORT_KEY
    return client


# ------------------------------------------------------------------ the inbox


def test_the_inbox_lists_with_the_state_filter_and_the_transcript(agent, fake):
    reply = agent.get("/v1/support/handoffs?state=open&limit=10")
    assert reply.status_code == 200, reply.get_data(as_text=True)
    request = fake.only("ListHandoffs")
    assert (request.state, request.limit) == ("open", 10)
    (item,) = reply.json["handoffs"]
    assert item["handoff_id"] == HID and item["last_intent"] == "human_agent" and item["state"] == "open"
    assert item["transcript"][0] == {"role": "user", "text": "a person please, [phone]"}
    assert item["claimed_at"] is None and item["closed_at"] is None


def test_without_a_filter_every_state_is_asked_for(agent, fake):
    assert agent.get("/v1/support/handoffs").status_code == 200
    assert (fake.only("ListHandoffs").state, fake.only("ListHandoffs").limit) == ("", 50)


@pytest.mark.parametrize("query", ["state=pending", "limit=0", "limit=501", "limit=x"])
def test_a_bad_filter_is_a_400_that_never_reaches_the_assistant(agent, fake, query):
    assert_problem(agent.get(f"/v1/support/handoffs?{query}"), 400)
    assert fake.calls == []


def test_one_handoff_with_its_messages(agent, fake):
    reply = agent.get(f"/v1/support/handoffs/{HID}")
    assert reply.status_code == 200 and fake.only("GetHandoff").handoff_id == HID
    assert reply.json["messages"] == [{"id": "m1", "role": "user", "text": "hello?", "agent": "",
                                       "at": "2026-12-01T09:00:30Z"}]


def test_claim_reply_and_close_act_as_the_calling_key(agent, fake):
    me = key_id_of(SUPPORT_KEY)
    claimed = agent.post(f"/v1/support/handoffs/{HID}/claim")
    assert claimed.status_code == 200 and claimed.json["claimed_by"] == me
    replied = agent.post(f"/v1/support/handoffs/{HID}/messages", json={"text": "Hi, I'm Ana. Looking now."})
    assert replied.status_code == 201, replied.get_data(as_text=True)
    assert agent.post(f"/v1/support/handoffs/{HID}/close").status_code == 200
    assert fake.methods() == ["ClaimHandoff", "ReplyHandoff", "CloseHandoff"]
    assert [(r.handoff_id, r.agent, r.text) for _, r, _ in fake.calls] == [
        (HID, me, ""), (HID, me, "Hi, I'm Ana. Looking now."), (HID, me, "")]


@pytest.mark.parametrize("body", [{}, {"text": ""}, {"text": "   "}, {"text": "x" * 2001}, {"text": "a\x00b"},
                                  {"text": "hi", "agent": "someone-else"}, ["hi"]])
def test_a_bad_reply_is_a_400_that_never_reaches_the_assistant(agent, fake, body):
    assert_problem(agent.post(f"/v1/support/handoffs/{HID}/messages", json=body), 400)
    assert fake.calls == []


def test_a_bad_handoff_id_is_a_400(agent, fake):
    assert_problem(agent.post("/v1/support/handoffs/a%20b/claim"), 400)
    assert fake.calls == []


@pytest.mark.parametrize(("code", "status"), [(grpc.StatusCode.NOT_FOUND, 404), (grpc.StatusCode.ABORTED, 409)])
def test_unknown_and_conflicting_actions_are_404_and_409_with_the_reason(agent, fake, code, status):
    reason = f"hand-off {HID!r}: the hand-off is closed (by key-1234abcd)"
    for method in ("ClaimHandoff", "ReplyHandoff", "CloseHandoff"):
        fake.errors[method] = (code, reason)
    for path, body in (("claim", None), ("messages", {"text": "hello"}), ("close", None)):
        problem = assert_problem(agent.post(f"/v1/support/handoffs/{HID}/{path}", json=body), status)
        assert "closed" in problem["detail"], problem


def test_the_inbox_needs_the_support_role(app, fake):
    analyst = app.test_client()
    analyst.environ_base["HTTP_X_API_KEY"] = ANALYST_KEY
    assert_problem(analyst.get("/v1/support/handoffs"), 403)
    assert_problem(app.test_client().post(f"/v1/support/handoffs/{HID}/claim"), 401)
    assert fake.calls == []


# ------------------------------------------------------------------ the shopper's feed


def test_the_shopper_reads_the_feed_with_their_verified_id(app, fake):
    app.before_request(lambda: setattr(g, "shopai_client", signed_in("u7")))
    reply = app.test_client().get("/v1/chat/conversations/s1/messages?after=3")
    assert reply.status_code == 200, reply.get_data(as_text=True)
    request = fake.only("ConversationMessages")
    assert (request.session_id, request.user_id, request.user_verified, request.staff, request.after) == (
        "s1", "u7", True, False, 3)
    assert reply.json["next"] == 4 and reply.json["handoff_state"] == "claimed"
    assert reply.json["entries"][0] == {"seq": 3, "kind": "message", "role": "agent", "text": "Hi, I'm Ana.",
                                        "at": "2026-12-01T09:02:00Z", "handoff_id": HID}


def test_a_visitor_without_a_token_asks_as_nobody_and_support_as_staff(app, agent, fake):
    assert app.test_client().get("/v1/chat/conversations/s1/messages").status_code == 200
    assert agent.get("/v1/chat/conversations/s1/messages").status_code == 200
    assert [(r.user_id, r.user_verified, r.staff, r.after) for _, r, _ in fake.calls] == [
        ("", False, False, 0), ("", False, True, 0)]


def test_someone_elses_conversation_is_a_404(app, fake):
    fake.errors["ConversationMessages"] = (grpc.StatusCode.NOT_FOUND,
                                           "no hand-off in this conversation, or not one this caller may see")
    problem = assert_problem(app.test_client().get("/v1/chat/conversations/s1/messages"), 404)
    assert "not one this caller may see" in problem["detail"]


@pytest.mark.parametrize("path", ["/v1/chat/conversations/s1/messages?after=-1",
                                  "/v1/chat/conversations/s%201/messages"])
def test_a_bad_cursor_or_session_is_a_400(app, fake, path):
    assert_problem(app.test_client().get(path), 400)
    assert fake.calls == []


def test_the_routes_are_in_the_spec_with_their_problems(app):
    paths = app.api_doc["paths"]
    assert {"404", "409"} <= set(paths["/v1/support/handoffs/{handoff_id}/claim"]["post"]["responses"])
    assert "201" in paths["/v1/support/handoffs/{handoff_id}/messages"]["post"]["responses"]
    assert "404" in paths["/v1/chat/conversations/{session_id}/messages"]["get"]["responses"]
