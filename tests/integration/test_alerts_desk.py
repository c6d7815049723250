"""The alerts desk on the forecasting service, against the real broker and Redis, with real HTTP receivers
(http.server in a thread): alerts of every kind are listed and acknowledged through REST (404, 409 with
when and by whom), delivered signed to every webhook exactly once although the receivers were down for a
while (one answering 503, one not listening) and the service restarted meanwhile; rebuilt from the topic
into a flushed Redis; and a receiver that never comes back (or refuses) ends in alerts.v1.dlq, whose replay
delivers to it once it is back, and not again to a receiver that had the alert."""

from __future__ import annotations

import json
import threading
import time
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gateway.app import close_app, create_app
from services.common import topics
from services.common.bus import LazyEnvelopePublisher
from services.common.deadletters import DeadLetters
from services.common.events import envelope
from services.common.models import gate_alert
from services.forecasting.alerts import AlertKeys as K
from services.forecasting.alerts import pending
from services.forecasting.core.alerts import (
    ALERT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify_signature,
)
from tests.support import TEST_ADMIN_KEY, assert_problem, free_port, key_id_of, staff, wait_for

pytestmark = pytest.mark.integration
SECRET = "webhook-secret-for-the-tests"
UNKNOWN = "0c9d7a51-3b8e-4f0a-8d1c-6a2e5b4f7c39"


class Receiver:
    """A webhook receiver on a fixed port: answers ``status`` (and keeps what it accepted with 2xx), or is
    not listening at all between ``stop`` and ``start``."""

    def __init__(self, status: int = 200) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks/shopai"
        self.status = status
        self.hits = 0
        self.accepted: list[tuple[Message, bytes]] = []
        self.server: ThreadingHTTPServer | None = None

    def start(self, status: int | None = None) -> Receiver:
        if status is not None:
            self.status = status
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.hits += 1
                if 200 <= receiver.status < 300:
                    receiver.accepted.append((self.headers, body))  # names case-insensitive, as in HTTP
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def alert_ids(self) -> list[str]:
        return [json.loads(body)["alert_id"] for _, body in self.accepted]


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make(status: int = 200) -> Receiver:
        made.append(Receiver(status))
        return made[-1]

    yield make
    for receiver in made:
        receiver.stop()


def webhook_env(*receivers: Receiver, attempts: int = 50, **extra: str) -> dict[str, str]:
    """Short waits, so the test runs in seconds: 0.2 s doubling to at most 1 s between attempts."""
    return {"SHOPAI_ALERT_WEBHOOKS": ",".join(r.url for r in receivers), "SHOPAI_ALERT_WEBHOOK_SECRET": SECRET,
            "SHOPAI_ALERT_WEBHOOK_RETRY_BASE_SECONDS": "0.2", "SHOPAI_ALERT_WEBHOOK_RETRY_MAX_SECONDS": "1",
            "SHOPAI_ALERT_WEBHOOK_TIMEOUT_SECONDS": "2", "SHOPAI_ALERT_WEBHOOK_ATTEMPTS": str(attempts),
            "SHOPAI_FORECAST_AUTO_TRAIN": "false", **extra}


class Desk:
    """The forecasting service and a gateway in front of it."""

    def __init__(self, settings, start_service_with, env: dict[str, str]) -> None:
        self.settings = settings
        self.start_service_with = start_service_with
        self.env = env
        self.app = None
        self.start()

    def start(self, **env: str) -> None:
        self.service = self.start_service_with(self.settings, "forecasting", **{**self.env, **env})
        self.settings.forecasting.grpc_port = self.service.grpc_port
        close_app(self.app) if self.app is not None else None
        self.app = create_app(self.settings)
        self.client = staff(self.app.test_client())

    def stop(self) -> None:
        assert self.service.stop() == 0, self.service.log()

    def alerts(self, query: str = "") -> list[dict]:
        reply = self.client.get(f"/v1/admin/alerts{query}")
        assert reply.status_code == 200, reply.json
        return reply.json["alerts"]

    def alerts_when(self, condition) -> list[dict] | None:
        listed = self.alerts()
        return listed if condition(listed) else None


@pytest.fixture
def desk_with(settings, start_service_with):
    made: list[Desk] = []

    def make(env: dict[str, str]) -> Desk:
        made.append(Desk(settings, start_service_with, env))
        return made[-1]

    yield make
    for desk in made:
        close_app(desk.app)


