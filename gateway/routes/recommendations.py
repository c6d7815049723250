"""Recommendation routes: REST -> recommender gRPC (recommendations, similar products, profiles).

Every recommendation answer carries a new ``recommendation_id`` and is recorded as served (an impression,
gateway/impressions.py); a shopper in the running experiment gets their arm's strategy when the request names
none, and the answer says which (``experiment``; gateway/routes/experiments.py).

When the recommender cannot answer (UNAVAILABLE or DEADLINE_EXCEEDED, after the channel's own retries),
recommendations degrade to the shop's popular products read from the recommender's Redis projection,
marked by ``strategy: "popular_fallback"`` and the ``X-ShopAI-Degraded: recommender`` header."""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

import grpc
import redis
from flask import current_app
from flask import request as flask_request
from flask_openapi3 import APIBlueprint, Tag
from prometheus_client import Counter
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from gateway.json import reply_json
from gateway.problems import Problem
from gateway.routes import QueryModel
from gateway.routes.experiments import arm_for
from protos import recommender_pb2 as pb
from services.common.attribution import new_recommendation_id
from services.common.logging import get_logger
from services.common.recommendations import (
    MAX_K,
    MAX_SESSION_PRODUCTS,
    SIMILAR_STRATEGIES,
    STRATEGIES,
    AnswerCache,
    Filters,
    popular_products,
    request_digest,
)

log = get_logger(__name__)

recommendations = APIBlueprint(
    "recommendations", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="recommendations", description="Personalised recommendations, similar products, profiles")],
)

Strategy = Literal[STRATEGIES]  # type: ignore[valid-type]
SimilarStrategy = Literal[SIMILAR_STRATEGIES]  # type: ignore[valid-type]

MAX_EXCLUDED_PRODUCTS = 500
MAX_EXCLUDED_CATEGORIES = 100

# The degraded answer (see the module's docstring).
DEGRADED_HEADER = "X-ShopAI-Degraded"
FALLBACK_STRATEGY = "popular_fallback"
FALLBACK_VERSION = "fallback"
FALLBACK_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
ANSWER_CACHE = Counter(
    "shopai_gateway_answer_cache_total",
    "Recommendation requests looked up in the recommender's answer cache, by outcome (hit, miss, error).",
    ["outcome"],
)
DEGRADED_ANSWERS = Counter(
    "shopai_gateway_degraded_answers_total",
    "Answers the gateway gave without the backend that should answer them.", ["backend"],
)


# ------------------------------------------------------------------ request models


