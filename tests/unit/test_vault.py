"""The personal-data vault: per-shopper keys in SQLite or a shared Redis (each test that is about the keys runs
over both), sealing that binds a shopper, destruction that shreds,
several processes at once, and the publisher path that seals orders before they reach the broker."""

from __future__ import annotations

import argparse
import base64
import json
import os
import sqlite3
import stat
import subprocess
import sys
from typing import ClassVar

import pytest
import redis
from pydantic import ValidationError

from services.common import bus
from services.common.events import InvalidEvent, new_event, parse_event
from services.common.settings import Settings
from services.common.vault import (
    VAULT_PREFIX,
    PersonalDataVault,
    RedisKeyStore,
    SQLiteKeyStore,
    StoredKey,
    VaultError,
    _switch_to_wal,
    copy_keys,
    decode_master_key,
    open_with,
    seal_personal,
)
from tests.support import ROOT

PERSONAL = {
    "customer_name": "张伟",
    "email": "wei.zhang@example.com",
    "phone": "+86 17001234567",
    "shipping_address": {"recipient": "Wei Zhang", "line1": "88 Nanjing Road", "city": "Shanghai", "country": "CN"},
}
PLAINTEXTS = ("张伟", "wei.zhang@example.com", "17001234567", "Nanjing Road", "Wei Zhang")
MASTER = "00" * 16 + "ff" * 16


def order(action: str = "created", user_id: str = "u7", **extra) -> dict:
    payload = {"order_id": "ORD-20481234", "user_id": user_id, "total": 129.0, "currency": "CNY",
               "lines": [{"product_id": "p00001", "quantity": 1, "unit_price": 129.0}], **extra}
    return new_event(f"order.{action}", payload).to_dict()


# The cache's address in the Redis vault's settings: another server, as Settings require (never dialled).
CACHE_ELSEWHERE = "redis://cache.invalid:6379/0"


@pytest.fixture(params=["sqlite", "redis"])
def vault_settings(request, tmp_path) -> dict[str, str]:
    """Settings (keyword arguments) naming a vault of each kind: a SQLite file, or the test Redis (flushed
    before and after the test)."""
    if request.param == "sqlite":
        return {"vault_path": str(tmp_path / "secrets" / "vault.sqlite3")}
    request.getfixturevalue("redis_client")
    return {"vault_redis_url": request.getfixturevalue("redis_url"), "redis_url": CACHE_ELSEWHERE}


@pytest.fixture
def open_vault(vault_settings):
    """Open the test's vault (the same store each time) with a master key or none; closed at the end."""
    opened: list[PersonalDataVault] = []

    def open_(master: str | None = None) -> PersonalDataVault:
        opened.append(PersonalDataVault.from_settings(Settings(**vault_settings, vault_master_key=master)))
        return opened[-1]

    yield open_
    for v in opened:
        v.close()


@pytest.fixture
def vault(open_vault):
    return open_vault()


def _stored_bytes(vault: PersonalDataVault) -> bytes:
    """Every byte the vault's store holds: the SQLite file (and its WAL), or the values of its Redis hashes."""
    store = vault.store
    if isinstance(store, SQLiteKeyStore):
        return b"".join(p.read_bytes() for p in store.path.parent.iterdir() if p.name.startswith(store.path.name))
    raw = store._redis
    return b"".join(v for key in raw.scan_iter(f"{VAULT_PREFIX}:*") for v in raw.hvals(key))


def test_seal_and_open_round_trip(vault):
    sealed = vault.seal("u7", PERSONAL)
    assert set(sealed) == {"user_id", "key_id", "nonce", "ciphertext"} and sealed["user_id"] == "u7"
    assert not any(text in json.dumps(sealed, ensure_ascii=False) for text in PLAINTEXTS)
    assert vault.open("u7", sealed) == PERSONAL
    again = vault.seal("u7", PERSONAL)
    assert again["key_id"] == sealed["key_id"] and again["nonce"] != sealed["nonce"]  # one key, fresh nonces


