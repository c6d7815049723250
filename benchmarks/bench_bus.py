"""Benchmark of the event bus on this machine: publishing, and applying events to Redis.

Applying is measured three ways on the same demo-shop events, in one run:
  exactly-once (Lua batch)   what the consumers use: one script per batch, per-event NX markers
  per-event WATCH/MULTI      the textbook optimistic transaction per event (the baseline)
  plain pipeline, no dedup   a ceiling: fastest possible, but a replay would double count
and end to end: publish to the real broker, then a consumer group applies everything, with the broker's log in
memory and in the S3 store on disk that `make run` uses (tansu's s3:// engine on s3rver), side by side.

    python -m benchmarks.bench_bus [--quick] [--storage memory|s3|both] [--section all|storage]

``--section storage`` measures only the end-to-end rows, for both storages, into results/bus-storage[-quick].json.
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
from tests.support import Broker, S3Store, machine_redis_url

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


# Erasure's guard around a shopper's commands (services/common/privacy.py) is run by the applier's script
# only. No shopper is erased here, so it skips nothing; the baselines, which send the commands to Redis as
# they are, leave it out (as they did before the guard existed).
GUARD_COMMANDS = frozenset({"GUARD", "ENDGUARD"})


def unguarded(items) -> list[tuple[str, list[list[str]]]]:
    return [(event_id, [c for c in cmds if c[0] not in GUARD_COMMANDS]) for event_id, cmds in items]


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
    parser.add_argument("--storage", choices=("memory", "s3", "both"), default="both",
                        help="the broker's storage for the end-to-end rows (default: both, side by side)")
    parser.add_argument("--section", choices=("all", "storage"), default="all",
                        help="storage: only publish and consume end to end, memory against s3")
    args = parser.parse_args()
    config = (DemoShopConfig(seed=42, n_products=200, n_users=150, days=60) if args.quick
              else DemoShopConfig(seed=42, n_products=2000, n_users=3000, days=365))
    url = machine_redis_url(db=14)
    if url is None:
        raise SystemExit("the benchmark needs a Redis on 127.0.0.1:6379 (or SHOPAI_TEST_REDIS_URL)")
    client = cache.connect(url)

    raw, wire = shop_events(config)
    n = len(raw)
    print(f"{n} catalog and interaction events")
    if args.section == "storage":
        by_storage = {storage: measure_end_to_end(client, url, raw, wire, storage) for storage in ("memory", "s3")}
        out = RESULTS / f"bus-storage{'-quick' if args.quick else ''}.json"
        out.write_text(json.dumps({
            "benchmark": "bus-storage", "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(), "mode": "quick" if args.quick else "full", "events": n,
            "end_to_end_by_storage": {storage: {name: round(rate) for name, rate in rates.items()}
                                      for storage, rates in by_storage.items()},
        }, indent=2) + "\n")
        print(f"\nBus benchmark, {n} events, {machine()}")
        print_storage_table(by_storage)
        print(f"\nwritten to {out}")
        return
    rows, items = measure_stages(client, wire)
    apply_rows = measure_apply(client, items)
    storages = ("memory", "s3") if args.storage == "both" else (args.storage,)
    by_storage = {storage: measure_end_to_end(client, url, raw, wire, storage) for storage in storages}
    end_to_end = by_storage[storages[0]]

    result = {
        "benchmark": "bus",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "mode": "quick" if args.quick else "full",
        "events": n,
        "stages_events_per_second": {name: round(rate) for name, rate, _ in rows},
        "apply_events_per_second": {name: round(rate) for name, rate in apply_rows},
        "end_to_end_events_per_second": {name: round(rate) for name, rate in end_to_end.items()},
        "end_to_end_by_storage": {storage: {name: round(rate) for name, rate in rates.items()}
                                  for storage, rates in by_storage.items()},
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bus{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result["machine"], n, rows, apply_rows, end_to_end)
    print_storage_table(by_storage)
    print(f"\nwritten to {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")


def shop_events(config: DemoShopConfig) -> tuple[list[dict], list[bytes]]:
    """The demo shop's catalog and interaction events, as dicts and as the bytes on the wire."""
    shop = generate(config, progress=True)
    raw = [e for e in shop.events() if e["type"].split(".")[0] in ("product", "interaction")]
    wire = [json.dumps(e, separators=(",", ":"), ensure_ascii=False).encode() for e in raw]
    return raw, wire


def measure_stages(client: redis.Redis, wire: list[bytes]) -> tuple[list[tuple[str, float, str]], list]:
    """Decoding and the recommender's projection, each alone; returns the rows and the projected commands."""
    n = len(wire)
    rows = []
    seconds = timed(lambda: [decode_event(b) for b in wire])
    rows.append(("decode + validate (events.proto)", n / seconds, "per event, in the consumer and the gateway"))
    events = [decode_event(b) for b in wire]
    client.flushdb()
    projection = RecommenderProjection(client)
    seconds = timed(commands_for, projection, events)
    rows.append(("projection: event -> Redis commands", n / seconds, "recommender"))
    return rows, commands_for(projection, events)


