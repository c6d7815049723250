"""`shopai run` (what `make run` starts): the whole stack under honcho, seeded with the demo shop,
answering real popular items; Ctrl-C stops everything it started and nothing else."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import redis

from services.common.settings import SERVICE_NAMES
from services.recommender import core
from shopai.demo.generator import DemoShopConfig, generate
from tests.support import ROOT, _listening, free_port, wait_for

pytestmark = pytest.mark.integration

DEMO = {"SHOPAI_DEMO_PRODUCTS": "200", "SHOPAI_DEMO_USERS": "150", "SHOPAI_DEMO_DAYS": "60", "SHOPAI_DEMO_SEED": "7"}


def get(url: str) -> tuple[int, dict | str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            body = reply.read().decode()
            status = reply.status
    except urllib.error.HTTPError as err:
        body, status = err.read().decode(), err.code
    try:
        return status, json.loads(body)
    except json.JSONDecodeError:
        return status, body


def expected_popular(user: str, k: int = 10) -> list[str]:
    """Popularity computed independently from the generated events, with the documented weights."""
    shop = generate(DemoShopConfig(seed=7, n_products=200, n_users=150, days=60), progress=False)
    live: set[str] = set()
    for event in shop.catalog:
        pid = event["payload"]["product_id"]
        (live.add if event["type"] == "product.upserted" else live.discard)(pid)
    score: Counter = Counter()
    bought: set[str] = set()
    for event in shop.interactions:
        action, p = event["type"].split(".", 1)[1], event["payload"]
        if p.get("product_id"):
            score[p["product_id"]] += core.interaction_weight(action, p)
            if action == "purchase" and p["user_id"] == user:
                bought.add(p["product_id"])
    ranked = sorted(((pid, s) for pid, s in score.items() if s > 0 and pid in live), key=lambda x: (x[1], x[0]),
                    reverse=True)  # Redis orders equal scores by member, descending, in ZREVRANGE
    return [pid for pid, _ in ranked if pid not in bought][:k]


@pytest.fixture
def stack(tmp_path, redis_url):
    ports = {"gateway": free_port(), "kafka": free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPAI_")}
    env.update(DEMO)
    env.update(
        SHOPAI_GATEWAY_PORT=str(ports["gateway"]), SHOPAI_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{ports['kafka']}",
        SHOPAI_REDIS_URL=redis_url, SHOPAI_DATA_DIR=str(tmp_path / "data"), SHOPAI_LOG_JSON="false",
        PATH=f"{Path(sys.executable).parent}:{env['PATH']}",
    )
    for name in SERVICE_NAMES:
        ports[name] = free_port()
        ports[f"{name}-metrics"] = free_port()
        env[f"SHOPAI_{name.upper()}__GRPC_PORT"] = str(ports[name])
        env[f"SHOPAI_{name.upper()}__METRICS_PORT"] = str(ports[f"{name}-metrics"])
    redis.Redis.from_url(redis_url).flushdb()
    log = open(tmp_path / "run.log", "wb")  # noqa: SIM115 - closed after the test
    proc = subprocess.Popen([str(Path(sys.executable).parent / "shopai"), "run"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    yield proc, ports, tmp_path / "run.log"
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()


def test_make_run_serves_seeded_popular_items_and_stops_cleanly(stack, redis_url):
    proc, ports, log_path = stack
    base = f"http://127.0.0.1:{ports['gateway']}"

    def seeded() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"shopai run exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        return "ShopAI is up" in log_path.read_text(errors="replace")

    wait_for(seeded, 240, interval=1, what="the demo shop to be seeded")
    status, ready = get(f"{base}/readyz")
    assert status == 200 and set(ready["backends"].values()) == {"SERVING"}, ready

    want = expected_popular("u1")
    assert len(want) == 10

    def served() -> list[str] | None:
        status, body = get(f"{base}/v1/users/u1/recommendations?strategy=popular")
        assert status == 200, body
        got = [item["product_id"] for item in body["items"]]
        return got if got == want else None

    wait_for(served, 120, interval=1, what=f"u1's popular items to be {want}")
    status, metrics = get(f"{base}/metrics")
    assert status == 200 and "shopai_http_requests_total" in metrics

    # Ctrl-C: the terminal sends SIGINT to the foreground process group.
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(60)
    still_open = [name for name, port in ports.items() if _listening(port)]
    assert not still_open, f"still listening after Ctrl-C: {still_open}"
    assert redis.Redis.from_url(redis_url).ping(), "the machine's Redis must not be stopped"
    output = log_path.read_text(errors="replace")
    assert "redis.1" not in output, "a Redis was already running: the launcher must not start another"
