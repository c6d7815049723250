"""The recommendation answers the gateway served, published as ``recommendation.served`` records (impressions)
on ``recommendations.served.v1`` without slowing the answer.

A route hands the record to ``ImpressionLog.record`` (a queue append) and answers; one background thread (a
greenlet under gunicorn's gevent) sends what is queued through the gateway's Kafka producer (acks=all, its own
retries). A record the broker did not take (the producer's retries spent, or no broker) is queued again and
sent on the next round, so a broker outage delays impressions but does not lose them, up to ``capacity``
records waiting: beyond that the oldest are dropped and counted (``shopai_gateway_impressions_total``). The
consumer counts each record once (its event_id is the answer's recommendation_id), so a record sent twice
after an unclear failure is still one impression.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import Counter

from services.common import topics
from services.common.events import envelope
from services.common.logging import get_logger

log = get_logger(__name__)

IMPRESSIONS = Counter(
    "shopai_gateway_impressions_total",
    "Recommendation answers recorded on recommendations.served.v1, by outcome (published, retried, dropped).",
    ["outcome"],
)
RETRY_SECONDS = 1.0
BATCH = 500


class ImpressionLog:
    def __init__(self, producer: Callable[[], Any], capacity: int = 100_000) -> None:
        """``producer()`` returns the gateway's ``EventPublisher`` (made on first use, raising while the broker
        is away)."""
        self._producer = producer
        self._queue: collections.deque[tuple[str, bytes]] = collections.deque()
        self._capacity = capacity
        self._wake = threading.Condition()
        self._stop = False
        self._in_flight = 0
        self._thread: threading.Thread | None = None
        self._reached = False  # the producer was made once: the broker was there

    def record(self, payload: Mapping[str, Any]) -> None:
        """Queue one ``recommendation.served`` payload (its ``recommendation_id`` is also the event's id)."""
        record = envelope("recommendation.served", dict(payload), "gateway", event_id=_uuid(payload["recommendation_id"]))
        value = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
        self._put([(str(payload["recommendation_id"]), value)])

    def _put(self, records: list[tuple[str, bytes]], front: bool = False) -> None:
        with self._wake:
            if front:
                self._queue.extendleft(reversed(records))
            else:
                self._queue.extend(records)
            while len(self._queue) > self._capacity:
                self._queue.popleft()
                IMPRESSIONS.labels("dropped").inc()
            if self._thread is None and not self._stop:
                self._thread = threading.Thread(target=self._run, name="gateway-impressions", daemon=True)
                self._thread.start()
            self._wake.notify()

    def pending(self) -> int:
        with self._wake:
            return len(self._queue) + self._in_flight

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._stop:
                    self._wake.wait()
                if not self._queue:
                    return
                batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
                self._in_flight += len(batch)
            try:
                self._send(batch)
            except Exception as exc:  # noqa: BLE001 - no broker yet: keep them and try again
                log.warning("impressions_not_published", records=len(batch), error=str(exc))
                IMPRESSIONS.labels("retried").inc(len(batch))
                self._put(batch, front=True)
                with self._wake:
                    self._in_flight -= len(batch)
                    # New answers notify the condition: wait out the whole pause all the same.
                    retry_at = time.monotonic() + RETRY_SECONDS
                    while not self._stop and (pause := retry_at - time.monotonic()) > 0:
                        self._wake.wait(pause)
                    if self._stop:
                        return
                continue
            with self._wake:
                self._in_flight -= len(batch)

    def _send(self, batch: list[tuple[str, bytes]]) -> None:
        producer = self._producer()
        self._reached = True
        for rid, value in batch:
            future = producer.send(topics.RECOMMENDATIONS_SERVED, rid, value)
            future.add_callback(lambda _meta: IMPRESSIONS.labels("published").inc())
            future.add_errback(self._failed, rid, value)

    def _failed(self, rid: str, value: bytes, exc: Exception) -> None:
        """The future's errback: kafka-python calls it with the arguments given to ``add_errback`` first and
        the exception last."""
        log.warning("impression_not_acknowledged", recommendation_id=rid, error=str(exc))
        IMPRESSIONS.labels("retried").inc()
        self._put([(rid, value)])

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (for at most ``timeout`` seconds), then stop. When the broker was never
        reached there is nothing to wait for: what is queued is dropped (and counted)."""
        with self._wake:
            self._stop = True
            self._wake.notify()
            thread = self._thread
        if thread is not None and self._reached:
            thread.join(timeout)
        with self._wake:
            if self._queue:
                IMPRESSIONS.labels("dropped").inc(len(self._queue))
                self._queue.clear()


def _uuid(recommendation_id: str) -> str:
    """The 32 hex digits as the envelope's UUID form."""
    h = str(recommendation_id)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
