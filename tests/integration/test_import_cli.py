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
