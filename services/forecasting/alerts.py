"""The alerts desk: every alert of ``alerts.v1`` (any service's) kept in Redis, acknowledged by staff, and
queued for the webhooks (webhooks.py delivers them).

- ``AlertsProjection`` (consumer group ``forecasting-alerts``, through the shared exactly-once consumer)
  keeps each alert under its event id: type, time, source, subject, payload (who scanned a code as a
  pseudonym, like every staff read of shoppers), and its acknowledgement.
  ``alert.acknowledged`` writes its fields only where none are set, so the first acknowledgement in the
  log counts, and an alert and its acknowledgement give the same record in either order (they may sit
  on different partitions: a rebuild can read the acknowledgement first). A new alert is queued once per
  configured webhook in the same atomic step as it is stored, so a delivery is never queued twice nor
  lost; one older than ``SHOPAI_ALERT_WEBHOOK_MAX_AGE_SECONDS`` when read (a rebuild into a flushed Redis
  reads the whole topic again) is kept but not delivered. An alert read again after one of its
  deliveries was dead-lettered (a replay from ``alerts.v1.dlq``; the worker forgets the alert's
  exactly-once marker then) is queued again for those webhooks only.
- ``AlertStore`` reads them: one alert, or a page newest first by state and type.
- ``AlertDesk`` acknowledges: it checks the alert is open, publishes ``alert.acknowledged`` and waits until
  the projection applied it, so the answer is what every later read sees.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import redis

from services.common import topics
from services.common.cache import key
from services.common.events import Event, InvalidEvent, envelope, format_time
from services.common.projection import Ops, Projection, applied
from services.common.pseudonyms import pseudonymise
from services.forecasting.core.alerts import (
    ACKNOWLEDGED_TYPE,
    STATES,
    AlertNotFound,
    AlertRecord,
    AlreadyAcknowledged,
    acknowledgement_fields,
    alert_fields,
    check_acknowledgeable,
    webhook_body,
)

GROUP = "forecasting-alerts"
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
APPLY_WAIT_SECONDS = 1.5
_SCAN_CHUNK = 200


class AlertKeys:
    index = key("alerts", "index")            # zset alert id -> occurred_at (Unix seconds): every alert

    @staticmethod
    def queue(url: str) -> str:
        """Zset delivery id -> when it is due (Unix seconds): one webhook's schedule, so that a receiver
        that hangs delays only its own deliveries."""
        return key("alerts", "deliveries", _url_hash(url))

    @staticmethod
    def alert(alert_id: str) -> str:
        """Hash: core/alerts.py alert_fields and acknowledgement_fields, and where the alert is in the log."""
        return key("alerts", "alert", alert_id)

    @staticmethod
    def by_type(event_type: str) -> str:
        return key("alerts", "type", event_type)

    @staticmethod
    def delivery(delivery_id: str) -> str:
        """Hash: alert_id, url, body, attempts, last_error, and the alert's event and log position."""
        return key("alerts", "delivery", delivery_id)

    @staticmethod
    def failed(alert_id: str) -> str:
        """Set of the webhook URLs whose delivery of the alert went to the dead letters."""
        return key("alerts", "failed", alert_id)


K = AlertKeys


def _url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:12]


def delivery_id(alert_id: str, url: str) -> str:
    return f"{alert_id}:{_url_hash(url)}"


def pending(client: redis.Redis, urls: list[str] | tuple[str, ...]) -> int:
    """Deliveries waiting (due or not) for these webhooks."""
    return sum(int(client.zcard(K.queue(url))) for url in urls)


def _flat(fields: dict[str, Any]) -> list[object]:
    return [part for name, value in fields.items() for part in (name, value)]


def _record_key(payload: dict[str, Any], alert_id: str) -> str:
    return str(payload.get("product_id") or payload.get("service") or alert_id)


