"""One service and the gateway, started as a shop would run them, for the benchmarks that judge a service
through its REST API: a fresh broker, Redis (a db of the machine's, else a private one), the service in its
own process, the gateway in process with an API key holding ingest, admin and support.

``send`` posts events through ``POST /v1/events`` in batches and waits until the service applied them all;
``train`` starts the service's training through the admin route and waits for the job. ``gateway`` sets more of
the gateway's settings (a shopper-token secret, rate limits); ``serving_timeout`` is how long the service may take
to start (the chatbot trains its first model first).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any


class ServiceStack:
    def __init__(self, service: str, redis_db: int, key: str, gateway: dict[str, Any] | None = None,
                 serving_timeout: float = 120, **env: str) -> None:
        from gateway.app import create_app
        from services.common import cache
        from services.common.settings import Settings
        from tests.support import Broker, PrivateRedis, ServiceProcess, machine_redis_url

        self.service_name = service
        self.workdir = Path(tempfile.mkdtemp(prefix=f"bench-{service}-stack-"))
        url = machine_redis_url(db=redis_db)
        self.private = None if url else PrivateRedis()
        url = url or self.private.url
        self.redis = cache.connect(url)
        self.redis.flushdb()
        self.broker = Broker()
        settings = Settings(kafka_bootstrap_servers=self.broker.bootstrap, redis_url=url, log_json=False,
                            data_dir=self.workdir / "data", env="prod",
                            gateway_api_keys=f"{key}:ingest+admin+support")
        self.service = ServiceProcess(service, settings, self.workdir, **env).wait_serving(timeout=serving_timeout)
        getattr(settings, service).grpc_port = self.service.grpc_port
        self.settings = settings.model_copy(update=gateway or {})
        self.app = create_app(self.settings)
        self.client = self.app.test_client()
        self.client.environ_base["HTTP_X_API_KEY"] = key

    def send(self, events: list[dict], stats_key: str, batch: int, timeout: float = 1800) -> float:
        """POST /v1/events in batches of ``batch``; waits until the service counted them all in ``stats_key`` (its
        projection's per-type counters). The seconds taken."""
        from tests.support import wait_for

        started = time.perf_counter()
        for start in range(0, len(events), batch):
            reply = self.client.post("/v1/events", json={"events": events[start:start + batch]})
            if reply.status_code != 202 or reply.json["rejected"]:
                refused = [r for r in (reply.json or {}).get("results", []) if r.get("status") != "accepted"][:3]
                raise SystemExit(f"POST /v1/events answered {reply.status_code}: {refused or reply.json}")
        wait_for(lambda: sum(int(v) for v in self.redis.hgetall(stats_key).values()) >= len(events),
                 timeout, interval=0.5, what=f"{len(events)} events applied")
        return time.perf_counter() - started

    def train(self, body: dict[str, Any], timeout: float = 3600) -> tuple[dict, float]:
        """``POST /v1/admin/train/<service>`` and wait for the job: (the finished job, seconds taken)."""
        from tests.support import wait_for

        started = time.perf_counter()
        route = f"/v1/admin/train/{self.service_name}"
        reply = self.client.post(route, json=body)
        if reply.status_code != 202:
            raise SystemExit(f"POST {route} answered {reply.status_code}: {reply.json}")
        location = reply.headers["Location"]

        def finished() -> dict | None:
            job = self.client.get(location).json
            return job if job["state"] in ("succeeded", "failed") else None

        job = wait_for(finished, timeout, interval=1.0, what="the training job")
        if job["state"] != "succeeded":
            raise SystemExit(f"training failed: {job}")
        return job, time.perf_counter() - started

    def stop(self) -> None:
        from gateway.app import close_app

        close_app(self.app)
        self.service.stop()
        self.broker.stop()
        self.redis.flushdb()
        self.redis.close()
        if self.private is not None:
            self.private.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
