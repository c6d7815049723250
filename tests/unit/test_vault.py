"""The personal-data vault: per-shopper keys in SQLite, sealing that binds a shopper, destruction that shreds,
several processes at once, and the publisher path that seals orders before they reach the broker."""

from __future__ import annotations

import argparse
import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from services.common import bus
from services.common.events import InvalidEvent, new_event, parse_event
from services.common.settings import Settings
from services.common.vault import (
    PersonalDataVault,
    VaultError,
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


@pytest.fixture
def vault(tmp_path):
    v = PersonalDataVault(tmp_path / "secrets" / "vault.sqlite3")
    yield v
    v.close()


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


def test_destroy_shreds_and_is_idempotent(vault):
    sealed = vault.seal("u7", PERSONAL)
    other = vault.seal("u8", PERSONAL)
    assert vault.destroy("u7") is True
    assert vault.open("u7", sealed) is None
    assert vault.destroy("u7") is False and vault.destroy("never-seen") is False
    assert vault.open("u8", other) == PERSONAL  # only that shopper's key went
    # The shopper's id used again later gets a new key: the old ciphertext stays unreadable.
    fresh = vault.seal("u7", {"email": "new@example.com"})
    assert fresh["key_id"] != sealed["key_id"]
    assert vault.open("u7", sealed) is None and vault.open("u7", fresh) == {"email": "new@example.com"}


def test_the_key_bytes_leave_the_file_when_destroyed(vault):
    vault.seal("u7", PERSONAL)
    secret = vault._keys(["u7"], create=False)["u7"].secret
    assert secret in _vault_bytes(vault.path)
    vault.destroy("u7")
    assert secret not in _vault_bytes(vault.path)


def _vault_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name))


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


def test_master_key_wraps_the_data_keys(tmp_path):
    path = tmp_path / "vault.sqlite3"
    v = PersonalDataVault(path, decode_master_key(MASTER))
    sealed = v.seal("u7", PERSONAL)
    secret = v._keys(["u7"], create=False)["u7"].secret
    v.close()
    assert secret not in _vault_bytes(path)  # only the wrapped form is stored
    again = PersonalDataVault(path, decode_master_key(MASTER))
    assert again.open("u7", sealed) == PERSONAL
    again.close()
    with pytest.raises(VaultError, match="not the master key"):
        PersonalDataVault(path, decode_master_key("11" * 32)).open("u7", sealed)
    with pytest.raises(VaultError, match="SHOPAI_VAULT_MASTER_KEY"):
        PersonalDataVault(path).open("u7", sealed)
    with pytest.raises(VaultError, match="32 bytes"):
        decode_master_key("too-short")


def test_settings_name_the_vault(tmp_path):
    settings = Settings(data_dir=tmp_path, vault_master_key=MASTER)
    v = PersonalDataVault.from_settings(settings)
    assert v.path == tmp_path / "secrets" / "vault.sqlite3"
    assert PersonalDataVault.from_settings(Settings(vault_path=tmp_path / "elsewhere.db")).path.name == "elsewhere.db"
    v.close()


SEAL_IN_CHILD = """
import json, sys
from services.common.vault import PersonalDataVault
vault = PersonalDataVault(sys.argv[1])
sys.stdin.readline()  # start together
print(json.dumps([vault.seal(f"u{i}", {"email": f"u{i}@example.com"}) for i in range(200)]))
"""


def test_two_processes_sealing_at_once_agree_on_each_key(vault):
    children = [subprocess.Popen([sys.executable, "-c", SEAL_IN_CHILD, str(vault.path)], cwd=ROOT,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    outputs = [json.loads(child.communicate(timeout=60)[0]) for child in children]
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
    args = argparse.Namespace(file=str(events), format=None, batch=1000, rejects=None, quiet=True)
    assert cli.cmd_import(args, settings) == 2
    assert "vault cannot be used" in capsys.readouterr().err
    assert RecordingProducer.sent == []  # nothing went out unsealed


def test_the_demo_shoppers_have_stable_made_up_details():
    from shopai.demo.people import personal_details

    details = personal_details(42, "u7")
    assert details == personal_details(42, "u7") and details != personal_details(43, "u7")
    assert details["email"].endswith("@example.com") and details["phone"].startswith("+86 1700")
    assert parse_event(order(**details)).payload["shipping_address"]["country"] == "CN"
