"""Issue #22 item 4: a chat turn reads its remembered answer, its dialogue state and its conversation's hand-off in
one round trip (``ChatbotStore.open_turn``), with what the three reads one by one give. Against the real Redis."""

from __future__ import annotations

import pytest

from services.chatbot.handoffs import HK
from services.chatbot.store import ChatbotStore

pytestmark = pytest.mark.integration


class _Counting:
    def __init__(self, client) -> None:
        self.client, self.round_trips = client, 0

    def __getattr__(self, name):
        attr = getattr(self.client, name)
        if name in ("get", "hget", "hgetall", "pipeline", "set"):
            def counted(*args, **kwargs):
                self.round_trips += 1
                return attr(*args, **kwargs)
            return counted
        return attr


def test_a_turn_reads_what_it_needs_in_one_round_trip(redis_client):
    store = ChatbotStore(redis_client)
    state = {"turns": [{"role": "user", "text": "where is my order"}], "handoff_id": ""}
    store.save_session("s1", state, "u1", ("m-0123456789abcdef", "print", b"\x01answer"))
    redis_client.set(HK.current("s1"), "h-42")

    counting = _Counting(redis_client)
    remembered, got, current = ChatbotStore(counting).open_turn("s1", "m-0123456789abcdef", HK.current("s1"))
    assert counting.round_trips == 1
    assert remembered == store.remembered_turn("s1", "m-0123456789abcdef") == ("print", b"\x01answer")
    assert got == store.load_session("s1") == state
    assert current == "h-42"

    # a new conversation, a message without an id: nothing remembered, no state, no hand-off
    assert ChatbotStore(counting).open_turn("s2", "", HK.current("s2")) == (None, None, "")
    assert ChatbotStore(counting).open_turn("s1", "m-other-000000000", HK.current("s1"))[0] is None
    assert counting.round_trips == 3
