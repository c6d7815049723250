"""The alerts desk's projection and webhook worker on the real Redis, without a broker: a fake receiver
(``post``), a fake clock and a fake dead-letter sender make every step deterministic. An alert and its
acknowledgement give the same record in either order, and the first acknowledgement counts; a delivery
is queued once per webhook, retried at its back-off, refused for good on a 4xx, dead-lettered after the
last try (once, even when sending the dead letter failed the first time), dropped when its webhook is no
longer configured; an old alert read again is kept but not queued; who scanned a code is a pseudonym; a
receiver that hangs holds up only its own deliveries."""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, datetime

import pytest

from services.common.events import envelope, parse_event
from services.common.projection import Ops, RedisApplier
from services.common.pseudonyms import pseudonymise
from services.common.settings import Settings
from services.forecasting.alerts import AlertKeys as K
from services.forecasting.alerts import AlertsProjection, AlertStore, delivery_id, pending
from services.forecasting.webhooks import WebhookWorker
from tests.support import wait_for

pytestmark = pytest.mark.integration
HOOK_A, HOOK_B = "http://a.example/hook", "https://b.example/hook?token=x"
HOOKS = (HOOK_A, HOOK_B)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Receiver:
    """Answers from a script: one (status, error, retry_after) per call; records what it was sent."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, bytes, dict]] = []

    def __call__(self, url, body, headers, timeout):
        self.calls.append((url, body, dict(headers)))
        return self.answers.pop(0) if self.answers else (200, "", None)


def apply(projection: AlertsProjection, *events) -> None:
    applier = RedisApplier(projection.redis, projection.group, 3600)
    items = []
    for offset, event in enumerate(events):
        ops = Ops({}, ("alerts.v1", 0, offset))
        projection.apply(event, ops)
        items.append((event.event_id, ops.commands))
    applier.apply(items)


def reorder(clock: Clock):
    return parse_event(envelope("alert.reorder_needed", {"product_id": "p1", "on_hand": 2}, "forecasting",
                                occurred_at=datetime.fromtimestamp(clock.now, UTC)))


def ack(alert_id: str, by: str):
    return parse_event(envelope("alert.acknowledged", {"alert_id": alert_id, "acknowledged_by": by,
                                                       "role": "admin"}, "forecasting"))


def worker(redis_client, clock, receiver, letters, urls=(HOOK_A, HOOK_B), attempts=3) -> WebhookWorker:
    settings = Settings(alert_webhooks=",".join(urls), alert_webhook_secret="k", alert_webhook_attempts=attempts,
                        alert_webhook_retry_base_seconds=10, alert_webhook_retry_max_seconds=100)
    return WebhookWorker(redis_client, settings, lambda topic, key, letter: letters.append((topic, key, letter)),
                         post=receiver, clock=clock, rng=random.Random(3))


def test_an_alert_and_its_acknowledgements_give_the_same_record_in_either_order(redis_client):
    clock = Clock(1_800_000_000.0)
    projection = AlertsProjection(redis_client, (), clock=clock)
    alert = reorder(clock)
    first, second = ack(alert.event_id, "key-first"), ack(alert.event_id, "key-second")
    apply(projection, first, alert, second)  # a rebuild may read the acknowledgement first
    record = AlertStore(redis_client).get(alert.event_id)
    assert record.state == "acknowledged" and record.acknowledged_by == "key-first"
    assert record.acknowledged_event == first.event_id and record.subject == "product:p1"
    assert redis_client.hget(K.alert(alert.event_id), "offset") == "1"  # where the alert is in the log
    assert AlertStore(redis_client).page(state="open") == ([], "")


def test_a_delivery_is_retried_at_its_back_off_then_delivered_once(redis_client):
    clock = Clock(1_800_000_000.0)
    apply(AlertsProjection(redis_client, (HOOK_A, HOOK_B), clock=clock), alert := reorder(clock))
    assert pending(redis_client, HOOKS) == 2  # one per webhook
    receiver, letters = Receiver((503, "HTTP 503", None), (None, "no answer: timed out", None)), []
    hooks = worker(redis_client, clock, receiver, letters)

    assert hooks.tick() == 2 and len(receiver.calls) == 2
    assert hooks.tick() == 0  # both wait for their back-off (5..10 s after the first failure)
    clock.now += 10
    assert hooks.tick() == 2 and pending(redis_client, HOOKS) == 0
    sent = [(url, headers["X-ShopAI-Delivery-Attempt"]) for url, _, headers in receiver.calls]
    assert sorted(sent) == [(HOOK_A, "1"), (HOOK_A, "2"), (HOOK_B, "1"), (HOOK_B, "2")]
    assert {body for _, body, _ in receiver.calls} == {receiver.calls[0][1]}  # the same bytes every time
    assert all(h["X-ShopAI-Alert-Id"] == alert.event_id for _, _, h in receiver.calls) and letters == []


def test_a_refusal_is_dead_lettered_at_once_and_the_last_failed_try_after_the_attempts(redis_client):
    clock = Clock(1_800_000_000.0)
    apply(AlertsProjection(redis_client, (HOOK_A, HOOK_B), clock=clock), alert := reorder(clock))
    assert AlertStore(redis_client).applied(alert.event_id)
    answers = {HOOK_A: [(404, "HTTP 404", None)], HOOK_B: [(500, "HTTP 500", None)] * 3}

    def receiver(url, body, headers, timeout):
        return answers[url].pop(0)

    letters: list = []
    hooks = worker(redis_client, clock, receiver, letters)
    for _ in range(3):
        hooks.tick()
        clock.now += 100
    assert [(t, letter["reason"]) for t, _, letter in letters] == [
        ("alerts.v1.dlq", "webhook 1:a.example refused the alert: HTTP 404"),
        ("alerts.v1.dlq", "webhook 2:b.example did not take the alert in 3 attempts: HTTP 500")]
    letter = letters[0][2]
    assert letter["consumer_group"] == "forecasting-alert-webhooks" and letter["topic"] == "alerts.v1"
    assert letter["offset"] == "0" and alert.event_id in letter["value"]
    assert pending(redis_client, HOOKS) == 0 and answers == {HOOK_A: [], HOOK_B: []}
    assert redis_client.smembers(K.failed(alert.event_id)) == {HOOK_A, HOOK_B}
    assert not AlertStore(redis_client).applied(alert.event_id)  # so that a replay is applied again


def test_a_dead_letter_that_could_not_be_sent_is_sent_later_without_another_attempt(redis_client):
    clock = Clock(1_800_000_000.0)
    apply(AlertsProjection(redis_client, (HOOK_A,), clock=clock), reorder(clock))
    receiver, letters = Receiver((410, "HTTP 410", None)), []
    broker_away = [True]

    def dead_letter(topic, key, letter):
        if broker_away[0]:
            raise OSError("broker away")
        letters.append(letter)

    hooks = worker(redis_client, clock, receiver, letters, urls=(HOOK_A,))
    hooks.dead_letter = dead_letter
    hooks.tick()
    assert letters == [] and pending(redis_client, HOOKS) == 1  # kept, under its lease
    broker_away[0] = False
    clock.now += hooks.lease + 1
    hooks.tick()
    assert len(letters) == 1 and len(receiver.calls) == 1 and pending(redis_client, HOOKS) == 0


def test_a_webhook_no_longer_configured_is_dropped_and_an_old_alert_is_not_queued(redis_client):
    clock = Clock(1_800_000_000.0)
    apply(AlertsProjection(redis_client, HOOKS, clock=clock), alert := reorder(clock))
    receiver, letters = Receiver(), []
    hooks = worker(redis_client, clock, receiver, letters, urls=(HOOK_B,))
    assert hooks.drop_unconfigured() == 1  # HOOK_A's delivery, at start
    hooks.tick()
    assert [url for url, _, _ in receiver.calls] == [HOOK_B] and pending(redis_client, HOOKS) == 0
    assert not redis_client.exists(K.delivery(delivery_id(alert.event_id, HOOK_A)))

    clock.now += 2 * 86400
    old = reorder(Clock(clock.now - 86400 - 1))
    apply(AlertsProjection(redis_client, (HOOK_A,), max_age_seconds=86400, clock=clock), old)
    assert AlertStore(redis_client).get(old.event_id).known and pending(redis_client, HOOKS) == 0


def test_who_scanned_a_code_is_shown_and_sent_as_a_pseudonym(redis_client):
    clock = Clock(1_800_000_000.0)
    scan = parse_event(envelope("alert.code_suspicious", {"verdict": "suspicious", "serial": "S-1", "product_id": "p1",
                                                          "scanned_by": "u42"}, "vision",
                                occurred_at=datetime.fromtimestamp(clock.now, UTC)))
    apply(AlertsProjection(redis_client, (HOOK_A,), clock=clock, pseudonyms=b"analytics-key"), scan)
    shown = pseudonymise("u42", b"analytics-key")
    assert AlertStore(redis_client).get(scan.event_id).payload["scanned_by"] == shown
    receiver = Receiver()
    worker(redis_client, clock, receiver, [], urls=(HOOK_A,)).tick()
    assert json.loads(receiver.calls[0][1])["payload"]["scanned_by"] == shown and b"u42" not in receiver.calls[0][1]


def test_a_receiver_that_hangs_delays_only_its_own_deliveries(redis_client):
    clock = Clock(1_800_000_000.0)
    projection = AlertsProjection(redis_client, HOOKS, clock=clock)
    alerts = [reorder(clock) for _ in range(6)]
    apply(projection, *alerts)
    release, delivered = threading.Event(), []

    def receiver(url, body, headers, timeout):
        if url == HOOK_A:
            release.wait(30)  # hangs until the test lets it answer
        delivered.append((url, headers["X-ShopAI-Alert-Id"]))
        return 200, "", None

    hooks = worker(redis_client, clock, receiver, [])
    stop = threading.Event()
    runner = threading.Thread(target=hooks.run, args=(stop,))
    runner.start()
    try:
        wait_for(lambda: len([u for u, _ in delivered if u == HOOK_B]) == 6, 20, what="HOOK_B's six deliveries")
        assert [u for u, _ in delivered if u == HOOK_A] == []  # still hanging, and B did not wait for it
        release.set()
        wait_for(lambda: pending(redis_client, HOOKS) == 0, 20, what="HOOK_A's deliveries")
    finally:
        release.set()
        stop.set()
        runner.join()
    assert sorted(delivered) == sorted((u, a.event_id) for u in HOOKS for a in alerts)
