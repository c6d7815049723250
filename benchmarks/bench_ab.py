"""Benchmark: an A/B experiment on the demo shop, hybrid against popular, through REST (issue #20 item 5);
writes results/ab[-quick].json.

The recommender in its own process (the real broker and Redis) and the gateway (benchmarks/stack.py): the demo
shop is seeded through ``POST /v1/events``, the recommender trained (``POST /v1/admin/train/recommender``), an
experiment started (``POST /v1/admin/experiments``: arm A ``hybrid``, arm B ``popular``, 50/50), then the demo's
simulated shoppers (shopai/demo/shoppers.py) visit: each session a random demo shopper asks
``GET /v1/users/{id}/recommendations?k=10`` (no strategy: the experiment picks it) and clicks, carts and buys
what they like by the simulation's hidden tastes, sending the answer's ``recommendation_id`` with the events.
The report is read from ``GET /v1/admin/experiments/{id}`` once the recommender counted every answer.

Beside the report, what the shoppers themselves saw (the baseline, outside the system under test): answers and
clicked answers per arm counted by the simulator, and the mean hidden match@10 of each arm's answers (the
relevance that drives the clicks): the report must agree with the first and find the arm the second favours.
Last, the cost of recording impressions in the gateway: the same cached answer's latency with the impression
log on and off.

    python -m benchmarks.bench_ab [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.machine import describe
from benchmarks.sections import print_table

RESULTS = Path(__file__).resolve().parent / "results"
REDIS_DB = 5  # bench_handoff uses 7, bench_forecasting_daily 8, bench_alerts and bench_vision_rest 9, bench_recommender_service 10
KEY = "bench-ab-admin-key-0123456789abcdef"  # ingest + admin + support (shoppers' reads as support staff)
LATENCY_REQUESTS = 1000


class ClientShop:
    """shopai.demo.shoppers.Shop over the gateway's in-process client."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.latencies: list[float] = []

    def recommendations(self, user: str, k: int) -> dict[str, Any]:
        started = time.perf_counter()
        reply = self.client.get(f"/v1/users/{user}/recommendations?k={k}")
        self.latencies.append(time.perf_counter() - started)
        if reply.status_code != 200:
            raise SystemExit(f"recommendations answered {reply.status_code}: {reply.json}")
        return reply.json

    def send(self, events: list[dict[str, Any]]) -> None:
        reply = self.client.post("/v1/events", json={"events": events})
        if reply.status_code != 202 or reply.json["rejected"]:
            raise SystemExit(f"POST /v1/events answered {reply.status_code}: {reply.json}")


def ok(reply: Any, status: int = 200) -> dict:
    if reply.status_code != status:
        raise SystemExit(f"{reply.request.path} answered {reply.status_code}: {reply.json}")
    return reply.json


