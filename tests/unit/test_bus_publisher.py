"""EventPublisher: a broker that does not acknowledge in time is a PublishError (a 503 with the reason at
POST /v1/events), never an unhandled KafkaTimeoutError (a 500: found by make chaos while the broker restarted)."""

from __future__ import annotations

import threading

import pytest
from kafka.errors import KafkaStorageError, KafkaTimeoutError, NotLeaderForPartitionError, UnknownError

from services.common.bus import BrokerStorageError, EventPublisher, PublishError
from services.common.events import new_event


class Acknowledged:
    def get(self, timeout=None):
        return None


class Refused:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def get(self, timeout=None):
        raise self.error


class Producer:
    def __init__(self, send_error: Exception | None = None, flush_error: Exception | None = None,
                 ack_error: Exception | None = None) -> None:
        self.send_error, self.flush_error, self.ack_error = send_error, flush_error, ack_error

    def send(self, topic, key=None, value=None):
        if self.send_error:
            raise self.send_error
        return Refused(self.ack_error) if self.ack_error else Acknowledged()

    def flush(self, timeout=None):
        if self.flush_error:
            raise self.flush_error


def publisher(producer: Producer) -> EventPublisher:
    p = EventPublisher.__new__(EventPublisher)
    p._producer, p._vault, p._own_vault, p._vault_lock = producer, None, False, threading.Lock()
    return p


def view():
    return new_event("interaction.view", {"user_id": "u1", "product_id": "p1"})


def test_acknowledged_events_are_counted() -> None:
    assert publisher(Producer()).publish([view(), view()]) == 2


@pytest.mark.parametrize("producer", [Producer(flush_error=KafkaTimeoutError("Timeout waiting for future")),
                                      Producer(send_error=KafkaTimeoutError("Failed to update metadata"))],
                         ids=["not acknowledged in time", "no metadata"])
def test_a_broker_that_does_not_answer_is_a_publish_error(producer: Producer) -> None:
    with pytest.raises(PublishError, match="broker"):
        publisher(producer).publish([view()], timeout=1)


@pytest.mark.parametrize("error", [UnknownError(), KafkaStorageError()],
                         ids=["tansu: its S3 store refused the write", "Kafka: a failed log directory"])
def test_a_failed_storage_write_is_named_as_such(error: Exception) -> None:
    """The embedded broker answers a produce whose S3 PUT failed (a full disk: 507) with UNKNOWN_SERVER_ERROR;
    tests/integration/test_broker_disk_full.py fills a real disk."""
    with pytest.raises(BrokerStorageError, match="could not write the events .* to its storage"):
        publisher(Producer(ack_error=error)).publish([view()], timeout=1)


def test_another_refusal_is_a_plain_publish_error() -> None:
    with pytest.raises(PublishError) as refused:
        publisher(Producer(ack_error=NotLeaderForPartitionError())).publish([view()], timeout=1)
    assert not isinstance(refused.value, BrokerStorageError)
