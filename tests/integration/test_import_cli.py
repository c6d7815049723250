"""`shopai import` as an operator runs it: a JSONL file onto the real broker, with its report."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from services.common import topics
from tests.integration.test_vertical_slice import read_topic

pytestmark = pytest.mark.integration


def test_a_jsonl_file_is_validated_and_published(broker, tmp_path):
    good = [{"type": "order.created", "occurred_at": f"2026-11-0{i + 1}T10:00:00Z",
             "payload": {"order_id": f"o{i}", "user_id": "u1", "total": 10.0, "currency": "CNY",
                         "lines": [{"product_id": "p1", "quantity": 1, "unit_price": 10.0}]}} for i in range(3)]
    path = tmp_path / "orders.jsonl"
    path.write_text("\n".join([*map(json.dumps, good), '{"type": "order.created"}']) + "\n")
    env = {**os.environ, "SHOPAI_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap}
    done = subprocess.run([sys.executable, "-m", "shopai.cli", "import", str(path), "--rejects", str(tmp_path / "r")],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr  # one record was rejected
    report = json.loads(done.stdout)
    assert (report["published"], report["rejected"]) == (3, 1) and report["first_errors"][0]["line"] == 4
    assert "importing orders.jsonl" in done.stderr  # the progress bar
    records = read_topic(broker.bootstrap, topics.ORDERS, 3)
    assert sorted(r["payload"]["order_id"] for r in records) == ["o0", "o1", "o2"]


def test_a_tills_order_lines_are_imported_with_a_column_mapping(broker, tmp_path):
    """One CSV row per pizza sold, with the export's own ``type`` column: no converter needed."""
    path = tmp_path / "pizza_sales.csv"
    path.write_text("id,date,time,name,size,type,price\n"
                    "2015-000001,2015-01-01,11:38:36,hawaiian,M,classic,13.25\n"
                    "2015-000002,2015-01-01,11:57:40,classic_dlx,M,classic,16.00\n"
                    "2015-000002,2015-01-01,11:57:40,classic_dlx,M,classic,16.00\n")
    env = {**os.environ, "SHOPAI_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap}
    command = [sys.executable, "-m", "shopai.cli", "import", str(path), "--kind", "order-lines", "--quiet",
               "--map", "id=order_id,name+size=product_id,type=category,price=unit_price"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["by_type"] == {"interaction.purchase": 2, "order.created": 2, "order.paid": 2,
                                                  "product.upserted": 2}
    orders = [r for r in read_topic(broker.bootstrap, topics.ORDERS, 10_000, timeout=5)
              if r["payload"]["order_id"].startswith("2015-")]
    created = {r["payload"]["order_id"]: r["payload"] for r in orders if r["type"] == "order.created"}
    assert created["2015-000002"]["lines"] == [{"product_id": "classic_dlx-M", "quantity": 2, "unit_price": 16.0}]
    products = [r["payload"] for r in read_topic(broker.bootstrap, topics.CATALOG, 10_000, timeout=5)
                if r["payload"].get("product_id", "").endswith("-M")]
    assert {p["product_id"]: p["category"] for p in products} == {"hawaiian-M": "classic", "classic_dlx-M": "classic"}
    # A mapping that cannot work is refused with the reason, before anything is published.
    bad = subprocess.run([*command[:-1], "id=order_id,nope=product_id"], env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    assert bad.returncode == 2 and "not in the file's header" in bad.stderr