def cached_latency(client: Any, app: Any, user: str) -> tuple[list[float], list[float]]:
    """The same request again and again (after the first, the gateway answers from the answer cache), the
    impression log on and off in turns, so both see the same moments of the machine: (on, off)."""
    path = f"/v1/users/{user}/recommendations?k=10&strategy=hybrid"
    client.get(path)
    impressions = app.extensions["shopai.impressions"]
    on: list[float] = []
    off: list[float] = []
    for i in range(2 * LATENCY_REQUESTS):
        if i % 2:
            app.extensions.pop("shopai.impressions")
        started = time.perf_counter()
        client.get(path)
        (off if i % 2 else on).append(time.perf_counter() - started)
        app.extensions["shopai.impressions"] = impressions
    return on, off


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def run(quick: bool) -> dict:
    from benchmarks.stack import ServiceStack
    from services.common.recommendations import RecommenderKeys as K
    from shopai.demo import DemoShopConfig, generate
    from shopai.demo.shoppers import LiveShoppers
    from shopai.demo.truth import hidden_match
    from tests.support import wait_for

    config = (DemoShopConfig(seed=42, n_products=300, n_users=500, days=120) if quick
              else DemoShopConfig(seed=42, n_products=1000, n_users=1500, days=240))
    sessions = 1500 if quick else 6000
    shop = generate(config, progress=False)
    events = list(shop.events())
    stack = ServiceStack("recommender", REDIS_DB, KEY, SHOPAI_RETRAIN_INTERVAL_SECONDS="0",
                         SHOPAI_RETRAIN_CHECK_SECONDS="3600")
    try:
        client = stack.client
        seeded = stack.send(events, K.stats, batch=5000)
        print(f"seeded {len(events)} events in {seeded:.0f} s", flush=True)
        job, trained = stack.train({})
        print(f"trained {job['model_version']} in {trained:.0f} s", flush=True)
        experiment = ok(client.post("/v1/admin/experiments", json={
            "name": "hybrid vs popular", "arms": [{"name": "A", "strategy": "hybrid"},
                                                  {"name": "B", "strategy": "popular"}]}), 201)
        eid = experiment["experiment_id"]
        shopper_shop = ClientShop(client)
        shoppers = LiveShoppers(shopper_shop, shop.truth, seed=7)
        matches: dict[str, list[float]] = {"A": [], "B": []}
        seen: dict[str, list[int]] = {"A": [0, 0], "B": [0, 0]}
        started = time.perf_counter()
        for _ in range(sessions):
            before = shoppers.tally.clicked
            answer = shoppers.session()
            arm = answer["experiment"]["arm"]
            seen[arm][0] += 1
            seen[arm][1] += shoppers.tally.clicked - before
            pids = [item["product_id"] for item in answer["items"] if item["product_id"] in shop.truth["products"]]
            if pids:
                user = answer["user_id"]
                matches[arm].append(float(hidden_match(shop.truth, [user], pids)[0].mean()))
        visiting = time.perf_counter() - started
        print(f"{sessions} sessions in {visiting:.0f} s", flush=True)

        def counted() -> dict | None:
            found = ok(client.get(f"/v1/admin/experiments/{eid}"))
            return found if sum(a["impressions"] for a in found["report"]["arms"]) >= sessions else None

        report = wait_for(counted, 300, interval=0.5, what="every answer counted")["report"]
        analytics = ok(client.get("/v1/analytics/recommendations"))["rows"]
        # the cost of the impression log on a cached answer (the cheapest answer: where it shows most)
        user = shoppers.users[0]
        with_log, without_log = cached_latency(client, stack.app, user)
    finally:
        stack.stop()

    arms = []
    for row in report["arms"]:
        name = row["name"]
        arms.append({
            "arm": name, "strategy": {"A": "hybrid", "B": "popular"}[name], "users": row["users"],
            "answers": row["impressions"], "clicked": row["clicks"], "click_through": round(row["click_through"], 4),
            "add_to_cart_rate": round(row["add_to_cart_rate"], 4), "conversion": round(row["conversion"], 4),
            "simulator_answers": seen[name][0], "simulator_clicked": seen[name][1],
            "mean_hidden_match@10": round(statistics.fmean(matches[name]), 4) if matches[name] else None,
        })
    latency = [
        {"impression log": "on", "requests": LATENCY_REQUESTS, "p50_ms": ms(with_log, 0.5),
         "p99_ms": ms(with_log, 0.99)},
        {"impression log": "off", "requests": LATENCY_REQUESTS, "p50_ms": ms(without_log, 0.5),
         "p99_ms": ms(without_log, 0.99)},
    ]
    return {
        "setup": f"demo shop seed 42, {config.n_products} products, {config.n_users} shoppers, {config.days} days "
                 f"({len(events)} events) through POST /v1/events; recommender (own process) trained through REST; "
                 f"experiment A=hybrid vs B=popular, 50/50; {sessions} simulated shopper sessions through REST "
                 f"(k=10, shopai/demo/shoppers.py), one at a time",
        "seconds": {"seed": round(seeded), "train": round(trained), "sessions": round(visiting)},
        "model_version": job["model_version"],
        "arms": arms,
        "difference_B_minus_A": round(report["difference"], 4),
        "ci95": [round(v, 4) for v in report["ci95"]],
        "unit": report["unit"],
        "better": report["better"],
        "analytics": analytics,
        "answer_latency": latency,
        "recommendation_p50_ms": ms(shopper_shop.latencies, 0.5),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: a small shop, 1,500 sessions")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = run(args.quick)
    result.update(machine=describe(), quick=args.quick, total_seconds=round(time.perf_counter() - started),
                  finished_at=datetime.now(UTC).isoformat(timespec="seconds"))
    print_table("A/B: hybrid (A) against popular (B), per arm", result["arms"])
    print(f"click-through B - A: {result['difference_B_minus_A']:+.4f}, 95% CI {result['ci95']} "
          f"(per answer); better arm: {result['better']}")
    print_table("a cached recommendation through the gateway, impression log on and off (in turns)",
                result["answer_latency"])
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"ab{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()