class AlertsProjection(Projection):
    group = GROUP
    topics = (topics.ALERTS,)

    def __init__(self, redis_client: redis.Redis, webhooks: list[str] | tuple[str, ...] = (),
                 max_age_seconds: float = 86400.0, clock: Callable[[], float] = time.time,
                 pseudonyms: bytes = b"") -> None:
        super().__init__(redis_client)
        self.webhooks = tuple(webhooks)
        self.max_age_seconds = max_age_seconds
        self.clock = clock
        self.pseudonyms = pseudonyms  # the analytics key: who scanned a code is shown as a pseudonym

    def _shown(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The payload as staff and webhooks see it: a scan's ``scanned_by`` (a shopper's id, as the scanner
        gave it) pseudonymised like every staff read of shoppers (services/common/pseudonyms.py)."""
        if not payload.get("scanned_by") or not self.pseudonyms:
            return payload
        return {**payload, "scanned_by": pseudonymise(str(payload["scanned_by"]), self.pseudonyms)}

    def apply(self, event: Event, ops: Ops) -> None:
        if event.family != "alert":
            raise InvalidEvent(f"{event.type} does not belong on {topics.ALERTS}")
        if event.type == ACKNOWLEDGED_TYPE:
            p = event.payload
            fields = acknowledgement_fields(format_time(event.occurred_at), str(p["acknowledged_by"]),
                                            str(p.get("role", "")), event.event_id)
            for name, value in fields.items():
                ops("HSETNX", K.alert(str(p["alert_id"])), name, value)
            return
        alert_id, at = event.event_id, event.occurred_at.timestamp()
        known = self._known(alert_id, ops)
        payload = self._shown(event.payload)
        fields: dict[str, Any] = alert_fields(alert_id, event.type, format_time(event.occurred_at), at,
                                              event.source, payload)
        if ops.source is not None:
            fields.update(topic=ops.source[0], partition=ops.source[1], offset=ops.source[2])
        ops("HSET", K.alert(alert_id), *_flat(fields))
        ops("ZADD", K.index, at, alert_id)
        ops("ZADD", K.by_type(event.type), at, alert_id)
        ops.batch_state.setdefault("alerts", set()).add(alert_id)
        if known:  # read again after a dead-lettered delivery: only those webhooks, whatever its age
            urls = [u for u in sorted(self.redis.smembers(K.failed(alert_id))) if u in self.webhooks]
            if urls:
                ops("SREM", K.failed(alert_id), *urls)
        else:
            fresh = self.clock() - at <= self.max_age_seconds
            urls = list(self.webhooks) if fresh else []
        self._enqueue(event, payload, fields, urls, ops)

    def _known(self, alert_id: str, ops: Ops) -> bool:
        return alert_id in ops.batch_state.get("alerts", ()) or bool(self.redis.hexists(K.alert(alert_id), "type"))

    def _enqueue(self, event: Event, payload: dict[str, Any], fields: dict[str, Any], urls: list[str],
                 ops: Ops) -> None:
        if not urls:
            return
        body = webhook_body(event.event_id, event.type, fields["occurred_at"], event.source, payload)
        now = self.clock()
        original = json.dumps(event.raw or event.to_dict(), ensure_ascii=False, separators=(",", ":"))
        for url in urls:
            did = delivery_id(event.event_id, url)
            ops("HSET", K.delivery(did), "alert_id", event.event_id, "url", url, "body", body.decode(),
                "attempts", 0, "queued_at", now, "event", original,
                "key", _record_key(event.payload, event.event_id),
                "partition", fields.get("partition", -1), "offset", fields.get("offset", -1))
            ops("HDEL", K.delivery(did), "last_error", "dead")
            ops("ZADD", K.queue(url), now, did)


class AlertStore:
    """The read side of the projection."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def get(self, alert_id: str) -> AlertRecord | None:
        fields = self.redis.hgetall(K.alert(alert_id)) if alert_id else {}
        return AlertRecord.from_fields(alert_id, fields) if fields else None

    def page(self, state: str = "", event_type: str = "", limit: int = DEFAULT_LIMIT,
             before: str = "") -> tuple[list[AlertRecord], str]:
        """Alerts newest first (of ``state`` and ``event_type`` when given), after the alert ``before``;
        and the cursor of the next page ("" on the last). ValueError for an unknown cursor or state."""
        if state and state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}")
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be 1..{MAX_LIMIT}")
        index = K.by_type(event_type) if event_type else K.index
        start = 0
        if before:
            rank = self.redis.zrevrank(index, before)
            if rank is None:
                raise ValueError(f"before {before!r} is not an alert of this listing (use the `next` of a page)")
            start = rank + 1
        found: list[AlertRecord] = []
        while len(found) < limit:
            ids = self.redis.zrevrange(index, start, start + _SCAN_CHUNK - 1)
            if not ids:
                break
            pipe = self.redis.pipeline(transaction=False)
            for alert_id in ids:
                pipe.hgetall(K.alert(alert_id))
            for offset, (alert_id, fields) in enumerate(zip(ids, pipe.execute())):
                if not fields:
                    continue
                record = AlertRecord.from_fields(alert_id, fields)
                if not state or record.state == state:
                    found.append(record)
                    if len(found) == limit:
                        start += offset + 1
                        break
            else:
                start += len(ids)
        more = len(found) == limit and self.redis.zcard(index) > start
        return found, found[-1].alert_id if more else ""

    def applied(self, event_id: str) -> bool:
        return applied(self.redis, GROUP, event_id)


class AlertPending(Exception):
    """The acknowledgement is in the log but not applied yet."""


class AlertDesk:
    """Staff acknowledgements, as ``alert.acknowledged`` events on ``alerts.v1`` keyed by the alert id."""

    def __init__(self, store: AlertStore, publish: Callable[[str, str, dict], None],
                 wait_seconds: float = APPLY_WAIT_SECONDS) -> None:
        self.store = store
        self.publish = publish
        self.wait_seconds = wait_seconds

    def acknowledge(self, alert_id: str, by: str, role: str) -> AlertRecord:
        """The alert once acknowledged by ``by``; AlertNotFound, AlreadyAcknowledged (by someone else
        first: the log's first acknowledgement counts) or AlertPending."""
        check_acknowledgeable(self.store.get(alert_id), alert_id)
        event = envelope(ACKNOWLEDGED_TYPE, {"alert_id": alert_id, "acknowledged_by": by, "role": role},
                         "forecasting")
        self.publish(topics.ALERTS, alert_id, event)
        deadline = time.monotonic() + self.wait_seconds
        while not self.store.applied(event["event_id"]):
            if time.monotonic() >= deadline:
                raise AlertPending(f"the acknowledgement is in {topics.ALERTS} (event {event['event_id']}) but "
                                   "not applied yet; read the alert again shortly")
            time.sleep(0.02)
        record = self.store.get(alert_id)
        if record is None:
            raise AlertNotFound(f"no alert {alert_id}")
        if record.acknowledged_event != event["event_id"]:
            raise AlreadyAcknowledged(record)
        return record
