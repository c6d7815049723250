"""The verdict on a scanned authenticity code, from what the service found out (pure rules).

Order of the questions, and why:
1. Is there a code at all? No -> ``unreadable`` (a blurred or code-less photo is never called
   counterfeit: the shopper is asked to try again). A QR code that is not ours is unreadable too.
2. Is the signature ours and intact? No -> ``counterfeit`` (forged, altered, or a foreign key).
3. Did we issue this serial, for this product and batch? No -> ``counterfeit``. Was the serial or its
   batch revoked since? Yes -> ``counterfeit``, saying when and why (``judge_revoked``; the scan is
   still recorded: where revoked codes turn up is what the brand wants to know).
4. Does the scan history look like one physical label? More than ``max_scans`` counted scans or
   more than ``max_places`` distinct places -> ``suspicious`` (a copied label carries a valid code, so
   the code itself cannot be called fake; its clones can only be told apart by where they turn up).
   Only counted scans make the history (``scans.weigh_scan``): one untrusted caller cannot fill it.
5. Does the product in the photo look like the product the code names? Clearly another product
   -> ``suspicious`` (a genuine label moved onto a fake). No product visible, or no confident
   match, changes nothing: the code alone is then checked.
Otherwise ``authentic``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.vision.core.codes import CodeCheck

AUTHENTIC, COUNTERFEIT, SUSPICIOUS, UNREADABLE = "authentic", "counterfeit", "suspicious", "unreadable"


@dataclass(frozen=True)
class ProductMatch:
    """What image search said about the photo next to the code."""

    status: str  # "match" | "mismatch" | "unsure" | "no_product" | "no_photo"
    detail: str = ""


@dataclass(frozen=True)
class Limits:
    max_scans: int = 5
    max_places: int = 2


@dataclass(frozen=True)
class ScanNote:
    """What the verdict tells the caller about this scan itself."""

    total: int  # every recorded scan of the serial, including this one
    place: str = ""  # how this scan's location was read ("" when none was given)
    not_counted: str = ""  # why this scan leaves the code's history as it was ("" when it counts)


@dataclass(frozen=True)
class Revocation:
    """A batch (every serial of one product's batch) or one serial revoked: its codes verify as counterfeit."""

    scope: str  # "batch" | "serial"
    product_id: str
    batch: str
    serial: str  # "" for a batch
    reason: str
    revoked_by: str
    revoked_at: float  # unix seconds
    event_id: str = ""  # the code.revoked event that recorded it

    def describe(self) -> str:
        what = f"batch {self.batch}" if self.scope == "batch" else f"serial {self.serial}"
        return f"revoked: {what} was revoked {datetime.fromtimestamp(self.revoked_at, UTC):%Y-%m-%d %H:%M} UTC: " \
               f"{self.reason}"


def revocation_in_force(*revocations: Revocation | None) -> Revocation | None:
    """The first of the serial's own and its batch's revocations (None when neither was revoked)."""
    found = [r for r in revocations if r is not None]
    return min(found, key=lambda r: (r.revoked_at, r.scope)) if found else None


@dataclass
class Verdict:
    verdict: str
    reasons: list[str] = field(default_factory=list)
    revocation: Revocation | None = None

    @property
    def alert(self) -> bool:
        return self.verdict in (COUNTERFEIT, SUSPICIOUS)


def unreadable(found_foreign: bool, blurred: bool) -> Verdict:
    if found_foreign:
        return Verdict(UNREADABLE, ["a code was found, but it is not a ShopAI authenticity code"])
    reasons = ["no authenticity code could be found in the photo"]
    if blurred:
        reasons.append("the photo looks blurred: hold the camera still, closer to the code")
    return Verdict(UNREADABLE, reasons)


def judge_code(check: CodeCheck, issued: dict[str, str]) -> Verdict | None:
    """Steps 2-3: a verdict of ``counterfeit``, or None when the code is valid and ours."""
    if not check.valid or check.claims is None:
        return Verdict(COUNTERFEIT, [check.reason])
    claims = check.claims
    if not issued:
        return Verdict(COUNTERFEIT, [check.reason, f"serial {claims.serial} was never issued"])
    if issued.get("product_id") != claims.product_id or issued.get("batch") != claims.batch:
        return Verdict(COUNTERFEIT, [check.reason, f"serial {claims.serial} was issued for another product or batch"])
    return None


def _scan_reasons(check: CodeCheck, issued_at: int, note: ScanNote | None) -> list[str]:
    batch = check.claims.batch if check.claims else ""
    reasons = [check.reason, f"issued {datetime.fromtimestamp(issued_at, UTC):%Y-%m-%d} for batch {batch}"]
    if note is not None and note.place:
        reasons.append(f"location read as {note.place}")
    if note is not None and note.not_counted:
        reasons.append(f"this scan is recorded but leaves the code's history as it was: {note.not_counted}")
    return reasons


def judge_revoked(check: CodeCheck, issued_at: int, revocation: Revocation, note: ScanNote | None = None) -> Verdict:
    """Step 3, the second half: a valid, issued code whose serial or batch was revoked is ``counterfeit``
    whatever its history or photo, with the revocation (when, why) as its first finding after the code's."""
    reasons = _scan_reasons(check, issued_at, note)
    return Verdict(COUNTERFEIT, [reasons[0], revocation.describe(), *reasons[1:]], revocation)


def judge_history(check: CodeCheck, issued_at: int, scans: int, places: int, match: ProductMatch,
                  limits: Limits, note: ScanNote | None = None) -> Verdict:
    """Steps 4-5 for a valid, issued code that is not revoked: ``scans`` and ``places`` are the counted
    history (including this scan when it counts)."""
    reasons = _scan_reasons(check, issued_at, note)
    suspicious = []
    if scans > limits.max_scans:
        suspicious.append(f"{scans} counted scans (more than {limits.max_scans}): the label may have been copied")
    if places > limits.max_places:
        suspicious.append(f"scanned in {places} different places (more than {limits.max_places}): "
                          "the label may have been copied")
    if match.status == "mismatch":
        suspicious.append(match.detail)
    elif match.detail:
        reasons.append(match.detail)
    if suspicious:
        return Verdict(SUSPICIOUS, reasons + suspicious)
    total = f"scan {note.total} of this serial, {scans} counted" if note is not None else f"scan {scans} of this serial"
    reasons.append(total + (f", in {places} place(s)" if places else ""))
    return Verdict(AUTHENTIC, reasons)
