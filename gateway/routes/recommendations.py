"""Recommendation routes: REST -> recommender gRPC."""

from __future__ import annotations

from typing import Literal

from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from google.protobuf.json_format import MessageToDict
from pydantic import BaseModel, Field

from gateway.problems import Problem
from protos import recommender_pb2 as pb
from services.recommender.core import MAX_K, STRATEGIES

recommendations = APIBlueprint(
    "recommendations", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="recommendations", description="Personalised recommendations")],
)

Strategy = Literal[STRATEGIES]  # type: ignore[valid-type]


class UserPath(BaseModel):
    user_id: str = Field(min_length=1, max_length=128)


class RecommendQuery(BaseModel):
    k: int = Field(10, ge=1, le=MAX_K, description="how many items")
    strategy: Strategy = Field("popular", description="which model answers")  # type: ignore[valid-type]
    category: str | None = Field(None, description="only products of this category")
    exclude_purchased: bool = Field(True, description="leave out what the user already bought")


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
    strategy: str
    cold_start: bool = False


@recommendations.get(
    "/users/<user_id>/recommendations",
    responses={200: Recommendations, 400: Problem, 501: Problem, 503: Problem, 504: Problem},
)
def recommend(path: UserPath, query: RecommendQuery) -> tuple[dict, int]:
    """Ranked products for a user, each with a reason. Unknown users get a cold-start answer."""
    stub = current_app.extensions["shopai.backends"].stub("recommender")
    reply = stub.Recommend(
        pb.RecommendRequest(
            user_id=path.user_id, k=query.k, strategy=query.strategy,
            filters=pb.Filters(category=query.category or "", exclude_purchased=query.exclude_purchased),
        ),
        timeout=current_app.config["GRPC_DEADLINE"],
    )
    body = MessageToDict(reply, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    return body, 200
