"""Where the vision service keeps its state in Redis (all rebuildable from the topics).

- The catalog's pictures: one hash per product (title, category, the image as base64, its
  fingerprint) and one hash of every product's fingerprint, which the index watcher compares with
  the served index to find what to (re-)embed.
- Authenticity codes: one hash per issued serial (product, batch, key, time), projected from
  ``code.issued`` events on ``vision.codes.v1``; the scan history of each serial (every scan and the
  counted ones, first and last scan, the distinct places of counted scans, the last scans) and, per
  untrusted client, the places its counted scans of the serial were made at, projected from
  ``code.scanned``; the products each batch name was issued for (with their serial counts), from
  ``code.issued``.
- Revocations, from ``code.revoked``: a serial's in its own hash (``revoked``), a batch's in the batch's
  hash of revocations by product; each the first one recorded (a later one changes nothing).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from dataclasses import dataclass

import redis
from PIL import Image

from services.common.cache import key
from services.common.pictures import picture_key
from services.vision.core.scans import COUNTED, Scanner, ScanWeight, place_member, weigh_scan
from services.vision.core.verification import Revocation, revocation_in_force

RECENT_SCANS = 20  # the scans ScanHistory.recent holds
KEPT_SCANS = 500  # the scans kept per code, newest first, for its history (every scan is counted in "count")


class VisionKeys:
    stats = key("vision", "stats")
    fingerprints = key("vision", "fingerprints")

    @staticmethod
    def product(pid: str) -> str:
        return picture_key(pid)  # the gateway reads the picture there too (services/common/pictures.py)

    @staticmethod
    def code(serial: str) -> str:
        return key("vision", "code", serial)

    @staticmethod
    def scans(serial: str) -> str:
        return key("vision", "scans", serial)

    @staticmethod
    def places(serial: str) -> str:
        return key("vision", "places", serial)

    @staticmethod
    def recent_scans(serial: str) -> str:
        return key("vision", "recent_scans", serial)

    @staticmethod
    def client_places(serial: str, client: str) -> str:
        return key("vision", "client_places", serial, client)

    @staticmethod
    def batch_products(batch: str) -> str:
        """Hash product id -> serials issued in this batch for it."""
        return key("vision", "batch", batch, "products")

    @staticmethod
    def batch_revocations(batch: str) -> str:
        """Hash product id -> the JSON revocation of that product's batch."""
        return key("vision", "batch", batch, "revoked")

    @staticmethod
    def scanner_scans(scanned_by: str) -> str:
        """Set of JSON [serial, recent-scan entry] recorded under a scanner (a shopper's id, erasable)."""
        return key("vision", "scanner", scanned_by, "scans")


K = VisionKeys


def fingerprint(image_sha: str, title: str, category: str) -> str:
    return hashlib.sha256(f"{image_sha}|{title}|{category}".encode()).hexdigest()[:20]


@dataclass(frozen=True)
class CatalogEntry:
    product_id: str
    title: str
    category: str
    fingerprint: str
    image: Image.Image


@dataclass(frozen=True)
class ScanHistory:
    count: int  # scans so far, including the current one
    counted: int  # the scans that count toward the verdict (scans.weigh_scan)
    places: int  # distinct known places of counted scans
    first_scanned_at: float | None
    recent: list[dict]
    last_scanned_at: float | None = None


def revocation_json(revocation: Revocation) -> str:
    return json.dumps({"scope": revocation.scope, "product_id": revocation.product_id, "batch": revocation.batch,
                       "serial": revocation.serial, "reason": revocation.reason, "revoked_by": revocation.revoked_by,
                       "at": revocation.revoked_at, "event_id": revocation.event_id}, ensure_ascii=False)


def parse_revocation(raw: str | None) -> Revocation | None:
    if not raw:
        return None
    r = json.loads(raw)
    return Revocation(scope=r["scope"], product_id=r["product_id"], batch=r["batch"], serial=r.get("serial", ""),
                      reason=r.get("reason", ""), revoked_by=r.get("revoked_by", ""), revoked_at=float(r["at"]),
                      event_id=r.get("event_id", ""))


class VisionStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    # -- catalog -----------------------------------------------------------------------------------
    def fingerprints(self) -> dict[str, str]:
        return self.redis.hgetall(K.fingerprints)

    def product(self, pid: str) -> dict[str, str]:
        return self.redis.hgetall(K.product(pid))

    def entries(self, pids: list[str]) -> list[CatalogEntry]:
        """The products' pictures, decoded (a product whose image went away meanwhile is skipped)."""
        pipe = self.redis.pipeline(transaction=False)
        for pid in pids:
            pipe.hmget(K.product(pid), "title", "category", "fingerprint", "image")
        out = []
        for pid, (title, category, fp, image) in zip(pids, pipe.execute(), strict=True):
            if not image or fp is None:
                continue
            picture = Image.open(io.BytesIO(base64.b64decode(image))).convert("RGB")
            out.append(CatalogEntry(pid, title or "", category or "", fp, picture))
        return out

    def catalog(self) -> list[CatalogEntry]:
        return self.entries(sorted(self.fingerprints()))

    def images_count(self) -> int:
        return int(self.redis.hlen(K.fingerprints))

    # -- codes --------------------------------------------------------------------------------------
    def issued(self, serial: str) -> dict[str, str]:
        return self.redis.hgetall(K.code(serial))

    def scans_by(self, scanned_by: str) -> list[tuple[str, dict]]:
        """(serial, recorded scan) of every scan kept under ``scanned_by``, newest first (for an export)."""
        entries = [json.loads(raw) for raw in self.redis.smembers(K.scanner_scans(scanned_by))]
        found = [(str(serial), json.loads(scan)) for serial, scan in entries]
        return sorted(found, key=lambda item: (-float(item[1].get("at", 0)), item[0]))

    def history(self, serial: str, recent: int = RECENT_SCANS) -> ScanHistory:
        """The code's scan counts and its ``recent`` newest scans (as recorded, newest first)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(K.scans(serial))
        pipe.scard(K.places(serial))
        pipe.lrange(K.recent_scans(serial), 0, recent - 1)
        scans, places, entries = pipe.execute()
        first, last = scans.get("first"), scans.get("last")
        return ScanHistory(int(scans.get("count", 0)), int(scans.get("counted", 0)), int(places),
                           float(first) if first else None, [json.loads(r) for r in entries],
                           float(last) if last else None)

    def batch_products(self, batch: str) -> dict[str, int]:
        """The products a batch of this name was issued for, with their serial counts."""
        return {pid: int(n) for pid, n in self.redis.hgetall(K.batch_products(batch)).items()}

    def batch_revocation(self, batch: str, product_id: str) -> Revocation | None:
        return parse_revocation(self.redis.hget(K.batch_revocations(batch), product_id))

    def revocation(self, issued: dict[str, str]) -> Revocation | None:
        """The revocation in force for an issued serial (its ``issued`` record): its own or its batch's,
        the first of the two."""
        if not issued:
            return None
        batch = self.batch_revocation(issued.get("batch", ""), issued.get("product_id", ""))
        return revocation_in_force(parse_revocation(issued.get("revoked")), batch)

    def weigh_scan(self, serial: str, scanner: Scanner, place: str, places_per_client: int) -> ScanWeight:
        """Decide whether this scan counts and, if it does, take its place in the client's set at once:
        the set is watched, so two scans of one client at the same moment cannot both take the last
        place (the projection adds the same member again when the event arrives: no change)."""
        if scanner.trusted:
            return COUNTED
        client_key = K.client_places(serial, scanner.name)

        def decide(pipe: redis.client.Pipeline) -> ScanWeight:
            weight = weigh_scan(scanner, place, pipe.smembers(client_key), places_per_client)
            pipe.multi()
            if weight.counted:
                pipe.sadd(client_key, place_member(place))
            return weight

        return self.redis.transaction(decide, client_key, value_from_callable=True)
