"""Benchmark of the REST gateway under load, on this machine, next to a bare Flask route as the ceiling.

One run starts the whole stack as production runs it: the tansu broker, Redis, the recommender, chatbot
and forecasting services as processes, the gateway under gunicorn with ``gateway/gunicorn_conf.py``, and a
bare Flask app (one trivial JSON route) under gunicorn with the same configuration. The demo shop is
published through the broker and applied by every service; the recommender trains its hybrid model.

Then, route by route, a load generator of our own (asyncio, raw HTTP/1.1 keep-alive connections, in this
process: locust's own CPU use would take a large share of two cores) measures
  max throughput  closed loop, ``CONCURRENCY`` connections sending back to back: requests/s and latency;
  fixed rate      open loop at 200 requests/s (or half the route's maximum when that is lower): requests
                  start on schedule whether or not earlier ones finished, and latency counts from the
                  scheduled start, so a stall shows as latency (no coordinated omission).

    python -m benchmarks.bench_gateway [--quick]

Writes ``results/gateway[-quick].json``. ``--scale-out`` instead measures one recommender replica and one
gateway process against two of each (``ScaleOutStack``), into ``results/gateway-scale-out[-quick].json``.
``--during-training`` measures answers while the recommender trains (issue #22 item 7: cached answers' p99
within 2x idle), with its training at the default lower CPU priority (``SHOPAI_JOBS_NICE`` 10) and, the baseline
in the same run, at serving's own (0), into ``results/gateway-training[-quick].json``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import describe

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
# The assistant's first intent model takes ~2.5 minutes to train on two cores; it and the embedding cache
# are kept here between runs (the other services start from nothing every run).
CHATBOT_HOME = ROOT / ".data" / "bench-gateway" / "chatbot"
GUNICORN_CONF = ROOT / "gateway" / "gunicorn_conf.py"

TARGET_RATE = 200.0  # requests/s of the fixed-rate runs
CONCURRENCY = 16  # connections of the max-throughput runs (the gateway has 32 threads)
GOAL_P99_MS = 25.0
GOAL_SHARE_OF_BARE = 0.5
GOAL_ROUTE = "recommendations, answer cached"  # the goals are checked on this row
REDIS_DB = 12

CHAT_MESSAGES = [
    "Where is my order?", "What is your return policy?", "Do you have running shoes?",
    "How long does shipping take?", "Can I pay with a credit card?", "我想退货", "运费怎么算？",
    "有没有红色的包？",
]


# ---------------------------------------------------------------------------------------------- the ceiling
def bare_app():
    """The ceiling: Flask with one trivial JSON route, served by the same gunicorn configuration."""
    from flask import Flask

    app = Flask("bare")

    @app.get("/bare")
    def bare() -> tuple[dict, int]:
        return {"status": "ok"}, 200

    return app


# ------------------------------------------------------------------------------------------ load generator
@dataclass
class Samples:
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests in the window
    errors: dict[str, int] = field(default_factory=dict)
    window: float = 0.0
    offered: int = 0  # requests scheduled in the window (open loop)
    cpu_seconds: float = 0.0  # the load generator's own CPU time
    hits: list[float] = field(default_factory=list)  # latencies of the answers marked X-ShopAI-Cache: hit

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_hit = False  # the last answer came from the answer cache (X-ShopAI-Cache: hit)

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def _exchange(self, raw: bytes) -> tuple[int, int]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, closing, hit = 0, False, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                closing = True
            elif name == "x-shopai-cache":
                hit = value.strip() == "hit"
        if length:
            await self.reader.readexactly(length)
        if closing:
            self.close()
        self.last_hit = hit
        return status, length

    async def request(self, raw: bytes, timeout: float) -> int:
        """The response's status; a kept-alive connection the server closed meanwhile is reopened once."""
        for attempt in (1, 2):
            fresh = self.writer is None
            if fresh:
                await self.open()
            try:
                status, _ = await asyncio.wait_for(self._exchange(raw), timeout)
                return status
            except (asyncio.IncompleteReadError, ConnectionError):
                self.close()
                if fresh or attempt == 2:
                    raise
        raise AssertionError("unreachable")


async def _closed_loop(host: str, port: int, requests: list[bytes], concurrency: int, seconds: float,
                       warmup: float) -> Samples:
    samples = Samples()
    loop = asyncio.get_running_loop()
    start = loop.time()
    window_start, end = start + warmup, start + warmup + seconds

    async def worker(index: int) -> None:
        conn = Connection(host, port)
        i = index
        try:
            while (t0 := loop.time()) < end:
                raw = requests[i % len(requests)]
                i += concurrency
                try:
                    status = await conn.request(raw, timeout=30)
                except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                    conn.close()
                    if t0 >= window_start:
                        samples.error(type(exc).__name__)
                    continue
                t1 = loop.time()
                if t0 >= window_start and t1 <= end:
                    if 200 <= status < 300:
                        samples.latencies.append(t1 - t0)
                    else:
                        samples.error(str(status))
        finally:
            conn.close()

    cpu = time.process_time()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    samples.cpu_seconds = time.process_time() - cpu
    samples.window = seconds
    return samples


async def _open_loop(host: str, port: int, requests: list[bytes], rate: float, seconds: float,
                     warmup: float, max_connections: int = 256, until: Any = None) -> Samples:
    """``until``: instead of ``seconds``, send until ``until()`` says to stop (checked before each request)."""
    samples = Samples()
    loop = asyncio.get_running_loop()
    idle: list[Connection] = []
    slots = asyncio.Semaphore(max_connections)
    total = int((warmup + seconds) * rate) if until is None else 1 << 62
    start = loop.time() + 0.05
    window_start = start + warmup

    async def one(raw: bytes, scheduled: float) -> None:
        async with slots:
            conn = idle.pop() if idle else Connection(host, port)
            try:
                status = await conn.request(raw, timeout=30)
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                conn.close()
                if scheduled >= window_start:
                    samples.error(type(exc).__name__)
                return
            idle.append(conn)
        if scheduled >= window_start:
            if 200 <= status < 300:
                samples.latencies.append(loop.time() - scheduled)
                if conn.last_hit:
                    samples.hits.append(samples.latencies[-1])
            else:
                samples.error(str(status))

    cpu = time.process_time()
    tasks = []
    for i in range(total):
        if until is not None and until():
            break
        scheduled = start + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(requests[i % len(requests)], scheduled)))
        if scheduled >= window_start:
            samples.offered += 1
    window = seconds if until is None else max(0.001, loop.time() - window_start)
    await asyncio.gather(*tasks)
    samples.cpu_seconds = time.process_time() - cpu
    samples.window = window
    for conn in idle:
        conn.close()
    return samples


