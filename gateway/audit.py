"""The audit log of staff reads of shoppers' personal data (issue #17, PIPL art. 54 / GDPR art. 30 style).

Every request a staff API key makes to a shopper's route (gateway/policy.py ``shopper``) is recorded — key id,
method, route, subject (the shopper's user id), time — *before* it is served: a read that cannot be recorded
is refused with a 503, never served unrecorded. Records live in a Redis stream (``XADD`` with an approximate
``MAXLEN``: the newest ``gateway_audit_max_entries`` are kept) and are listed newest first, a page at a time,
at ``GET /v1/admin/audit``. Keep Redis persistent (AOF) where the audit trail must outlive it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from gateway.problems import ApiProblem
from services.common.events import now_time
from services.common.logging import get_logger

log = get_logger(__name__)

STREAM = "shopai:gateway:audit"
MAX_PAGE = 500
# How many older entries one page may look through to find matches of a filter.
MAX_SCANNED_PER_PAGE = 20_000


@dataclass(frozen=True)
class AuditPage:
    entries: list[dict[str, Any]]
    next_cursor: str | None


def _entry(stream_id: str, fields: dict[str, str]) -> dict[str, Any]:
    return {"id": stream_id, "key_id": fields.get("key_id", ""), "method": fields.get("method", ""),
            "route": fields.get("route", ""), "subject": fields.get("subject", ""),
            "at": fields.get("at", "")}


class AuditLog:
    def __init__(self, client: redis.Redis, max_entries: int) -> None:
        self.redis = client
        self.max_entries = max_entries

    def record(self, key_id: str, method: str, route: str, subject: str) -> None:
        at = now_time()
        try:
            self.redis.xadd(STREAM, {"key_id": key_id, "method": method, "route": route, "subject": subject,
                                     "at": at}, maxlen=self.max_entries, approximate=True)
        except redis.RedisError as exc:
            log.error("audit_unavailable", error=str(exc), key_id=key_id, route=route)
            raise ApiProblem(503, "the audit log cannot be written, so a shopper's personal data is not served "
                                  "to staff keys right now; retry shortly", slug="audit-unavailable") from exc

    def page(self, limit: int, before: str | None = None, subject: str | None = None,
             key_id: str | None = None) -> AuditPage:
        """Entries newest first, older than the cursor ``before`` (an entry id), matching the filters."""
        limit = max(1, min(limit, MAX_PAGE))
        if before is not None and all(part.strip("0") == "" for part in before.split("-")):
            return AuditPage([], None)  # nothing is older than the first possible id (and Redis refuses "(0-0")
        upper = f"({before}" if before else "+"
        entries: list[dict[str, Any]] = []
        scanned = 0
        last_id = None
        while len(entries) < limit and scanned < MAX_SCANNED_PER_PAGE:
            batch = self.redis.xrevrange(STREAM, max=upper, min="-", count=max(limit, 200))
            if not batch:
                return AuditPage(entries, None)
            for stream_id, fields in batch:
                sid = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
                data = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                        for k, v in fields.items()}
                scanned += 1
                last_id = sid
                if (subject and data.get("subject") != subject) or (key_id and data.get("key_id") != key_id):
                    continue
                entries.append(_entry(sid, data))
                if len(entries) == limit:
                    return AuditPage(entries, sid)
            upper = f"({last_id}"
        return AuditPage(entries, last_id)
