"""Crypto-shredding of personal fields: one AES-256-GCM data key per shopper, kept outside Kafka and Redis.

Orders carry a shopper's name, e-mail, phone and address. Kafka keeps events forever and Redis is rebuilt
from it, so deleting them there is not possible; instead every publisher seals them with the shopper's own
key before they reach the broker (``seal_personal``), and an erasure destroys the key: every copy of the
ciphertext, in the log, in projections, in backups of either, becomes unreadable at once.

The keys live in a SQLite file (``SHOPAI_VAULT_PATH``, default ``<data_dir>/secrets/vault.sqlite3``,
mode 0600, WAL, ``secure_delete``): a file the shop backs up apart from the log, that several processes
(the gateway, ``shopai import``/``seed``) write safely at once, with no server to run. With
``SHOPAI_VAULT_MASTER_KEY`` each data key is stored wrapped (AES-256-GCM) by that master key, so the file
alone is not enough to read anything.

The cryptography is in pure functions (``seal_with``, ``open_with``, ``split_personal``); the class only
adds the key store.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.common.events import PERSONAL_FIELDS, Event
from services.common.settings import Settings

__all__ = ["PERSONAL_FIELDS", "VAULT_ERRORS", "PersonalDataVault", "VaultError", "seal_personal"]

SEALED_FIELD = "sealed_personal"
# Families whose payloads may carry personal fields (only orders today).
SEALED_FAMILIES: frozenset[str] = frozenset({"order"})

_DATA_AAD = b"shopai/personal/v1"
_WRAP_AAD = b"shopai/vault-key/v1"
_NONCE_BYTES = 12
_SCHEMA = """
CREATE TABLE IF NOT EXISTS data_keys (
    user_id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    secret BLOB NOT NULL,          -- 32 bytes, or nonce + AES-GCM(master) of them when wrapped
    wrapped INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


class VaultError(RuntimeError):
    """Sealed data that cannot be opened although its key exists (tampered, another shopper's), or a
    vault that cannot be used (a wrong or missing master key)."""


# What a key-store failure raises: the caller answers 503 and publishes nothing.
VAULT_ERRORS: tuple[type[Exception], ...] = (VaultError, sqlite3.Error, OSError)


@dataclass(frozen=True)
class DataKey:
    key_id: str
    secret: bytes  # 32 bytes, never logged

    def __repr__(self) -> str:
        return f"DataKey(key_id={self.key_id!r})"


# ------------------------------------------------------------------ pure: sealing and opening


def _aad(prefix: bytes, user_id: str, key_id: str) -> bytes:
    # The user id and key id are bound to the ciphertext: a blob copied onto another shopper's order fails.
    return b"\x00".join((prefix, user_id.encode("utf-8"), key_id.encode("ascii")))


def seal_with(key: DataKey, user_id: str, fields: Mapping[str, Any]) -> dict[str, str]:
    """The sealed form of ``fields`` (protos/events.proto SealedPersonal in its JSON mapping)."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    plaintext = json.dumps(dict(fields), ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    ciphertext = AESGCM(key.secret).encrypt(nonce, plaintext, _aad(_DATA_AAD, user_id, key.key_id))
    return {"user_id": user_id, "key_id": key.key_id, "nonce": base64.b64encode(nonce).decode(),
            "ciphertext": base64.b64encode(ciphertext).decode()}


def open_with(key: DataKey, user_id: str, sealed: Mapping[str, Any]) -> dict[str, Any]:
    """The fields sealed by ``seal_with``; VaultError when they were not sealed for this user and key."""
    if sealed.get("user_id") != user_id or sealed.get("key_id") != key.key_id:
        raise VaultError("the sealed fields belong to another shopper or key")
    try:
        nonce = base64.b64decode(str(sealed.get("nonce", "")), validate=True)
        ciphertext = base64.b64decode(str(sealed.get("ciphertext", "")), validate=True)
        plaintext = AESGCM(key.secret).decrypt(nonce, ciphertext, _aad(_DATA_AAD, user_id, key.key_id))
    except (binascii.Error, ValueError, InvalidTag) as exc:
        raise VaultError("the sealed fields are damaged or were not sealed with this shopper's key") from exc
    return json.loads(plaintext)


def split_personal(payload: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the payload without its personal fields, the non-empty personal fields)."""
    rest = {k: v for k, v in payload.items() if k not in PERSONAL_FIELDS}
    personal = {k: payload[k] for k in PERSONAL_FIELDS if payload.get(k) not in (None, "", {})}
    return rest, personal


def needs_sealing(event: Event) -> bool:
    return event.family in SEALED_FAMILIES and any(name in event.payload for name in PERSONAL_FIELDS)


def decode_master_key(text: str) -> bytes:
    """32 bytes from 64 hex characters or base64/base64url (padded or not)."""
    text = text.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 64 else base64.urlsafe_b64decode(
            text.replace("+", "-").replace("/", "_") + "=" * (-len(text) % 4))
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 32:
        raise VaultError("the vault master key must be 32 bytes, as 64 hex characters or base64")
    return raw


# ------------------------------------------------------------------ the key store


class PersonalDataVault:
    """Seal, open and destroy a shopper's personal fields. Safe to share between threads and greenlets (one
    connection behind a lock) and between processes (SQLite's file locks; keys are created with INSERT OR
    IGNORE, so two processes sealing for a new shopper at once agree on one key). The file is opened on
    first use: a process that never meets personal data never creates it."""

    def __init__(self, path: Path, master_key: bytes | None = None) -> None:
        self.path = Path(path)
        self._master = AESGCM(master_key) if master_key else None
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> PersonalDataVault:
        master = settings.vault_master_key
        return cls(settings.vault_file(), decode_master_key(master.get_secret_value()) if master else None)

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection (callers hold the lock), opened and checked against the master key on first use."""
        if self._conn is None:
            db = self._connect()
            try:
                self._check_master(db)
            except VaultError:
                db.close()
                raise
            self._conn = db
        return self._conn

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Created 0600 before SQLite opens it: the keys are readable by this user only.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # a key must outlive a crash: events sealed with it are in Kafka
        db.execute("PRAGMA secure_delete=ON")  # a destroyed key's bytes are overwritten, not just unlinked
        db.executescript(_SCHEMA)
        return db

    def _check_master(self, db: sqlite3.Connection) -> None:
        """Refuse a master key other than the one the vault's keys were wrapped with, before any key is used."""
        if self._master is None:
            return
        db.execute("INSERT OR IGNORE INTO meta VALUES ('master_check', ?)", (self._wrap("", "check", b""),))
        (check,) = db.execute("SELECT value FROM meta WHERE name = 'master_check'").fetchone()
        self._unwrap("", "check", check)

    # -- public API ------------------------------------------------------------------------------
    def seal(self, user_id: str, fields: Mapping[str, Any]) -> dict[str, str]:
        """Encrypt ``fields`` with the shopper's key, created on first use."""
        return seal_with(self._keys([user_id], create=True)[user_id], user_id, fields)

    def seal_many(self, items: list[tuple[str, Mapping[str, Any]]]) -> list[dict[str, str]]:
        """``seal`` for many (user, fields) at once: missing keys are created in one transaction."""
        keys = self._keys({user for user, _ in items}, create=True)
        return [seal_with(keys[user], user, fields) for user, fields in items]

    def open(self, user_id: str, sealed: Mapping[str, Any]) -> dict[str, Any] | None:
        """The sealed fields, or None once the shopper's key was destroyed (or replaced by a newer one)."""
        if sealed.get("user_id") != user_id:
            raise VaultError("the sealed fields belong to another shopper")
        key = self._keys([user_id], create=False).get(user_id)
        if key is None or key.key_id != sealed.get("key_id"):
            return None
        return open_with(key, user_id, sealed)

    def destroy(self, user_id: str) -> bool:
        """Delete the shopper's key (idempotent); True when there was one."""
        with self._lock:
            deleted = self._db.execute("DELETE FROM data_keys WHERE user_id = ?", (user_id,)).rowcount > 0
            if deleted:
                # Move the overwritten page into the main file and empty the WAL that still held the key.
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return deleted

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- keys ------------------------------------------------------------------------------------
    def _keys(self, user_ids: Iterable[str], create: bool) -> dict[str, DataKey]:
        users = list(dict.fromkeys(user_ids))
        with self._lock:
            found = self._select(users)
            missing = [u for u in users if u not in found] if create else []
            if missing:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany("INSERT OR IGNORE INTO data_keys VALUES (?, ?, ?, ?, ?)",
                                         [self._new_row(u) for u in missing])
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                found.update(self._select(missing))  # another process may have won the race: use its key
        return found

    def _select(self, users: list[str]) -> dict[str, DataKey]:
        found: dict[str, DataKey] = {}
        for start in range(0, len(users), 500):  # SQLite caps the number of bound parameters
            chunk = users[start:start + 500]
            rows = self._db.execute(
                f"SELECT user_id, key_id, secret, wrapped FROM data_keys WHERE user_id IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            for user, key_id, secret, wrapped in rows:
                found[user] = DataKey(key_id, self._unwrap(user, key_id, secret) if wrapped else secret)
        return found

    def _new_row(self, user_id: str) -> tuple[str, str, bytes, int, float]:
        key_id, secret = secrets.token_hex(8), AESGCM.generate_key(bit_length=256)
        if self._master is None:
            return user_id, key_id, secret, 0, time.time()
        return user_id, key_id, self._wrap(user_id, key_id, secret), 1, time.time()

    def _wrap(self, user_id: str, key_id: str, secret: bytes) -> bytes:
        assert self._master is not None
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + self._master.encrypt(nonce, secret, _aad(_WRAP_AAD, user_id, key_id))

    def _unwrap(self, user_id: str, key_id: str, blob: bytes) -> bytes:
        if self._master is None:
            raise VaultError(f"the vault {self.path} is protected by a master key; set SHOPAI_VAULT_MASTER_KEY")
        try:
            return self._master.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], _aad(_WRAP_AAD, user_id, key_id))
        except InvalidTag:
            raise VaultError(f"SHOPAI_VAULT_MASTER_KEY is not the master key of the vault {self.path}") from None


def seal_personal(events: Iterable[Event], vault: PersonalDataVault) -> list[Event]:
    """The events with the personal fields of each order sealed and their plaintext removed; other events as
    they were. (events.py requires a user id wherever personal fields appear.)"""
    events = list(events)
    todo = [(i, *split_personal(e.payload)) for i, e in enumerate(events) if needs_sealing(e)]
    sealed = vault.seal_many([(str(events[i].payload["user_id"]), personal) for i, _, personal in todo if personal])
    out, blobs = list(events), iter(sealed)
    for i, rest, personal in todo:
        payload = {**rest, SEALED_FIELD: next(blobs)} if personal else rest
        out[i] = replace(events[i], payload=payload, raw={})
    return out
