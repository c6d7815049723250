"""Crypto-shredding of personal fields: one AES-256-GCM data key per shopper, kept outside Kafka and the cache.

Orders carry a shopper's name, e-mail, phone and address. Kafka keeps events forever and Redis is rebuilt
from it, so deleting them there is not possible; instead every publisher seals them with the shopper's own
key before they reach the broker (``seal_personal``), and an erasure destroys the key: every copy of the
ciphertext, in the log, in projections, in backups of either, becomes unreadable at once.

The keys live outside Kafka and the cache, in one of two key stores (``KeyStore``):
- a SQLite file (``SHOPAI_VAULT_PATH``, default ``<data_dir>/secrets/vault.sqlite3``, mode 0600, WAL,
  ``secure_delete``) that several processes of one host (the gateway, ``shopai import``/``seed``) write
  safely at once, with no server to run; never on network storage (SQLite's locks are not safe there);
- with ``SHOPAI_VAULT_REDIS_URL``, a Redis of its own, persistent (AOF) and backed up, that every gateway
  replica shares (Kubernetes): an erasure destroys the key for all of them at once. Not the feature cache,
  which is flushed and rebuilt: the vault is the only copy of its keys.
With ``SHOPAI_VAULT_MASTER_KEY`` each data key is stored wrapped (AES-256-GCM) by that master key, in either
store, so the store alone (or its backup) is not enough to read anything.

The cryptography is in pure functions (``seal_with``, ``open_with``, ``split_personal``) and in
``PersonalDataVault`` (wrapping, the master-key check); the stores only keep bytes.
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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import redis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tenacity import retry, retry_if_exception, stop_after_delay, wait_random_exponential

from services.common import cache
from services.common.events import PERSONAL_FIELDS, Event
from services.common.logging import get_logger
from services.common.settings import Settings

__all__ = ["PERSONAL_FIELDS", "VAULT_ERRORS", "KeyStore", "PersonalDataVault", "RedisKeyStore", "SQLiteKeyStore",
           "VaultError", "seal_personal"]

log = get_logger(__name__)

SEALED_FIELD = "sealed_personal"
# Families whose payloads may carry personal fields (only orders today).
SEALED_FAMILIES: frozenset[str] = frozenset({"order"})

_DATA_AAD = b"shopai/personal/v1"
_WRAP_AAD = b"shopai/vault-key/v1"
_NONCE_BYTES = 12
VAULT_PREFIX = "shopai:vault"
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
VAULT_ERRORS: tuple[type[Exception], ...] = (VaultError, sqlite3.Error, redis.RedisError, OSError)


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


# ------------------------------------------------------------------ the key stores


class StoredKey(NamedTuple):
    """A data key as a store keeps it: the 32 bytes, or, ``wrapped``, nonce + AES-GCM(master) of them."""

    key_id: str
    secret: bytes
    wrapped: bool


class KeyStore(Protocol):
    """Where the data keys live; no cryptography here (the vault wraps and unwraps). ``name`` says where,
    for messages, and never holds a password."""

    name: str

    def get(self, user_ids: Sequence[str]) -> dict[str, StoredKey]:
        """The stored keys of those shoppers that have one."""
        ...

    def add(self, keys: Mapping[str, StoredKey]) -> dict[str, StoredKey]:
        """Store each key unless its shopper has one already; the keys stored now (a race's winner's)."""
        ...

    def delete(self, user_id: str) -> bool:
        """Remove the shopper's key (idempotent); True when there was one."""
        ...

    def claim(self, name: str, value: bytes) -> bytes:
        """A vault-wide value: ``value`` stored under ``name`` unless one is, and the stored one returned."""
        ...

    def close(self) -> None:
        ...


@retry(retry=retry_if_exception(lambda e: isinstance(e, sqlite3.OperationalError) and "locked" in str(e)),
       wait=wait_random_exponential(multiplier=0.02, max=0.5), stop=stop_after_delay(30), reraise=True)
