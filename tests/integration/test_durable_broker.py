"""The broker `make run` starts keeps its log in an S3 store on disk (tansu's s3:// engine on s3rver): events it
acknowledged outlive a SIGKILL of the broker, and of the broker and its store together (a stopped `make run`);
the consumer resumes from its committed offsets and applies nothing twice (issue #21 item 2)."""

from __future__ import annotations

import threading

import pytest
from kafka.errors import KafkaError

from services.common.bus import ensure_topics
from services.common.settings import Settings
from tests.integration.test_bus_faults import (
    applied_count,
    assert_exactly_once,
    committed_offsets,
    publish,
    purchases,
)
from tests.support import Broker, S3Store, ids_in_log, wait_for

pytestmark = pytest.mark.integration


def committed(settings: Settings) -> int:
    """The group's committed offsets; 0 while the broker (just started again) drops the admin's connection."""
    try:
        return committed_offsets(settings)
    except KafkaError:
        return 0


def events_in_log(settings: Settings) -> int:
    """Every record of the interactions topic."""
    return sum(ids_in_log(settings).values())


def test_acknowledged_events_outlive_broker_kills_and_are_applied_once(tmp_path, redis_client, redis_url,
                                                                      start_service_with):
    store = S3Store(tmp_path / "s3")
    broker = Broker(s3=store)
    try:
        settings = Settings(kafka_bootstrap_servers=broker.bootstrap, redis_url=redis_url,
                            data_dir=tmp_path / "data", log_json=False)
        ensure_topics(settings)
        first, second, third = purchases(600, seed=31), purchases(600, seed=32), purchases(600, seed=33)
        consumer = start_service_with(settings, "recommender", SHOPAI_KAFKA_MAX_BATCH="100")
        publish(settings, first)
        wait_for(lambda: committed(settings) == len(first), 60, what="the first events applied and committed")

        # The broker alone is SIGKILLed and started again on the same store.
        broker.kill()
        broker.start()
        assert events_in_log(settings) == len(first), "acknowledged events were lost with the broker"
        # Three producers at once, to the same partitions: each record must still be kept (the store's
        # conditional writes; without them acknowledged records were overwritten).
        threads = [threading.Thread(target=publish, args=(settings, second[i::3])) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        wait_for(lambda: applied_count(redis_client) >= len(first + second), 90, what="events after the restart")
        wait_for(lambda: committed(settings) == len(first + second), 30, what="their offsets committed")
        # It went on from its committed offsets: nothing of the first events was read again.
        assert consumer.metric("shopai_events_consumed_total", outcome="duplicate") == 0
        assert consumer.metric("shopai_events_consumed_total", outcome="applied") == len(first + second)

        # Everything stops (as Ctrl-C of `make run`): the consumer, the broker and its store; events are
        # acknowledged by a broker started again, before the consumer is back.
        consumer.stop()
        broker.kill()
        store.kill()
        store.start()
        broker.start()
        assert events_in_log(settings) == len(first + second)
        threads = [threading.Thread(target=publish, args=(settings, third[i::2])) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert events_in_log(settings) == len(first + second + third)
        again = start_service_with(settings, "recommender", SHOPAI_KAFKA_MAX_BATCH="100")
        wait_for(lambda: committed(settings) == len(first + second + third), 90,
                 what="the events published while it was down applied and committed")
        assert broker.proc.poll() is None, "the broker died"
        assert again.metric("shopai_events_consumed_total", outcome="applied") == len(third)
        assert again.metric("shopai_events_consumed_total", outcome="duplicate") == 0
        assert_exactly_once(redis_client, first + second + third)
    finally:
        broker.stop()
        store.kill()


def test_the_store_refuses_a_write_whose_condition_does_not_hold(tmp_path):
    """tools/s3rver/serve.js: what tansu's optimistic writes need from the store (S3's conditional PUT)."""
    import urllib.error
    import urllib.request

    store = S3Store(tmp_path / "s3")
    url = f"http://127.0.0.1:{store.port}/tansu/partition-state"

    def put(body: bytes, **headers: str) -> tuple[int, str]:
        request = urllib.request.Request(url, data=body, method="PUT", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, reply.headers.get("ETag", "")
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    try:
        status, first = put(b"v1", **{"If-None-Match": "*"})
        assert status == 200 and first
        status, body = put(b"v1 again", **{"If-None-Match": "*"})
        assert status == 412 and "PreconditionFailed" in body  # someone created it first
        status, second = put(b"v2", **{"If-Match": first})
        assert status == 200 and second != first
        status, body = put(b"v3", **{"If-Match": first})  # written from a stale read: refused
        assert status == 412 and "PreconditionFailed" in body
        with urllib.request.urlopen(url, timeout=10) as reply:
            assert reply.read() == b"v2"
    finally:
        store.kill()


def test_an_upload_cut_off_midway_leaves_the_object_as_it_was_and_blocks_nothing(tmp_path):
    """A writer killed in the middle of a PUT (the broker, SIGKILLed under load) must neither leave a truncated
    object behind nor hold the object's turn: the restarted broker reads and writes it at once (make chaos found
    the restarted broker answering nothing, waiting on the dead request's turn, over a 0-byte meta.json)."""
    import socket
    import urllib.request

    store = S3Store(tmp_path / "s3")
    url = f"http://127.0.0.1:{store.port}/tansu/meta.json"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=b'{"v": 1}', method="PUT"), timeout=10) as r:
            assert r.status == 200
        with socket.create_connection(("127.0.0.1", store.port), timeout=10) as sock:
            sock.sendall(b"PUT /tansu/meta.json HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n"
                         + b'{"v": 2, "truncated')
        with urllib.request.urlopen(url, timeout=10) as reply:  # not stuck behind the dead upload
            assert reply.read() == b'{"v": 1}'
        with urllib.request.urlopen(urllib.request.Request(url, data=b'{"v": 3}', method="PUT"), timeout=10) as r:
            assert r.status == 200
        with urllib.request.urlopen(url, timeout=10) as reply:
            assert reply.read() == b'{"v": 3}'
    finally:
        store.kill()
