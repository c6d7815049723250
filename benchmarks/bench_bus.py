"""Benchmark of the event bus on this machine: publishing, and applying events to Redis.

Applying is measured three ways on the same demo-shop events, in one run:
  exactly-once (Lua batch)   what the consumers use: one script per batch, per-event NX markers
  per-event WATCH/MULTI      the textbook optimistic transaction per event (the baseline)
  plain pipeline, no dedup   a ceiling: fastest possible, but a replay would double count
and end to end: publish to the real broker, then a consumer group applies everything.

    python -m benchmarks.bench_bus [--quick]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import redis

from benchmarks.machine import describe
from services.common import cache
from services.common.bus import EventConsumer, EventPublisher, ensure_topics
from services.common.events import decode_event, parse_event
from services.common.projection import Ops, RedisApplier
from services.common.settings import Settings
from services.common.transport import kafka_options
from services.recommender.consumer import RecommenderProjection
from services.recommender.store import RecommenderKeys
from shopai.demo.generator import DemoShopConfig, generate
from tests.support import Broker, machine_redis_url

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    return describe()


def commands_for(projection: RecommenderProjection, events: list) -> list[tuple[str, list[list[str]]]]:
    items = []
    state: dict = {}
    for event in events:
        ops = Ops(state)
        projection.apply(event, ops)
        items.append((event.event_id, ops.commands))
    return items


def apply_lua(client: redis.Redis, items, batch: int = 500) -> None:
    applier = RedisApplier(client, "bench", 3600)
    for start in range(0, len(items), batch):
        applier.apply(items[start:start + batch])


def apply_watch_multi(client: redis.Redis, items) -> None:
    for event_id, cmds in items:
        marker = f"shopai:dedup:bench:{event_id}"
        with client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(marker)
                    if pipe.exists(marker):
                        pipe.reset()
                        break
                    pipe.multi()
                    pipe.set(marker, "1", ex=3600)
                    for cmd in cmds:
                        pipe.execute_command(*cmd)
                    pipe.execute()
                    break
                except redis.WatchError:
                    continue


def apply_plain(client: redis.Redis, items, batch: int = 500) -> None:
    for start in range(0, len(items), batch):
        with client.pipeline(transaction=False) as pipe:
            for _, cmds in items[start:start + batch]:
                for cmd in cmds:
                    pipe.execute_command(*cmd)
            pipe.execute()


def timed(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small shop, for a smoke run")
    args = parser.parse_args()
    config = (DemoShopConfig(seed=42, n_products=200, n_users=150, days=60) if args.quick
              else DemoShopConfig(seed=42, n_products=2000, n_users=3000, days=365))
    url = machine_redis_url(db=14)
    if url is None:
        raise SystemExit("the benchmark needs a Redis on 127.0.0.1:6379 (or SHOPAI_TEST_REDIS_URL)")
    client = cache.connect(url)

    shop = generate(config, progress=True)
    raw = [e for e in shop.events() if e["type"].split(".")[0] in ("product", "interaction")]
    wire = [json.dumps(e, separators=(",", ":"), ensure_ascii=False).encode() for e in raw]
    n = len(raw)
    print(f"{n} catalog and interaction events")

    rows = []
    seconds = timed(lambda: [decode_event(b) for b in wire])
    rows.append(("decode + validate (events.proto)", n / seconds, "per event, in the consumer and the gateway"))
    events = [decode_event(b) for b in wire]
    client.flushdb()
    projection = RecommenderProjection(client)
    seconds = timed(commands_for, projection, events)
    rows.append(("projection: event -> Redis commands", n / seconds, "recommender"))
    items = commands_for(projection, events)

    apply_rows = []
    for name, fn in (("exactly-once Lua batch (ours)", apply_lua),
                     ("WATCH/MULTI per event (baseline)", apply_watch_multi),
                     ("plain pipeline, no dedup (ceiling)", apply_plain)):
        client.flushdb()
        seconds = timed(fn, client, items)
        apply_rows.append((name, n / seconds))
        if fn is not apply_plain:
            replay = timed(fn, client, items)  # everything again: all duplicates, nothing may change
            apply_rows.append((name.split(" (")[0] + ", replayed", n / replay))
    # Correctness of the measured path: a replay changed nothing.
    client.flushdb()
    apply_lua(client, items)
    before = client.zrange(RecommenderKeys.popular, 0, -1, withscores=True)
    apply_lua(client, items)
    assert client.zrange(RecommenderKeys.popular, 0, -1, withscores=True) == before

    # End to end on the real broker: publish (acks=all), then one consumer applies everything.
    broker = Broker()
    try:
        settings = Settings(kafka_bootstrap_servers=broker.bootstrap, redis_url=url, log_json=False)
        ensure_topics(settings)
        publisher = EventPublisher(settings)
        started = time.perf_counter()
        for start in range(0, n, 5000):
            publisher.publish([parse_event(e) for e in raw[start:start + 5000]])
        publish_rate = n / (time.perf_counter() - started)
        publisher.close()
        # Baseline: kafka-python alone with its defaults (acks=all), pre-encoded, no validation.
        from kafka import KafkaProducer

        ensure_topics(settings, ["bench.raw"])
        raw_producer = KafkaProducer(**kafka_options(settings), acks="all")
        started = time.perf_counter()
        futures = [raw_producer.send("bench.raw", key=str(i % 97).encode(), value=v) for i, v in enumerate(wire)]
        raw_producer.flush()
        for future in futures:
            future.get()
        raw_rate = n / (time.perf_counter() - started)
        raw_producer.close()
        client.flushdb()
        consumer = EventConsumer(settings, RecommenderProjection(client))
        stop = threading.Event()
        started = time.perf_counter()
        thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
        thread.start()
        while sum(int(v) for v in client.hvals(RecommenderKeys.stats)) < n:
            time.sleep(0.05)
        consume_rate = n / (time.perf_counter() - started)
        stop.set()
        thread.join(20)
    finally:
        broker.stop()
        client.flushdb()

    result = {
        "benchmark": "bus",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "mode": "quick" if args.quick else "full",
        "events": n,
        "stages_events_per_second": {name: round(rate) for name, rate, _ in rows},
        "apply_events_per_second": {name: round(rate) for name, rate in apply_rows},
        "end_to_end_events_per_second": {"publish (validate + acks=all)": round(publish_rate),
                                         "baseline: kafka-python defaults, no validation": round(raw_rate),
                                         "consume (group, exactly-once into Redis)": round(consume_rate)},
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bus{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"\nBus benchmark, {n} events, {result['machine']}\n")
    print(f"| {'stage':<52} | {'events/s':>10} |\n|{'-' * 54}|{'-' * 12}:|")
    for name, rate, _ in rows:
        print(f"| {name:<52} | {rate:>10,.0f} |")
    for name, rate in apply_rows:
        print(f"| apply: {name:<45} | {rate:>10,.0f} |")
    print(f"| {'end to end: publish (validate + acks=all)':<52} | {publish_rate:>10,.0f} |")
    print(f"| {'baseline: kafka-python defaults, pre-encoded':<52} | {raw_rate:>10,.0f} |")
    print(f"| {'end to end: consume (exactly-once into Redis)':<52} | {consume_rate:>10,.0f} |")
    print(f"\nwritten to {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")


if __name__ == "__main__":
    main()