def raise_alerts(settings, count: int = 3) -> list[dict]:
    """One alert of each kind the services raise (the first ``count``), published as they publish them."""
    reorder = envelope("alert.reorder_needed", {"product_id": "p1", "title": "Linen shirt", "on_hand": 2,
                                                "reorder_point": 5.5, "order_quantity": 12, "stockout_risk": 0.42,
                                                "days_of_cover": 1.5}, "forecasting")
    scan = envelope("alert.counterfeit_detected", {"verdict": "counterfeit", "reasons": ["never issued"],
                                                   "location": "Shanghai", "scanned_by": "", "product_id": "p2",
                                                   "batch": "B7", "serial": "S-000123", "payload": "SHOPAI1:…"},
                    "vision")
    gate = gate_alert("recommender", "hybrid-2", {"gate": {"serve": False, "metric": "ndcg_at_10", "new": 0.21,
                                                          "serving": 0.25, "serving_version": "hybrid-1",
                                                          "reason": "worse than the serving model"}})
    outputs = LazyEnvelopePublisher(settings, client_id="test-alerts")
    try:
        for key, alert in (("p1", reorder), ("p2", scan), ("recommender", gate))[:count]:
            outputs.publish(topics.ALERTS, key, alert)
            time.sleep(0.01)  # distinct occurred_at: the listing's order is theirs
    finally:
        outputs.close()
    return [reorder, scan, gate][:count]


def test_alerts_are_listed_acknowledged_and_delivered_signed_once_to_each_webhook_through_an_outage(
        settings, desk_with, receivers, redis_client):
    failing = receivers(503).start()  # answers 503 for a while
    absent = receivers()  # not listening for a while
    desk = desk_with(webhook_env(failing, absent))
    raised = raise_alerts(settings)
    ids = [a["event_id"] for a in raised]

    listed = wait_for(lambda: desk.alerts_when(lambda a: len(a) == 3), 30, what="three alerts listed")
    assert [a["alert_id"] for a in listed] == ids[::-1]  # newest first
    assert [a["subject"] for a in listed] == ["service:recommender", "serial:S-000123", "product:p1"]
    assert [a["source"] for a in listed] == ["recommender", "vision", "forecasting"]
    assert listed[2]["payload"]["on_hand"] == 2 and listed[2]["state"] == "open"
    assert [a["alert_id"] for a in desk.alerts("?type=alert.counterfeit_detected")] == [ids[1]]
    page = desk.client.get("/v1/admin/alerts?limit=2").json
    assert [a["alert_id"] for a in page["alerts"]] == ids[:0:-1] and page["next"] == ids[1]
    rest = desk.client.get(f"/v1/admin/alerts?limit=2&before={page['next']}").json
    assert [a["alert_id"] for a in rest["alerts"]] == ids[:1] and "next" not in rest

    # Acknowledged once, with the key and the time; a second time is a 409 saying when and by whom.
    reply = desk.client.post(f"/v1/admin/alerts/{ids[0]}/acknowledge")
    assert reply.status_code == 200, reply.json
    acked = reply.json
    assert acked["state"] == "acknowledged" and acked["acknowledged_by"] == key_id_of(TEST_ADMIN_KEY)
    assert acked["acknowledged_role"] == "admin" and acked["acknowledged_at"]
    again = assert_problem(desk.client.post(f"/v1/admin/alerts/{ids[0]}/acknowledge"), 409)["detail"]
    assert f"already acknowledged at {acked['acknowledged_at']} by {key_id_of(TEST_ADMIN_KEY)}" in again
    assert_problem(desk.client.post(f"/v1/admin/alerts/{UNKNOWN}/acknowledge"), 404)
    assert [a["alert_id"] for a in desk.alerts("?state=open")] == ids[:0:-1]
    assert [a["alert_id"] for a in desk.alerts("?state=acknowledged")] == ids[:1]

    # Down for a while: every delivery tried and failed at least twice, then the service restarts.
    def attempts() -> list[int]:
        dids = [d for r in (failing, absent) for d in redis_client.zrange(K.queue(r.url), 0, -1)]
        return [int(redis_client.hget(K.delivery(d), "attempts") or 0) for d in dids]

    wait_for(lambda: len(attempts()) == 6 and min(attempts()) >= 2, 30, what="every delivery failed twice")
    assert failing.hits >= 6 and failing.accepted == []
    desk.stop()
    desk.start()

    # Back: each alert arrives once at each webhook, signed over its exact body.
    failing.status = 200
    absent.start()
    wait_for(lambda: pending(redis_client, (failing.url, absent.url)) == 0, 30, what="the delivery queue drained")
    for receiver in (failing, absent):
        assert sorted(receiver.alert_ids()) == sorted(ids), receiver.alert_ids()  # once each, none lost
        for headers, body in receiver.accepted:
            assert verify_signature(SECRET.encode(), headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], body,
                                    now=time.time())
            assert headers[ALERT_ID_HEADER] == json.loads(body)["alert_id"]
    sent = {json.loads(body)["alert_id"]: json.loads(body) for _, body in absent.accepted}
    assert sent[ids[0]]["type"] == "alert.reorder_needed" and sent[ids[0]]["payload"]["reorder_point"] == 5.5
    assert sent[ids[2]]["subject"] == "service:recommender"

    # A flushed Redis is rebuilt from alerts.v1, acknowledgement included; alerts older than the delivery
    # window are kept but not sent again.
    desk.stop()
    redis_client.flushdb()
    desk.start(SHOPAI_ALERT_WEBHOOK_MAX_AGE_SECONDS="0.001")
    expected = [(ids[2], "open"), (ids[1], "open"), (ids[0], "acknowledged")]
    rebuilt = wait_for(lambda: desk.alerts_when(lambda a: [(x["alert_id"], x["state"]) for x in a] == expected),
                       30, what="alerts rebuilt")
    assert rebuilt[2]["acknowledged_at"] == acked["acknowledged_at"]
    assert pending(redis_client, (failing.url, absent.url)) == 0
    assert sorted(failing.alert_ids()) == sorted(ids) and sorted(absent.alert_ids()) == sorted(ids)


