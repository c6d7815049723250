"""Structured logs (structlog): JSON lines in containers, readable lines on a terminal.

Every event, structlog's and the standard library's alike, passes ``mask_personal_data`` just before it
is rendered: values of personal or secret fields (``user_id``, ``email``, ``phone``, ``authorization``,
``api_key``...) are masked, and so are e-mail addresses, phone numbers and ``/users/<id>`` paths inside
any text (chat messages, error details, tracebacks)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import sys
from collections.abc import Mapping
from typing import Any

import structlog

_configured = False


def configure_logging(level: str = "INFO", json: bool = True, service: str | None = None) -> None:
    """Route structlog and the standard library's logging through one renderer."""
    global _configured
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, mask_personal_data, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, mask_personal_data, renderer],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # kafka-python is chatty at INFO about every connection and rebalance step.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, root.level))
    # Its event loop warns whenever decoding a large fetch takes over 100 ms: noise, not a fault.
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
    if service:
        structlog.contextvars.bind_contextvars(service=service)
    _configured = True


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)


# ------------------------------------------------------------------------------- personal data

# The key of the short hashes that stand for identifiers: random per process, so a hash follows one user
# through one process's log lines but cannot be looked up elsewhere (``set_mask_key`` for a fixed one).
_mask_key = secrets.token_bytes(32)

SECRET, IDENTIFIER, EMAIL, PHONE, TEXT = "secret", "identifier", "email", "phone", "text"

# Field names (lower case, "-" read as "_") whose values are personal data or secrets.
MASKED_FIELDS: dict[str, str] = {
    **dict.fromkeys(("authorization", "proxy_authorization", "api_key", "x_api_key", "apikey", "token",
                     "access_token", "refresh_token", "id_token", "password", "passwd", "secret", "cookie",
                     "set_cookie", "signing_key", "private_key", "bearer"), SECRET),
    **dict.fromkeys(("user_id", "userid", "customer_id", "member_id", "buyer_id", "username", "client_ip",
                     "ip", "ip_address", "remote_addr", "x_forwarded_for", "x_real_ip", "device_id"), IDENTIFIER),
    **dict.fromkeys(("email", "e_mail", "email_address", "mail"), EMAIL),
    **dict.fromkeys(("phone", "phone_number", "mobile", "mobile_phone", "tel", "telephone", "cellphone"), PHONE),
    **dict.fromkeys(("name", "full_name", "first_name", "last_name", "real_name", "nickname", "address",
                     "shipping_address", "billing_address", "street", "id_card", "id_number"), TEXT),
}
_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_token", SECRET), ("_secret", SECRET), ("_password", SECRET), ("_api_key", SECRET),
    ("_user_id", IDENTIFIER), ("_email", EMAIL), ("_phone", PHONE), ("_address", TEXT),
)
# Fields a processor before this one wrote: never personal, and not worth a regex.
_SKIP = frozenset({"timestamp", "level", "logger", "service", "log_level"})

# Lookarounds name ASCII on purpose: in "邮箱bob@example.com" the Chinese text is a \w character too.
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Chinese mobile numbers (1[3-9] + 9 digits, optionally written 3-4-4), not inside a longer number or id.
_CN_MOBILE = re.compile(r"(?<![0-9A-Za-z])1[3-9]\d(?:[ -]?\d{4}){2}(?![0-9A-Za-z])")
# International numbers: "+" country code, then groups of digits (7 to 15 digits in all, E.164).
_INTL_PHONE = re.compile(r"(?<![0-9A-Za-z+])\+\d{1,3}(?:[ .-]?\(?\d{1,5}\)?){1,6}(?![0-9A-Za-z])")
_USER_PATH = re.compile(r"(/users/)([^/?#\s\"'<>]+)")


def set_mask_key(key: bytes) -> None:
    """Use a fixed key for the identifier hashes (e.g. to correlate several processes' logs)."""
    global _mask_key
    _mask_key = key


def hash_identifier(value: object) -> str:
    """``h:`` and 8 hex digits of a keyed hash: the same value gives the same hash within the process."""
    digest = hmac.new(_mask_key, str(value).encode(), hashlib.sha256).hexdigest()
    return f"h:{digest[:8]}"


def mask_email(address: str) -> str:
    local, at, domain = address.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_phone(number: str) -> str:
    """Every digit but the last four (and a Chinese mobile number's first three) becomes ``*``."""
    digits = [i for i, c in enumerate(number) if c.isdigit()]
    keep = set(digits[-4:])
    if _CN_MOBILE.fullmatch(number):
        keep |= set(digits[:3])
    return "".join("*" if c.isdigit() and i not in keep else c for i, c in enumerate(number))


def _mask_intl(match: re.Match[str]) -> str:
    text = match.group(0)
    count = sum(c.isdigit() for c in text)
    return mask_phone(text) if 7 <= count <= 15 else text


def mask_text(text: str) -> str:
    """E-mail addresses, phone numbers and the ids in ``/users/<id>`` paths inside free text."""
    if "@" in text:
        text = _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    if "+" in text:
        text = _INTL_PHONE.sub(_mask_intl, text)
    text = _CN_MOBILE.sub(lambda m: mask_phone(m.group(0)), text)
    if "/users/" in text:
        text = _USER_PATH.sub(lambda m: m.group(1) + hash_identifier(m.group(2)), text)
    return text


def field_kind(name: str) -> str | None:
    key = name.lower().replace("-", "_")
    if key in MASKED_FIELDS:
        return MASKED_FIELDS[key]
    for suffix, kind in _SUFFIXES:
        if key.endswith(suffix):
            return kind
    return None


def _mask_field(kind: str, value: Any) -> Any:
    if value is None or value == "":
        return value
    if isinstance(value, (list, tuple, set, frozenset)) and kind != SECRET:
        return [_mask_field(kind, v) for v in value]
    if kind == SECRET or not isinstance(value, (str, int)):
        return "***"
    text = str(value)
    if kind == IDENTIFIER:
        return hash_identifier(text)
    if kind == EMAIL:
        return mask_email(text)
    if kind == PHONE:
        return mask_phone(text)
    return f"{text[:1]}***"


def _mask(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if depth >= 6:
        return value
    if isinstance(value, Mapping):
        return {k: _mask_item(k, v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_mask(v, depth + 1) for v in value)
    return value


def _mask_item(key: Any, value: Any, depth: int) -> Any:
    kind = field_kind(key) if isinstance(key, str) else None
    return _mask_field(kind, value) if kind else _mask(value, depth)


def mask_personal_data(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: mask personal data and secrets in every field (see the module docstring)."""
    for key, value in list(event_dict.items()):
        if key in _SKIP or key.startswith("_"):
            continue
        event_dict[key] = _mask_item(key, value, 0)
    return event_dict
