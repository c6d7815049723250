"""Benchmark of a scale shop (issue #22): seed it through the real broker, apply it with every service's consumer
group, weigh the de-duplication markers, train every model.

    python -m benchmarks.bench_scale [--quick] [--products N --users N --days N] [--train recommender,forecasting,vision]
        [--groups recommender,forecasting,chatbot,vision] [--no-baselines] [--no-profile]

Full: 50,000 products, 100,000 users, 365 days (about 5 million events); ``--quick``: 5,000 / 10,000 / 60 days.
On a broker of its own (log in memory) and a redis-server of its own (so that Redis's memory is this run's alone):

1. seed: ``shopai seed`` as a child process (the simulation streamed to the broker a day at a time, acks=all):
   its wall time and its peak RSS (the generator and the publisher together);
2. apply: each service's projection alone, one consumer group after the other, the same ``EventConsumer`` the
   services run, in this process: events applied per second end to end (from the consumer's start, which
   includes joining the group, and from its first applied event), the Redis memory it added, and its
   exactly-once markers (hashes ``shopai:dedup:<group>:<generation>:<shard>``, services/common/projection.py):
   how many, bytes per applied event by ``MEMORY USAGE`` (a sample) and by the drop of ``used_memory`` when they
   are deleted; against the markers of the scheme before issue #22 (a key ``shopai:dedup:<group>:<event_id>``
   with its expiry per event), written for as many event ids and weighed the same way, in the same run;
   Then the baseline, in the same run: the recommender's projection once more as a group of its own, reading each
   product it meets with a round trip of its own as before issue #22 (without ``Projection.prepare``);
3. profile: the recommender's consumer once more under cProfile (a group of its own), the functions that take
   the time;
4. train: each service as a process (``python -m services.<name>``), ``POST /v1/admin/train/<name>`` through
   the gateway in this process, the job's wall time and the process's peak RSS (VmHWM) before and after. The
   vision service fine-tunes until its time budget (15 minutes; 1 with --quick) or its epochs run out.
   The chatbot trains its intent model on its own utterances, whatever the shop's size; it is not trained here.

Results: results/scale.json (scale-quick.json with --quick) and a table.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import redis

from benchmarks.machine import describe
from services.common import cache, topics
from services.common.bus import EventConsumer
from services.common.projection import Projection, legacy_marker
from services.common.settings import Settings
from tests.support import ROOT, Broker, PrivateRedis, ServiceProcess, wait_for

RESULTS = Path(__file__).resolve().parent / "results"
FULL = {"products": 50_000, "users": 100_000, "days": 365}
QUICK = {"products": 5_000, "users": 10_000, "days": 60}
CONSUMERS = ("recommender", "forecasting", "chatbot", "vision")
TRAINED = ("recommender", "forecasting", "vision")
API_KEY = "bench-scale-admin-key-0123456789"
MB = 2**20


def projection_class(name: str):
    import importlib

    module = importlib.import_module(f"services.{name}.consumer")
    return next(v for v in vars(module).values()
                if isinstance(v, type) and getattr(v, "group", None) == name and hasattr(v, "apply")), module.K.stats


def applied(client: redis.Redis, stats_key: str) -> int:
    """Events a projection counted (its stats hash: event type -> count; other fields are not events)."""
    return sum(int(v) for k, v in client.hgetall(stats_key).items() if "." in k)


# ---- 1. seed ------------------------------------------------------------------------------------------------------


def seed(settings: Settings, shop: dict, workdir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPAI_")}
    env.update(SHOPAI_KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers, SHOPAI_REDIS_URL=settings.redis_url,
               SHOPAI_DATA_DIR=str(settings.data_dir), SHOPAI_LOG_JSON="false", OPENBLAS_NUM_THREADS="1")
    command = [sys.executable, "-m", "shopai.cli", "seed", "--seed", "42", "--products", str(shop["products"]),
               "--users", str(shop["users"]), "--days", str(shop["days"]), "--truth", str(workdir / "truth.json"),
               "--quiet"]
    out_path = workdir / "seed.out"
    started = time.perf_counter()
    with out_path.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = out_path.read_text(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"shopai seed failed ({proc.returncode}):\n{text[-3000:]}")
    report = json.loads(text[text.index("{"):])
    return {"events": report["published"], "by_type": report["by_type"], "seconds": round(seconds, 1),
            "events_per_second": round(report["published"] / seconds),
            "peak_rss_mb": round(usage.ru_maxrss * 1024 / MB), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1)}


# ---- 2. apply -----------------------------------------------------------------------------------------------------


def expected_events(by_type: dict[str, int], projection) -> int:
    return sum(n for kind, n in by_type.items() if topics.route(kind)[0] in projection.topics)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class OneBatchAtATime(EventConsumer):
    """The consumer loop before issue #22's overlap: each batch stored before the next is built."""

    CHAIN_LIMIT = 0


