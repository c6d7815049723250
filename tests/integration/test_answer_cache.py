"""The recommender's answer cache in the real Redis: what the recommender and the gateway may serve from it."""

from __future__ import annotations

import pytest

from protos import recommender_pb2 as pb
from services.common.recommendations import ANSWER_CACHE_SECONDS, AnswerCache, request_digest
from services.common.recommendations import RecommenderKeys as K

pytestmark = pytest.mark.integration

MODEL = "hybrid-v1"


def request(user: str = "u1", **filters) -> pb.RecommendRequest:
    return pb.RecommendRequest(user_id=user, k=2, strategy="hybrid",
                               filters=pb.Filters(**{"exclude_out_of_stock": True, **filters}))


def digest(req: pb.RecommendRequest) -> str:
    return request_digest(req)


def answer(user: str = "u1") -> pb.RecommendResponse:
    return pb.RecommendResponse(user_id=user, model_version=MODEL, strategy="hybrid", items=[
        pb.RecommendedItem(product_id="p1", score=2.0, reason="because"),
        pb.RecommendedItem(product_id="p2", score=1.0, reason="because"),
    ])


@pytest.fixture(params=[False, True], ids=["plain", "batched"])
def batched(request):
    """Every test runs with the recommender's plain lookups and the gateway's batched ones."""
    return request.param


@pytest.fixture
def cache(redis_client, batched):
    redis_client.sadd(K.active, "p1", "p2", "p3")
    cache = AnswerCache(redis_client, batched=batched)
    found = cache.lookup("u1", digest(request()), exclude_out_of_stock=True, model_version=MODEL)
    assert found.payload is None and found.field.endswith(f":{MODEL}:{digest(request())}")
    cache.store("u1", found.field, answer().SerializeToString(), ["p1", "p2"], MODEL)
    yield cache
    cache.close()


def gateway_lookup(cache: AnswerCache, req: pb.RecommendRequest | None = None) -> pb.RecommendResponse | None:
    """As the gateway looks: no model version of its own, the one the recommender says it serves."""
    req = req or request()
    found = cache.lookup(req.user_id, digest(req), exclude_out_of_stock=req.filters.exclude_out_of_stock)
    return pb.RecommendResponse.FromString(found.payload) if found.payload is not None else None


def test_a_stored_answer_is_found_by_the_recommender_and_the_gateway(cache, redis_client):
    found = cache.lookup("u1", digest(request()), exclude_out_of_stock=True, model_version=MODEL)
    assert pb.RecommendResponse.FromString(found.payload) == answer()
    assert gateway_lookup(cache) == answer()
    assert redis_client.get(K.serving) == MODEL
    assert 0 < redis_client.ttl(K.answers("u1")) <= ANSWER_CACHE_SECONDS


def test_another_request_or_user_finds_nothing(cache):
    assert gateway_lookup(cache, request(category="shoes")) is None
    assert gateway_lookup(cache, request(user="u2")) is None
    other_k = request()
    other_k.k = 3
    assert gateway_lookup(cache, other_k) is None


def test_the_users_next_event_makes_the_answer_stale(cache, redis_client):
    redis_client.incrby(K.user_version("u1"), 1)  # what the consumer does with each of u1's events
    assert gateway_lookup(cache) is None


def test_a_new_model_makes_the_answer_stale(cache, redis_client):
    cache.announce("hybrid-v2")
    assert gateway_lookup(cache) is None
    assert cache.lookup("u1", digest(request()), exclude_out_of_stock=True, model_version="hybrid-v2").payload is None
    assert cache.lookup("u1", digest(request()), exclude_out_of_stock=True, model_version=MODEL).payload is not None


def test_no_known_serving_model_means_no_answer_for_the_gateway(cache, redis_client):
    redis_client.delete(K.serving)
    found = cache.lookup("u1", digest(request()), exclude_out_of_stock=True)
    assert found.payload is None and found.field == ""


