"""Scale out (issue #22, item 8): two replicas of the recommender and two gateway processes on one broker and
one Redis, as docs/deploy.md runs them ("Scaling, consumer groups and partitions", "The shared model volume").
The events are published once: the two recommenders split the partitions of their consumer group and apply
each event once; a model trained on one replica is served by both (the shared model directory); both
replicas, and both gateways (each dialling a replica of its own), give the same answer to the same request.
Throughput adding up is measured, not asserted: ``bench_gateway.py --scale-out`` (benchmarks/README.md,
"Scale out: replicas")."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import grpc
import pytest
from kafka import KafkaAdminClient, TopicPartition

from gateway.identity import ShopperTokens
from protos import recommender_pb2 as pb
from protos import recommender_pb2_grpc as pb_grpc
from services.common import cache, topics
from services.common.bus import EventPublisher, ensure_topics, kafka_config
from services.common.models import ModelRegistry
from services.common.recommendations import RecommenderKeys as K
from services.common.settings import Settings
from services.recommender.consumer import RecommenderProjection
from shopai.demo import DemoShopConfig, generate
from tests.support import ROOT, free_port, stop_group, wait_for

pytestmark = pytest.mark.integration

GROUP = RecommenderProjection.group
SHOP = DemoShopConfig(seed=5, n_products=60, n_users=80, days=30, sessions_per_day=30)
TOKEN_SECRET = "scale-out-test-shopper-token-secret-0123456789"
TOKENS = ShopperTokens(Settings(gateway_shopper_token_secrets=TOKEN_SECRET))
# A first model as soon as there are events, no retraining after it; each replica looks at the shared model
# directory every second.
QUIET = {"SHOPAI_RETRAIN_INTERVAL_SECONDS": "0", "SHOPAI_RETRAIN_CHECK_SECONDS": "1"}


def replica_settings(settings: Settings, root: Path, name: str) -> Settings:
    """A data directory of the replica's own whose ``models`` is the one shared directory (the ReadWriteMany
    volume of docs/deploy.md); the rest (secrets, caches) stays per replica, as in a pod's emptyDir."""
    data = root / name
    data.mkdir(parents=True)
    (data / "models").symlink_to(root / "shared-models", target_is_directory=True)
    return settings.model_copy(update={"data_dir": data})


def start_gateway(settings: Settings, recommender_port: int, log_dir: Path) -> tuple[subprocess.Popen, str]:
    """The gateway as production runs it (gunicorn, gateway/gunicorn_conf.py), dialling one recommender."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPAI_")}
    env.update(SHOPAI_REDIS_URL=settings.redis_url, SHOPAI_KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
               SHOPAI_DATA_DIR=str(settings.data_dir), SHOPAI_GATEWAY_HOST="127.0.0.1",
               SHOPAI_GATEWAY_PORT=str(port), SHOPAI_ENV="dev", SHOPAI_LOG_LEVEL="WARNING", SHOPAI_LOG_JSON="false",
               SHOPAI_GATEWAY_RATE_LIMIT_PER_MINUTE="0", SHOPAI_GATEWAY_SHOPPER_TOKEN_SECRETS=TOKEN_SECRET,
               SHOPAI_RECOMMENDER__GRPC_PORT=str(recommender_port))
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    log = open(log_dir / f"gunicorn-{port}.log", "wb")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen(
        [gunicorn, "--config", str(ROOT / "gateway" / "gunicorn_conf.py"),
         "--control-socket", str(log_dir / f"gunicorn-{port}.ctl"), "gateway.app:create_app()"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    return proc, f"http://127.0.0.1:{port}"


def get_json(url: str, user: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKENS.mint(user).token}"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200
        return json.loads(reply.read())


def healthy(base: str, proc: subprocess.Popen) -> bool:
    assert proc.poll() is None, f"the gateway at {base} exited with {proc.returncode}"
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def committed_offsets(settings: Settings) -> dict[TopicPartition, int]:
    """The recommender group's committed offset of every partition it committed (``list_group_offsets``;
    the broker's end offsets of compressed batches are not exact, so the totals come from what was published)."""
    admin = KafkaAdminClient(**kafka_config(settings))
    try:
        return {tp: meta.offset for tp, meta in admin.list_group_offsets(GROUP).get(GROUP, {}).items()}
    finally:
        admin.close()


def per_topic(offsets: dict[TopicPartition, int]) -> dict[str, int]:
    totals: Counter = Counter()
    for tp, offset in offsets.items():
        totals[tp.topic] += max(offset, 0)
    return {topic: n for topic, n in totals.items() if n}


@pytest.fixture
def gateways():
    """Gateway processes started by the test (process, base URL), stopped at its end."""
    started: list[tuple[subprocess.Popen, str]] = []
    yield started
    for proc, _ in started:
        stop_group(proc)


