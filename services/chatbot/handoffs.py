"""The support inbox: hand-offs kept in Redis, rebuilt from ``handoffs.v1``, and the agents' actions on them.

- ``HandoffLog`` applies the ``handoff.*`` events (part of ``ChatbotProjection``, so exactly once and in
  log order; a hand-off's events share its conversation's key, hence one partition): ``handoff.requested``
  opens a hand-off (its id is that event's id), ``handoff.claimed`` / ``handoff.message`` /
  ``handoff.closed`` go through the pure state machine (``core/handoff.py``). An action it refuses (a
  second agent's claim that lost the race) changes nothing and leaves its reason under the event's id for
  the agent who asked.
- ``HandoffStore`` reads them: the inbox newest first, one hand-off with its messages, the conversation's
  current hand-off (the assistant relays while it is open or claimed) and the shopper's feed.
- ``HandoffDesk`` is what the servicer does for an agent: check, publish the event, wait until the
  projection applied it, and answer with the state it left.

Erasure (``user.erased``) deletes the shopper's hand-offs, their messages and their conversations' feeds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import redis

from services.chatbot.core import handoff as H
from services.chatbot.core.masking import mask_personal_data
from services.common import privacy, topics
from services.common.cache import key
from services.common.events import Event, envelope
from services.common.projection import Ops, applied

REFUSED_TTL_SECONDS = 24 * 3600
APPLY_WAIT_SECONDS = 4.0  # the gateway's deadline for these calls is at least 5 s (gateway/routes/support.py)
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
NUMBERS = ("created_at", "updated_at", "claimed_at", "closed_at")


class HandoffKeys:
    handoffs = key("chat", "handoffs")  # zset: handoff id by created time

    @staticmethod
    def handoff(handoff_id: str) -> str:
        return key("chat", "handoff", handoff_id)

    @staticmethod
    def messages(handoff_id: str) -> str:
        return key("chat", "handoff-messages", handoff_id)

    @staticmethod
    def feed(session_id: str) -> str:
        """List: what people said in the conversation's hand-offs (and when one was claimed, closed)."""
        return key("chat", "conversation-feed", session_id)

    @staticmethod
    def current(session_id: str) -> str:
        """The conversation's latest hand-off id."""
        return key("chat", "conversation-handoff", session_id)

    @staticmethod
    def user_handoffs(user: str) -> str:
        return key("chat", "user", user, "handoffs")

    @staticmethod
    def user_conversations(user: str) -> str:
        return key("chat", "user", user, "handoff-sessions")

    @staticmethod
    def refused(event_id: str) -> str:
        return key("chat", "handoff-refused", event_id)


HK = HandoffKeys


def _encode(fields: dict[str, Any]) -> list[object]:
    out: list[object] = []
    for name, value in fields.items():
        out += [name, json.dumps(value, ensure_ascii=False) if name == "transcript" else value]
    return out


def decode(raw: dict[str, str]) -> dict[str, Any]:
    record: dict[str, Any] = dict(raw)
    record["transcript"] = json.loads(raw.get("transcript") or "[]")
    for name in NUMBERS:
        record[name] = float(raw.get(name) or 0.0)
    record["messages"] = int(raw.get("messages") or 0)
    return record