def test_the_file_is_private_and_created_on_first_use(tmp_path):
    path = tmp_path / "secrets" / "vault.sqlite3"
    v = PersonalDataVault(path)
    assert not path.exists()
    v.seal("u1", {"email": "a@example.com"})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    v.close()


def test_destroy_shreds_and_is_idempotent(vault, open_vault):
    sealed = vault.seal("u7", PERSONAL)
    other = vault.seal("u8", PERSONAL)
    assert vault.destroy("u7") is True
    assert vault.open("u7", sealed) is None
    assert open_vault().open("u7", sealed) is None  # for every process (replica) at once
    assert vault.destroy("u7") is False and vault.destroy("never-seen") is False
    assert vault.open("u8", other) == PERSONAL  # only that shopper's key went
    # The shopper's id used again later gets a new key: the old ciphertext stays unreadable.
    fresh = vault.seal("u7", {"email": "new@example.com"})
    assert fresh["key_id"] != sealed["key_id"]
    assert vault.open("u7", sealed) is None and vault.open("u7", fresh) == {"email": "new@example.com"}


def test_the_key_bytes_leave_the_store_when_destroyed(vault):
    vault.seal("u7", PERSONAL)
    secret = vault._keys(["u7"], create=False)["u7"].secret
    assert secret in _stored_bytes(vault)
    vault.destroy("u7")
    assert secret not in _stored_bytes(vault)


def test_a_key_created_where_one_exists_yields_the_stored_one(vault):
    """What decides a race between two processes: the store keeps the first key and hands it to both."""
    first = vault.seal("u7", PERSONAL)
    late = vault.store.add({"u7": StoredKey("feedfacefeedface", bytes(32), False), "u9": StoredKey("0a", bytes(32), False)})
    assert late["u7"].key_id == first["key_id"] and late["u9"] == StoredKey("0a", bytes(32), False)
    assert vault.open("u7", first) == PERSONAL


def test_ciphertext_is_bound_to_its_shopper(vault):
    sealed = vault.seal("u7", PERSONAL)
    key = vault._keys(["u7"], create=False)["u7"]
    with pytest.raises(VaultError):  # the same key, another user id in the associated data
        open_with(key, "u8", {**sealed, "user_id": "u8"})
    with pytest.raises(VaultError):  # u7's blob presented as u8's
        vault.open("u8", sealed)
    vault.seal("u8", PERSONAL)
    u8_key_id = vault._keys(["u8"], create=False)["u8"].key_id
    with pytest.raises(VaultError):  # relabelled as u8's, with u8's key id: the tag does not verify
        vault.open("u8", {**sealed, "user_id": "u8", "key_id": u8_key_id})
    flipped = bytearray(base64.b64decode(sealed["ciphertext"]))
    flipped[0] ^= 1
    with pytest.raises(VaultError):
        vault.open("u7", {**sealed, "ciphertext": base64.b64encode(bytes(flipped)).decode()})


def test_master_key_wraps_the_data_keys(open_vault):
    v = open_vault(MASTER)
    sealed = v.seal("u7", PERSONAL)
    secret = v._keys(["u7"], create=False)["u7"].secret
    v.close()
    assert secret not in _stored_bytes(v)  # only the wrapped form is stored
    assert open_vault(MASTER).open("u7", sealed) == PERSONAL
    with pytest.raises(VaultError, match="not the master key"):
        open_vault("11" * 32).open("u7", sealed)
    with pytest.raises(VaultError, match="not the master key"):  # checked before any key is made or destroyed
        open_vault("11" * 32).seal("u-new", PERSONAL)
    with pytest.raises(VaultError, match="SHOPAI_VAULT_MASTER_KEY"):
        open_vault().open("u7", sealed)
    with pytest.raises(VaultError, match="32 bytes"):
        decode_master_key("too-short")


def test_settings_name_the_vault(tmp_path):
    settings = Settings(data_dir=tmp_path, vault_master_key=MASTER)
    v = PersonalDataVault.from_settings(settings)
    assert v.store.path == tmp_path / "secrets" / "vault.sqlite3"
    assert PersonalDataVault.from_settings(Settings(vault_path=tmp_path / "elsewhere.db")).store.path.name == "elsewhere.db"
    v.close()


