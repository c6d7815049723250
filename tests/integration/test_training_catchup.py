"""A training job waits until the consumer applied what was accepted before it (services/common/catchup.py),
against the real broker and a real consumer group."""

from __future__ import annotations

import threading
import uuid

import pytest

from services.common import cache, topics
from services.common.bus import EventConsumer, EventPublisher, ensure_topics
from services.common.catchup import LogCatchUp, behind
from services.common.events import Event, new_event
from services.common.projection import Ops, Projection
from tests.support import wait_for

pytestmark = pytest.mark.integration


def test_the_catch_up_waits_for_a_real_consumer_group(settings, redis_client):
    ensure_topics(settings)
    group = f"catchup-{uuid.uuid4().hex[:8]}"

    class Views(Projection):
        topics = (topics.INTERACTIONS,)

        def apply(self, event: Event, ops: Ops) -> None:
            ops("HINCRBY", f"test:{group}", "views", 1)

    Views.group = group
    publisher = EventPublisher(settings)
    try:
        publisher.publish([new_event("interaction.view", {"user_id": f"u{i}", "product_id": "p1"}) for i in range(40)])
    finally:
        publisher.close()
    catch = LogCatchUp(settings, group, Views.topics, timeout_seconds=60, poll_seconds=0.2)
    ends = catch.ends()
    assert sum(ends.values()) >= 40  # the whole log of the topic, other tests' events included
    assert behind(ends, catch.committed()) == sum(ends.values())  # the group never read it

    # Nothing applies it within a short bound: the job would train anyway, and its metrics say how much is missing.
    impatient = LogCatchUp(settings, group, Views.topics, timeout_seconds=0.5, poll_seconds=0.1)
    missing = impatient.wait(ends, lambda *_: None)
    assert missing["events_not_applied_at_training"] == sum(ends.values())

    consumer = EventConsumer(settings, Views(cache.connect(settings)))
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    messages: list[str] = []
    try:
        metrics = catch.wait(ends, lambda _f, m: messages.append(m))
        assert metrics["events_not_applied_at_training"] == 0
        assert metrics["events_in_log_at_request"] == sum(ends.values())
        wait_for(lambda: int(redis_client.hget(f"test:{group}", "views") or 0) >= 40, 10, what="the views applied")
    finally:
        stop.set()
        thread.join(30)
    assert not messages or "consumer to apply" in messages[0]