def _comma_separated(value: Any) -> Any:
    """``a,b`` and repeated parameters (``x=a&x=b``) alike become ``["a", "b"]``; blanks are dropped."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        return [part.strip() for item in value for part in str(item).split(",") if part.strip()]
    return value


Id = Annotated[str, Field(min_length=1, max_length=128)]
IdList = Annotated[list[Id], BeforeValidator(_comma_separated)]


class UserPath(BaseModel):
    user_id: str = Field(min_length=1, max_length=128)


class ProductPath(BaseModel):
    product_id: str = Field(min_length=1, max_length=128)


class FilterQuery(QueryModel):
    """Business rules applied after scoring (recommender.proto ``Filters``)."""

    category: str | None = Field(None, max_length=128, description="only products of this category")
    exclude_categories: IdList = Field(
        [], max_length=MAX_EXCLUDED_CATEGORIES,
        description=f"categories to leave out, comma-separated (at most {MAX_EXCLUDED_CATEGORIES})",
    )
    min_price: float | None = Field(None, ge=0, allow_inf_nan=False, description="only products priced at least this")
    max_price: float | None = Field(None, ge=0, allow_inf_nan=False, description="only products priced at most this")
    exclude_out_of_stock: bool = Field(True, description="leave out products whose last known stock is 0")
    exclude: IdList = Field(
        [], max_length=MAX_EXCLUDED_PRODUCTS,
        description=f"product ids to leave out, comma-separated, e.g. the cart (at most {MAX_EXCLUDED_PRODUCTS})",
    )

    @field_validator("max_price")
    @classmethod
    def _price_range(cls, value: float | None, info: ValidationInfo) -> float | None:
        low = info.data.get("min_price")
        if value is not None and low is not None and low > value:
            raise PydanticCustomError(
                "price_range", "max_price ({max_price}) must not be below min_price ({min_price})",
                {"max_price": f"{value:g}", "min_price": f"{low:g}"},
            )
        return value

    def filters(self, exclude_purchased: bool = False) -> pb.Filters:
        prices = {name: getattr(self, name) for name in ("min_price", "max_price") if getattr(self, name) is not None}
        return pb.Filters(
            exclude_purchased=exclude_purchased, exclude_out_of_stock=self.exclude_out_of_stock,
            exclude_categories=self.exclude_categories, category=self.category or "",
            exclude_product_ids=self.exclude, **prices,
        )


class RecommendQuery(FilterQuery):
    k: int = Field(10, ge=1, le=MAX_K, description="how many items")
    strategy: Strategy = Field("hybrid", description="which model answers")  # type: ignore[valid-type]
    exclude_purchased: bool = Field(True, description="leave out what the user bought or rated (any rating); "
                                   "false lets them come back (consumables)")
    session: IdList = Field(
        [], max_length=MAX_SESSION_PRODUCTS,
        description=f"product ids viewed in the current session, most recent first, comma-separated "
                    f"(at most {MAX_SESSION_PRODUCTS}); they drive the answer for new or anonymous visitors",
    )


class SimilarQuery(FilterQuery):
    k: int = Field(10, ge=1, le=MAX_K, description="how many items")
    strategy: SimilarStrategy = Field("hybrid", description="which model answers")  # type: ignore[valid-type]
    include_variants: bool = Field(False, description="also the product's other sizes and colours (products "
                                                      "sharing its attributes.item_group_id)")


# ------------------------------------------------------------------ response models (for the spec)


class Item(BaseModel):
    product_id: str
    score: float
    reason: str
    title: str = ""
    category: str = ""
    price: float = 0.0
    currency: str = ""


class ExperimentArm(BaseModel):
    id: str = Field(description="the experiment's id (GET /v1/admin/experiments/{experiment_id})")
    arm: str = Field(description="the arm this shopper is in")


class Recommendations(BaseModel):
    model_config = ConfigDict(openapi_extra={  # type: ignore[typeddict-unknown-key]
        "headers": {DEGRADED_HEADER: {
            "description": "`recommender` when the recommender was unavailable and the answer is the shop's "
                           "popular products (`strategy: popular_fallback`); absent otherwise",
            "schema": {"type": "string", "enum": ["recommender"]},
        }},
    })

    user_id: str
    items: list[Item]
    model_version: str
    strategy: str = Field(description="the strategy that actually answered (may be a fallback)")
    cold_start: bool = False
    recommendation_id: str = Field(description="32 hex digits, new for every answer: send it as "
                                               "`payload.recommendation_id` with the clicks, add-to-carts and "
                                               "purchases of its products (POST /v1/events)")
    experiment: ExperimentArm | None = Field(None, description="present when the shopper is in the running "
                                                               "experiment and the request named no strategy")


class SimilarProducts(BaseModel):
    product_id: str
    items: list[Item]
    model_version: str
    strategy: str = Field(description="the strategy that actually answered")
    recommendation_id: str = Field(description="32 hex digits, new for every answer (as for recommendations)")


class WeightedName(BaseModel):
    name: str
    weight: float


class PriceBand(BaseModel):
    min: float
    median: float
    max: float
    currency: str


class RecentItem(BaseModel):
    product_id: str
    event_type: str
    occurred_at: str | None = Field(None, description="RFC 3339")


class RecommenderUserProfile(BaseModel):
    user_id: str
    purchase_frequency: float = Field(description="purchases per 30 days")
    favourite_categories: list[WeightedName]
    favourite_brands: list[WeightedName]
    price_band: PriceBand | None = None
    recent_items: list[RecentItem]
    event_counts: dict[str, int]
    first_seen: str | None = Field(None, description="RFC 3339")
    last_seen: str | None = Field(None, description="RFC 3339")
    orders: int
    total_spend: float
    currency: str


class RecommenderItemProfile(BaseModel):
    product_id: str
    title: str
    category: str
    brand: str
    price: float
    currency: str
    tags: list[str]
    in_stock: bool
    event_counts: dict[str, int]
    unique_users: int
    conversion_rate: float
    average_rating: float
    rating_count: int
    popularity_rank: int = Field(description="1 = most popular; 0 = no interactions")
    last_interaction_at: str | None = Field(None, description="RFC 3339")
    frequently_bought_with: list[Item]


# ------------------------------------------------------------------ routes


def _recommender() -> Any:
    return current_app.extensions["shopai.backends"].stub("recommender")


def _deadline() -> float:
    return current_app.config["GRPC_DEADLINE"]


@recommendations.get(
    "/users/<user_id>/recommendations",
    responses={200: Recommendations, 400: Problem, 501: Problem, 503: Problem, 504: Problem},
)
def recommend(path: UserPath, query: RecommendQuery) -> tuple[dict, int] | tuple[dict, int, dict[str, str]]:
    """Ranked products for a user, each with a reason.

    Unknown users get a cold-start answer (from `session`, then popularity); `strategy` in the answer
    says which strategy actually answered. When the recommender is unavailable or too slow, the answer is
    the shop's popular products with `strategy: popular_fallback` and the header `X-ShopAI-Degraded:
    recommender` (503/504 only when Redis cannot be read either).

    Every answer has a new `recommendation_id`. A shopper in the running experiment (POST
    /v1/admin/experiments) gets their arm's strategy when the request names none, and `experiment` says
    which arm."""
    strategy = query.strategy
    arm = None if "strategy" in flask_request.args else arm_for(path.user_id)
    if arm is not None:
        strategy = arm.strategy
    request = pb.RecommendRequest(
        user_id=path.user_id, k=query.k, strategy=strategy,
        filters=query.filters(exclude_purchased=query.exclude_purchased),
        session_product_ids=query.session, model_version=(arm.model_version or "") if arm else "",
    )
    cached = _cached_answer(request)
    if cached is not None:
        prefix, served_strategy, version, pids = _cached_parts(cached)
        rid = new_recommendation_id()
        extra = {"recommendation_id": rid, **({"experiment": arm.answer()} if arm else {})}
        body = prefix + b"," + current_app.json.dumps(extra)[1:].encode() + b"\n"
        _record(rid, "user", path.user_id, served_strategy, version, list(pids), arm)
        response = current_app.response_class(body, status=200, mimetype=current_app.json.mimetype)
        response.headers["X-ShopAI-Cache"] = "hit"  # served from the recommender's answer cache
        return response
    try:
        reply = _recommender().Recommend(request, timeout=_deadline())
    except grpc.RpcError as exc:
        body, status, headers = _degraded(exc, path.user_id, query)
        return _served(body, "user", path.user_id, arm), status, headers
    return _served(reply_json(reply), "user", path.user_id, arm), 200


def _served(body: dict[str, Any], surface: str, user: str, arm: Any = None) -> dict[str, Any]:
    """The answer with its new ``recommendation_id`` (and experiment arm), recorded as served."""
    rid = new_recommendation_id()
    body["recommendation_id"] = rid
    if arm is not None:
        body["experiment"] = arm.answer()
    _record(rid, surface, user, body.get("strategy", ""), body.get("model_version", ""),
            [item["product_id"] for item in body.get("items", [])], arm)
    return body


def _record(rid: str, surface: str, user: str, strategy: str, version: str, pids: list[str], arm: Any) -> None:
    payload = {"recommendation_id": rid, "user_id": user, "strategy": strategy, "model_version": version,
               "product_ids": pids, "surface": surface}
    if arm is not None:
        payload.update(experiment_id=arm.experiment_id, arm=arm.name)
    impressions = current_app.extensions.get("shopai.impressions")
    if impressions is not None:
        impressions.record(payload)


class SessionRecommendQuery(FilterQuery):
    k: int = Field(10, ge=1, le=MAX_K, description="how many items")
    strategy: Strategy = Field("hybrid", description="which model answers")  # type: ignore[valid-type]
    session: IdList = Field(
        [], max_length=MAX_SESSION_PRODUCTS,
        description=f"product ids viewed in the current visit, most recent first, comma-separated "
                    f"(at most {MAX_SESSION_PRODUCTS}); without any, the shop's popular products",
    )


@recommendations.get(
    "/recommendations",
    responses={200: Recommendations, 400: Problem, 501: Problem, 503: Problem, 504: Problem},
)
def recommend_for_visitor(query: SessionRecommendQuery) -> tuple[dict, int] | tuple[dict, int, dict[str, str]]:
    """Recommendations for a visitor nobody knows: from the products viewed in this visit (`session`), else
    the shop's popular products. Public: it uses no shopper's history. When the recommender is unavailable,
    the shop's popular products with `X-ShopAI-Degraded: recommender`."""
    request = pb.RecommendRequest(user_id="", k=query.k, strategy=query.strategy,
                                  filters=query.filters(exclude_purchased=False), session_product_ids=query.session)
    try:
        reply = _recommender().Recommend(request, timeout=_deadline())
    except grpc.RpcError as exc:
        body, status, headers = _degraded(exc, "", query)
        return _served(body, "visitor", ""), status, headers
    return _served(reply_json(reply), "visitor", ""), 200


def _degraded(exc: grpc.RpcError, user_id: str, query: RecommendQuery | SessionRecommendQuery) -> tuple[dict, int, dict[str, str]]:
    """The popular fallback for a recommender that is down or too slow; other errors are raised as they are."""
    code = exc.code() if hasattr(exc, "code") else None
    if code not in FALLBACK_CODES:
        raise exc
    try:
        body = popular_fallback(user_id, query)
    except redis.RedisError as redis_exc:
        log.warning("recommender_fallback_failed", grpc_code=code.name, error=str(redis_exc))
        raise exc from redis_exc  # the recommender's problem (503/504), as without a fallback
    DEGRADED_ANSWERS.labels("recommender").inc()
    return body, 200, {DEGRADED_HEADER: "recommender"}


@functools.lru_cache(maxsize=2048)
def _cached_parts(payload: bytes) -> tuple[bytes, str, str, tuple[str, ...]]:
    """The JSON body of a cached answer, as every other route writes it, without its closing brace (the
    answer's own ``recommendation_id`` follows), and its strategy, model version and products: converted once
    per distinct answer, because ``MessageToDict`` and the JSON encoding are most of the cost of serving one."""
    body = reply_json(pb.RecommendResponse.FromString(payload))
    text = current_app.json.dumps(body)
    return (text[:text.rindex("}")].encode(), body["strategy"], body["model_version"],
            tuple(item["product_id"] for item in body["items"]))


def _cached_answer(request: pb.RecommendRequest) -> bytes | None:
    """The recommender's valid cached answer to exactly this request, if Redis holds one (it is the answer
    the recommender would give: same user version, serving model, request, products still on sale and in
    stock); None sends the request to the recommender."""
    answers: AnswerCache | None = current_app.extensions.get("shopai.answers")
    if answers is None or not request.user_id or request.model_version:
        return None  # an experiment arm's stored version is never cached
    try:
        found = answers.lookup(request.user_id, request_digest(request),
                               exclude_out_of_stock=request.filters.exclude_out_of_stock)
    except redis.RedisError as exc:
        ANSWER_CACHE.labels("error").inc()
        log.debug("answer_cache_unavailable", error=str(exc))
        return None
    if found.payload is None:
        ANSWER_CACHE.labels("miss").inc()
        return None
    ANSWER_CACHE.labels("hit").inc()
    return found.payload


def popular_fallback(user_id: str, query: RecommendQuery | SessionRecommendQuery) -> dict[str, Any]:
    """The shop's most popular products from the recommender's projection in Redis (read only), with the
    request's filters applied as the recommender applies them: live catalog only, category, excluded
    categories and ids, price bounds, the user's purchases (``exclude_purchased``) and stock."""
    filters = Filters(exclude=set(query.exclude), category=query.category or "",
                      exclude_categories=set(query.exclude_categories),
                      min_price=query.min_price, max_price=query.max_price)
    purchases_of = user_id if user_id and getattr(query, "exclude_purchased", False) else ""
    found = popular_products(current_app.extensions["shopai.redis"], query.k, filters,
                             exclude_out_of_stock=query.exclude_out_of_stock, purchases_of=purchases_of)
    where = f"in {query.category}" if query.category else "in the shop"
    reason = f"popular {where} (the recommender is unavailable)"
    items = [{"product_id": pid, "score": score, "reason": reason, "title": details.get("title", ""),
              "category": details.get("category", ""), "price": float(details.get("price") or 0.0),
              "currency": details.get("currency", "")}
             for pid, score, details in found]
    return {"user_id": user_id, "items": items, "model_version": FALLBACK_VERSION,
            "strategy": FALLBACK_STRATEGY, "cold_start": False}


@recommendations.get(
    "/products/<product_id>/similar",
    responses={200: SimilarProducts, 400: Problem, 404: Problem, 501: Problem, 503: Problem, 504: Problem},
)
def similar(path: ProductPath, query: SimilarQuery) -> tuple[dict, int]:
    """Products similar to one product (item-to-item neighbours), never the product itself.

    No fallback: when the recommender is unavailable this is a 503 (504 when it is too slow)."""
    reply = _recommender().Similar(
        pb.SimilarRequest(product_id=path.product_id, k=query.k, strategy=query.strategy, filters=query.filters(),
                          include_variants=query.include_variants),
        timeout=_deadline(),
    )
    return _served(reply_json(reply), "similar", ""), 200


@recommendations.get(
    "/users/<user_id>/profile",
    responses={200: RecommenderUserProfile, 400: Problem, 404: Problem, 501: Problem, 503: Problem, 504: Problem},
)
def user_profile(path: UserPath) -> tuple[dict, int]:
    """What the recommender has learned about a user (404 when the user was never seen)."""
    reply = _recommender().UserProfile(pb.UserProfileRequest(user_id=path.user_id), timeout=_deadline())
    return reply_json(reply), 200


@recommendations.get(
    "/products/<product_id>/profile",
    responses={200: RecommenderItemProfile, 400: Problem, 404: Problem, 501: Problem, 503: Problem, 504: Problem},
)
def item_profile(path: ProductPath) -> tuple[dict, int]:
    """What the recommender knows about a product (404 when it is not in the catalog)."""
    reply = _recommender().ItemProfile(pb.ItemProfileRequest(product_id=path.product_id), timeout=_deadline())
    return reply_json(reply), 200
