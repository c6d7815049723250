"""The vision service's projection: catalog pictures and the log of authenticity codes.

``product.upserted`` with ``image_base64``: the picture is decoded and checked here (a product
whose image is not a picture goes to the dead-letter topic with the reason); the product's hash
and fingerprint change, and the index watcher (server.py) embeds it within a second.
An upsert without an image keeps the picture it had (title and category still update).
``code.issued`` / ``code.scanned`` / ``code.revoked``: the registry of serials and batches, their scan
history (whether a scan counts, and at which normalised place, was decided when it was recorded and travels
in the event) and revocations (the first one of a serial or batch stays: HSETNX); the service
applies its own events at once through the same exactly-once applier (the same event id), so the
consumer's later delivery changes nothing, and a rebuild from the topic gives the same state.
``user.erased``: the scans recorded under the shopper's id leave the recent-scan lists; a code's
scan count and places are aggregates and stay (``services/common/privacy.py``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from services.common import privacy, topics
from services.common.events import Event, InvalidEvent
from services.common.pictures import IMAGE_FIELD, MAX_PICTURE_BYTES, SHA_FIELD
from services.common.projection import Ops, Projection
from services.vision.core.images import ImageProblem, decode_image
from services.vision.core.scans import ANONYMOUS_CLIENT, place_member
from services.vision.core.verification import Revocation
from services.vision.store import KEPT_SCANS, fingerprint, revocation_json
from services.vision.store import VisionKeys as K

MAX_CATALOG_IMAGE_BYTES = MAX_PICTURE_BYTES  # kept as sent: the gateway serves it (services/common/pictures.py)


class VisionProjection(Projection):
    group = "vision"
    topics = (topics.CATALOG, topics.CODES, topics.PRIVACY)

    def apply(self, event: Event, ops: Ops) -> None:
        ops("HINCRBY", K.stats, event.type, 1)
        if event.family == "product":
            self._apply_product(event, ops)
        elif event.family == "code":
            code_ops(event, ops)
        elif event.family == "user":
            erase_scanner(str(event.payload["user_id"]), ops)
            privacy.record_erasure(ops, "vision", self.group, event)
        else:
            raise InvalidEvent(f"{event.type} does not belong on {self.topics}")

    def _apply_product(self, event: Event, ops: Ops) -> None:
        p = event.payload
        pid = str(p["product_id"])
        if event.action == "removed":
            ops("DEL", K.product(pid))
            ops("HDEL", K.fingerprints, pid)
            ops.batch_state.setdefault("sha", {})[pid] = ""
            return
        title, category = str(p.get("title", "")), str(p.get("category", ""))
        fields: list[object] = ["title", title, "category", category]
        shas: dict[str, str] = ops.batch_state.setdefault("sha", {})
        raw = p.get("image_base64")
        if raw:
            try:
                data = base64.b64decode(str(raw), validate=True)
            except (binascii.Error, ValueError):
                raise InvalidEvent("image_base64 is not valid base64") from None
            try:
                decode_image(data, max_bytes=MAX_CATALOG_IMAGE_BYTES)
            except ImageProblem as exc:
                raise InvalidEvent(f"image_base64: {exc.reason}") from None
            shas[pid] = hashlib.sha256(data).hexdigest()
            fields += [IMAGE_FIELD, str(raw), SHA_FIELD, shas[pid]]
        elif pid not in shas:
            shas[pid] = self.redis.hget(K.product(pid), SHA_FIELD) or ""
        if not shas[pid]:
            ops("HSET", K.product(pid), *fields)  # known, but no picture to recognise it by (yet)
            ops("HINCRBY", K.stats, "products_without_image", 1)
            return
        fp = fingerprint(shas[pid], title, category)
        ops("HSET", K.product(pid), *fields, "fingerprint", fp)
        ops("HSET", K.fingerprints, pid, fp)


def code_ops(event: Event, ops: Ops) -> None:
    """The Redis commands of a ``code.*`` event (also run by the service for its own events)."""
    p = event.payload
    if event.action == "issued":
        record = ["product_id", p["product_id"], "batch", p["batch"], "key_id", p["key_id"],
                  "issued_at", int(p.get("issued_at", 0))]
        for serial in p["serials"]:
            ops("HSET", K.code(str(serial)), *record)
        ops("HINCRBY", K.batch_products(str(p["batch"])), p["product_id"], len(p["serials"]))
        return
    if event.action == "revoked":
        serial = str(p.get("serial", ""))
        revocation = revocation_json(Revocation(
            scope="serial" if serial else "batch", product_id=str(p["product_id"]), batch=str(p["batch"]),
            serial=serial, reason=str(p["reason"]), revoked_by=str(p.get("revoked_by", "")),
            revoked_at=event.occurred_at.timestamp(), event_id=event.event_id))
        if serial:
            ops("HSETNX", K.code(serial), "revoked", revocation)
        else:
            ops("HSETNX", K.batch_revocations(str(p["batch"])), p["product_id"], revocation)
        return
    serial = str(p["serial"])
    when = event.occurred_at.timestamp()
    ops("HINCRBY", K.scans(serial), "count", 1)
    ops("HSETNX", K.scans(serial), "first", when)
    ops("HSET", K.scans(serial), "last", when)
    decided = "counted" in p  # scans logged before the counting rules all counted, at their raw location
    counted = bool(p["counted"]) if decided else True
    place = str(p.get("place", "")) if decided else str(p.get("location", "")).strip().lower()
    if counted:
        ops("HINCRBY", K.scans(serial), "counted", 1)
        if place:
            ops("SADD", K.places(serial), place)
        if decided and not p.get("trusted"):
            client = str(p.get("client_id", "")) or ANONYMOUS_CLIENT
            ops("SADD", K.client_places(serial, client), place_member(place))
    scanned_by = str(p.get("scanned_by", ""))
    scan = json.dumps({"at": when, "location": p.get("location", ""), "place": place, "scanned_by": scanned_by,
                       "client_id": p.get("client_id", ""), "trusted": bool(p.get("trusted")), "counted": counted},
                      ensure_ascii=False)
    with privacy.guarded(ops, VisionProjection.group, scanned_by):
        ops("LPUSH", K.recent_scans(serial), scan)
        ops("LTRIM", K.recent_scans(serial), 0, KEPT_SCANS - 1)
        if scanned_by:  # indexed, so that erasing this scanner finds the entry again
            ops("SADD", K.scanner_scans(scanned_by), json.dumps([serial, scan], ensure_ascii=False))


def erase_scanner(scanned_by: str, ops: Ops) -> None:
    """Take the scans recorded under ``scanned_by`` out of the codes' recent-scan lists."""
    ops("LREMPAIRS", K.scanner_scans(scanned_by), K.recent_scans(""))
    ops("DEL", K.scanner_scans(scanned_by))
