"""The code log and the alerts: code events (issued, scanned, revoked) go to vision.codes.v1, acknowledged by
the broker, and are applied to the code registry at once; counterfeit and suspicious verdicts go to alerts.v1."""

from __future__ import annotations

from collections.abc import Callable

from protos import vision_pb2 as pb
from services.common import topics
from services.common.events import envelope, parse_event
from services.common.logging import get_logger
from services.common.projection import Ops, RedisApplier
from services.vision.consumer import code_ops
from services.vision.core import codes
from services.vision.core.scans import Scanner
from services.vision.core.verification import COUNTERFEIT, Verdict

log = get_logger(__name__)
SOURCE = "vision"


class CodeLog:
    def __init__(self, publish: Callable[[str, str, dict], None], applier: RedisApplier) -> None:
        self.publish = publish
        self.applier = applier

    def record(self, event_type: str, payload: dict) -> str:
        """Log a code event on vision.codes.v1 (acknowledged by the broker) and apply it at once; its event id."""
        record = envelope(event_type, payload, SOURCE)
        event = parse_event(record)
        self.publish(topics.CODES, str(payload["product_id"]), record)
        ops = Ops()
        code_ops(event, ops)
        self.applier.apply([(event.event_id, ops.commands)])
        return event.event_id

    def issued(self, product_id: str, batch: str, key_id: str, issued_at: int, issued: list[codes.Code]) -> None:
        """Log the codes of a batch just signed (before anyone may print them)."""
        self.record("code.issued", {"product_id": product_id, "batch": batch, "key_id": key_id,
                                    "issued_at": issued_at, "serials": [c.serial for c in issued]})

    def scanned(self, claims: codes.Claims, request: pb.VerifyRequest, place: str, scanner: Scanner,
                counted: bool) -> None:
        """Log a scan of a valid, issued code, and whether it counts in the code's history."""
        self.record("code.scanned", {"product_id": claims.product_id, "batch": claims.batch,
                                     "serial": claims.serial, "location": request.location,
                                     "scanned_by": request.scanned_by, "place": place,
                                     "client_id": scanner.name, "trusted": scanner.trusted, "counted": counted})

    def revoked(self, product_id: str, batch: str, serial: str, reason: str, revoked_by: str) -> str:
        """Log the revocation of a product's batch (``serial`` empty) or of one serial; its event id."""
        payload = {"product_id": product_id, "batch": batch, "reason": reason, "revoked_by": revoked_by}
        return self.record("code.revoked", payload | ({"serial": serial} if serial else {}))

    def alert(self, verdict: Verdict, claims: codes.Claims | None, request: pb.VerifyRequest) -> None:
        """Publish a counterfeit or suspicious verdict on alerts.v1; never fails the verification."""
        kind = "alert.counterfeit_detected" if verdict.verdict == COUNTERFEIT else "alert.code_suspicious"
        payload = {"verdict": verdict.verdict, "reasons": verdict.reasons, "location": request.location,
                   "scanned_by": request.scanned_by, "product_id": claims.product_id if claims else "",
                   "batch": claims.batch if claims else "", "serial": claims.serial if claims else "",
                   "payload": request.payload[:200]}
        try:
            self.publish(topics.ALERTS, payload["product_id"] or "unknown", envelope(kind, payload, SOURCE))
        except Exception:  # the verdict still reaches the shopper; the log keeps the alert
            log.warning("alert_not_published", exc_info=True, **{k: v for k, v in payload.items() if k != "payload"})
