"""The event envelope: parse, validate against ``protos/events.proto``, and build.

The proto file is the schema; JSON (proto3 JSON mapping) is the wire format.
``json_format.ParseDict`` rejects unknown payload fields and wrong types; the
envelope's few fields are checked directly against ``Envelope``'s; the rules a
proto3 schema cannot say (required fields, allowed types, value ranges) live in
``_RULES`` below, once, for the gateway and every consumer alike.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from protos import events_pb2
from services.common.topics import route

SCHEMA_VERSION = 1

EVENT_TYPES: dict[str, tuple[str, ...]] = {
    "product": ("upserted", "removed"),
    "interaction": ("view", "click", "add_to_cart", "purchase", "rating", "search"),
    "order": ("created", "paid", "shipped", "delivered", "cancelled", "returned", "refunded"),
    "inventory": ("set", "received", "adjusted"),
    "code": ("issued", "scanned", "revoked"),
    "user": ("erased",),
    "handoff": ("requested", "cancel_requested", "claimed", "message", "closed"),
    "alert": ("reorder_needed", "counterfeit_detected", "code_suspicious", "model_gate_failed", "acknowledged"),
    "recommendation": ("served",),
}
ALL_TYPES: frozenset[str] = frozenset(f"{fam}.{act}" for fam, acts in EVENT_TYPES.items() for act in acts)

ENVELOPE_FIELDS: frozenset[str] = frozenset(events_pb2.Envelope.DESCRIPTOR.fields_by_name)

PAYLOAD_MESSAGES: dict[str, type[Message]] = {
    "product": events_pb2.Product,
    "interaction": events_pb2.Interaction,
    "order": events_pb2.Order,
    "inventory": events_pb2.InventoryChange,
    "code": events_pb2.CodeEvent,
    "user": events_pb2.UserErased,
    "handoff": events_pb2.HandoffEvent,
    "alert": events_pb2.Alert,
    "recommendation": events_pb2.RecommendationServed,
}


class InvalidEvent(ValueError):
    """An event that does not satisfy the schema; the message says why."""


# -- the payload's schema, checked fast ------------------------------------------------------------------------
# ``json_format.ParseDict`` is the payload's judge, but it costs ~50 µs an event, most of a consumer's validation.
# ``_plainly_valid`` accepts only payloads that ParseDict accepts too, and only in their plain form (each field by
# its proto name, a string as a str without unpaired surrogates, an integer as an int in its range, a double as a
# finite int or float, a list for a repeated field, a dict of strings for a map<string, string>); anything else
# (a JSON name, a null, a quoted number, bytes, ...) goes to ParseDict for its verdict and its reason.
# tests/unit/test_events_fast_check.py holds the two to the same verdicts.

_Check = Callable[[Any], bool]
_INTEGER_RANGES = {FieldDescriptor.TYPE_INT32: (-(2**31), 2**31), FieldDescriptor.TYPE_INT64: (-(2**63), 2**63),
                   FieldDescriptor.TYPE_UINT32: (0, 2**32), FieldDescriptor.TYPE_UINT64: (0, 2**64),
                   FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31), FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63)}


def _plain_string(value: Any) -> bool:
    if type(value) is not str:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")  # an unpaired surrogate (JSON's "\ud800") is refused by protobuf
    except UnicodeEncodeError:
        return False
    return True


def _plain_double(value: Any) -> bool:
    kind = type(value)
    if kind is float:
        return math.isfinite(value)
    return kind is int and -(2**53) <= value <= 2**53


def _scalar_check(fd: FieldDescriptor) -> _Check | None:
    if fd.type == FieldDescriptor.TYPE_STRING:
        return _plain_string
    if fd.type == FieldDescriptor.TYPE_DOUBLE:
        return _plain_double
    if fd.type == FieldDescriptor.TYPE_BOOL:
        return lambda value: type(value) is bool
    if fd.type in _INTEGER_RANGES:
        low, high = _INTEGER_RANGES[fd.type]
        return lambda value: type(value) is int and low <= value < high
    if fd.type == FieldDescriptor.TYPE_MESSAGE and not fd.message_type.GetOptions().map_entry:
        fields = _field_checks(fd.message_type)
        if fields is None:
            return None
        return lambda value: type(value) is dict and _plain_message(value, fields)
    return None  # bytes, enums, floats, maps of other types: ParseDict decides


def _field_check(fd: FieldDescriptor) -> _Check | None:
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        key_fd, value_fd = fd.message_type.fields_by_name["key"], fd.message_type.fields_by_name["value"]
        if key_fd.type != FieldDescriptor.TYPE_STRING or value_fd.type != FieldDescriptor.TYPE_STRING:
            return None
        return lambda value: type(value) is dict and all(
            _plain_string(k) and _plain_string(v) for k, v in value.items())
    item = _scalar_check(fd)
    if item is None:
        return None
    if fd.is_repeated:
        return lambda value: type(value) is list and all(item(v) for v in value)
    return item


def _field_checks(descriptor: Descriptor) -> dict[str, _Check | None] | None:
    if any(len(oneof.fields) > 1 for oneof in descriptor.oneofs):
        return None  # two members of one oneof set is ParseDict's to refuse
    return {fd.name: _field_check(fd) for fd in descriptor.fields}


def _plain_message(value: dict[str, Any], fields: dict[str, _Check | None]) -> bool:
    for name, item in value.items():
        check = fields.get(name)
        if check is None or not check(item):
            return False
    return True


def _plainly_valid(payload: dict[str, Any], family: str) -> bool:
    fields = _PAYLOAD_CHECKS.get(family)
    return fields is not None and _plain_message(payload, fields)


def _check_payload(payload: dict[str, Any], family: str) -> None:
    """The payload against its proto message: InvalidEvent with ParseDict's reason when it does not fit."""
    if _plainly_valid(payload, family):
        return
    try:
        json_format.ParseDict(payload, PAYLOAD_MESSAGES[family]())
    except Exception as exc:  # noqa: BLE001 - whatever ParseDict raises, the payload is what it could not read
        # Besides its ParseError, ParseDict lets through an OverflowError (an integer of hundreds of digits for a
        # double) and upb's SystemError (a string with an unpaired surrogate where a message belongs): either
        # used to escape as a crash, a poison event for the consumer and a 500 at the gateway.
        raise InvalidEvent(f"payload: {exc}") from None


