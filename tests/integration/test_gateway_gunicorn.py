"""The gateway as production runs it (gunicorn, ``gateway/gunicorn_conf.py``: one process, gevent): many
users asking at once for recommendations whose answers are in the recommender's answer cache. The lookups
are batched (``cache.BatchedScript``) under gevent, so this checks that every caller gets its own user's
answer, and that the batching did happen."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gateway.identity import ShopperTokens
from protos import recommender_pb2 as pb
from services.common import cache
from services.common.settings import Settings
from services.recommender.store import AnswerCache, request_digest
from services.recommender.store import RecommenderKeys as K
from tests.support import ROOT, free_port, stop_group, wait_for

pytestmark = pytest.mark.integration

MODEL = "hybrid-gunicorn"
USERS = [f"u{i}" for i in range(40)]
TOKEN_SECRET = "gunicorn-test-shopper-token-secret-0123456789"
TOKENS = ShopperTokens(Settings(gateway_shopper_token_secrets=TOKEN_SECRET))


def answer_of(user: str) -> pb.RecommendResponse:
    """Each user's own answer (products named after the user), so a reply sent to the wrong caller shows."""
    return pb.RecommendResponse(user_id=user, model_version=MODEL, strategy="hybrid", items=[
        pb.RecommendedItem(product_id=f"{user}-p{j}", score=1.0 - j / 10, reason="because") for j in range(3)])


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as reply:
        return reply.status, reply.read().decode()


@pytest.fixture
def gateway(redis_url, redis_client, tmp_path):
    answers = AnswerCache(cache.connect(redis_url))
    for user in USERS:
        redis_client.sadd(K.active, *[item.product_id for item in answer_of(user).items])
        request = pb.RecommendRequest(user_id=user, k=10, strategy="hybrid",
                                      filters=pb.Filters(exclude_purchased=True, exclude_out_of_stock=True))
        field = f"0:{MODEL}:{request_digest(request)}"
        answers.store(user, field, answer_of(user).SerializeToString(), [i.product_id for i in answer_of(user).items],
                      MODEL)
    answers.redis.close()
    port = free_port()
    env = dict(os.environ, SHOPAI_REDIS_URL=redis_url, SHOPAI_GATEWAY_HOST="127.0.0.1",
               SHOPAI_GATEWAY_PORT=str(port), SHOPAI_ENV="dev", SHOPAI_LOG_LEVEL="WARNING",
               SHOPAI_GATEWAY_RATE_LIMIT_PER_MINUTE="0", SHOPAI_GATEWAY_SHOPPER_TOKEN_SECRETS=TOKEN_SECRET,
               SHOPAI_RECOMMENDER__GRPC_PORT=str(free_port()))  # nothing listens: every answer is Redis's
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [gunicorn, "--config", str(ROOT / "gateway" / "gunicorn_conf.py"),
         "--control-socket", str(tmp_path / "gunicorn.ctl"), "gateway.app:create_app()"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return get(f"{base}/healthz")[0] == 200
        except OSError:
            assert proc.poll() is None, (tmp_path / "gunicorn.log").read_text()
            return False

    try:
        wait_for(up, 60, what="the gateway under gunicorn")
        yield base
    finally:
        stop_group(proc)
        log.close()


def test_many_users_at_once_each_get_their_own_cached_answer(gateway):
    asks = USERS * 5

    def ask(user: str) -> tuple[str, int, dict]:  # each shopper signed in, with a token of their own
        status, body = get(f"{gateway}/v1/users/{user}/recommendations",
                           {"Authorization": f"Bearer {TOKENS.mint(user).token}"})
        return user, status, json.loads(body)

    with ThreadPoolExecutor(32) as pool:
        replies = list(pool.map(ask, asks))
    for user, status, body in replies:
        assert status == 200
        assert body["user_id"] == user and body["model_version"] == MODEL
        assert [item["product_id"] for item in body["items"]] == [f"{user}-p{j}" for j in range(3)]
    _, metrics = get(f"{gateway}/metrics")
    hits = re.search(r'^shopai_gateway_answer_cache_total\{outcome="hit"\} (\S+)$', metrics, re.MULTILINE)
    assert hits and float(hits.group(1)) == len(asks)
    calls = re.search(r'^shopai_redis_batched_calls_total\{script="answer_lookup"\} (\S+)$', metrics, re.MULTILINE)
    batches = re.search(r'^shopai_redis_batches_total\{script="answer_lookup"\} (\S+)$', metrics, re.MULTILINE)
    assert calls and batches and float(calls.group(1)) == len(asks)
    print(f"{len(asks)} lookups in {float(batches.group(1)):.0f} round trips")
    assert 1 <= float(batches.group(1)) < len(asks)  # 32 callers at once: some lookups shared a round trip


def test_a_cached_answer_says_so_and_an_answer_from_elsewhere_does_not(gateway):
    def headers(user: str):
        request = urllib.request.Request(f"{gateway}/v1/users/{user}/recommendations",
                                         headers={"Authorization": f"Bearer {TOKENS.mint(user).token}"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.headers

    assert headers(USERS[0])["X-ShopAI-Cache"] == "hit"
    # nothing cached for this shopper and no recommender listening: the popular fallback, not a cached answer
    fallback = headers("someone-new")
    assert fallback["X-ShopAI-Degraded"] == "recommender" and "X-ShopAI-Cache" not in fallback