def measure_apply(client: redis.Redis, items: list) -> list[tuple[str, float]]:
    """Applying the commands three ways (and replaying the deduplicating ones); then checks that a replay
    of the measured path changed nothing."""
    n = len(items)
    apply_rows = []
    plain = unguarded(items)
    for name, fn, commands in (("exactly-once Lua batch (ours)", apply_lua, items),
                               ("WATCH/MULTI per event (baseline)", apply_watch_multi, plain),
                               ("plain pipeline, no dedup (ceiling)", apply_plain, plain)):
        client.flushdb()
        seconds = timed(fn, client, commands)
        apply_rows.append((name, n / seconds))
        if fn is not apply_plain:
            replay = timed(fn, client, commands)  # everything again: all duplicates, nothing may change
            apply_rows.append((name.split(" (")[0] + ", replayed", n / replay))
    # Correctness of the measured path: a replay changed nothing.
    client.flushdb()
    apply_lua(client, items)
    before = client.zrange(RecommenderKeys.popular, 0, -1, withscores=True)
    apply_lua(client, items)
    assert client.zrange(RecommenderKeys.popular, 0, -1, withscores=True) == before
    return apply_rows


def measure_end_to_end(client: redis.Redis, url: str, raw: list[dict], wire: list[bytes],
                       storage: str = "memory") -> dict[str, float]:
    """On the real broker, its log in memory or in s3rver on disk: publish (acks=all), the kafka-python
    baseline, then one consumer applies everything. Events per second, keyed as in the results file."""
    import tempfile

    n = len(raw)
    scratch = tempfile.TemporaryDirectory(prefix="bench-bus-s3-")
    store = S3Store(Path(scratch.name)) if storage == "s3" else None
    broker = Broker(s3=store)
    try:
        settings = Settings(kafka_bootstrap_servers=broker.bootstrap, redis_url=url, log_json=False)
        ensure_topics(settings)
        publish_rate = _publish_rate(settings, raw)
        raw_rate = _raw_publish_rate(settings, wire)
        client.flushdb()
        consume_rate = _consume_rate(settings, client, n)
    finally:
        broker.stop()
        if store is not None:
            store.kill()
        scratch.cleanup()
        client.flushdb()
    return {"publish (validate + acks=all)": publish_rate,
            "baseline: kafka-python defaults, no validation": raw_rate,
            "consume (group, exactly-once into Redis)": consume_rate}


def _publish_rate(settings: Settings, raw: list[dict]) -> float:
    publisher = EventPublisher(settings)
    started = time.perf_counter()
    for start in range(0, len(raw), 5000):
        publisher.publish([parse_event(e) for e in raw[start:start + 5000]])
    rate = len(raw) / (time.perf_counter() - started)
    publisher.close()
    return rate


def _raw_publish_rate(settings: Settings, wire: list[bytes]) -> float:
    """Baseline: kafka-python alone with its defaults (acks=all), pre-encoded, no validation."""
    from kafka import KafkaProducer

    ensure_topics(settings, ["bench.raw"])
    raw_producer = KafkaProducer(**kafka_options(settings), acks="all")
    started = time.perf_counter()
    futures = [raw_producer.send("bench.raw", key=str(i % 97).encode(), value=v) for i, v in enumerate(wire)]
    raw_producer.flush()
    for future in futures:
        future.get()
    rate = len(wire) / (time.perf_counter() - started)
    raw_producer.close()
    return rate


def _consume_rate(settings: Settings, client: redis.Redis, n: int) -> float:
    consumer = EventConsumer(settings, RecommenderProjection(client))
    stop = threading.Event()
    started = time.perf_counter()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    while sum(int(v) for v in client.hvals(RecommenderKeys.stats)) < n:
        time.sleep(0.05)
    rate = n / (time.perf_counter() - started)
    stop.set()
    thread.join(20)
    return rate


def print_table(
    machine_text: str, n: int, rows: list, apply_rows: list, end_to_end: dict[str, float]
) -> None:
    publish_rate, raw_rate, consume_rate = end_to_end.values()
    print(f"\nBus benchmark, {n} events, {machine_text}\n")
    print(f"| {'stage':<52} | {'events/s':>10} |\n|{'-' * 54}|{'-' * 12}:|")
    for name, rate, _ in rows:
        print(f"| {name:<52} | {rate:>10,.0f} |")
    for name, rate in apply_rows:
        print(f"| apply: {name:<45} | {rate:>10,.0f} |")
    print(f"| {'end to end: publish (validate + acks=all)':<52} | {publish_rate:>10,.0f} |")
    print(f"| {'baseline: kafka-python defaults, pre-encoded':<52} | {raw_rate:>10,.0f} |")
    print(f"| {'end to end: consume (exactly-once into Redis)':<52} | {consume_rate:>10,.0f} |")



def print_storage_table(by_storage: dict[str, dict[str, float]]) -> None:
    if len(by_storage) < 2:
        return
    names = list(next(iter(by_storage.values())))
    print(f"\nThe broker's storage, end to end (events/s)\n\n| {'stage':<48} | " +
          " | ".join(f"{s:>10}" for s in by_storage) + " | s3 / memory |")
    print(f"|{'-' * 50}|" + "".join(f"{'-' * 11}:|" for _ in by_storage) + f"{'-' * 12}:|")
    for name in names:
        rates = [by_storage[s][name] for s in by_storage]
        print(f"| {name:<48} | " + " | ".join(f"{r:>10,.0f}" for r in rates) +
              f" | {by_storage['s3'][name] / by_storage['memory'][name]:>10.2f} |")


if __name__ == "__main__":
    main()
