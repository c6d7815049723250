"""Catalog routes: what a shop page shows of its catalog, read by the gateway from the services' Redis
projections (read only, no gRPC call): a product's own picture, and the categories with their product counts.

- ``GET /v1/products/<product_id>/image``: the picture the catalog sent (``image_base64`` of
  ``product.upserted``), as the vision projection keeps it (services/common/pictures.py), with its media
  type, an ETag (the picture's SHA-256) and ``Cache-Control: public, max-age=3600``; a request with a
  matching ``If-None-Match`` gets a 304 without the bytes. 404 when the product has no picture (unknown,
  removed, or sent with only an ``image_url``).
- ``GET /v1/products/categories``: every category holding live products, the fullest first, from the
  recommender's projection (services/common/recommendations.py ``catalog_categories``).
"""

from __future__ import annotations

from typing import Any

import redis
from flask import Response, current_app, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from gateway.problems import ApiProblem, Problem
from services.common.pictures import CatalogPicture, read_picture
from services.common.recommendations import CategoryCount, catalog_categories

catalog = APIBlueprint(
    "catalog", __name__, url_prefix="/v1/products",
    abp_tags=[Tag(name="catalog", description="The catalog's own pictures and categories, for shop pages")],
)

PICTURE_CACHE_CONTROL = "public, max-age=3600"  # then revalidated with the ETag (a new picture, a new ETag)
CATEGORIES_CACHE_CONTROL = "public, max-age=60"


class ProductPath(BaseModel):
    product_id: str = Field(min_length=1, max_length=128)


class Category(BaseModel):
    name: str = Field(description="the products' `category` value: pass it as `category` to the other routes")
    products: int = Field(description="live products in the category")
    name_zh: str = Field("", description="the catalog's Chinese name for it (`attributes.category_zh`), or empty")


class Categories(BaseModel):
    categories: list[Category]


def _redis() -> redis.Redis:
    return current_app.extensions["shopai.redis"]


def picture_response(picture: CatalogPicture) -> Response:
    """The picture with its type, ETag and caching headers; a 304 when the request's ETag matches."""
    response = Response(picture.data, mimetype=picture.media_type)
    response.set_etag(picture.etag)
    response.headers["Cache-Control"] = PICTURE_CACHE_CONTROL
    response.headers["X-Content-Type-Options"] = "nosniff"
    response = response.make_conditional(request)
    if response.status_code == 304:
        response.set_data(b"")  # werkzeug would drop it on the wire only: nothing of the picture is moved
    return response


def categories_body(found: list[CategoryCount]) -> dict[str, Any]:
    return {"categories": [{"name": c.name, "products": c.products, "name_zh": c.name_zh} for c in found]}


@catalog.get(
    "/<product_id>/image",
    responses={200: {"description": "the product's picture as the catalog sent it (PNG, JPEG, WebP, GIF or BMP)",
                     "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}}},
               304: {"description": "the picture has not changed (the request's If-None-Match matched)"},
               400: Problem, 404: Problem, 503: Problem},
)
def product_image(path: ProductPath) -> Response:
    """The product's own picture, as the catalog sent it: usable directly as `<img src>`.

    Answers with the picture's media type, an `ETag` and `Cache-Control: public, max-age=3600`; a request
    whose `If-None-Match` matches gets a 304. 404 when the product has no picture (unknown, removed, or
    sent to the catalog with only an `image_url`)."""
    try:
        picture = read_picture(_redis(), path.product_id)
    except redis.RedisError as exc:
        raise ApiProblem(503, f"the catalog's pictures cannot be read: {exc}") from exc
    if picture is None:
        raise ApiProblem(404, f"product {path.product_id!r} has no picture: it is not in the catalog, or the "
                              "catalog sent it without image_base64")
    return picture_response(picture)


@catalog.get("/categories", responses={200: Categories, 503: Problem})
def categories() -> tuple[dict[str, Any], int, dict[str, str]]:
    """The catalog's categories that hold live products, the fullest first, with their product counts (and
    a Chinese name when the catalog gave one in `attributes.category_zh`). Browsers may cache it a minute."""
    try:
        found = catalog_categories(_redis())
    except redis.RedisError as exc:
        raise ApiProblem(503, f"the catalog's categories cannot be read: {exc}") from exc
    return categories_body(found), 200, {"Cache-Control": CATEGORIES_CACHE_CONTROL}
