"""The support inbox: the assistant's hand-offs to people, for staff with the ``support`` role (REST -> the
chatbot's hand-off RPCs; the state is the assistant's projection of ``handoffs.v1``).

The agent is the calling API key (its id is recorded on every action). An action the hand-off's state does not
allow is a 409 with the reason (replying to or closing a closed hand-off, claiming one another agent holds); an
unknown id is a 404."""

from __future__ import annotations

from typing import Any, Literal

from flask import current_app, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway import access
from gateway.json import reply_json
from gateway.problems import ApiProblem, Problem, require_json_object
from gateway.routes import QueryModel
from gateway.routes.chat import MIN_CHAT_DEADLINE_SECONDS, Text, _check_text
from protos import chatbot_pb2 as pb

support = APIBlueprint(
    "support", __name__, url_prefix="/v1/support",
    abp_tags=[Tag(name="support", description="Hand-offs from the assistant to people (a key with the support role)")],
)

MAX_LIMIT = 500  # services/chatbot/handoffs.py MAX_LIMIT
HandoffState = Literal["open", "claimed", "closed"]


class HandoffsQuery(QueryModel):
    state: HandoffState | None = Field(None, description="only hand-offs in this state; absent: every state")
    limit: int = Field(50, ge=1, le=MAX_LIMIT, description=f"at most this many, newest first (1..{MAX_LIMIT})")


class HandoffPath(BaseModel):
    handoff_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$",
                            description="the hand-off's id (the handoff.requested event id)")


class ReplyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Text

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        return _check_text(value)


class Turn(BaseModel):
    role: str = Field(description='"user" or "assistant"')
    text: str = Field(description="personal data masked")


class HandoffMessage(BaseModel):
    id: str
    role: str = Field(description='"user" (the shopper, personal data masked) or "agent"')
    text: str
    agent: str = Field(description='role "agent": the API key id that replied')
    at: str = Field(description="RFC 3339")


class Handoff(BaseModel):
    handoff_id: str
    session_id: str = Field(description="the conversation")
    user_id: str = Field(description='the signed-in shopper; "" when nobody signed in')
    state: str = Field(description='"open", "claimed" or "closed"')
    created_at: str = Field(description="RFC 3339")
    reason: str = Field(description="why the assistant handed over")
    last_intent: str = Field(description="the bot's intent of the message that led to the hand-off")
    language: str
    transcript: list[Turn] = Field(description="the conversation up to the hand-off, personal data masked")
    claimed_by: str
    claimed_at: str | None
    closed_by: str
    closed_at: str | None
    message_count: int
    messages: list[HandoffMessage] = Field(description="after the hand-off, oldest first (empty in the list)")


class HandoffList(BaseModel):
    handoffs: list[Handoff]


RESPONSES: dict[int, type[BaseModel]] = {400: Problem, 503: Problem, 504: Problem}
ACTION_RESPONSES: dict[int, type[BaseModel]] = {**RESPONSES, 404: Problem, 409: Problem}


@support.before_request
def _json_object_body() -> None:
    if request.method == "POST" and request.endpoint == "support.post_reply":
        require_json_object('{"text": "Hello, I am looking at your order now."}')


def _assistant() -> Any:
    return current_app.extensions["shopai.backends"].stub("chatbot")


def _deadline() -> float:
    # An action waits (up to 4 s) until the assistant's projection applied its event.
    return max(float(current_app.config["GRPC_DEADLINE"]), MIN_CHAT_DEADLINE_SECONDS)


def _agent() -> str:
    agent = access.current_key_id()
    if not agent:
        raise ApiProblem(403, "hand-off actions need a staff API key: the agent is the key")
    return agent


def _body(reply: pb.Handoff) -> dict:
    body = reply_json(reply)
    for stamp in ("claimed_at", "closed_at"):
        body[stamp] = body.get(stamp) or None
    return body


@support.get("/handoffs", responses={200: HandoffList, **RESPONSES})
def list_handoffs(query: HandoffsQuery) -> tuple[dict, int]:
    """The hand-offs, newest first, each with the masked transcript and the bot's last intent; `state`
    filters (open, claimed, closed). Messages after the hand-off are left out here: read one hand-off."""
    reply = _assistant().ListHandoffs(pb.ListHandoffsRequest(state=query.state or "", limit=query.limit),
                                      timeout=_deadline())
    return {"handoffs": [_body(h) for h in reply.handoffs]}, 200


@support.get("/handoffs/<handoff_id>", responses={200: Handoff, 404: Problem, **RESPONSES})
def get_handoff(path: HandoffPath) -> tuple[dict, int]:
    """One hand-off with its messages (the shopper's, masked, and the agents' replies)."""
    reply = _assistant().GetHandoff(pb.HandoffRequest(handoff_id=path.handoff_id), timeout=_deadline())
    return _body(reply), 200


@support.post("/handoffs/<handoff_id>/claim", responses={200: Handoff, **ACTION_RESPONSES})
def post_claim(path: HandoffPath) -> tuple[dict, int]:
    """Take an open hand-off: the calling key is its agent. Claiming one's own claim again changes nothing;
    409 when another agent holds it or it is closed."""
    reply = _assistant().ClaimHandoff(pb.HandoffRequest(handoff_id=path.handoff_id, agent=_agent()),
                                      timeout=_deadline())
    return _body(reply), 200


@support.post("/handoffs/<handoff_id>/messages", responses={201: Handoff, **ACTION_RESPONSES})
def post_reply(path: HandoffPath, body: ReplyBody) -> tuple[dict, int]:
    """An agent's reply (`text`, 1..2000 characters), delivered into the shopper's
    conversation (the storefront chat shows it). Replying to an open hand-off claims it. 409 when it is
    closed or another agent holds it."""
    reply = _assistant().ReplyHandoff(pb.HandoffRequest(handoff_id=path.handoff_id, agent=_agent(), text=body.text),
                                      timeout=_deadline())
    return _body(reply), 201


@support.post("/handoffs/<handoff_id>/close", responses={200: Handoff, **ACTION_RESPONSES})
def post_close(path: HandoffPath) -> tuple[dict, int]:
    """Close a hand-off: the assistant answers the conversation again. 409 when it is already closed or
    another agent holds it."""
    reply = _assistant().CloseHandoff(pb.HandoffRequest(handoff_id=path.handoff_id, agent=_agent()),
                                      timeout=_deadline())
    return _body(reply), 200
