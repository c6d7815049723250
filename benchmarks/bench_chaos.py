"""Chaos benchmark (issue #21): the one-machine stack (`shopai run`, what `make run` starts) under a steady mixed
load while, one at a time, each service, a gateway worker, the gateway, the broker and Redis are killed with
SIGKILL and come back (the supervisor restarts them; gunicorn replaces its worker).

The stack runs on free ports with its own Redis (a throwaway redis-server the runner starts: killing it loses
every projection, which the services rebuild from the broker's log) and the broker's log in its S3 store on
disk. The load, from threads of this process at fixed rates, through REST as a shop and its shoppers call it:

  recommendations, cached    one shopper's answer again and again (the gateway's answer cache), with their token
  recommendations, computed  random shoppers and list sizes (the recommender computes each), each with their token
  chat                       a shopper's message to the assistant
  forecast                   a product's demand forecast
  vision search              a catalog picture searched by image
  events                     batches of `interaction.view` events of 20 bench shoppers, each batch sent again
                             with the same event ids until it is accepted (a shop's retry; exactly once by id)

Reported per fault: the gateway's 5xx answers (degraded answers, `X-ShopAI-Degraded`, counted apart), requests
that got no answer (connection refused or timed out: the gateway itself away), and the time from the kill until
every route answered normally again. At the end: events lost and events counted twice, per bench shopper,
against the known totals (the forecasting service's per-user event counts, read through REST).

    python -m benchmarks.bench_chaos [--quick]

Writes ``results/chaos[-quick].json``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.machine import describe
from benchmarks.sections import print_table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
# The assistant's first intent model takes ~2.5 minutes to train on two cores: kept here between runs.
CHATBOT_HOME = ROOT / ".data" / "bench-chaos" / "chatbot"
FAULTS = ("recommender", "chatbot", "vision", "forecasting", "gateway-worker", "gateway", "broker", "redis")
SERVICES = ("recommender", "chatbot", "vision", "forecasting")
BENCH_USERS = [f"chaos-u{i:02d}" for i in range(20)]
NORMAL_FOR_SECONDS = 5.0  # a route has recovered once it answered normally for this long
RECOVERY_LIMIT_SECONDS = 240.0  # after this the fault is reported as not recovered and the next one comes
MESSAGES = ["Where is my order?", "What is your return policy?", "Do you have running shoes?", "我想退货",
            "运费怎么算？", "How long does shipping take?"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Sample:
    at: float  # monotonic time the request started
    route: str
    status: int  # 0: no answer (refused, reset or timed out)
    degraded: bool
    problem: str = ""  # a refusal's problem type (its last path segment) and title; why there was no answer


@dataclass
class Load:
    base: str
    headers: dict[str, str]
    products: list[str]
    picture: str
    users: list[str]
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)  # user -> their shopper token's header
    samples: list[Sample] = field(default_factory=list)
    sent: Counter = field(default_factory=Counter)  # bench shopper -> events accepted
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, route: str, method: str, path: str, body: Any = None, timeout: float = 5.0,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        started = time.monotonic()
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={**(self.headers if headers is None else headers),
                                                  **({"Content-Type": "application/json"} if data else {})})
        status, degraded, payload, problem = 0, False, None, ""
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:
                status, degraded = reply.status, bool(reply.headers.get("X-ShopAI-Degraded"))
                payload = json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as err:
            status, degraded = err.code, bool(err.headers.get("X-ShopAI-Degraded"))
            problem = describe_problem(err.read())
        except (OSError, ValueError) as exc:
            status, problem = 0, type(getattr(exc, "reason", exc)).__name__
        with self.lock:
            self.samples.append(Sample(started, route, status, degraded, problem))
        return status, payload

    def every(self, rate: float, action) -> None:
        """Call ``action()`` ``rate`` times a second until stopped (one thread; a slow answer delays the next)."""
        period, due = 1.0 / rate, time.monotonic()
        while not self.stop.is_set():
            action()
            due += period
            pause = due - time.monotonic()
            if pause > 0:
                self.stop.wait(pause)
            else:
                due = time.monotonic()

    # -- the routes ----------------------------------------------------------------------------------
    # A shopper's own recommendations, read with their token as their browser does (the shop's backend minted it).
    def cached(self) -> None:
        user = self.users[0]
        self.call("recommendations, cached", "GET", f"/v1/users/{user}/recommendations?k=10",
                  headers=self.tokens.get(user))

    def computed(self) -> None:
        user, k = random.choice(self.users), random.randint(5, 30)
        self.call("recommendations, computed", "GET", f"/v1/users/{user}/recommendations?k={k}",
                  headers=self.tokens.get(user))

    def chat(self) -> None:
        self.call("chat", "POST", "/v1/chat", {"message": random.choice(MESSAGES)}, timeout=10)

    def forecast(self) -> None:
        self.call("forecast", "GET", f"/v1/forecasts/{random.choice(self.products[:20])}?horizon=14")

    def search(self) -> None:
        self.call("vision search", "POST", "/v1/vision/search", {"image_base64": self.picture, "k": 5})

    def events(self) -> None:
        """One batch of 10 views; the same batch again until it is accepted (never a new id for a retry)."""
        batch = [{"event_id": str(uuid.uuid4()), "type": "interaction.view", "source": "bench-chaos",
                  "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                  "payload": {"user_id": random.choice(BENCH_USERS), "product_id": random.choice(self.products)}}
                 for _ in range(10)]
        give_up = time.monotonic() + 300
        while time.monotonic() < give_up:
            status, body = self.call("events", "POST", "/v1/events", {"events": batch})
            if status == 202 and body and not body.get("rejected"):
                with self.lock:
                    self.sent.update(e["payload"]["user_id"] for e in batch)
                return
            if status == 202 and body:  # some refused for good: they are not sent, the rest counts
                with self.lock:
                    for result in body["results"]:
                        if result["status"] == "accepted":
                            self.sent[batch[result["index"]]["payload"]["user_id"]] += 1
                return
            if self.stop.wait(0.5):
                break
        raise SystemExit(f"an event batch was not accepted within 5 minutes: last answer {status}")


RATES = {  # requests a second per route
    "cached": 20.0, "computed": 8.0, "chat": 2.0, "forecast": 4.0, "search": 2.0, "events": 10.0,
}


class Stack:
    """`shopai run` on free ports with its own Redis and the broker's log in its S3 store."""

    def __init__(self, workdir: Path, quick: bool) -> None:
        self.workdir = workdir
        self.data = workdir / "data"
        self.ports = {"gateway": free_port(), "kafka": free_port(), "redis": free_port(), "s3": free_port()}
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPAI_")}
        size = ("200", "150", "60") if quick else ("500", "400", "90")
        env.update(
            SHOPAI_DEMO_PRODUCTS=size[0], SHOPAI_DEMO_USERS=size[1], SHOPAI_DEMO_DAYS=size[2], SHOPAI_DEMO_SEED="7",
            SHOPAI_GATEWAY_PORT=str(self.ports["gateway"]),
            SHOPAI_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{self.ports['kafka']}",
            SHOPAI_REDIS_URL=f"redis://127.0.0.1:{self.ports['redis']}/0",
            SHOPAI_BROKER_S3_PORT=str(self.ports["s3"]), SHOPAI_BROKER_STORAGE="s3",
            SHOPAI_SUPERVISOR_METRICS_PORT=str(free_port()),
            SHOPAI_DATA_DIR=str(self.data), SHOPAI_LOG_JSON="false", SHOPAI_VISION_AUTO_TRAIN="false",
            # Every bench shopper comes from this one address; a shop's come from as many as there are shoppers.
            SHOPAI_GATEWAY_RATE_LIMIT_PER_MINUTE="6000",
            PATH=f"{Path(sys.executable).parent}:{env['PATH']}",
        )
        for name in SERVICES:
            env[f"SHOPAI_{name.upper()}__GRPC_PORT"] = str(free_port())
            env[f"SHOPAI_{name.upper()}__METRICS_PORT"] = str(free_port())
        self.env = env
        self.base = f"http://127.0.0.1:{self.ports['gateway']}"
        self.log_path = workdir / "run.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        if (CHATBOT_HOME / "models").is_dir():
            shutil.copytree(CHATBOT_HOME / "models", self.data / "models", dirs_exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([str(Path(sys.executable).parent / "shopai"), "run"], cwd=ROOT, env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 900
        while "ShopAI is up" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"shopai run did not come up:\n{self.log()[-4000:]}")
            time.sleep(1)
        if not (CHATBOT_HOME / "models").is_dir() and (self.data / "models" / "chatbot").is_dir():
            shutil.copytree(self.data / "models" / "chatbot", CHATBOT_HOME / "models" / "chatbot")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def key(self, role: str) -> dict[str, str]:
        for line in (self.data / "secrets" / "gateway-api-keys").read_text().splitlines():
            if line.endswith(f":{role}") and not line.startswith("#"):
                return {"X-API-Key": line.rsplit(":", 1)[0]}
        raise SystemExit(f"make run made no {role} key")

    def pid(self, process: str) -> int:
        """The pid of a supervised process (``gateway-worker``: one of the gateway's gunicorn workers)."""
        name = "gateway" if process == "gateway-worker" else process
        conf = self.data / "run" / "supervisord.conf"
        out = ""
        for program in (name, f"services:{name}"):  # the four services are a group of their own
            out = subprocess.run([str(Path(sys.executable).parent / "supervisorctl"), "-c", str(conf), "pid",
                                  program], capture_output=True, text=True, env=self.env, check=False).stdout.strip()
            if out.isdigit():
                break
        if not out.isdigit() or out == "0":
            raise SystemExit(f"supervisorctl knows no running {name}: {out!r}")
        if process != "gateway-worker":
            return int(out)
        children = subprocess.run(["pgrep", "-P", out], capture_output=True, text=True, check=False).stdout.split()
        if not children:
            raise SystemExit("the gateway has no worker process")
        return int(children[0])

    def restarts(self) -> dict[str, float]:
        """shopai_process_restarts_total per process, from the supervisor's metrics."""
        url = f"http://127.0.0.1:{self.env['SHOPAI_SUPERVISOR_METRICS_PORT']}/metrics"
        try:
            text = urllib.request.urlopen(url, timeout=5).read().decode()
        except OSError:
            return {}
        out = {}
        for line in text.splitlines():
            if line.startswith("shopai_process_restarts_total{"):
                name = line.split('process="', 1)[1].split('"', 1)[0]
                out[name] = float(line.rsplit(" ", 1)[1])
        return out

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def wait(what: str, check, timeout: float, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (OSError, ValueError, KeyError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(interval)


def shopper_token(base: str, admin: dict[str, str], user: str) -> dict[str, str]:
    """The header of ``user``'s shopper token, minted as the shop's backend mints them (the `sessions` role)."""
    request = urllib.request.Request(f"{base}/v1/auth/shopper-tokens", method="POST",
                                     data=json.dumps({"user_id": user, "ttl_seconds": 86400}).encode(),
                                     headers={**admin, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            token = json.loads(reply.read())["token"]
    except urllib.error.HTTPError as err:
        raise SystemExit(f"no shopper token for {user}: {err.code} {err.read()[:300]!r}") from err
    return {"Authorization": f"Bearer {token}"}


def get_json(base: str, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(urllib.request.Request(base + path, headers=headers), timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, None


def describe_problem(body: bytes) -> str:
    """``type-tail: title (detail…)`` of an RFC 9457 problem answer, so a report says why, not only how many."""
    try:
        problem = json.loads(body)
    except ValueError:
        return body[:80].decode(errors="replace")
    if not isinstance(problem, dict):
        return str(problem)[:80]
    kind = str(problem.get("type", "")).rstrip("/").rsplit("/", 1)[-1]
    return f"{kind}: {problem.get('title', '')} ({str(problem.get('detail', ''))[:80]})"


def normal(sample: Sample) -> bool:
    return 200 <= sample.status < 300 and not sample.degraded


def fault_report(samples: list[Sample], name: str, killed: float, until: float) -> dict[str, Any]:
    window = [s for s in samples if killed <= s.at < until]
    by_route: dict[str, list[Sample]] = defaultdict(list)
    for s in window:
        by_route[s.route].append(s)
    recovered = 0.0
    for route_samples in by_route.values():
        bad = [s.at for s in route_samples if not normal(s)]
        if bad:
            recovered = max(recovered, max(bad) - killed)
    return {
        "fault": name,
        "requests": len(window),
        "5xx": sum(1 for s in window if s.status >= 500 and not s.degraded),
        "degraded": sum(1 for s in window if s.degraded),
        "no_answer": sum(1 for s in window if s.status == 0),
        "other_4xx": sum(1 for s in window if 400 <= s.status < 500),
        "5xx_by_route": dict(Counter(s.route for s in window if s.status >= 500 and not s.degraded)),
        # why: route, status and problem of every answer that was neither normal nor degraded
        "why": dict(Counter(f"{s.route} {s.status} {s.problem}" for s in window
                            if not normal(s) and not s.degraded).most_common(12)),
        "recovered_after_s": round(recovered, 1),
    }


def recovered_since(samples: list[Sample], since: float, routes: set[str]) -> bool:
    """Every route answered, and answered only normally, during the last NORMAL_FOR_SECONDS."""
    now = time.monotonic()
    recent = [s for s in samples if s.at >= max(since, now - NORMAL_FOR_SECONDS)]
    seen = {s.route for s in recent}
    return now - since >= NORMAL_FOR_SECONDS and seen >= routes and all(normal(s) for s in recent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small shop and short steady periods (smoke run)")
    args = parser.parse_args()
    steady = 15.0 if args.quick else 45.0  # seconds of load between recovery and the next fault
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="bench-chaos-"))
    stack = Stack(workdir, args.quick)
    print(f"starting the stack (log: {stack.log_path})", flush=True)
    stack.start()
    try:
        admin = stack.key("admin")

        def trained() -> bool:
            status, body = get_json(stack.base, "/v1/admin/models?service=recommender", admin)
            return status == 200 and any(m["serving"] and m["stored"] for m in body["models"])

        wait("the recommender's first model", trained, 600, 2)
        products = [p["product_id"] for p in get_json(stack.base, "/v1/recommendations?strategy=popular&k=50", {})[1]
                    ["items"]]
        picture = base64.b64encode(wait("a catalog picture", lambda: urllib.request.urlopen(
            f"{stack.base}/v1/products/{products[0]}/image", timeout=5).read(), 60)).decode()
        load = Load(stack.base, admin, products, picture, [f"u{i}" for i in range(1, 51)])
        load.tokens = {user: shopper_token(stack.base, admin, user) for user in load.users}
        threads = [threading.Thread(target=load.every, args=(rate, getattr(load, name)), daemon=True)
                   for name, rate in RATES.items()]
        for t in threads:
            t.start()
        routes = {"recommendations, cached", "recommendations, computed", "chat", "forecast", "vision search",
                  "events"}
        print(f"load running: {RATES}", flush=True)
        load_started = time.monotonic()
        time.sleep(steady)
        baseline = fault_report(load.samples, "none (steady load)", load_started, time.monotonic())
        faults: list[tuple[str, float]] = []
        unrecovered: set[str] = set()
        for name in FAULTS:
            pid = stack.pid(name)
            killed = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            print(f"SIGKILL {name} (pid {pid})", flush=True)
            faults.append((name, killed))
            try:
                wait(f"every route normal again after {name}",
                     lambda k=killed: recovered_since(load.samples, k, routes), RECOVERY_LIMIT_SECONDS, 0.5)
            except SystemExit:
                print(f"  not every route recovered within {RECOVERY_LIMIT_SECONDS:.0f} s of killing {name}",
                      flush=True)
                unrecovered.add(name)
            time.sleep(steady)
        end_of_faults = time.monotonic()
        load.stop.set()
        for t in threads:
            t.join(330)
        windows = [fault_report(load.samples, name, killed, faults[i + 1][1] if i + 1 < len(faults) else end_of_faults)
                   for i, (name, killed) in enumerate(faults)]
        for window in windows:
            if window["fault"] in unrecovered:
                window["recovered_after_s"] = None  # still failing when the next fault came

        def counted() -> dict[str, int]:
            out = {}
            for user in BENCH_USERS:
                status, body = get_json(stack.base, f"/v1/analytics/users/{user}", admin)
                out[user] = (body or {}).get("event_counts", {}).get("view", 0) if status == 200 else 0
            return out

        deadline = time.monotonic() + 300
        while True:
            got = counted()
            if got == dict(load.sent) or time.monotonic() > deadline:
                break
            time.sleep(2)
        lost = sum(max(0, load.sent[u] - got.get(u, 0)) for u in BENCH_USERS)
        doubled = sum(max(0, got.get(u, 0) - load.sent[u]) for u in BENCH_USERS)
        restarts = stack.restarts()
    finally:
        stack.stop()
    rows = [baseline, *windows]
    print_table("Faults under a steady mixed load (one at a time, SIGKILL)", [
        {"fault": r["fault"], "requests": r["requests"], "gateway 5xx": r["5xx"], "degraded": r["degraded"],
         "no answer": r["no_answer"],
         "recovered after s": "not recovered" if r["recovered_after_s"] is None else r["recovered_after_s"]}
        for r in rows])
    sent = sum(load.sent.values())
    print(f"events accepted {sent}, counted {sum(got.values())}: lost {lost}, counted twice {doubled}")
    result = {
        "benchmark": "chaos", "quick": args.quick, "machine": describe(), "date": datetime.now(UTC).isoformat(),
        "seconds": round(time.monotonic() - started), "rates_per_second": RATES, "steady_seconds": steady,
        "faults": rows, "restarts": restarts, "events": {"accepted": sent, "counted": sum(got.values()), "lost": lost,
                                   "counted_twice": doubled},
        "goal": {"lost": 0, "counted_twice": 0, "5xx_only_while_gateway_down": True},
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"chaos{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
