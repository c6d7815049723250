"""A secret from the settings, or one made once and kept in a file (mode 0600) under the data directory.

For keys whose only job is to stay the same across restarts of one deployment (keyed hashes, pseudonyms):
production sets them from a secret store; a laptop gets a random one on first start, without a setup step.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import SecretStr


def persistent_secret(configured: SecretStr | None, path: Path) -> bytes:
    """``configured`` when set, else the text of ``path``, made with 32 random bytes if it does not exist."""
    if configured is not None and configured.get_secret_value():
        return configured.get_secret_value().encode()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it meanwhile
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32))
    return path.read_text().strip().encode()