def test_a_redis_url_selects_the_shared_vault_with_its_own_credentials_and_the_tls_files(tmp_path):
    settings = Settings(redis_url="rediss://cache:6380/0", redis_password="cache-password",
                        redis_tls_ca_file=tmp_path / "ca.pem",
                        vault_redis_url="rediss://:vault-password@vault-redis:6379/3")
    store = PersonalDataVault.from_settings(settings).store
    assert isinstance(store, RedisKeyStore) and "vault-password" not in store.name
    kwargs = store._redis.connection_pool.connection_kwargs
    assert store._redis.connection_pool.connection_class is redis.SSLConnection
    assert (kwargs["host"], kwargs["db"], kwargs["password"]) == ("vault-redis", 3, "vault-password")
    assert kwargs["ssl_ca_certs"] == str(tmp_path / "ca.pem") and kwargs["decode_responses"] is False
    assert "vault-password" not in repr(settings)


def test_an_empty_vault_url_file_keeps_the_sqlite_vault(tmp_path, monkeypatch):
    """docker-compose's default: the secret file vault_redis_url exists and is empty."""
    (tmp_path / "vault_redis_url").write_text("\n")
    monkeypatch.setenv("SHOPAI_VAULT_REDIS_URL_FILE", str(tmp_path / "vault_redis_url"))
    assert isinstance(PersonalDataVault.from_settings(Settings(data_dir=tmp_path)).store, SQLiteKeyStore)
    (tmp_path / "vault_redis_url").write_text("redis://:pw@vault-redis:6379/0\n")
    assert isinstance(PersonalDataVault.from_settings(Settings(data_dir=tmp_path)).store, RedisKeyStore)


@pytest.mark.parametrize(("vault_url", "problem"), [
    ("redis://127.0.0.1:6379/5", "names the cache's Redis"),  # another db of the cache's server
    ("http://vault:6379", "redis:// or rediss://"),
])
def test_the_vault_refuses_a_redis_that_is_not_its_own(vault_url, problem):
    with pytest.raises(ValidationError, match=problem):
        Settings(redis_url="redis://127.0.0.1:6379/0", vault_redis_url=vault_url)


@pytest.mark.integration
def test_a_redis_that_may_evict_keys_is_refused(redis_url, redis_client):
    vault = PersonalDataVault(RedisKeyStore(redis.Redis.from_url(redis_url)))
    vault.store._redis.info = lambda section: {"maxmemory_policy": "allkeys-lru", "aof_enabled": 1}
    with pytest.raises(VaultError, match="may evict keys"):
        vault.seal("u1", PERSONAL)
    assert redis_client.keys("*") == []


@pytest.mark.integration
def test_the_redis_vault_keeps_one_hash_per_shopper(redis_url, redis_client):
    vault = PersonalDataVault.from_settings(Settings(vault_redis_url=redis_url, redis_url=CACHE_ELSEWHERE,
                                                     vault_master_key=MASTER))
    sealed = vault.seal("u7", PERSONAL)
    assert redis_client.hget("shopai:vault:key:u7", "key_id") == sealed["key_id"]
    assert redis_client.hget("shopai:vault:key:u7", "wrapped") == "1"
    assert redis_client.ttl("shopai:vault:key:u7") == -1  # never expires: only an erasure removes it
    assert vault.destroy("u7") and not redis_client.exists("shopai:vault:key:u7")
    vault.close()