def run_consumer(settings: Settings, client: redis.Redis, projection, stats_key: str, target: int,
                 timeout: float, profile: cProfile.Profile | None = None, others: dict[str, int] | None = None,
                 consumer_class: type[EventConsumer] = EventConsumer) -> dict:
    """One consumer group applies everything on its topics; seconds from its start and from its first event,
    and the CPU seconds the consumer's process (this one), Redis and the broker spent meanwhile: on a shared
    machine events per CPU second say more than events per second."""
    consumer = consumer_class(settings, projection)
    stop = threading.Event()

    def run() -> None:
        if profile is not None:
            profile.enable()
        try:
            consumer.run(stop)
        finally:
            if profile is not None:
                profile.disable()

    base = applied(client, stats_key)
    # A projection already built, as in a running shop: events go through the group's path. (Without the
    # sentinel the consumer first replays the topics without a group, the path of a flushed Redis.)
    client.set(projection.sentinel_key, "bench")
    others = others or {}
    cpu_before = {name: cpu_seconds(pid) for name, pid in others.items()}
    own_before = time.process_time()
    started = time.perf_counter()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    first = None
    while True:
        done = applied(client, stats_key) - base
        now = time.perf_counter()
        if done and first is None:
            first = (now, done)
        if done >= target:
            break
        if now - started > timeout:
            stop.set()
            raise SystemExit(f"{projection.group}: {done} of {target} events applied after {timeout:.0f} s")
        time.sleep(0.1)
    own = time.process_time() - own_before
    cpu = {name: round(cpu_seconds(pid) - cpu_before[name], 1) for name, pid in others.items()}
    stop.set()
    thread.join(30)
    seconds = now - started
    steady = now - first[0]
    return {"events": target, "seconds": round(seconds, 2), "events_per_second": round(target / seconds),
            "events_per_second_after_first": round((target - first[1]) / steady) if steady > 0 else None,
            "cpu_seconds": {"consumer": round(own, 1), **cpu},
            "events_per_consumer_cpu_second": round(target / own) if own > 0 else None}


def dedup_keys(client: redis.Redis, group: str) -> list[str]:
    return list(client.scan_iter(match=cache.key("dedup", group, "*"), count=5000))


def dedup_usage(client: redis.Redis, group: str, events: int, sample: int = 2000) -> dict:
    """The group's exactly-once markers: the hashes holding them, the markers, and MEMORY USAGE (key, value,
    TTL) of a sample of the hashes."""
    keys = dedup_keys(client, group)
    sizes = [client.memory_usage(k, samples=0) or 0 for k in keys[:sample]]
    per_key = sum(sizes) / len(sizes) if sizes else 0.0
    with client.pipeline(transaction=False) as pipe:
        for name in keys:
            pipe.hlen(name)
            pipe.hexists(name, "!")  # a full hash's flag (services/common/projection.py), not a marker
        replies = pipe.execute()
        markers = sum(replies[0::2]) - sum(replies[1::2])
    return {"marker_hashes": len(keys), "markers": markers, "memory_usage_bytes_per_hash": round(per_key, 1),
            "bytes_per_applied_event_memory_usage": round(per_key * len(keys) / events, 1)}


