"""Benchmark of trust (issue #17) on this machine (writes results/trust-<section>[-quick].json).

Sections (``--section``, default all):
- ``erasure``: a running stack (the real broker and Redis, the four services, the gateway in process)
  with the demo shop applied everywhere (a small shop in quick mode) and a trained recommender; 50 of its shoppers (10 in quick
  mode) erased at once through ``DELETE /v1/users/{id}``. Per erasure, the time from the request to
  every service done (the recommender's serving model included), and per service the time to its
  part; p50 and max. Goal: at most 60 s everywhere.
- ``tokens``: what checking who calls costs on the cached-recommendation route, measured as
  ``make bench-gateway`` measures (the gateway under gunicorn with real services, a trained hybrid, answers
  in the recommender's answer cache), in one run: the bare Flask route (the ceiling), ``/healthz``, a
  shopper asking for their own recommendations with their token (HS256 verified on every request), and a
  support key reading a shopper's recommendations (the read written to the audit stream first). Goal: the
  shopper's route at least 50 % of the bare route's throughput.

    python -m benchmarks.bench_trust [--quick] [--section all|erasure|tokens]
"""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.sections import run_sections

GOAL_ERASURE_SECONDS = 60.0
REDIS_DB = 11  # bench_gateway uses 12, the tests 13-15
PRIVACY_KEY = "bench-trust-privacy-key-0123456789"
SERVICES = ("recommender", "chatbot", "vision", "forecasting")


def _shop(quick: bool):
    from shopai.demo import DemoShopConfig, generate

    # Full mode: the demo shop `make run` seeds (2,000 products, 3,000 shoppers, two years).
    config = DemoShopConfig(seed=11, n_products=80, n_users=150, days=60, sessions_per_day=40) if quick else DemoShopConfig()
    return config, generate(config, progress=False)