class HandoffLog:
    """Applies ``handoffs.v1`` for ``ChatbotProjection`` (group ``group``)."""

    def __init__(self, client: redis.Redis, group: str) -> None:
        self.redis = client
        self.group = group

    def _record(self, handoff_id: str, records: dict[str, dict | None]) -> dict | None:
        if handoff_id not in records:
            raw = self.redis.hgetall(HK.handoff(handoff_id))
            records[handoff_id] = decode(raw) if raw else None
        return records[handoff_id]

    def apply(self, event: Event, ops: Ops) -> None:
        if event.action == "cancel_requested":
            return  # an order cancellation for the order team, not a conversation hand-off
        p = event.payload
        at = event.occurred_at.timestamp()
        records: dict[str, dict | None] = ops.batch_state.setdefault("handoffs", {})
        if event.action == "requested":
            record = H.opened(event.event_id, p, at)
            records[event.event_id] = record
            session, user = record["session_id"], record["user_id"]
            with privacy.guarded(ops, self.group, user):
                ops("HSET", HK.handoff(event.event_id), *_encode(record))
                ops("ZADD", HK.handoffs, at, event.event_id)
                ops("SET", HK.current(session), event.event_id)
                ops("RPUSH", HK.feed(session), _entry("opened", event.event_id, at))
                if user:
                    ops("SADD", HK.user_handoffs(user), event.event_id)
                    ops("SADD", HK.user_conversations(user), session)
            return
        handoff_id = str(p["handoff_id"])
        record = self._record(handoff_id, records)
        outcome = H.step(record, event.action, str(p.get("agent", "")), str(p.get("role") or "agent"), at)
        if not outcome.allowed or record is None:
            ops("SET", HK.refused(event.event_id), outcome.refused, "EX", REFUSED_TTL_SECONDS)
            return
        claimed_now = outcome.changes.get("state") == H.CLAIMED
        record.update(outcome.changes)
        session = record["session_id"]
        with privacy.guarded(ops, self.group, record["user_id"]):
            if outcome.changes:
                ops("HSET", HK.handoff(handoff_id), *_encode(outcome.changes))
            if claimed_now:
                ops("RPUSH", HK.feed(session), _entry("claimed", handoff_id, at))
            if event.action == "message":
                record["messages"] += 1
                message = {"id": event.event_id, "role": p["role"], "text": p["text"], "agent": p.get("agent", ""),
                           "at": at}
                ops("RPUSH", HK.messages(handoff_id), json.dumps(message, ensure_ascii=False))
                ops("HINCRBY", HK.handoff(handoff_id), "messages", 1)
                ops("RPUSH", HK.feed(session), _entry("message", handoff_id, at, p["role"], p["text"]))
            elif event.action == "closed":
                ops("RPUSH", HK.feed(session), _entry("closed", handoff_id, at))

    def erase_user(self, user: str, ops: Ops) -> None:
        """The shopper's hand-offs, their messages and their conversations' feeds go."""
        ops("DELMEMBERKEYS", HK.user_handoffs(user), HK.handoff(""))
        ops("DELMEMBERKEYS", HK.user_handoffs(user), HK.messages(""))
        ops("DELMEMBERKEYS", HK.user_conversations(user), HK.feed(""))
        ops("DELMEMBERKEYS", HK.user_conversations(user), HK.current(""))
        ops("DEL", HK.user_handoffs(user), HK.user_conversations(user))


def _entry(kind: str, handoff_id: str, at: float, role: str = "", text: str = "") -> str:
    """A feed entry as the shopper sees it (never which staff key acted)."""
    return json.dumps({"kind": kind, "handoff_id": handoff_id, "role": role, "text": text, "at": at},
                      ensure_ascii=False)