@pytest.mark.integration
def test_a_sqlite_vault_moves_into_an_empty_redis_vault(tmp_path, redis_url, redis_client, capsys):
    from shopai import cli

    sqlite = PersonalDataVault(tmp_path / "vault.sqlite3", decode_master_key(MASTER))
    sealed = {f"u{i}": sqlite.seal(f"u{i}", {"email": f"u{i}@example.com"}) for i in range(1200)}
    sqlite.destroy("u5")
    sqlite.close()
    settings = Settings(vault_redis_url=redis_url, redis_url=CACHE_ELSEWHERE, vault_master_key=MASTER)
    args = argparse.Namespace(file=str(tmp_path / "vault.sqlite3"))
    assert cli.cmd_vault_copy(args, settings) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["copied"] == 1199  # after the AOF warning
    shared = PersonalDataVault.from_settings(settings)
    assert shared.open("u7", sealed["u7"]) == {"email": "u7@example.com"}
    assert shared.open("u1199", sealed["u1199"]) == {"email": "u1199@example.com"}
    assert shared.open("u5", sealed["u5"]) is None  # erased before the move: stays erased
    shared.destroy("u7")
    assert cli.cmd_vault_copy(args, settings) == 2  # never again into a vault in use: u7 would come back
    assert "holds keys already" in capsys.readouterr().err and shared.open("u7", sealed["u7"]) is None
    shared.close()


@pytest.mark.integration
def test_keys_wrapped_by_another_master_key_are_not_copied(tmp_path, redis_url, redis_client):
    PersonalDataVault(tmp_path / "vault.sqlite3", decode_master_key(MASTER)).seal("u1", PERSONAL)
    target = PersonalDataVault(RedisKeyStore(redis.Redis.from_url(redis_url)), decode_master_key("22" * 32))
    target.destroy("nobody")  # sets up the Redis vault with its own master key
    with pytest.raises(VaultError, match="another SHOPAI_VAULT_MASTER_KEY"):
        copy_keys(SQLiteKeyStore(tmp_path / "vault.sqlite3"), target.store)
    assert not target.store.holds_keys()


SEAL_IN_CHILD = """
import json, sys
from services.common.settings import Settings
from services.common.vault import PersonalDataVault
vault = PersonalDataVault.from_settings(Settings(**json.loads(sys.argv[1])))
sys.stdin.readline()  # start together
print(json.dumps([vault.seal(f"u{i}", {"email": f"u{i}@example.com"}) for i in range(200)]))
"""


class LockedAtFirst:
    """A connection whose journal-mode switch meets another process's lock a few times: SQLite answers
    "database is locked" at once there (it does not call its busy handler while it changes the mode)."""

    def __init__(self, refusals: int) -> None:
        self.refusals, self.calls = refusals, 0

    def execute(self, sql: str) -> None:
        self.calls += 1
        if self.calls <= self.refusals:
            raise sqlite3.OperationalError("database is locked")


def test_switching_a_new_file_to_wal_waits_out_another_process():
    db = LockedAtFirst(refusals=3)
    _switch_to_wal(db)
    assert db.calls == 4


def test_other_sqlite_errors_are_not_retried():
    class Broken:
        calls = 0

        def execute(self, sql):
            Broken.calls += 1
            raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        _switch_to_wal(Broken())
    assert Broken.calls == 1