class ErasureStack:
    """Broker, Redis, the four services (no automatic training) and the gateway app in process."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-trust-"))
        self.procs: dict[str, Any] = {}

    def start(self) -> None:
        from gateway.app import create_app
        from services.common import cache
        from services.common.settings import Settings
        from tests.support import Broker, PrivateRedis, ServiceProcess, machine_redis_url

        url = machine_redis_url(db=REDIS_DB)
        if url is None:
            self.private_redis = PrivateRedis()
            url = self.private_redis.url
        self.redis = cache.connect(url)
        self.redis.flushdb()
        self.broker = Broker()
        self.settings = Settings(kafka_bootstrap_servers=self.broker.bootstrap, redis_url=url,
                                 data_dir=self.workdir / "data", log_json=False, env="prod",
                                 gateway_api_keys=f"{PRIVACY_KEY}:privacy+admin")
        quiet = {"SHOPAI_RETRAIN_INTERVAL_SECONDS": "0", "SHOPAI_RETRAIN_CHECK_SECONDS": "3600",
                 "SHOPAI_VISION_AUTO_TRAIN": "false", "SHOPAI_FORECAST_AUTO_TRAIN": "false"}
        for name in SERVICES:
            self.procs[name] = ServiceProcess(name, self.settings, self.workdir, **quiet)
            self.settings.endpoint(name).grpc_port = self.procs[name].grpc_port
        for name in ("recommender", "forecasting"):  # the assistant serves once it has an intent model
            self.procs[name].wait_serving(timeout=300)
        self.app = create_app(self.settings)
        self.client = self.app.test_client()
        self.client.environ_base["HTTP_X_API_KEY"] = PRIVACY_KEY

    def seed(self, shop) -> int:
        from services.common.bus import EventPublisher
        from tests.support import wait_for

        events = list(shop.events())
        publisher = EventPublisher(self.settings)
        try:
            publisher.publish(events, timeout=600)
        finally:
            publisher.close()
        for group in SERVICES:
            wait_for(lambda g=group: self.redis.exists(f"shopai:{g}:built"), 600, what=f"{group} built")
        stats = {"rec": len(events), "fc": len(events),
                 "chat": sum(e["type"].split(".")[0] != "interaction" for e in events)}
        for prefix, total in stats.items():
            wait_for(lambda p=prefix, n=total: sum(int(v) for v in self.redis.hgetall(f"shopai:{p}:stats:events").values()) >= n,
                     900, interval=1.0, what=f"{total} events applied by {prefix}")
        return len(events)

    def train(self) -> str:
        from tests.support import wait_for

        reply = self.client.post("/v1/admin/train/recommender", json={})
        assert reply.status_code == 202, reply.json

        def finished():
            job = self.client.get(reply.headers["Location"]).json
            return job if job["state"] in ("succeeded", "failed") else None

        job = wait_for(finished, 900, interval=1.0, what="the recommender's training")
        assert job["state"] == "succeeded", job
        return job["model_version"]

    def stop(self) -> None:
        from gateway.app import close_app

        if hasattr(self, "app"):
            close_app(self.app)
        for proc in self.procs.values():
            proc.stop()
        if hasattr(self, "broker"):
            self.broker.stop()
        if hasattr(self, "redis"):
            self.redis.flushdb()
            self.redis.close()
        if hasattr(self, "private_redis"):
            self.private_redis.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _seconds(later: str | None, earlier: str) -> float | None:
    if later is None:
        return None
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()


def _spread(values: list[float]) -> dict[str, float]:
    return {"p50_s": round(float(np.percentile(values, 50)), 2), "max_s": round(max(values), 2)}


def erase_all(stack: ErasureStack, users: list[str], timeout: float = 300.0) -> list[dict[str, Any]]:
    """Send every erasure at once, then follow them until each is done; per erasure the seconds from the
    request to done, and to each service's part."""
    sent: dict[str, tuple[str, float]] = {}
    for user in users:
        started = time.perf_counter()
        reply = stack.client.delete(f"/v1/users/{user}", query_string={"reason": "benchmark"})
        assert reply.status_code == 202, reply.json
        sent[user] = (reply.json["status_url"], started)
    done: dict[str, dict[str, Any]] = {}
    deadline = time.perf_counter() + timeout
    while len(done) < len(users) and time.perf_counter() < deadline:
        for user, (url, started) in sent.items():
            if user in done:
                continue
            state = stack.client.get(url).json
            if state["status"] == "done":
                parts = {name: _seconds(part["done_at"], state["requested_at"]) for name, part in state["services"].items()}
                done[user] = {"user": user, "done_s": round(time.perf_counter() - started, 2),
                              **{f"{name}_s": round(s, 2) for name, s in parts.items() if s is not None}}
        time.sleep(0.2)
    missing = sorted(set(users) - set(done))
    if missing:
        raise RuntimeError(f"{len(missing)} erasures were not done within {timeout:.0f} s: {missing[:5]}")
    return [done[u] for u in users]


def run_erasure(quick: bool) -> dict[str, Any]:
    config, shop = _shop(quick)
    count = 10 if quick else 50
    buyers = sorted({e["payload"]["user_id"] for e in shop.orders if e["type"] == "order.created"},
                    key=lambda u: int(u[1:]))
    users = buyers[:count]
    stack = ErasureStack()
    try:
        print("starting the stack", flush=True)
        stack.start()
        print("seeding the demo shop", flush=True)
        events = stack.seed(shop)
        print("training the recommender", flush=True)
        version = stack.train()
        print(f"erasing {count} shoppers", flush=True)
        per_erasure = erase_all(stack, users)
    finally:
        stack.stop()
    rows = [{"part": "every service (DELETE -> done)", **_spread([e["done_s"] for e in per_erasure])}]
    for name in SERVICES:
        rows.append({"part": name + (" (data and serving model)" if name == "recommender" else ""),
                     **_spread([e[f"{name}_s"] for e in per_erasure])})
    worst = max(row["max_s"] for row in rows)
    return {
        "shop": {"products": config.n_products, "users": config.n_users, "days": config.days, "events": events},
        "erased": count, "model_version": version, "goal_seconds": GOAL_ERASURE_SECONDS,
        "goal_met": worst <= GOAL_ERASURE_SECONDS, "latency": rows, "erasures": per_erasure,
    }


