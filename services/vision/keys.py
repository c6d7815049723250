"""Signing keys for authenticity codes: the service's own (to issue) and the trusted ones (to verify).

Make one with ``python -m services.vision.keys``: it prints the private key (for SHOPAI_VISION_SIGNING_KEY
or the file SHOPAI_VISION_SIGNING_KEY_FILE; keep it secret) and, on stderr, its public key and key id (for
SHOPAI_VISION_TRUSTED_PUBLIC_KEYS after a rotation, and for anyone who verifies codes offline)."""

from __future__ import annotations

import sys

from services.common.settings import Settings
from services.vision.core import codes
from services.vision.core.codes import SigningKey


def load_signing_key(settings: Settings) -> SigningKey | None:
    """The key from SHOPAI_VISION_SIGNING_KEY or the file SHOPAI_VISION_SIGNING_KEY_FILE (None: codes
    cannot be issued; a configured key that cannot be read stops the service with the reason)."""
    if settings.vision_signing_key is not None and settings.vision_signing_key.get_secret_value().strip():
        return SigningKey.from_text(settings.vision_signing_key.get_secret_value())
    if settings.vision_signing_key_file is not None:
        text = settings.vision_signing_key_file.read_text()
        return SigningKey.from_text(text) if text.strip() else None  # an empty secret file: no key
    return None


def trusted_keys(settings: Settings, key: SigningKey | None) -> dict:
    """Public keys by key id that verification accepts: the signing key's and SHOPAI_VISION_TRUSTED_PUBLIC_KEYS."""
    keys = {key.key_id: key.public_key} if key is not None else {}
    for text in filter(None, (t.strip() for t in settings.vision_trusted_public_keys.split(","))):
        public = codes.public_key_from_text(text)
        keys[codes.key_id_of(public)] = public
    return keys


def main() -> None:
    key = SigningKey.generate()
    print(key.to_text())
    print(f"public key {key.public_text}  key id {key.key_id}", file=sys.stderr)


if __name__ == "__main__":
    main()
