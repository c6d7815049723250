"""The consumers' fast payload check (services/common/events.py, ``_plainly_valid``) never accepts what
``json_format.ParseDict`` refuses, takes the fast path for the shop's ordinary events, and leaves every other
payload to ParseDict's verdict and reason."""

from __future__ import annotations

import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common import events
from services.common.events import PAYLOAD_MESSAGES, InvalidEvent, _check_payload, _plainly_valid


def _parse_dict_accepts(payload: dict, family: str) -> bool:
    try:
        json_format.ParseDict(payload, PAYLOAD_MESSAGES[family]())
    except Exception:  # noqa: BLE001 - ParseDict's failures are not all ParseError (see the last tests)
        return False
    return True


def _names(family: str) -> list[str]:
    fields = PAYLOAD_MESSAGES[family].DESCRIPTOR.fields
    return sorted({f.name for f in fields} | {f.json_name for f in fields} | {"unknown_field", "Product_Id"})


SCALARS = st.one_of(
    st.text(max_size=6),
    st.sampled_from(["\ud800", "a\udfffb", "商品", "", "NaN", "Infinity", "12", " 3", "1e3", "true", "AAEC"]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**53, 2**53 + 1, 2**63, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1.5, 3.0, -0.0, 1e308, 1e-320]),
    st.booleans(),
    st.none(),
)


def _values(names: list[str]) -> st.SearchStrategy:
    return st.recursive(
        SCALARS,
        lambda inner: st.one_of(st.lists(inner, max_size=3),
                                st.dictionaries(st.sampled_from(names + ["key", "value", "a"]), inner, max_size=3)),
        max_leaves=6,
    )


@st.composite
def payloads(draw) -> tuple[str, dict]:
    family = draw(st.sampled_from(sorted(PAYLOAD_MESSAGES)))
    names = _names(family)
    payload = draw(st.dictionaries(st.sampled_from(names), _values(names), max_size=5))
    return family, payload


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads())
def test_the_fast_path_never_accepts_what_parse_dict_refuses(case) -> None:
    family, payload = case
    if _plainly_valid(payload, family):
        assert _parse_dict_accepts(payload, family), (family, payload)
    # whichever path decides, the verdict is ParseDict's
    try:
        _check_payload(payload, family)
        accepted = True
    except InvalidEvent:
        accepted = False
    assert accepted == _parse_dict_accepts(payload, family), (family, payload)


ORDINARY = [
    ("product", {"product_id": "p1", "title": "Linen shirt", "title_zh": "亚麻衬衫", "category": "tops", "brand": "b",
                 "price": 29.9, "currency": "EUR", "tags": ["summer", "linen"], "attributes": {"colour": "white"},
                 "cost": 12}),
    ("interaction", {"user_id": "u1", "product_id": "p1", "session_id": "s", "quantity": 2, "price": 10}),
    ("interaction", {"user_id": "u1", "product_id": "p1", "rating": 4}),
    ("order", {"order_id": "o1", "user_id": "u1", "lines": [{"product_id": "p1", "quantity": 1, "unit_price": 9.5}],
               "total": 9.5, "currency": "EUR", "shipping_address": {"city": "Zürich", "country": "CH"}}),
    ("inventory", {"product_id": "p1", "on_hand": 12, "delta": -3, "location": "main"}),
    ("code", {"product_id": "p1", "serials": ["a", "b"], "issued_at": 1_700_000_000, "counted": True}),
    ("alert", {"product_id": "p1", "on_hand": 3, "reorder_point": 4.5, "new": 0.9, "reasons": ["low"]}),
]


@pytest.mark.parametrize(("family", "payload"), ORDINARY)
def test_ordinary_payloads_take_the_fast_path(family: str, payload: dict) -> None:
    assert _plainly_valid(payload, family)
    assert _parse_dict_accepts(payload, family)


def test_other_forms_go_to_parse_dict_with_its_reason() -> None:
    # a JSON name and a quoted number: ParseDict accepts them, the fast path does not decide
    assert not _plainly_valid({"productId": "p1"}, "product")
    _check_payload({"productId": "p1", "price": "1.5"}, "product")
    with pytest.raises(InvalidEvent, match="quantity field: Value out of range"):
        _check_payload({"quantity": 2**31}, "interaction")
    with pytest.raises(InvalidEvent, match="Unpaired surrogate"):
        _check_payload({"product_id": "\ud800"}, "product")
    with pytest.raises(InvalidEvent, match="Bool value True"):
        _check_payload({"rating": True}, "interaction")


def test_a_huge_integer_for_a_double_is_refused_not_a_crash() -> None:
    # ParseDict raises OverflowError here (not its ParseError): once a poison event that stopped a consumer
    with pytest.raises(InvalidEvent, match="payload: int too large"):
        events.decode_event(b'{"event_id": "3f1c1a2e-8d7b-4c57-9a55-7c3cf4c3f2a1", "type": "product.upserted",'
                            b' "occurred_at": "2026-01-01T00:00:00Z", "payload": {"product_id": "p", "title": "t",'
                            b' "category": "c", "price": 1' + b"0" * 400 + b"}}")


def test_a_surrogate_where_a_message_belongs_is_refused_not_a_crash() -> None:
    # ParseDict walks the string's characters as field names, and upb raises SystemError on the surrogate
    with pytest.raises(InvalidEvent, match="payload: "):
        _check_payload({"order_id": "o", "sealed_personal": "\ud800"}, "order")
