"""The right to be forgotten, as every service applies it (issue #17).

``DELETE /v1/users/{id}`` publishes ``user.erased`` to ``privacy.v1``; each service's projection
removes, in the same exactly-once batch, what it keeps under that shopper, adds the shopper to
its erasure register and marks its part of the erasure done. The register makes the shopper's
late events no-ops (``guarded``: the personal commands of an event sit between ``GUARD`` and
``ENDGUARD``, which the applier's script skips for a registered shopper), and a replay of a
flushed Redis reads ``privacy.v1`` first (``services/common/bus.py``), so nothing comes back.

What is not personal stays: aggregates such as daily sales or a product's popularity.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from services.common.cache import key
from services.common.events import Event, format_time, new_event
from services.common.projection import Ops

# The parts of an erasure, each marked done by whoever applied it: the four projections and the
# recommender's serving model (it drops the shopper's factors and neighbourhood rows in memory).
ERASURE_PARTS: tuple[str, ...] = ("recommender", "recommender_model", "chatbot", "vision", "forecasting")
# Which part belongs to which service in the status answer.
SERVICE_PARTS: dict[str, tuple[str, ...]] = {
    "recommender": ("recommender", "recommender_model"),
    "chatbot": ("chatbot",),
    "vision": ("vision",),
    "forecasting": ("forecasting",),
}
# An erasure's status is kept this long (the register itself is kept for good).
STATUS_TTL_SECONDS = 30 * 24 * 3600
# Erasure requests for one shopper within this window are one erasure (a retried DELETE is harmless).
ERASURE_ID_WINDOW_SECONDS = 60
_ERASURE_NAMESPACE = uuid.UUID("5f1d3c2e-8a47-4b6e-9f0a-2c7e1d4b9a63")
ERASED_TYPE = "user.erased"


def register_key(group: str) -> str:
    """The set of shoppers a consumer group has erased (its events of them are no-ops)."""
    return key("privacy", group, "erased")


def status_key(erasure_id: str) -> str:
    """Hash: user_id, requested_at, and per part the time it was applied."""
    return key("privacy", "erasure", erasure_id)


def model_pending_key() -> str:
    """Hash user -> erasure id: erasures the recommender's serving model has still to apply."""
    return key("privacy", "recommender", "model-pending")


def erasure_id(user_id: str, at: datetime) -> str:
    """The same id (and event id) for requests about one shopper within a minute: a retry is one erasure."""
    window = int(at.timestamp()) // ERASURE_ID_WINDOW_SECONDS
    return str(uuid.uuid5(_ERASURE_NAMESPACE, f"{user_id}\x1f{window}"))


def erasure_event(user_id: str, at: datetime, reason: str = "", requested_by: str = "") -> Event:
    payload = {"user_id": user_id}
    if reason:
        payload["reason"] = reason
    if requested_by:
        payload["requested_by"] = requested_by
    return new_event(ERASED_TYPE, payload, occurred_at=at, source="gateway", event_id=erasure_id(user_id, at))


@contextmanager
def guarded(ops: Ops, group: str, user: str) -> Iterator[Ops]:
    """The commands emitted inside are skipped when ``user`` is in ``group``'s erasure register."""
    ops("GUARD", register_key(group), user)
    try:
        yield ops
    finally:
        ops("ENDGUARD")


def record_erasure(ops: Ops, part: str, group: str, event: Event, now: datetime | None = None) -> None:
    """Register the shopper (their later events become no-ops) and mark ``part`` of the erasure done."""
    user = str(event.payload["user_id"])
    ops("SADD", register_key(group), user)
    ops("HSET", status_key(event.event_id), "user_id", user, part, format_time(now or datetime.now(UTC)))
    ops("EXPIRE", status_key(event.event_id), STATUS_TTL_SECONDS)


@dataclass(frozen=True)
class ErasureStatus:
    erasure_id: str
    user_id: str
    requested_at: str | None
    services: dict[str, str | None]  # service -> when its last part was applied, None while pending

    @property
    def done(self) -> bool:
        return all(at is not None for at in self.services.values())

    def to_dict(self) -> dict:
        return {
            "erasure_id": self.erasure_id, "user_id": self.user_id, "requested_at": self.requested_at,
            "status": "done" if self.done else "pending",
            "services": {name: {"done": at is not None, "done_at": at} for name, at in self.services.items()},
        }


def erasure_status(erasure_id: str, fields: Mapping[str, str]) -> ErasureStatus | None:
    """The status of an erasure from its hash (None when nothing is known of it)."""
    if not fields:
        return None
    services: dict[str, str | None] = {}
    for service, parts in SERVICE_PARTS.items():
        times = [fields.get(part) for part in parts]
        services[service] = None if any(t is None for t in times) else max(t for t in times if t)
    return ErasureStatus(erasure_id, fields.get("user_id", ""), fields.get("requested_at"), services)
