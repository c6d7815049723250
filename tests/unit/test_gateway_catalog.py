"""The catalog routes' logic (gateway/routes/catalog.py, services/common/pictures.py, the categories reader):
media types, the picture's headers and 304, problems; tests/integration/test_catalog_pictures.py runs the
routes on catalog events through the real broker and Redis."""

from __future__ import annotations

import base64
import hashlib
import io

import pytest
from flask import Flask
from PIL import Image

from gateway.app import close_app, create_app
from gateway.routes.catalog import categories_body, picture_response
from services.common.pictures import (
    MAX_PICTURE_BYTES,
    CatalogPicture,
    media_type,
    picture_from_fields,
    picture_key,
)
from services.common.recommendations import CategoryCount, RecommenderKeys, catalog_categories
from services.common.settings import SERVICE_NAMES, Settings
from services.vision.consumer import MAX_CATALOG_IMAGE_BYTES
from services.vision.store import VisionKeys
from tests.support import TEST_KEYS, assert_problem, free_port


def encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (12, 12), (10, 20, 30)).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize(("fmt", "kind"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"),
                                           ("GIF", "image/gif"), ("BMP", "image/bmp")])
def test_the_media_type_is_read_from_the_pictures_first_bytes(fmt, kind):
    assert media_type(encoded(fmt)) == kind


def test_bytes_of_no_known_format_are_served_as_octet_stream():
    assert media_type(b"") == media_type(b"RIFF\0\0\0\0WAVE") == media_type(b"<svg/>") == "application/octet-stream"


def test_a_picture_is_read_back_from_the_projections_fields():
    png = encoded("PNG")
    sha = hashlib.sha256(png).hexdigest()
    found = picture_from_fields(base64.b64encode(png).decode(), sha)
    assert found == CatalogPicture(png, "image/png", sha) and found.etag == sha[:32]
    assert picture_from_fields(None, None) is None
    assert picture_from_fields(base64.b64encode(png).decode(), None) is None  # known, no picture to serve
    assert picture_from_fields("not base64!", sha) is None


def test_the_gateway_and_the_vision_service_agree_on_the_key_and_the_limit():
    assert picture_key("p1") == VisionKeys.product("p1") == "shopai:vision:product:p1"
    assert MAX_CATALOG_IMAGE_BYTES == MAX_PICTURE_BYTES == 8 * 1024 * 1024


def test_the_picture_carries_its_type_etag_and_caching_and_a_matching_etag_is_a_304():
    png = encoded("PNG")
    found = CatalogPicture(png, "image/png", hashlib.sha256(png).hexdigest())
    app = Flask(__name__)
    with app.test_request_context("/v1/products/p1/image"):
        reply = picture_response(found)
    assert reply.status_code == 200 and reply.mimetype == "image/png" and reply.get_data() == png
    assert reply.headers["ETag"] == f'"{found.etag}"'
    assert reply.headers["Cache-Control"] == "public, max-age=3600"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    with app.test_request_context("/v1/products/p1/image", headers={"If-None-Match": f'"{found.etag}"'}):
        again = picture_response(found)
    assert again.status_code == 304 and not again.get_data()
    with app.test_request_context("/v1/products/p1/image", headers={"If-None-Match": '"something-else"'}):
        assert picture_response(found).status_code == 200


def test_categories_are_listed_with_their_counts_and_chinese_names():
    found = [CategoryCount("shirts", 3, "衬衫"), CategoryCount("bags", 1)]
    assert categories_body(found) == {"categories": [{"name": "shirts", "products": 3, "name_zh": "衬衫"},
                                                     {"name": "bags", "products": 1, "name_zh": ""}]}


@pytest.mark.integration
def test_categories_are_read_fullest_first_and_from_the_sets_in_an_older_projection(redis_client):
    K = RecommenderKeys
    redis_client.sadd(K.category("shirts"), "p1", "p2")
    redis_client.sadd(K.category("bags"), "p3", "p4")
    redis_client.sadd(K.category("coats"), "p5")
    # An older projection: no list of categories, only their sets (and a category emptied by removals).
    assert catalog_categories(redis_client) == [CategoryCount("bags", 2), CategoryCount("shirts", 2),
                                                CategoryCount("coats", 1)]
    redis_client.hset(K.categories, mapping={"shirts": "衬衫", "bags": "", "coats": "", "hats": ""})
    redis_client.srem(K.category("coats"), "p5")
    assert catalog_categories(redis_client) == [CategoryCount("bags", 2), CategoryCount("shirts", 2, "衬衫")]


@pytest.fixture(scope="module")
def dead_redis_app():
    dead = {name: {"grpc_port": free_port(), "metrics_port": free_port()} for name in SERVICE_NAMES}
    settings = Settings(gateway_api_keys=TEST_KEYS, redis_url=f"redis://127.0.0.1:{free_port()}/0",
                        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", grpc_deadline_seconds=0.5,
                        log_json=False, **dead)
    app = create_app(settings)
    yield app
    close_app(app)


def test_routes_are_public_and_a_redis_that_does_not_answer_is_a_503(dead_redis_app):
    client = dead_redis_app.test_client()  # no key, no token: a shop page's visitor
    assert "cannot be read" in assert_problem(client.get("/v1/products/p1/image"), 503)["detail"]
    assert "cannot be read" in assert_problem(client.get("/v1/products/categories"), 503)["detail"]


def test_a_product_id_too_long_is_a_400(dead_redis_app):
    body = assert_problem(dead_redis_app.test_client().get(f"/v1/products/{'p' * 129}/image"), 400)
    assert "product_id" in str(body)
