"""What the vision service hands over for a shopper's export (the ScansBy RPC): the scans recorded with
``scanned_by`` = the shopper's id, newest first, and nobody else's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.common.events import new_event
from services.common.projection import Ops, RedisApplier
from services.vision.consumer import VisionProjection
from services.vision.store import VisionStore


def _scan(serial: str, scanned_by: str, day: int, location: str) -> object:
    return new_event("code.scanned", {"product_id": "p00001", "batch": "B1", "serial": serial, "location": location,
                                      "scanned_by": scanned_by}, occurred_at=datetime(2026, 11, day, 12, tzinfo=UTC))


@pytest.mark.integration
def test_scans_by_lists_the_shoppers_scans_newest_first(redis_client):
    projection, applier = VisionProjection(redis_client), RedisApplier(redis_client, "vision", 3600)
    events = [new_event("code.issued", {"product_id": "p00001", "batch": "B1", "key_id": "0123456789abcdef",
                                        "issued_at": 1764000000, "serials": ["S1", "S2"]}),
              _scan("S1", "u7", 3, "Shanghai"), _scan("S2", "u7", 5, "Beijing"), _scan("S1", "u8", 4, "Wuhan")]
    items, state = [], {}
    for event in events:
        ops = Ops(state)
        projection.apply(event, ops)
        items.append((event.event_id, ops.commands))
    applier.apply(items)
    store = VisionStore(redis_client)
    scans = store.scans_by("u7")
    assert [(serial, scan["location"]) for serial, scan in scans] == [("S2", "Beijing"), ("S1", "Shanghai")]
    assert scans[0][1]["at"] == datetime(2026, 11, 5, 12, tzinfo=UTC).timestamp()
    assert store.issued("S2")["product_id"] == "p00001"
    assert store.scans_by("nobody") == []