@dataclass(frozen=True)
class Event:
    event_id: str
    type: str
    occurred_at: datetime
    payload: dict[str, Any]
    source: str = ""
    schema_version: int = SCHEMA_VERSION
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def family(self) -> str:
        return self.type.split(".", 1)[0]

    @cached_property
    def action(self) -> str:
        return self.type.split(".", 1)[1]

    @property
    def topic(self) -> str:
        return route(self.type)[0]

    @property
    def key(self) -> str:
        return str(self.payload.get(route(self.type)[1], ""))

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "type": self.type,
            "schema_version": self.schema_version,
            "occurred_at": format_time(self.occurred_at),
            "source": self.source,
            "payload": self.payload,
        }


def format_time(ts: datetime) -> str:
    """The one wire format for instants: UTC, ISO 8601, ``Z``, microseconds only when there are any."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")


def now_time() -> str:
    """``format_time`` of now."""
    return format_time(datetime.now(UTC))


def epoch_time(seconds: float) -> str:
    """``format_time`` of a Unix time."""
    return format_time(datetime.fromtimestamp(float(seconds), UTC))


def _require(payload: dict[str, Any], *names: str) -> None:
    missing = [n for n in names if payload.get(n) in (None, "", [])]
    if missing:
        raise InvalidEvent(f"payload is missing {', '.join(missing)}")


def _check_stars(rating: Any) -> None:
    """A rating is a whole number of stars, 1..5; other scales are refused with how to send them
    (the shop knows its scale: the service would only guess)."""
    if isinstance(rating, bool) or not isinstance(rating, (int, float)):
        return  # missing or not a number: the schema's own message says so
    if rating != int(rating):
        raise InvalidEvent(f"rating must be a whole number of stars from 1 to 5, not {rating}: round half stars "
                           f"(e.g. {rating} -> {min(5, max(1, int(rating) + 1))}) before sending")
    if not 1 <= rating <= 5:
        raise InvalidEvent(f"rating must be between 1 and 5, not {int(rating)}: rescale ratings on another scale "
                           f"(e.g. 0-10 -> max(1, round(r / 2)))")


def _check_interaction(action: str, p: dict[str, Any]) -> None:
    _require(p, "user_id")
    if action == "search":
        _require(p, "query")
    else:
        _require(p, "product_id")
    if action == "rating" and not 1 <= int(p.get("rating", 0)) <= 5:
        raise InvalidEvent("rating must be between 1 and 5")
    if p.get("recommendation_id") and not RECOMMENDATION_ID.match(str(p["recommendation_id"])):
        raise InvalidEvent("recommendation_id must be the 32 lowercase hex digits of a recommendation answer")
    if "quantity" in p and int(p["quantity"]) < 1:
        raise InvalidEvent("quantity must be at least 1")
    if "price" in p and float(p["price"]) < 0:
        raise InvalidEvent("price must not be negative")


def _check_product(action: str, p: dict[str, Any]) -> None:
    _require(p, "product_id")
    if action == "upserted":
        _require(p, "title", "category")
        if float(p.get("price", 0)) < 0:
            raise InvalidEvent("price must not be negative")


def _check_order(action: str, p: dict[str, Any]) -> None:
    _require(p, "order_id")
    if action == "created":
        _require(p, "user_id", "lines")
    for i, line in enumerate(p.get("lines", [])):
        if not line.get("product_id"):
            raise InvalidEvent(f"lines[{i}] is missing product_id")
        if int(line.get("quantity", 0)) < 1:
            raise InvalidEvent(f"lines[{i}].quantity must be at least 1")
        if float(line.get("unit_price", 0)) < 0:
            raise InvalidEvent(f"lines[{i}].unit_price must not be negative")
    _check_personal(p)


# An order's fields that identify a person: accepted in plaintext, sealed before Kafka (services/common/vault.py).
PERSONAL_FIELDS: tuple[str, ...] = ("customer_name", "email", "phone", "shipping_address")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ().-]{2,30}$")


def _check_personal(p: dict[str, Any]) -> None:
    personal = [name for name in PERSONAL_FIELDS if p.get(name) not in (None, "", {})]
    if personal and p.get("sealed_personal"):
        raise InvalidEvent(f"an order carries either {', '.join(personal)} or sealed_personal, not both")
    if (personal or p.get("sealed_personal")) and not p.get("user_id"):
        raise InvalidEvent("personal fields need the order's user_id: they are sealed with that shopper's key")
    if p.get("email") and (len(p["email"]) > 254 or not _EMAIL.match(p["email"])):
        raise InvalidEvent("email is not an e-mail address")
    if p.get("phone") and not _PHONE.match(p["phone"]):
        raise InvalidEvent("phone must be digits, optionally with a leading + and spaces, dots, dashes or brackets")
    if len(p.get("customer_name") or "") > 200:
        raise InvalidEvent("customer_name is longer than 200 characters")
    sealed = p.get("sealed_personal")
    if sealed and (sealed.get("user_id") != p["user_id"] or not sealed.get("key_id") or not sealed.get("ciphertext")):
        raise InvalidEvent("sealed_personal must carry the order's user_id, a key_id and the ciphertext")


def _check_inventory(action: str, p: dict[str, Any]) -> None:
    _require(p, "product_id")
    if action == "set":
        if "on_hand" not in p or int(p["on_hand"]) < 0:
            raise InvalidEvent("inventory.set needs on_hand >= 0")
    elif action == "received":
        if int(p.get("delta", 0)) <= 0:
            raise InvalidEvent("inventory.received needs delta > 0")
    elif "delta" not in p:
        raise InvalidEvent("inventory.adjusted needs delta")


def _check_code(action: str, p: dict[str, Any]) -> None:
    _require(p, "product_id", "batch")
    if action == "issued":
        _require(p, "key_id", "serials")
    elif action == "revoked":  # the batch, or only `serial` when it is set
        _require(p, "reason")
    else:
        _require(p, "serial")


def _check_user(action: str, p: dict[str, Any]) -> None:
    _require(p, "user_id")


HANDOFF_ROLES = ("user", "agent")


def _check_handoff(action: str, p: dict[str, Any]) -> None:
    """The assistant's hand-offs (handoffs.v1): every one names its conversation; the people's actions
    name the hand-off (the handoff.requested event_id) and who acted."""
    _require(p, "session_id")
    if action == "cancel_requested":
        _require(p, "order_id")
    elif action in ("claimed", "closed"):
        _require(p, "handoff_id", "agent")
    elif action == "message":
        _require(p, "handoff_id", "role", "text")
        if p["role"] not in HANDOFF_ROLES:
            raise InvalidEvent(f"role must be one of {', '.join(HANDOFF_ROLES)}, not {p['role']!r}")
        if p["role"] == "agent":
            _require(p, "agent")


def _check_alert(action: str, p: dict[str, Any]) -> None:
    """The services' alerts (alerts.v1) name what they are about; an acknowledgement names its alert (the
    alert's event_id) and the staff key that acknowledged it."""
    if action == "acknowledged":
        _require(p, "alert_id", "acknowledged_by")
        try:
            uuid.UUID(str(p["alert_id"]))
        except ValueError:
            raise InvalidEvent("alert_id must be the acknowledged alert's event_id (a UUID)") from None
    elif action == "reorder_needed":
        _require(p, "product_id")
    elif action == "model_gate_failed":
        _require(p, "service", "model_version")
    else:  # counterfeit_detected, code_suspicious: a scan's verdict
        _require(p, "verdict")


