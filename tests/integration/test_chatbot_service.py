"""The assistant as a shopper meets it: real orders and products through the broker, the service's
projection in the real Redis, conversations over REST (orders only for the shopper whose signed token is
sent), hand-offs on handoffs.v1 with personal data masked, and a person taking a conversation over from the
support inbox and giving it back."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
from pydantic import SecretStr

from gateway.app import close_app, create_app
from gateway.identity import ShopperTokens
from services.chatbot.store import ChatbotKeys as K
from services.chatbot.store import ChatbotStore
from services.common import topics
from services.common.bus import EventPublisher
from services.common.events import new_event
from services.common.settings import Settings
from tests.integration.test_vertical_slice import read_topic
from tests.support import TEST_KEYS, Broker, ServiceProcess, key_id_of, wait_for

pytestmark = pytest.mark.integration

ORDER = "ORD-20481234"
PRODUCT = {"product_id": "p00001", "title": "Nordwind Slim-fit Red Cotton T-shirt", "title_zh": "Nordwind 修身红色纯棉T恤",
           "category": "t-shirts", "brand": "Nordwind", "price": 129.0, "currency": "CNY",
           "attributes": {"colour": "red", "colour_zh": "红色", "material": "cotton", "material_zh": "纯棉",
                          "size": "S,M,L,XL"}, "tags": ["clothing", "t-shirts"]}
TOKEN_SECRET = "an-integration-test-shopper-token-secret-0123456789"
AGENT_A, AGENT_B = "support-agent-a-key-0123456789", "support-agent-b-key-0123456789"


@pytest.fixture(scope="module")
def assistant(chatbot_model_dir, redis_url, tmp_path_factory):
    """One assistant for the whole module, on a broker of its own and a Redis database flushed before and
    after: starting one takes half a minute on two busy cores. Each test keeps to conversations of its own
    (and reads only its own hand-offs), so the order the tests run in does not matter."""
    root, _, _ = chatbot_model_dir
    workdir = tmp_path_factory.mktemp("assistant")
    broker = Broker()
    store = redis.Redis.from_url(redis_url, decode_responses=True)
    store.flushdb()
    settings = Settings(kafka_bootstrap_servers=broker.bootstrap, redis_url=redis_url, data_dir=workdir / "data",
                        log_json=False, gateway_api_keys=TEST_KEYS)
    shutil.copytree(root / "models", settings.data_dir / "models")
    service = ServiceProcess("chatbot", settings, workdir, SHOPAI_EMBEDDING_CACHE_DIR=str(root / "cache"))
    publisher = None
    app = None
    try:
        service.wait_serving()
        settings.chatbot.grpc_port = service.grpc_port
        publisher = EventPublisher(settings)
        line = {"product_id": "p00001", "quantity": 1, "unit_price": 129.0}
        events = [new_event("product.upserted", PRODUCT)]
        for day, action in ((8, "created"), (8, "paid"), (9, "shipped"), (12, "delivered")):
            payload = {"order_id": ORDER, "user_id": "u7", "lines": [line], "total": 129.0, "currency": "CNY"}
            if action == "shipped":
                payload.update(carrier="SF Express", tracking_no="SF1234567890", expected_delivery="2026-11-12")
            when = datetime.now(UTC) - timedelta(days=20 - day)
            events.append(new_event(f"order.{action}", payload, occurred_at=when))
        publisher.publish(events)
        wait_for(lambda: store.hget(K.order(ORDER), "status") == "delivered", 30, what="the order projected")
        gateway_settings = settings.model_copy(update={"gateway_shopper_token_secrets": SecretStr(TOKEN_SECRET)})
        app = create_app(gateway_settings)
        yield app.test_client(), gateway_settings, publisher
    finally:
        if app is not None:
            close_app(app)
        if publisher is not None:
            publisher.close()
        service.stop()
        broker.stop()
        store.flushdb()
        store.close()


@pytest.fixture
def redis_client(assistant, redis_url):
    """The assistant's Redis, not flushed around each test (the module's assistant lives in it)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def handoff_events(settings, session_id: str, expect: int, timeout: float = 20.0) -> list[dict]:
    """Every event on handoffs.v1 of one conversation (the module's other tests write there too), once at least
    ``expect`` are there (or ``timeout`` passed); each read takes the whole topic, until 3 s pass with nothing."""
    deadline = time.monotonic() + timeout
    while True:
        events = [e for e in read_topic(settings.kafka_bootstrap_servers, topics.HANDOFFS, expect=100_000, timeout=3)
                  if e["payload"].get("session_id") == session_id]
        if len(events) >= expect or time.monotonic() > deadline:
            return events


