"""``shopai import``: JSONL and CSV records validated like POST /v1/events, bad lines reported."""

from __future__ import annotations

import json

import pytest

from shopai.importer import csv_record, import_file

VIEW = {"event_id": "8f0c6c43-2b8e-4d8f-9a43-0f1f5f0d2a11", "type": "interaction.view",
        "occurred_at": "2026-11-01T10:00:00Z", "payload": {"user_id": "u1", "product_id": "p1", "price": 99.0}}


def run(path, **kw):
    published = []
    report = import_file(path, published.extend, show_progress=False, **kw)
    return report, published


def test_jsonl_good_and_bad_lines(tmp_path):
    lines = [json.dumps(VIEW), "not json", json.dumps({**VIEW, "type": "interaction.nope"}), "",
             json.dumps({k: v for k, v in VIEW.items() if k != "event_id"}), "[1, 2]"]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    rejects = tmp_path / "rejects.jsonl"
    with rejects.open("w") as fh:
        report, published = run(path, batch_size=1, rejects=fh)
    assert (report.read, report.published, report.rejected) == (5, 2, 3)
    assert [e["line"] for e in report.errors] == [2, 3, 6]
    assert "not JSON" in report.errors[0]["reason"] and "nope" in report.errors[1]["reason"]
    assert len(rejects.read_text().splitlines()) == 3
    # A record without an id gets a deterministic one: importing the file again publishes the same ids.
    _, republished = run(path)
    assert [e.event_id for e in republished] == [e.event_id for e in published]
    assert published[1].event_id != VIEW["event_id"]


