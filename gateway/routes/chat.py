"""Assistant routes: REST -> chatbot gRPC (one conversation turn, NLU only).

Bad input is answered here with a 400 and never reaches the assistant: the body must be a JSON
object, the text 1..2000 characters, not blank, without control characters.

Who the shopper is comes from the caller's credentials, not from the body (``chat_identity``): the assistant
speaks of orders only for a user id the gateway verified."""

from __future__ import annotations

import unicodedata
import uuid
from typing import Any, Literal

import grpc
from flask import current_app, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from gateway import access
from gateway.json import reply_json
from gateway.problems import Problem, require_json_object
from gateway.routes import QueryModel
from gateway.routes.recommendations import DEGRADED_ANSWERS, DEGRADED_HEADER
from protos import chatbot_pb2 as pb

chat = APIBlueprint(
    "chat", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="assistant", description="The customer-service assistant (English and Chinese)")],
)

# The assistant's own limit (services/chatbot/core/nlu.py MAX_CHARS; a unit test keeps them equal).
# Not imported: that module pulls in the NLU's dependencies, which the gateway does not need.
MAX_MESSAGE_CHARS = 2000
MIN_CHAT_DEADLINE_SECONDS = 5.0
ACTS_FOR_SHOPPERS = "support"  # the staff role whose key may name the shopper it is helping
ALLOWED_CONTROL = frozenset("\n\r\t")

Language = Literal["en", "zh"]


# ------------------------------------------------------------------ request models


def _bad_character(text: str) -> tuple[int, str] | None:
    """The first character a message may not hold: control characters other than newline, carriage
    return and tab (C0, DEL, C1), and lone surrogates (they cannot be encoded as UTF-8 for gRPC)."""
    for index, char in enumerate(text):
        if char in ALLOWED_CONTROL:
            continue
        if unicodedata.category(char) in ("Cc", "Cs"):
            return index, char
    return None


def _check_text(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "must not be empty or only whitespace")
    bad = _bad_character(value)
    if bad is not None:
        index, char = bad
        raise PydanticCustomError(
            "control_character",
            "must not contain control characters other than newline, carriage return and tab "
            "(found U+{code} at index {index})",
            {"code": f"{ord(char):04X}", "index": index},
        )
    return value


def _check_id(value: str | None) -> str | None:
    if value is not None and _bad_character(value) is not None:
        raise PydanticCustomError("control_character", "must not contain control characters")
    return value


Text = Field(
    min_length=1, max_length=MAX_MESSAGE_CHARS,
    description=f"1 to {MAX_MESSAGE_CHARS} characters (Unicode code points), not only whitespace, no control "
                "characters except newline, carriage return and tab; sent as written, so entity offsets "
                "index into this text",
)
LanguageHint = Field(None, description='"en" or "zh"; absent: detected from the text')


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Text
    session_id: str | None = Field(
        None, max_length=128, pattern=r"^[A-Za-z0-9_-]*$",
        description="the conversation id from the previous reply; absent or empty starts a new conversation "
                    "(so does an unknown id)",
    )
    user_id: str | None = Field(
        None, max_length=128,
        description="a hint only: ignored when a shopper token is sent (its subject is the user); without one it "
                    "may personalise suggestions but never opens an order, unless the caller's API key has the "
                    "'support' role (staff acting for this shopper)",
    )
    language: Language | None = LanguageHint
    message_id: str | None = Field(
        None, min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$",
        description="your id for this message, new for every message (a UUID): the same message sent again with "
                    "the same id within 10 minutes (say after a timeout or a lost connection) gets the first answer "
                    "back and is not applied twice; the same id with another message is a 409. Without one the "
                    "gateway picks one for its own retries, and sending the message again is a new message",
    )

    @field_validator("message")
    @classmethod
    def _message(cls, value: str) -> str:
        return _check_text(value)

    @field_validator("user_id")
    @classmethod
    def _user_id(cls, value: str | None) -> str | None:
        return _check_id(value)


class ParseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Text
    language: Language | None = LanguageHint

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        return _check_text(value)


# ------------------------------------------------------------------ response models (for the spec)


class Intent(BaseModel):
    name: str = Field(description="e.g. order_status, return_request, product_search, greeting, human_agent")
    confidence: float = Field(description="0..1")


class Entity(BaseModel):
    type: str = Field(description="order_id, product_id, product, category, brand, price, quantity, date, ...")
    value: str = Field(description="the text as written in the message")
    start: int = Field(description="offset of the first character, in Unicode code points")
    end: int = Field(description="offset after the last character (exclusive): text[start:end] == value")
    normalized: str = Field(description='canonical form when it differs from value (e.g. "199.00" for "199块"), else ""')