def test_a_product_taken_off_sale_makes_the_answer_stale(cache, redis_client):
    redis_client.srem(K.active, "p2")
    assert gateway_lookup(cache) is None


def test_stock_is_checked_only_when_the_request_excludes_products_out_of_stock(cache, redis_client):
    redis_client.hset(K.stock, "p1", 0)  # a level without a count time: never counted, so not "out"
    assert gateway_lookup(cache) == answer()
    redis_client.hset(K.stock_counted_at, "p1", 1.0)
    assert gateway_lookup(cache) is None
    in_stock_or_not = request(exclude_out_of_stock=False)
    found = cache.lookup("u1", digest(in_stock_or_not), exclude_out_of_stock=False, model_version=MODEL)
    cache.store("u1", found.field, answer().SerializeToString(), ["p1", "p2"], MODEL)
    assert gateway_lookup(cache, in_stock_or_not) == answer()
    redis_client.hset(K.stock, "p1", 3)
    assert gateway_lookup(cache) == answer()


def test_product_ids_of_any_shape_round_trip(redis_client, batched):
    odd = ['p"1', "p,2 ü", "p\\3"]
    redis_client.sadd(K.active, *odd)
    cache = AnswerCache(redis_client, batched=batched)
    found = cache.lookup("u9", digest(request("u9")), exclude_out_of_stock=True, model_version=MODEL)
    cache.store("u9", found.field, b"\x00\xff binary", odd, MODEL)
    again = cache.lookup("u9", digest(request("u9")), exclude_out_of_stock=True)
    assert again.payload == b"\x00\xff binary"
    redis_client.srem(K.active, "p\\3")
    assert cache.lookup("u9", digest(request("u9")), exclude_out_of_stock=True).payload is None
    cache.close()


OLD, NEW = "hybrid-20261207T100000Z-aaaaaa", "hybrid-20261207T110000Z-bbbbbb"


def test_a_newer_model_keeps_the_answers_of_the_one_it_replaced_until_they_expire(redis_client):
    """Retraining must not turn every cached answer into a computed one at the same instant (issue #22 item 7):
    the gateway keeps serving the replaced version's answers for their remaining life, the recommender computes
    the new model's; a rollback to an older version stops the newer one's answers at once."""
    redis_client.sadd(K.active, "p1", "p2")
    cache = AnswerCache(redis_client)
    try:
        cache.announce(OLD)
        field = cache.lookup("u1", digest(request()), exclude_out_of_stock=True, model_version=OLD).field
        cache.store("u1", field, answer().SerializeToString(), ["p1", "p2"], OLD)
        cache.announce(NEW)
        assert redis_client.get(K.serving) == NEW and redis_client.get(K.previous) == OLD
        assert 0 < redis_client.ttl(K.previous) <= ANSWER_CACHE_SECONDS
        found = cache.lookup("u1", digest(request()), exclude_out_of_stock=True)
        assert found.payload is not None and found.field.endswith(f":{NEW}:{digest(request())}")
        # the recommender, asking for its own version, computes the new model's answer
        assert cache.lookup("u1", digest(request()), exclude_out_of_stock=True, model_version=NEW).payload is None
        # still checked like any cached answer: a product taken off sale makes it stale
        redis_client.srem(K.active, "p2")
        assert gateway_lookup(cache) is None
        redis_client.sadd(K.active, "p2")
        # a rollback to the older version: the newer one's answers stop at once
        field = cache.lookup("u1", digest(request()), exclude_out_of_stock=True, model_version=NEW).field
        cache.store("u1", field, answer().SerializeToString(), ["p1", "p2"], NEW)
        cache.announce(OLD)
        assert redis_client.get(K.previous) is None
        redis_client.hdel(K.answers("u1"), *[f for f in redis_client.hkeys(K.answers("u1")) if OLD in f])
        assert gateway_lookup(cache) is None
    finally:
        cache.close()
        redis_client.delete(K.previous, K.serving, K.answers("u1"), K.active)