# The gateway's credentials in the benchmark: shoppers sign in with tokens signed by this secret (minted
# for the whole run), the analyst's routes take this key. Checking them is part of every measured request.
BENCH_TOKEN_SECRET = "bench-gateway-shopper-token-secret-0123456789"
BENCH_ANALYST_KEY = "bench-gateway-analyst-key-0123456789"
BENCH_SUPPORT_KEY = "bench-gateway-support-key-0123456789"  # bench_trust: staff reads, audited


@functools.cache
def shopper_token(user: str) -> str:
    from gateway.identity import ShopperTokens
    from services.common.settings import Settings

    tokens = ShopperTokens(Settings(gateway_shopper_token_secrets=BENCH_TOKEN_SECRET))
    return tokens.mint(user, ttl_seconds=86400).token


def as_shopper(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {shopper_token(user)}"}


ANALYST = {"X-API-Key": BENCH_ANALYST_KEY}
SUPPORT = {"X-API-Key": BENCH_SUPPORT_KEY}


def get(path: str, headers: dict[str, str] | None = None) -> bytes:
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    return f"GET {path} HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench-gateway\r\nAccept: */*\r\n{extra}\r\n".encode()


def post_json(path: str, body: dict) -> bytes:
    data = json.dumps(body, ensure_ascii=False).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench-gateway\r\nAccept: */*\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data


def summary(samples: Samples) -> dict[str, Any]:
    ms = np.asarray(samples.latencies) * 1000.0
    done = len(samples.latencies)
    out: dict[str, Any] = {
        "requests_per_second": round(done / samples.window, 1) if samples.window else 0.0,
        "ok": done, "errors": dict(samples.errors),
        "generator_cpu_ms_per_request": round(1000 * samples.cpu_seconds / max(done, 1), 3),
    }
    if samples.offered:
        out["offered"] = samples.offered
    for name, q in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99)):
        out[name] = round(float(np.percentile(ms, q)), 2) if done else None
    out["max_ms"] = round(float(ms.max()), 2) if done else None
    return out


# ---------------------------------------------------------------------------------------- CPU of the stack
def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(_children(p))
    return out


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values) - idle) / tick, sum(values) / tick


class CpuMeter:
    """CPU use (in % of one core) of named process trees over a measurement, and of the whole machine
    (``machine``: all cores together, e.g. 200 = two cores busy; ``other``: what no process of the stack,
    nor this one, used: other people's work on a shared machine)."""

    def __init__(self, pids: dict[str, int], everything: dict[str, int] | None = None) -> None:
        self.pids = pids
        self.everything = everything or pids

    def _ours(self) -> float:
        stack = sum(_cpu_seconds(p) for pid in self.everything.values() for p in _tree(pid))
        return stack + time.process_time()

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.c0 = {name: sum(_cpu_seconds(p) for p in _tree(pid)) for name, pid in self.pids.items()}
        self.m0, self.o0 = _machine_busy()[0], self._ours()

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.t0
        use = {name: round(100 * (sum(_cpu_seconds(p) for p in _tree(pid)) - self.c0[name]) / elapsed, 1)
               for name, pid in self.pids.items()}
        machine = 100 * (_machine_busy()[0] - self.m0) / elapsed
        use["machine"] = round(machine, 1)
        use["other"] = round(max(0.0, machine - 100 * (self._ours() - self.o0) / elapsed), 1)
        return use


def wait_quiet(pids: dict[str, int], limit: float = 15.0, timeout: float = 600.0) -> dict[str, float]:
    """Wait until every process tree uses less than ``limit`` % of a core over 2 s (a consumer catching up,
    a forecast refresh, a training run), so that no background work runs during a measurement."""
    deadline = time.monotonic() + timeout
    while True:
        meter = CpuMeter(pids)
        meter.start()
        time.sleep(2)
        use = meter.stop()
        if all(use[name] < limit for name in pids) or time.monotonic() > deadline:
            return use


# ---------------------------------------------------------------------------------------------- the stack
def answers(port: int, path: str = "/healthz") -> bool:
    """Whether the server on ``port`` answers ``path`` with a 200 (a readiness poll)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


class Stack:
    """Broker, Redis, three services, the gateway and the bare app under gunicorn."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
        self.procs: list[Any] = []
        self.servers: dict[str, subprocess.Popen] = {}

    def _infrastructure(self) -> None:
        """A fresh broker, the benchmark's Redis database (flushed; a private redis-server where none runs)."""
        from services.common import cache
        from services.common.settings import Settings
        from tests.support import Broker, PrivateRedis, machine_redis_url

        url = machine_redis_url(db=REDIS_DB)
        if url is None:
            self.private_redis = PrivateRedis()
            url = self.private_redis.url
        self.redis_url = url
        self.redis = cache.connect(url)
        self.redis.flushdb()
        self.broker = Broker()
        self.settings = Settings(kafka_bootstrap_servers=self.broker.bootstrap, redis_url=url,
                                 data_dir=self.workdir / "data", log_json=False)

    def start(self) -> None:
        from tests.support import ServiceProcess

        self._infrastructure()
        quiet = {"SHOPAI_RETRAIN_INTERVAL_SECONDS": "0", "SHOPAI_RETRAIN_CHECK_SECONDS": "3600"}
        self.recommender = ServiceProcess("recommender", self.settings, self.workdir, **quiet)
        self.forecasting = ServiceProcess("forecasting", self.settings, self.workdir,
                                          SHOPAI_FORECAST_AUTO_TRAIN="false", **quiet)
        chatbot_settings = self.settings.model_copy(update={"data_dir": CHATBOT_HOME})
        CHATBOT_HOME.mkdir(parents=True, exist_ok=True)
        self.chatbot = ServiceProcess("chatbot", chatbot_settings, self.workdir,
                                      SHOPAI_RECOMMENDER__GRPC_PORT=str(self.recommender.grpc_port), **quiet)
        self.procs = [self.recommender, self.forecasting, self.chatbot]
        for name, proc in (("recommender", self.recommender), ("forecasting", self.forecasting),
                           ("chatbot", self.chatbot)):
            self.settings.endpoint(name).grpc_port = proc.grpc_port
        from tests.support import free_port

        self.gateway_port, self.bare_port = free_port(), free_port()
        self.servers["gateway"] = self._gunicorn("gateway.app:create_app()", self.gateway_port)
        self.servers["bare"] = self._gunicorn("benchmarks.bench_gateway:bare_app()", self.bare_port)

    def _gunicorn(self, app: str, port: int) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPAI_")}
        env.update(
            SHOPAI_KAFKA_BOOTSTRAP_SERVERS=self.settings.kafka_bootstrap_servers,
            SHOPAI_REDIS_URL=self.redis_url, SHOPAI_DATA_DIR=str(self.workdir / "data"),
            SHOPAI_LOG_JSON="false", SHOPAI_GATEWAY_HOST="127.0.0.1",
            SHOPAI_GATEWAY_PORT=str(port), PYTHONUNBUFFERED="1",
            # One client sends every request: a limit this high keeps the limiter's work per request (a Redis
            # round trip) without ever refusing one.
            SHOPAI_GATEWAY_RATE_LIMIT_PER_MINUTE="1000000000",
            SHOPAI_GATEWAY_KEY_RATE_LIMIT_PER_MINUTE="1000000000",
            SHOPAI_GATEWAY_SHOPPER_TOKEN_SECRETS=BENCH_TOKEN_SECRET,
            SHOPAI_GATEWAY_API_KEYS=f"{BENCH_ANALYST_KEY}:analyst,{BENCH_SUPPORT_KEY}:support",
        )
        for name in ("recommender", "chatbot", "vision", "forecasting"):
            env[f"SHOPAI_{name.upper()}__GRPC_PORT"] = str(self.settings.endpoint(name).grpc_port)
        gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
        log = open(self.workdir / f"gunicorn-{port}.log", "wb")  # noqa: SIM115 - lives as long as the server
        # Each server its own control socket (gunicorn's default path is one per machine).
        control = ["--control-socket", str(self.workdir / f"gunicorn-{port}.ctl")]
        return subprocess.Popen([gunicorn, "--config", str(GUNICORN_CONF), *control, app], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self) -> None:
        from tests.support import wait_for

        for proc in self.procs:
            proc.wait_serving(timeout=900)  # the chatbot trains its first model on a machine without one
        wait_for(lambda: answers(self.gateway_port), 60, what="the gateway")
        wait_for(lambda: answers(self.bare_port, "/bare"), 60, what="the bare app")

    def pids(self) -> dict[str, int]:
        return {"gateway": self.servers["gateway"].pid, "bare": self.servers["bare"].pid,
                "recommender": self.recommender.proc.pid, "chatbot": self.chatbot.proc.pid,
                "forecasting": self.forecasting.proc.pid}

    def infrastructure(self) -> dict[str, int]:
        """The broker and Redis: counted as the stack's, not as other people's work."""
        return {"broker": self.broker.proc.pid, "redis": int(self.redis.info("server")["process_id"])}

    def stop(self) -> None:
        for server in self.servers.values():
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
                try:
                    server.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(server.pid, signal.SIGKILL)
        for proc in self.procs:
            proc.stop()
        if hasattr(self, "broker"):
            self.broker.stop()
        if hasattr(self, "redis"):
            self.redis.flushdb()
            self.redis.close()
        if hasattr(self, "private_redis"):
            self.private_redis.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def seed_and_train(stack: Stack, quick: bool) -> dict[str, Any]:
    """Publish the demo shop, wait until the recommender applied it, train its hybrid model."""
    import grpc

    from protos import common_pb2
    from protos import recommender_pb2_grpc as pb_grpc
    from services.common.bus import EventPublisher
    from services.recommender.store import RecommenderKeys
    from shopai.demo import DemoShopConfig, generate
    from tests.support import wait_for

    # Quick: a small shop (~50,000 events); full: the default demo shop (~560,000 events) `make run` seeds.
    config = (DemoShopConfig(seed=42, n_products=300, n_users=500, days=60) if quick
              else DemoShopConfig(seed=42))
    shop = generate(config, progress=False)
    events = list(shop.events())
    publisher = EventPublisher(stack.settings)
    started = time.perf_counter()
    try:
        for start in range(0, len(events), 5000):
            publisher.publish(events[start:start + 5000], timeout=120)
    finally:
        publisher.close()
    wait_for(lambda: sum(int(v) for v in stack.redis.hgetall(RecommenderKeys.stats).values()) >= len(events),
             1800, interval=1.0, what="every event applied by the recommender")
    ingest = time.perf_counter() - started
    print(f"  {len(events)} events published and applied in {ingest:.1f} s", flush=True)

    channel = grpc.insecure_channel(stack.recommender.target)
    stub = pb_grpc.RecommenderStub(channel)
    started = time.perf_counter()
    job = stub.Train(common_pb2.TrainRequest(requested_by="benchmark"))
    finished = (common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED)
    done = wait_for(lambda: (j := stub.GetJob(common_pb2.GetJobRequest(job_id=job.job_id))).state in finished
                    and j, 1800, interval=0.5, what="training")
    channel.close()
    if done.state != common_pb2.JOB_STATE_SUCCEEDED:
        raise SystemExit(f"recommender training failed: {done.message}")
    train = time.perf_counter() - started
    print(f"  recommender trained ({done.model_version}) in {train:.1f} s", flush=True)

    users = sorted({e["payload"]["user_id"] for e in shop.interactions})
    sold: dict[str, int] = {}
    for e in shop.orders:
        if e["type"] == "order.created":
            for line in e["payload"].get("lines", []):
                sold[line["product_id"]] = sold.get(line["product_id"], 0) + 1
    products = sorted(sold, key=lambda p: -sold[p])
    catalog = [e["payload"]["product_id"] for e in shop.catalog if e["type"] == "product.upserted"]
    return {"dataset": f"demo shop seed {config.seed}: {len(events)} events, {config.n_products} products, "
                       f"{config.n_users} users",
            "ingest_seconds": round(ingest, 1), "train_seconds": round(train, 1),
            "users": users, "products": products, "catalog": catalog}


@dataclass
class Route:
    name: str
    server: str  # "gateway" or "bare"
    requests: list[bytes]
    backend: str | None
    warm: bool = False  # send each distinct request once before each measurement (see warm())
    fixed: list[bytes] | None = None  # the fixed-rate run's requests, when not ``requests``

    @property
    def fixed_requests(self) -> list[bytes]:
        return self.requests if self.fixed is None else self.fixed


def routes(shop: dict[str, Any], quick: bool) -> list[Route]:
    rng = random.Random(7)
    users, catalog = shop["users"], shop["catalog"]
    # Answers cached: each run its own users (at most 1,000), so that sending each one's request once (at
    # the speed of computed answers) and the run that follows fit in the 60 s an answer stays cached; an
    # answer found in the cache is not cached again, so users of the first run would expire in the second.
    shuffled = rng.sample(users, len(users))
    half = min(len(users) // 2, 1000)
    first, second = shuffled[:half], shuffled[half:2 * half]
    hot = shop["products"][:20]
    n = 4000

    def cached(some: list[str]) -> list[bytes]:
        return [get(f"/v1/users/{u}/recommendations", as_shopper(u)) for u in (rng.choice(some) for _ in range(n))]

    def never_cached() -> list[bytes]:  # a random excluded product: no request repeats
        return [get(f"/v1/users/{u}/recommendations?exclude={rng.choice(catalog)}", as_shopper(u))
                for u in (rng.choice(users) for _ in range(4 * n))]

    return [
        Route("bare Flask route (ceiling)", "bare", [get("/bare")], None),
        Route("gateway /healthz (no backend)", "gateway", [get("/healthz")], None),
        Route(GOAL_ROUTE, "gateway", cached(first), "recommender", warm=True, fixed=cached(second)),
        Route("recommendations, never cached", "gateway", never_cached(), "recommender",
              fixed=never_cached()),
        Route("forecast", "gateway", [get(f"/v1/forecasts/{p}", ANALYST) for p in hot], "forecasting", warm=True),
        Route("chat", "gateway",
              [post_json("/v1/chat", {"message": m, "user_id": rng.choice(users)})
               for m in CHAT_MESSAGES for _ in range(5)], "chatbot"),
    ]


def measure(stack: Stack, quick: bool, route_list: list[Route]) -> list[dict[str, Any]]:
    seconds_max, seconds_fixed, warmup = (5.0, 8.0, 1.0) if quick else (20.0, 30.0, 2.0)
    pids = stack.pids()
    rows = []
    for route in route_list:
        port = stack.gateway_port if route.server == "gateway" else stack.bare_port
        watched = {k: v for k, v in pids.items() if k in (route.server, route.backend)}
        warm(route, route.requests, port)
        wait_quiet(pids)
        meter = CpuMeter(watched, everything={**pids, **stack.infrastructure()})
        meter.start()
        peak = summary(asyncio.run(_closed_loop("127.0.0.1", port, route.requests, CONCURRENCY, seconds_max,
                                                warmup)))
        peak["cpu_percent"] = meter.stop()
        print(f"  {route.name}: max {peak['requests_per_second']} req/s, p50 {peak['p50_ms']} ms, "
              f"p99 {peak['p99_ms']} ms, errors {peak['errors']}, CPU {peak['cpu_percent']}", flush=True)
        capacity = peak["requests_per_second"]
        rate = (TARGET_RATE if capacity >= 2 * TARGET_RATE or route.name == GOAL_ROUTE
                else max(1.0, round(capacity / 2, 1)))
        warm(route, route.fixed_requests, port)
        wait_quiet(pids)
        meter.start()
        fixed = summary(asyncio.run(_open_loop("127.0.0.1", port, route.fixed_requests, rate, seconds_fixed,
                                               warmup)))
        fixed["cpu_percent"] = meter.stop()
        fixed["rate"] = rate
        print(f"  {route.name}: at {rate:g} req/s p50 {fixed['p50_ms']} ms, p95 {fixed['p95_ms']} ms, "
              f"p99 {fixed['p99_ms']} ms, errors {fixed['errors']}, CPU {fixed['cpu_percent']}", flush=True)
        rows.append({"route": route.name, "server": route.server, "backend": route.backend,
                     "max_throughput": peak, "fixed_rate": fixed})
    return rows


def warm(route: Route, requests: list[bytes], port: int, concurrency: int = 4) -> None:
    """Send each distinct request of a run once (``route.warm``): the answers a steady stream of requests
    finds cached (the recommender's answers live 60 s, forecasts a day) are cached when the measurement
    starts, as they are in a shop that has been open for a minute. Done before each run."""
    if not route.warm:
        return
    distinct = list(dict.fromkeys(requests))

    async def each_once() -> None:
        async def worker(start: int) -> None:
            conn = Connection("127.0.0.1", port)
            try:
                for raw in distinct[start::concurrency]:
                    await conn.request(raw, timeout=120)
            finally:
                conn.close()

        await asyncio.gather(*(worker(i) for i in range(concurrency)))

    asyncio.run(each_once())


def run(quick: bool) -> dict[str, Any]:
    stack = Stack(quick)
    try:
        started = time.perf_counter()
        stack.start()
        stack.wait_ready()
        print(f"  stack up in {time.perf_counter() - started:.0f} s", flush=True)
        shop = seed_and_train(stack, quick)
        route_list = routes(shop, quick)
        print("  waiting for the services to finish their background work", flush=True)
        wait_quiet(stack.pids(), timeout=900)
        rows = measure(stack, quick, route_list)
    finally:
        stack.stop()
    by_name = {row["route"]: row for row in rows}
    bare = by_name["bare Flask route (ceiling)"]["max_throughput"]["requests_per_second"]
    rec = by_name[GOAL_ROUTE]
    for row in rows:
        row["max_throughput"]["share_of_bare"] = round(row["max_throughput"]["requests_per_second"] / bare, 3)
    p99 = rec["fixed_rate"]["p99_ms"]
    return {
        "dataset": shop["dataset"], "ingest_seconds": shop["ingest_seconds"],
        "train_seconds": shop["train_seconds"],
        "setup": {
            "gateway": "gunicorn --config gateway/gunicorn_conf.py 'gateway.app:create_app()' (1 process, "
                       "gevent, 1,000 connections), access control on (rate limit set out of reach), Redis, real "
                       "services",
            "bare": "the same gunicorn configuration serving a Flask app with one route returning "
                    "{\"status\": \"ok\"}",
            "generator": f"asyncio, raw HTTP/1.1 keep-alive, in the benchmark process on the same machine; "
                         f"max throughput: {CONCURRENCY} connections back to back; fixed rate: open loop, "
                         f"latency from the scheduled start",
            "recommendations": "GET /v1/users/{random demo user}/recommendations (k 10, hybrid model trained "
                               "on the shop). 'answer cached': 1,000 users at most per run, each one's "
                               "request sent once before the run, so answers come from the recommender's "
                               "Redis answer cache (60 s), as for a user who asks again within a minute; "
                               "'never cached': "
                               "every user, exclude={random product} added, every answer computed",
            "forecast": "GET /v1/forecasts/{one of the 20 best-selling products} (cached forecasts, as the "
                        "service's refresher keeps them)",
            "chat": "POST /v1/chat, 8 English/Chinese messages, a new conversation each",
        },
        "rows": rows,
        "goals": {
            f"recommendations p99 <= {GOAL_P99_MS:g} ms at {TARGET_RATE:g} req/s":
                p99 is not None and p99 <= GOAL_P99_MS and not rec["fixed_rate"]["errors"],
            f"recommendations >= {GOAL_SHARE_OF_BARE:.0%} of the bare route's throughput":
                rec["max_throughput"]["share_of_bare"] >= GOAL_SHARE_OF_BARE,
        },
    }


def show(result: dict[str, Any]) -> None:
    print(f"\n{result['dataset']}; ingest {result['ingest_seconds']} s; recommender training "
          f"{result['train_seconds']} s\n")
    print(f"| {'route':<32} | {'max req/s':>9} | {'% of bare':>9} | {'p50 ms':>7} | {'p99 ms':>7} "
          f"| {'fixed req/s':>11} | {'p50 ms':>7} | {'p95 ms':>7} | {'p99 ms':>7} | {'errors':>6} |")
    print(f"|{'-' * 34}|{'-' * 10}:|{'-' * 10}:|{'-' * 8}:|{'-' * 8}:|{'-' * 12}:|{'-' * 8}:|{'-' * 8}:|"
          f"{'-' * 8}:|{'-' * 7}:|")
    for row in result["rows"]:
        m, f = row["max_throughput"], row["fixed_rate"]
        errors = sum(m["errors"].values()) + sum(f["errors"].values())
        print(f"| {row['route']:<32} | {m['requests_per_second']:>9.1f} | {m['share_of_bare']:>9.0%} | "
              f"{m['p50_ms']:>7} | {m['p99_ms']:>7} | {f['rate']:>11g} | {f['p50_ms']:>7} | "
              f"{f['p95_ms']:>7} | {f['p99_ms']:>7} | {errors:>6} |")
    print("\nCPU (% of one core; machine: all cores together; other: processes outside the stack) during the "
          "max-throughput / fixed-rate runs:")
    for row in result["rows"]:
        peak, fixed = row["max_throughput"]["cpu_percent"], row["fixed_rate"]["cpu_percent"]
        print(f"  {row['route']}: {peak} / {fixed}")
    print()
    for goal, ok in result["goals"].items():
        print(f"{'PASS' if ok else 'FAIL'}  {goal}")


# ------------------------------------------------------------------------------------------------ scale out
class ScaleOutStack(Stack):
    """Broker, Redis, two recommender replicas and two gateway processes (gunicorn), each gateway dialling a
    replica of its own (one channel per backend: docs/deploy.md, "Known limits"); the replicas' model
    directories are one shared directory, as the Kubernetes shape's ReadWriteMany volume. Only the first
    replica runs while the shop is applied and trained; the second starts serving its model at once."""

    def start(self) -> None:
        from tests.support import ServiceProcess, free_port

        self._infrastructure()
        (self.workdir / "shared-models").mkdir()
        self.quiet = {"SHOPAI_RETRAIN_INTERVAL_SECONDS": "0", "SHOPAI_RETRAIN_CHECK_SECONDS": "3600"}
        self.recommender = ServiceProcess("recommender", self._replica(1), self.workdir, **self.quiet)
        self.procs = [self.recommender]
        self.gateway_ports = [free_port(), free_port()]

    def _replica(self, n: int):
        data = self.workdir / f"replica-{n}"
        data.mkdir()
        (data / "models").symlink_to(self.workdir / "shared-models", target_is_directory=True)
        return self.settings.model_copy(update={"data_dir": data})

    def scale_out(self) -> None:
        """The second recommender replica, then one gateway per replica."""
        from tests.support import ServiceProcess, wait_for

        self.second = ServiceProcess("recommender", self._replica(2), self.workdir, **self.quiet)
        self.procs.append(self.second)
        self.second.wait_serving(timeout=300)
        from services.common.models import ModelRegistry

        version = ModelRegistry(self.workdir / "shared-models" / "recommender").current_version()
        wait_for(lambda: self.second.metric("shopai_model_info", version=version) == 1, 30,
                 what=f"the second replica to serve {version}")
        for n, (port, replica) in enumerate(zip(self.gateway_ports, self.procs, strict=True), start=1):
            self.settings.recommender.grpc_port = replica.grpc_port
            self.servers[f"gateway-{n}"] = self._gunicorn("gateway.app:create_app()", port)

    def wait_ready(self) -> None:
        from tests.support import wait_for

        for proc in self.procs:
            proc.wait_serving(timeout=300)
        for port in self.gateway_ports if self.servers else ():
            wait_for(lambda p=port: answers(p), 60, what=f"the gateway on {port}")

    def pids(self) -> dict[str, int]:
        out = {f"recommender-{n}": proc.proc.pid for n, proc in enumerate(self.procs, start=1)}
        out.update({name: server.pid for name, server in self.servers.items()})
        return out


async def _closed_loops(ports: list[int], requests: list[bytes], concurrency: int, seconds: float,
                        warmup: float) -> Samples:
    """The closed loop with its connections spread evenly over ``ports`` (one gateway each), merged."""
    parts = await asyncio.gather(*(
        _closed_loop("127.0.0.1", port, requests[i::len(ports)], concurrency // len(ports), seconds, warmup)
        for i, port in enumerate(ports)))
    merged = Samples(window=seconds)
    for part in parts:
        merged.latencies.extend(part.latencies)
        merged.cpu_seconds += part.cpu_seconds
        for what, n in part.errors.items():
            merged.errors[what] = merged.errors.get(what, 0) + n
    return merged


def run_scale_out(quick: bool) -> dict[str, Any]:
    """Computed answers with one recommender replica against two, and cached answers with one gateway
    process against two, under the same load generator (16 connections back to back) in one run."""
    seconds, warmup = (8.0, 1.0) if quick else (20.0, 2.0)
    stack = ScaleOutStack(quick)
    rows = []
    try:
        stack.start()
        stack.wait_ready()
        shop = seed_and_train(stack, quick)
        stack.scale_out()
        stack.wait_ready()
        by_name = {route.name: route for route in routes(shop, quick)}
        computed, cached = by_name["recommendations, never cached"], by_name[GOAL_ROUTE]
        one, two = stack.gateway_ports[:1], stack.gateway_ports
        setups = [
            ("computed answers", "1 gateway -> 1 recommender", computed, one),
            ("computed answers", "2 gateways -> 2 recommenders (one each)", computed, two),
            ("answer cached", "1 gateway", cached, one),
            ("answer cached", "2 gateways", cached, two),
        ]
        pids = stack.pids()
        for route_name, setup, route, ports in setups:
            warm(route, route.requests, ports[0])  # the answer cache is shared: warming through one gateway does
            wait_quiet(pids)
            meter = CpuMeter(pids, everything={**pids, **stack.infrastructure()})
            meter.start()
            row = summary(asyncio.run(_closed_loops(ports, route.requests, CONCURRENCY, seconds, warmup)))
            row["cpu_percent"] = meter.stop()
            print(f"  {route_name}, {setup}: {row['requests_per_second']} req/s, p50 {row['p50_ms']} ms, "
                  f"p99 {row['p99_ms']} ms, errors {row['errors']}, CPU {row['cpu_percent']}", flush=True)
            rows.append({"route": route_name, "setup": setup, **row})
    finally:
        stack.stop()
    for name in ("computed answers", "answer cached"):
        first, second = (r for r in rows if r["route"] == name)
        second["ratio_to_one"] = round(second["requests_per_second"] / max(first["requests_per_second"], 0.1), 2)
    return {"dataset": shop["dataset"], "ingest_seconds": shop["ingest_seconds"],
            "train_seconds": shop["train_seconds"], "cores": os.cpu_count(),
            "setup": f"closed loop, {CONCURRENCY} keep-alive connections back to back (split evenly over the "
                     f"gateways), {seconds:g} s per row; the load generator runs in the benchmark process on the "
                     f"same machine. Computed: GET /v1/users/{{user}}/recommendations?exclude={{random product}} "
                     f"(never cached); cached: the same users' plain request, each sent once before the run",
            "rows": rows}


def show_scale_out(result: dict[str, Any]) -> None:
    print(f"\n{result['dataset']}; {result['cores']} cores\n")
    print("| answers | setup | req/s | x one | p50 ms | p99 ms | errors | CPU % (per process; machine) |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for row in result["rows"]:
        cpu = {k: v for k, v in row["cpu_percent"].items() if v >= 1 or k == "machine"}
        print(f"| {row['route']} | {row['setup']} | {row['requests_per_second']:.1f} | {row.get('ratio_to_one', 1)} | "
              f"{row['p50_ms']} | {row['p99_ms']} | {sum(row['errors'].values())} | {cpu} |")


class TrainingStack(Stack):
    """Broker, Redis, the recommender and the gateway; the recommender (and the gateway, which dials its port)
    restarted with another ``SHOPAI_JOBS_NICE`` on the same data."""

    def start(self, nice: int = 10) -> None:  # type: ignore[override]
        self._infrastructure()
        self._up(nice)

    def _up(self, nice: int) -> None:
        from tests.support import ServiceProcess, free_port

        self.nice = nice
        self.recommender = ServiceProcess("recommender", self.settings, self.workdir,
                                          SHOPAI_RETRAIN_INTERVAL_SECONDS="0", SHOPAI_RETRAIN_CHECK_SECONDS="3600",
                                          SHOPAI_JOBS_NICE=str(nice))
        self.procs = [self.recommender]
        self.settings.endpoint("recommender").grpc_port = self.recommender.grpc_port
        self.gateway_port = free_port()
        self.servers = {"gateway": self._gunicorn("gateway.app:create_app()", self.gateway_port)}

    def restart(self, nice: int) -> None:
        server = self.servers["gateway"]
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
        self.recommender.stop()
        self._up(nice)
        self.wait_ready()

    def wait_ready(self) -> None:
        from tests.support import wait_for

        self.recommender.wait_serving(timeout=300)
        wait_for(lambda: answers(self.gateway_port), 60, what="the gateway")

    def pids(self) -> dict[str, int]:
        return {"gateway": self.servers["gateway"].pid, "recommender": self.recommender.proc.pid}


def _train(stack: TrainingStack) -> tuple[Any, Any, Any]:
    """Start a training job; (stub, job, channel)."""
    import grpc

    from protos import common_pb2
    from protos import recommender_pb2_grpc as pb_grpc

    channel = grpc.insecure_channel(stack.recommender.target)
    stub = pb_grpc.RecommenderStub(channel)
    return stub, stub.Train(common_pb2.TrainRequest(requested_by="benchmark")), channel


def _job_state(stub: Any, job: Any) -> Any:
    from protos import common_pb2

    return stub.GetJob(common_pb2.GetJobRequest(job_id=job.job_id))


def measure_training(stack: TrainingStack, shop: dict[str, Any], quick: bool) -> dict[str, Any]:
    """At the stack's current priority, cached answers at 200 requests/s and computed ones at 20/s side by side:
    idle, then from the start of a training job until 10 s after it ended (the new model's swap included: a
    swap that made every cached answer stale at once would show there)."""
    import threading

    from protos import common_pb2

    seconds, warmup, tail = (15.0, 1.0, 10.0) if quick else (25.0, 2.0, 10.0)
    rng = random.Random(11)
    users = rng.sample(shop["users"], min(len(shop["users"]), 400))
    cached = [get(f"/v1/users/{u}/recommendations", as_shopper(u)) for u in (rng.choice(users) for _ in range(4000))]
    computed = [get(f"/v1/users/{u}/recommendations?exclude={rng.choice(shop['catalog'])}", as_shopper(u))
                for u in (rng.choice(shop["users"]) for _ in range(4000))]
    route = Route("cached", "gateway", cached, "recommender", warm=True)
    port = stack.gateway_port
    out: dict[str, Any] = {"nice": stack.nice}
    for phase in ("idle", "training"):
        wait_quiet(stack.pids(), timeout=600)
        warm(route, cached, port)
        until = None
        if phase == "training":
            stub, job, channel = _train(stack)
            ended: dict[str, Any] = {}

            def watch(stub=stub, job=job, ended=ended) -> None:
                while True:
                    state = _job_state(stub, job)
                    if state.state in (common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED):
                        ended.update(at=time.monotonic(), job=state)
                        return
                    time.sleep(0.25)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()

            def until(ended=ended) -> bool:
                return "at" in ended and time.monotonic() > ended["at"] + tail

        async def both(until=until) -> tuple[Samples, Samples]:
            return await asyncio.gather(
                _open_loop("127.0.0.1", port, cached, TARGET_RATE, seconds, warmup if until is None else 0.0,
                           until=until),
                _open_loop("127.0.0.1", port, computed, 20.0, seconds, warmup if until is None else 0.0,
                           until=until))

        results = asyncio.run(both())
        rows: dict[str, Any] = {}
        for name, samples, rate in (("cached", results[0], TARGET_RATE), ("computed", results[1], 20.0)):
            row = summary(samples)
            row["rate"] = rate
            if name == "cached":  # the answers served from the cache alone (a user's answer expires after 60 s)
                row["hits"] = summary(Samples(latencies=samples.hits, window=samples.window))
                row["hit_share"] = round(len(samples.hits) / max(1, len(samples.latencies)), 3)
            rows[name] = row
            print(f"  nice {stack.nice}, {phase}, {name} at {rate:g}/s: p50 {row['p50_ms']} ms, p99 {row['p99_ms']} "
                  f"ms, errors {row['errors']}", flush=True)
        if phase == "training":
            watcher.join()
            channel.close()
            done = ended["job"]
            rows["job"] = {"state": common_pb2.JobState.Name(done.state),
                           "seconds": round(done.finished_at.seconds - done.started_at.seconds, 1),
                           "window_seconds": round(results[0].window, 1)}
        out[phase] = rows
    for name in ("cached", "computed"):
        idle, busy = out["idle"][name]["p99_ms"], out["training"][name]["p99_ms"]
        out[f"{name}_p99_training_over_idle"] = round(busy / idle, 2) if idle and busy else None
    idle, busy = out["idle"]["cached"]["hits"]["p99_ms"], out["training"]["cached"]["hits"]["p99_ms"]
    out["hits_p99_training_over_idle"] = round(busy / idle, 2) if idle and busy else None
    return out


def run_training(quick: bool) -> dict[str, Any]:
    """Nice 0 then 10, or 10 then 0 with SHOPAI_BENCH_NICE_FIRST=10 (the second half of a run is noisier:
    the order is the check)."""
    first = int(os.environ.get("SHOPAI_BENCH_NICE_FIRST", "0"))
    second = 10 if first == 0 else 0
    stack = TrainingStack(quick)
    measured: dict[int, dict[str, Any]] = {}
    try:
        started = time.perf_counter()
        stack.start(nice=first)
        stack.wait_ready()
        print(f"  stack up in {time.perf_counter() - started:.0f} s", flush=True)
        shop = seed_and_train(stack, quick)
        measured[first] = measure_training(stack, shop, quick)
        stack.restart(nice=second)
        measured[second] = measure_training(stack, shop, quick)
    finally:
        stack.stop()
    baseline, lowered = measured[0], measured[10]
    ratio = lowered["hits_p99_training_over_idle"]
    return {"dataset": shop["dataset"], "ingest_seconds": shop["ingest_seconds"],
            "first_train_seconds": shop["train_seconds"],
            "setup": "the recommender (SHOPAI_JOBS_NICE 0, then restarted on the same data with 10) and the gateway "
                     "under gunicorn; two open loops side by side, latency from the scheduled start; cached: 400 "
                     "users' answers warmed before each run, 200/s; computed: exclude={random product}, every "
                     "answer computed, 20/s; idle: 15 s (quick) or 25 s; training: from the job's start until 10 s "
                     "after it ended (the swap to the new model included)",
            "order": [first, second], "baseline_jobs_nice_0": baseline, "jobs_nice_10": lowered,
            "goals": {"cached answers' p99 (cache hits) during training within 2x idle (nice 10)":
                      ratio is not None and ratio <= 2.0}}


def show_training(result: dict[str, Any]) -> None:
    print(f"\n{result['dataset']}; first training {result['first_train_seconds']} s\n")
    print("| training priority | answers | rate/s | idle p50 / p99 ms | training p50 / p99 ms | p99 training / idle "
          "| job s (window s) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, key_ in (("same as serving (nice 0, baseline)", "baseline_jobs_nice_0"),
                        ("lower (nice 10, default)", "jobs_nice_10")):
        r = result[key_]
        for name in ("hits", "cached", "computed"):
            i, t = r["idle"], r["training"]
            i, t = (i["cached"]["hits"], t["cached"]["hits"]) if name == "hits" else (i[name], t[name])
            rate = "" if name == "hits" else f"{i['rate']:g}"
            what = "cached route, cache hits only" if name == "hits" else f"{name} route"
            print(f"| {label} | {what} | {rate} | {i['p50_ms']} / {i['p99_ms']} | {t['p50_ms']} / "
                  f"{t['p99_ms']} | {r[f'{name}_p99_training_over_idle']} "
                  f"| {r['training']['job']['seconds']} ({r['training']['job']['window_seconds']}) |")
    for goal, ok in result["goals"].items():
        print(f"{'PASS' if ok else 'FAIL'}  {goal}")


# ------------------------------------------------------------------------- the assistant (issue #22 item 4)
GOAL_CHAT_RATE, GOAL_CHAT_P99_MS = 150.0, 100.0


class AssistantStack(Stack):
    """The gateway (gunicorn) and the assistant with one encoder engine; the recommender it asks for
    products. Each engine has its own data directory, so its intent model is trained on its own vectors."""

    def __init__(self, quick: bool, encoders: str) -> None:
        super().__init__(quick)
        self.encoders = encoders

    def start(self) -> None:
        from tests.support import ServiceProcess, free_port

        self._infrastructure()
        quiet = {"SHOPAI_RETRAIN_INTERVAL_SECONDS": "0", "SHOPAI_RETRAIN_CHECK_SECONDS": "3600"}
        self.recommender = ServiceProcess("recommender", self.settings, self.workdir, **quiet)
        home = CHATBOT_HOME / self.encoders
        home.mkdir(parents=True, exist_ok=True)
        # The last 64 vectors only: a turn's own second look (the FAQ search) finds its message, a message
        # sent again ~1,100 messages later (the held-out set comes round again) does not.
        self.chatbot = ServiceProcess("chatbot", self.settings.model_copy(update={"data_dir": home}), self.workdir,
                                      SHOPAI_RECOMMENDER__GRPC_PORT=str(self.recommender.grpc_port),
                                      SHOPAI_CHAT_ENCODERS=self.encoders, SHOPAI_CHAT_RECENT_VECTORS="64", **quiet)
        self.procs = [self.recommender, self.chatbot]
        for name, proc in (("recommender", self.recommender), ("chatbot", self.chatbot)):
            self.settings.endpoint(name).grpc_port = proc.grpc_port
        self.gateway_port = free_port()
        self.servers["gateway"] = self._gunicorn("gateway.app:create_app()", self.gateway_port)

    def wait_ready(self) -> None:
        from tests.support import wait_for

        for proc in self.procs:
            proc.wait_serving(timeout=1800)  # the first start trains the intent model
        wait_for(lambda: answers(self.gateway_port), 60, what="the gateway")

    def pids(self) -> dict[str, int]:
        return {"gateway": self.servers["gateway"].pid, "chatbot": self.chatbot.proc.pid,
                "recommender": self.recommender.proc.pid}


def run_assistant(quick: bool) -> dict[str, Any]:
    """POST /v1/chat with the held-out utterances (English and Chinese, each a new conversation), through
    the gateway, with the ONNX encoders and with the reference ones (today's code path before issue #22)."""
    from services.chatbot.core.data import load_utterances

    rng = random.Random(11)
    messages = [u.text for u in load_utterances("test")]
    rng.shuffle(messages)
    requests = [post_json("/v1/chat", {"message": m, "user_id": f"u{rng.randrange(10_000)}"}) for m in messages]
    seconds_max, seconds_fixed, warmup = (8.0, 10.0, 1.0) if quick else (20.0, 30.0, 2.0)
    rows = []
    for encoders in ("onnx", "reference"):
        stack = AssistantStack(quick, encoders)
        try:
            started = time.perf_counter()
            stack.start()
            stack.wait_ready()
            print(f"  {encoders}: stack up in {time.perf_counter() - started:.0f} s", flush=True)
            pids = stack.pids()
            warm(Route("chat", "gateway", requests[:50], "chatbot", warm=True), requests[:50], stack.gateway_port)
            wait_quiet(pids, timeout=900)
            watched = {k: v for k, v in pids.items() if k in ("gateway", "chatbot")}
            meter = CpuMeter(watched, everything={**pids, **stack.infrastructure()})
            meter.start()
            peak = summary(asyncio.run(_closed_loop("127.0.0.1", stack.gateway_port, requests, CONCURRENCY,
                                                    seconds_max, warmup)))
            peak["cpu_percent"] = meter.stop()
            print(f"  {encoders}: max {peak['requests_per_second']} messages/s, p50 {peak['p50_ms']} ms, p99 "
                  f"{peak['p99_ms']} ms, errors {peak['errors']}, CPU {peak['cpu_percent']}", flush=True)
            row: dict[str, Any] = {"encoders": encoders, "max_throughput": peak, "fixed_rate": []}
            capacity = peak["requests_per_second"]
            rates = sorted({round(capacity / 2, 1), *([GOAL_CHAT_RATE] if capacity >= 0.8 * GOAL_CHAT_RATE
                                                      else [])})
            for rate in rates:
                wait_quiet(pids)
                meter.start()
                fixed = summary(asyncio.run(_open_loop("127.0.0.1", stack.gateway_port, requests, rate,
                                                       seconds_fixed, warmup)))
                fixed["cpu_percent"], fixed["rate"] = meter.stop(), rate
                print(f"  {encoders}: at {rate:g} messages/s p50 {fixed['p50_ms']} ms, p99 {fixed['p99_ms']} ms, "
                      f"errors {fixed['errors']}, CPU {fixed['cpu_percent']}", flush=True)
                row["fixed_rate"].append(fixed)
            rows.append(row)
        finally:
            stack.stop()
    onnx = rows[0]
    at_goal = [f for f in onnx["fixed_rate"] if f["rate"] == GOAL_CHAT_RATE]
    return {
        "dataset": f"{len(messages)} held-out utterances (data/intents, test split; English, Chinese, mixed), "
                   "shuffled, each sent as a new conversation of a random user; the catalogue is empty",
        "setup": "gunicorn gateway (1 process, gevent) -> chatbot (gRPC) with its recommender; Redis; the tansu "
                 f"broker; the load generator on the same machine. Max throughput: {CONCURRENCY} connections "
                 "back to back; fixed rate: open loop (latency from the scheduled start). The assistant "
                 "remembers the last 64 vectors only (SHOPAI_CHAT_RECENT_VECTORS=64): every message is "
                 "encoded, once per turn.",
        "rows": rows,
        "goals": {
            f">= {GOAL_CHAT_RATE:g} messages/s with p99 <= {GOAL_CHAT_P99_MS:g} ms (ONNX encoders)":
                bool(at_goal) and at_goal[0]["p99_ms"] is not None and at_goal[0]["p99_ms"] <= GOAL_CHAT_P99_MS
                and not at_goal[0]["errors"],
        },
    }


def show_assistant(result: dict[str, Any]) -> None:
    print(f"\n{result['dataset']}\n")
    print("| encoders | max messages/s | p50 / p99 ms | CPU % chatbot / gateway | fixed rate/s | p50 / p99 ms "
          "| errors | CPU % chatbot / gateway |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in result["rows"]:
        m = row["max_throughput"]

        def cpu(c: dict) -> str:
            return f"{c.get('chatbot')} / {c.get('gateway')}"

        for f in row["fixed_rate"]:
            print(f"| {row['encoders']} | {m['requests_per_second']} | {m['p50_ms']} / {m['p99_ms']} | "
                  f"{cpu(m['cpu_percent'])} | {f['rate']:g} | {f['p50_ms']} / {f['p99_ms']} | "
                  f"{sum(f['errors'].values())} | {cpu(f['cpu_percent'])} |")
    for goal, met in result["goals"].items():
        print(f"- {goal}: {'met' if met else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small demo shop, short runs (< 3 minutes)")
    parser.add_argument("--scale-out", action="store_true",
                        help="one recommender replica and gateway process against two (results/gateway-scale-out)")
    parser.add_argument("--during-training", action="store_true",
                        help="answers while the recommender trains, its jobs at nice 0 and 10 "
                             "(results/gateway-training)")
    parser.add_argument("--assistant", action="store_true",
                        help="POST /v1/chat with the ONNX and the reference encoders (results/gateway-assistant)")
    args = parser.parse_args()
    # SIGTERM stops the stack as Ctrl-C does (the services run in sessions of their own).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    RESULTS.mkdir(exist_ok=True)
    print(f"\n== gateway benchmark{' (quick)' if args.quick else ''} ==", flush=True)
    started = time.perf_counter()
    result = {
        "benchmark": "gateway",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": describe(*_versions()),
        "mode": "quick" if args.quick else "full",
        **(run_scale_out if args.scale_out else run_training if args.during_training
           else run_assistant if args.assistant else run)(args.quick),
    }
    result["seconds"] = round(time.perf_counter() - started, 1)
    (show_scale_out if args.scale_out else show_training if args.during_training
     else show_assistant if args.assistant else show)(result)
    name = ("gateway-scale-out" if args.scale_out else "gateway-training" if args.during_training
            else "gateway-assistant" if args.assistant else "gateway")
    out = RESULTS / f"{name}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwritten to {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out} "
          f"({result['seconds']:.0f} s)")


def _versions() -> list[str]:
    from importlib.metadata import version

    return [f"{name} {version(name)}" for name in ("flask", "gunicorn", "flask-openapi3", "grpcio")]


if __name__ == "__main__":
    main()
