"""Shoppers' ids as staff reads show them: keyed pseudonyms (HMAC-SHA256), one key for the deployment.

Analytics (the forecasting service: segments' sample ids, a customer's profile) and the vision service's
scan history for staff (a scan's ``scanned_by``) both answer ``pseudonymise(id, key)`` instead of the id, with
the key ``SHOPAI_ANALYTICS_SECRET`` (or a random one kept in ``<data_dir>/secrets/analytics-secret``), so
one shopper has the same pseudonym in both and the raw id cannot be recovered without the key.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

from services.common.keyfile import persistent_secret

if TYPE_CHECKING:
    from services.common.settings import Settings


def pseudonymise(user_id: str, secret: bytes) -> str:
    """``"u_"`` + the first 16 hex digits of HMAC-SHA256(secret, user_id): stable for one secret,
    different across secrets, and the raw id cannot be recovered without the secret."""
    if not secret:
        raise ValueError("pseudonymise needs a non-empty secret")
    digest = hmac.new(secret, str(user_id).encode("utf-8"), hashlib.sha256).hexdigest()
    return "u_" + digest[:16]


def pseudonym_key(settings: Settings) -> bytes:
    """SHOPAI_ANALYTICS_SECRET, or a random key made on first start in <data_dir>/secrets/analytics-secret
    (mode 0600)."""
    return persistent_secret(settings.analytics_secret, settings.data_dir / "secrets" / "analytics-secret")
