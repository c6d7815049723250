"""The alerts desk's pure rules (services/forecasting/core/alerts.py): an alert's state and its
acknowledgement, the webhook signature a receiver verifies, which answers are delivered, retried or refused,
and the back-off schedule; the alert events' validation (services/common/events.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import random

import pytest

from services.common import topics
from services.common.events import InvalidEvent, envelope, parse_event
from services.common.models import gate_alert
from services.forecasting.core import alerts as A

ALERT_ID = "3f2b8c1e-0d7a-4c55-9a43-2f1d6f3f9b10"


def record(**fields) -> A.AlertRecord:
    base = {"type": "alert.reorder_needed", "occurred_at": "2026-12-01T10:00:00Z", "at": "1796119200",
            "source": "forecasting", "subject": "product:p1", "payload": json.dumps({"product_id": "p1"})}
    return A.AlertRecord.from_fields(ALERT_ID, {**base, **fields})


# ------------------------------------------------------------------ the alert and its state


def test_the_subject_is_the_most_specific_thing_an_alert_names():
    assert A.subject_of({"product_id": "p1", "serial": "S-9"}) == "serial:S-9"
    assert A.subject_of({"product_id": "p1", "serial": ""}) == "product:p1"
    assert A.subject_of({"service": "recommender", "model_version": "v2"}) == "service:recommender"
    assert A.subject_of({"verdict": "counterfeit"}) == ""


def test_an_alert_is_open_until_acknowledged_and_then_names_when_and_by_whom():
    opened = record()
    assert opened.known and opened.state == A.OPEN
    assert A.check_acknowledgeable(opened, ALERT_ID) is opened

    acked = record(**A.acknowledgement_fields("2026-12-01T11:00:00Z", "key-1234abcd", "admin", "e-1"))
    assert acked.state == A.ACKNOWLEDGED and acked.acknowledged_event == "e-1"
    with pytest.raises(A.AlreadyAcknowledged, match="at 2026-12-01T11:00:00Z by key-1234abcd \\(admin\\)"):
        A.check_acknowledgeable(acked, ALERT_ID)


def test_an_unknown_alert_or_an_acknowledgement_without_its_alert_is_not_found():
    with pytest.raises(A.AlertNotFound, match=ALERT_ID):
        A.check_acknowledgeable(None, ALERT_ID)
    ack_only = A.AlertRecord.from_fields(ALERT_ID, A.acknowledgement_fields("2026-12-01T11:00:00Z", "k", "", "e"))
    assert not ack_only.known
    with pytest.raises(A.AlertNotFound):
        A.check_acknowledgeable(ack_only, ALERT_ID)


def test_the_alert_and_its_acknowledgement_write_different_fields_so_their_order_does_not_matter():
    alert = A.alert_fields(ALERT_ID, "alert.reorder_needed", "2026-12-01T10:00:00Z", 1.0, "forecasting",
                           {"product_id": "p1"})
    ack = A.acknowledgement_fields("2026-12-01T11:00:00Z", "key-1", "admin", "e-1")
    assert not set(alert) & set(ack)


# ------------------------------------------------------------------ the signature


def test_the_signature_is_hmac_sha256_of_the_timestamp_and_the_exact_body():
    body = A.webhook_body(ALERT_ID, "alert.reorder_needed", "2026-12-01T10:00:00Z", "forecasting",
                          {"product_id": "p1", "on_hand": 2})
    expected = hmac.new(b"s3cret", b"1796119200." + body, hashlib.sha256).hexdigest()
    assert A.sign(b"s3cret", 1796119200, body) == f"sha256={expected}"
    assert json.loads(body)["subject"] == "product:p1" and json.loads(body)["alert_id"] == ALERT_ID


def test_a_receiver_accepts_only_a_recent_timestamp_signed_with_the_secret_over_that_body():
    body = b'{"alert_id":"x"}'
    headers = A.delivery_headers(b"s3cret", 1000, body, ALERT_ID, 3)
    ts, sig = headers[A.TIMESTAMP_HEADER], headers[A.SIGNATURE_HEADER]
    assert headers[A.ALERT_ID_HEADER] == ALERT_ID and headers[A.ATTEMPT_HEADER] == "3"
    assert A.verify_signature(b"s3cret", ts, sig, body, now=1100)
    assert not A.verify_signature(b"other", ts, sig, body, now=1100)  # another key
    assert not A.verify_signature(b"s3cret", ts, sig, body + b" ", now=1100)  # the body changed
    assert not A.verify_signature(b"s3cret", "1001", sig, body, now=1100)  # the timestamp changed
    assert not A.verify_signature(b"s3cret", ts, sig, body, now=1000 + A.SIGNATURE_TOLERANCE_SECONDS + 1)  # replayed
    assert not A.verify_signature(b"s3cret", "soon", sig, body, now=1100)


def test_without_a_secret_requests_are_not_signed():
    assert A.SIGNATURE_HEADER not in A.delivery_headers(None, 1000, b"{}", ALERT_ID, 1)


# ------------------------------------------------------------------ answers and retries


@pytest.mark.parametrize(("status", "outcome"), [
    (200, A.DELIVERED), (204, A.DELIVERED), (None, A.RETRY), (500, A.RETRY), (503, A.RETRY), (429, A.RETRY),
    (408, A.RETRY), (400, A.REFUSED), (404, A.REFUSED), (410, A.REFUSED), (301, A.REFUSED),
])
def test_answers_are_delivered_retried_or_refused(status, outcome):
    assert A.classify(status) == outcome


def test_the_last_failed_attempt_is_refused_and_a_refusal_is_never_retried():
    assert A.next_step(503, 4, 5) == A.RETRY
    assert A.next_step(503, 5, 5) == A.REFUSED
    assert A.next_step(None, 5, 5) == A.REFUSED
    assert A.next_step(404, 1, 5) == A.REFUSED
    assert A.next_step(200, 5, 5) == A.DELIVERED


def test_back_off_doubles_within_jitter_and_stops_at_the_cap():
    rng = random.Random(7)
    for attempt in range(1, 12):
        ceiling = min(60.0, 2.0 * 2 ** (attempt - 1))
        delays = [A.retry_delay(attempt, 2.0, 60.0, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (attempt, delays)
        assert len(set(delays)) > 1  # jittered: receivers coming back are not hit all at once


def test_retry_after_is_honoured_up_to_the_cap():
    rng = random.Random(1)
    assert A.retry_delay(1, 1.0, 60.0, rng, retry_after=30.0) == 30.0
    assert A.retry_delay(1, 1.0, 60.0, rng, retry_after=3600.0) == 60.0
    assert A.retry_delay(1, 1.0, 60.0, rng, retry_after=0.0) <= 1.0


# ------------------------------------------------------------------ the alert events


def test_the_services_alerts_validate_and_route_to_alerts_v1():
    gate = gate_alert("recommender", "v2", {"gate": {"serve": False, "metric": "ndcg", "new": None,
                                                      "serving": 0.5, "serving_version": "v1", "reason": "worse"}})
    assert parse_event(gate).type == "alert.model_gate_failed"
    reorder = parse_event(envelope("alert.reorder_needed", {"product_id": "p1", "on_hand": 2, "reorder_point": 5.5,
                                                            "order_quantity": 10, "stockout_risk": 0.3,
                                                            "days_of_cover": 1.5, "title": "Shirt"}, "forecasting"))
    assert reorder.topic == topics.ALERTS
    scan = {"verdict": "counterfeit", "reasons": ["never issued"], "location": "", "scanned_by": "",
            "product_id": "", "batch": "", "serial": "", "payload": "x"}
    assert parse_event(envelope("alert.counterfeit_detected", scan, "vision")).type == "alert.counterfeit_detected"
    assert "alert" in topics.INTERNAL_FAMILIES
    assert topics.dlq(topics.ALERTS) in topics.all_topics()


@pytest.mark.parametrize(("event_type", "payload", "reason"), [
    ("alert.acknowledged", {"alert_id": ALERT_ID}, "acknowledged_by"),
    ("alert.acknowledged", {"alert_id": "nope", "acknowledged_by": "key-1"}, "UUID"),
    ("alert.reorder_needed", {"on_hand": 1}, "product_id"),
    ("alert.model_gate_failed", {"service": "vision"}, "model_version"),
    ("alert.code_suspicious", {"serial": "S"}, "verdict"),
    ("alert.reorder_needed", {"product_id": "p1", "colour": "red"}, "colour"),
])
def test_bad_alert_events_are_refused_with_the_reason(event_type, payload, reason):
    with pytest.raises(InvalidEvent, match=reason):
        parse_event(envelope(event_type, payload, "forecasting"))


def test_webhook_urls_are_checked_at_start_and_named_by_position():
    from services.common.settings import Settings

    assert Settings(alert_webhooks=" https://a.example/h?token=x , http://b:8080/ ").alert_webhook_urls == [
        "https://a.example/h?token=x", "http://b:8080/"]
    assert Settings().alert_webhook_urls == []
    with pytest.raises(ValueError, match="SHOPAI_ALERT_WEBHOOKS: entry 2 is not an http"):
        Settings(alert_webhooks="https://a.example/h,ftp://host/")
