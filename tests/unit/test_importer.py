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
