"""Forecast charts: the JSON structure for the web page and the PNG rendered with Agg."""

from __future__ import annotations

import io
import json
import threading
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from PIL import Image

from gateway import charts

START = date(2026, 1, 1)


def example(history: int = 60, horizon: int = 14) -> tuple:
    hd = [START + timedelta(days=i) for i in range(history)]
    hy = [float(3 + (i % 7)) for i in range(history)]
    fd = [START + timedelta(days=history + i) for i in range(horizon)]
    yhat = np.full(horizon, 5.0)
    return hd, hy, fd, yhat, yhat - 2.0, yhat + 2.5


def test_json_has_iso_dates_and_round_trips():
    hd, hy, fd, yhat, lower, upper = example()
    chart = charts.forecast_chart_json(hd, hy, fd, yhat, lower, upper, "Demand for p1", 0.8)
    assert json.loads(json.dumps(chart)) == chart
    assert chart["title"] == "Demand for p1" and chart["level"] == pytest.approx(0.8)
    assert chart["interval_label"] == "80% interval"
    assert chart["history"]["dates"][:2] == ["2026-01-01", "2026-01-02"] and len(chart["history"]["y"]) == 60
    assert chart["forecast"]["dates"][0] == "2026-03-02" == chart["forecast_start"]
    assert chart["forecast"]["yhat"] == [5.0] * 14
    assert chart["forecast"]["lower"][0] == 3.0 and chart["forecast"]["upper"][0] == 7.5


def test_json_accepts_other_date_types_and_nulls_missing_values():
    chart = charts.forecast_chart_json(
        np.array(["2026-01-01", "2026-01-02"], dtype="datetime64[D]"), [1.0, float("nan")],
        ["2026-01-03", datetime(2026, 1, 4, 23, tzinfo=UTC)], [2.0, 2.0], [1.0, np.inf], [3.0, 3.0], "t", 95)
    assert chart["history"] == {"dates": ["2026-01-01", "2026-01-02"], "y": [1.0, None]}
    assert chart["forecast"]["dates"] == ["2026-01-03", "2026-01-04"] and chart["forecast"]["lower"] == [1.0, None]
    assert chart["level"] == pytest.approx(0.95) and chart["interval_label"] == "95% interval"
    json.dumps(chart, allow_nan=False)
    assert charts.forecast_chart_json([], [], [], [], [], [], "empty")["forecast_start"] is None


def test_mismatched_lengths_are_rejected():
    hd, hy, fd, yhat, lower, upper = example()
    with pytest.raises(ValueError):
        charts.forecast_chart_json(hd, hy[:-1], fd, yhat, lower, upper, "t", 0.8)
    with pytest.raises(ValueError):
        charts.forecast_chart_png(hd, hy, fd, yhat, lower[:-1], upper, "t", 0.8)


def test_png_decodes_at_800_by_400():
    png = charts.forecast_chart_png(*example(), title="Demand for p1", level=0.8)
    assert png.startswith(charts.PNG_SIGNATURE)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (800, 400)
    pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10  # something was drawn


def test_png_of_empty_and_forecast_only_data():
    for args in ([], [], [], [], [], []), ([], [], *example()[2:]):
        image = Image.open(io.BytesIO(charts.forecast_chart_png(*args, title="x", level=0.9)))
        assert image.size == (800, 400)


def test_png_renders_from_several_threads():
    results: list[bytes] = []
    lock = threading.Lock()

    def render() -> None:
        png = charts.forecast_chart_png(*example(), title="threads", level=0.8)
        with lock:
            results.append(png)

    threads = [threading.Thread(target=render) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(Image.open(io.BytesIO(p)).size == (800, 400) for p in results)


def test_a_title_with_dollar_signs_is_text_not_math():
    # schemathesis found a product id whose "$ $" made matplotlib parse math and fail (a 500)
    for title in ("Demand for \x87.$ $×ýåæ羭", "$5 off $", "$\\frac{", "a $b$ c"):
        image = Image.open(io.BytesIO(charts.forecast_chart_png(*example(), title=title, level=0.8)))
        assert image.size == (800, 400)