class ChatReply(BaseModel):
    reply: str = Field(description="the assistant's answer, in `language`")
    intent: Intent
    entities: list[Entity]
    handoff: bool = Field(description="true when the conversation is handed to a person")
    handoff_reason: str = Field(description="why, when handoff is true")
    session_id: str = Field(description="send it with the next turn")
    language: str = Field(description='"en" or "zh"')
    suggestions: list[str] = Field(description="quick replies the UI may offer (at most 5)")
    product_ids: list[str] = Field(description="products the reply refers to")
    relayed_to_agent: bool = Field(description="true while a person owns the conversation: the message went to "
                                               "them and the assistant did not answer (`reply` is empty)")
    handoff_id: str = Field(description="the hand-off this turn requested or was relayed to, else empty")
    message_id: str = Field(description="the message's id: yours, or the one the gateway picked; send the message "
                                        "again with it when asked to (intent `assistant_unavailable`)")


class ConversationPath(BaseModel):
    session_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$",
                            description="the conversation's `session_id` (from POST /v1/chat)")


class ConversationQuery(QueryModel):
    after: int = Field(0, ge=0, le=2_000_000_000,
                       description="the `next` of the previous answer: only what came after it; 0 from the start")


class ConversationEntry(BaseModel):
    seq: int = Field(description="position in the conversation's feed")
    kind: str = Field(description='"opened" (handed to a person), "claimed" (a person joined), "message", '
                                  '"closed" (the assistant answers again)')
    role: str = Field(description='kind "message": "agent" (a person\'s reply) or "user" (the shopper\'s '
                                  'relayed message, personal data masked)')
    text: str
    at: str = Field(description="RFC 3339")
    handoff_id: str


class ConversationMessages(BaseModel):
    session_id: str
    entries: list[ConversationEntry] = Field(description="oldest first")
    next: int = Field(description="send as `after` with the next poll")
    handoff_id: str = Field(description="the conversation's latest hand-off")
    handoff_state: str = Field(description='its state: while "open" or "claimed" a person owns the conversation')


class ParseReply(BaseModel):
    intent: Intent
    entities: list[Entity]
    language: str = Field(description='detected (or hinted) language: "en" or "zh"')
    intent_ranking: list[Intent] = Field(description="the best few intents, best first")


# ------------------------------------------------------------------ body check (before validation)


@chat.before_request
def _json_object_body() -> None:
    """flask-openapi3 reads the body with ``get_json(silent=True)``: garbage, a missing content type and
    a JSON array all become ``None`` and a vague error, and a JSON *string* is parsed a second time.
    Here each gets a 400 with its reason before validation runs."""
    if request.method != "POST":
        return
    example = ('{"message": "where is my order?"}' if request.endpoint == "chat.post_chat"
               else '{"text": "where is my order?"}')
    require_json_object(example)


# ------------------------------------------------------------------ routes


def _assistant() -> Any:
    return current_app.extensions["shopai.backends"].stub("chatbot")


def chat_identity(client: Any, claimed: str) -> tuple[str, bool]:
    """(user_id, verified) for the assistant. A shopper token's subject wins over the body; a key with the
    ``support`` role acts for the shopper the body names; anyone else's ``user_id`` is an unverified hint."""
    shopper = getattr(client, "shopper", None)
    if shopper:
        return shopper, True
    key = getattr(client, "key", None)
    if key is not None and claimed and key.allows(ACTS_FOR_SHOPPERS):
        return claimed, True
    return claimed, False


def _audit_staff_chat(client: Any, user_id: str) -> None:
    """A staff key speaking for a shopper reads their orders: recorded like every staff read (issue #17)."""
    audit = getattr(current_app.extensions.get("shopai.access"), "audit", None)
    if audit is not None:
        audit.record(client.key.key_id, request.method, "/v1/chat", user_id)


def _deadline() -> float:
    # The assistant embeds every message (sentence-embedding models on CPU) before it classifies it,
    # which can take longer than the gateway's default deadline for cheap reads; a conversation turn
    # gets at least MIN_CHAT_DEADLINE_SECONDS so that a busy assistant is not reported as a 504.
    return max(float(current_app.config["GRPC_DEADLINE"]), MIN_CHAT_DEADLINE_SECONDS)


RESPONSES: dict[int, type[BaseModel]] = {400: Problem, 413: Problem, 429: Problem, 501: Problem, 503: Problem,
                                         504: Problem}


