"""Idempotent conversation turns (services/chatbot/core/turns.py): which message ids are taken, what makes a
retry the same message, and the ids of the events a retried turn publishes; and a turn's calls to the
recommender end in time for it."""

from __future__ import annotations

import time
import uuid

import grpc
import pytest

from protos import recommender_pb2, recommender_pb2_grpc
from services.chatbot.core import turns
from services.chatbot.world import ShopWorld
from tests.support import RecordingServicer, serving


@pytest.mark.parametrize("message_id", ["", "2f1c8a54-7d3e-4b9a-9c61-0e5d4f7a8b21", "2f1c8a547d3e4b9a9c610e5d4f7a8b21",
                                        "m-0123456789abcdef",
                                        "app:1700000000.123:42", "x" * 64])
def test_good_message_ids_are_taken(message_id):
    assert turns.check_message_id(message_id) is None


@pytest.mark.parametrize("message_id", ["1", "x" * 15, "x" * 65, "has a space 0123456", "m/0123456789abcdef",
                                        "ünïcödé-0123456789", "m-0123456789abcdef\n"])
def test_bad_message_ids_are_refused_with_the_rule(message_id):
    reason = turns.check_message_id(message_id)
    assert reason and "16 to 64 characters" in reason and "UUID" in reason


def test_a_retry_is_the_same_message_and_anything_else_is_not():
    base = ("s1", "where is my order?", "u7", True, "en")
    same = turns.fingerprint(*base)
    assert turns.fingerprint(*base) == same
    for changed in (("s2", *base[1:]), (base[0], "where is my order", *base[2:]), (*base[:2], "u8", *base[3:]),
                    (*base[:3], False, base[4]), (*base[:4], "zh")):
        assert turns.fingerprint(*changed) != same, changed
    # fields are kept apart: moving text from one field to the next is another message
    assert turns.fingerprint("a", "bc", "", False, "") != turns.fingerprint("ab", "c", "", False, "")


def test_a_retried_turn_publishes_its_events_under_the_same_ids():
    first = turns.event_id("s1", "m-0123456789abcdef", "handoff")
    assert first == turns.event_id("s1", "m-0123456789abcdef", "handoff")
    assert uuid.UUID(first).version == 5
    others = {turns.event_id("s2", "m-0123456789abcdef", "handoff"), turns.event_id("s1", "m-0123456789abcdeg",
                                                                                     "handoff"),
              turns.event_id("s1", "m-0123456789abcdef", "relay")}
    assert first not in others and len(others) == 3
    assert turns.event_id("s1", "", "handoff") is None  # no message id: a new event id every time


class SlowRecommender(RecordingServicer, recommender_pb2_grpc.RecommenderServicer):
    """Accepts and answers late, as a restarting recommender can."""

    def Recommend(self, request, context):
        return self._handle("Recommend", request, context, lambda _: self._late())

    @staticmethod
    def _late():
        time.sleep(0.6)
        return recommender_pb2.RecommendResponse()


def test_the_recommender_gets_half_of_what_remains_of_a_turns_deadline():
    """A chat turn that asks the recommender for suggestions is not made late by it (the turn would be a
    504): the call gets half of the turn's remaining time, at most the service's own deadline."""
    with serving(SlowRecommender(), recommender_pb2_grpc.add_RecommenderServicer_to_server) as fake:
        channel = grpc.insecure_channel(f"127.0.0.1:{fake.port}")
        world = ShopWorld(None, None, channel, deadline_seconds=5.0)
        try:
            with world.within(0.8):  # half: 0.4 s, less than the recommender takes
                started = time.monotonic()
                assert world.recommend("u1", [], 5) == []  # no suggestions, no error
                assert time.monotonic() - started < 0.55
            assert world.recommend("u1", [], 5) == []  # outside a request: the service's deadline (5 s)
            remaining = [r for _, _, r in fake.calls]
            assert remaining[0] < 0.45 and 4.0 < remaining[1] < 5.2, remaining  # clocks differ a little
        finally:
            channel.close()
