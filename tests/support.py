"""Test helpers: the real broker (tansu) and Redis, and services run as real processes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import closing
from pathlib import Path

import grpc
import redis

from services.common.healthcheck import check as grpc_serving
from services.common.settings import Settings
from services.common.topics import INTERACTIONS
from shopai.cli import broker_command

ROOT = Path(__file__).resolve().parent.parent


# Ports handed out by free_port: each pytest-xdist worker draws from a range of its own below Linux's
# ephemeral range (32768-60999), so no other worker, and no socket the kernel numbers itself, can take a port
# between the moment it is found free and the moment the service it is meant for binds it (CI once saw the
# kernel's port 0 answer twice: a recommender's metrics port "already in use").
_PORTS_PER_WORKER = 1500
_PORT_BASE = 20000
_next_port = 0


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker[2:]) if worker[2:].isdigit() else 0


def free_port() -> int:
    global _next_port
    first = _PORT_BASE + (_worker_index() % 8) * _PORTS_PER_WORKER
    for _ in range(_PORTS_PER_WORKER):
        port = first + _next_port
        _next_port = (_next_port + 1) % _PORTS_PER_WORKER
        with closing(socket.socket()) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:  # in use (or in TIME_WAIT) here: the next one
                continue
        return port
    raise RuntimeError(f"no free port in {first}-{first + _PORTS_PER_WORKER - 1}")


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last value: {last!r})")


class S3Store:
    """s3rver (tools/s3rver, installed by `make run` / `make test`) keeping a broker's log under ``directory``."""

    def __init__(self, directory: Path) -> None:
        from shopai.cli import S3RVER, s3_command

        if not S3RVER.exists():
            raise RuntimeError(f"{S3RVER} is missing: npm ci --prefix tools/s3rver (the Makefile does it)")
        self.port = free_port()
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.command = s3_command(Settings(), directory, self.port)
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        wait_for(lambda: _listening(self.port), 20, what="s3rver")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class Broker:
    """A fresh tansu broker on a free port: memory storage, or with ``s3`` its log in that S3Store."""

    def __init__(self, port: int | None = None, s3: S3Store | None = None) -> None:
        from shopai.cli import broker_environment

        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.settings = Settings(kafka_bootstrap_servers=self.bootstrap, broker_storage="s3" if s3 else "memory",
                                 broker_s3_port=s3.port if s3 else Settings().broker_s3_port)
        self.env = {**os.environ, **broker_environment(self.settings)}
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            broker_command(self.settings), env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(lambda: _listening(self.port), 20, what=f"the broker on {self.bootstrap}")

    def kill(self) -> None:
        """SIGKILL: the broker has no chance to write anything more."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class PrivateRedis:
    """A redis-server of the tests' own, used only where no Redis listens on 6379."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if not binary:
            raise RuntimeError("no Redis on 127.0.0.1:6379 and no redis-server binary (apt-get install redis-server)")
        # With a data_dir the server keeps an fsync-always append-only file, so a restart keeps its data.
        durability = (["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.data_dir)]
                      if self.data_dir else ["--appendonly", "no"])
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *durability],
            stdout=subprocess.DEVNULL, start_new_session=True,
        )
        wait_for(self._answering, 30, what="redis-server to load its data and answer")

    def _answering(self) -> bool:
        """Listening is not enough: while it loads its append-only file Redis answers LOADING to everything."""
        if not _listening(self.port):
            return False
        client = redis.Redis(port=self.port, socket_timeout=2)
        try:
            return bool(client.ping())
        except redis.exceptions.BusyLoadingError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _listening(port: int) -> bool:
    with closing(socket.socket()) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def machine_redis_url(db: int = 15) -> str | None:
    """The machine's Redis for the tests (db 15, or $SHOPAI_TEST_REDIS_URL), or None when none answers.
    Each pytest-xdist worker takes a database of its own below it (gw0: db 15, gw1: db 14, …), since the
    tests flush their database."""
    url = os.environ.get("SHOPAI_TEST_REDIS_URL", f"redis://127.0.0.1:6379/{db}")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    if worker.startswith("gw") and worker[2:].isdigit() and int(worker[2:]):
        parts = urllib.parse.urlsplit(url)
        base = int(parts.path.strip("/") or 0)
        url = urllib.parse.urlunsplit(parts._replace(path=f"/{(base - int(worker[2:])) % 16}"))
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.exceptions.RedisError:
        return None
    return url


