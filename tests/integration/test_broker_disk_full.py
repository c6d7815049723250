"""The broker's storage runs out of disk (issue #21): POST /v1/events answers 503 with a reason that names the
storage, `shopai import` stops saying so, nothing acknowledged is lost, and once there is room again events are
acknowledged (by the same gateway, without a restart) and every acknowledged event is in the log exactly once.

The disk is a real one that fills: a 6 MiB tmpfs mounted under the test's directory holding the S3 store's
files (tools/s3rver/serve.js), filled to the last byte by a file of zeros, which is then removed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.app import close_app, create_app
from services.common.bus import ensure_topics
from services.common.settings import Settings
from tests.integration.test_vertical_slice import interaction
from tests.support import TEST_KEYS, Broker, S3Store, ids_in_log, staff

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MiB filesystem of its own (tmpfs): mounting needs root with CAP_SYS_ADMIN."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"a small filesystem cannot be mounted here (needs root with CAP_SYS_ADMIN): "
                    f"{done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path) -> Path:
    """Write zeros until the disk refuses (ENOSPC); the file is what to remove to free the space."""
    filler = disk / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC
    while True:  # the last partial pages too
        try:
            with open(filler, "ab", buffering=0) as out:
                out.write(b"\0")
        except OSError:
            return filler


def test_a_full_disk_refuses_events_with_the_reason_and_loses_nothing_acknowledged(small_disk, tmp_path,
                                                                                   redis_url, redis_client):
    store = S3Store(small_disk / "s3")
    broker = Broker(s3=store)
    settings = Settings(kafka_bootstrap_servers=broker.bootstrap, redis_url=redis_url, data_dir=tmp_path / "data",
                        log_json=False, gateway_api_keys=TEST_KEYS)
    app = None
    try:
        ensure_topics(settings)
        app = create_app(settings)
        client = staff(app.test_client())
        acknowledged: list[str] = []

        def post(events: list[dict]):
            reply = client.post("/v1/events", json={"events": events})
            if reply.status_code == 202:
                acknowledged.extend(e["event_id"] for e in events)
            return reply

        before = [interaction("view", f"u{i % 3}", f"p{i % 5}") for i in range(30)]
        for i in range(0, 30, 10):
            assert post(before[i:i + 10]).status_code == 202

        filler = fill(small_disk)
        refused = [interaction("purchase", "u1", "p1") for _ in range(3)]
        reply = post(refused)
        assert reply.status_code == 503, reply.get_data(as_text=True)
        problem = reply.json
        assert reply.content_type == "application/problem+json"
        assert problem["type"].endswith("/broker-storage"), problem
        assert "storage" in problem["detail"] and "disk is full" in problem["detail"], problem["detail"]
        assert reply.headers["Retry-After"]
        # The same reason again, not a producer left broken by the first refusal.
        again = post(refused[:1])
        assert again.status_code == 503 and again.json["type"].endswith("/broker-storage"), again.json

        # `shopai import` says what stopped it and what to do.
        path = tmp_path / "events.jsonl"
        path.write_text("".join(json.dumps(interaction("view", "u9", "p9")) + "\n" for _ in range(5)))
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("SHOPAI_")},
               "SHOPAI_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "SHOPAI_REDIS_URL": redis_url,
               "SHOPAI_DATA_DIR": str(tmp_path / "data"), "SHOPAI_LOG_JSON": "false"}
        done = subprocess.run([sys.executable, "-m", "shopai.cli", "import", str(path), "--quiet"], env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 3, done.stdout + done.stderr
        assert "could not write the events" in done.stderr and "storage" in done.stderr, done.stderr
        assert "0 events were acknowledged before it" in done.stderr and "Traceback" not in done.stderr, done.stderr

        # Room again: the same gateway acknowledges events, the refused ones sent again (as the sender does).
        filler.unlink()
        assert post(refused).status_code == 202
        after = [interaction("add_to_cart", f"u{i % 3}", f"p{i % 5}") for i in range(20)]
        for i in range(0, 20, 10):
            assert post(after[i:i + 10]).status_code == 202

        in_log = ids_in_log(settings)
        assert len(acknowledged) == len(before) + len(refused) + len(after)
        missing = [event_id for event_id in acknowledged if in_log[event_id] == 0]
        doubled = {event_id: n for event_id, n in in_log.items() if n > 1}
        assert not missing, f"{len(missing)} acknowledged events are not in the log"
        assert not doubled, f"events in the log more than once: {doubled}"
        assert set(in_log) == set(acknowledged), "the log holds events that were never acknowledged"
    finally:
        broker.kill()
        store.kill()
        if app is not None:
            close_app(app)


def test_the_store_refuses_a_write_the_disk_cannot_hold_and_keeps_every_object_as_it_was(small_disk):
    """tools/s3rver/serve.js on a full disk: 507 with the reason, the old object whole (s3rver alone truncated it
    and then died of the unhandled ENOSPC), no empty new object listed, and the store goes on once there is room."""
    import urllib.error
    import urllib.request

    store = S3Store(small_disk / "s3")
    base = f"http://127.0.0.1:{store.port}/tansu"

    def put(key: str, body: bytes) -> tuple[int, str]:
        request = urllib.request.Request(f"{base}/{key}", data=body, method="PUT")
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, ""
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def get(key: str) -> bytes:
        with urllib.request.urlopen(f"{base}/{key}", timeout=10) as reply:
            return reply.read()

    try:
        assert put("state.json", b'{"v": 1}')[0] == 200
        filler = fill(small_disk)
        status, body = put("state.json", b'{"v": 2, "pad": "' + b"x" * 200_000 + b'"}')
        assert status == 507 and "StorageFull" in body and "disk is full" in body, (status, body)
        status, body = put("new-segment", b"y" * 200_000)
        assert status == 507, (status, body)
        assert store.proc.poll() is None, "the store died of the full disk"
        assert get("state.json") == b'{"v": 1}'
        with urllib.request.urlopen(f"{base}?list-type=2", timeout=10) as reply:
            listing = reply.read().decode()
        assert "state.json" in listing and "new-segment" not in listing, listing
        assert not [p for p in small_disk.rglob("*") if ".shopai-partial-" in p.name], "partial files left behind"
        filler.unlink()
        assert put("state.json", b'{"v": 3}')[0] == 200
        assert get("state.json") == b'{"v": 3}'
    finally:
        store.kill()
