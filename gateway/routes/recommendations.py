"""Recommendation routes: REST -> recommender gRPC (recommendations, similar products, profiles)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, BeforeValidator, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from gateway.json import reply_json
from gateway.problems import Problem
from protos import recommender_pb2 as pb
from services.recommender.core import MAX_K, STRATEGIES

recommendations = APIBlueprint(
    "recommendations", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="recommendations", description="Personalised recommendations, similar products, profiles")],
)

Strategy = Literal[STRATEGIES]  # type: ignore[valid-type]
SIMILAR_STRATEGIES: tuple[str, ...] = ("item_knn", "content", "als", "hybrid")
SimilarStrategy = Literal[SIMILAR_STRATEGIES]  # type: ignore[valid-type]

MAX_SESSION_PRODUCTS = 50
MAX_EXCLUDED_PRODUCTS = 500
MAX_EXCLUDED_CATEGORIES = 100


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


class FilterQuery(BaseModel):
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
    exclude_purchased: bool = Field(True, description="leave out what the user already bought")
    session: IdList = Field(
        [], max_length=MAX_SESSION_PRODUCTS,
        description=f"product ids viewed in the current session, most recent first, comma-separated "
                    f"(at most {MAX_SESSION_PRODUCTS}); they drive the answer for new or anonymous visitors",
    )


class SimilarQuery(FilterQuery):
    k: int = Field(10, ge=1, le=MAX_K, description="how many items")
    strategy: SimilarStrategy = Field("hybrid", description="which model answers")  # type: ignore[valid-type]


# ------------------------------------------------------------------ response models (for the spec)


class Item(BaseModel):
    product_id: str
    score: float
    reason: str
    title: str = ""
    category: str = ""
    price: float = 0.0
    currency: str = ""


class Recommendations(BaseModel):
    user_id: str
    items: list[Item]
    model_version: str
    strategy: str = Field(description="the strategy that actually answered (may be a fallback)")
    cold_start: bool = False


class SimilarProducts(BaseModel):
    product_id: str
    items: list[Item]
    model_version: str
    strategy: str = Field(description="the strategy that actually answered")


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
def recommend(path: UserPath, query: RecommendQuery) -> tuple[dict, int]:
    """Ranked products for a user, each with a reason.

    Unknown users get a cold-start answer (from `session`, then popularity); `strategy` in the answer
    says which strategy actually answered."""
    reply = _recommender().Recommend(
        pb.RecommendRequest(
            user_id=path.user_id, k=query.k, strategy=query.strategy,
            filters=query.filters(exclude_purchased=query.exclude_purchased),
            session_product_ids=query.session,
        ),
        timeout=_deadline(),
    )
    return reply_json(reply), 200


@recommendations.get(
    "/products/<product_id>/similar",
    responses={200: SimilarProducts, 400: Problem, 404: Problem, 501: Problem, 503: Problem, 504: Problem},
)
def similar(path: ProductPath, query: SimilarQuery) -> tuple[dict, int]:
    """Products similar to one product (item-to-item neighbours), never the product itself."""
    reply = _recommender().Similar(
        pb.SimilarRequest(product_id=path.product_id, k=query.k, strategy=query.strategy, filters=query.filters()),
        timeout=_deadline(),
    )
    return reply_json(reply), 200


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