RECOMMENDATION_ID = re.compile(r"^[0-9a-f]{32}$")
SURFACES = ("user", "visitor", "similar")


def _check_recommendation(action: str, p: dict[str, Any]) -> None:
    """An answer the gateway served (recommendations.served.v1): its id, what answered and where."""
    _require(p, "recommendation_id", "strategy", "surface")
    if not RECOMMENDATION_ID.match(str(p["recommendation_id"])):
        raise InvalidEvent("recommendation_id must be 32 lowercase hex digits")
    if p["surface"] not in SURFACES:
        raise InvalidEvent(f"surface must be one of {', '.join(SURFACES)}, not {p['surface']!r}")
    if bool(p.get("experiment_id")) != bool(p.get("arm")):
        raise InvalidEvent("experiment_id and arm go together")


_RULES = {
    "product": _check_product,
    "interaction": _check_interaction,
    "order": _check_order,
    "inventory": _check_inventory,
    "code": _check_code,
    "user": _check_user,
    "handoff": _check_handoff,
    "alert": _check_alert,
    "recommendation": _check_recommendation,
}


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str) or not value:
        raise InvalidEvent("occurred_at must be an RFC 3339 timestamp string")
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(f"occurred_at {value!r} is not an RFC 3339 timestamp") from None
    if ts.tzinfo is None:
        raise InvalidEvent("occurred_at must carry a time zone (e.g. a trailing Z)")
    return ts.astimezone(UTC)


