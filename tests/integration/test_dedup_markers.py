"""The exactly-once markers (services/common/projection.py) against the real Redis: an event is applied once
whether it comes again in the same batch, in a later one, or in the next generation; markers written by the
scheme before issue #22 are honoured; a forgotten marker lets a replay through; and the markers cost at most
50 bytes of Redis per applied event at the density a scale shop gives them."""

from __future__ import annotations

import time
import uuid

import pytest

from services.common.projection import RedisApplier, applied, forget, legacy_marker, marker

pytestmark = pytest.mark.integration

GROUP = "dedup-test"


def _items(ids, counter="shopai:dedup-test:count"):
    return [(eid, [["INCRBY", counter, "1"]]) for eid in ids]


def _markers(redis_client):
    return list(redis_client.scan_iter(match=f"shopai:dedup:{GROUP}:*", count=5000))


@pytest.fixture
def clean(redis_client):
    def wipe():
        for name in _markers(redis_client) + ["shopai:dedup-test:count", f"shopai:dedup:{GROUP}"]:
            redis_client.delete(name)
    wipe()
    yield redis_client
    wipe()


def test_each_event_applies_once_in_a_batch_across_batches_and_chunks(clean):
    applier = RedisApplier(clean, GROUP, 3600, chunk=7)
    ids = [str(uuid.uuid4()) for _ in range(40)]
    first = applier.apply(_items(ids[:25] + ids[:3]))  # three sent twice in one batch, over several chunks
    assert first.per_event == [True] * 25 + [False] * 3
    again = applier.apply(_items(ids))  # a replay after a crash, with 15 new ones
    assert again.per_event == [False] * 25 + [True] * 15
    assert int(clean.get("shopai:dedup-test:count")) == 40
    assert all(applier.applied(eid) for eid in ids) and not applier.applied(str(uuid.uuid4()))
    # every marker hash expires, at the end of the generation after its own
    now = int(clean.time()[0])
    for name in _markers(clean):
        assert 0 < clean.ttl(name) <= 2 * 3600 - now % 3600 + 1


def test_the_markers_of_the_old_scheme_are_honoured(clean):
    old = str(uuid.uuid4())
    clean.set(legacy_marker(GROUP, old), "1", ex=60)
    applier = RedisApplier(clean, GROUP, 3600)
    assert applier.apply(_items([old, str(uuid.uuid4())])).per_event == [False, True]
    assert applied(clean, GROUP, old)
    clean.delete(legacy_marker(GROUP, old))


def test_a_forgotten_marker_lets_its_replay_through(clean):
    applier = RedisApplier(clean, GROUP, 3600)
    eid = str(uuid.uuid4())
    assert applier.apply(_items([eid])).per_event == [True]
    with clean.pipeline() as pipe:  # as the webhook worker does, in its own transaction
        forget(pipe, GROUP, eid)
        pipe.execute()
    assert not applier.applied(eid)
    assert applier.apply(_items([eid])).per_event == [True]


def test_an_event_is_remembered_one_generation_at_least_and_forgotten_after_two(clean):
    period = 2
    applier = RedisApplier(clean, GROUP, period)

    def wait_for_generation(gen):
        while int(clean.time()[0]) // period < gen:
            time.sleep(0.05)

    start = int(clean.time()[0]) // period
    eid = str(uuid.uuid4())
    assert applier.apply(_items([eid])).per_event == [True]
    wait_for_generation(start + 1)
    assert applier.apply(_items([eid])).per_event == [False]  # the previous generation still has it
    wait_for_generation(start + 2)
    deadline = time.monotonic() + 5
    while _markers(clean) and time.monotonic() < deadline:  # expired at the end of generation start + 1
        time.sleep(0.05)
    assert not _markers(clean)
    assert applier.apply(_items([eid])).per_event == [True]


def test_markers_cost_at_most_50_bytes_per_applied_event_and_split_as_they_fill(clean):
    # 60,000 events: the 256 first-level hashes fill (127 markers each) and the rest go one level deeper
    applier = RedisApplier(clean, GROUP, 3600)
    ids = [str(uuid.uuid4()) for _ in range(60_000)]
    assert all(applier.apply(_items(ids)).per_event)
    names = _markers(clean)
    levels = {len(name.rsplit(":", 1)[1]) for name in names}
    assert levels == {2, 3}, levels
    assert all(clean.object("encoding", name) == "listpack" for name in names)
    used = sum(clean.memory_usage(name, samples=0) for name in names)
    print(f"{used / len(ids):.1f} bytes per applied event in {len(names)} hashes")
    assert used / len(ids) <= 50, used / len(ids)
    # every marker is found again, on either level; one forgotten in a full hash lets exactly its event through
    by_field = {marker(eid)[1]: eid for eid in ids}
    full = next(name for name in names if len(name.rsplit(":", 1)[1]) == 2)
    assert clean.hexists(full, "!")
    first_level = by_field[next(f for f in clean.hkeys(full) if f != "!")]
    forget(clean, GROUP, first_level)
    again = applier.apply(_items(ids))
    assert [eid for eid, new in zip(ids, again.per_event) if new] == [first_level]
    assert int(clean.get("shopai:dedup-test:count")) == 60_001