def as_shopper(client, shopper: str) -> dict:
    """The headers of ``shopper``'s requests: their token, minted as the shop's backend would ("" nobody's)."""
    if not shopper:
        return {}
    token = ShopperTokens(client.application.extensions["shopai.settings"]).mint(shopper).token
    return {"Authorization": f"Bearer {token}"}


def chat(client, message: str, session_id: str = "", shopper: str = "", **extra) -> dict:
    """One turn; ``shopper`` signs it with that shopper's token (minted as the shop's backend would)."""
    headers = as_shopper(client, shopper)
    reply = client.post("/v1/chat", json={"message": message, "session_id": session_id, **extra}, headers=headers)
    assert reply.status_code == 200, reply.json
    return reply.json


def test_a_return_conversation_grounded_in_the_real_order(assistant):
    client, _, _ = assistant
    first = chat(client, "How do I return an item?", shopper="u7")
    assert first["intent"]["name"] == "return_request" and first["language"] == "en"
    assert ORDER in first["reply"] and "Nordwind Slim-fit Red Cotton T-shirt" in first["reply"], first["reply"]
    assert "30-day return window" in first["reply"]  # u7's only order: no need to ask which
    second = chat(client, "can I still return ord-20481234?", first["session_id"], shopper="u7")
    assert second["entities"][0]["type"] == "order_id" and second["entities"][0]["normalized"] == ORDER
    assert ORDER in second["reply"] and "30-day return window" in second["reply"], second["reply"]

    status = chat(client, "我的订单ORD-20481234到哪了？", shopper="u7", user_id="u8")
    assert status["language"] == "zh" and "已于" in status["reply"] and "签收" in status["reply"]
    unknown = chat(client, "where is my order ORD-99999999?", shopper="u7")
    assert "couldn't find an order ORD-99999999" in unknown["reply"]
    assert "delivered" not in unknown["reply"] and "shipped" not in unknown["reply"]


def test_orders_need_the_owners_token(assistant, redis_client):
    client, _, _ = assistant
    signed_in = chat(client, "hello", shopper="u7")
    anonymous = chat(client, "How do I return an item?")
    assert "My orders" in anonymous["reply"] and "please sign in" in anonymous["reply"], anonymous["reply"]
    for body in ({}, {"user_id": "u7"}):  # nobody, or a claimed user id without its token
        turn = chat(client, "我的订单ORD-20481234到哪了？", anonymous["session_id"], **body)
        assert "请先登录" in turn["reply"] and ORDER not in turn["reply"] and "签收" not in turn["reply"], turn
    # Only the signed-in conversation is u7's (their export and erasure find it), not one that claimed them.
    u7s = set(ChatbotStore(redis_client).user_conversations("u7"))  # the module's other tests chat as u7 too
    assert signed_in["session_id"] in u7s and anonymous["session_id"] not in u7s
    theirs = chat(client, "where is my order ORD-20481234?", shopper="u8")["reply"]
    unknown = chat(client, "where is my order ORD-99999999?", shopper="u8")["reply"]
    assert theirs.replace(ORDER, "ORD-X") == unknown.replace("ORD-99999999", "ORD-X"), (theirs, unknown)


def test_product_questions_use_the_catalog(assistant):
    client, _, _ = assistant
    wait_for(lambda: chat(client, "Is the Nordwind Slim-fit Red Cotton T-shirt cotton?")["product_ids"] == ["p00001"],
             15, what="the catalog index to know the product")
    answer = chat(client, "How much is the Nordwind Slim-fit Red Cotton T-shirt?")
    assert "¥129.00" in answer["reply"] and "S, M, L, XL" in answer["reply"]
    entity = next(e for e in answer["entities"] if e["type"] == "product")
    assert entity["normalized"] == "p00001"
    assert answer["reply"] and answer["session_id"]