def test_a_receiver_that_never_comes_back_ends_in_the_dead_letters_and_a_replay_delivers_to_it_once(
        settings, desk_with, receivers, redis_client):
    good = receivers().start()
    gone = receivers()  # never listening until the replay
    refusing = receivers(410).start()  # refuses for good: no retry
    desk = desk_with(webhook_env(good, gone, refusing, attempts=3))
    [alert] = raise_alerts(settings, count=1)
    letters = DeadLetters(settings)

    def alert_letters() -> list:
        found, _ = letters.list(topics.ALERTS)
        return found if len(found) >= 2 else None

    found = wait_for(alert_letters, 40, interval=0.5, what="two dead letters in alerts.v1.dlq")
    by_reason = {("refused" if "refused the alert" in letter.reason else "gone"): letter for letter in found}
    assert set(by_reason) == {"refused", "gone"}, [letter.reason for letter in found]
    assert by_reason["gone"].reason.startswith("webhook 2:127.0.0.1 did not take the alert in 3 attempts: no answer")
    assert by_reason["refused"].reason == "webhook 3:127.0.0.1 refused the alert: HTTP 410"
    assert refusing.hits == 1  # a refusal is not tried again
    for letter in found:
        assert letter.consumer_group == "forecasting-alert-webhooks" and letter.source_topic == topics.ALERTS
        assert letter.event()["event_id"] == alert["event_id"] and letter.source_offset >= 0
    wait_for(lambda: pending(redis_client, (good.url, gone.url, refusing.url)) == 0, 10,
             what="nothing left to deliver")
    assert good.alert_ids() == [alert["event_id"]]

    # The receivers are back: replaying a letter re-publishes the alert, which is delivered again to the
    # webhooks whose deliveries were dead-lettered (the replay covers both letters of the event), not to
    # the one that had it.
    gone.start()
    refusing.status = 200
    letters.replay([str(by_reason["gone"].id)], by="test")
    wait_for(lambda: gone.alert_ids() and refusing.alert_ids(), 20, what="the replayed alert delivered")
    wait_for(lambda: pending(redis_client, (good.url, gone.url, refusing.url)) == 0, 10,
             what="nothing left to deliver")
    assert gone.alert_ids() == refusing.alert_ids() == good.alert_ids() == [alert["event_id"]]
    assert all(letter.replayed is not None for letter in letters.list(topics.ALERTS)[0])
    assert len(desk.alerts()) == 1
