"""The gateway's recommender and admin routes against fake gRPC services (real servers, in process):
query parameters become the right proto fields, bad input is a 400 before any call, gRPC codes
become the right problems, jobs are routed by their id's prefix."""

from __future__ import annotations

import json
import re
from concurrent import futures
from urllib.parse import quote

import grpc
import pytest
from google.protobuf import descriptor_pool

from gateway.app import close_app, create_app
from gateway.backends import _RETRY_POLICY
from gateway.json import reply_json
from gateway.policy import NOT_FOUND_DETAIL
from protos import (
    chatbot_pb2_grpc,
    common_pb2,
    forecasting_pb2_grpc,
    recommender_pb2,
    recommender_pb2_grpc,
    vision_pb2,
    vision_pb2_grpc,
)
from services.common.settings import SERVICE_NAMES, Settings
from tests.support import TEST_ADMIN_KEY, TEST_KEYS, assert_problem, free_port, key_id_of, staff

pb = recommender_pb2


class Fake:
    """What one fake service was asked, and how it answers: ``errors[method] = (code, details)``
    makes it abort, otherwise ``replies[method](request)`` answers."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[tuple[str, object]] = []
        self.errors: dict[str, tuple[grpc.StatusCode, str]] = {}
        self.replies = {
            "Train": lambda r: job(f"{name}-0f1c2a9e", common_pb2.JOB_STATE_QUEUED, model=r.model),
            "GetJob": lambda r: job(r.job_id, common_pb2.JOB_STATE_RUNNING, progress=0.25),
        }

    def handle(self, method: str, request, context):
        self.calls.append((method, request))
        if method in self.errors:
            context.abort(*self.errors[method])
        return self.replies[method](request)

    def only(self, method: str):
        """The one request this fake got, which must have been a call of ``method``."""
        assert [m for m, _ in self.calls] == [method], self.calls
        return self.calls[0][1]

    def reset(self) -> None:
        self.calls.clear()
        self.errors.clear()


def job(job_id: str, state: int, **fields) -> common_pb2.Job:
    message = common_pb2.Job(job_id=job_id, service=job_id.split("-")[0], state=state, **fields)
    message.created_at.FromJsonString("2026-11-28T10:00:00Z")
    return message


def _delegating(base, fake: Fake, methods: tuple[str, ...]):
    """A servicer subclass of ``base`` whose ``methods`` go to ``fake``; the others keep the generated
    default, which answers UNIMPLEMENTED, as a service that cannot do it yet does."""
    attrs = {m: (lambda self, request, context, _m=m: fake.handle(_m, request, context)) for m in methods}
    return type(f"Fake{base.__name__}", (base,), attrs)()


ITEM = pb.RecommendedItem(product_id="p7", score=0.9, reason="similar to what you viewed", title="Tote",
                          category="bags", price=199.0, currency="CNY")


def recommender_replies(fake: Fake) -> None:
    fake.replies.update(
        Recommend=lambda r: pb.RecommendResponse(user_id=r.user_id, items=[ITEM], model_version="hybrid-v3",
                                                 strategy=r.strategy, cold_start=True),
        Similar=lambda r: pb.SimilarResponse(product_id=r.product_id, items=[ITEM], model_version="knn-v2",
                                             strategy=r.strategy),
        UserProfile=lambda r: _user_profile(r.user_id),
        ItemProfile=lambda r: pb.ItemProfileResponse(
            product_id=r.product_id, title="Tote", in_stock=True, event_counts={"view": 12, "purchase": 3},
            unique_users=9, popularity_rank=4, frequently_bought_with=[ITEM],
        ),
    )


def _user_profile(user_id: str) -> pb.UserProfileResponse:
    reply = pb.UserProfileResponse(
        user_id=user_id, purchase_frequency=1.5, favourite_categories=[pb.WeightedName(name="bags", weight=0.6)],
        price_band=pb.PriceBand(min=10, median=99, max=300, currency="CNY"),
        recent_items=[pb.RecentItem(product_id="p7", event_type="view")],
        event_counts={"view": 31, "purchase": 2}, orders=2, total_spend=398.0, currency="CNY",
    )
    reply.recent_items[0].occurred_at.FromJsonString("2026-11-28T10:00:00Z")
    reply.first_seen.FromJsonString("2026-10-01T08:30:00Z")
    return reply


SERVICERS = {
    "recommender": (recommender_pb2_grpc.RecommenderServicer, recommender_pb2_grpc.add_RecommenderServicer_to_server,
                    ("Recommend", "Similar", "UserProfile", "ItemProfile", "Train", "GetJob")),
    "chatbot": (chatbot_pb2_grpc.AssistantServicer, chatbot_pb2_grpc.add_AssistantServicer_to_server,
                ("Train", "GetJob")),
    # vision keeps the generated Train: UNIMPLEMENTED, as a service that cannot train yet
    "vision": (vision_pb2_grpc.VisionServicer, vision_pb2_grpc.add_VisionServicer_to_server, ("GetJob",)),
    "forecasting": (forecasting_pb2_grpc.ForecastingServicer, forecasting_pb2_grpc.add_ForecastingServicer_to_server,
                    ("Train", "GetJob")),
}


@pytest.fixture(scope="module")
def fakes():
    """One real gRPC server per service, each on its own port."""
    out, servers = {}, []
    for name, (base, add, methods) in SERVICERS.items():
        fake = Fake(name)
        if name == "recommender":
            recommender_replies(fake)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        add(_delegating(base, fake, methods), server)
        fake.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        out[name] = fake
        servers.append(server)
    yield out
    for server in servers:
        server.stop(grace=None)


def _settings(ports: dict[str, int]) -> Settings:
    return Settings(
        gateway_api_keys=TEST_KEYS,
        redis_url=f"redis://127.0.0.1:{free_port()}/0", kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
        grpc_deadline_seconds=2.0, log_json=False,
        **{name: {"grpc_port": port, "metrics_port": free_port()} for name, port in ports.items()},
    )


@pytest.fixture
def client(fakes):
    for fake in fakes.values():
        fake.reset()
    app = create_app(_settings({name: fake.port for name, fake in fakes.items()}))
    yield staff(app.test_client())
    close_app(app)


@pytest.fixture
def rec(fakes):
    return fakes["recommender"]



# ------------------------------------------------------------------ GET /v1/users/{id}/recommendations


def test_recommendations_default_to_hybrid_and_the_shop_rules(client, rec):
    reply = client.get("/v1/users/u42/recommendations")
    assert reply.status_code == 200, reply.json
    request = rec.only("Recommend")
    assert (request.user_id, request.k, request.strategy) == ("u42", 10, "hybrid")
    f = request.filters
    assert f.exclude_purchased and f.exclude_out_of_stock
    assert (f.category, list(f.exclude_categories), list(f.exclude_product_ids)) == ("", [], [])
    assert not f.HasField("min_price") and not f.HasField("max_price"), "unset prices must stay unset, not 0"
    assert list(request.session_product_ids) == []


def test_recommendations_translate_every_query_parameter(client, rec):
    query = ("k=5&strategy=item_knn&category=shoes&exclude_categories=bags,%20hats&min_price=0&max_price=99.5"
             "&exclude_purchased=false&exclude_out_of_stock=false&exclude=p1,p2&session=p9,p8,p7")
    reply = client.get(f"/v1/users/u42/recommendations?{query}")
    assert reply.status_code == 200, reply.json
    request = rec.only("Recommend")
    assert (request.user_id, request.k, request.strategy) == ("u42", 5, "item_knn")
    f = request.filters
    assert (f.exclude_purchased, f.exclude_out_of_stock, f.category) == (False, False, "shoes")
    assert list(f.exclude_categories) == ["bags", "hats"]
    assert f.HasField("min_price") and f.min_price == 0.0, "min_price=0 is a filter, not 'unset'"
    assert f.HasField("max_price") and f.max_price == 99.5
    assert list(f.exclude_product_ids) == ["p1", "p2"]
    assert list(request.session_product_ids) == ["p9", "p8", "p7"], "most recent first, order kept"


def test_list_parameters_may_also_be_repeated(client, rec):
    assert client.get("/v1/users/u1/recommendations?exclude=p1&exclude=p2,p3&session=a&session=b").status_code == 200
    request = rec.only("Recommend")
    assert list(request.filters.exclude_product_ids) == ["p1", "p2", "p3"]
    assert list(request.session_product_ids) == ["a", "b"]


def test_fifty_session_products_are_accepted(client, rec):
    ids = ",".join(f"p{i}" for i in range(50))
    assert client.get(f"/v1/users/u1/recommendations?session={ids}").status_code == 200
    assert len(rec.only("Recommend").session_product_ids) == 50


def test_recommendations_answer_with_the_reply(client):
    body = client.get("/v1/users/u42/recommendations?strategy=popular").json
    assert re.fullmatch(r"[0-9a-f]{32}", body.pop("recommendation_id"))  # new for every answer
    assert body == {
        "user_id": "u42", "model_version": "hybrid-v3", "strategy": "popular", "cold_start": True,
        "items": [{"product_id": "p7", "score": 0.9, "reason": "similar to what you viewed", "title": "Tote",
                   "category": "bags", "price": 199.0, "currency": "CNY"}],
    }


TOO_MANY_SESSION_IDS = "session=" + ",".join(f"p{i}" for i in range(51))


@pytest.mark.parametrize("query, location", [
    ("k=0", "k"), ("k=101", "k"), ("strategy=magic", "strategy"),
    ("min_price=50&max_price=10", "max_price"), ("min_price=-1", "min_price"), ("max_price=-0.5", "max_price"),
    ("min_price=nan", "min_price"), (TOO_MANY_SESSION_IDS, "session"), ("exclude_out_of_stock=maybe", "exclude_out_of_stock"),
])
def test_bad_recommendation_queries_are_400s_that_never_reach_the_service(client, rec, query, location):
    body = assert_problem(client.get(f"/v1/users/u1/recommendations?{query}"), 400)
    assert [e["location"] for e in body["errors"]] == [location]
    assert location in body["detail"]
    assert rec.calls == []


def test_min_price_above_max_price_says_so(client):
    body = assert_problem(client.get("/v1/users/u1/recommendations?min_price=50&max_price=10"), 400)
    assert "min_price" in body["detail"] and "50" in body["detail"] and "10" in body["detail"]


def test_a_strategy_the_service_cannot_serve_yet_is_a_501(client, rec):
    rec.errors["Recommend"] = (grpc.StatusCode.UNIMPLEMENTED, "strategy 'hybrid' is not served yet")
    body = assert_problem(client.get("/v1/users/u1/recommendations"), 501)
    assert body["detail"] == "strategy 'hybrid' is not served yet"


def test_the_services_invalid_argument_is_a_400_with_its_reason(client, rec):
    rec.errors["Recommend"] = (grpc.StatusCode.INVALID_ARGUMENT, "unknown category 'zzz'")
    assert assert_problem(client.get("/v1/users/u1/recommendations?category=zzz"), 400)["detail"] == "unknown category 'zzz'"


# ------------------------------------------------------------------ GET /v1/products/{id}/similar


def test_similar_defaults_to_hybrid(client, rec):
    reply = client.get("/v1/products/p1001/similar")
    assert reply.status_code == 200, reply.json
    request = rec.only("Similar")
    assert (request.product_id, request.k, request.strategy) == ("p1001", 10, "hybrid")
    assert request.filters.exclude_out_of_stock and not request.filters.exclude_purchased
    body = reply.json
    assert re.fullmatch(r"[0-9a-f]{32}", body.pop("recommendation_id"))
    assert body == {
        "product_id": "p1001", "model_version": "knn-v2", "strategy": "hybrid",
        "items": [{"product_id": "p7", "score": 0.9, "reason": "similar to what you viewed", "title": "Tote",
                   "category": "bags", "price": 199.0, "currency": "CNY"}],
    }


def test_similar_translates_the_filters(client, rec):
    query = "k=3&strategy=content&category=bags&exclude_categories=shoes&min_price=5&max_price=5&exclude_out_of_stock=false&exclude=p2"
    assert client.get(f"/v1/products/p1001/similar?{query}").status_code == 200
    request = rec.only("Similar")
    assert (request.k, request.strategy) == (3, "content")
    f = request.filters
    assert (f.category, list(f.exclude_categories), f.exclude_out_of_stock) == ("bags", ["shoes"], False)
    assert (f.min_price, f.max_price, list(f.exclude_product_ids)) == (5.0, 5.0, ["p2"])
    assert not request.include_variants  # another size or colour of the product is not "similar"
    rec.reset()
    assert client.get("/v1/products/p1001/similar?include_variants=true").status_code == 200
    assert rec.only("Similar").include_variants


@pytest.mark.parametrize("query, location", [
    ("k=0", "k"), ("k=101", "k"), ("strategy=popular", "strategy"), ("strategy=bpr", "strategy"),
    ("min_price=9&max_price=1", "max_price"), ("max_price=-1", "max_price"),
])
def test_bad_similar_queries_are_400s(client, rec, query, location):
    body = assert_problem(client.get(f"/v1/products/p1/similar?{query}"), 400)
    assert [e["location"] for e in body["errors"]] == [location]
    assert rec.calls == []


def test_similar_to_an_unknown_product_is_a_404(client, rec):
    rec.errors["Similar"] = (grpc.StatusCode.NOT_FOUND, "product 'p404' is not in the catalog")
    body = assert_problem(client.get("/v1/products/p404/similar"), 404)
    assert body["detail"] == "product 'p404' is not in the catalog"
    assert body["type"].endswith("/not-found")


# ------------------------------------------------------------------ profiles


def test_user_profile(client, rec):
    reply = client.get("/v1/users/u42/profile")
    assert reply.status_code == 200, reply.json
    assert rec.only("UserProfile").user_id == "u42"
    body = reply.json
    assert body["event_counts"] == {"view": 31, "purchase": 2}, "int64 values are JSON numbers"
    assert body["orders"] == 2
    assert body["first_seen"] == "2026-10-01T08:30:00Z" and "last_seen" not in body
    assert body["recent_items"] == [{"product_id": "p7", "event_type": "view", "occurred_at": "2026-11-28T10:00:00Z"}]
    assert body["favourite_brands"] == [] and body["price_band"]["median"] == 99


def test_item_profile(client, rec):
    body = client.get("/v1/products/p7/profile").json
    assert rec.only("ItemProfile").product_id == "p7"
    assert (body["unique_users"], body["popularity_rank"], body["in_stock"]) == (9, 4, True)
    assert body["event_counts"] == {"view": 12, "purchase": 3}
    assert body["frequently_bought_with"][0]["product_id"] == "p7"
    assert body["tags"] == [] and body["rating_count"] == 0


@pytest.mark.parametrize("path, method, detail", [
    # a shopper's 404 reads like "not yours" whatever the service said, so ids cannot be probed
    ("/v1/users/nobody/profile", "UserProfile", NOT_FOUND_DETAIL),
    ("/v1/products/p404/profile", "ItemProfile", "never seen"),
])
def test_unknown_profiles_are_404s(client, rec, path, method, detail):
    rec.errors[method] = (grpc.StatusCode.NOT_FOUND, "never seen")
    assert assert_problem(client.get(path), 404)["detail"] == detail


# ------------------------------------------------------------------ POST /v1/admin/train/{service}


def test_train_queues_a_job_and_points_to_it(client, rec):
    reply = client.post("/v1/admin/train/recommender", json={"model": "als", "params": {"factors": "64"}})
    assert reply.status_code == 202, reply.json
    assert reply.headers["Location"] == "/v1/admin/jobs/recommender-0f1c2a9e"
    assert reply.json["job_id"] == "recommender-0f1c2a9e"
    assert reply.json["state"] == "queued"
    assert reply.json["created_at"] == "2026-11-28T10:00:00Z"
    request = rec.only("Train")
    assert (request.model, dict(request.params), request.requested_by) == ("als", {"factors": "64"}, key_id_of(TEST_ADMIN_KEY))


@pytest.mark.parametrize("kwargs", [{}, {"data": b"", "content_type": "application/json"}, {"json": {}}])
def test_train_without_a_body_trains_everything(client, fakes, kwargs):
    reply = client.post("/v1/admin/train/forecasting", **kwargs)
    assert reply.status_code == 202, reply.json
    assert reply.headers["Location"] == "/v1/admin/jobs/forecasting-0f1c2a9e"
    request = fakes["forecasting"].only("Train")
    assert (request.model, dict(request.params)) == ("", {})


@pytest.mark.parametrize("kwargs", [
    {"json": {"params": {"factors": 64}}},
    {"json": {"model": "als", "parms": {}}},
    {"json": ["als"]},
    {"data": b"{not json", "content_type": "application/json"},
    {"data": b"model=als", "content_type": "application/x-www-form-urlencoded"},
])
def test_a_bad_train_body_is_a_400(client, rec, kwargs):
    assert_problem(client.post("/v1/admin/train/recommender", **kwargs), 400)
    assert rec.calls == []


def test_training_an_unknown_service_is_a_404_naming_the_services(client, fakes):
    body = assert_problem(client.post("/v1/admin/train/billing", json={}), 404)
    assert all(name in body["detail"] for name in SERVICE_NAMES)
    assert all(fake.calls == [] for fake in fakes.values())


def test_a_service_that_cannot_train_yet_is_a_501(client, fakes):
    assert_problem(client.post("/v1/admin/train/vision"), 501)
    assert fakes["vision"].calls == []  # the generated default answered, not the fake


def test_train_is_never_retried(client, rec):
    rec.errors["Train"] = (grpc.StatusCode.UNAVAILABLE, "warming up")
    body = assert_problem(client.post("/v1/admin/train/recommender"), 503)
    assert "recommender" in body["detail"]
    assert len(rec.calls) == 1


# ------------------------------------------------------------------ GET /v1/admin/jobs/{id}


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_jobs_are_routed_by_their_prefix(client, fakes, service):
    job_id = f"{service}-6f1c-2a9e"
    reply = client.get(f"/v1/admin/jobs/{job_id}")
    assert reply.status_code == 200, reply.json
    assert fakes[service].only("GetJob").job_id == job_id
    assert all(fake.calls == [] for name, fake in fakes.items() if name != service)
    assert reply.json["state"] == "running"
    assert reply.json["job_id"] == job_id and reply.json["progress"] == 0.25
    assert "started_at" not in reply.json and reply.json["metrics"] == {}


@pytest.mark.parametrize("job_id", ["billing-1234", "recommender", "recommender_1", "-recommender"])
def test_a_job_of_no_known_service_is_a_404(client, fakes, job_id):
    body = assert_problem(client.get(f"/v1/admin/jobs/{quote(job_id)}"), 404)
    assert "recommender" in body["detail"]
    assert all(fake.calls == [] for fake in fakes.values())


def test_an_unknown_job_of_a_known_service_is_a_404(client, rec):
    rec.errors["GetJob"] = (grpc.StatusCode.NOT_FOUND, "no job recommender-zzz")
    assert assert_problem(client.get("/v1/admin/jobs/recommender-zzz"), 404)["detail"] == "no job recommender-zzz"


def test_a_service_that_is_down_is_named_in_the_503():
    app = create_app(_settings({name: free_port() for name in SERVICE_NAMES}))
    try:
        client = staff(app.test_client())
        assert "chatbot" in assert_problem(client.get("/v1/admin/jobs/chatbot-1"), 503)["detail"]
        assert "forecasting" in assert_problem(client.post("/v1/admin/train/forecasting"), 503)["detail"]
        assert "recommender" in assert_problem(client.get("/v1/products/p1/similar"), 503)["detail"]
    finally:
        close_app(app)


# ------------------------------------------------------------------ JSON mapping, retries, spec


def test_enums_are_lower_case_without_their_prefix():
    assert reply_json(job("vision-1", common_pb2.JOB_STATE_SUCCEEDED))["state"] == "succeeded"
    assert reply_json(job("vision-1", common_pb2.JOB_STATE_FAILED))["state"] == "failed"
    assert reply_json(vision_pb2.VerifyResponse(verdict=vision_pb2.VERDICT_AUTHENTIC))["verdict"] == "authentic"
    assert reply_json(common_pb2.Job(job_id="x-1", state=99))["state"] == 99, "a value unknown to the stubs stays as is"


def test_the_retry_policy_names_real_reads_and_never_train():
    names = [n for config in _RETRY_POLICY["methodConfig"] for n in config["name"]]
    pool = descriptor_pool.Default()
    for name in names:
        assert pool.FindServiceByName(name["service"]).methods_by_name[name["method"]]
    assert not any(n["method"] == "Train" for n in names)
    services = {n["service"] for n in names if n["method"] == "GetJob"}
    assert services == {"shopai.recommender.v1.Recommender", "shopai.chatbot.v1.Assistant",
                        "shopai.vision.v1.Vision", "shopai.forecasting.v1.Forecasting"}
    assert json.loads(json.dumps(_RETRY_POLICY)) == _RETRY_POLICY


def test_the_routes_are_in_the_spec(client):
    spec = client.get("/openapi.json").json
    paths = spec["paths"]

    def params(path: str, method: str = "get") -> set[str]:
        return {p["name"] for p in paths[path][method].get("parameters", [])}

    assert params("/v1/users/{user_id}/recommendations") >= {
        "user_id", "k", "strategy", "category", "exclude_categories", "min_price", "max_price", "exclude_purchased",
        "exclude_out_of_stock", "exclude", "session"}
    assert params("/v1/products/{product_id}/similar") >= {
        "product_id", "k", "strategy", "category", "exclude_categories", "min_price", "max_price",
        "exclude_out_of_stock", "exclude"}
    assert "exclude_purchased" not in params("/v1/products/{product_id}/similar")
    assert params("/v1/users/{user_id}/profile") == {"user_id"}
    assert params("/v1/products/{product_id}/profile") == {"product_id"}
    train = paths["/v1/admin/train/{service}"]["post"]
    assert params("/v1/admin/train/{service}", "post") == {"service"}
    assert train["tags"] == ["admin"] and "202" in train["responses"]
    assert "Location" in train["responses"]["202"]["headers"]
    assert train["requestBody"]["required"] is False
    assert "API key" in train["description"]
    jobs = paths["/v1/admin/jobs/{job_id}"]["get"]
    assert jobs["tags"] == ["admin"] and "API key" in jobs["description"]
    assert "admin" in {t["name"] for t in spec["tags"]}
    assert paths["/v1/users/{user_id}/recommendations"]["get"]["tags"] == ["recommendations"]