def test_two_recommenders_and_two_gateways_share_the_work_and_answer_alike(settings, start_service_with,
                                                                          redis_client, tmp_path, gateways):
    ensure_topics(settings)
    (tmp_path / "shared-models").mkdir()
    replicas = [start_service_with(replica_settings(settings, tmp_path, f"replica-{i}"), "recommender",
                                   wait=False, **QUIET) for i in (1, 2)]
    # Two gateway processes, each dialling a replica of its own; they start while the rest goes on.
    gateways.extend(start_gateway(settings, r.grpc_port, tmp_path) for r in replicas)
    for replica in replicas:
        replica.wait_serving()

    # (d) the group's partitions are split between the two consumers, every one owned.
    partitions = len(RecommenderProjection.topics) * settings.kafka_topic_partitions

    def split() -> bool:
        owned = [r.metric("shopai_consumer_assigned_partitions") for r in replicas]
        return all(o > 0 for o in owned) and sum(owned) == partitions

    wait_for(split, 60, what="both replicas to own partitions")

    # The events are published once, to the one broker.
    shop = generate(SHOP, progress=False)
    events = list(shop.events())
    publisher = EventPublisher(settings)
    try:
        publisher.publish(events, timeout=60)
    finally:
        publisher.close()
    per_type = Counter(e["type"] for e in events)
    wait_for(lambda: sum(int(v) for v in redis_client.hgetall(K.stats).values()) >= len(events), 60,
             what=f"{len(events)} events applied")
    published = Counter(topics.route(e["type"])[0] for e in events)
    committed = wait_for(lambda: (o := committed_offsets(settings)) and per_topic(o) == published and o, 30,
                         what="the group's offsets committed up to every published event")

    # (a) each event applied exactly once across the two replicas: the projection's counts are the totals,
    # each replica applied a share, and together exactly as many as were published.
    assert {t: int(n) for t, n in redis_client.hgetall(K.stats).items()} == dict(per_type)
    applied = [r.metric("shopai_events_consumed_total", group=GROUP, outcome="applied") for r in replicas]
    assert all(n > 0 for n in applied), f"one replica applied nothing: {applied}"
    assert sum(applied) == len(events)
    assert sum(r.metric("shopai_events_consumed_total", group=GROUP, outcome="duplicate") for r in replicas) == 0
    # (d) the group committed every partition of the shop's busiest topics (events are keyed by entity and
    # spread over all of them), so both owners had their share to apply and committed it.
    for topic in (topics.INTERACTIONS, topics.ORDERS):
        assert sorted(tp.partition for tp, o in committed.items() if tp.topic == topic and o > 0) == \
            list(range(settings.kafka_topic_partitions)), committed

    # (b) both replicas serve the same model version. Each replica's scheduler trains a first model once the
    # events are in, both at once here (docs/deploy.md: "Training runs per replica", the last version
    # written wins); each polls the shared directory's CURRENT every second and swaps in what the other wrote.
    registry = ModelRegistry(tmp_path / "shared-models" / "recommender")
    jobs = cache.key("jobs", "recommender", "*")

    def one_version() -> str | None:
        """The shared current version once no training job runs and both replicas serve it."""
        states = [json.loads(redis_client.get(k) or "{}").get("state") for k in redis_client.scan_iter(jobs)]
        version = registry.current_version()
        if not states or not all(s in ("SUCCEEDED", "FAILED") for s in states) or not version:
            return None
        return version if all(r.metric("shopai_model_info", version=version) == 1 for r in replicas) else None

    def settled() -> str | None:  # still so after a replica's next look (a job submitted meanwhile shows)
        version = one_version()
        time.sleep(1.5)
        return version if version and one_version() == version else None

    version = wait_for(settled, 60, interval=0.1, what="both replicas to serve the shared current version")
    first, second = (grpc.insecure_channel(r.target) for r in replicas)
    stubs = [pb_grpc.RecommenderStub(first), pb_grpc.RecommenderStub(second)]
    try:
        users = sorted({e["payload"]["user_id"] for e in shop.interactions})[:12]
        requests = [pb.RecommendRequest(user_id=u, k=10, strategy="hybrid",
                                        filters=pb.Filters(exclude_purchased=True, exclude_out_of_stock=True))
                    for u in users]
        for request in requests:
            answers = []
            for stub in stubs:  # each replica computes its own: the answer cached by the other is dropped first
                redis_client.delete(K.answers(request.user_id))
                answers.append(stub.Recommend(request, timeout=10))
            assert answers[0].model_version == version and answers[0].strategy == "hybrid"
            assert len(answers[0].items) == 10, answers[0]
            assert answers[0] == answers[1], request.user_id
        computed = [r.metric("shopai_grpc_server_handled_total", method="Recommend", code="OK") for r in replicas]
        assert computed == [len(requests), len(requests)]

        # (c) the two gateway processes, each dialling a replica of its own, answer alike.
        for proc, base in gateways:
            wait_for(lambda p=proc, b=base: healthy(b, p), 60, what=f"the gateway at {base}")
        for user in users:
            bodies = []
            for _, base in gateways:
                redis_client.delete(K.answers(user))  # each gateway asks its own recommender
                body = get_json(f"{base}/v1/users/{user}/recommendations?k=10", user)
                body.pop("recommendation_id")  # every answer is an impression of its own
                bodies.append(body)
            assert bodies[0]["model_version"] == version and len(bodies[0]["items"]) == 10
            assert bodies[0] == bodies[1], user
        after = [r.metric("shopai_grpc_server_handled_total", method="Recommend", code="OK") for r in replicas]
        assert [a - c for a, c in zip(after, computed, strict=True)] == [len(users), len(users)], \
            "each gateway's answers were computed by its own recommender"
    finally:
        first.close()
        second.close()