def legacy_dedup_usage(client: redis.Redis, events: int, ttl: int, sample: int = 2000) -> dict:
    """The baseline: the markers of the scheme before issue #22, one key with an expiry per event
    (``SET shopai:dedup:<group>:<event_id> 1 NX EX ttl``), written for ``events`` event ids, weighed, deleted."""
    group = "bench-legacy-markers"
    before = int(client.info("memory")["used_memory"])
    names = [legacy_marker(group, str(uuid.uuid4())) for _ in range(events)]
    for start in range(0, events, 5000):
        with client.pipeline(transaction=False) as pipe:
            for name in names[start:start + 5000]:
                pipe.set(name, "1", nx=True, ex=ttl)
            pipe.execute()
    added = int(client.info("memory")["used_memory"]) - before
    sizes = [client.memory_usage(name, samples=0) or 0 for name in names[:sample]]
    for start in range(0, events, 5000):
        client.delete(*names[start:start + 5000])
    return {"markers": events, "bytes_per_applied_event_used_memory": round(added / events, 1),
            "bytes_per_applied_event_memory_usage": round(sum(sizes) / len(sizes), 1) if sizes else None}


def dedup_freed(client: redis.Redis, group: str, events: int) -> dict:
    """What deleting the group's markers frees (used_memory before and after: Redis's own accounting, the
    keyspace's and the expires' dictionary entries included). Run last: the markers are gone after it."""
    keys = dedup_keys(client, group)
    before = int(client.info("memory")["used_memory"])
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start:start + 1000])
    after = int(client.info("memory")["used_memory"])
    return {"bytes_per_applied_event_used_memory": round((before - after) / events, 1),
            "used_memory_freed_mb": round((before - after) / MB, 1)}


def apply_all(settings: Settings, client: redis.Redis, by_type: dict[str, int], timeout: float,
              others: dict[str, int], groups: tuple[str, ...] = CONSUMERS) -> dict:
    out = {}
    for name in groups:
        cls, stats_key = projection_class(name)
        projection = cls(client)
        target = expected_events(by_type, projection)
        used_before = int(client.info("memory")["used_memory"])
        row = run_consumer(settings, client, projection, stats_key, target, timeout, others=others)
        row["redis_used_memory_added_mb"] = round((int(client.info("memory")["used_memory"]) - used_before) / MB, 1)
        row["dedup"] = dedup_usage(client, name, target)
        print(f"  {name}: {row['events']} events in {row['seconds']} s ({row['events_per_second']}/s), "
              f"CPU s {row['cpu_seconds']}, {row['dedup']['markers']} markers in {row['dedup']['marker_hashes']} "
              "hashes", flush=True)
        out[name] = row
    return out


def apply_baseline(settings: Settings, client: redis.Redis, by_type: dict[str, int], timeout: float,
                   others: dict[str, int]) -> dict:
    """The baseline in the same run: the recommender's projection as a group of its own, reading each product
    it meets with a round trip of its own as before issue #22 (no ``prepare``, each batch stored before the next is
    built; counts go to the same stats)."""
    cls, stats_key = projection_class("recommender")
    before = type("RecommenderOneReadPerProduct", (cls,), {"group": "bench-baseline", "prepare": Projection.prepare})
    projection = before(client)
    row = run_consumer(settings, client, projection, stats_key, expected_events(by_type, projection), timeout,
                       others=others, consumer_class=OneBatchAtATime)
    print(f"  recommender, baseline (a read per product): {row['events']} events in {row['seconds']} s "
          f"({row['events_per_second']}/s), CPU s {row['cpu_seconds']}", flush=True)
    return row