class HandoffStore:
    def __init__(self, client: redis.Redis, group: str = "chatbot") -> None:
        self.redis = client
        self.group = group

    def handoff(self, handoff_id: str) -> dict | None:
        if not handoff_id:
            return None
        raw = self.redis.hgetall(HK.handoff(handoff_id))
        return decode(raw) if raw else None

    def messages(self, handoff_id: str) -> list[dict]:
        return [json.loads(m) for m in self.redis.lrange(HK.messages(handoff_id), 0, -1)]

    def inbox(self, state: str = "", limit: int = DEFAULT_LIMIT) -> list[dict]:
        """Hand-offs newest first, only those in ``state`` when given (erased ones are skipped)."""
        found: list[dict] = []
        start, chunk = 0, 200
        while len(found) < limit:
            ids = self.redis.zrevrange(HK.handoffs, start, start + chunk - 1)
            if not ids:
                break
            with self.redis.pipeline(transaction=False) as pipe:
                for handoff_id in ids:
                    pipe.hgetall(HK.handoff(handoff_id))
                rows = pipe.execute()
            found += [r for r in (decode(row) for row in rows if row) if not state or H.state_of(r) == state]
            start += chunk
        return found[:limit]

    def current(self, session_id: str) -> dict | None:
        """The conversation's latest hand-off, in whatever state."""
        return self.handoff(self.redis.get(HK.current(session_id)) or "")

    def feed(self, session_id: str, after: int = 0) -> list[dict]:
        """The conversation's feed from position ``after``, each entry with its ``seq``."""
        rows = self.redis.lrange(HK.feed(session_id), max(0, after), -1)
        return [{"seq": max(0, after) + i, **json.loads(row)} for i, row in enumerate(rows)]

    def applied(self, event_id: str) -> bool:
        """Whether the projection has applied the event (its exactly-once marker is set)."""
        return applied(self.redis, self.group, event_id)

    def refused(self, event_id: str) -> str | None:
        return self.redis.get(HK.refused(event_id))


class HandoffRefused(Exception):
    def __init__(self, reason: str, not_found: bool = False) -> None:
        super().__init__(reason)
        self.not_found = not_found


class HandoffPending(Exception):
    """The event is in the log but the projection has not applied it yet."""


class HandoffDesk:
    """The agents' actions (and the shopper's relayed messages) as events on ``handoffs.v1``."""

    def __init__(self, store: HandoffStore, publish: Callable[[str, str, dict], None],
                 wait_seconds: float = APPLY_WAIT_SECONDS) -> None:
        self.store = store
        self.publish = publish
        self.wait_seconds = wait_seconds

    def act(self, action: str, handoff_id: str, agent: str, text: str = "") -> dict:
        """``action`` ("claimed", "message", "closed") by ``agent``; returns the hand-off once applied.
        Raises HandoffRefused (unknown, or not in a state that allows it) or HandoffPending."""
        record = self.store.handoff(handoff_id)
        first = H.step(record, action, agent)
        if not first.allowed or record is None:
            raise HandoffRefused(first.refused, first.not_found)
        payload: dict[str, Any] = {"session_id": record["session_id"], "handoff_id": handoff_id, "agent": agent,
                                   "user_id": record["user_id"]}
        if action == "message":
            payload.update(role="agent", text=text)
        event = envelope(f"handoff.{action}", payload, "chatbot")
        self.publish(topics.HANDOFFS, record["session_id"], event)
        self._wait(event["event_id"])
        refused = self.store.refused(event["event_id"])
        if refused is not None:
            raise HandoffRefused(refused)
        applied = self.store.handoff(handoff_id)
        if applied is None:
            raise HandoffRefused("no such hand-off", not_found=True)
        return applied

    def relay(self, record: dict, text: str, event_id: str | None = None) -> str:
        """The shopper's message into the hand-off, personal data masked; the event id (not waited for).
        ``event_id``: the same for a retried turn (core/turns.py), so the message is relayed once."""
        payload = {"session_id": record["session_id"], "handoff_id": record["handoff_id"], "role": "user",
                   "text": mask_personal_data(text), "user_id": record.get("user_id", "")}
        event = envelope("handoff.message", payload, "chatbot", event_id=event_id)
        self.publish(topics.HANDOFFS, record["session_id"], event)
        return event["event_id"]

    def _wait(self, event_id: str) -> None:
        deadline = time.monotonic() + self.wait_seconds
        while not self.store.applied(event_id):
            if time.monotonic() >= deadline:
                raise HandoffPending(f"the action is in {topics.HANDOFFS} (event {event_id}) but not applied yet; "
                                     "read the hand-off again shortly")
            time.sleep(0.02)
