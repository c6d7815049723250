"""Hand-offs to people: the pure state machine (open -> claimed -> closed), the handoff.* events' validation,
the inbox the assistant's projection rebuilds from handoffs.v1 in the real Redis (exactly once, the first
claim in the log wins, a message after the close changes nothing, erasure takes the shopper's hand-offs), and
the servicer's side: a conversation a person owns is relayed, not answered, and only its own shopper reads
its feed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import grpc
import pytest

from protos import chatbot_pb2 as pb
from services.chatbot.consumer import ChatbotProjection
from services.chatbot.core import handoff as H
from services.chatbot.handoffs import HandoffDesk, HandoffRefused, HandoffStore
from services.chatbot.server import STARTING, AssistantServicer
from services.chatbot.store import ChatbotStore
from services.common import topics
from services.common.events import InvalidEvent, new_event, parse_event
from services.common.projection import Ops, RedisApplier

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)
SESSION = "s-handoff-1"
TRANSCRIPT = [{"role": "user", "text": "I need a person, call me on [phone]"},
              {"role": "assistant", "text": "I'm handing you to a colleague."}]


def _record(state: str = H.OPEN, holder: str = "") -> dict:
    record = H.opened("h1", {"session_id": SESSION, "user_id": "u7", "reason": "asked for a person",
                             "intent": "human_agent", "transcript": TRANSCRIPT}, 1.0)
    return {**record, "state": state, "claimed_by": holder}


# ------------------------------------------------------------------ the pure state machine


def test_an_open_handoff_is_claimed_then_closed():
    record = _record()
    assert record["state"] == H.OPEN and record["transcript"][0]["text"].endswith("[phone]")
    claim = H.step(record, "claimed", "agent-a", at=2.0)
    assert claim.allowed and claim.changes == {"state": H.CLAIMED, "claimed_by": "agent-a", "claimed_at": 2.0,
                                               "updated_at": 2.0}
    record.update(claim.changes)
    assert H.step(record, "claimed", "agent-a", at=3.0).changes == {}, "claiming one's own claim changes nothing"
    close = H.step(record, "closed", "agent-a", at=4.0)
    assert close.allowed and close.changes["state"] == H.CLOSED and close.changes["closed_by"] == "agent-a"


def test_another_agents_claim_reply_and_close_are_refused():
    record = _record(H.CLAIMED, "agent-a")
    for action in ("claimed", "message", "closed"):
        outcome = H.step(record, action, "agent-b")
        assert not outcome.allowed and not outcome.not_found and "agent-a" in outcome.refused, action
    assert H.step(record, "message", role="user").allowed, "the shopper still writes into a claimed hand-off"


def test_a_reply_claims_an_open_handoff():
    outcome = H.step(_record(), "message", "agent-b", at=5.0)
    assert outcome.allowed and outcome.changes["state"] == H.CLAIMED and outcome.changes["claimed_by"] == "agent-b"


def test_nothing_but_reading_happens_to_a_closed_or_unknown_handoff():
    closed = _record(H.CLOSED, "agent-a")
    for action, role in (("claimed", "agent"), ("message", "agent"), ("message", "user"), ("closed", "agent")):
        outcome = H.step(closed, action, "agent-a", role)
        assert not outcome.allowed and "closed" in outcome.refused and not outcome.not_found
    unknown = H.step(None, "message", "agent-a")
    assert not unknown.allowed and unknown.not_found
    assert not H.step(_record(), "claimed", "").allowed, "an agent is required"


# ------------------------------------------------------------------ the events


def test_handoff_events_are_validated_and_routed_by_conversation():
    claimed = new_event("handoff.claimed", {"session_id": SESSION, "handoff_id": "h1", "agent": "key-a"})
    assert claimed.topic == topics.HANDOFFS and claimed.key == SESSION
    requested = new_event("handoff.requested", {"session_id": SESSION, "kind": "handoff", "transcript": TRANSCRIPT,
                                                "reason": "asked for a person", "intent": "human_agent",
                                                "language": "en", "user_id": ""})
    assert requested.payload["transcript"] == TRANSCRIPT
    with pytest.raises(InvalidEvent, match="handoff_id"):
        new_event("handoff.closed", {"session_id": SESSION, "agent": "key-a"})
    with pytest.raises(InvalidEvent, match="role must be one of user, agent"):
        new_event("handoff.message", {"session_id": SESSION, "handoff_id": "h1", "role": "bot", "text": "hi"})
    with pytest.raises(InvalidEvent, match="agent"):
        new_event("handoff.message", {"session_id": SESSION, "handoff_id": "h1", "role": "agent", "text": "hi"})
    with pytest.raises(InvalidEvent, match="payload"):
        parse_event({**claimed.to_dict(), "payload": {**claimed.payload, "colour": "red"}})


# ------------------------------------------------------------------ the projection (real Redis)


def _project(redis_client, events, batches: int = 1) -> None:
    """Apply ``events`` as the consumer does, in ``batches`` consecutive batches."""
    projection, applier = ChatbotProjection(redis_client), RedisApplier(redis_client, "chatbot", 3600)
    size = max(1, -(-len(events) // batches))
    for start in range(0, len(events), size):
        items, batch_state = [], {}
        for event in events[start:start + size]:
            ops = Ops(batch_state)
            projection.apply(event, ops)
            items.append((event.event_id, ops.commands))
        applier.apply(items)


def _conversation(user: str = "u7", start: datetime | None = None) -> list:
    at = iter((start or T0) + timedelta(minutes=i) for i in range(100))
    requested = new_event("handoff.requested", {"session_id": SESSION, "kind": "handoff", "transcript": TRANSCRIPT,
                                                "reason": "asked for a person", "intent": "human_agent",
                                                "language": "en", "user_id": user}, occurred_at=next(at))
    hid = requested.event_id

    def event(kind: str, **payload):
        return new_event(f"handoff.{kind}", {"session_id": SESSION, "handoff_id": hid, "user_id": user, **payload},
                         occurred_at=next(at))

    return [requested,
            event("message", role="user", text="are you there?"),
            event("claimed", agent="agent-a"),
            event("claimed", agent="agent-b"),  # lost the race: refused
            event("message", role="agent", agent="agent-a", text="Yes, looking at your order now."),
            event("closed", agent="agent-a"),
            event("message", role="agent", agent="agent-a", text="one more thing"),  # after the close: refused
            ]


@pytest.mark.integration
def test_the_inbox_is_rebuilt_from_the_log_the_same_way(redis_client):
    events = _conversation()
    _project(redis_client, events)
    store = HandoffStore(redis_client)
    hid = events[0].event_id

    def snapshot():
        record = store.handoff(hid)
        return record, store.messages(hid), store.feed(SESSION), store.inbox()

    record, messages, feed, inbox = snapshot()
    assert record["state"] == H.CLOSED and record["claimed_by"] == "agent-a" and record["closed_by"] == "agent-a"
    assert record["intent"] == "human_agent" and record["transcript"] == TRANSCRIPT and record["messages"] == 2
    assert [(m["role"], m["text"]) for m in messages] == [("user", "are you there?"),
                                                          ("agent", "Yes, looking at your order now.")]
    assert [e["kind"] for e in feed] == ["opened", "message", "claimed", "message", "closed"]
    assert [e["seq"] for e in store.feed(SESSION, 3)] == [3, 4]
    assert "agent-a" not in str(feed), "the shopper's feed does not name staff keys"
    assert "agent-a" in store.refused(events[3].event_id) and "closed" in store.refused(events[6].event_id)
    assert [r["handoff_id"] for r in inbox] == [hid] and store.inbox(H.OPEN) == []
    assert store.current(SESSION)["handoff_id"] == hid

    _project(redis_client, events)  # delivered again: nothing changes
    assert snapshot() == (record, messages, feed, inbox)
    for name in redis_client.keys("shopai:chat:*"):
        redis_client.delete(name)
    for name in redis_client.keys("shopai:dedup:*"):
        redis_client.delete(name)
    _project(redis_client, events, batches=len(events))  # replayed from the topic, one event a batch
    assert snapshot() == (record, messages, feed, inbox)


@pytest.mark.integration
def test_the_inbox_is_newest_first_and_filters_by_state(redis_client):
    # u2 asked an hour after u1 (the same instant would leave the order to the random ids).
    first, second = _conversation("u1")[:1], _conversation("u2", start=T0 + timedelta(hours=1))[:3]
    _project(redis_client, first + second)
    store = HandoffStore(redis_client)
    assert [r["user_id"] for r in store.inbox()] == ["u2", "u1"]
    assert [r["user_id"] for r in store.inbox(H.OPEN)] == ["u1"]
    assert [r["user_id"] for r in store.inbox(H.CLAIMED)] == ["u2"]
    assert len(store.inbox(limit=1)) == 1


@pytest.mark.integration
def test_an_erased_shopper_takes_their_handoffs_along(redis_client):
    events = _conversation("u9")
    _project(redis_client, events[:5])
    _project(redis_client, [new_event("user.erased", {"user_id": "u9"})])
    store = HandoffStore(redis_client)
    hid = events[0].event_id
    assert store.handoff(hid) is None and store.messages(hid) == [] and store.feed(SESSION) == []
    assert store.inbox() == [] and store.current(SESSION) is None
    _project(redis_client, events[5:])  # the erased shopper's later events: no-ops
    assert store.handoff(hid) is None and store.feed(SESSION) == []


@pytest.mark.integration
def test_the_desk_publishes_waits_for_the_projection_and_tells_why_it_refused(redis_client):
    events = _conversation()[:1]
    _project(redis_client, events)
    hid = events[0].event_id
    published = []

    def publish(topic: str, key: str, envelope: dict) -> None:  # the consumer applies it at once
        published.append((topic, key, envelope["type"]))
        _project(redis_client, [parse_event(envelope)])

    desk = HandoffDesk(HandoffStore(redis_client), publish, wait_seconds=5)
    assert desk.act("claimed", hid, "agent-a")["claimed_by"] == "agent-a"
    assert desk.act("message", hid, "agent-a", "hello")["messages"] == 1
    with pytest.raises(HandoffRefused, match="claimed by another agent") as refused:
        desk.act("message", hid, "agent-b", "me too")
    assert not refused.value.not_found
    desk.relay(HandoffStore(redis_client).handoff(hid), "my e-mail is li.wei@example.com")
    assert HandoffStore(redis_client).messages(hid)[-1]["text"] == "my e-mail is [email]"
    assert desk.act("closed", hid, "agent-a")["state"] == H.CLOSED
    with pytest.raises(HandoffRefused, match="closed"):
        desk.act("message", hid, "agent-a", "bye")
    with pytest.raises(HandoffRefused) as unknown:
        desk.act("claimed", "no-such-id", "agent-a")
    assert unknown.value.not_found
    assert published == [(topics.HANDOFFS, SESSION, f"handoff.{kind}")
                         for kind in ("claimed", "message", "message", "closed")]


# ------------------------------------------------------------------ the servicer: relay and the shopper's feed


class Aborted(Exception):
    pass


class Context:
    """What the servicer needs of a gRPC context: abort raises."""

    def abort(self, code, details):
        raise Aborted(code, details)


def _servicer(redis_client):
    """The assistant without its models (a relayed message never reaches them: asking them aborts UNAVAILABLE),
    publishing straight into the projection as the consumer would."""
    published = []

    def publish(topic: str, key: str, envelope: dict) -> None:
        published.append(envelope)
        _project(redis_client, [parse_event(envelope)])

    servicer = AssistantServicer(ChatbotStore(redis_client), None, SimpleNamespace(model=None), None, None, publish)
    return servicer, published


@pytest.mark.integration
def test_a_conversation_a_person_owns_is_relayed_not_answered(redis_client):
    servicer, published = _servicer(redis_client)
    store = servicer.store
    # The assistant has just handed the conversation over; the projection has not seen the request yet.
    store.save_session(SESSION, {"language": "en", "turns": [], "handoff_id": "h-pending", "handoff_user": "u7"})
    turn = servicer.Chat(pb.ChatRequest(session_id=SESSION, message="my phone is 13812345678", user_id="u7",
                                        user_verified=True), Context())
    assert turn.relayed_to_agent and turn.reply == "" and turn.handoff_id == "h-pending"
    assert published[-1]["type"] == "handoff.message" and published[-1]["payload"]["text"] == "my phone is [phone]"
    assert store.load_session(SESSION)["turns"][-1] == {"role": "user", "text": "my phone is 13812345678"}

    events = _conversation()[:3]  # requested, a message, claimed by agent-a
    _project(redis_client, events)
    store.save_session(SESSION, {"language": "en", "turns": []})  # the dialogue state expired: the inbox decides
    again = servicer.Chat(pb.ChatRequest(session_id=SESSION, message="hello?", user_id="u7", user_verified=True),
                          Context())
    assert again.relayed_to_agent and again.handoff_id == events[0].event_id
    with pytest.raises(Aborted) as bot:  # someone else continuing the session id: the bot (here: no model)
        servicer.Chat(pb.ChatRequest(session_id=SESSION, message="hello?", user_id="u8", user_verified=True),
                      Context())
    assert bot.value.args[0] == grpc.StatusCode.UNAVAILABLE

    _project(redis_client, [new_event("handoff.closed", {"session_id": SESSION, "handoff_id": events[0].event_id,
                                                         "agent": "agent-a", "user_id": "u7"})])
    with pytest.raises(Aborted):  # closed: the assistant answers again
        servicer.Chat(pb.ChatRequest(session_id=SESSION, message="hello?", user_id="u7", user_verified=True),
                      Context())


@pytest.mark.integration
def test_only_the_conversations_own_shopper_reads_its_feed(redis_client):
    servicer, _ = _servicer(redis_client)
    _project(redis_client, _conversation("u7")[:5])

    def feed(**who):
        return servicer.ConversationMessages(pb.ConversationMessagesRequest(session_id=SESSION, **who), Context())

    mine = feed(user_id="u7", user_verified=True, after=1)
    assert [(e.seq, e.kind, e.role) for e in mine.entries] == [(1, "message", "user"), (2, "claimed", ""),
                                                             (3, "message", "agent")]
    assert mine.next == 4 and mine.handoff_state == "claimed"
    assert feed(staff=True).next == 4
    for stranger in ({"user_id": "u8", "user_verified": True}, {"user_id": "u7"}, {}):
        with pytest.raises(Aborted) as refused:
            feed(**stranger)
        assert refused.value.args[0] == grpc.StatusCode.NOT_FOUND
    with pytest.raises(Aborted) as none:
        servicer.ConversationMessages(pb.ConversationMessagesRequest(session_id="never-handed-over"), Context())
    assert none.value.args == refused.value.args, "no hand-off reads exactly like not yours"


@pytest.mark.integration
def test_a_conversation_nobody_signed_in_to_is_read_with_its_session_id(redis_client):
    servicer, _ = _servicer(redis_client)
    _project(redis_client, _conversation("")[:5])
    answer = servicer.ConversationMessages(pb.ConversationMessagesRequest(session_id=SESSION), Context())
    assert [e.text for e in answer.entries if e.role == "agent"] == ["Yes, looking at your order now."]


@pytest.mark.integration
def test_a_message_while_the_encoders_load_is_refused_at_once_and_nothing_of_it_is_kept(redis_client):
    """Just restarted, the assistant has its model but not yet its encoders (seconds of loading): a message is
    refused with UNAVAILABLE "starting" (the gateway asks the shopper to send it again) instead of waiting past
    the deadline, and the conversation holds nothing of it."""
    store = ChatbotStore(redis_client)
    servicer = AssistantServicer(store, None, SimpleNamespace(model=object()), None, None, lambda *_: None,
                                 warm=lambda: False)
    with pytest.raises(Aborted) as refused:
        servicer.Chat(pb.ChatRequest(session_id=SESSION, message="where is my order?",
                                     message_id="m-0123456789abcdef"), Context())
    assert refused.value.args == (grpc.StatusCode.UNAVAILABLE, STARTING)
    assert store.load_session(SESSION) is None and store.remembered_turn(SESSION, "m-0123456789abcdef") is None