def apply_one_at_a_time(settings: Settings, client: redis.Redis, by_type: dict[str, int], timeout: float,
                        others: dict[str, int]) -> dict:
    """The second baseline, in the same run: the recommender's projection as a group of its own with today's reads
    and script, but each batch stored before the next is built (no batch in flight, as before the overlap)."""
    cls, stats_key = projection_class("recommender")
    projection = type("RecommenderOneBatchAtATime", (cls,), {"group": "bench-one-at-a-time"})(client)
    row = run_consumer(settings, client, projection, stats_key, expected_events(by_type, projection), timeout,
                       others=others, consumer_class=OneBatchAtATime)
    print(f"  recommender, one batch at a time: {row['events']} events in {row['seconds']} s "
          f"({row['events_per_second']}/s), CPU s {row['cpu_seconds']}", flush=True)
    return row


# ---- 3. profile ---------------------------------------------------------------------------------------------------


def profile_consumer(settings: Settings, client: redis.Redis, by_type: dict[str, int], timeout: float,
                     top: int = 18) -> dict:
    """The recommender's projection again, as a group of its own, under cProfile (counts go to the same stats)."""
    cls, stats_key = projection_class("recommender")
    profiled = type("ProfiledRecommender", (cls,), {"group": "bench-profile"})
    projection = profiled(client)
    target = expected_events(by_type, projection)
    profile = cProfile.Profile()
    row = run_consumer(settings, client, projection, stats_key, target, timeout, profile)
    stats = pstats.Stats(profile, stream=io.StringIO())
    total = sum(t for (_, _, t, _, _) in stats.stats.values()) or 1.0
    rows = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:top]
    functions = [{"function": f"{Path(f).name}:{line}({fn})", "own_share": round(tt / total, 3),
                  "calls": nc, "cumulative_s": round(ct, 2)}
                 for (f, line, fn), (_, nc, tt, ct, _) in rows]
    return {"events_per_second_profiled": row["events_per_second"], "top_own_time": functions}


# ---- 4. train -----------------------------------------------------------------------------------------------------


