"""The catalog's pictures: the vision service's contract with the gateway, defined once.

The vision projection (services/vision/consumer.py) keeps each product's picture exactly as the catalog
sent it (``image_base64`` of ``product.upserted``, at most ``MAX_PICTURE_BYTES`` decoded; a larger one is
refused to the dead-letter topic) in the product's hash, with the SHA-256 of its bytes. The gateway reads
the two fields (``read_picture``) to serve ``GET /v1/products/{product_id}/image``, the hash as the ETag:
the storefront shows the shop's own pictures without a call to the vision service.

The gateway imports this module and nothing of ``services/vision``; the vision store builds its product
key with ``picture_key``. A change here changes both sides, visibly.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import redis

from services.common.cache import key

MAX_PICTURE_BYTES = 8 * 1024 * 1024  # a catalog picture's limit, decoded (the vision service's upload limit too)
IMAGE_FIELD = "image"  # the picture as the catalog sent it, base64
SHA_FIELD = "image_sha"  # hex SHA-256 of the decoded bytes

# The formats the vision service accepts (core/images.py), by their first bytes.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)


def picture_key(product_id: str) -> str:
    """The product's hash in the vision projection (title, category, the picture, its hash, fingerprint)."""
    return key("vision", "product", product_id)


def media_type(data: bytes) -> str:
    """The picture's media type from its first bytes; ``application/octet-stream`` when none matches."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            return kind
    return "application/octet-stream"


@dataclass(frozen=True)
class CatalogPicture:
    data: bytes
    media_type: str
    sha256: str  # hex, of ``data``: the ETag

    @property
    def etag(self) -> str:
        return self.sha256[:32]


def picture_from_fields(encoded: str | None, sha: str | None) -> CatalogPicture | None:
    """The picture of a product hash's two fields; None when there is none (or it cannot be read back)."""
    if not encoded or not sha:
        return None
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return CatalogPicture(data, media_type(data), sha)


def read_picture(client: redis.Redis, product_id: str) -> CatalogPicture | None:
    """The product's picture as the catalog sent it, or None (no such product, or one without a picture).
    Reads only."""
    encoded, sha = client.hmget(picture_key(product_id), IMAGE_FIELD, SHA_FIELD)
    return picture_from_fields(encoded, sha)