def test_two_processes_sealing_at_once_agree_on_each_key(vault, vault_settings):
    children = [subprocess.Popen([sys.executable, "-c", SEAL_IN_CHILD, json.dumps(vault_settings)], cwd=ROOT,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    # The last line: a Redis without AOF (the test server) is warned about on stdout before it.
    outputs = [json.loads(child.communicate(timeout=60)[0].splitlines()[-1]) for child in children]
    for sealed_list in outputs:
        for i, sealed in enumerate(sealed_list):
            assert vault.open(f"u{i}", sealed) == {"email": f"u{i}@example.com"}
    assert [s["key_id"] for s in outputs[0]] == [s["key_id"] for s in outputs[1]]
    assert vault.destroy("u3") and vault.open("u3", outputs[1][3]) is None


# ------------------------------------------------------------------ validation and the publisher path


def test_orders_accept_personal_fields_with_a_user():
    assert parse_event(order(**PERSONAL)).payload["email"] == PERSONAL["email"]
    with pytest.raises(InvalidEvent, match="user_id"):
        parse_event(order("shipped", user_id="", shipping_address=PERSONAL["shipping_address"]))
    with pytest.raises(InvalidEvent, match="e-mail"):
        parse_event(order(email="not-an-address"))
    with pytest.raises(InvalidEvent, match="phone"):
        parse_event(order(phone="call me maybe"))
    with pytest.raises(InvalidEvent, match="unknown field|Message type"):
        parse_event(order(shipping_address={"planet": "Mars"}))


def test_seal_personal_replaces_the_plaintext(vault):
    events = [parse_event(order(**PERSONAL)), parse_event(order("paid")),
              new_event("interaction.view", {"user_id": "u7", "product_id": "p00001"}),
              parse_event(order("shipped", email="", carrier="SF Express"))]
    sealed = seal_personal(events, vault)
    created, paid, view, shipped = (e.to_dict() for e in sealed)
    assert not any(text in json.dumps(created, ensure_ascii=False) for text in PLAINTEXTS)
    assert vault.open("u7", created["payload"]["sealed_personal"]) == PERSONAL
    assert parse_event(created).payload["sealed_personal"]["user_id"] == "u7"  # what consumers will read
    assert paid == events[1].to_dict() and view == events[2].to_dict()
    assert "email" not in shipped["payload"] and "sealed_personal" not in shipped["payload"]  # empty: dropped
    with pytest.raises(InvalidEvent, match="not both"):
        parse_event({**created, "payload": {**created["payload"], "email": "x@example.com"}})


class RecordingProducer:
    """Stands in for KafkaProducer: keeps what would have gone to the broker."""

    sent: ClassVar[list[tuple[str, bytes | None, bytes]]] = []

    def __init__(self, **config) -> None:
        RecordingProducer.sent = []

    def send(self, topic, key=None, value=None):
        self.sent.append((topic, key, value))
        return self

    def get(self, timeout=None):
        return None

    def flush(self, timeout=None):
        pass

    def close(self, timeout=None):
        pass


def test_every_publisher_seals_orders_before_the_broker(monkeypatch, tmp_path):
    monkeypatch.setattr(bus, "KafkaProducer", RecordingProducer)
    settings = Settings(data_dir=tmp_path)
    publisher = bus.EventPublisher(settings)  # no vault given: the settings' vault, opened on first use
    publisher.publish([order(**PERSONAL), new_event("interaction.view", {"user_id": "u7", "product_id": "p1"})])
    (topic, key, value), (_, _, view) = RecordingProducer.sent
    assert topic == "orders.v1" and key == b"ORD-20481234"
    assert not any(text.encode() in value for text in PLAINTEXTS)
    published = parse_event(json.loads(value))
    publisher.close()
    vault = PersonalDataVault.from_settings(settings)
    assert vault.open("u7", published.payload["sealed_personal"]) == PERSONAL
    vault.close()
    assert json.loads(view)["payload"] == {"user_id": "u7", "product_id": "p1"}


def test_shopai_import_stops_with_a_clear_message_when_the_vault_cannot_be_used(monkeypatch, tmp_path, capsys):
    from shopai import cli

    monkeypatch.setattr(bus, "KafkaProducer", RecordingProducer)
    monkeypatch.setattr(bus, "ensure_topics", lambda *a, **k: None)
    PersonalDataVault(tmp_path / "secrets" / "vault.sqlite3", decode_master_key(MASTER)).seal("u1", {"email": "a@b.cn"})
    events = tmp_path / "orders.jsonl"
    events.write_text(json.dumps(order(**PERSONAL), ensure_ascii=False) + "\n", encoding="utf-8")
    settings = Settings(data_dir=tmp_path, vault_master_key="22" * 32)  # not the vault's master key
    args = argparse.Namespace(file=str(events), format=None, batch=1000, rejects=None, quiet=True, kind="events",
                              map="", currency="USD", timezone="UTC", no_catalog=False)
    assert cli.cmd_import(args, settings) == 2
    assert "vault cannot be used" in capsys.readouterr().err
    assert RecordingProducer.sent == []  # nothing went out unsealed


def test_the_demo_shoppers_have_stable_made_up_details():
    from shopai.demo.people import personal_details

    details = personal_details(42, "u7")
    assert details == personal_details(42, "u7") and details != personal_details(43, "u7")
    assert details["email"].endswith("@example.com") and details["phone"].startswith("+86 1700")
    assert parse_event(order(**details)).payload["shipping_address"]["country"] == "CN"