def vm(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            values[line.split(":")[0]] = int(line.split()[1]) * 1024
    return values


def train_all(settings: Settings, workdir: Path, services: list[str], timeout: float,
              params: dict[str, dict[str, str]]) -> dict:
    from gateway.app import close_app, create_app

    env = {"SHOPAI_RETRAIN_INTERVAL_SECONDS": "0", "SHOPAI_VISION_AUTO_TRAIN": "false",
           "SHOPAI_FORECAST_AUTO_TRAIN": "false", "OPENBLAS_NUM_THREADS": "1"}
    out = {}
    for name in services:
        started = time.perf_counter()
        service = ServiceProcess(name, settings, workdir, **env)
        app = None
        try:
            service.wait_serving(timeout=timeout)
            serving_seconds = time.perf_counter() - started
            gateway_settings = settings.model_copy(deep=True)
            getattr(gateway_settings, name).grpc_port = service.grpc_port
            app = create_app(gateway_settings)
            client = app.test_client()
            client.environ_base["HTTP_X_API_KEY"] = API_KEY
            before = vm(service.proc.pid)
            started = time.perf_counter()
            reply = client.post(f"/v1/admin/train/{name}", json={"params": params.get(name, {})})
            if reply.status_code != 202:
                raise SystemExit(f"POST /v1/admin/train/{name} answered {reply.status_code}: {reply.json}")
            location = reply.headers["Location"]

            def finished(location=location, client=client) -> dict | None:
                job = client.get(location).json
                return job if job["state"] in ("succeeded", "failed") else None

            try:
                job = wait_for(finished, timeout, interval=1.0, what=f"{name}'s training job")
            except AssertionError:  # not finished in time: say so, and go on with the others
                job = {"state": f"not finished after {timeout:.0f} s"}
            seconds = time.perf_counter() - started
            after = vm(service.proc.pid)
            out[name] = {"state": job["state"], "seconds": round(seconds, 1), "params": params.get(name, {}),
                         "seconds_to_serving": round(serving_seconds, 1),
                         "rss_before_mb": round(before["VmRSS"] / MB), "peak_rss_before_mb": round(before["VmHWM"] / MB),
                         "peak_rss_mb": round(after["VmHWM"] / MB),
                         "message": str(job.get("message") or job.get("error") or "")[:300]}
            print(f"  {name}: {job['state']} in {seconds:.1f} s, peak RSS {out[name]['peak_rss_mb']} MB", flush=True)
        finally:
            if app is not None:
                close_app(app)
            service.stop()
    return out


# ---- the run ------------------------------------------------------------------------------------------------------


def commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (working tree with uncommitted changes)" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5,000 products, 10,000 users, 60 days")
    parser.add_argument("--products", type=int)
    parser.add_argument("--users", type=int)
    parser.add_argument("--days", type=int)
    parser.add_argument("--train", default=",".join(TRAINED),
                        help=f"services to train, comma-separated (default {','.join(TRAINED)}; '' for none)")
    parser.add_argument("--vision-budget-minutes", type=int, default=None,
                        help="the vision fine-tuning's time budget (default: 1 with --quick, the service's own 15 "
                             "otherwise): it trains until the budget or its epochs run out")
    parser.add_argument("--no-profile", action="store_true", help="skip the profiled pass of the recommender")
    parser.add_argument("--groups", default=",".join(CONSUMERS),
                        help="the consumer groups that apply the shop, in order (default: all four)")
    parser.add_argument("--no-baselines", action="store_true",
                        help="skip the recommender's two baseline passes (the full shop: ~20 minutes each)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per step (default: by size)")
    parser.add_argument("--out", default=None,
                        help="the results file's name under benchmarks/results (default scale[-quick].json)")
    args = parser.parse_args()
    shop = dict(QUICK if args.quick else FULL)
    for k in shop:
        if getattr(args, k) is not None:
            shop[k] = getattr(args, k)
    groups = tuple(g for g in args.groups.split(",") if g)
    if set(groups) - set(CONSUMERS):
        raise SystemExit(f"--groups: {sorted(set(groups) - set(CONSUMERS))}: the groups are {', '.join(CONSUMERS)}")
    services = [s for s in args.train.split(",") if s]
    unknown = set(services) - set(TRAINED)
    if unknown:
        raise SystemExit(f"--train: {sorted(unknown)}: the trained services are {', '.join(TRAINED)}")
    timeout = args.timeout or (900.0 if args.quick else 7200.0)

    workdir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    private = PrivateRedis()
    broker = Broker()
    client = cache.connect(private.url)
    settings = Settings(kafka_bootstrap_servers=broker.bootstrap, redis_url=private.url, log_json=False,
                        data_dir=workdir / "data", env="prod", gateway_api_keys=f"{API_KEY}:ingest+admin+support")
    result: dict = {"benchmark": "scale", "when": datetime.now(UTC).isoformat(timespec="seconds"),
                    "machine": describe(), "commit": commit(), "mode": "quick" if args.quick else "full",
                    "shop": {**shop, "seed": 42}}
    try:
        print(f"seeding {shop['products']} products, {shop['users']} users, {shop['days']} days", flush=True)
        result["seed"] = seed(settings, shop, workdir)
        by_type = result["seed"]["by_type"]
        print(f"  {result['seed']['events']} events in {result['seed']['seconds']} s, "
              f"peak RSS {result['seed']['peak_rss_mb']} MB", flush=True)
        print("applying, one consumer group at a time", flush=True)
        others = {"redis": private.proc.pid, "broker": broker.proc.pid}
        result["apply"] = apply_all(settings, client, by_type, timeout, others, groups)
        result["redis_used_memory_mb"] = round(int(client.info("memory")["used_memory"]) / MB, 1)
        if not args.no_baselines:
            result["apply_baseline_recommender"] = apply_baseline(settings, client, by_type, timeout, others)
            result["apply_one_batch_at_a_time"] = apply_one_at_a_time(settings, client, by_type, timeout, others)
        first = result["apply"][groups[0]]["events"] if groups else 0
        if first:
            result["dedup_baseline_one_key_per_event"] = legacy_dedup_usage(client, first, settings.dedup_ttl_seconds)
        if services:
            print("training", flush=True)
            budget = args.vision_budget_minutes if args.vision_budget_minutes is not None else (
                1 if args.quick else None)
            params = {"vision": {"budget_minutes": str(budget)}} if budget is not None else {}
            result["train"] = train_all(settings, workdir, services, timeout, params)
        for name, row in result["apply"].items():
            row["dedup"].update(dedup_freed(client, name, row["events"]))
        if not args.no_profile:  # last: it counts every event a second time in the recommender's keys
            print("profiling the recommender's consumer", flush=True)
            result["profile_recommender_consumer"] = profile_consumer(settings, client, by_type, timeout)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - what was measured is written all the same, with the failure
        result["error"] = str(exc)[:2000]
        print(f"stopped: {exc}", flush=True)
    finally:
        broker.stop()
        client.close()
        private.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / (args.out or f"scale{'-quick' if args.quick else ''}.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    if "apply" in result:
        print_table(result)
    print(f"\nwritten to {out}")
    if "error" in result:
        raise SystemExit(1)


def print_table(result: dict) -> None:
    s, sd = result["shop"], result["seed"]
    print(f"\nScale shop: {s['products']:,} products, {s['users']:,} users, {s['days']} days: {sd['events']:,} events "
          f"({result['machine']})\n")
    print(f"seed (generate + publish, acks=all): {sd['seconds']} s, {sd['events_per_second']:,} events/s, "
          f"peak RSS {sd['peak_rss_mb']} MB\n")
    print("| consumer group | events | events/s (from start) | events/s (after first) | events per consumer "
          "CPU s | CPU s consumer/Redis/broker | Redis added MB | dedup B/event (used_memory) "
          "| dedup B/event (MEMORY USAGE) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    def apply_row(name: str, row: dict, memory: str) -> None:
        cpu = "/".join(str(v) for v in row["cpu_seconds"].values())
        print(f"| {name} | {row['events']:,} | {row['events_per_second']:,} | {row['events_per_second_after_first'] or ''} "
              f"| {row['events_per_consumer_cpu_second'] or ''} | {cpu} | {memory} |")

    for name, row in result["apply"].items():
        d = row["dedup"]
        apply_row(name, row, f"{row['redis_used_memory_added_mb']} | {d['bytes_per_applied_event_used_memory']} "
                             f"| {d['bytes_per_applied_event_memory_usage']}")
    if "apply_baseline_recommender" in result:
        apply_row("recommender, baseline: a read per product (before #22)", result["apply_baseline_recommender"],
                  " | | ")
    if "apply_one_batch_at_a_time" in result:
        apply_row("recommender, one batch at a time (no batch in flight)", result["apply_one_batch_at_a_time"],
                  " | | ")
    if "dedup_baseline_one_key_per_event" in result:
        d = result["dedup_baseline_one_key_per_event"]
        print(f"| markers as before #22: a key per event, for {d['markers']:,} event ids | | | | | | | "
              f"{d['bytes_per_applied_event_used_memory']} | {d['bytes_per_applied_event_memory_usage']} |")
    if "profile_recommender_consumer" in result:
        p = result["profile_recommender_consumer"]
        print(f"\nrecommender consumer under cProfile ({p['events_per_second_profiled']:,} events/s profiled), "
              "own time:")
        for f in p["top_own_time"][:10]:
            print(f"  {f['own_share']:6.1%}  {f['function']}")
    if result.get("train"):
        print("\n| training | state | start to serving s | job s | RSS before MB | peak RSS MB |\n"
              "|---|---|---:|---:|---:|---:|")
        for name, row in result["train"].items():
            print(f"| {name} | {row['state']} | {row['seconds_to_serving']} | {row['seconds']} | {row['rss_before_mb']} "
                  f"| {row['peak_rss_mb']} |")


if __name__ == "__main__":
    main()