def test_csv_with_flat_payload_columns(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(
        "type,occurred_at,order_id,user_id,total,currency,lines\n"
        'order.created,2026-11-01T10:00:00Z,0042,u1,199.5,CNY,"[{""product_id"": ""p1"", ""quantity"": 2, '
        '""unit_price"": 99.75}]"\n'
        "order.created,2026-11-01T10:00:00Z,43,u1,10,CNY,\n", encoding="utf-8")
    report, published = run(path)
    assert (report.published, report.rejected) == (1, 1)
    order = published[0]
    assert order.payload["order_id"] == "0042" and order.payload["total"] == 199.5
    assert order.payload["lines"][0]["quantity"] == 2
    assert "lines" in report.errors[0]["reason"]


def test_csv_payload_column_and_header_check(tmp_path):
    assert csv_record({"type": "interaction.view", "occurred_at": "t", "payload": '{"user_id": "u"}'})["payload"] == \
        {"user_id": "u"}
    path = tmp_path / "bad.csv"
    path.write_text("kind,when\nx,y\n")
    with pytest.raises(ValueError, match="header"):
        run(path)


def test_two_identical_lines_without_ids_stay_two_events(tmp_path):
    twice = json.dumps({k: v for k, v in VIEW.items() if k != "event_id"})
    path = tmp_path / "views.jsonl"
    path.write_text(f"{twice}\n{twice}\n")
    report, published = run(path)
    assert report.published == 2 and len({e.event_id for e in published}) == 2
    _, again = run(path)  # the same file again: the same ids, so the consumers count nothing twice
    assert [e.event_id for e in again] == [e.event_id for e in published]


# -- a shop's own exports (shopai/tables.py) -----------------------------------------------------------
PIZZA = ("id,date,time,name,size,type,price\n"
         "2015-000001,2015-01-01,11:38:36,hawaiian,M,classic,13.25\n"
         "2015-000002,2015-01-01,11:57:40,classic_dlx,M,classic,16.00\n"
         "2015-000002,2015-01-01,11:57:40,classic_dlx,M,classic,16.00\n"
         "2015-000002,2015-01-01,11:57:40,thai_ckn,L,chicken,20.75\n"
         "2015-000003,2015-01-02,12:00:00,hawaiian,M,classic,13.50\n")
PIZZA_MAP = "id=order_id,name+size=product_id,type=category,price=unit_price"


def test_order_lines_become_the_catalog_orders_payments_and_purchases(tmp_path):
    path = tmp_path / "sales.csv"
    path.write_text(PIZZA)
    report, published = run(path, kind="order-lines", mapping=PIZZA_MAP, timezone="America/New_York")
    assert report.rejected == 0
    assert report.by_type == {"product.upserted": 3, "order.created": 3, "order.paid": 3, "interaction.purchase": 4}
    products = {e.payload["product_id"]: e.payload for e in published if e.type == "product.upserted"}
    # The last price seen; a product id joined from name+size is the M variant of the item "hawaiian".
    assert products["hawaiian-M"] == {"product_id": "hawaiian-M", "title": "hawaiian (M)", "category": "classic",
                                      "price": 13.5, "currency": "USD",
                                      "attributes": {"item_group_id": "hawaiian", "size": "M"}}
    assert products["thai_ckn-L"]["category"] == "chicken"  # the file's own `type` column, mapped
    orders = [e for e in published if e.type == "order.created"]
    two = next(e for e in orders if e.payload["order_id"] == "2015-000002")
    # Two identical lines are two pizzas sold, never one.
    assert {line["product_id"]: line["quantity"] for line in two.payload["lines"]} == {"classic_dlx-M": 2,
                                                                                         "thai_ckn-L": 1}
    assert two.payload["total"] == 52.75 and two.payload["user_id"] == "guest-2015-000002"
    assert two.occurred_at.isoformat() == "2015-01-01T16:57:40+00:00"  # New York time, sent in UTC
    assert [e.type for e in published][:3] == ["product.upserted"] * 3  # the catalog comes first
    assert [e.payload["order_id"] for e in orders] == ["2015-000001", "2015-000002", "2015-000003"]
    purchases = [e.payload for e in published if e.type == "interaction.purchase"]
    assert {"user_id": "guest-2015-000002", "product_id": "classic_dlx-M", "quantity": 2, "price": 16.0} in purchases
    # Importing the same file again publishes the same ids.
    _, again = run(path, kind="order-lines", mapping=PIZZA_MAP, timezone="America/New_York")
    assert [e.event_id for e in again] == [e.event_id for e in published]
    assert len({e.event_id for e in published}) == len(published)


def test_order_lines_status_customer_and_bad_rows(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("order,customer,sku,qty,unit,status,when\n"
                    "A1,c1,p1,2,9.5,paid,2026-03-01 10:00\n"
                    "A2,c2,p1,1,9.5,cancelled,2026-03-01 11:00\n"
                    "A3,c1,p2,zero,1,paid,2026-03-02\n"
                    "A4,c3,p2,1,1,paid,yesterday\n")
    report, published = run(path, kind="order-lines", catalog=False,
                            mapping="order=order_id,customer=user_id,sku=product_id,qty=quantity,unit=unit_price,"
                                    "when=occurred_at,status=status")
    assert report.by_type == {"order.created": 2, "order.paid": 1, "interaction.purchase": 1}
    assert [e["line"] for e in report.errors] == [4, 5]
    assert "quantity 'zero'" in report.errors[0]["reason"] and "'yesterday'" in report.errors[1]["reason"]
    purchase = next(e for e in published if e.type == "interaction.purchase")
    assert purchase.payload == {"user_id": "c1", "product_id": "p1", "quantity": 2, "price": 9.5}


@pytest.mark.parametrize(("mapping", "message"), [
    ("id=order_id,nope=product_id,date=date", "not in the file's header"),
    ("id=order_id,name=sku,date=date", "not a field of order-lines"),
    ("id=order_id", "needs product_id"),
    ("id=order_id,name=product_id,date=title", "occurred_at"),
    ("id", "must read source=field"),
])
def test_a_mapping_that_cannot_work_is_refused_before_anything_is_published(tmp_path, mapping, message):
    path = tmp_path / "sales.csv"
    path.write_text(PIZZA)
    published = []
    with pytest.raises(ValueError, match=message):
        import_file(path, published.extend, show_progress=False, kind="order-lines", mapping=mapping)
    assert published == []


def test_a_catalog_table_with_attributes_tags_and_the_shops_currency(tmp_path):
    path = tmp_path / "catalog.csv"
    path.write_text("sku,name,group,cost,tags,colour\n"
                    "p1,Linen shirt,shirts,\"1,299.00\",summer;linen,white\n"
                    "p2,Scarf,,12,,\n"
                    ",No id,shirts,1,,\n")
    report, published = run(path, kind="catalog", currency="EUR",
                            mapping="sku=product_id,name=title,group=category,cost=price,colour=attributes.colour")
    assert (report.published, report.rejected) == (2, 1) and "product_id" in report.errors[0]["reason"]
    first, second = (e.payload for e in published)
    assert first == {"product_id": "p1", "title": "Linen shirt", "category": "shirts", "currency": "EUR",
                     "price": 1299.0, "tags": ["summer", "linen"], "attributes": {"colour": "white"}}
    assert second["category"] == "uncategorised"