TOKEN_ROUTE = "own recommendations, shopper token (answer cached)"
STAFF_ROUTE = "a shopper's recommendations, support key (audited, answer cached)"


def token_routes(shop: dict[str, Any]) -> list:
    """Each measured run its own users (at most 1,000): an answer stays cached 60 s, and a cached answer is
    not cached again, so users of one run must not expire in the next (see bench_gateway.routes)."""
    import random

    from benchmarks import bench_gateway as bg

    rng = random.Random(17)
    users = rng.sample(shop["users"], len(shop["users"]))
    size = min(len(users) // 4, 1000)
    quarters = [users[i * size:(i + 1) * size] for i in range(4)]
    n = 4000

    def as_shopper(some: list[str]) -> list[bytes]:
        return [bg.get(f"/v1/users/{u}/recommendations", bg.as_shopper(u)) for u in (rng.choice(some) for _ in range(n))]

    def as_support(some: list[str]) -> list[bytes]:
        return [bg.get(f"/v1/users/{u}/recommendations", bg.SUPPORT) for u in (rng.choice(some) for _ in range(n))]

    return [
        bg.Route("bare Flask route (ceiling)", "bare", [bg.get("/bare")], None),
        bg.Route("gateway /healthz (no backend)", "gateway", [bg.get("/healthz")], None),
        bg.Route(TOKEN_ROUTE, "gateway", as_shopper(quarters[0]), "recommender", warm=True,
                 fixed=as_shopper(quarters[1])),
        bg.Route(STAFF_ROUTE, "gateway", as_support(quarters[2]), "recommender", warm=True,
                 fixed=as_support(quarters[3])),
    ]


def run_tokens(quick: bool) -> dict[str, Any]:
    from benchmarks import bench_gateway as bg

    stack = bg.Stack(quick)
    try:
        stack.start()
        stack.wait_ready()
        shop = bg.seed_and_train(stack, quick)
        route_list = token_routes(shop)
        print("  waiting for the services to finish their background work", flush=True)
        bg.wait_quiet(stack.pids(), timeout=900)
        rows = bg.measure(stack, quick, route_list)
        audited = stack.redis.xlen("shopai:gateway:audit")
    finally:
        stack.stop()
    bare = rows[0]["max_throughput"]["requests_per_second"]
    table = []
    for row in rows:
        peak, fixed = row["max_throughput"], row["fixed_rate"]
        table.append({"route": row["route"], "max_req_s": peak["requests_per_second"],
                      "share_of_bare": round(peak["requests_per_second"] / bare, 3),
                      "p99_ms_at_max": peak["p99_ms"], "fixed_req_s": fixed["rate"], "p50_ms": fixed["p50_ms"],
                      "p99_ms": fixed["p99_ms"],
                      "errors": sum(peak["errors"].values()) + sum(fixed["errors"].values())})
    share = next(r["share_of_bare"] for r in table if r["route"] == TOKEN_ROUTE)
    return {
        "dataset": shop["dataset"], "setup": "as make bench-gateway: gunicorn (1 process, gevent), real services, "
                                            "Redis; load from this process over loopback",
        "audit_entries_written": audited, "throughput": table, "rows": rows,
        "goal": f"{TOKEN_ROUTE} >= 50 % of the bare route's throughput", "goal_met": share >= 0.5,
    }


SECTIONS = {"erasure": run_erasure, "tokens": run_tokens}


def main(argv: list[str] | None = None) -> None:
    run_sections("trust", __doc__.splitlines()[0], SECTIONS,
                 "a smoke run: a smaller shop, 10 erasures", argv)


if __name__ == "__main__":
    main()
