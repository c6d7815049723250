"""gateway/impressions.py: the served answers' records reach the broker even when the broker refused some of
them for a while (found by the chaos benchmark: after a broker restart every record failed for good)."""

from __future__ import annotations

import itertools
import json
import threading
import time

from kafka.errors import KafkaTimeoutError
from kafka.future import Future

from gateway import impressions
from gateway.impressions import ImpressionLog


class Producer:
    """Answers each send with a kafka-python Future; the first ``fail`` sends fail (asynchronously, as a broker
    that went away does), ``raise_first`` sends raise at once (no metadata: the broker is down)."""

    def __init__(self, fail: int = 0, raise_first: int = 0) -> None:
        self.fail = fail
        self.raise_first = raise_first
        self.sent: list[tuple[str, str, bytes]] = []
        self.lock = threading.Lock()

    def send(self, topic: str, key: str, value: bytes) -> Future:
        assert isinstance(key, str) and isinstance(value, bytes), (key, value)
        future = Future()
        with self.lock:
            if self.raise_first:
                self.raise_first -= 1
                raise KafkaTimeoutError("Failed to update metadata after 60.0 secs.")
            if self.fail:
                self.fail -= 1
                threading.Timer(0.01, future.failure, (KafkaTimeoutError("Batch expired"),)).start()
                return future
            self.sent.append((topic, key, value))
        future.success(None)
        return future


def served(producer: Producer, n: int) -> set[str]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with producer.lock:
            keys = {key for _, key, _ in producer.sent}
        if len(keys) >= n:
            return keys
        time.sleep(0.01)
    raise AssertionError(f"only {len(keys)} of {n} records reached the broker")


def rid(i: int) -> str:
    return f"{i:032x}"


def test_records_the_broker_failed_are_sent_again_with_their_own_key_and_value(monkeypatch) -> None:
    monkeypatch.setattr(impressions, "RETRY_SECONDS", 0.05)
    producer = Producer(fail=3)
    log = ImpressionLog(lambda: producer)
    for i in range(5):
        log.record({"recommendation_id": rid(i), "user_id": "u1", "strategy": "hybrid"})
    assert served(producer, 5) == {rid(i) for i in range(5)}
    for _, key, value in producer.sent:
        record = json.loads(value)
        assert record["type"] == "recommendation.served" and record["payload"]["recommendation_id"] == key
    log.close()


def test_a_broker_that_is_down_delays_the_records_without_spinning(monkeypatch) -> None:
    monkeypatch.setattr(impressions, "RETRY_SECONDS", 0.2)
    producer = Producer(raise_first=2)
    attempts = []
    made = lambda: attempts.append(time.monotonic()) or producer
    log = ImpressionLog(made)
    log.record({"recommendation_id": rid(1), "user_id": "u1", "strategy": "hybrid"})
    for i in range(2, 40):  # answers keep coming while the broker is down: they must not hurry the retries
        log.record({"recommendation_id": rid(i), "user_id": "u1", "strategy": "hybrid"})
        time.sleep(0.005)
    assert len(served(producer, 39)) == 39
    gaps = [b - a for a, b in itertools.pairwise(attempts)][:2]
    assert all(gap >= 0.15 for gap in gaps), gaps
    log.close()