def _switch_to_wal(db: sqlite3.Connection) -> None:
    """WAL mode, retried: SQLite does not call its busy handler while it changes the journal mode, so two
    processes opening a new file at once can get "database is locked" at once instead of waiting."""
    db.execute("PRAGMA journal_mode=WAL")


class SQLiteKeyStore:
    """Keys in a SQLite file: one host, no server to run. Safe between threads (one connection behind a
    lock) and processes (SQLite's file locks; INSERT OR IGNORE). Opened on first use: a process that never
    meets personal data never creates the file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection (callers hold the lock), opened on first use."""
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Created 0600 before SQLite opens it: the keys are readable by this user only.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            _switch_to_wal(db)
            db.execute("PRAGMA synchronous=FULL")  # a key must outlive a crash: events sealed with it are in Kafka
            db.execute("PRAGMA secure_delete=ON")  # a destroyed key's bytes are overwritten, not just unlinked
            db.executescript(_SCHEMA)
            self._conn = db
        return self._conn

    def get(self, user_ids: Sequence[str]) -> dict[str, StoredKey]:
        found: dict[str, StoredKey] = {}
        with self._lock:
            for start in range(0, len(user_ids), 500):  # SQLite caps the number of bound parameters
                chunk = list(user_ids[start:start + 500])
                rows = self._db.execute(
                    f"SELECT user_id, key_id, secret, wrapped FROM data_keys WHERE user_id IN "
                    f"({','.join('?' * len(chunk))})", chunk).fetchall()
                found.update({user: StoredKey(key_id, secret, bool(wrapped)) for user, key_id, secret, wrapped in rows})
        return found

    def add(self, keys: Mapping[str, StoredKey]) -> dict[str, StoredKey]:
        rows = [(user, k.key_id, k.secret, int(k.wrapped), time.time()) for user, k in keys.items()]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR IGNORE INTO data_keys VALUES (?, ?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return self.get(list(keys))  # another process may have won the race: its key is the one

    def delete(self, user_id: str) -> bool:
        with self._lock:
            deleted = self._db.execute("DELETE FROM data_keys WHERE user_id = ?", (user_id,)).rowcount > 0
            if deleted:
                # Move the overwritten page into the main file and empty the WAL that still held the key.
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return deleted

    def claim(self, name: str, value: bytes) -> bytes:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (name, value))
            return self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()[0]

    def meta(self, name: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    def scan(self, batch: int = 500) -> Iterator[dict[str, StoredKey]]:
        """Every stored key, in batches (for ``copy_keys``)."""
        after = ""
        while True:
            with self._lock:
                rows = self._db.execute("SELECT user_id, key_id, secret, wrapped FROM data_keys WHERE user_id > ? "
                                        "ORDER BY user_id LIMIT ?", (after, batch)).fetchall()
            if not rows:
                return
            yield {user: StoredKey(key_id, secret, bool(wrapped)) for user, key_id, secret, wrapped in rows}
            after = rows[-1][0]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


# Creates the shopper's key unless one exists and returns the stored one, in one atomic step: two gateways
# sealing for a new shopper at once agree on one key.
_CREATE_KEY = """
if redis.call('HSETNX', KEYS[1], 'key_id', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'secret', ARGV[2], 'wrapped', ARGV[3], 'created_at', ARGV[4])
end
return redis.call('HMGET', KEYS[1], 'key_id', 'secret', 'wrapped')
"""


class RedisKeyStore:
    """Keys in a Redis of their own that every gateway replica shares: one hash per shopper,
    ``<prefix>:key:<user_id>`` (key_id, secret, wrapped, created_at), and ``<prefix>:meta``.

    Never the feature cache: the cache is flushed on a replay and may evict keys, whereas a lost data key
    is the shopper's personal data lost for good. The operator runs this Redis with AOF persistence, an
    eviction policy that spares keys without a TTL, and backups; a Redis that would evict any key
    (``allkeys-*``) is refused on first use."""

    def __init__(self, client: redis.Redis, prefix: str = VAULT_PREFIX) -> None:
        self._redis = client
        self._prefix = prefix
        self._create = client.register_script(_CREATE_KEY)
        pool = client.connection_pool.connection_kwargs
        self.name = f"Redis {pool.get('host', pool.get('path'))}:{pool.get('port', '')}/{pool.get('db', 0)}"
        self._checked = False

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisKeyStore:
        """The store at SHOPAI_VAULT_REDIS_URL, with the deployment's Redis TLS files; bytes, not str."""
        assert settings.vault_redis_url is not None
        return cls(cache.connect(settings, url=settings.vault_redis_url.get_secret_value(), decode_responses=False))

    def _key(self, user_id: str) -> str:
        return f"{self._prefix}:key:{user_id}"

    @property
    def _client(self) -> redis.Redis:
        if not self._checked:
            self._check_server()
            self._checked = True
        return self._redis

    def _check_server(self) -> None:
        try:
            info = {**self._redis.info("memory"), **self._redis.info("persistence")}
        except redis.ResponseError as exc:  # INFO denied by the server's ACL: the operator vouches for it
            log.warning("vault_redis_unchecked", store=self.name, error=str(exc))
            return
        if str(info.get("maxmemory_policy", "")).startswith("allkeys"):
            raise VaultError(f"the vault's {self.name} may evict keys (maxmemory-policy "
                             f"{info['maxmemory_policy']}); use noeviction, or a Redis apart from the cache")
        if not int(info.get("aof_enabled", 0)):
            log.warning("vault_redis_without_aof", store=self.name,
                        hint="run the vault's Redis with appendonly yes and fsync everysec or always")

    def get(self, user_ids: Sequence[str]) -> dict[str, StoredKey]:
        pipe = self._client.pipeline(transaction=False)
        for user in user_ids:
            pipe.hmget(self._key(user), "key_id", "secret", "wrapped")
        return {user: _stored(row) for user, row in zip(user_ids, pipe.execute(), strict=True) if row[0] is not None}

    def add(self, keys: Mapping[str, StoredKey]) -> dict[str, StoredKey]:
        pipe = self._client.pipeline(transaction=False)
        for user, k in keys.items():
            self._create(keys=[self._key(user)], args=[k.key_id, k.secret, int(k.wrapped), time.time()], client=pipe)
        return {user: _stored(row) for user, row in zip(keys, pipe.execute(), strict=True)}

    def delete(self, user_id: str) -> bool:
        return self._client.delete(self._key(user_id)) > 0

    def holds_keys(self) -> bool:
        return next(self._client.scan_iter(match=self._key("*"), count=1000), None) is not None

    def claim(self, name: str, value: bytes) -> bytes:
        pipe = self._client.pipeline(transaction=False)
        pipe.hsetnx(f"{self._prefix}:meta", name, value)
        pipe.hget(f"{self._prefix}:meta", name)
        return pipe.execute()[1]

    def close(self) -> None:
        self._redis.close()


def _stored(row: Sequence[bytes]) -> StoredKey:
    key_id, secret, wrapped = row
    return StoredKey(key_id.decode("ascii"), secret, wrapped == b"1")


# ------------------------------------------------------------------ the vault


class PersonalDataVault:
    """Seal, open and destroy a shopper's personal fields: the data keys, their wrapping by the master key
    and the master-key check, over a ``KeyStore`` (a SQLite file given by its path, or a shared Redis).
    Safe to share between threads and greenlets, and between processes: keys are created only where none
    exists, so two processes sealing for a new shopper at once agree on one key."""

    def __init__(self, store: KeyStore | str | os.PathLike[str], master_key: bytes | None = None) -> None:
        self.store: KeyStore = SQLiteKeyStore(Path(store)) if isinstance(store, str | os.PathLike) else store
        self._master = AESGCM(master_key) if master_key else None
        self._lock = threading.Lock()
        self._checked = False

    @classmethod
    def from_settings(cls, settings: Settings) -> PersonalDataVault:
        """The Redis vault when SHOPAI_VAULT_REDIS_URL is set (several replicas), else the SQLite file."""
        master = settings.vault_master_key
        store: KeyStore = (RedisKeyStore.from_settings(settings) if settings.vault_redis_url
                           else SQLiteKeyStore(settings.vault_file()))
        return cls(store, decode_master_key(master.get_secret_value()) if master else None)

    def _check_master(self) -> None:
        """Refuse a master key other than the one the vault's keys were wrapped with, before any key is used."""
        with self._lock:
            if self._checked or self._master is None:
                return
            self._unwrap("", "check", self.store.claim("master_check", self._wrap("", "check", b"")))
            self._checked = True

    # -- public API ------------------------------------------------------------------------------
    def seal(self, user_id: str, fields: Mapping[str, Any]) -> dict[str, str]:
        """Encrypt ``fields`` with the shopper's key, created on first use."""
        return seal_with(self._keys([user_id], create=True)[user_id], user_id, fields)

    def seal_many(self, items: list[tuple[str, Mapping[str, Any]]]) -> list[dict[str, str]]:
        """``seal`` for many (user, fields) at once: keys read, and missing ones created, in one go."""
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
        self._check_master()
        return self.store.delete(user_id)

    def close(self) -> None:
        self.store.close()
        with self._lock:
            self._checked = False

    # -- keys ------------------------------------------------------------------------------------
    def _keys(self, user_ids: Iterable[str], create: bool) -> dict[str, DataKey]:
        self._check_master()
        users = list(dict.fromkeys(user_ids))
        stored = self.store.get(users)
        missing = [u for u in users if u not in stored] if create else []
        if missing:
            stored.update(self.store.add({u: self._new_key(u) for u in missing}))
        return {user: DataKey(k.key_id, self._unwrap(user, k.key_id, k.secret) if k.wrapped else k.secret)
                for user, k in stored.items()}

    def _new_key(self, user_id: str) -> StoredKey:
        key_id, secret = secrets.token_hex(8), AESGCM.generate_key(bit_length=256)
        if self._master is None:
            return StoredKey(key_id, secret, False)
        return StoredKey(key_id, self._wrap(user_id, key_id, secret), True)

    def _wrap(self, user_id: str, key_id: str, secret: bytes) -> bytes:
        assert self._master is not None
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + self._master.encrypt(nonce, secret, _aad(_WRAP_AAD, user_id, key_id))

    def _unwrap(self, user_id: str, key_id: str, blob: bytes) -> bytes:
        if self._master is None:
            raise VaultError(f"the vault {self.store.name} is protected by a master key; "
                             "set SHOPAI_VAULT_MASTER_KEY")
        try:
            return self._master.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], _aad(_WRAP_AAD, user_id, key_id))
        except InvalidTag:
            raise VaultError(f"SHOPAI_VAULT_MASTER_KEY is not the master key of the vault {self.store.name}") from None


def copy_keys(source: SQLiteKeyStore, target: RedisKeyStore) -> int:
    """Copy every key of a SQLite vault into a new Redis vault (a shop moving from one host to Kubernetes),
    as stored: wrapped keys stay wrapped by the same master key. The number of keys copied."""
    if target.holds_keys():
        # A shopper erased there since the move would have their key back.
        raise VaultError(f"the vault {target.name} holds keys already; copy into an empty one, before the "
                         "gateway uses it")
    check = source.meta("master_check")
    if check is not None and target.claim("master_check", check) != check:
        raise VaultError(f"the vault {target.name} was set up with another SHOPAI_VAULT_MASTER_KEY")
    copied = 0
    for batch in source.scan():
        target.add(batch)
        copied += len(batch)
    return copied


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
