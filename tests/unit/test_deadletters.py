"""The pure parts of services/common/deadletters.py: ids, records to letters and markers, the replay plan."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest

from gateway.app import close_app, create_app
from services.common import topics
from services.common.bus import dead_letter_value
from services.common.deadletters import (
    DLQ_TOPICS,
    BadLetterId,
    DeadLetter,
    LetterId,
    Replay,
    ReplayRefused,
    UnknownLetters,
    assemble,
    dlq_topic_of,
    parse_record,
    plan_replay,
    replay_marker,
)
from services.common.settings import SERVICE_NAMES, Settings
from shopai import cli
from tests.support import TEST_KEYS, assert_problem, free_port, staff

ORDERS_DLQ = topics.dlq(topics.ORDERS)
ANALYST_KEY = "test-analyst-key-0123456789abcdef"
EVENT = json.dumps({"event_id": "e1", "type": "order.created", "payload": {"order_id": "o1"}}).encode()


def letter(offset: int, value: bytes = EVENT, group: str = "forecasting", source_offset: int = 7,
           timestamp_ms: int = 1_000, partition: int = 0) -> DeadLetter:
    record = SimpleNamespace(value=value, topic=topics.ORDERS, partition=2, offset=source_offset, key=b"o1")
    parsed = parse_record(ORDERS_DLQ, partition, offset, timestamp_ms,
                          dead_letter_value(record, group, "processing failed: unknown product p9", "LookupError"))
    assert isinstance(parsed, DeadLetter)
    return parsed


def test_ids_round_trip_and_bad_ones_are_refused():
    parsed = LetterId.parse("orders.v1.dlq:3:1234")
    assert parsed == LetterId("orders.v1.dlq", 3, 1234) and str(parsed) == "orders.v1.dlq:3:1234"
    for bad in ("", "orders.v1.dlq", "orders.v1:0:1", "orders.v1.dlq:0", "orders.v1.dlq:-1:2", "orders.v1.dlq:a:2",
                "orders.v1.dlq:0:1:2", "a b.dlq:0:1", "orders.v1.dlq:0:" + "9" * 20):
        with pytest.raises(BadLetterId, match="not a dead letter id"):
            LetterId.parse(bad)


def test_topics_are_named_by_their_source_or_their_dead_letter_topic():
    assert dlq_topic_of(topics.ORDERS) == dlq_topic_of(ORDERS_DLQ) == ORDERS_DLQ
    assert {topics.dlq(t) for t in (*topics.INPUT_TOPICS, topics.CODES, topics.PRIVACY,
                                                          topics.HANDOFFS)} <= set(DLQ_TOPICS)
    assert topics.dlq(topics.MODELS) not in DLQ_TOPICS  # no consumer dead-letters what it reads there
    for unknown in ("models.v1", "models.v1.dlq", "nope"):
        with pytest.raises(BadLetterId, match="has no dead-letter topic"):
            dlq_topic_of(unknown)


def test_a_dead_letter_keeps_the_original_bytes_and_decodes_json():
    found = letter(4)
    assert found.id == LetterId(ORDERS_DLQ, 0, 4)
    assert found.source == (topics.ORDERS, 2, 7) and found.key == "o1" and found.value == EVENT
    body = found.to_dict()
    assert body["event"] == json.loads(EVENT) and body["event_base64"] is None
    assert (body["event_id"], body["event_type"], body["consumer_group"]) == ("e1", "order.created", "forecasting")
    assert body["reason"] == "processing failed: unknown product p9" and body["error_type"] == "LookupError"
    assert body["replayed"] is None
    for raw in (b"\xff\x00{binary", "不是 JSON".encode()):  # not UTF-8 (stored as base64), and UTF-8 but not JSON
        other = letter(5, value=raw)
        assert other.value == raw
        assert other.to_dict()["event"] is None and base64.b64decode(other.to_dict()["event_base64"]) == raw


def test_records_that_are_neither_letters_nor_markers_are_skipped():
    for value in (None, b"", b"\xff", b"[1, 2]", b'"text"', b'{"reason": "no group"}', b'{"replay_of": "x"}'):
        assert parse_record(ORDERS_DLQ, 0, 0, 0, value) is None


def test_a_marker_marks_its_letter_and_other_groups_letters_of_the_same_event():
    mine, sibling, other = letter(1, timestamp_ms=10), letter(2, group="recommender", timestamp_ms=30), \
        letter(3, source_offset=8, timestamp_ms=20)
    marker = parse_record(ORDERS_DLQ, 1, 0, 40, replay_marker(mine, topics.ORDERS, 2, 99, "key-0000beef", False))
    assert isinstance(marker, Replay)
    assert (marker.letter, marker.source, marker.offset, marker.by) == (str(mine.id), mine.source, 99, "key-0000beef")
    listed = assemble([mine, marker, None, sibling, other])
    assert [x.id.offset for x in listed] == [2, 3, 1], "newest first"
    assert listed[2].replayed == marker and listed[0].replayed == marker, "one re-publication reaches every group"
    assert listed[1].replayed is None


def test_the_plan_refuses_unknown_replayed_and_old_letters_unless_forced():
    fresh, replayed, sibling = letter(1, timestamp_ms=5_000), letter(2, source_offset=9), letter(3, group="r")
    replayed.replayed = Replay(str(replayed.id), replayed.source, topics.ORDERS, 0, 50, "2026-12-07T10:00:00Z", "k", False)
    found = {x.id: x for x in (fresh, replayed, sibling)}
    with pytest.raises(UnknownLetters) as unknown:
        plan_replay([fresh.id, LetterId(ORDERS_DLQ, 0, 77)], found, False, 6_000, 3600)
    assert unknown.value.ids == [f"{ORDERS_DLQ}:0:77"]
    with pytest.raises(ReplayRefused) as refused:
        plan_replay([fresh.id, replayed.id], found, False, 6_000, 3600)
    assert list(refused.value.reasons) == [str(replayed.id)]
    assert "already replayed at 2026-12-07T10:00:00Z" in refused.value.reasons[str(replayed.id)]
    with pytest.raises(ReplayRefused, match="older than the de-duplication window"):
        plan_replay([fresh.id], found, False, 5_000 + 3_600_001, 3600)
    # Forced: both; two groups' letters of one event are one re-publication; an id asked twice counts once.
    plan = plan_replay([fresh.id, replayed.id, sibling.id, fresh.id], found, True, 10**12, 3600)
    assert [[x.id.offset for x in group] for group in plan] == [[1, 3], [2]]


def test_the_cli_refuses_a_limit_out_of_range_before_reaching_the_broker(capsys):
    assert cli.main(["dlq", "list", "--limit", "0"]) == 2
    assert "--limit must be 1 to 500" in capsys.readouterr().err


# ------------------------------------------------------------------ the gateway's routes, without a broker


@pytest.fixture
def client():
    dead = {name: {"grpc_port": free_port(), "metrics_port": free_port()} for name in SERVICE_NAMES}
    settings = Settings(gateway_api_keys=f"{TEST_KEYS},{ANALYST_KEY}:analyst", redis_url=f"redis://127.0.0.1:{free_port()}/0",
                        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", log_json=False, **dead)
    app = create_app(settings)
    yield staff(app.test_client())
    close_app(app)


@pytest.mark.parametrize(("method", "path", "body", "says"), [
    ("get", "/v1/admin/dead-letters/orders.v1:0:1", None, "not a dead letter id"),
    ("get", "/v1/admin/dead-letters/orders.v1.dlq:0", None, "not a dead letter id"),
    ("get", "/v1/admin/dead-letters?topic=models.v1", None, "has no dead-letter topic"),
    ("get", "/v1/admin/dead-letters?limit=501", None, "limit"),
    ("post", "/v1/admin/dead-letters/replay", {"ids": ["orders.v1.dlq:0:1", "nope"]}, "'nope' is not a dead letter id"),
    ("post", "/v1/admin/dead-letters/replay", {"ids": []}, "ids"),
    ("post", "/v1/admin/dead-letters/replay", {"ids": ["orders.v1.dlq:0:1"], "force": "maybe"}, "force"),
    ("post", "/v1/admin/dead-letters/replay", [], "got an array"),
])
def test_bad_ids_topics_and_bodies_are_400s_before_the_broker_is_asked(client, method, path, body, says):
    reply = getattr(client, method)(path, json=body) if method == "post" else client.get(path)
    assert says in assert_problem(reply, 400)["detail"]


def test_a_broker_that_is_away_is_a_503(client):
    assert "dead-letter topics cannot be read" in assert_problem(client.get("/v1/admin/dead-letters"), 503)["detail"]


def test_the_routes_need_the_admin_role(client):
    client.environ_base.pop("HTTP_X_API_KEY")
    for path in ("/v1/admin/dead-letters", f"/v1/admin/dead-letters/{ORDERS_DLQ}:0:1"):
        assert_problem(client.get(path), 401)
        assert "'admin' role" in assert_problem(client.get(path, headers={"X-API-Key": ANALYST_KEY}), 403)["detail"]
    assert_problem(client.post("/v1/admin/dead-letters/replay", json={"ids": [f"{ORDERS_DLQ}:0:1"]},
                               headers={"X-API-Key": ANALYST_KEY}), 403)