@chat.post("/chat", responses={200: ChatReply, **RESPONSES})
def post_chat(body: ChatBody) -> tuple[dict, int]:
    """One turn of a conversation with the customer-service assistant.

    Send the `session_id` of the previous reply to continue a conversation; without one a new
    conversation starts and the reply carries its id. `handoff` is true when the conversation is
    handed to a person. 503 while the assistant is still training its first model.

    Every turn carries a `message_id` (yours, or one the gateway picks), so a turn is applied once however
    often it is sent: the gateway retries it while the assistant restarts, and when it still cannot reach the
    assistant the answer is a 200 asking the shopper to send the message again, intent
    `assistant_unavailable`, header `X-ShopAI-Degraded: chatbot`, with the `message_id` to send it with.

    Orders are discussed only with a signed-in shopper (a shopper token: its subject is the user and the
    body's `user_id` is ignored) or a key with the `support` role acting for the `user_id` it sends. Anyone
    else asking about an order is asked to sign in; everything else is answered."""
    client = access.current_client()
    user_id, verified = chat_identity(client, body.user_id or "")
    if verified and not getattr(client, "shopper", None):
        _audit_staff_chat(client, user_id)
    message_id = body.message_id or uuid.uuid4().hex
    try:
        reply = _assistant().Chat(  # retried on UNAVAILABLE by gRPC (backends.py): safe with the message id
            pb.ChatRequest(message=body.message, session_id=body.session_id or "", user_id=user_id,
                           language=body.language or "", user_verified=verified, message_id=message_id),
            timeout=_deadline(),
        )
    except grpc.RpcError as exc:
        if not _unreachable(exc):
            raise
        DEGRADED_ANSWERS.labels("chatbot").inc()
        return _not_delivered(body, message_id), 200, {DEGRADED_HEADER: "chatbot"}
    return reply_json(reply), 200


# What the shopper reads while the assistant cannot be reached (restarting after a crash, a deploy): they are
# asked to send the message again rather than shown an error. Sent again with its message_id, a message the
# assistant did take before the connection was lost is answered from memory, not applied twice.
NOT_DELIVERED = {
    "en": "Sorry, our assistant is restarting and could not answer your message. Please send it again in a moment.",
    "zh": "抱歉，客服助手正在重启，未能回复您的消息。请稍后再发送一次。",
}


def _unreachable(exc: grpc.RpcError) -> bool:
    """The assistant could not be reached, the connection was lost during the turn (the assistant was killed or
    restarted), or it is starting (loading its models after a restart). Not "still training its first model":
    UNAVAILABLE too, but it stays a 503 with its reason; a missed deadline stays a 504."""
    code = exc.code() if hasattr(exc, "code") else None
    details = ((exc.details() if hasattr(exc, "details") else "") or "").lower()
    lost = ("failed to connect", "connection refused", "connection reset", "socket closed", "broken pipe",
            "connection attempt timed out", "goaway", "stream removed", "recvmsg", "sendmsg",
            "the assistant is starting")  # services/chatbot/server.py STARTING: refused before anything was taken
    return code is grpc.StatusCode.UNAVAILABLE and any(text in details for text in lost)


def _not_delivered(body: ChatBody, message_id: str) -> dict[str, Any]:
    language = body.language or ("zh" if any("\u4e00" <= ch <= "\u9fff" for ch in body.message) else "en")
    return {"reply": NOT_DELIVERED.get(language, NOT_DELIVERED["en"]),
            "intent": {"name": "assistant_unavailable", "confidence": 0.0}, "entities": [], "handoff": False,
            "handoff_reason": "", "session_id": body.session_id or "", "language": language,
            "suggestions": [], "product_ids": [], "relayed_to_agent": False, "handoff_id": "",
            "message_id": message_id}


@chat.post("/nlu/parse", responses={200: ParseReply, **RESPONSES})
def post_parse(body: ParseBody) -> tuple[dict, int]:
    """Natural-language understanding only: the intent and entities of a text, no dialogue state.

    503 while the assistant is still training its first model."""
    reply = _assistant().Parse(pb.ParseRequest(text=body.text, language=body.language or ""), timeout=_deadline())
    return reply_json(reply), 200


@chat.get("/chat/conversations/<session_id>/messages",
          responses={200: ConversationMessages, 400: Problem, 404: Problem, 503: Problem, 504: Problem})
def conversation_messages(path: ConversationPath, query: ConversationQuery) -> tuple[dict, int]:
    """What people said in the conversation since `after`: the agent's replies (and the shopper's relayed
    messages, masked), and when a person joined or left. The storefront polls it while a hand-off is open
    or claimed (`handoff_state`).

    Only the conversation's own shopper: when a signed-in shopper was handed over, their shopper token;
    when nobody was signed in, whoever holds the session id (the one POST /v1/chat continues it with); or
    a key with the `support` role. Anyone else, and a conversation never handed to a person, get the same 404."""
    client = access.current_client()
    shopper = getattr(client, "shopper", None) or ""
    key = getattr(client, "key", None)
    reply = _assistant().ConversationMessages(
        pb.ConversationMessagesRequest(session_id=path.session_id, user_id=shopper, user_verified=bool(shopper),
                                       staff=bool(key is not None and key.allows(ACTS_FOR_SHOPPERS)),
                                       after=query.after),
        timeout=float(current_app.config["GRPC_DEADLINE"]),
    )
    return reply_json(reply), 200
