"""Idempotent conversation turns (issue #21): a message sent again with its ``message_id`` (a caller's retry
after a lost connection, the gateway's own retry while the assistant restarts) gets the first answer back
instead of being applied twice. Pure: the ids and fingerprints; the remembered answers live in the store."""

from __future__ import annotations

import hashlib
import re
import uuid

# How long a turn's answer is remembered for a retry (a client gives up long before).
REPLAY_SECONDS = 600
MESSAGE_ID = re.compile(r"[A-Za-z0-9_.:-]{16,64}")
_NAMESPACE = uuid.UUID("5b0a3c1e-21c4-4d5e-9a60-6f1f2a7c0d21")


def check_message_id(message_id: str) -> str | None:
    """The reason a message id is refused, or None (empty: the caller asked for no promise)."""
    if not message_id or MESSAGE_ID.fullmatch(message_id):
        return None
    return ("message_id must be 16 to 64 characters of letters, digits and _ . : - (a UUID is best), "
            f"new for every message; got {len(message_id)} characters")


def fingerprint(session_id: str, message: str, user_id: str, user_verified: bool, language: str) -> str:
    """What makes a retry the same message: the same id with another fingerprint is another message."""
    text = "\x1f".join((session_id, message, user_id, "1" if user_verified else "0", language))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def event_id(session_id: str, message_id: str, action: str) -> str | None:
    """The id of an event a turn publishes (a hand-off, a relayed message): the same for a retry, so that
    every consumer, which counts each event id once, applies it once. None without a message id (a new one)."""
    if not message_id:
        return None
    return str(uuid.uuid5(_NAMESPACE, f"{session_id}\x1f{message_id}\x1f{action}"))