def parse_event(data: Any) -> Event:
    """Validate one decoded JSON event; raise InvalidEvent with the reason."""
    if not isinstance(data, dict):
        raise InvalidEvent("an event must be a JSON object")
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise InvalidEvent("payload must be a JSON object")
    event_id = data.get("event_id")
    try:
        uuid.UUID(str(event_id))
    except ValueError:
        raise InvalidEvent("event_id must be a UUID") from None
    etype = data.get("type")
    if etype not in ALL_TYPES:
        raise InvalidEvent(f"unknown event type {etype!r}")
    version = data.get("schema_version", SCHEMA_VERSION)
    if type(version) is not int or version != SCHEMA_VERSION:
        raise InvalidEvent(f"schema_version {version} is not supported (expected {SCHEMA_VERSION})")
    occurred_at = _parse_time(data.get("occurred_at"))
    # The envelope's fields are checked by hand (the same rules as events_pb2.Envelope): the
    # proto parser spends most of its time on the Timestamp, which _parse_time already did.
    unknown = set(data) - ENVELOPE_FIELDS
    if unknown:
        raise InvalidEvent(f"envelope has unknown field(s) {', '.join(sorted(unknown))}")
    if not isinstance(data.get("source", ""), str):
        raise InvalidEvent("source must be a string")
    family, action = etype.split(".", 1)
    if etype == "interaction.rating" and isinstance(payload, dict):
        _check_stars(payload.get("rating"))
    _check_payload(payload, family)
    _RULES[family](action, payload)
    return Event(
        event_id=str(event_id),
        type=etype,
        occurred_at=occurred_at,
        payload=payload,
        source=str(data.get("source", "")),
        schema_version=version,
        raw=data,
    )


def decode_event(value: bytes) -> Event:
    """Bytes from Kafka -> a valid Event, or InvalidEvent with the reason."""
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEvent(f"not JSON: {exc}") from None
    return parse_event(data)


def envelope(
    event_type: str,
    payload: dict[str, Any],
    source: str,
    *,
    occurred_at: datetime | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """The envelope (as a JSON-ready dict) every record on every topic carries: domain events, and the
    services' own output (``model.published``, ``alert.*``, ``handoff.*``, ``code.*``). Nothing is
    validated here; ``new_event`` validates domain events on top of it."""
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "type": event_type,
        "schema_version": SCHEMA_VERSION,
        "occurred_at": format_time(occurred_at or datetime.now(UTC)),
        "source": source,
        "payload": payload,
    }


def new_event(
    event_type: str,
    payload: dict[str, Any],
    occurred_at: datetime | None = None,
    source: str = "shopai",
    event_id: str | None = None,
) -> Event:
    """Build (and validate) a domain event."""
    return parse_event(envelope(event_type, payload, source, occurred_at=occurred_at, event_id=event_id))


_PAYLOAD_CHECKS: dict[str, dict[str, _Check | None] | None] = {
    family: _field_checks(message.DESCRIPTOR) for family, message in PAYLOAD_MESSAGES.items()}
