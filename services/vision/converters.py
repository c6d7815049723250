"""Requests' fields in (checked: ValueError with the reason, which the servicer answers as
INVALID_ARGUMENT), the core's results out as the Vision service's proto messages."""

from __future__ import annotations

from protos import vision_pb2 as pb
from services.common.grpc_server import timestamp
from services.vision.core import codes
from services.vision.core.history import StaffScan
from services.vision.core.model import Identification, Match
from services.vision.core.verification import Revocation, Verdict
from services.vision.store import ScanHistory

MAX_CODES = 1000
MAX_CLIENT_ID = 64
MAX_SCANNED_BY = 200
MAX_REASON = 500
MAX_REVOKED_BY = 64
VERDICTS = {"authentic": pb.VERDICT_AUTHENTIC, "counterfeit": pb.VERDICT_COUNTERFEIT,
            "suspicious": pb.VERDICT_SUSPICIOUS, "unreadable": pb.VERDICT_UNREADABLE}


def request_k(k: int, default: int) -> int:
    """How many answers a request asks for (``default`` when 0)."""
    if k == 0:
        return default
    if not 1 <= k <= 100:
        raise ValueError(f"k must be between 1 and 100, not {k}")
    return k


def check_issue(request: pb.IssueCodesRequest) -> None:
    """The product id, batch name and count of a request for codes."""
    codes.check_product_id(request.product_id)
    codes.check_batch_name(request.batch)
    if not 1 <= request.count <= MAX_CODES:
        raise ValueError(f"count must be between 1 and {MAX_CODES}, not {request.count}")


def check_verify(request: pb.VerifyRequest) -> None:
    """A verification sends a photo or a payload, and who scanned it within bounds."""
    if not request.image and not request.payload.strip():
        raise ValueError("send a photo of the code (image) or its text (payload)")
    if len(request.scanned_by) > MAX_SCANNED_BY:
        raise ValueError(f"scanned_by is longer than {MAX_SCANNED_BY} characters")
    if len(request.client_id) > MAX_CLIENT_ID:
        raise ValueError(f"client_id is longer than {MAX_CLIENT_ID} characters")


def check_revoke(request: pb.RevokeCodesRequest) -> None:
    """A revocation names a batch or a serial (not both), and says why."""
    if bool(request.batch) == bool(request.serial):
        raise ValueError("name exactly one of batch (every code of the batch) and serial (one code)")
    if request.batch:
        codes.check_batch_name(request.batch)
    else:
        codes.check_id("serial", request.serial)
    if request.product_id:
        codes.check_product_id(request.product_id)
    if not request.reason.strip():
        raise ValueError("reason is required: say why the codes are revoked")
    if len(request.reason) > MAX_REASON:
        raise ValueError(f"reason is longer than {MAX_REASON} characters")
    if len(request.revoked_by) > MAX_REVOKED_BY:
        raise ValueError(f"revoked_by is longer than {MAX_REVOKED_BY} characters")


def revocation_message(revocation: Revocation) -> pb.Revocation:
    return pb.Revocation(scope=revocation.scope, product_id=revocation.product_id, batch=revocation.batch,
                         serial=revocation.serial, reason=revocation.reason, revoked_by=revocation.revoked_by,
                         revoked_at=timestamp(revocation.revoked_at))


def code_scans_response(serial: str, issued: dict, history: ScanHistory, revocation: Revocation | None,
                        scans: list[StaffScan], next_before: str) -> pb.CodeScansResponse:
    return pb.CodeScansResponse(
        serial=serial, product_id=issued.get("product_id", ""), batch=issued.get("batch", ""),
        key_id=issued.get("key_id", ""),
        issued_at=timestamp(float(issued["issued_at"])) if issued.get("issued_at") else None,
        scan_count=history.count, counted_scans=history.counted, places=history.places,
        first_scanned_at=timestamp(history.first_scanned_at) if history.first_scanned_at else None,
        last_scanned_at=timestamp(history.last_scanned_at) if history.last_scanned_at else None,
        revocation=revocation_message(revocation) if revocation else None,
        scans=[pb.CodeScan(scanned_at=timestamp(s.at), place=s.place, scanned_by=s.scanned_by, client_id=s.client_id,
                           trusted=s.trusted, counted=s.counted) for s in scans],
        next_before=next_before)


def identify_response(answer: Identification, version: str) -> pb.IdentifyResponse:
    top = [pb.Candidate(product_id=m.product_id, label=m.title, score=m.probability, category=m.category)
           for m in answer.candidates]
    best = answer.best
    if best is None or not answer.known:
        return pb.IdentifyResponse(known=False, label="", confidence=best.probability if best else 0.0,
                                   top_k=top, model_version=version)
    return pb.IdentifyResponse(product_id=best.product_id, label=best.title, category=best.category,
                               confidence=best.probability, known=True, top_k=top, model_version=version)


def search_response(hits: list[Match], version: str) -> pb.SearchResponse:
    return pb.SearchResponse(
        results=[pb.SearchResult(product_id=m.product_id, score=m.score, label=m.title, category=m.category)
                 for m in hits], model_version=version)


def issue_response(request: pb.IssueCodesRequest, key_id: str, issued_at: int,
                   batch: list[codes.Code]) -> pb.IssueCodesResponse:
    return pb.IssueCodesResponse(
        product_id=request.product_id, batch=request.batch, key_id=key_id, issued_at=timestamp(issued_at),
        codes=[pb.AuthenticityCode(serial=c.serial, payload=c.payload, signature=c.signature,
                                   png=b"" if request.skip_png else codes.render_png(c.payload))
               for c in batch])


def verify_response(verdict: Verdict, claims: codes.Claims | None, history: ScanHistory | None, issued: dict,
                    counted: bool = False) -> pb.VerifyResponse:
    return pb.VerifyResponse(
        counted=counted,
        verdict=VERDICTS[verdict.verdict], reasons=verdict.reasons,
        product_id=claims.product_id if claims else "", batch=claims.batch if claims else "",
        serial=claims.serial if claims else "", scan_count=history.count if history else 0,
        first_scanned_at=timestamp(history.first_scanned_at) if history else None,
        issued_at=timestamp(float(issued["issued_at"])) if issued.get("issued_at") else None,
        revocation=revocation_message(verdict.revocation) if verdict.revocation else None)


def scans_response(scans: list[tuple[str, dict]], products: dict[str, str]) -> pb.ScansByResponse:
    """Recorded scans, each with the product its serial was issued for (``products`` by serial)."""
    return pb.ScansByResponse(scans=[
        pb.RecordedScan(serial=serial, product_id=products[serial], scanned_at=timestamp(scan.get("at")),
                        location=str(scan.get("location", "")), place=str(scan.get("place", "")),
                        counted=bool(scan.get("counted", True)))
        for serial, scan in scans])