def test_a_person_is_asked_for_and_the_transcript_is_masked(assistant):
    client, settings, _ = assistant
    first = chat(client, "hello")
    turn = chat(client, "I need a human agent, call me on 13812345678 or li.wei@example.com", first["session_id"],
                user_id="u7")
    assert turn["handoff"] and turn["handoff_reason"] == "asked for a person"
    events = handoff_events(settings, first["session_id"], expect=1)
    assert len(events) == 1 and events[0]["type"] == "handoff.requested"
    assert events[0]["payload"]["user_id"] == "", "a claimed user id without a token is not handed on"
    text = " ".join(t["text"] for t in events[0]["payload"]["transcript"])
    assert "[phone]" in text and "[email]" in text
    assert "13812345678" not in text and "li.wei@example.com" not in text


def test_a_person_takes_the_conversation_over_and_gives_it_back(assistant):
    """Shopper asks for a person -> the hand-off is in the support inbox -> an agent claims it (a second agent
    cannot) and replies -> the shopper's next message goes to the agent, not the bot -> the shopper reads the
    reply on their own route -> the agent closes -> the bot answers again."""
    _, settings, _ = assistant
    app = create_app(settings.model_copy(update={
        "gateway_api_keys": SecretStr(f"{TEST_KEYS},{AGENT_A}:support,{AGENT_B}:support"),
        "gateway_shopper_token_secrets": SecretStr(TOKEN_SECRET)}))
    client = app.test_client()
    a, b = {"X-API-Key": AGENT_A}, {"X-API-Key": AGENT_B}
    try:
        chat(client, "hello", shopper="u7")
        asked = chat(client, "I need a human agent, write to me at li.wei@example.com", shopper="u7")
        session, hid = asked["session_id"], asked["handoff_id"]
        assert asked["handoff"] and hid and not asked["relayed_to_agent"]
        first = chat(client, "hello", session, shopper="u7")  # the inbox may not have it yet: relayed all the same
        assert first["relayed_to_agent"] and first["reply"] == ""
        second = chat(client, "it is about my order ORD-20481234", session, shopper="u7")
        assert second["relayed_to_agent"] and second["reply"] == "" and second["handoff_id"] == hid
        assert second["intent"]["name"] == "", "the assistant did not even read it"

        def inbox(state: str) -> list[dict]:
            reply = client.get(f"/v1/support/handoffs?state={state}", headers=a)
            assert reply.status_code == 200, reply.json
            return [h for h in reply.json["handoffs"] if h["handoff_id"] == hid]

        (listed,) = wait_for(lambda: inbox("open"), 30, what="the hand-off in the support inbox")
        assert listed["user_id"] == "u7" and listed["session_id"] == session and listed["last_intent"] == "human_agent"
        text = " ".join(t["text"] for t in listed["transcript"])
        assert "[email]" in text and "li.wei@example.com" not in text

        claimed = client.post(f"/v1/support/handoffs/{hid}/claim", headers=a)
        assert claimed.status_code == 200 and claimed.json["claimed_by"] == key_id_of(AGENT_A), claimed.json
        taken = client.post(f"/v1/support/handoffs/{hid}/claim", headers=b)
        assert taken.status_code == 409 and key_id_of(AGENT_A) in taken.json["detail"], taken.json
        replied = client.post(f"/v1/support/handoffs/{hid}/messages", json={"text": "Hi, Ana here. Let me look."},
                              headers=a)
        assert replied.status_code == 201 and replied.json["messages"][-1]["role"] == "agent", replied.json
        # relayed before the reply, on the conversation's partition: applied before it
        assert [m["text"] for m in replied.json["messages"] if m["role"] == "user"] == [
            "hello", "it is about my order ORD-20481234"]
        assert inbox("claimed") and not inbox("open")

        relayed = chat(client, "thanks, my phone is 13812345678", session, shopper="u7")
        assert relayed["relayed_to_agent"] and relayed["reply"] == ""
        feed = client.get(f"/v1/chat/conversations/{session}/messages", headers=as_shopper(client, "u7"))
        assert feed.status_code == 200 and feed.json["handoff_state"] == "claimed", feed.json
        assert [e["text"] for e in feed.json["entries"] if e["role"] == "agent"] == ["Hi, Ana here. Let me look."]
        assert "claimed" in [e["kind"] for e in feed.json["entries"]]
        for stranger in ("u8", ""):  # another shopper, and nobody: as if there were no such conversation
            assert client.get(f"/v1/chat/conversations/{session}/messages",
                              headers=as_shopper(client, stranger)).status_code == 404

        def held() -> list[str]:
            got = client.get(f"/v1/support/handoffs/{hid}", headers=b).json
            return [m["text"] for m in got["messages"] if m["role"] == "user"]

        assert wait_for(lambda: "thanks, my phone is [phone]" in held(), 15, what="the relayed message")
        assert "13812345678" not in str(held())

        closed = client.post(f"/v1/support/handoffs/{hid}/close", headers=a)
        assert closed.status_code == 200 and closed.json["state"] == "closed", closed.json
        late = client.post(f"/v1/support/handoffs/{hid}/messages", json={"text": "one more thing"}, headers=a)
        assert late.status_code == 409 and "closed" in late.json["detail"]
        unknown = client.post("/v1/support/handoffs/00000000-0000-4000-8000-000000000000/messages",
                              json={"text": "hello?"}, headers=a)
        assert unknown.status_code == 404
        after = client.get(f"/v1/chat/conversations/{session}/messages?after={feed.json['next']}",
                           headers=as_shopper(client, "u7")).json
        assert after["handoff_state"] == "closed" and after["entries"][-1]["kind"] == "closed"

        back = chat(client, "How do I return an item?", session, shopper="u7")
        assert not back["relayed_to_agent"] and back["intent"]["name"] == "return_request" and back["reply"]
    finally:
        close_app(app)


