"""``cache.BatchedScript`` in the real Redis: calls made while a batch is on the wire go together in the
next one, each caller gets its own reply or error, and a lost connection, a flushed script or a Redis that
does not answer cost an error at most, never a hang or a wrong reply."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest
import redis

from services.common import cache
from tests.support import ROOT

pytestmark = pytest.mark.integration

# Reads one key and echoes an argument; fails on demand (redis.error_reply), as a script error would.
ECHO = """
if ARGV[1] == 'fail' then return redis.error_reply('asked to fail') end
return {ARGV[1], redis.call('GET', KEYS[1]) or ''}
"""


@pytest.fixture
def client(redis_url, redis_client):
    client = cache.connect(redis_url)
    yield client
    client.close()


def call_in_threads(script: cache.BatchedScript, args: list[str]) -> dict[str, object]:
    """Each argument from a thread of its own; what each thread got (a reply or the exception)."""
    got: dict[str, object] = {}

    def one(arg: str) -> None:
        try:
            got[arg] = script(keys=["k"], args=[arg])
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            got[arg] = exc

    threads = [threading.Thread(target=one, args=(a,)) for a in args]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a caller hangs"
    return got


def test_a_lone_call_is_sent_at_once(client, redis_client):
    redis_client.set("k", "v")
    script = cache.BatchedScript(client, ECHO)
    assert script(keys=["k"], args=["a"]) == ["a", "v"]
    assert script(keys=["missing"], args=["b"]) == ["b", ""]
    assert (script.batches, script.calls) == (2, 2)
    script.close()


def test_calls_made_while_a_batch_is_on_the_wire_go_together_in_the_next(client, redis_client):
    redis_client.set("k", "v")
    script = cache.BatchedScript(client, ECHO)
    first_sent, release = threading.Event(), threading.Event()
    round_trip = script._round_trip

    def slow_first(commands):
        if not first_sent.is_set():
            first_sent.set()
            assert release.wait(10)
        return round_trip(commands)

    script._round_trip = slow_first  # type: ignore[method-assign]
    leader = threading.Thread(target=lambda: script(keys=["k"], args=["lead"]))
    leader.start()
    assert first_sent.wait(10)
    waiting = [f"w{i}" for i in range(20)]
    threads = [threading.Thread(target=lambda a=a: results.__setitem__(a, script(keys=["k"], args=[a])))
               for a in waiting]
    results: dict[str, object] = {}
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(script._queue) < len(waiting) and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    leader.join(10)
    for t in threads:
        t.join(10)
    assert results == {a: [a, "v"] for a in waiting}
    assert (script.batches, script.calls) == (2, 21)  # the leader's call, then all twenty in one pipeline
    script.close()


def test_many_callers_each_get_their_own_reply_or_error(client, redis_client):
    redis_client.set("k", "v")
    script = cache.BatchedScript(client, ECHO, max_batch=8)
    args = [f"a{i}" for i in range(60)] + ["fail"] * 5
    got = call_in_threads(script, args)
    for arg in args:
        if arg == "fail":
            assert isinstance(got[arg], redis.ResponseError) and "asked to fail" in str(got[arg])
        else:
            assert got[arg] == [arg, "v"]
    assert script.calls == len(args)  # error replies in a batch leave the others' replies in step
    script.close()


def test_a_flushed_script_is_loaded_again(client, redis_client):
    script = cache.BatchedScript(client, ECHO)
    assert script(keys=["k"], args=["a"]) == ["a", ""]
    redis_client.script_flush()
    assert script(keys=["k"], args=["b"]) == ["b", ""]


def test_a_killed_connection_is_replaced(client, redis_client):
    script = cache.BatchedScript(client, ECHO)
    assert script(keys=["k"], args=["a"]) == ["a", ""]
    killed = 0  # the batches' connection is its own: the one whose last command was EVALSHA
    for entry in redis_client.client_list():
        if entry.get("cmd") == "evalsha":
            killed += redis_client.client_kill_filter(_id=entry["id"])
    assert killed >= 1
    assert script(keys=["k"], args=["b"]) == ["b", ""]
    script.close()


def test_a_writing_script_is_not_sent_again_after_a_lost_connection(client, redis_client):
    count = cache.BatchedScript(client, "return redis.call('INCR', KEYS[1])", resend=False)
    assert count(keys=["hits"]) == 1
    for entry in redis_client.client_list():
        if entry.get("cmd") == "evalsha":
            redis_client.client_kill_filter(_id=entry["id"])
    with pytest.raises(redis.ConnectionError):
        count(keys=["hits"])  # its batch may have run: the caller is told, nothing is counted twice
    assert count(keys=["hits"]) == 2  # the next call goes on a new connection
    count.close()


def test_a_redis_that_does_not_answer_is_an_error_for_every_caller_not_a_hang():
    dead = cache.connect("redis://127.0.0.1:1/0")
    script = cache.BatchedScript(dead, ECHO)
    got = call_in_threads(script, [f"a{i}" for i in range(10)])
    assert all(isinstance(v, redis.ConnectionError) for v in got.values()), got
    with pytest.raises(redis.ConnectionError):
        script(keys=["k"], args=["again"])
    assert not script._busy and not script._queue


# Run under gevent, as in the gateway: callers queued behind a batch are killed (the first of them would
# send the next batch); the others are still answered at once and the script keeps working.
GEVENT_CALLERS_GIVE_UP = """
from gevent import monkey
monkey.patch_all()
import json, sys, time
import gevent, gevent.event
from services.common import cache
from tests.integration.test_batched_script import ECHO

script = cache.BatchedScript(cache.connect(sys.argv[1]), ECHO)
gate, first = gevent.event.Event(), [True]
round_trip = script._round_trip

def held_first(commands):
    if first[0]:
        first[0] = False
        gate.wait()
    return round_trip(commands)

script._round_trip = held_first
leader = gevent.spawn(script, keys=["k"], args=["lead"])
gevent.sleep(0.05)
waiters = [gevent.spawn(script, keys=["k"], args=[f"w{i}"]) for i in range(5)]
gevent.sleep(0.05)
gevent.killall(waiters[:3])
gate.set()
started = time.monotonic()
leader.join(10)
for w in waiters:
    w.join(10)
later = script(keys=["k"], args=["later"])
print(json.dumps({"leader": leader.value, "kept": [w.value for w in waiters[3:]], "later": later,
                  "seconds": time.monotonic() - started, "busy": script._busy, "queued": len(script._queue)}))
"""


def test_callers_that_give_up_under_gevent_hold_nobody_up(redis_url, redis_client):
    done = subprocess.run([sys.executable, "-c", GEVENT_CALLERS_GIVE_UP, redis_url], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["leader"] == ["lead", ""]
    assert got["kept"] == [["w3", ""], ["w4", ""]]
    assert got["later"] == ["later", ""]
    assert got["seconds"] < 5  # not the 21 s a caller waits before it gives up on Redis
    assert (got["busy"], got["queued"]) == (False, 0)