def service_env(settings: Settings, name: str, grpc_port: int, metrics_port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPAI_")}
    env.update(
        SHOPAI_KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        SHOPAI_REDIS_URL=settings.redis_url,
        SHOPAI_DATA_DIR=str(settings.data_dir),
        SHOPAI_LOG_JSON="false",
        PYTHONUNBUFFERED="1",
    )
    env[f"SHOPAI_{name.upper()}__GRPC_PORT"] = str(grpc_port)
    env[f"SHOPAI_{name.upper()}__METRICS_PORT"] = str(metrics_port)
    env.update(extra)
    return env


class ServiceProcess:
    """``python -m services.<name>`` as a child process on free ports."""

    def __init__(self, name: str, settings: Settings, log_dir: Path, **env: str) -> None:
        self.name = name
        self.grpc_port = free_port()
        self.metrics_port = free_port()
        self.target = f"127.0.0.1:{self.grpc_port}"
        self.log_path = log_dir / f"{name}-{self.grpc_port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            cwd=ROOT, env=service_env(settings, name, self.grpc_port, self.metrics_port, **env),
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_serving(self, timeout: float = 60.0, settings: Settings | None = None) -> ServiceProcess:
        """Until the health check says SERVING, dialled with the transport of ``settings`` (default: plaintext)."""
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            return grpc_serving(self.target, timeout=1.0, settings=settings)

        wait_for(ready, timeout, what=f"{self.name} to be SERVING")
        return self

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a Prometheus sample across series matching ``labels``."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine dies."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
        return self.proc.returncode


def stop_group(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """Stop a process started in a session of its own, and its children: SIGTERM to the group, SIGKILL after
    ``timeout``."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def assert_problem(reply, status: int) -> dict:
    """A Flask test reply is an RFC 9457 problem with this status; returns its body."""
    assert reply.status_code == status, reply.get_data(as_text=True)
    assert reply.content_type == "application/problem+json"
    body = reply.json
    assert body["status"] == status and body["title"] and body["detail"] and body["type"].startswith("https://")
    return body


class RecordingServicer:
    """Mixin for fake gRPC servicers in gateway tests: records every request (and the deadline it came
    with); ``errors[method] = (code, details)`` makes the method abort; ``trailing[method]`` is the trailing
    metadata it sends (with its answer or its error)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object, float | None]] = []
        self.errors: dict[str, tuple[grpc.StatusCode, str]] = {}
        self.trailing: dict[str, tuple[tuple[str, str], ...]] = {}
        self.port = 0

    def _handle(self, method: str, request, context, answer):
        self.calls.append((method, request, context.time_remaining()))
        if method in self.trailing:
            context.set_trailing_metadata(self.trailing[method])
        if method in self.errors:
            context.abort(*self.errors[method])
        return answer(request)

    def only(self, method: str):
        assert [m for m, _, _ in self.calls] == [method], self.calls
        return self.calls[0][1]

    def methods(self) -> list[str]:
        return [m for m, _, _ in self.calls]

    def reset(self) -> RecordingServicer:
        self.calls.clear()
        self.errors.clear()
        self.trailing.clear()
        return self


@contextlib.contextmanager
def serving(fake: RecordingServicer, add_to_server: Callable) -> Iterator[RecordingServicer]:
    """Run ``fake`` on a real in-process gRPC server on a free port (``fake.port``)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add_to_server(fake, server)
    fake.port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield fake
    finally:
        server.stop(grace=None)


# An API key with every role, for tests of routes other than the policy itself (tests/unit/test_gateway_access.py
# and tests/integration/test_access_matrix.py test who may call what).
TEST_ADMIN_KEY = "test-admin-key-0123456789abcdef"
TEST_KEYS = f"{TEST_ADMIN_KEY}:admin"
STAFF_HEADERS = {"X-API-Key": TEST_ADMIN_KEY}


def key_id_of(key: str) -> str:
    """The id the gateway names a key by (gateway/access.py KeyRing)."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


class MemoryAudit:
    """The audit log of a unit-test app whose Redis is deliberately unreachable (audit reads fail closed)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, str, str]] = []

    def record(self, key_id: str, method: str, route: str, subject: str) -> None:
        self.records.append((key_id, method, route, subject))


def staff(client):
    """A Flask test client that sends the test admin key with every request. Where the app's Redis does not
    answer (unit tests), staff reads of shoppers' data are audited in memory instead."""
    client.environ_base["HTTP_X_API_KEY"] = TEST_ADMIN_KEY
    access = client.application.extensions["shopai.access"]
    if isinstance(access.audit, MemoryAudit):
        return client
    try:
        access.audit.redis.ping()
    except redis.RedisError:
        access.audit = MemoryAudit()
    return client


def ids_in_log(settings: Settings, topic: str = INTERACTIONS) -> Counter:
    """How many times each event id is in ``topic``, read from the beginning by a consumer of no group."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None,
                             enable_auto_commit=False, consumer_timeout_ms=3000)
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.kafka_topic_partitions)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        return Counter(json.loads(record.value)["event_id"] for record in consumer)
    finally:
        consumer.close()


def projected_commands(projection, events, state: dict | None = None) -> list[list[list[str]]]:
    """Each event's Redis commands from ``projection.apply``, the events sharing one batch ``state`` (as the
    consumer's batch does; run ``projection.prepare(events, state)`` first to read as the consumer does)."""
    from services.common.projection import Ops

    state = {} if state is None else state
    out = []
    for event in events:
        ops = Ops(state)
        projection.apply(event, ops)
        out.append(ops.commands)
    return out
