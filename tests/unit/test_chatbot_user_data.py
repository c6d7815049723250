"""What the assistant hands over for a shopper's export (the UserData RPC): their orders as the projection holds
them, personal fields still sealed, and their conversations; nothing readable about the person in Redis."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.chatbot.consumer import ChatbotProjection
from services.chatbot.server import _order_record
from services.chatbot.store import ChatbotStore
from services.common.events import new_event
from services.common.projection import Ops, RedisApplier
from services.common.vault import PersonalDataVault, seal_personal

LINE = {"product_id": "p00001", "quantity": 1, "unit_price": 129.0}
PERSONAL = {"customer_name": "Li Na", "email": "na.li@example.com", "phone": "+86 17001112222",
            "shipping_address": {"line1": "5 Renmin Road", "city": "Chengdu", "country": "CN"}}


def _project(redis_client, events) -> None:
    projection, applier = ChatbotProjection(redis_client), RedisApplier(redis_client, "chatbot", 3600)
    items, batch_state = [], {}  # one batch, as the consumer applies it
    for event in events:
        ops = Ops(batch_state)
        projection.apply(event, ops)
        items.append((event.event_id, ops.commands))
    applier.apply(items)


@pytest.mark.integration
def test_orders_keep_their_sealed_personal_fields_and_conversations_are_listed(redis_client, tmp_path):
    vault = PersonalDataVault(tmp_path / "vault.sqlite3")
    base = {"order_id": "ORD-20481234", "user_id": "u7", "lines": [LINE], "total": 129.0, "currency": "CNY"}
    created = new_event("order.created", {**base, **PERSONAL}, occurred_at=datetime(2026, 11, 28, 10, tzinfo=UTC))
    shipped = new_event("order.shipped", {**base, "carrier": "SF Express", "tracking_no": "SF1234567890"},
                        occurred_at=datetime(2026, 11, 29, 9, tzinfo=UTC))
    _project(redis_client, seal_personal([created, shipped], vault))
    store = ChatbotStore(redis_client)
    (order,) = store.user_orders("u7", limit=0)
    record = _order_record(order)
    assert record.status == "shipped" and record.carrier == "SF Express" and record.lines[0].quantity == 1
    assert [(h.status, h.at) for h in record.history] == [("created", "2026-11-28T10:00:00Z"),
                                                         ("shipped", "2026-11-29T09:00:00Z")]
    assert record.sealed_personal.user_id == "u7" and record.sealed_personal.key_id
    dump = " ".join(str(redis_client.dump(k)) for k in redis_client.keys("*"))
    assert "na.li" not in dump and "Renmin" not in dump and "17001112222" not in dump  # sealed in Redis too

    store.save_session("s1", {"language": "en", "turns": [{"role": "user", "text": "hi"}]}, "u7")
    store.save_session("s2", {"language": "en", "turns": [{"role": "user", "text": "not u7"}]}, "u8")
    assert list(store.user_conversations("u7")) == ["s1"]
    assert store.user_orders("u8", limit=0) == [] and store.user_conversations("u8").keys() == {"s2"}
    vault.close()


@pytest.mark.integration
def test_an_order_without_personal_fields_has_no_sealed_part(redis_client):
    _project(redis_client, [new_event("order.created", {"order_id": "ORD-1", "user_id": "u1", "lines": [LINE]})])
    (order,) = ChatbotStore(redis_client).user_orders("u1", limit=0)
    assert not _order_record(order).HasField("sealed_personal")
