"""Event validation against protos/events.proto and the rules proto3 cannot say."""

from __future__ import annotations

import json

import pytest

from services.common import topics
from services.common.events import ALL_TYPES, InvalidEvent, decode_event, new_event, parse_event

GOOD = {
    "event_id": "7d0c2a4e-5b1f-4a7e-9a53-0f5c2f7b9e11",
    "type": "interaction.purchase",
    "schema_version": 1,
    "occurred_at": "2026-11-28T10:00:00Z",
    "source": "shop-web",
    "payload": {"user_id": "u42", "product_id": "p1001", "quantity": 1, "price": 199.0},
}


def with_(**changes):
    event = json.loads(json.dumps(GOOD))
    for key, value in changes.items():
        if key.startswith("payload__"):
            event["payload"][key.removeprefix("payload__")] = value
        else:
            event[key] = value
    return event


def test_the_design_example_is_valid_and_routed_by_user():
    event = parse_event(GOOD)
    assert event.topic == topics.INTERACTIONS and event.key == "u42"
    assert event.occurred_at.isoformat() == "2026-11-28T10:00:00+00:00"
    assert parse_event(event.to_dict()) == event


@pytest.mark.parametrize(
    "event, reason",
    [
        (with_(event_id="42"), "UUID"),
        (with_(type="interaction.teleport"), "unknown event type"),
        (with_(schema_version=2), "schema_version"),
        (with_(schema_version="1"), "schema_version"),
        (with_(source=5), "source"),
        (with_(occurred_at="yesterday"), "RFC 3339"),
        (with_(occurred_at="2026-11-28T10:00:00"), "time zone"),
        (with_(payload__price="cheap"), "price"),
        (with_(payload__colour="red"), "colour"),
        (with_(payload__quantity=0), "quantity"),
        (with_(payload__price=-1.0), "negative"),
        (with_(payload__user_id=""), "user_id"),
        (with_(type="interaction.rating", payload__rating=6), "rating"),
        (with_(type="interaction.rating", payload__rating=4.5), r"whole number of stars.*4\.5 -> 5"),
        (with_(type="interaction.rating", payload__rating=0.5), r"whole number of stars.*0\.5 -> 1"),
        (with_(type="interaction.rating", payload__rating=10), r"between 1 and 5, not 10.*0-10"),
        (with_(type="interaction.rating", payload__rating=0), "between 1 and 5"),
        (with_(type="interaction.rating", payload__rating="four"), "rating"),
        (with_(type="interaction.search"), "query"),
        (with_(payload="not an object"), "payload"),
        (with_(extra_field=1), "extra_field"),
        (with_(type="order.created", payload={"order_id": "ORD-1", "user_id": "u1", "lines": [{"quantity": 1}]}),
         "product_id"),
        (with_(type="inventory.set", payload={"product_id": "p1"}), "on_hand"),
        (with_(type="inventory.received", payload={"product_id": "p1", "delta": -3}), "delta"),
        (with_(type="product.upserted", payload={"product_id": "p1", "title": "T"}), "category"),
    ],
)
def test_invalid_events_are_rejected_with_a_reason(event, reason):
    with pytest.raises(InvalidEvent, match=reason):
        parse_event(event)


def test_whole_star_ratings_are_accepted_also_as_json_floats():
    assert parse_event(with_(type="interaction.rating", payload__rating=4.0)).payload["rating"] == 4.0
    assert parse_event(with_(type="interaction.rating", payload__rating=1)).payload["rating"] == 1


def test_every_type_routes_to_its_topic():
    families = {t.split(".")[0] for t in ALL_TYPES}
    assert families == {"product", "interaction", "order", "inventory", "code", "user", "handoff", "alert",
                        "recommendation"}
    # code.* written by the vision service only, user.* by the erasure route only, handoff.* by the assistant,
    # alert.* by the services (acknowledgements by the forecasting service's alerts desk), recommendation.* by
    # the gateway (one per recommendation answer)
    assert topics.INTERNAL_FAMILIES == {"code", "user", "handoff", "alert", "recommendation"}
    assert topics.route("recommendation.served") == (topics.RECOMMENDATIONS_SERVED, "recommendation_id")
    assert topics.route("alert.reorder_needed") == (topics.ALERTS, "product_id")
    assert topics.route("handoff.claimed") == (topics.HANDOFFS, "session_id")
    assert topics.route("user.erased") == (topics.PRIVACY, "user_id")
    assert topics.route("code.scanned") == (topics.CODES, "product_id")
    assert topics.route("order.refunded") == (topics.ORDERS, "order_id")
    assert topics.route("inventory.set") == (topics.INVENTORY, "product_id")
    assert topics.route("product.removed") == (topics.CATALOG, "product_id")
    with pytest.raises(ValueError):
        topics.route("nope.x")


def test_decode_rejects_bytes_that_are_not_json():
    with pytest.raises(InvalidEvent, match="not JSON"):
        decode_event(b"\xff\xfe")
    assert decode_event(json.dumps(GOOD).encode()).event_id == GOOD["event_id"]


def test_new_event_builds_a_valid_envelope():
    event = new_event("order.created", {"order_id": "ORD-20481234", "user_id": "u1",
                                        "lines": [{"product_id": "p1", "quantity": 2, "unit_price": 9.5}]})
    assert event.key == "ORD-20481234" and event.topic == topics.ORDERS
    assert event.to_dict()["occurred_at"].endswith("Z")


def test_a_code_revocation_names_its_batch_and_a_reason():
    batch = new_event("code.revoked", {"product_id": "p1", "batch": "B1", "reason": "recalled",
                                       "revoked_by": "key-1a2b3c4d"})
    assert batch.topic == topics.CODES and batch.key == "p1" and "serial" not in batch.payload
    one = new_event("code.revoked", {"product_id": "p1", "batch": "B1", "serial": "S1", "reason": "stolen"})
    assert one.payload["serial"] == "S1"
    with pytest.raises(InvalidEvent, match="reason"):
        new_event("code.revoked", {"product_id": "p1", "batch": "B1"})
    with pytest.raises(InvalidEvent, match="batch"):
        new_event("code.revoked", {"product_id": "p1", "reason": "recalled"})
