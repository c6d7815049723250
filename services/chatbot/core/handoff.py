"""A hand-off's state machine, pure: open -> claimed (by one agent) -> closed.

The projection (``services/chatbot/handoffs.py``) applies every ``handoff.*`` event of ``handoffs.v1`` through
``step``, in log order, so the state is rebuilt from the log; the servicer asks the same ``step`` before it
publishes an agent's action, to refuse at once what the state already forbids. What ``step`` refuses when
the projection applies it (two agents claiming at the same moment: the first in the log wins) changes
nothing, and the agent who asked is told why.

Rules:
- ``claimed``: an open hand-off is taken by the agent; the same agent claiming again changes nothing;
  another agent's, or a closed one, is refused.
- ``message`` from an agent: refused when closed or held by another agent; an open hand-off is claimed by
  the agent who replies. From the shopper (role ``user``): appended while the hand-off is not closed.
- ``closed``: by the agent who holds it, or by any agent while it is open; a closed one is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OPEN, CLAIMED, CLOSED = "open", "claimed", "closed"
STATES: tuple[str, ...] = (OPEN, CLAIMED, CLOSED)
ACTIVE: tuple[str, ...] = (OPEN, CLAIMED)  # a person owns the conversation: the assistant relays


@dataclass(frozen=True)
class Step:
    """The outcome of one action on a hand-off: ``refused`` is "" when allowed (then ``changes`` are the
    record's new fields, possibly none) and otherwise why not; ``not_found`` tells "no such hand-off" (404)
    from "not in this state" (409)."""

    refused: str = ""
    changes: dict[str, object] = field(default_factory=dict)
    not_found: bool = False

    @property
    def allowed(self) -> bool:
        return not self.refused


def state_of(record: dict | None) -> str:
    return (record or {}).get("state") or OPEN


def opened(handoff_id: str, payload: dict, at: float) -> dict:
    """The record a ``handoff.requested`` event starts."""
    return {
        "handoff_id": handoff_id, "session_id": str(payload.get("session_id", "")),
        "user_id": str(payload.get("user_id", "")), "state": OPEN, "created_at": at, "updated_at": at,
        "reason": str(payload.get("reason", "")), "intent": str(payload.get("intent", "")),
        "language": str(payload.get("language", "")),
        "transcript": [{"role": t.get("role", ""), "text": t.get("text", "")} for t in payload.get("transcript", [])],
        "claimed_by": "", "claimed_at": 0.0, "closed_by": "", "closed_at": 0.0, "messages": 0,
    }


def step(record: dict | None, action: str, agent: str = "", role: str = "agent", at: float = 0.0) -> Step:
    """What ``action`` ("claimed", "message", "closed") by ``agent`` (or the shopper, ``role`` "user") does to
    ``record`` (None: unknown hand-off)."""
    if record is None:
        return Step("no such hand-off", not_found=True)
    state, holder = state_of(record), record.get("claimed_by", "")
    if action == "message" and role == "user":
        if state == CLOSED:
            return Step("the hand-off is closed")
        return Step(changes={"updated_at": at})
    if state == CLOSED:
        return Step("the hand-off is closed" + (f" (by {record.get('closed_by')})" if record.get("closed_by") else ""))
    if not agent:
        return Step("an agent is required")
    if state == CLAIMED and holder != agent:
        return Step(f"the hand-off is claimed by another agent ({holder})")
    claim = {"state": CLAIMED, "claimed_by": agent, "claimed_at": at} if state == OPEN else {}
    if action == "claimed":
        return Step(changes={**claim, "updated_at": at} if claim else {})
    if action == "message":
        return Step(changes={**claim, "updated_at": at})
    if action == "closed":
        return Step(changes={"state": CLOSED, "closed_by": agent, "closed_at": at, "updated_at": at})
    raise ValueError(f"unknown hand-off action {action!r}")
