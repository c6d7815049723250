"""Verifying an authenticity code, start to end: read the codes in the photo or the payload, check the
signature and the registry, weigh and log the scan, compare the product in the photo, and judge.

The rules are pure and live in the core (``core/verification.py`` for the verdict,
``core/photo_check.py`` for the photo); this module asks Redis and the code log what they need."""

from __future__ import annotations

from PIL import Image

from protos import vision_pb2 as pb
from services.common.logging import get_logger
from services.common.models import ModelHolder
from services.vision import converters as cv
from services.vision.codelog import CodeLog
from services.vision.core import codes
from services.vision.core.model import VisionModel
from services.vision.core.photo_check import is_blurred, match_product
from services.vision.core.places import Place
from services.vision.core.scans import Scanner, ScanWeight
from services.vision.core.verification import (
    Limits,
    ProductMatch,
    ScanNote,
    judge_code,
    judge_history,
    judge_revoked,
    unreadable,
)
from services.vision.store import VisionStore

log = get_logger(__name__)


class ScanNotRecorded(Exception):
    """The scan of a valid code could not be logged: no verdict is given (a scan that is not recorded
    would hide a cloned code)."""


class Verifier:
    def __init__(self, store: VisionStore, holder: ModelHolder[VisionModel], keys: dict, codelog: CodeLog,
                 limits: Limits, places_per_client: int) -> None:
        self.store = store
        self.holder = holder
        self.keys = keys
        self.codelog = codelog
        self.limits = limits
        self.places_per_client = places_per_client

    def verify(self, request: pb.VerifyRequest, image: Image.Image | None, place: Place) -> pb.VerifyResponse:
        """The verdict on a checked request (``image`` decoded, ``place`` read from its location);
        ScanNotRecorded when the scan of a valid code cannot be logged."""
        found = codes.find_codes(image) if image is not None else []
        texts = ([request.payload.strip()] if request.payload.strip() else []) + [f.text for f in found]
        ours = [c for c in (codes.verify_payload(t, self.keys) for t in texts) if c.ours]
        if not ours:
            verdict = unreadable(bool(texts), image is not None and is_blurred(image))
            return pb.VerifyResponse(verdict=cv.VERDICTS[verdict.verdict], reasons=verdict.reasons)
        check = next((c for c in ours if c.valid), ours[0])
        claims = check.claims
        issued = self.store.issued(claims.serial) if claims is not None else {}
        verdict = judge_code(check, issued)
        if verdict is not None:
            self.codelog.alert(verdict, claims, request)
            return cv.verify_response(verdict, claims, None, issued)
        revocation = self.store.revocation(issued)
        weight = self._record_scan(request, claims, place)  # a revoked code's scans are history too
        history = self.store.history(claims.serial)
        note = ScanNote(history.count, place.how if request.location.strip() else "", weight.reason)
        if revocation is not None:
            verdict = judge_revoked(check, int(issued.get("issued_at", 0)), revocation, note)
        else:
            match = match_product(self.holder.model, image, [f.box for f in found], claims.product_id) \
                if image is not None else ProductMatch("no_photo")
            verdict = judge_history(check, int(issued.get("issued_at", 0)), history.counted, history.places, match,
                                    self.limits, note)
        if verdict.alert:
            self.codelog.alert(verdict, claims, request)
        return cv.verify_response(verdict, claims, history, issued, weight.counted)

    def _record_scan(self, request: pb.VerifyRequest, claims: codes.Claims, place: Place) -> ScanWeight:
        """Weigh the scan of a valid, issued code and log it."""
        scanner = Scanner(request.client_id, request.trusted)
        try:
            weight = self.store.weigh_scan(claims.serial, scanner, place.key, self.places_per_client)
            self.codelog.scanned(claims, request, place.key, scanner, weight.counted)
        except Exception as exc:
            log.warning("scan_not_recorded", exc_info=True)
            raise ScanNotRecorded(str(exc)) from exc
        return weight
