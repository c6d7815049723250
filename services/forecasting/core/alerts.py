"""The alerts desk's rules, pure (no I/O): an alert's record and its state, acknowledging it, and the
webhook deliveries: the body, its signature, which answers count as delivered, and when to try again.

An alert is open until the first ``alert.acknowledged`` for it in the log; a later acknowledgement changes
nothing (the gRPC answer names the first, with when and by whom).

Webhook requests are signed like Stripe's: ``X-ShopAI-Signature: sha256=<hex>`` is the HMAC-SHA256, keyed
with ``SHOPAI_ALERT_WEBHOOK_SECRET``, of ``<X-ShopAI-Timestamp>.<the exact body bytes>``. The timestamp is
inside the signature, so a receiver that refuses timestamps older than a few minutes cannot be fed a
captured request again (``verify_signature``; docs/api.md "Alert webhooks").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from dataclasses import dataclass, field
from typing import Any

ACKNOWLEDGED_TYPE = "alert.acknowledged"
OPEN, ACKNOWLEDGED = "open", "acknowledged"
STATES = (OPEN, ACKNOWLEDGED)

SIGNATURE_HEADER = "X-ShopAI-Signature"
TIMESTAMP_HEADER = "X-ShopAI-Timestamp"
ALERT_ID_HEADER = "X-ShopAI-Alert-Id"
ATTEMPT_HEADER = "X-ShopAI-Delivery-Attempt"
SIGNATURE_TOLERANCE_SECONDS = 300


def subject_of(payload: dict[str, Any]) -> str:
    """What an alert is about, most specific first: a code's serial, a product, a service."""
    for name, prefix in (("serial", "serial"), ("product_id", "product"), ("service", "service")):
        if payload.get(name):
            return f"{prefix}:{payload[name]}"
    return ""


@dataclass
class AlertRecord:
    """One alert as the desk keeps it. ``at`` is ``occurred_at`` in Unix seconds (the listing's order)."""

    alert_id: str
    type: str = ""
    occurred_at: str = ""
    at: float = 0.0
    source: str = ""
    subject: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    acknowledged_at: str = ""
    acknowledged_by: str = ""
    acknowledged_role: str = ""
    acknowledged_event: str = ""  # the event id of the acknowledgement that counted

    @property
    def known(self) -> bool:
        """False for an acknowledgement whose alert was not read yet (possible during a rebuild)."""
        return bool(self.type)

    @property
    def state(self) -> str:
        return ACKNOWLEDGED if self.acknowledged_at else OPEN

    @classmethod
    def from_fields(cls, alert_id: str, fields: dict[str, str]) -> AlertRecord:
        return cls(
            alert_id=alert_id, type=fields.get("type", ""), occurred_at=fields.get("occurred_at", ""),
            at=float(fields.get("at") or 0.0), source=fields.get("source", ""), subject=fields.get("subject", ""),
            payload=json.loads(fields["payload"]) if fields.get("payload") else {},
            acknowledged_at=fields.get("acknowledged_at", ""), acknowledged_by=fields.get("acknowledged_by", ""),
            acknowledged_role=fields.get("acknowledged_role", ""),
            acknowledged_event=fields.get("acknowledged_event", ""),
        )


def alert_fields(alert_id: str, event_type: str, occurred_at: str, at: float, source: str,
                 payload: dict[str, Any]) -> dict[str, str | float]:
    """The hash fields an alert event writes (never the acknowledgement's, so the two commute)."""
    return {"alert_id": alert_id, "type": event_type, "occurred_at": occurred_at, "at": at, "source": source,
            "subject": subject_of(payload), "payload": json.dumps(payload, ensure_ascii=False, sort_keys=True)}


def acknowledgement_fields(occurred_at: str, acknowledged_by: str, role: str, event_id: str) -> dict[str, str]:
    """The hash fields an ``alert.acknowledged`` writes, each only if not set (the first one counts)."""
    return {"acknowledged_at": occurred_at, "acknowledged_by": acknowledged_by, "acknowledged_role": role,
            "acknowledged_event": event_id}


class AlertNotFound(LookupError):
    pass


class AlreadyAcknowledged(Exception):
    """The alert was acknowledged before; the message says when and by whom."""

    def __init__(self, record: AlertRecord) -> None:
        role = f" ({record.acknowledged_role})" if record.acknowledged_role else ""
        super().__init__(f"alert {record.alert_id} was already acknowledged at {record.acknowledged_at} by "
                         f"{record.acknowledged_by}{role}")
        self.record = record


def check_acknowledgeable(record: AlertRecord | None, alert_id: str) -> AlertRecord:
    """The open alert ``alert_id``, or AlertNotFound / AlreadyAcknowledged."""
    if record is None or not record.known:
        raise AlertNotFound(f"no alert {alert_id}")
    if record.state == ACKNOWLEDGED:
        raise AlreadyAcknowledged(record)
    return record


# -- webhooks ----------------------------------------------------------------------------------------------

def webhook_body(alert_id: str, event_type: str, occurred_at: str, source: str, payload: dict[str, Any]) -> bytes:
    """The JSON a webhook receives for a new alert: the same bytes on every attempt (kept in the queue)."""
    return json.dumps({"alert_id": alert_id, "type": event_type, "occurred_at": occurred_at, "source": source,
                       "subject": subject_of(payload), "payload": payload},
                      ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``<timestamp>.<body>`` with ``secret``."""
    digest = hmac.new(secret, str(int(timestamp)).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: bytes, timestamp: str, signature: str, body: bytes, now: float,
                     tolerance: float = SIGNATURE_TOLERANCE_SECONDS) -> bool:
    """What a receiver checks: the timestamp is recent and the signature is ours over it and the body."""
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now - sent) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, sent, body), signature or "")


def delivery_headers(secret: bytes | None, timestamp: int, body: bytes, alert_id: str, attempt: int) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": "ShopAI-Alerts/1",
               ALERT_ID_HEADER: alert_id, ATTEMPT_HEADER: str(attempt), TIMESTAMP_HEADER: str(int(timestamp))}
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    return headers


DELIVERED, RETRY, REFUSED = "delivered", "retry", "refused"
# Answers worth another try: the receiver is overloaded, restarting, or asks to wait.
RETRYABLE_STATUSES = frozenset({408, 425, 429})


def classify(status: int | None) -> str:
    """A receiver's answer: 2xx delivered; no answer (refused connection, timeout), 408/425/429 and 5xx
    are tried again; any other answer (3xx, 4xx) refuses the alert for good (a wrong URL or a receiver
    that rejects it: trying again would get the same)."""
    if status is None or status in RETRYABLE_STATUSES or status >= 500:
        return RETRY
    return DELIVERED if 200 <= status < 300 else REFUSED


def retry_delay(attempt: int, base: float, cap: float, rng: random.Random,
                retry_after: float | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...): exponential back-off
    ``base * 2^(attempt-1)``, capped at ``cap``, with "equal jitter" (half fixed, half random) so receivers
    coming back are not hit by every sender at once; a receiver's Retry-After is honoured up to ``cap``."""
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    delay = ceiling / 2 + rng.uniform(0, ceiling / 2)
    if retry_after is not None and retry_after > delay:
        delay = min(cap, retry_after)
    return delay


def next_step(status: int | None, attempt: int, max_attempts: int) -> str:
    """After attempt ``attempt`` answered ``status``: DELIVERED, RETRY, or REFUSED (to the dead letters:
    refused by the receiver, or the last try failed)."""
    outcome = classify(status)
    if outcome == RETRY and attempt >= max_attempts:
        return REFUSED
    return outcome