def test_a_turn_sent_again_with_its_message_id_is_applied_once(assistant, redis_client):
    """An app that lost the answer (a timeout, the assistant killed mid-turn: the gateway's own retry too) sends
    the same message again with the same id: the first answer comes back, the conversation holds the message
    once, the hand-off is requested once and a relayed message reaches the person once. The same id with
    another message is a 409."""
    client, settings, _ = assistant
    first = chat(client, "hello", message_id="m-first-0000000001")  # no session yet: this starts one
    assert chat(client, "hello", message_id="m-first-0000000001") == first
    session = first["session_id"]
    ask = "I need a human agent please"
    turn = chat(client, ask, session, message_id="m-handoff-00000001")
    assert turn["handoff"] and turn["handoff_id"] and turn["message_id"] == "m-handoff-00000001"
    assert chat(client, ask, session, message_id="m-handoff-00000001") == turn
    relayed = chat(client, "are you there?", session, message_id="m-relay-000000001")
    assert relayed["relayed_to_agent"] and relayed["handoff_id"] == turn["handoff_id"]
    assert chat(client, "are you there?", session, message_id="m-relay-000000001") == relayed

    events = handoff_events(settings, session, expect=2)  # and not a third: a second read finds none more
    assert sorted(e["type"] for e in events) == ["handoff.message", "handoff.requested"], events
    state = json.loads(redis_client.get(K.session(session)))
    assert [t["text"] for t in state["turns"] if t["role"] == "user"] == ["hello", ask, "are you there?"]

    conflict = client.post("/v1/chat", json={"message": "something else", "session_id": session,
                                             "message_id": "m-handoff-00000001"})
    assert conflict.status_code == 409 and "another message" in conflict.json["detail"]
    stranger = client.post("/v1/chat", json={"message": "hi there", "message_id": "m-first-0000000001"})
    assert stranger.status_code == 409, "a first message's id names its conversation: never handed to another"


def test_bad_messages_are_refused_with_a_reason(assistant):
    client, _, _ = assistant  # one assistant for every case: starting one takes half a minute
    for body in ({"message": ""}, {"message": "   "}, {"message": "x" * 10_000}, {"message": "a\x00b"},
                 {"message": "hi", "message_id": "too-short"}):
        reply = client.post("/v1/chat", json=body)
        assert reply.status_code == 400 and reply.content_type == "application/problem+json", body
        assert reply.json["detail"], body


def test_garbage_bytes_and_odd_messages_never_crash(assistant):
    client, _, _ = assistant
    reply = client.post("/v1/chat", data=b"\xff\xfe\x00garbage", content_type="application/json")
    assert reply.status_code == 400
    for odd in ("🙂🙂🙂", "1234567", "???", "x" * 2000):
        answer = chat(client, odd)
        assert answer["reply"], odd
    parsed = client.post("/v1/nlu/parse", json={"text": "我想要退款"}).json
    assert parsed["intent"]["name"] == "refund_status" and parsed["language"] == "zh"
