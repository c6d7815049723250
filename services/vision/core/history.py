"""A code's scan history as staff read it (pure): pages newest first, and each scan without what would
name a shopper.

**Pages.** The kept scans (``store.KEPT_SCANS``, newest first as they were recorded) are ordered by time,
newest first, ties by a digest of the recorded entry, so the order is total and does not depend on where
an entry sits in the list. A page's cursor (``next_before``) is the time and digest of its last scan, and
the next page starts strictly after it: a scan recorded between two pages, the oldest ones trimmed, or a
shopper's scans erased (``consumer.erase_scanner``) neither repeat nor skip an entry of the pages to come.

**What a scan shows.** Its time, normalised place (never the raw ``location``: a shopper's coordinates),
the client it was counted for (an API key id or a keyed hash of an address), whether that client was
trusted and whether the scan counted; ``scanned_by`` (often a shopper's user id) only as the pseudonym
analytics use (``services/common/pseudonyms.py``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from services.common.pseudonyms import pseudonymise

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_CURSOR = re.compile(r"(\d{1,19})_([0-9a-f]{16})")


@dataclass(frozen=True)
class StaffScan:
    at: float
    place: str
    scanned_by: str  # the pseudonym ("" when the scan named nobody)
    client_id: str
    trusted: bool
    counted: bool


def _digest(scan: dict) -> str:
    return hashlib.sha256(json.dumps(scan, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def _micros(scan: dict) -> int:
    return round(float(scan.get("at", 0.0)) * 1_000_000)


def _order(scan: dict) -> tuple[int, str]:
    """Sort key, newest first: (-time in microseconds, digest)."""
    return -_micros(scan), _digest(scan)


def cursor_of(scan: dict) -> str:
    return f"{_micros(scan)}_{_digest(scan)}"


def parse_cursor(before: str) -> tuple[int, str] | None:
    """The sort key a page starts after; None for the first page; ValueError when ``before`` is not a
    cursor this history made."""
    if not before:
        return None
    match = _CURSOR.fullmatch(before)
    if match is None:
        raise ValueError("before must be the next_before of a previous page (e.g. 1796000000123456_0123456789abcdef)")
    return -int(match.group(1)), match.group(2)


def check_limit(limit: int) -> int:
    if limit == 0:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    return limit


def page(scans: list[dict], limit: int, before: str = "") -> tuple[list[dict], str]:
    """``limit`` scans, newest first, after the cursor ``before``; and the cursor of the next page ("" at the
    end)."""
    start = parse_cursor(before)
    ordered = sorted(scans, key=_order)
    if start is not None:
        ordered = [s for s in ordered if _order(s) > start]
    chosen = ordered[:limit]
    return chosen, cursor_of(chosen[-1]) if len(ordered) > limit else ""


def for_staff(scan: dict, key: bytes) -> StaffScan:
    """A recorded scan (consumer.code_ops) as staff see it."""
    scanned_by = str(scan.get("scanned_by", ""))
    return StaffScan(at=float(scan.get("at", 0.0)), place=str(scan.get("place", "")),
                     scanned_by=pseudonymise(scanned_by, key) if scanned_by else "",
                     client_id=str(scan.get("client_id", "")), trusted=bool(scan.get("trusted", False)),
                     counted=bool(scan.get("counted", True)))
