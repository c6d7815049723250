"""Make a signing key for authenticity codes: ``python -m services.vision.keys``.

Prints the private key (for SHOPAI_VISION_SIGNING_KEY or the file SHOPAI_VISION_SIGNING_KEY_FILE; keep
it secret) and, on stderr, its public key and key id (for SHOPAI_VISION_TRUSTED_PUBLIC_KEYS after a
rotation, and for anyone who verifies codes offline)."""

from __future__ import annotations

import sys

from services.vision.core.codes import SigningKey


def main() -> None:
    key = SigningKey.generate()
    print(key.to_text())
    print(f"public key {key.public_text}  key id {key.key_id}", file=sys.stderr)


if __name__ == "__main__":
    main()
