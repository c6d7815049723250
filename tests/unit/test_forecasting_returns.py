"""Returns and refunds take sales back (services/forecasting/core/returns.py and the projection)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.common.events import new_event
from services.common.projection import Ops
from services.forecasting.consumer import ForecastProjection
from services.forecasting.core.returns import OrderRecord, apply_refund, apply_return
from services.forecasting.store import ForecastKeys as K

LINES = [{"product_id": "shirt", "quantity": 2, "unit_price": 50.0}, {"product_id": "scarf", "quantity": 1,
                                                                       "unit_price": 20.0}]


def order() -> OrderRecord:
    return OrderRecord.created("u1", 1_700_000_000.0, 120.0, "EUR", LINES)


def test_a_partial_return_takes_back_its_units_and_value_once():
    o = order()
    back = apply_return(o, [{"product_id": "shirt", "quantity": 1}])
    assert back.units == {"shirt": 1.0} and back.revenue == {"shirt": pytest.approx(50.0)}
    assert o.net == pytest.approx(70.0) and not o.void
    # Returning more shirts than are left is capped at what was sold.
    back = apply_return(o, [{"product_id": "shirt", "quantity": 5}, {"product_id": "hat", "quantity": 1}])
    assert back.units == {"shirt": 1.0} and o.net == pytest.approx(20.0)
    assert apply_return(o, [{"product_id": "shirt", "quantity": 1}]).units == {}  # nothing left to return


def test_a_return_then_its_refund_takes_the_value_back_once():
    o = order()
    apply_return(o, None)  # no lines: everything
    assert o.void and o.net == 0.0
    back = apply_refund(o, 120.0, None)
    assert back.units == {} and back.revenue == {}  # the refund is the same money as the return
    assert o.to_json()["total"] == 0.0 and o.to_json()["void"] is True


def test_a_refund_without_a_return_takes_money_not_units():
    o = order()
    back = apply_refund(o, 30.0, None)  # a goodwill credit, spread over the lines by value
    assert back.units == {}
    assert back.revenue == {"shirt": pytest.approx(25.0), "scarf": pytest.approx(5.0)}
    assert o.net == pytest.approx(90.0)
    # Its goods come back later: only the value the refund did not already take back leaves.
    back = apply_return(o, [{"product_id": "shirt", "quantity": 2}])
    assert back.units == {"shirt": 2.0} and sum(back.revenue.values()) == pytest.approx(70.0)
    assert o.net == pytest.approx(20.0)
    # A refund never takes back more than the order was worth.
    apply_refund(o, 500.0, None)
    assert o.net == 0.0 and o.void


def test_the_stored_form_round_trips_and_reads_records_of_before():
    o = order()
    apply_return(o, [{"product_id": "scarf", "quantity": 1}])
    again = OrderRecord.from_json(o.to_json())
    assert again == o
    old = OrderRecord.from_json({"u": "u1", "t": 1.0, "total": 99.0, "cur": "CNY"})  # stored before returns
    assert (old.gross, old.net, old.lines) == (99.0, 99.0, {})
    assert apply_refund(old, 0.0, None).revenue == {} and old.void  # no lines: only the order's value


class _Redis:
    def hget(self, *_):
        return None


def _day(ops: Ops, key: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for c in ops.commands:
        if c[0] == "HINCRBYFLOAT" and c[1] == key:
            out[c[2]] = out.get(c[2], 0.0) + float(c[3])
    return out


def test_the_projection_takes_returns_and_refunds_off_the_sale_day():
    projection = ForecastProjection(_Redis())
    ops = Ops()
    ops.batch_state["category"] = {"shirt": "tops", "scarf": ""}
    sold = datetime(2026, 3, 4, 12, tzinfo=UTC)
    projection.apply(new_event("order.created", {"order_id": "o1", "user_id": "u1", "total": 120.0, "currency": "EUR",
                                                 "lines": LINES}, occurred_at=sold), ops)
    projection.apply(new_event("order.returned", {"order_id": "o1", "user_id": "u1", "reason": "too small",
                                                  "lines": [LINES[0]]},
                               occurred_at=datetime(2026, 3, 20, tzinfo=UTC)), ops)
    projection.apply(new_event("order.refunded", {"order_id": "o1", "user_id": "u1", "total": 100.0},
                               occurred_at=datetime(2026, 3, 22, tzinfo=UTC)), ops)
    assert _day(ops, K.units("p", "shirt")) == {"2026-03-04": 0.0}
    assert _day(ops, K.units("c", "tops")) == {"2026-03-04": 0.0}
    assert _day(ops, K.revenue("p", "shirt")) == {"2026-03-04": pytest.approx(0.0)}
    assert _day(ops, K.units("p", "scarf")) == {"2026-03-04": 1.0}  # kept
    stored = ops.batch_state["orders"]["o1"]
    assert stored["total"] == pytest.approx(20.0) and not stored.get("void")
    # A refund of an order never seen (before the history, or cancelled) changes nothing.
    other = Ops()
    projection.apply(new_event("order.refunded", {"order_id": "o9", "user_id": "u1", "total": 5.0}), other)
    assert not any(c[0] == "HINCRBYFLOAT" for c in other.commands)


def test_a_cancellation_without_lines_cancels_the_lines_of_the_order():
    projection = ForecastProjection(_Redis())
    ops = Ops()
    ops.batch_state["category"] = {"shirt": "", "scarf": ""}
    projection.apply(new_event("order.created", {"order_id": "o1", "user_id": "u1", "total": 120.0, "lines": LINES},
                               occurred_at=datetime(2026, 3, 4, tzinfo=UTC)), ops)
    projection.apply(new_event("order.cancelled", {"order_id": "o1", "user_id": "u1", "reason": "payment_timeout"},
                               occurred_at=datetime(2026, 3, 5, tzinfo=UTC)), ops)
    projection.apply(new_event("order.cancelled", {"order_id": "o1", "user_id": "u1"},
                               occurred_at=datetime(2026, 3, 6, tzinfo=UTC)), ops)  # twice: once only
    assert _day(ops, K.units("p", "shirt")) == {"2026-03-04": 0.0}
    assert _day(ops, K.units("p", "scarf")) == {"2026-03-04": 0.0}


def test_a_refund_after_a_cancellation_changes_nothing():
    projection = ForecastProjection(_Redis())
    ops = Ops()
    ops.batch_state["category"] = {"shirt": "", "scarf": ""}
    projection.apply(new_event("order.created", {"order_id": "o1", "user_id": "u1", "total": 120.0, "lines": LINES},
                               occurred_at=datetime(2026, 3, 4, tzinfo=UTC)), ops)
    projection.apply(new_event("order.cancelled", {"order_id": "o1", "user_id": "u1", "lines": LINES}), ops)
    projection.apply(new_event("order.refunded", {"order_id": "o1", "user_id": "u1", "total": 120.0}), ops)
    assert _day(ops, K.revenue("p", "shirt")) == {"2026-03-04": 0.0}
    assert ops.batch_state["orders"]["o1"]["void"] is True
