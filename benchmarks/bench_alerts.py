"""Benchmark of the alerts desk's webhooks (issue #20 item 2) on this machine (writes results/alerts-webhooks[-quick].json).

Section ``webhooks``: the forecasting service (its own process, the real broker and Redis) with two webhooks,
both real HTTP servers in this process: one always up, one **flapping** (in turns: up, answering 503, not
listening, each phase a few seconds). Alerts are published on ``alerts.v1`` at a steady rate, as the services
publish them; then we wait until the delivery queue is empty. Per receiver: alerts received (distinct),
lost, duplicates, and the delay from the alert's ``occurred_at`` to its arrival (p50, p99, max), with the
attempts the flapping one needed. Goal: 0 lost, 0 duplicates, and the steady receiver unaffected by the
flapping one (its p99 under a second). The retry settings are short (base 0.25 s, at most 2 s between
tries) so the run takes a minute; with the defaults (2 s doubling to 15 min) a receiver that was down gets
its alerts up to that much later.

    python -m benchmarks.bench_alerts [--quick]
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from benchmarks.sections import run_sections

REDIS_DB = 9  # bench_trust uses 11, bench_gateway 12, the tests 13-15
RETRY = {"SHOPAI_ALERT_WEBHOOK_RETRY_BASE_SECONDS": "0.25", "SHOPAI_ALERT_WEBHOOK_RETRY_MAX_SECONDS": "2",
         "SHOPAI_ALERT_WEBHOOK_ATTEMPTS": "50", "SHOPAI_ALERT_WEBHOOK_TIMEOUT_SECONDS": "2"}
PHASES = ("up", "503", "down")


class Receiver:
    """A webhook receiver on a fixed port that records (arrival time, alert id, attempt) of what it accepted."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/hook"
        self.status = 200
        self.accepted: list[tuple[float, str, int]] = []
        self.refused = 0
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.status == 200:
                    receiver.accepted.append((time.time(), json.loads(body)["alert_id"],
                                              int(self.headers["X-ShopAI-Delivery-Attempt"])))
                else:
                    receiver.refused += 1
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def flap(receiver: Receiver, phase_seconds: float, stop: threading.Event) -> None:
    """Up, 503, not listening, in turns, until ``stop``; then up for good."""
    turn = 0
    while not stop.is_set():
        phase = PHASES[turn % len(PHASES)]
        if phase == "down":
            receiver.stop()
        else:
            receiver.status = 200 if phase == "up" else 503
            if receiver.server is None:
                receiver.start()
        stop.wait(phase_seconds)
        turn += 1
    receiver.status = 200
    if receiver.server is None:
        receiver.start()


def summary(name: str, receiver: Receiver, sent: dict[str, float]) -> dict:
    accepted = [row for row in receiver.accepted if row[1] in sent]  # not the warm-up alert
    ids = [alert_id for _, alert_id, _ in accepted]
    first: dict[str, float] = {}
    for at, alert_id, _ in accepted:
        first.setdefault(alert_id, at)
    delays = np.array([first[a] - sent[a] for a in first])
    attempts = np.array([n for _, _, n in accepted])
    return {"receiver": name, "alerts": len(sent), "received": len(set(ids)), "lost": len(set(sent) - set(ids)),
            "duplicates": len(ids) - len(set(ids)), "refused_attempts": receiver.refused,
            "delay_p50_s": round(float(np.percentile(delays, 50)), 3),
            "delay_p99_s": round(float(np.percentile(delays, 99)), 3), "delay_max_s": round(float(delays.max()), 3),
            "attempts_max": int(attempts.max()), "attempts_mean": round(float(attempts.mean()), 2)}


def run_webhooks(quick: bool) -> dict:
    from services.common import cache, topics
    from services.common.bus import LazyEnvelopePublisher
    from services.common.events import envelope
    from services.common.settings import Settings
    from services.forecasting.alerts import pending
    from tests.support import Broker, PrivateRedis, ServiceProcess, free_port, machine_redis_url, wait_for

    count, rate, phase_seconds = (200, 50.0, 2.0) if quick else (1000, 50.0, 3.0)
    workdir = Path(tempfile.mkdtemp(prefix="bench-alerts-"))
    url = machine_redis_url(db=REDIS_DB)
    private = None if url else PrivateRedis()
    url = url or private.url
    redis = cache.connect(url)
    redis.flushdb()
    broker = Broker()
    steady, flapping = Receiver(free_port()), Receiver(free_port())
    steady.start()
    stop_flapping = threading.Event()
    flapper = threading.Thread(target=flap, args=(flapping, phase_seconds, stop_flapping), daemon=True)
    settings = Settings(kafka_bootstrap_servers=broker.bootstrap, redis_url=url, data_dir=workdir / "data",
                        log_json=False)
    service = ServiceProcess("forecasting", settings, workdir, SHOPAI_FORECAST_AUTO_TRAIN="false",
                             SHOPAI_ALERT_WEBHOOKS=f"{steady.url},{flapping.url}",
                             SHOPAI_ALERT_WEBHOOK_SECRET="bench-secret", **RETRY).wait_serving(timeout=120)
    outputs = LazyEnvelopePublisher(settings, client_id="bench-alerts")
    try:
        outputs.publish(topics.ALERTS, "warm-up", envelope("alert.reorder_needed", {"product_id": "warm-up"},
                                                           "bench"))
        wait_for(lambda: len(steady.accepted) == 1, 60, what="the first alert delivered")
        steady.accepted.clear()
        flapper.start()
        sent: dict[str, float] = {}
        started = time.perf_counter()
        for i in range(count):
            event = envelope("alert.reorder_needed", {"product_id": f"p{i % 50:03d}", "on_hand": i % 7}, "bench")
            outputs.publish(topics.ALERTS, event["payload"]["product_id"], event)
            sent[event["event_id"]] = datetime.fromisoformat(event["occurred_at"]).timestamp()
            time.sleep(max(0.0, started + (i + 1) / rate - time.perf_counter()))
        published = time.perf_counter() - started
        stop_flapping.set()
        flapper.join()
        wait_for(lambda: pending(redis, (steady.url, flapping.url)) == 0
                 and len({a for _, a, _ in flapping.accepted} & set(sent)) == count, 300, interval=0.5,
                 what="every delivery made")
        drained = time.perf_counter() - started
        time.sleep(2)  # a late duplicate would show here
        rows = [summary("steady", steady, sent), summary("flapping", flapping, sent)]
    finally:
        outputs.close()
        service.stop()
        steady.stop()
        flapping.stop()
        broker.stop()
        if private is not None:
            private.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    lost = sum(r["lost"] for r in rows)
    duplicates = sum(r["duplicates"] for r in rows)
    return {
        "setup": f"forecasting service (own process), real broker and Redis; {count} alerts at {rate:g}/s; "
                 f"the flapping receiver up / 503 / not listening for {phase_seconds:g} s each, in turns, while "
                 "they are published; retries base 0.25 s, at most 2 s apart",
        "publish_seconds": round(published, 1), "all_delivered_after_s": round(drained, 1), "receivers": rows,
        "goal": "0 lost, 0 duplicates, the steady receiver's p99 under 1 s",
        "goal_met": lost == 0 and duplicates == 0 and rows[0]["delay_p99_s"] < 1.0,
    }


SECTIONS = {"webhooks": run_webhooks}


def main(argv: list[str] | None = None) -> None:
    run_sections("alerts", __doc__.splitlines()[0], SECTIONS, "a smoke run: 200 alerts, 2 s phases", argv)


if __name__ == "__main__":
    main()
