"""Revoking authenticity codes: a whole batch of one product, or one serial.

The revocation is logged as ``code.revoked`` on vision.codes.v1 (acknowledged by the broker) and applied at
once, like issued codes (codelog.py); from then on ``Verify`` answers ``counterfeit`` for the codes it covers
(``core/verification.judge_revoked``). Revoking what is already revoked (the serial, its batch, or the batch
again) logs nothing and answers the first revocation: a retried request changes nothing. Two revocations
of the same thing at the same moment both reach the log; the projection keeps the first (HSETNX), and the
second caller is told so.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.vision.codelog import CodeLog
from services.vision.core.verification import Revocation
from services.vision.store import VisionStore


class NotIssued(LookupError):
    """No code was issued for this batch or serial (NOT_FOUND)."""


class AmbiguousBatch(ValueError):
    """A batch name issued for several products, and the request named none of them (FAILED_PRECONDITION)."""


@dataclass(frozen=True)
class Outcome:
    revocation: Revocation  # the revocation in force
    already_revoked: bool  # it is an earlier one; this request changed nothing
    codes: int  # the issued serials it covers


class Revoker:
    def __init__(self, store: VisionStore, codelog: CodeLog) -> None:
        self.store = store
        self.codelog = codelog

    def revoke(self, batch: str, serial: str, product_id: str, reason: str, revoked_by: str) -> Outcome:
        """Revoke ``serial``, or ``product_id``'s ``batch`` (any product's when only one has that batch)."""
        if serial:
            issued = self.store.issued(serial)
            if not issued.get("product_id"):
                raise NotIssued(f"serial {serial} was never issued")
            if product_id and issued["product_id"] != product_id:
                raise NotIssued(f"serial {serial} was not issued for product {product_id}")
            product_id, batch = issued["product_id"], issued["batch"]
            current = self.store.revocation(issued)
        else:
            product_id = self._batch_product(batch, product_id)
            current = self.store.batch_revocation(batch, product_id)
        if current is not None:
            return Outcome(current, True, self.covered(current))
        event_id = self.codelog.revoked(product_id, batch, serial, reason, revoked_by)
        stored = self.store.revocation(self.store.issued(serial)) if serial else \
            self.store.batch_revocation(batch, product_id)
        if stored is None:  # applied at once by codelog.record: only a flushed Redis could lose it meanwhile
            raise RuntimeError("the revocation was logged but is not in the registry")
        return Outcome(stored, stored.event_id != event_id, self.covered(stored))

    def _batch_product(self, batch: str, product_id: str) -> str:
        products = self.store.batch_products(batch)
        if product_id:
            if product_id not in products:
                raise NotIssued(f"no codes were issued for product {product_id} in batch {batch}")
            return product_id
        if not products:
            raise NotIssued(f"no codes were issued in batch {batch}")
        if len(products) > 1:
            raise AmbiguousBatch(f"batch {batch} was issued for several products ({', '.join(sorted(products))}): "
                                 "name the one to revoke in product_id")
        return next(iter(products))

    def covered(self, revocation: Revocation) -> int:
        if revocation.scope == "serial":
            return 1
        return self.store.batch_products(revocation.batch).get(revocation.product_id, 0)
